"""Groups and person properties the current request gives its flags (the ``flag_groups`` and
``flag_person_properties`` request options), so that views need not pass them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from posthog_integrations.core.context import OWNER, current_scope, get_context_distinct_id


class FlagInputs(NamedTuple):
    """What a request's hooks said about its person: group type → group key, and properties."""

    groups: Mapping[str, Any]
    person_properties: Mapping[str, Any]


def request_flag_inputs(distinct_id: str) -> FlagInputs | None:
    """The current request's flag inputs when flags are evaluated for the request's own person
    (they describe that person only); None outside a request or without the hooks.

    The request context (the scope's owner, inherited by contexts opened inside it) computes
    them on first use, at most once per request.
    """
    scope = current_scope()
    if scope is None:
        return None
    read = getattr(scope[OWNER], "flag_inputs", None)
    if read is None or get_context_distinct_id() != distinct_id:
        return None
    inputs: FlagInputs | None = read()
    return inputs
