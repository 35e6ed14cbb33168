from __future__ import annotations

from typing import Any

import pytest

from posthog_integrations.feature_flags.local.definitions import parse_definitions
from posthog_integrations.feature_flags.local.errors import (
    MISSING_CONTEXT,
    UNSUPPORTED_DEFINITION,
    worst,
)


def test_definitions_keep_every_readable_flag_by_key() -> None:
    definitions = parse_definitions({
        "flags": [{"key": "a", "active": True}, {"no": "key"}, "junk", {"key": "b"}],
        "group_type_mapping": {"0": "company"},
        "cohorts": {"42": {"type": "OR", "values": []}, "7": "junk"},
        "property_matching_version": 2,
    })
    assert list(definitions.flags) == ["a", "b"]
    assert definitions.group_type_mapping == {"0": "company"}
    assert list(definitions.cohorts) == ["42"]
    assert definitions.property_matching_version == 2


@pytest.mark.parametrize("version", [None, 1, 3, "2"])
def test_any_matching_version_but_2_is_the_legacy_one(version: Any) -> None:
    assert parse_definitions({"flags": [], "property_matching_version": version}) \
        .property_matching_version == 1


@pytest.mark.parametrize("data", [[], "x", {"flags": {}}, {"flags": [], "cohorts": []}])
def test_a_top_level_that_is_not_a_definitions_answer_is_refused(data: Any) -> None:
    with pytest.raises(ValueError):
        parse_definitions(data)


def test_the_reason_reported_is_the_first_by_precedence() -> None:
    assert worst([MISSING_CONTEXT, UNSUPPORTED_DEFINITION]) == UNSUPPORTED_DEFINITION
