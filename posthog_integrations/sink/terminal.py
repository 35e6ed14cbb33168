"""Text from captured events made safe to print on a terminal."""

from __future__ import annotations

__all__ = ["MAX_SHOWN_CHARS", "printable"]

# Longer values are cut: one event line stays one readable line.
MAX_SHOWN_CHARS = 120


_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: object, max_chars: int = MAX_SHOWN_CHARS) -> str:
    """``str(value)`` shortened, with every non-printable character shown as an escape.

    Anyone can send events, so their text must not drive the terminal: C0 and C1 control
    characters (which start ANSI escape sequences), line breaks, bidi overrides and other
    format or invisible characters all become visible ``\\x..``/``\\u....`` escapes.
    """
    text = str(value)
    if len(text) > max_chars:
        text = text[:max_chars] + "…"
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)
