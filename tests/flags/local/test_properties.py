"""``match_property``: every operator of spec §11 and every case the spec lists as verified."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from posthog_integrations.feature_flags.local.errors import (
    MISSING_CONTEXT,
    UNSUPPORTED_DEFINITION,
    Inconclusive,
)
from posthog_integrations.feature_flags.local.properties import OPERATORS, match_property

UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
MISSING = "missing"  # marks a case whose property is absent


def outcome(operator: Any, value: Any, person_value: Any, version: int = 1,
            now: datetime.datetime = NOW) -> Any:
    """The match as True/False, or the reason it is inconclusive."""
    filter = {"key": "k", "type": "person", "operator": operator, "value": value}
    properties = {} if person_value is MISSING else {"k": person_value}
    try:
        return match_property(filter, properties, matching_version=version, now=now)
    except Inconclusive as error:
        return error.reason


@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_an_absent_property_is_missing_context_for_every_operator(operator: str) -> None:
    valid_value = {"gt": 1, "gte": 1, "lt": 1, "lte": 1, "is_date_before": "2024-01-01",
                   "is_date_after": "-7d", "regex": "a"}.get(operator, "1.2.3")
    assert outcome(operator, valid_value, MISSING) == MISSING_CONTEXT


@pytest.mark.parametrize(("operator", "value"), [
    ("gt", "ten"), ("is_date_before", "yesterday"), ("semver_eq", "1.x"), ("regex", "(?=a)"),
    ("exact", float("nan")), ("icontains", float("inf")),
])
def test_a_filter_unusable_for_anyone_outranks_the_missing_property(operator: str,
                                                                     value: Any) -> None:
    assert outcome(operator, value, MISSING) == UNSUPPORTED_DEFINITION


@pytest.mark.parametrize("operator", ["in", "not_in", "contains", "flag_evaluates_to", "EXACT",
                                      ["exact"]])
def test_an_unknown_operator_is_an_unsupported_definition(operator: Any) -> None:
    assert outcome(operator, "x", "x") == UNSUPPORTED_DEFINITION
    assert outcome(operator, "x", MISSING) == UNSUPPORTED_DEFINITION


@pytest.mark.parametrize("filter", [{"key": "k", "value": "Pro"},
                                    {"key": "k", "value": "Pro", "operator": None}])
def test_a_missing_or_null_operator_is_exact(filter: dict[str, Any]) -> None:
    assert match_property(filter, {"k": "pro"}) is True
    assert match_property(filter, {"k": "team"}) is False


@pytest.mark.parametrize(("operator", "person_value", "expected"), [
    ("is_set", "x", True), ("is_set", None, True), ("is_set", MISSING, MISSING_CONTEXT),
    ("is_not_set", "x", False), ("is_not_set", None, False),
    ("is_not_set", MISSING, MISSING_CONTEXT),
])
def test_is_set_and_is_not_set(operator: str, person_value: Any, expected: Any) -> None:
    assert outcome(operator, "is_set", person_value) == expected


@pytest.mark.parametrize(("operator", "value", "expected"), [
    ("is_set", None, True), ("is_not_set", None, False),
    ("exact", "null", True), ("is_not", "null", False), ("exact", "pro", False),
    ("is_not", "pro", True), ("icontains", "NUL", True), ("not_icontains", "nul", False),
    ("starts_with", "nu", True), ("ends_with", "LL", True), ("regex", "^nul+$", True),
    ("not_regex", "^null$", False),
    ("gt", 0, False), ("lte", 0, False), ("is_date_before", "2030-01-01", False),
    ("is_date_after", "garbage", False), ("semver_gte", "0.0.0", False),
    ("semver_wildcard", "*", False),
])
def test_a_null_property(operator: str, value: Any, expected: Any) -> None:
    assert outcome(operator, value, None) == expected


@pytest.mark.parametrize(("value", "person_value", "expected"), [
    (["Pro", "team"], "pro", True),
    (["Pro", "team"], "enterprise", False),
    (5, "5", True),
    ("5", 5.0, False),
    ("5.0", 5.0, True),
    (["a"], ["a"], False),
    ('["a"]', ["a"], True),
    ('{"a":1,"b":[true,null]}', {"b": [True, None], "a": 1}, True),
    ("ÉTÉ", "été", True),  # exact lowercases all of Unicode, unlike the text operators
    ("1e+21", 1e21, True), ("1e-7", 1e-7, True), ("0.00001", 1e-5, True),
    ("0.000015", 1.5e-5, True), ("-0.0", -0.0, True), ("123456789", 123456789, True),
    ([1, "x"], "1", True),
])
def test_exact_compares_the_json_strings(value: Any, person_value: Any, expected: bool) -> None:
    assert outcome("exact", value, person_value) is expected
    assert outcome("is_not", value, person_value) is (not expected)


@pytest.mark.parametrize(("person_value", "expected"), [
    (True, True), ("true", True), ("TRUE", True), ([], True), ([True, "true"], True),
    (False, False), ("yes", False), (1, False), ([True, "no"], False), (None, False),
])
def test_an_empty_list_filter_matches_truthy_values_in_both_versions(person_value: Any,
                                                                     expected: bool) -> None:
    assert outcome("exact", [], person_value, version=1) is expected
    assert outcome("exact", [], person_value, version=2) is expected


@pytest.mark.parametrize(("value", "person_value", "legacy", "version_2"), [
    (False, "banana", True, False),  # spec §17.3
    (False, 0, True, False),
    (False, "", True, False),
    (False, None, True, False),
    (False, "false", True, True),
    (True, "True", True, True),
    (True, "yes", False, False),
    ("TRUE", True, True, True),
    (["true", "false"], "true", False, True),
    (["true", True], ["true"], True, False),
])
def test_matching_version_1_reads_boolean_like_filters_as_truthiness(
        value: Any, person_value: Any, legacy: bool, version_2: bool) -> None:
    assert outcome("exact", value, person_value, version=1) is legacy
    assert outcome("exact", value, person_value, version=3) is legacy  # not 2: legacy
    assert outcome("exact", value, person_value, version=2) is version_2


@pytest.mark.parametrize(("value", "person_value"), [
    ("x", float("nan")), ("x", float("inf")), ("x", {1: "a"}), ("x", object()),
    ("x", datetime.date(2024, 1, 1)), ("x", (1, 2)), ([], [float("nan")]),
])
def test_a_value_json_cannot_carry_is_missing_context(value: Any, person_value: Any) -> None:
    assert outcome("exact", value, person_value) == MISSING_CONTEXT
    assert outcome("icontains", value, person_value) == MISSING_CONTEXT


@pytest.mark.parametrize(("operator", "value", "person_value", "expected"), [
    ("icontains", "@X.com", "Ann@x.COM", True),
    ("icontains", "É", "é", False),  # ASCII-only lowercasing (spec §11, verified)
    ("icontains", "é", "É", False),
    ("icontains", "É", "ÉTÉ", True),
    ("not_icontains", "@x.com", "ann@y.com", True),
    ("not_icontains", "@x.com", "ann@X.com", False),
    ("starts_with", "AB", "abc", True), ("starts_with", "bc", "abc", False),
    ("not_starts_with", "AB", "abc", False), ("not_starts_with", "b", "abc", True),
    ("ends_with", "BC", "abc", True), ("ends_with", "ab", "abc", False),
    ("not_ends_with", "BC", "abc", False), ("not_ends_with", "x", "abc", True),
    ("icontains", "", "anything", True),
    ("icontains", 5, 1.5, True),
    ("icontains", "true", True, True),
    ("icontains", '"a"', ["a"], True),
    ("icontains", "İ", "i̇", False),
])
def test_text_operators(operator: str, value: Any, person_value: Any, expected: bool) -> None:
    assert outcome(operator, value, person_value) is expected


@pytest.mark.parametrize(("operator", "value", "person_value", "expected"), [
    ("gt", 10, 11, True), ("gt", 10, 10, False), ("gte", 10, 10, True), ("gte", 10, 9.5, False),
    ("lt", "10", "9", True), ("lt", 10, 10, False), ("lte", "1e1", 10, True),
    ("lte", 10, "10.5", False),
    ("gt", "+.5", "0.6", True), ("gt", "5.", "5.1", True), ("lt", "-1E-3", "-0.01", True),
    ("gt", 1, "abc", False), ("gt", 0, True, False), ("gt", 0, None, False),
    ("gt", 0, {"a": 1}, False), ("gt", 0, [1], False), ("gt", 0, " 5", False),
    ("gt", 0, "1e400", False), ("gt", 0, float("inf"), False), ("gt", 0, "0x10", False),
    ("gt", 2**53, 2**53 + 1, False),  # compared as floats, like the service
    ("gt", "abc", 1, UNSUPPORTED_DEFINITION), ("gt", True, 1, UNSUPPORTED_DEFINITION),
    ("gt", None, 1, UNSUPPORTED_DEFINITION), ("gt", float("nan"), 1, UNSUPPORTED_DEFINITION),
    ("gt", "1e400", 1, UNSUPPORTED_DEFINITION), ("lt", [1], 1, UNSUPPORTED_DEFINITION),
    ("gt", "abc", None, UNSUPPORTED_DEFINITION),
])
def test_numeric_operators(operator: str, value: Any, person_value: Any, expected: Any) -> None:
    assert outcome(operator, value, person_value) == expected


@pytest.mark.parametrize(("operator", "value", "person_value", "expected"), [
    ("is_date_before", "-7d", "2000-01-01", True),  # spec §11.2, verified
    ("is_date_after", "2024-01-01", "2024-01-01T00:00:01", True),  # spec §11.2, verified
    ("is_date_after", "2024-01-01", "2024-01-01", False),  # strict
    ("is_date_before", "2024-01-01", "2024-01-01", False),
    ("is_date_before", "2024-01-01T10:00:00+02:00", "2024-01-01T07:59:59Z", True),
    ("is_date_before", "2024-01-01T10:00:00+02:00", "2024-01-01 08:00:00 UTC", False),
    ("is_date_after", "2024-01-01 10:00 +02:00", "2024-01-01T08:00:01", True),
    ("is_date_after", "2024-01-01", datetime.datetime(2024, 1, 1, 0, 0, 1), True),
    ("is_date_after", "2024-01-01", datetime.datetime(2024, 1, 1, 0, 0, 1,
                                                      tzinfo=datetime.timezone(
                                                          datetime.timedelta(hours=1))), False),
    ("is_date_after", "2024-01-01T23:00:00", datetime.date(2024, 1, 2), True),
    ("is_date_before", "2024-01-01T23:00:00", datetime.date(2024, 1, 1), False),
    ("is_date_before", "2024", "2024-03-30", True),  # a bare year takes today's month and day
    ("is_date_before", "2024", "2024-03-31T00:00:01", False),
    ("is_date_before", "-1h", "2024-03-31T10:59:59Z", True),
    ("is_date_before", "-1h", "2024-03-31T11:00:00Z", False),
    ("is_date_after", "1d", "2024-03-30T12:00:01Z", True),
    ("is_date_after", "-2w", "2024-03-17T12:00:01Z", True),
    ("is_date_after", "-2w", "2024-03-17T12:00:00Z", False),
    ("is_date_before", "1y", "2023-03-31T11:59:59Z", True),
    ("is_date_before", "yesterday", "2024-01-01", UNSUPPORTED_DEFINITION),
    ("is_date_before", "-7x", "2024-01-01", UNSUPPORTED_DEFINITION),
    ("is_date_before", "-7d\n", "2000-01-01", UNSUPPORTED_DEFINITION),
    ("is_date_before", "-10000d", "2024-01-01", UNSUPPORTED_DEFINITION),
    ("is_date_before", "-9999y", "2024-01-01", UNSUPPORTED_DEFINITION),
    ("is_date_before", "2024-02-30", "2024-01-01", UNSUPPORTED_DEFINITION),
    ("is_date_before", True, "2024-01-01", UNSUPPORTED_DEFINITION),
    ("is_date_before", "2024-01-01", "next week", MISSING_CONTEXT),
    ("is_date_before", "2024-01-01", "-7d", MISSING_CONTEXT),  # relative only in filters
    ("is_date_before", "2024-01-01", 20240101, MISSING_CONTEXT),
    ("is_date_before", "2024-01-01", True, MISSING_CONTEXT),
    ("is_date_before", "2024-01-01", "20240101", MISSING_CONTEXT),  # basic form: the server's
])
def test_date_operators(operator: str, value: Any, person_value: Any, expected: Any) -> None:
    assert outcome(operator, value, person_value) == expected


@pytest.mark.parametrize(("now", "value", "first_day_after"), [
    # Month subtraction clamps the day in every month it passes (spec §11.2).
    (datetime.datetime(2023, 3, 31, tzinfo=UTC), "-2m", datetime.datetime(2023, 1, 28)),
    (datetime.datetime(2024, 3, 31, tzinfo=UTC), "-1m", datetime.datetime(2024, 2, 29)),
    (datetime.datetime(2024, 3, 31, tzinfo=UTC), "-2m", datetime.datetime(2024, 1, 29)),
    (datetime.datetime(2024, 1, 31, tzinfo=UTC), "1m", datetime.datetime(2023, 12, 31)),
    (datetime.datetime(2024, 5, 31, tzinfo=UTC), "3m", datetime.datetime(2024, 2, 29)),
    (datetime.datetime(2024, 2, 29, tzinfo=UTC), "-1y", datetime.datetime(2023, 2, 28)),
    (datetime.datetime(2024, 2, 29, tzinfo=UTC), "-4y", datetime.datetime(2020, 2, 28)),
    (datetime.datetime(2024, 3, 31, tzinfo=UTC), "-1y", datetime.datetime(2023, 3, 31)),
    (datetime.datetime(2024, 2, 29, tzinfo=UTC), "0y", datetime.datetime(2024, 2, 29)),
    (datetime.datetime(2024, 3, 15, 6, tzinfo=UTC), "-12m", datetime.datetime(2023, 3, 15, 6)),
])
def test_relative_months_and_years_clamp_the_day(now: datetime.datetime, value: str,
                                                  first_day_after: datetime.datetime) -> None:
    boundary = first_day_after.isoformat()
    assert outcome("is_date_after", value, boundary, now=now) is False
    assert outcome("is_date_before", value, boundary, now=now) is False
    later = (first_day_after + datetime.timedelta(microseconds=1)).isoformat()
    assert outcome("is_date_after", value, later, now=now) is True


def test_relative_dates_count_back_from_the_current_time_by_default() -> None:
    filter = {"key": "k", "operator": "is_date_after", "value": "-1h"}
    just_now = datetime.datetime.now(UTC) - datetime.timedelta(minutes=1)
    assert match_property(filter, {"k": just_now.isoformat()}) is True
    assert match_property(filter, {"k": "2000-01-01"}) is False


def test_a_naive_now_is_read_as_utc() -> None:
    naive = datetime.datetime(2024, 3, 31, 12, 0)
    assert outcome("is_date_after", "-1h", "2024-03-31T11:00:01Z", now=naive) is True


@pytest.mark.parametrize(("operator", "value", "person_value", "expected"), [
    ("semver_gt", "1.2.3", "v1.10.0", True),  # spec §11.4, verified
    ("semver_eq", "1.2", "1.2.0-beta", True),  # spec §11.4, verified
    ("semver_eq", "1.2.3", " V1.2.3+build.7 ", True),
    ("semver_neq", "1.2.3", "1.2.4", True), ("semver_neq", "1.2.3", "1.2.3", False),
    ("semver_gte", "1.2.3", "1.2.3", True), ("semver_lt", "1.2.3", "1.2.3", False),
    ("semver_lte", "2", "1.99.99", True), ("semver_lt", "0.0.1", "0.0.0", True),
    ("semver_eq", "1.2.3.4", "1.2.3", True),
    ("semver_tilde", "1.2.3", "1.2.9", True), ("semver_tilde", "1.2.3", "1.3.0", False),
    ("semver_tilde", "1.2.3", "1.2.2", False),
    ("semver_caret", "1.2.3", "1.99.0", True), ("semver_caret", "1.2.3", "2.0.0", False),
    ("semver_caret", "0.2.3", "0.2.9", True), ("semver_caret", "0.2.3", "0.3.0", False),
    ("semver_caret", "0.0.3", "0.0.3", True), ("semver_caret", "0.0.3", "0.0.4", False),
    ("semver_wildcard", "1.*", "1.9.9", True), ("semver_wildcard", "1.*", "2.0.0", False),
    ("semver_wildcard", "1.2.*", "1.2.7", True), ("semver_wildcard", "1.2.*", "1.3.0", False),
    ("semver_wildcard", "1.2.3", "1.2.3-rc.1", True),
    ("semver_wildcard", "1.2.3", "1.2.4", False),
    ("semver_wildcard", "1.*.*", "1.5.0", True),
    ("semver_eq", "01.2.3", "1.2.3", UNSUPPORTED_DEFINITION),
    ("semver_eq", "1.x", "1.2.3", UNSUPPORTED_DEFINITION),
    ("semver_tilde", "~1.2.3", "1.2.3", UNSUPPORTED_DEFINITION),
    ("semver_wildcard", "*", "1.2.3", UNSUPPORTED_DEFINITION),
    ("semver_wildcard", "1*2", "12.0.0", UNSUPPORTED_DEFINITION),
    ("semver_wildcard", "1.2.3.*", "1.2.3", UNSUPPORTED_DEFINITION),
    ("semver_wildcard", "1.*.3", "1.3.0", UNSUPPORTED_DEFINITION),
    ("semver_eq", "1.2.3", "1.02.3", MISSING_CONTEXT),
    ("semver_eq", "1.2.3", "\u0661.\u0662.\u0663", MISSING_CONTEXT),  # ASCII digits only
    ("semver_eq", "1.2.3", True, MISSING_CONTEXT),
    ("semver_eq", "1.2.3", "", MISSING_CONTEXT),
    ("semver_eq", "1", 1, True),
])
def test_semver_operators(operator: str, value: Any, person_value: Any, expected: Any) -> None:
    assert outcome(operator, value, person_value) == expected


@pytest.mark.parametrize(("value", "person_value", "expected"), [
    ("", "anything", True),
    ("^a.c$", "abc", True), ("b", "abc", True), ("^b", "abc", False), ("B", "abc", False),
    (r"\d{3}-\d{4}", "call 555-1234", True), (r"^[a-z]+@(?:x|y)\.com$", "ann@y.com", True),
    ("colou?r", "color", True), ("a|b", "c", False), (r"\.", "a.b", True), (r"\x41", "A", True),
    ("c$", "abc\n", False),  # $ is the very end of the text, as on the server
    ("^$", "", True), (5, "v5", True), (1.5, "x1.5", True),
    (r"\w+", "été", True), (r"\s", "a b", True), (r"\d", "٣", True),
    ("a+?b", "aab", True), ("a{2}?", "aa", True), ("(ab)+", "abab", True), ("(?:)", "", True),
])
def test_regex_searches_case_sensitively(value: Any, person_value: Any, expected: bool) -> None:
    assert outcome("regex", value, person_value) is expected
    assert outcome("not_regex", value, person_value) is (not expected)


@pytest.mark.parametrize("pattern", [
    "(a", "[a-", "a{2,1}", "*a", "a)", "\\", "[z-a]", "a|*", ")?", "())",
])
def test_an_invalid_regex_matches_nothing_negated_or_not(pattern: str) -> None:
    assert outcome("regex", pattern, "a") is False
    assert outcome("not_regex", pattern, "a") is False


@pytest.mark.parametrize("pattern", [
    "(?=a)", "(?!a)", "(?<=a)b", "(?i)a", "(?P<n>a)", "(?>a)", r"\bcat\b", r"\B", r"\<a", r"a\>",
    r"\A", r"\z", r"\Z", r"\1", r"\p{L}", r"\u0041", r"\x{41}", r"\xZZ", r"\a", r"\v", r"\é",
    "(a+)+", "(a*)*b", "((a+))*", "(a|b+){2}", "a{2}+", "a*+", "a++", "a?+", "a**", "a+*",
    "a{2}{3}", "a{1001}", "a{1,2000}", "^*", "$+", "()*", "(?:)+", "{2}", "a{", "a{x}",
    "x{,3}", "[[:alpha:]]", "[a[b]]", "[a&&b]", "[a--b]", "[a~~b]", "[a||b]", "[]a]", "[^]a]",
    r"[a-\d]", r"[\d-z]", r"[\b]", r"[\A]", r"[\q]", "a\ud800",
])
def test_a_regex_the_engines_read_differently_is_left_to_the_server(pattern: str) -> None:
    assert outcome("regex", pattern, "a") == UNSUPPORTED_DEFINITION
    assert outcome("not_regex", pattern, "a") == UNSUPPORTED_DEFINITION
    assert outcome("regex", pattern, MISSING) == UNSUPPORTED_DEFINITION


@pytest.mark.parametrize(("pattern", "person_value"), [
    (r"\w", "naïve\u0301"),  # a combining mark: a word character for Rust only
    (r"\W", "a\u200d"),  # a joiner
    (r"a\w", "a²"),  # other numbers: word characters for Python only
    (r"\s", "a\x1cb"),  # file separators: whitespace for Python only
    (r"\S", "\x1f"),
    ("a$|b", "a\n"), ("a+$", "aa\n"),
    (".", "a\ud800"),
])
def test_a_text_the_engines_read_differently_is_left_to_the_server(pattern: str,
                                                                   person_value: str) -> None:
    assert outcome("regex", pattern, person_value) == UNSUPPORTED_DEFINITION


@pytest.mark.parametrize(("value", "person_value", "expected"), [
    (True, "true", True),  # the JSON string: "true", not Python's "True"
    (None, "null", True),
    (["a"], '["a"]', True),
])
def test_a_regex_filter_that_is_not_a_string_is_its_json_string(value: Any, person_value: str,
                                                                expected: bool) -> None:
    assert outcome("regex", value, person_value) is expected


def test_the_property_key_of_another_type_is_looked_up_as_is() -> None:
    assert match_property({"key": "k", "operator": "exact", "value": 1}, {"k": 1}) is True
    with pytest.raises(Inconclusive) as raised:
        match_property({"key": ["k"], "operator": "exact", "value": 1}, {"k": 1})
    assert raised.value.reason == MISSING_CONTEXT
