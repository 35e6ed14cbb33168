"""What a sanitized tracing header must be, stated as properties of the header sent and the
value the library kept, from the README's promise and not from the implementation.

The promise: a header is UTF-8 or absent; control characters (Unicode category Cc) and format
characters (Cf: bidi controls, zero-width characters, the BOM) are taken out; the rest is
trimmed and kept up to 1,000 characters; ``null``, ``undefined`` (in any case) and nothing at
all mean absent.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

CAP = 1000
ABSENT_WORDS = frozenset({"null", "undefined"})
REMOVED_CATEGORIES = frozenset({"Cc", "Cf"})


def removable(character: str) -> bool:
    return unicodedata.category(character) in REMOVED_CATEGORIES


def readable(raw: bytes) -> str | None:
    """The header as text with the characters the library may remove taken out, or None when
    it is not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "".join(character for character in text if not removable(character))


def carries_a_value(raw: bytes) -> bool:
    """Whether the header says anything: UTF-8, something left once trimmed, not a word that
    JavaScript writes for a missing value."""
    text = readable(raw)
    return text is not None and text.strip() != "" and text.strip().lower() not in ABSENT_WORDS


def assert_sanitized(raw: bytes, kept: str | None) -> None:
    """``kept`` is what the library made of the header ``raw`` (the bytes as sent)."""
    if not carries_a_value(raw):
        assert kept is None, f"{raw[:80]!r} says nothing, yet {kept[:80]!r} was kept"
        return
    text = readable(raw)
    assert text is not None
    content = text.lstrip()
    if kept is None:
        # The only excuse: cut at the cap, nothing but an absent word was left.
        assert content[:CAP].rstrip().lower() in ABSENT_WORDS, f"{raw[:80]!r} was dropped"
        return
    # Never in the output.
    assert 0 < len(kept) <= CAP
    assert not any(removable(character) for character in kept)
    assert kept == kept.strip()
    assert kept.lower() not in ABSENT_WORDS
    # Taken from the start of what was sent, in order, with only removable characters and
    # surrounding whitespace left out.
    assert content.startswith(kept), f"{kept[:80]!r} is not the start of {content[:80]!r}"
    # Cut short only by the cap: the next character that says something lies beyond it.
    rest = content[len(kept):]
    if rest.strip():
        assert len(kept) + len(rest) - len(rest.lstrip()) >= CAP


def assert_first_sanitized(raws: Iterable[bytes], kept: str | None) -> None:
    """For a repeated header: ``kept`` is the first value that says something, sanitized."""
    for raw in raws:
        if carries_a_value(raw):
            assert_sanitized(raw, kept)
            return
    assert kept is None
