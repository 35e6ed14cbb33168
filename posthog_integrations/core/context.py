"""The context engine: who, which session and which tags ride on every event captured inside.

A scope is an immutable value in one ``ContextVar``. Entering a context installs a child scope
that starts from its parent's values (or from nothing when ``fresh``); every setter installs a
new scope instead of changing the current one; leaving resets the variable by token. So an
``asyncio`` task or a copied context that tags never changes its parent, threads never share
state, and reading the state at capture time is one lookup, never a walk up a chain.
"""

from __future__ import annotations

import abc
import contextvars
import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from typing import Any, Callable, Final, Optional, Protocol, TypeVar, Union, cast

from .binding import steps_in

logger = logging.getLogger("posthog_integrations")

F = TypeVar("F", bound=Callable[..., Any])
_WARNING_INTERVAL = 60.0
_NO_TAGS: Mapping[str, Any] = {}


class ExceptionCapturer(Protocol):
    """What a context needs of a client to report an exception escaping it."""

    def _capture_escaped(
        self, error: BaseException, source: str | None,
        properties: Mapping[str, Any] | None = None,
    ) -> str | None: ...


class LazyIdentity:
    """A context's distinct id, found on first use: subclass it and implement :meth:`find`.

    Adapters install a request's identity this way when finding it costs something (loading
    the logged-in user), so a request that captures nothing never pays for it. It stands in the
    distinct id's place in a scope; :func:`distinct_id_of` reads either. Found once: ``find``
    runs once (a failing one is logged and counts as no id; two threads asking at the same
    moment may both run it), and a capture made while it runs in the same thread, say by the
    app's own login code, gets :meth:`fallback`.
    """

    __slots__ = ("_finder", "_found", "_state")
    _found: str | None  # set once _state is 2
    _finder: int  # the thread looking it up, set before _state becomes 1

    def __init__(self) -> None:
        self._state = 0  # 0: not looked up yet, 1: being looked up, 2: found

    @abc.abstractmethod
    def find(self) -> str | None:
        """The distinct id, looked up now; called once, on first use."""

    def fallback(self) -> str | None:
        """The id to use while :meth:`find` runs (and the one it usually falls back to)."""
        return None

    def resolve(self) -> str | None:
        if self._state == 2:
            return self._found
        me = threading.get_ident()
        if self._state == 1 and self._finder == me:  # asked again while finding: reentrant
            return self.fallback()
        self._finder = me
        self._state = 1
        try:
            found = self.find()
        except Exception:
            logger.exception("finding the context's distinct id failed; its events go without")
            found = None
        self._found = found or None
        self._state = 2
        return self._found

    def __bool__(self) -> bool:
        return self.resolve() is not None

    def __str__(self) -> str:
        return self.resolve() or ""

    def __repr__(self) -> str:
        return f"LazyIdentity({self._found!r})" if self._state == 2 else \
            "LazyIdentity(not looked up)"


def distinct_id_of(scope: Scope | None) -> str | None:
    """The distinct id of ``scope``, looking it up first if it is a :class:`LazyIdentity`."""
    if scope is None:
        return None
    found = scope[DISTINCT_ID]
    return found if found is None or isinstance(found, str) else found.resolve()


# The state of one context: (distinct_id, session_id, tags, client, owner[, flags]). A plain
# tuple, never mutated, and its tags dict is never changed after the scope is installed. Plain
# tuples rather than a NamedTuple because every setter builds one: this halves the cost of a
# request's context. The owner is what the context belongs to, such as an adapter's request;
# every context opened inside inherits it, so adapters need no context variable of their own.
# The distinct id is a string, None, or a LazyIdentity looked up when an event or a flag first
# needs it. The optional sixth member is the context's flag cache: a dict, shared with every
# child context, from distinct id to the flags read in it (see feature_flags.per_context).
# Setters here carry it over; a scope built without it gets one on its first flags() call.
Scope = Union[
    tuple[Union[str, LazyIdentity, None], Optional[str], Mapping[str, Any],
          Optional[ExceptionCapturer], object],
    tuple[Union[str, LazyIdentity, None], Optional[str], Mapping[str, Any],
          Optional[ExceptionCapturer], object, dict[str, Any]],
]
DISTINCT_ID: Final = 0
SESSION_ID: Final = 1
TAGS: Final = 2
CLIENT: Final = 3
OWNER: Final = 4
FLAGS: Final = 5

