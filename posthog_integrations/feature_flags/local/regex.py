"""``regex`` / ``not_regex``: the plain regular expressions Python and the server read alike.

The server matches with a Rust engine. A pattern is searched here only when every part of it
means the same thing to both engines; anything else is ``Inconclusive`` (unsupported
definition), so the server decides. A pattern neither engine accepts matches nothing.
"""

from __future__ import annotations

import functools
import re
from typing import Union

from posthog_integrations.feature_flags.local.errors import UNSUPPORTED_DEFINITION, Inconclusive

_SHARED_ESCAPES = frozenset("dDsSwWfnrt")
_CLASS_PUNCTUATION = frozenset("\\-[]^.$*+?(){}|")
_CLASS_SHORTHANDS = frozenset("dDsSwW")
_SET_OPERATIONS = ("&&", "--", "~~", "||")
_HEX = frozenset("0123456789abcdefABCDEF")
_REPETITION = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")
_MAX_REPETITION = 1000
_FILE_SEPARATORS = frozenset("\x1c\x1d\x1e\x1f")
_SURROGATES = re.compile("[\ud800-\udfff]")


class Unsupported(Exception):
    """The pattern uses something the two engines read differently."""


class SharedPattern:
    """A compiled pattern and what it uses that depends on the searched text."""

    __slots__ = ("compiled", "end_anchor_repeats", "uses_space_class", "uses_word_class")

    def __init__(self, compiled: re.Pattern[str], scan: _Scan) -> None:
        self.compiled = compiled
        self.uses_word_class = scan.uses_word_class
        self.uses_space_class = scan.uses_space_class
        # A repeat or an alternation before the strict $ makes a text ending in a newline the
        # server's to decide (spec §11.3).
        self.end_anchor_repeats = scan.uses_end_anchor and scan.repeats_or_alternates


_INVALID = "invalid"
_UNSUPPORTED = "unsupported"
_Compiled = Union[SharedPattern, str]


def regex_matches(pattern: str, text: str) -> bool | None:
    """Whether ``pattern`` occurs in ``text`` (case-sensitive); None when the pattern is invalid.

    Raises ``Inconclusive(UNSUPPORTED_DEFINITION)`` when the engines could disagree.
    """
    if not pattern:
        return True
    compiled = compile_shared(pattern)
    if compiled is _INVALID:
        return None
    if not isinstance(compiled, SharedPattern):
        raise Inconclusive(UNSUPPORTED_DEFINITION)
    _check_text(compiled, text)
    return compiled.compiled.search(text) is not None


def check_pattern(pattern: str) -> None:
    """Raise ``Inconclusive`` when ``pattern`` cannot be decided here whatever the text."""
    if pattern and compile_shared(pattern) is _UNSUPPORTED:
        raise Inconclusive(UNSUPPORTED_DEFINITION)


@functools.lru_cache(maxsize=512)
def compile_shared(pattern: str) -> _Compiled:
    """The pattern compiled for Python, ``"invalid"``, or ``"unsupported"``."""
    scan = _Scan(pattern)
    try:
        translated = scan.translate()
    except Unsupported:
        return _UNSUPPORTED
    try:
        return SharedPattern(re.compile(translated), scan)
    except re.error:
        return _INVALID
    except (RecursionError, OverflowError, MemoryError):
        return _UNSUPPORTED


def _check_text(pattern: SharedPattern, text: str) -> None:
    if pattern.end_anchor_repeats and text.endswith("\n"):
        raise Inconclusive(UNSUPPORTED_DEFINITION)
    if not text.isascii():
        if _SURROGATES.search(text) is not None:
            raise Inconclusive(UNSUPPORTED_DEFINITION)
        # The engines agree on letters and decimal digits only: Rust's \w adds marks and
        # joiners, Python's adds other numbers.
        if pattern.uses_word_class and not all(
                char.isascii() or char.isalpha() or char.isdecimal() for char in text):
            raise Inconclusive(UNSUPPORTED_DEFINITION)
    if pattern.uses_space_class and not _FILE_SEPARATORS.isdisjoint(text):
        raise Inconclusive(UNSUPPORTED_DEFINITION)


