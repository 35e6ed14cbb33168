"""Benchmarks of posthog_integrations against the official ``posthog`` package.

Run with ``python -m bench`` (``--quick`` for a short smoke run); see ``bench/__main__.py``.
"""

from __future__ import annotations
