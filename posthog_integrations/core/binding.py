"""Carry the current context into work that runs later, in a pool thread, a thread or a task.

``ThreadPoolExecutor.submit``, ``loop.run_in_executor`` and ``threading.Thread`` run a function
in the worker thread's own ``contextvars`` context, so it sees no PostHog context. A function
wrapped by :func:`bind_context` where the context is open brings a snapshot of it along.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Generator
from typing import Any, Callable, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def bind_context(function: F) -> F:
    """``function``, run in a snapshot of the current context, wherever and whenever it is called.

    The snapshot is the whole ``contextvars`` context at the time of binding, as
    ``asyncio.to_thread`` and ``asyncio`` tasks carry it: the PostHog context (identity,
    session, tags, bound client) and your own context variables. Each call runs in its own
    copy of the snapshot, so one bound function may run in many threads at once and call
    itself; what a call sets (tags, identity, variables) stays in that call. Bound outside any
    PostHog context, calls run outside any. Arguments, result and exceptions pass through
    unchanged; an exception is not captured here (the caller's context decides).

    ``async def`` functions stay coroutine functions: every step of the coroutine runs in the
    snapshot. So does every step of a generator. Async generators are refused.
    """
    if inspect.isasyncgenfunction(function):
        raise TypeError(
            f"bind_context() cannot bind the async generator {function!r}: its steps cannot "
            "run in a context of their own. Bind the coroutine function that consumes it."
        )
    snapshot = contextvars.copy_context()

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            own = snapshot.copy()
            return await _Awaiting(own, own.run(function, *args, **kwargs))

        return cast(F, run_async)
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def run_generator(*args: Any, **kwargs: Any) -> Any:
            own = snapshot.copy()
            return steps_in(own, own.run(function, *args, **kwargs))

        return cast(F, run_generator)

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        return snapshot.copy().run(function, *args, **kwargs)

    return cast(F, run)


def steps_in(context: contextvars.Context, steps: Any) -> Generator[Any, Any, Any]:
    """Drive the generator or coroutine ``steps``, each step in ``context``; pass on what it
    yields (an ``asyncio`` future, say) and what comes back, thrown exceptions included."""
    advance: Callable[[Any], Any] = steps.send
    argument: Any = None
    while True:
        try:
            item = context.run(advance, argument)
        except StopIteration as stop:
            return stop.value
        try:
            argument = yield item
            advance = steps.send
        except GeneratorExit:
            context.run(steps.close)
            raise
        except BaseException as thrown:  # thrown in by the consumer, or a task's cancellation
            advance, argument = steps.throw, thrown


class _Awaiting:
    """Awaiting it runs the coroutine ``steps`` step by step in ``context``."""

    __slots__ = ("_context", "_steps")

    def __init__(self, context: contextvars.Context, steps: Any) -> None:
        self._context = context
        self._steps = steps

    def __await__(self) -> Generator[Any, Any, Any]:
        return steps_in(self._context, self._steps)
