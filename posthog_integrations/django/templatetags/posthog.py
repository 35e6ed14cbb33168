"""``{% load posthog %}``: posthog-js's bootstrap config for the request being rendered.

``posthog.init("phc_...", {bootstrap: {% posthog_bootstrap %}})`` inside a ``<script>``, or
``{% posthog_bootstrap as bootstrap %}`` to place it later. In an async view, ``await
posthog_integrations.aflags()`` before rendering, so the render does not block the event loop.
"""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

import posthog_integrations
from posthog_integrations.feature_flags.bootstrap import bootstrap_json

register = template.Library()


@register.simple_tag
def posthog_bootstrap(identified: bool | None = None) -> SafeString:
    """The bootstrap JSON (see :func:`bootstrap_json`), escaped for ``<script>`` and only then
    marked safe; ``identified=True`` after ``identify_context()``."""
    # Safe to mark: bootstrap_json escapes every character that could end the script element.
    return mark_safe(
        bootstrap_json(posthog_integrations.flags(), identified=identified))
