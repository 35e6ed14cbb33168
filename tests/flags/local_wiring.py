"""Definitions every local-evaluation wiring test shares, and what the tests count."""

from __future__ import annotations

from typing import Any

from posthog_integrations.sink import LocalSink

SECRET = "phx_wiring_secret_0123456789abcdefghij"

EVERYONE = {"id": 11, "key": "everyone", "active": True, "version": 3,
            "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
                        "payloads": {"true": "{\"color\": \"blue\"}"}}}
PRO_PLAN = {"id": 12, "key": "pro-plan", "active": True,
            "filters": {"groups": [{"properties": [{"key": "plan", "type": "person",
                                                     "operator": "exact", "value": ["pro"]}],
                                    "rollout_percentage": 100}]}}
COMPANY_BETA = {"id": 13, "key": "company-beta", "active": True,
                "filters": {"aggregation_group_type_index": 0,
                            "groups": [{"properties": [], "rollout_percentage": 100}]}}
STATIC_COHORT = {"id": 14, "key": "static-cohort", "active": True,
                 "filters": {"groups": [{"properties": [{"key": "id", "type": "cohort",
                                                         "value": 99}],
                                         "rollout_percentage": 100}]}}

ALL_LOCAL: dict[str, Any] = {"flags": [EVERYONE, PRO_PLAN, COMPANY_BETA],
                             "group_type_mapping": {"0": "company"}, "cohorts": {}}
"""Decided locally whenever ``plan`` is passed."""
WITH_STATIC_COHORT: dict[str, Any] = {**ALL_LOCAL, "flags": [*ALL_LOCAL["flags"], STATIC_COHORT]}
"""Plus a flag only the server can decide."""


def flags_requests(sink: LocalSink) -> list[Any]:
    """The /flags requests the sink received (not /flags/definitions)."""
    return [r for r in sink.requests() if r.path.rstrip("/") == "/flags"]


def plan_of(request: Any) -> dict[str, Any]:
    """A ``flag_person_properties`` hook: every request's user is on the pro plan."""
    return {"plan": "pro"}


def tenant_of(request: Any) -> dict[str, Any]:
    """A ``flag_groups`` hook: the request's tenant is a company."""
    return {"company": "acme"}
