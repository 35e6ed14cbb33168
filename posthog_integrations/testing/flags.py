"""Answer every flag evaluation in the process from fixed values, with no request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from posthog_integrations.feature_flags.overrides import FlagOverrides, push

FlagValues = Mapping[str, Any]


def override_flags(flags: FlagValues, payloads: Mapping[str, Any] | None = None
                   ) -> AbstractContextManager[None]:
    """While the block lasts, every client answers flag evaluations from ``flags``.

    ``flags`` maps each flag key to ``True``, ``False`` or a variant string; ``payloads`` maps
    enabled flags to JSON-serialisable payloads. A flag left out reads as missing (its default,
    ``$feature_flag_error`` ``flag_missing``). Disabled clients and clients without an API key
    answer too; no request is made; reads send ``$feature_flag_called`` as usual (see
    ``capture_events()``). Blocks nest: the inner one answers alone while it lasts. Bad values
    raise TypeError or ValueError here, at the call.
    """
    return _overriding(FlagOverrides(flags, payloads))


@contextmanager
def _overriding(flag_overrides: FlagOverrides) -> Iterator[None]:
    layer = push(flag_overrides)
    try:
        yield
    finally:
        layer.remove()


class FlagOverrideControl:
    """The ``posthog_flags`` fixture: flags under the test's control, every one missing at first."""

    def __init__(self) -> None:
        self._layer = push(FlagOverrides())

    def set(self, flags: FlagValues, payloads: Mapping[str, Any] | None = None) -> None:
        """Answer from ``flags`` (and ``payloads``) from now on, in place of the previous set."""
        self._layer.replace(FlagOverrides(flags, payloads))

    def clear(self) -> None:
        """Every flag reads as missing again (still without any request)."""
        self._layer.replace(FlagOverrides())

    def close(self) -> None:
        """End the override: flags are evaluated for real again."""
        self._layer.remove()
