"""``capture_immediate``: one event sent now, in the caller, for serverless handlers and for
events that must not wait for the queue.

The event is built exactly as :meth:`~posthog_integrations.Client.capture` builds it (context,
flags, ``before_send``, validation), then delivered through the sender's one delivery path, with
its retries, until an overall deadline. Every outcome is counted in stats.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Union

from .events import InvalidEvent
from .off_loop import run_off_loop

if TYPE_CHECKING:
    from posthog_integrations.feature_flags.snapshot import FlagSnapshot

    from .options import ClientOptions
    from .sender import Sender
    from .stats import Counters

logger = logging.getLogger("posthog_integrations")

Event = dict[str, Any]
# What preparing gives: the event to deliver, or the final answer when there is nothing to send.
Prepared = Union[Event, bool]


class ImmediateMethods:
    """Mixed into the client, which provides the attributes and the event plumbing below."""

    options: ClientOptions
    _disabled: bool
    _send: bool
    _sender: Sender
    _counters: Counters

    _recording: Callable[[], bool]
    _refused: Callable[[], str | None]
    _reject: Callable[[str, str], str | None]
    _failed: Callable[[str], str | None]
    _capture_event: Callable[..., Event]
    _admit: Callable[[Event], Event | None]
    _record: Callable[[Event], bool]

    def capture_immediate(
        self, event: str, *, distinct_id: Any = None,
        properties: Mapping[str, Any] | None = None, timestamp: Any = None, uuid: Any = None,
        groups: Mapping[str, Any] | None = None, disable_geoip: bool | None = None,
        flags: FlagSnapshot | None = None, timeout: float = 10.0,
    ) -> bool:
        """Send ``event`` now, in this thread, with retries, within ``timeout`` seconds in all;
        True when PostHog accepted it.

        Takes the arguments of :meth:`capture`. False when it was not delivered in time, was
        refused (invalid input, ``before_send``, a disabled or shut-down client) or the client
        does not send (``send=False``, no API key); while tests record events it is recorded
        and True. Never raises. In async code use :meth:`acapture_immediate`.
        """
        started = time.monotonic()
        prepared = self._prepare_immediate(
            event, distinct_id=distinct_id, properties=properties, timestamp=timestamp,
            uuid=uuid, groups=groups, disable_geoip=disable_geoip, flags=flags, timeout=timeout)
        if isinstance(prepared, bool):
            return prepared
        return self._sender.deliver_now([prepared], started + timeout)

    async def acapture_immediate(
        self, event: str, *, distinct_id: Any = None,
        properties: Mapping[str, Any] | None = None, timestamp: Any = None, uuid: Any = None,
        groups: Mapping[str, Any] | None = None, disable_geoip: bool | None = None,
        flags: FlagSnapshot | None = None, timeout: float = 10.0,
    ) -> bool:
        """:meth:`capture_immediate` without blocking the event loop.

        The event is built here, in the awaiting task's context; the delivery runs in a worker
        thread. Cancelling the awaiting task does not stop the delivery, which goes on (bounded
        by ``timeout``) and is counted in stats.
        """
        started = time.monotonic()
        prepared = self._prepare_immediate(
            event, distinct_id=distinct_id, properties=properties, timestamp=timestamp,
            uuid=uuid, groups=groups, disable_geoip=disable_geoip, flags=flags, timeout=timeout)
        if isinstance(prepared, bool):
            return prepared
        return await run_off_loop(lambda: self._sender.deliver_now([prepared], started + timeout))

    def _prepare_immediate(self, event: Any, *, timeout: Any, **arguments: Any) -> Prepared:
        """The admitted event, or the answer when it is refused, recorded or not to be sent."""
        if self._disabled and not self._recording():
            self._refused()
            return False
        try:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                    or not math.isfinite(timeout) or timeout < 0:
                self._reject("immediate timeout", "capture_immediate() needs a timeout of zero "
                             f"or more seconds, got {timeout!r}; the event was dropped")
                return False
            admitted = self._admit(self._capture_event(event, **arguments))
            if admitted is None:
                return False
            if self._record(admitted):
                return True
            if not self._send:
                self._counters.add("taken")
                logger.debug("capture_immediate(): this client does not send; %r not sent",
                             admitted.get("event"))
                return False
            return admitted
        except InvalidEvent as error:
            self._reject(error.kind, f"capture_immediate() refused an event: {error}")
        except Exception:
            self._failed("capture_immediate()")
        return False
