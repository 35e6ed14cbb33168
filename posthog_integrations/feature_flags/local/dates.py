"""Dates for ``is_date_before`` / ``is_date_after``: relative filter dates and ISO strings."""

from __future__ import annotations

import calendar
import datetime
import functools
import re
from typing import Any, Union

from posthog_integrations.feature_flags.local.errors import (
    MISSING_CONTEXT,
    UNSUPPORTED_DEFINITION,
    Inconclusive,
)

_UTC = datetime.timezone.utc
_RELATIVE = re.compile(r"-?([0-9]+)([hdwmy])")
_BARE_YEAR = re.compile(r"[0-9]{4}")
_ISO = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[Tt ](?P<hour>[0-9]{2})(?::(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]+))?)?)?"
    r"(?: ?(?P<sign>[+-])(?P<offset_hours>[0-9]{2}):(?P<offset_minutes>[0-9]{2}))?)?"
)
_LONGEST_ISO = 64
_MAX_RELATIVE = 10_000
_SHORTEST_MONTH = 28


class _Relative:
    """A filter date counted back from now: ``amount`` hours/days/weeks/months/years."""

    __slots__ = ("amount", "unit")

    def __init__(self, amount: int, unit: str) -> None:
        self.amount = amount
        self.unit = unit


class _BareYear:
    """A filter date of only a year: that year on today's month and day."""

    __slots__ = ("year",)

    def __init__(self, year: int) -> None:
        self.year = year


_Parsed = Union[datetime.datetime, _Relative, _BareYear, None]


def filter_date(value: Any, now: datetime.datetime) -> datetime.datetime:
    """The aware datetime a date filter names; ``Inconclusive`` when it names none."""
    parsed = _parse_filter(value if isinstance(value, str) else str(value))
    resolved = _resolve(parsed, now)
    if resolved is None:
        raise Inconclusive(UNSUPPORTED_DEFINITION)
    return resolved


def person_date(value: Any, now: datetime.datetime) -> datetime.datetime | datetime.date:
    """A person's date value: an aware datetime, or a date (compared by the filter's date).

    Only ISO strings are read (relative forms are for filters); anything else is
    ``Inconclusive`` (missing context).
    """
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        resolved = _resolve(_parse_absolute(value.strip()), now)
        if resolved is not None:
            return resolved
    raise Inconclusive(MISSING_CONTEXT)


def _resolve(parsed: _Parsed, now: datetime.datetime) -> datetime.datetime | None:
    if isinstance(parsed, _Relative):
        return _count_back(now, parsed.amount, parsed.unit)
    if isinstance(parsed, _BareYear):
        today = now.astimezone(_UTC)
        try:
            return datetime.datetime(parsed.year, today.month, today.day, tzinfo=_UTC)
        except ValueError:  # February 29 in a common year
            return None
    return parsed


@functools.lru_cache(maxsize=1024)
def _parse_filter(text: str) -> _Parsed:
    relative = _RELATIVE.fullmatch(text)
    if relative is not None and int(relative.group(1)) < _MAX_RELATIVE:
        return _Relative(int(relative.group(1)), relative.group(2))
    return _parse_absolute(text.strip())


def _parse_absolute(text: str) -> _Parsed:
    """An ISO date or datetime (``Z``, `` UTC``, `` +HH:MM`` accepted; naive is UTC)."""
    return _parse_iso(text) if len(text) <= _LONGEST_ISO else None


@functools.lru_cache(maxsize=1024)
def _parse_iso(text: str) -> _Parsed:
    if _BARE_YEAR.fullmatch(text):
        return _BareYear(int(text)) if int(text) >= 1 else None
    if text.endswith("Z"):
        text, utc = text[:-1], True
    elif text[-4:].upper() == " UTC":
        text, utc = text[:-4], True
    else:
        utc = False
    match = _ISO.fullmatch(text)
    if match is None or (utc and match.group("sign")):
        return None
    part = match.group
    fraction = (part("fraction") or "")[:6].ljust(6, "0")
    try:
        return datetime.datetime(
            int(part("year")), int(part("month")), int(part("day")),
            int(part("hour") or 0), int(part("minute") or 0), int(part("second") or 0),
            int(fraction), tzinfo=_offset(match))
    except ValueError:
        return None


def _offset(match: re.Match[str]) -> datetime.tzinfo:
    if match.group("sign") is None:
        return _UTC
    if int(match.group("offset_minutes")) >= 60:
        raise ValueError("offset minutes out of range")
    minutes = int(match.group("offset_hours")) * 60 + int(match.group("offset_minutes"))
    return datetime.timezone(datetime.timedelta(
        minutes=-minutes if match.group("sign") == "-" else minutes))


def _count_back(now: datetime.datetime, amount: int, unit: str) -> datetime.datetime | None:
    if unit == "h":
        return now - datetime.timedelta(hours=amount)
    if unit == "d":
        return now - datetime.timedelta(days=amount)
    if unit == "w":
        return now - datetime.timedelta(weeks=amount)
    if unit == "m":
        return _months_back(now, amount)
    return _years_back(now, amount)


def _months_back(now: datetime.datetime, months: int) -> datetime.datetime | None:
    """``now`` minus whole months, clamping the day in every month passed on the way."""
    index = now.year * 12 + now.month - 1
    target = index - months
    year, month = divmod(target, 12)
    if not datetime.MINYEAR <= year <= datetime.MAXYEAR:
        return None
    day = now.day
    while index > target and day > _SHORTEST_MONTH:
        index -= 1
        day = min(day, calendar.monthrange(index // 12, index % 12 + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def _years_back(now: datetime.datetime, years: int) -> datetime.datetime | None:
    """``now`` minus whole years; February 29 becomes the 28th (the year before has none)."""
    year = now.year - years
    if not datetime.MINYEAR <= year <= datetime.MAXYEAR:
        return None
    day = _SHORTEST_MONTH if years and (now.month, now.day) == (2, 29) else now.day
    return now.replace(year=year, day=day)
