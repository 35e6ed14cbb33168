"""``$route`` for Starlette and FastAPI: the matched route's template, as OpenAPI writes it.

Every request to one endpoint gets the same value, so PostHog can group by it: mount prefixes
are templates too (``/users/{user_id}/orders/{order_id}``, never ``/users/7/...``), convertors
are left out (``{item_id:int}`` is ``{item_id}``, the form FastAPI's OpenAPI schema and docs
show), and the server's ``root_path`` is not part of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

# A path parameter with its convertor, as Starlette's routing parses it.
_CONVERTOR = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*):[a-zA-Z_][a-zA-Z0-9_]*\}")


def without_convertors(template: str) -> str:
    """``/items/{item_id:int}`` -> ``/items/{item_id}``."""
    return _CONVERTOR.sub(r"{\1}", template)


def route_template(scope: MutableMapping[str, Any], root_path: str) -> str | None:
    """The template of the route the request matched, or None when none is known.

    ``root_path`` is the one the request arrived with: routing appends what each ``Mount``
    matched to ``scope["root_path"]``, so anything beyond it means the route is mounted.
    """
    try:
        template = _matched_template(scope, root_path)
    except Exception:  # an exotic route object must not break error reporting
        return None
    return without_convertors(template) if template else None


def _matched_template(scope: MutableMapping[str, Any], root_path: str) -> str | None:
    route = scope.get("route")  # the innermost matched route (Starlette 1.x, FastAPI)
    template = getattr(route, "path", None)
    own = template if isinstance(template, str) else None
    mounted = (scope.get("root_path") or "") != root_path
    if own is not None and not mounted:
        return own
    # Mounted (the prefix in the scope holds the values, not the template) or an older
    # Starlette that does not name the route: match as the router did, joining templates.
    routes = getattr(scope.get("router"), "routes", ())
    return _match_template(routes, scope, root_path, "") or own


def _match_template(routes: Iterable[Any], scope: MutableMapping[str, Any], root_path: str,
                    prefix: str) -> str | None:
    probe = {"type": scope["type"], "path": scope["path"], "root_path": root_path,
             "method": scope.get("method")}
    for route in routes:
        match, child = route.matches(probe)
        if match.name != "FULL":
            continue
        template = prefix + str(getattr(route, "path", ""))  # a Host adds no path
        inner = getattr(route, "routes", None)
        if not inner:
            return template
        found = _match_template(inner, scope, child.get("root_path", root_path), template)
        return found or template
    return None
