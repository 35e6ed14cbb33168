"""The Flask app that the gunicorn benchmark serves, one server process per variant.

``BENCH_VARIANT`` picks the wrapping: ``bare`` (none), ``ours`` or ``official``; the client
delivers to ``BENCH_HOST`` with ``BENCH_API_KEY``.
"""

from __future__ import annotations

import os
from typing import Any

from .variants import build_flask_app, variant_named

__all__ = ["app"]

_name = os.environ.get("BENCH_VARIANT", "bare")
_client: Any = None
_variant = None
if _name != "bare":
    _variant = variant_named(_name)
    _client = _variant.make_client(os.environ["BENCH_HOST"], os.environ["BENCH_API_KEY"])
app = build_flask_app(_variant, _client)
