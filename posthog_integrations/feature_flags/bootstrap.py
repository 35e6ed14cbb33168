"""posthog-js's ``bootstrap`` config from the request's flag snapshot, so a page renders its
flags at once instead of flickering while the browser asks PostHog for them.

The flags are read silently: rendering the bootstrap sends no ``$feature_flag_called`` and
marks no flag read, so none rides on the request's later events (the page has not read them).

``isIdentifiedID`` is true only when the context's distinct id was found for a logged-in user:
the scope holds a :class:`LazyIdentity` (the ``identify`` hook, the framework's user) whose
lookup found an id other than its fallback (the tracing header's anonymous id). A plain string
id reads as anonymous, because the engine cannot tell one set by ``identify_context()`` from
the tracing header's: pass ``identified=True`` then. Calling an identified user anonymous
costs nothing (posthog-js identifies them when the page calls ``posthog.identify``); the
reverse would stop posthog-js from linking the anonymous visitor to the user.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from posthog_integrations.core.context import (
    CLIENT,
    DISTINCT_ID,
    LazyIdentity,
    current_scope,
    get_context_distinct_id,
    get_context_session_id,
)

from .per_context import context_flags
from .snapshot import FlagSnapshot

if TYPE_CHECKING:
    from posthog_integrations.core.client import Client

logger = logging.getLogger("posthog_integrations")

# What could end the script element or open an HTML comment, and the line separators that end
# a JavaScript string literal in older engines, written as JSON escapes instead.
_UNSAFE_IN_SCRIPT = str.maketrans({
    "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029",
})


def bootstrap_data(snapshot: FlagSnapshot | None = None, *, client: Client | None = None,
                   identified: bool | None = None) -> dict[str, Any]:
    """posthog-js's ``bootstrap`` config: ``distinctID``, ``isIdentifiedID``,
    ``featureFlags``, ``featureFlagPayloads`` and ``sessionID`` (ids left out when unknown).

    ``snapshot`` defaults to the current context's (``flags()``, evaluated now if no flag was
    read yet) from ``client``, else the client the context is bound to; without either, no
    flags. Flags that could not be evaluated are left out, so posthog-js asks for them itself.
    ``identified`` overrides the rule in the module docstring.
    """
    if snapshot is None:
        scope = current_scope()
        if client is None and scope is not None:
            client = scope[CLIENT]  # type: ignore[assignment]
        snapshot = context_flags(client) if client is not None else FlagSnapshot()
    distinct_id = snapshot.distinct_id or get_context_distinct_id()
    data: dict[str, Any] = {}
    if distinct_id is not None:
        data["distinctID"] = distinct_id
        data["isIdentifiedID"] = identified if identified is not None else \
            _found_for_a_user(distinct_id)
    data["featureFlags"] = snapshot.values()
    data["featureFlagPayloads"] = snapshot.payloads()
    session_id = get_context_session_id()
    if session_id is not None:
        data["sessionID"] = session_id
    return data


def bootstrap_json(snapshot: FlagSnapshot | None = None, *, client: Client | None = None,
                   identified: bool | None = None) -> str:
    """:func:`bootstrap_data` as JSON safe inside ``<script>``: ``<``, ``>``, ``&``, U+2028
    and U+2029 are ``\\uXXXX`` escapes, so no value can close the element or open a comment.

    Never raises: on failure it logs and returns ``{}`` (posthog-js then starts unbootstrapped).
    """
    try:
        data = bootstrap_data(snapshot, client=client, identified=identified)
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except Exception:
        logger.warning("building the posthog-js bootstrap failed; the page gets {}",
                       exc_info=True)
        return "{}"
    return text.translate(_UNSAFE_IN_SCRIPT)


def _found_for_a_user(distinct_id: str) -> bool:
    scope = current_scope()
    identity = scope[DISTINCT_ID] if scope is not None else None
    if not isinstance(identity, LazyIdentity):
        return False
    found = identity.resolve()
    return found == distinct_id and found != identity.fallback()
