"""``aflush`` and ``ashutdown``: the client's flush and shutdown for asyncio apps."""

from __future__ import annotations

from typing import Callable

from .off_loop import wait_off_loop


class AsyncLifecycleMethods:
    """Mixed into the client, which provides the blocking :meth:`flush` and :meth:`shutdown`."""

    flush: Callable[[float], bool]
    shutdown: Callable[[float], bool]

    async def aflush(self, timeout: float = 10.0) -> bool:
        """:meth:`flush` without blocking the event loop: the same bound and result.

        Cancelling the awaiting task does not stop the flush, which goes on (bounded by
        ``timeout``) in a worker thread.
        """
        return await wait_off_loop(self.flush, timeout)

    async def ashutdown(self, timeout: float = 5.0) -> bool:
        """:meth:`shutdown` without blocking the event loop: the same bound and result.

        Cancelling the awaiting task does not stop the shutdown, which completes (bounded by
        ``timeout``) in a worker thread.
        """
        return await wait_off_loop(self.shutdown, timeout)