class _Scan:
    """One pass over a pattern: rejects what the engines read differently, translates ``$``.

    ``previous`` is what the last token was: "start" (nothing yet, or after ``(`` or ``|``),
    "atom", "anchor", "empty group", "quantifier" or "lazy quantifier".
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.index = 0
        self.out: list[str] = []
        self.previous = "start"
        self.groups: list[bool] = []  # per open group: whether it repeats something inside
        self.closed_group_repeats = False
        self.uses_word_class = False
        self.uses_space_class = False
        self.uses_end_anchor = False
        self.repeats_or_alternates = False

    def translate(self) -> str:
        if _SURROGATES.search(self.pattern) is not None:
            raise Unsupported
        while self.index < len(self.pattern):
            char = self.pattern[self.index]
            if char == "[":
                self._class()
            elif char == "\\":
                self.out.append(self._escape(in_class=False))
                self._atom()
            elif char in "*+?":
                self._quantifier(char)
            elif char == "{":
                self._repetition()
            else:
                self._other(char)
            self.index += 1
        return "".join(self.out)

    def _atom(self, closed_group_repeats: bool = False) -> None:
        self.previous = "atom"
        self.closed_group_repeats = closed_group_repeats

    def _other(self, char: str) -> None:
        if char == "(":
            if self.pattern.startswith("(?", self.index):
                if not self.pattern.startswith("(?:", self.index):
                    raise Unsupported  # look-arounds, inline flags, named groups
                self.out.append("(?:")
                self.index += 2
            else:
                self.out.append("(")
            self.groups.append(False)
            self.previous = "start"
            return
        self.out.append(r"\Z" if char == "$" else char)
        if char == ")":
            if not self.groups:
                self._atom()  # unbalanced: an error for both engines (left to re.compile)
                return
            empty = self.previous in ("start", "empty group") and self.out[-2:-1] != ["|"]
            inner = self.groups.pop()
            if self.groups:
                self.groups[-1] = self.groups[-1] or inner
            if empty:
                self.previous = "empty group"
            else:
                self._atom(closed_group_repeats=inner)
        elif char == "|":
            self.repeats_or_alternates = True
            self.previous = "start"
        elif char in "^$":
            self.uses_end_anchor = self.uses_end_anchor or char == "$"
            self.previous = "anchor"
        else:
            self._atom()

    def _quantifier(self, char: str) -> None:
        if self.previous == "quantifier" and char == "?":
            self.previous = "lazy quantifier"
            self.out.append(char)
            return
        self._repeat()
        self.out.append(char)

    def _repetition(self) -> None:
        found = _REPETITION.match(self.pattern, self.index)
        if found is None or any(int(bound) > _MAX_REPETITION for bound in found.groups() if bound):
            raise Unsupported  # Python reads a stray brace as a literal, Rust as an error
        if self.previous == "start":
            raise Unsupported
        self._repeat()
        self.out.append(found.group())
        self.index = found.end() - 1

    def _repeat(self) -> None:
        if self.previous == "start":
            self.previous = "quantifier"  # nothing to repeat: an error for both engines
            return
        if self.previous != "atom" or self.closed_group_repeats:
            # Stacked or possessive quantifiers, repeated anchors or empty groups, and
            # repetition of a group that repeats inside (backtracking blow-ups).
            raise Unsupported
        self.repeats_or_alternates = True
        if self.groups:
            self.groups[-1] = True
        self.previous = "quantifier"

    def _escape(self, *, in_class: bool) -> str:
        self.index += 1
        if self.index == len(self.pattern):
            return "\\"  # a trailing backslash: an error for both engines
        char = self.pattern[self.index]
        if char == "x":
            digits = self.pattern[self.index + 1:self.index + 3]
            if len(digits) != 2 or not _HEX.issuperset(digits):
                raise Unsupported
            self.index += 2
            return "\\x" + digits
        if char in _SHARED_ESCAPES:
            self.uses_word_class = self.uses_word_class or char in "wW"
            self.uses_space_class = self.uses_space_class or char in "sS"
        elif in_class and char not in _CLASS_PUNCTUATION:
            raise Unsupported
        elif not ("!" <= char <= "~" or char == " ") or char.isalnum() or char in "<>":
            raise Unsupported  # \b \B \< \> \A \z \1 \p ... and non-ASCII escapes
        return "\\" + char

    def _class(self) -> None:
        start = self.index
        self.out.append("[")
        self.index += 1
        if self.pattern.startswith("^", self.index):
            self.out.append("^")
            self.index += 1
        if self.pattern.startswith("]", self.index):
            raise Unsupported  # a leading ] is a literal for Python, an empty class for Rust
        while self.index < len(self.pattern):
            char = self.pattern[self.index]
            if char == "]":
                self._atom()
                self.out.append("]")
                return
            if char == "[" or self.pattern.startswith(_SET_OPERATIONS, self.index):
                raise Unsupported  # nested classes and set operations
            if char == "-":
                self._check_range_end(start)
            self.out.append(self._escape(in_class=True) if char == "\\" else char)
            self.index += 1
        self.index -= 1  # unclosed: re.compile reports it

    def _check_range_end(self, start: int) -> None:
        """Ranges ending or starting at a shorthand class (``[a-\\d]``) are read differently."""
        after = self.pattern[self.index + 1:self.index + 3]
        before = self.pattern[max(start + 1, self.index - 2):self.index]
        if (len(after) == 2 and after[0] == "\\" and after[1] in _CLASS_SHORTHANDS) or (
                len(before) == 2 and before[0] == "\\" and before[1] in _CLASS_SHORTHANDS):
            raise Unsupported
