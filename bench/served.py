"""The Starlette app that the real-server benchmark runs under uvicorn, one process per variant.

``BENCH_VARIANT`` picks the wrapping: ``bare`` (none), ``ours`` or ``official``; the client
delivers to ``BENCH_HOST`` with ``BENCH_API_KEY``.
"""

from __future__ import annotations

import os
from typing import Any

from .variants import STARLETTE_ROUTE, build_starlette_app, variant_named

_name = os.environ.get("BENCH_VARIANT", "bare")
_client: Any = None
if _name != "bare":
    _variant = variant_named(_name)
    _client = _variant.make_client(os.environ["BENCH_HOST"], os.environ["BENCH_API_KEY"])
app = build_starlette_app(None if _name == "bare" else _variant, _client)
__all__ = ["STARLETTE_ROUTE", "app"]
