"""Server-side feature flags, evaluated remotely by PostHog's ``/flags`` endpoint.

``Client.evaluate_flags()`` returns a :class:`FlagSnapshot`: one request, then every read is
answered from memory. Nothing in this package raises into the application.
"""

from __future__ import annotations

from .evaluator import FlagEvaluator, PendingEvaluation
from .snapshot import FlagSnapshot

__all__ = ["FlagEvaluator", "FlagSnapshot", "PendingEvaluation"]