_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "posthog_integrations.scope", default=None
)
current_scope = _current.get
_install = _current.set
# A context's own say on capturing local variables with its exceptions (None: the client
# decides). A variable of its own rather than a member of the scope tuple, which every setter
# rebuilds: only a context opened with the switch pays for it.
_code_variables: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "posthog_integrations.code_variables", default=None
)
code_variables_switch = _code_variables.get
_default_client: Callable[[], ExceptionCapturer] | None = None


class LazyTags(Mapping[str, Any]):
    """Tags computed on first use, then fixed: subclass it and implement :meth:`compute`.

    Adapters install a request's tags this way, so a request that captures nothing never pays
    for reading its URL and headers. A failing ``compute`` is logged and yields no tags.
    """

    __slots__ = ("_tags",)

    def __init__(self) -> None:
        self._tags: Mapping[str, Any] | None = None

    @abc.abstractmethod
    def compute(self) -> Mapping[str, Any]:
        """The tags, computed once; called on first use."""

    @property
    def computed(self) -> bool:
        return self._tags is not None

    def resolve(self) -> Mapping[str, Any]:
        tags = self._tags
        if tags is None:
            try:
                tags = self.compute()
            except Exception:
                logger.exception("computing a context's tags failed; its events go without them")
                tags = {}
            self._tags = tags
        return tags

    def __getitem__(self, name: str) -> Any:
        return self.resolve()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())

    def __repr__(self) -> str:
        return f"LazyTags({dict(self._tags) if self._tags is not None else 'not computed'})"


def use_default_client(getter: Callable[[], ExceptionCapturer]) -> None:
    """Tell the engine where exceptions go from contexts bound to no client."""
    global _default_client
    _default_client = getter


class new_context:  # lower case: used like a function, as contextlib.suppress is
    """Open a context: ``with new_context(): tag("plan", "pro"); capture(...)``.

    The child inherits its parent's distinct id, session and tags unless ``fresh``. With
    ``client``, module-level calls inside go to that client. An exception escaping the block is
    captured once (``handled: false``) when ``capture_exceptions``, then re-raised unchanged.
    ``capture_exception_code_variables`` turns the capture of local variables with exceptions
    on (or off) inside, whatever the client's option says; None leaves it as it is.
    Do not hold one open across a generator's ``yield``: between items it would be the
    consumer's context too. Decorate the generator with :func:`scoped` instead.
    """

    __slots__ = ("_capture_exceptions", "_client", "_code_variables", "_code_variables_token",
                 "_exception_source", "_fresh", "_token")

    def __init__(
        self,
        *,
        fresh: bool = False,
        capture_exceptions: bool = True,
        client: ExceptionCapturer | None = None,
        exception_source: str | None = None,
        capture_exception_code_variables: bool | None = None,
    ) -> None:
        self._fresh = fresh
        self._capture_exceptions = capture_exceptions
        self._client = client
        self._exception_source = exception_source
        switch: object = capture_exception_code_variables
        if switch is not None and not isinstance(switch, bool):
            logger.warning("new_context(capture_exception_code_variables=...) takes True, False "
                           "or None, got a %s; ignoring it", type(switch).__name__)
            capture_exception_code_variables = None
        self._code_variables = capture_exception_code_variables

    def __enter__(self) -> new_context:
        parent = current_scope()
        if parent is None:
            self._token = _install((None, None, _NO_TAGS, self._client, None, {}))
        elif self._fresh:
            self._token = _install(
                (None, None, _NO_TAGS, self._client or parent[3], parent[4], {})
            )
        elif self._client is None:
            self._token = _install(parent)  # the same state: scopes are never mutated
        else:
            client = self._client
            if len(parent) > FLAGS:
                self._token = _install(
                    (parent[0], parent[1], parent[2], client, parent[4], parent[5])
                )
            else:
                self._token = _install((parent[0], parent[1], parent[2], client, parent[4]))
        if self._code_variables is not None:
            self._code_variables_token = _code_variables.set(self._code_variables)
        return self

    def __exit__(self, exc_type: Any, error: BaseException | None, traceback: Any) -> None:
        if error is not None and self._capture_exceptions and isinstance(error, Exception):
            self._report(error)  # before the reset, so the event carries this context's state
        restore(self._token)
        if self._code_variables is not None:
            try:
                _code_variables.reset(self._code_variables_token)
            except (ValueError, RuntimeError):
                _report_crossed_contexts()

    def _report(self, error: BaseException) -> None:
        scope = current_scope()
        client = scope[CLIENT] if scope is not None else None
        if client is None and _default_client is not None:
            client = _default_client()
        if client is not None:
            client._capture_escaped(error, self._exception_source)


