"""pytest plugin, registered by entry point: the ``posthog_events`` and ``posthog_flags``
fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .flags import FlagOverrideControl
    from .recording import CapturedEvents


@pytest.fixture
def posthog_events() -> Iterator[CapturedEvents]:
    """The events captured during the test, by any client, recorded instead of sent."""
    from .recording import capture_events  # imported when used: every pytest run loads this

    with capture_events() as events:
        yield events


@pytest.fixture
def posthog_flags() -> Iterator[FlagOverrideControl]:
    """Flags answered by every client from ``posthog_flags.set({...})``, with no request.

    Every flag reads as missing until ``set()``; ``clear()`` goes back to that. Removed after
    the test.
    """
    from .flags import FlagOverrideControl

    control = FlagOverrideControl()
    try:
        yield control
    finally:
        control.close()
