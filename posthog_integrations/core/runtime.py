"""What the hosting process can tell us about running a background thread in it."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

_ON = frozenset({"1", "true", "yes", "on"})


def uwsgi_options() -> Mapping[str, Any] | None:
    """uWSGI's options (``uwsgi.opt``) when this process is a uWSGI worker, else None."""
    uwsgi = sys.modules.get("uwsgi")  # uWSGI puts it there; it cannot be imported elsewhere
    if uwsgi is None:
        return None
    options = getattr(uwsgi, "opt", None)
    return options if isinstance(options, Mapping) else {}


def uwsgi_threads_enabled(options: Mapping[str, Any]) -> bool:
    """Whether uWSGI with ``options`` runs Python threads (``enable-threads``, or ``threads``)."""
    return _is_on(options.get("enable-threads")) or _count(options.get("threads")) > 1


def _is_on(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_is_on(item) for item in value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value is True or (isinstance(value, str) and value.strip().lower() in _ON)


def _count(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return int(value) if isinstance(value, (str, int)) else 0
    except ValueError:
        return 0