def scoped(
    *,
    fresh: bool = False,
    capture_exceptions: bool = True,
    client: ExceptionCapturer | None = None,
    capture_exception_code_variables: bool | None = None,
) -> Callable[[F], F]:
    """Run every call of the decorated function, sync or ``async def``, in a new context.

    For coroutine functions the context wraps the execution of the body, not the creation of
    the coroutine. A generator runs every step (and its clean-up when closed) in a
    ``contextvars`` context of its own, copied from its consumer's when it is first resumed, so
    nothing it sets between two items reaches the code consuming it. Async generators are
    refused: their steps cannot be run in a context of their own.
    """

    def decorate(function: F) -> F:
        if inspect.isasyncgenfunction(function):
            raise TypeError(
                f"@scoped cannot wrap the async generator {function.__qualname__}: a context "
                "held open across its yields would leak into the code consuming it. Open "
                "`with new_context():` around the loop that consumes it, or inside the body "
                "between two yields, never across a yield."
            )
        options = {"fresh": fresh, "capture_exceptions": capture_exceptions, "client": client,
                   "capture_exception_code_variables": capture_exception_code_variables}
        if inspect.isgeneratorfunction(function):

            @functools.wraps(function)
            def run_generator(*args: Any, **kwargs: Any) -> Any:
                return _steps_in_own_context(functools.partial(function, *args, **kwargs),
                                             new_context(**options))  # type: ignore[arg-type]

            return cast(F, run_generator)
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with new_context(**options):  # type: ignore[arg-type]
                    return await function(*args, **kwargs)

            return cast(F, run_async)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with new_context(**options):  # type: ignore[arg-type]
                return function(*args, **kwargs)

        return cast(F, run)

    return decorate


def _steps_in_own_context(make: Callable[[], Generator[Any, Any, Any]],
                          context: new_context) -> Generator[Any, Any, Any]:
    """The generator ``make()`` returns, with ``context`` open around it and every step run in
    a ``contextvars`` context of its own: what it sets never reaches whoever resumes it."""
    own = contextvars.copy_context()
    own.run(context.__enter__)
    escaped: BaseException | None = None
    try:
        return (yield from steps_in(own, own.run(make)))
    except BaseException as error:
        escaped = error
        raise
    finally:
        own.run(context.__exit__, type(escaped) if escaped else None, escaped, None)


activate: Callable[[Scope], contextvars.Token[Scope | None]] = _install
"""Install a scope as the current state; undo with :func:`restore`.

For adapters that must re-enter a request's context from another frame, such as a WSGI server
iterating the response after the application returned.
"""


def restore(token: contextvars.Token[Scope | None]) -> None:
    """Undo :func:`activate`, tolerating a token from another context (logged, not raised)."""
    try:
        _current.reset(token)
    except (ValueError, RuntimeError):
        _report_crossed_contexts()


_crossed_warned_at = -_WARNING_INTERVAL


