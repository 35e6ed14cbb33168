"""One person or group property filter against the properties at hand (spec §11)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Callable, Optional

from posthog_integrations.feature_flags.local.dates import filter_date, person_date
from posthog_integrations.feature_flags.local.errors import (
    MISSING_CONTEXT,
    UNSUPPORTED_DEFINITION,
    Inconclusive,
)
from posthog_integrations.feature_flags.local.regex import check_pattern, regex_matches
from posthog_integrations.feature_flags.local.semver import parse_version, version_range
from posthog_integrations.feature_flags.local.values import (
    as_text,
    ascii_lower,
    is_boolean_like,
    is_truthy,
    parse_number,
)

_Now = Optional[datetime.datetime]
_Operator = Callable[[str, Any, Any, int, _Now], bool]


def match_property(filter: Mapping[str, Any], properties: Mapping[str, Any], *,
                   matching_version: int = 1, now: datetime.datetime | None = None) -> bool:
    """Whether ``properties`` satisfy one ``person``/``group`` property ``filter``.

    Raises ``Inconclusive``: ``unsupported_definition`` for an operator or a filter value this
    evaluator cannot use, ``missing_context`` when the property is absent (whatever the
    operator, ``is_not_set`` included) or its value cannot be read for the operator.
    ``matching_version`` is the definitions' ``property_matching_version`` (2 turns off the
    legacy boolean reading of ``exact``); ``now`` (aware, UTC by default) anchors relative dates.
    """
    operator = filter.get("operator") or "exact"
    match = _OPERATORS.get(operator) if isinstance(operator, str) else None
    if match is None:
        raise Inconclusive(UNSUPPORTED_DEFINITION)
    value = filter.get("value")
    try:
        try:
            person_value = properties[filter.get("key")]  # type: ignore[index]
        except (KeyError, TypeError):
            raise Inconclusive(MISSING_CONTEXT) from None
        return match(operator, value, person_value, matching_version, now)
    except Inconclusive as error:
        if error.reason == MISSING_CONTEXT:
            _check_filter(operator, value, now)  # a filter we cannot use is the worse reason
        raise


def _is_set(operator: str, value: Any, person_value: Any, version: int, now: _Now) -> bool:
    return operator == "is_set"


def _exact(operator: str, value: Any, person_value: Any, version: int, now: _Now) -> bool:
    matched = _exact_match(value, person_value, version)
    return matched if operator == "exact" else not matched


def _exact_match(value: Any, person_value: Any, version: int) -> bool:
    person_text = as_text(person_value, MISSING_CONTEXT).lower()
    if value == []:
        return is_truthy(person_value)
    if version != 2 and is_boolean_like(value):
        return is_truthy(value) == is_truthy(person_value)
    if isinstance(value, list):
        matched = False
        for item in value:  # every item, so that an unusable one is found even after a match
            text = item if isinstance(item, str) else as_text(item, UNSUPPORTED_DEFINITION)
            matched = matched or text.lower() == person_text
        return matched
    return as_text(value, UNSUPPORTED_DEFINITION).lower() == person_text


def _text(operator: str, value: Any, person_value: Any, version: int, now: _Now) -> bool:
    person_text = ascii_lower(as_text(person_value, MISSING_CONTEXT))
    filter_text = ascii_lower(as_text(value, UNSUPPORTED_DEFINITION))
    if operator.endswith("icontains"):
        matched = filter_text in person_text
    elif operator.endswith("starts_with"):
        matched = person_text.startswith(filter_text)
    else:
        matched = person_text.endswith(filter_text)
    return not matched if operator[:4] == "not_" else matched


def _regex(operator: str, value: Any, person_value: Any, version: int, now: _Now) -> bool:
    person_text = as_text(person_value, MISSING_CONTEXT)
    matched = regex_matches(as_text(value, UNSUPPORTED_DEFINITION), person_text)
    if matched is None:
        return False  # an invalid pattern matches nothing, negated or not
    return not matched if operator == "not_regex" else matched


def _number(operator: str, value: Any, person_value: Any, version: int, now: _Now) -> bool:
    bound = parse_number(value)
    if bound is None:
        raise Inconclusive(UNSUPPORTED_DEFINITION)
    number = parse_number(person_value)
    if number is None:
        return False
    if operator == "gt":
        return number > bound
    if operator == "gte":
        return number >= bound
    if operator == "lt":
        return number < bound
    return number <= bound


def _date(operator: str, value: Any, person_value: Any, version: int, now: _Now) -> bool:
    if person_value is None:
        return False
    current = _utc_now(now)
    bound = filter_date(value, current)
    date = person_date(person_value, current)
    if not isinstance(date, datetime.datetime):
        return date < bound.date() if operator == "is_date_before" else date > bound.date()
    return date < bound if operator == "is_date_before" else date > bound


def _semver(operator: str, value: Any, person_value: Any, version: int, now: _Now) -> bool:
    if person_value is None:
        return False
    if operator in _SEMVER_RANGES:
        accepted = version_range(operator, as_text(value, UNSUPPORTED_DEFINITION))
        if accepted is None:
            raise Inconclusive(UNSUPPORTED_DEFINITION)
        return accepted[0] <= _person_version(person_value) < accepted[1]
    bound = parse_version(as_text(value, UNSUPPORTED_DEFINITION))
    if bound is None:
        raise Inconclusive(UNSUPPORTED_DEFINITION)
    person_version = _person_version(person_value)
    return _SEMVER_COMPARISONS[operator](person_version, bound)


def _person_version(person_value: Any) -> tuple[int, int, int]:
    parsed = parse_version(as_text(person_value, MISSING_CONTEXT))
    if parsed is None:
        raise Inconclusive(MISSING_CONTEXT)
    return parsed


def _utc_now(now: _Now) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    return now if now.tzinfo is not None else now.replace(tzinfo=datetime.timezone.utc)


def _check_filter(operator: str, value: Any, now: _Now) -> None:
    """Raise ``Inconclusive(unsupported_definition)`` when the filter is unusable for anyone."""
    if operator in ("exact", "is_not"):
        for item in value if isinstance(value, list) else [value]:
            as_text(item, UNSUPPORTED_DEFINITION)
    elif operator in ("regex", "not_regex"):
        check_pattern(as_text(value, UNSUPPORTED_DEFINITION))
    elif _OPERATORS[operator] is _text:
        as_text(value, UNSUPPORTED_DEFINITION)
    elif _OPERATORS[operator] is _number:
        _number(operator, value, None, 1, now)
    elif _OPERATORS[operator] is _date:
        filter_date(value, _utc_now(now))
    elif operator in _SEMVER_RANGES:
        if version_range(operator, as_text(value, UNSUPPORTED_DEFINITION)) is None:
            raise Inconclusive(UNSUPPORTED_DEFINITION)
    elif operator in _SEMVER_COMPARISONS and parse_version(
            as_text(value, UNSUPPORTED_DEFINITION)) is None:
        raise Inconclusive(UNSUPPORTED_DEFINITION)


_SEMVER_RANGES = frozenset(("semver_tilde", "semver_caret", "semver_wildcard"))
_SEMVER_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "semver_eq": lambda person, bound: person == bound,
    "semver_neq": lambda person, bound: person != bound,
    "semver_gt": lambda person, bound: person > bound,
    "semver_gte": lambda person, bound: person >= bound,
    "semver_lt": lambda person, bound: person < bound,
    "semver_lte": lambda person, bound: person <= bound,
}
_OPERATORS: dict[str, _Operator] = {
    "exact": _exact, "is_not": _exact,
    "is_set": _is_set, "is_not_set": _is_set,
    **dict.fromkeys(("icontains", "not_icontains", "starts_with", "not_starts_with",
                     "ends_with", "not_ends_with"), _text),
    "regex": _regex, "not_regex": _regex,
    **dict.fromkeys(("gt", "gte", "lt", "lte"), _number),
    "is_date_before": _date, "is_date_after": _date,
    **dict.fromkeys((*_SEMVER_RANGES, *_SEMVER_COMPARISONS), _semver),
}
OPERATORS = frozenset(_OPERATORS)
"""Every property operator this evaluator decides."""
