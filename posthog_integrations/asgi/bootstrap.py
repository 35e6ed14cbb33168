"""posthog-js's bootstrap config as a Jinja global for Starlette / FastAPI templates::

    templates = Jinja2Templates(directory="templates")
    templates.env.globals["posthog_bootstrap"] = posthog_bootstrap

and in the template, inside ``<script>``: ``posthog.init("phc_...", {bootstrap:
{{ posthog_bootstrap() }}})``. In an ``async def`` endpoint, ``await
posthog_integrations.aflags()`` before rendering, so the render reads the flags from memory
instead of blocking the event loop.
"""

from __future__ import annotations

import posthog_integrations
from posthog_integrations.feature_flags.bootstrap import bootstrap_json

try:
    from markupsafe import Markup
except ImportError:  # no Jinja here: a plain string, which the caller must not escape
    Markup = str  # type: ignore[misc,assignment]


def posthog_bootstrap(identified: bool | None = None) -> str:
    """The current request's bootstrap JSON, escaped for ``<script>`` (see
    :func:`~posthog_integrations.feature_flags.bootstrap.bootstrap_json`), as ``Markup``."""
    return Markup(bootstrap_json(posthog_integrations.flags(), identified=identified))