def _report_crossed_contexts() -> None:
    """Loudly, at most once a minute: the app's contexts do not nest, which is a leak to fix."""
    global _crossed_warned_at
    now = time.monotonic()
    if now - _crossed_warned_at < _WARNING_INTERVAL:
        logger.debug("a PostHog context was again exited outside the context it was entered in")
        return
    _crossed_warned_at = now
    logger.warning(
        "a PostHog context was exited in another contextvars context than the one it was "
        "entered in (a generator holding `with new_context():` across a yield, resumed or "
        "closed elsewhere?); nothing was changed here. Decorate the generator with @scoped "
        "instead, so that its steps run in a context of their own."
    )


def carry_over(context: contextvars.Context) -> None:
    """Set here what ``context`` (a copy of this one) holds for every variable but this
    engine's: other libraries keep the state a request changed, as if it had run here, while
    its PostHog state, and any token app code took on it, stays in ``context``."""
    here = contextvars.copy_context()
    for variable, value in context.items():
        if variable is not _current and (variable not in here or here[variable] is not value):
            variable.set(value)


def tag(name: str, value: Any) -> None:
    """Add a property to every event captured in the current context (and its children)."""
    scope = current_scope()
    if scope is None:
        logger.debug("tag(%r) outside any context does nothing", name)
        return
    tags = dict(scope[2])
    tags[name] = value
    if len(scope) > FLAGS:  # inlined, not a helper: tag() is called often
        _install((scope[0], scope[1], tags, scope[3], scope[4], scope[5]))
    else:
        _install((scope[0], scope[1], tags, scope[3], scope[4]))


def identify_context(distinct_id: Any) -> None:
    """Attribute events captured in the current context to ``distinct_id``."""
    scope = current_scope()
    if scope is None:
        logger.debug("identify_context() outside any context does nothing")
        return
    if type(distinct_id) is not str:
        distinct_id = _as_text(distinct_id, "identify_context()", "distinct id")
        if distinct_id is _UNREADABLE:
            return
    if len(scope) > FLAGS:
        _install((distinct_id or None, scope[1], scope[2], scope[3], scope[4], scope[5]))
    else:
        _install((distinct_id or None, scope[1], scope[2], scope[3], scope[4]))


def set_context_session(session_id: Any) -> None:
    """Set ``$session_id`` for events captured in the current context."""
    scope = current_scope()
    if scope is None:
        logger.debug("set_context_session() outside any context does nothing")
        return
    if type(session_id) is not str:
        session_id = _as_text(session_id, "set_context_session()", "session id")
        if session_id is _UNREADABLE:
            return
    if len(scope) > FLAGS:
        _install((scope[0], session_id or None, scope[2], scope[3], scope[4], scope[5]))
    else:
        _install((scope[0], session_id or None, scope[2], scope[3], scope[4]))


_UNREADABLE: Final = "\x00unreadable"


def _as_text(value: Any, caller: str, what: str) -> str | None:
    """``str(value)``, None for None, or ``_UNREADABLE`` (logged) when ``str()`` raises."""
    if value is None:
        return None
    try:
        return str(value)
    except Exception as error:
        logger.warning("%s ignored a %s of type %s: str() raised %s", caller, what,
                       type(value).__name__, type(error).__name__)
        return _UNREADABLE


def get_tags() -> dict[str, Any]:
    """A copy of the current context's tags."""
    scope = current_scope()
    return {} if scope is None else dict(scope[TAGS])


def get_context_distinct_id() -> str | None:
    """The distinct id events captured here get (a request's user is looked up now if needed)."""
    scope = current_scope()
    if scope is None:
        return None
    found = scope[DISTINCT_ID]  # distinct_id_of(), inlined: flags read it on every evaluation
    return found if found is None or isinstance(found, str) else found.resolve()


def get_context_session_id() -> str | None:
    scope = current_scope()
    return None if scope is None else scope[SESSION_ID]


def _reset_after_fork() -> None:
    """A forked child starts outside every context of its parent."""
    _current.set(None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
