"""Semantic versions for the ``semver_*`` operators: (major, minor, patch) and the range forms."""

from __future__ import annotations

import functools

Version = tuple[int, int, int]
Range = tuple[Version, Version]
"""A lower bound (included) and an upper bound (excluded)."""

_LONGEST_CACHED = 64


def parse_version(text: str) -> Version | None:
    """``(major, minor, patch)`` from text like ``v1.2.3-beta+build``; None when it is none.

    Whitespace and leading ``v``/``V`` go, ``-prerelease`` and ``+build`` are dropped, a
    missing minor or patch is 0, parts after the third are ignored; every part is ASCII digits
    without a leading zero.
    """
    return _cached_parse(text) if len(text) <= _LONGEST_CACHED else _parse_version(text)


def _parse_version(text: str) -> Version | None:
    core = text.strip().lstrip("vV").split("-", 1)[0].split("+", 1)[0]
    major_text, minor_text, patch_text = [*core.split("."), "", ""][:3]
    major = _number(major_text)
    minor = _number(minor_text) if minor_text else 0
    patch = _number(patch_text) if patch_text else 0
    if major is None or minor is None or patch is None:
        return None
    return major, minor, patch


_cached_parse = functools.lru_cache(maxsize=1024)(_parse_version)


def _number(part: str) -> int | None:
    if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part[0] == "0"):
        return None
    return int(part)


@functools.lru_cache(maxsize=1024)
def version_range(operator: str, text: str) -> Range | None:
    """The versions ``semver_tilde``/``semver_caret``/``semver_wildcard`` with ``text`` accept."""
    if operator == "semver_wildcard":
        return _wildcard(text)
    version = parse_version(text)
    if version is None:
        return None
    major, minor, patch = version
    if operator == "semver_tilde":
        return version, (major, minor + 1, 0)
    if major > 0:
        return version, (major + 1, 0, 0)
    if minor > 0:
        return version, (0, minor + 1, 0)
    return version, (0, 0, patch + 1)


def _wildcard(text: str) -> Range | None:
    """``X.*``, ``X.Y.*`` or ``X.Y.Z`` (stars may be left out or repeated up to three parts)."""
    parts = text.strip().lstrip("vV").split(".")
    if len(parts) > 3:
        return None
    while len(parts) > 1 and parts[-1] == "*":
        parts.pop()
    fixed = []
    for part in parts:
        number = _number(part)
        if number is None:
            return None
        fixed.append(number)
    lower = fixed + [0] * (3 - len(fixed))
    upper = list(lower)
    upper[len(fixed) - 1] += 1
    return (lower[0], lower[1], lower[2]), (upper[0], upper[1], upper[2])
