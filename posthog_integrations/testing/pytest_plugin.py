"""pytest plugin, registered by entry point: the ``posthog_events`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .recording import CapturedEvents


@pytest.fixture
def posthog_events() -> Iterator[CapturedEvents]:
    """The events captured during the test, by any client, recorded instead of sent."""
    from .recording import capture_events  # imported when used: every pytest run loads this

    with capture_events() as events:
        yield events
