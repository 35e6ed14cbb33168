"""The definitions answer of ``/flags/definitions``, read once per poll into one immutable value."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

EMPTY_MAPPING: Mapping[str, Any] = types.MappingProxyType({})


@dataclasses.dataclass(frozen=True)
class FlagDefinitions:
    """Every flag by key, the group type names by index, the cohorts by id.

    Flags and cohorts are kept as the server sent them (JSON objects); the engine reads them.
    ``property_matching_version`` 2 turns off the legacy boolean shortcut of ``exact``.
    """

    flags: Mapping[str, Mapping[str, Any]]
    group_type_mapping: Mapping[str, str]
    cohorts: Mapping[str, Mapping[str, Any]]
    property_matching_version: int = 1


NO_DEFINITIONS = FlagDefinitions(EMPTY_MAPPING, EMPTY_MAPPING, EMPTY_MAPPING)
"""What a client knows after a 401 or 402: no flag at all."""


def parse_definitions(data: Any) -> FlagDefinitions:
    """Read a definitions answer; ``ValueError`` when its top level is not one.

    A flag that is not an object with a string ``key`` is left out; a flag with a malformed body
    is kept and left to the engine, which finds it undecidable alone.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"the definitions are a {type(data).__name__}, not a JSON object")
    raw_flags = data.get("flags", [])
    if not isinstance(raw_flags, list):
        raise ValueError("the definitions' flags are not a list")
    flags = {flag["key"]: flag for flag in raw_flags
             if isinstance(flag, Mapping) and isinstance(flag.get("key"), str)}
    mapping = data.get("group_type_mapping")
    cohorts = data.get("cohorts")
    mapping = {} if mapping is None else mapping
    cohorts = {} if cohorts is None else cohorts
    if not isinstance(mapping, Mapping) or not isinstance(cohorts, Mapping):
        raise ValueError("the definitions' group_type_mapping and cohorts must be objects")
    version = data.get("property_matching_version")
    return FlagDefinitions(
        flags=types.MappingProxyType(flags),
        group_type_mapping=types.MappingProxyType(
            {str(index): str(name) for index, name in mapping.items()}),
        cohorts=types.MappingProxyType(
            {str(cohort_id): cohort for cohort_id, cohort in cohorts.items()
             if isinstance(cohort, Mapping)}),
        property_matching_version=2 if version == 2 else 1,
    )
