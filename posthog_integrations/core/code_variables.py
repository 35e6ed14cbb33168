"""Local variables of the app's own frames on ``$exception`` (opt-in), masked and bounded.

With ``capture_exception_code_variables`` on (the client option, or a context's own switch,
which wins), each in-app function frame of each ``$exception_list`` entry gets
``code_variables``: its local variables by name, as JSON values, read when the exception is
captured (a traceback's frames hold their final state).

Nothing secret should leave the process, so before anything is written:

- a variable, or a dict key, whose name contains a sensitive word (``password``, ``token``,
  ``secret``, ``auth``, ``cookie``, ``session``, ...; any case) has its value replaced by
  :data:`MASKED`;
- in every string, the password of a URL (``scheme://user:password@host``), the value of a
  ``name=value`` or ``name: value`` pair with a sensitive name, ``Bearer`` tokens, JWTs,
  PostHog and other well-known API keys, and long random-looking runs of letters and digits
  are replaced by :data:`MASKED`.

And nothing may cost the app much or fail it: values are rendered by this module (builtin
types) or through ``reprlib`` (anything else), one failure per value becomes a placeholder,
a value is at most 1,024 characters, containers are read 3 levels deep and 20 items wide, a
frame keeps its first 50 variables, one event carries at most 64 KiB of them (the innermost
frames first: they matter most), and once 100 ms were spent no further ``__repr__`` is called.
Frames of libraries, of this package, and module or class bodies (whose "locals" are globals)
get none. Any failure leaves the event without variables and is logged once.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
import reprlib
import time
import types
from typing import Any

from .context import code_variables_switch

logger = logging.getLogger("posthog_integrations")

MASKED = "$$_posthog_redacted_based_on_masking_rules_$$"
MAX_VARIABLES_PER_FRAME = 50
MAX_VALUE_CHARS = 1024
MAX_NESTED_STRING_CHARS = 256
MAX_DEPTH = 3
MAX_ITEMS = 20
MAX_NODES_PER_VALUE = 200
MAX_EVENT_CHARS = 64 * 1024
TIME_BUDGET = 0.1  # seconds of rendering per event, after which no __repr__ is called
_SCAN_CHARS = 4 * MAX_VALUE_CHARS  # masked before cutting, so a key is never half shown
_LIBRARY_MODULE = "posthog_integrations"
_FUNCTION_FRAME = inspect.CO_OPTIMIZED  # set for function bodies, not module or class bodies

SENSITIVE_NAMES = (
    "password", "passwd", "pwd", "_pass", "secret", "token", "api_key", "apikey", "api-key",
    "auth", "cookie", "session", "csrf", "xsrf", "dsn", "jwt", "private_key", "privatekey",
    "credential", "access_key", "conn_str", "connection_string", "signature",
)
_SENSITIVE = "|".join(re.escape(name) for name in SENSITIVE_NAMES)
_URL_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.-]{0,30}://[^/\s:@]*):[^/\s@]*@", re.IGNORECASE)
_URL_TOKEN = re.compile(r"\b([a-z][a-z0-9+.-]{0,30}://)[^/\s:@]{16,}@", re.IGNORECASE)
_NAMED_VALUE = re.compile(
    r"([\w.-]{0,40}(?:" + _SENSITIVE + r")[\w.-]{0,40}['\"]?\s*[=:]\s*['\"]?)"
    r"[^'\"\s,;&)}\]>]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(bearer\s+)[\w.~+/=-]+", re.IGNORECASE)
_KNOWN_KEYS = re.compile(
    r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"  # a JWT: base64url of '{"' starts its header
    r"|\bph[cxs]_\w{16,}"  # PostHog project, personal and secret keys
    r"|\b[spr]k_(?:live|test)_\w{10,}"
    r"|\bgh[pousr]_\w{20,}|\bgithub_pat_\w{20,}"
    r"|\bxox[abprs]-[\w-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[\w-]{35}"
    r"|\bglpat-[\w-]{20}"
)
_RANDOM_RUN = re.compile(r"[A-Za-z0-9+/_=-]{24,}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# Classes whose repr() runs a database query: named, never evaluated.
_LAZY_QUERIES = (("django.db.models", "QuerySet"), ("django.db.models", "Manager"),
                 ("sqlalchemy.orm", "Query"))
_failure_logged = False


def collector_for(default: bool) -> CodeVariables | None:
    """A collector for one capture when local variables are wanted here, else None.

    ``default`` is the client's option; the current context's switch, when set, wins.
    """
    switch = code_variables_switch()
    return CodeVariables() if (default if switch is None else switch) else None


def sensitive_name(name: str) -> bool:
    """Whether a variable or key called ``name`` holds a secret by its name."""
    folded = name.lower()
    return any(word in folded for word in SENSITIVE_NAMES)


def mask_text(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` with credentials and key-like values replaced by :data:`MASKED`, then cut to
    ``limit`` characters."""
    text = text[:_SCAN_CHARS]
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1:" + MASKED + "@", text)
        text = _URL_TOKEN.sub(r"\1" + MASKED + "@", text)
    text = _BEARER.sub(r"\1" + MASKED, text)  # first: "Authorization: Bearer <token>"
    folded = text.lower()
    if any(word in folded for word in SENSITIVE_NAMES):
        text = _NAMED_VALUE.sub(lambda match: match.group(1) + MASKED, text)
    text = _KNOWN_KEYS.sub(MASKED, text)
    text = _RANDOM_RUN.sub(_mask_if_random, text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _mask_if_random(match: re.Match[str]) -> str:
    run = match.group(0)
    return MASKED if _looks_random(run) else run


def _looks_random(run: str) -> bool:
    """Letters and digits mixed the way a generated key mixes them, not like a word or a name.

    An identifier changes between lower case, upper case and digits a few times at most; a
    random key every other character or so. UUIDs are ids, not secrets: kept.
    """
    if MASKED in run or _UUID.fullmatch(run):
        return False
    if not any(c.isdigit() for c in run) or not any(c.isalpha() for c in run):
        return False
    changes = 0
    previous = ""
    for char in run:
        kind = "d" if char.isdigit() else "u" if char.isupper() else "l" if char.islower() else "o"
        if kind != previous:
            changes += 1
            previous = kind
    return changes >= len(run) * 0.3


class CodeVariables:
    """Collects the in-app frames of one capture, then gives them their variables.

    :func:`~posthog_integrations.core.exceptions.exception_list` calls :meth:`note` for each
    in-app frame it builds, and :meth:`attach` once the list has its final shape, so frames cut
    to fit the size bound cost nothing.
    """

    __slots__ = ("_noted",)

    def __init__(self) -> None:
        self._noted: dict[int, tuple[dict[str, Any], types.FrameType]] = {}

    def note(self, built: dict[str, Any], frame: types.FrameType) -> None:
        """Remember ``frame``, an in-app frame built as ``built``, if it may carry variables."""
        module = built.get("module")
        if isinstance(module, str) and (module == _LIBRARY_MODULE or
                                        module.startswith(_LIBRARY_MODULE + ".")):
            return
        if frame.f_code.co_flags & _FUNCTION_FRAME:
            self._noted[id(built)] = (built, frame)

    def attach(self, entries: list[dict[str, Any]]) -> None:
        """Add ``code_variables`` to the noted frames still in ``entries``; never raises."""
        global _failure_logged
        if not self._noted:
            return
        try:
            _attach(self._ordered(entries))
        except Exception:
            self._strip()
            if not _failure_logged:
                _failure_logged = True
                logger.warning("reading local variables for an $exception failed; it is sent "
                               "without them (logged once)", exc_info=True)
            else:
                logger.debug("reading local variables for an $exception failed", exc_info=True)
        finally:
            self._noted.clear()

    def _ordered(self, entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any],
                                                                     types.FrameType]]:
        """The noted frames in ``entries``: entry by entry, the crash site first."""
        ordered = []
        for entry in entries:
            stacktrace = entry.get("stacktrace")
            frames = stacktrace.get("frames", ()) if isinstance(stacktrace, dict) else ()
            for built in reversed(frames):
                noted = self._noted.get(id(built))
                if noted is not None and noted[0] is built:
                    ordered.append(noted)
        return ordered

    def _strip(self) -> None:
        for built, _ in self._noted.values():
            built.pop("code_variables", None)


def _attach(frames: list[tuple[dict[str, Any], types.FrameType]]) -> None:
    renderer = _Renderer(time.perf_counter() + TIME_BUDGET)
    budget = MAX_EVENT_CHARS
    rendered: dict[int, tuple[dict[str, Any], int]] = {}  # a frame shared by two entries
    for built, frame in frames:
        known = rendered.get(id(frame))
        if known is None:
            if renderer.out_of_time():
                break
            variables = renderer.frame_variables(frame)
            known = (variables, len(json.dumps(variables)) if variables else 0)
            rendered[id(frame)] = known
        variables, size = known
        if variables and size <= budget:
            built["code_variables"] = variables
            budget -= size


class _Renderer:
    """Turns values into bounded, masked JSON values; one per event, for its time budget."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self._nodes = 0
        self._repr = reprlib.Repr()
        self._repr.maxlevel = MAX_DEPTH
        self._repr.maxstring = MAX_VALUE_CHARS
        self._repr.maxother = MAX_VALUE_CHARS
        for name in ("maxdict", "maxlist", "maxtuple", "maxset", "maxfrozenset", "maxdeque",
                     "maxarray"):
            setattr(self._repr, name, MAX_ITEMS)

    def out_of_time(self) -> bool:
        return time.perf_counter() > self._deadline

    def frame_variables(self, frame: types.FrameType) -> dict[str, Any]:
        try:
            local = list(frame.f_locals.items())
        except Exception:
            return {}
        variables: dict[str, Any] = {}
        for name, value in local:
            if not isinstance(name, str) or name.startswith("__"):
                continue
            if len(variables) >= MAX_VARIABLES_PER_FRAME:
                break
            variables[name] = MASKED if sensitive_name(name) else self.variable(value)
        return variables

    def variable(self, value: Any) -> Any:
        """One variable's value, at most :data:`MAX_VALUE_CHARS` of JSON."""
        self._nodes = 0
        try:
            rendered = self._value(value, 0)
        except Exception as error:  # a value whose reading failed past the guards below
            return _unreadable(value, error)
        if isinstance(rendered, (dict, list)):
            text = json.dumps(rendered)
            if len(text) > MAX_VALUE_CHARS:
                return text[:MAX_VALUE_CHARS - 3] + "..."
        return rendered

    def _value(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if value is None or kind is bool:
            return value
        if kind is int:
            return value if -(2 ** 53) <= value <= 2 ** 53 else self._object(value)
        if kind is float:
            return value if math.isfinite(value) else repr(value)
        if kind is str:
            return mask_text(value, MAX_VALUE_CHARS if depth == 0 else MAX_NESTED_STRING_CHARS)
        if kind in (list, tuple, set, frozenset, dict):
            if depth >= MAX_DEPTH:
                return f"<{kind.__name__} of {len(value)} items>"
            if kind is dict:
                return self._dict(value, depth)
            return self._items(value, depth)
        return self._object(value)

    def _items(self, value: Any, depth: int) -> list[Any]:
        out: list[Any] = []
        for index, item in enumerate(value):
            if index >= MAX_ITEMS or self._spent():
                out.append(f"... {len(value) - index} more")
                break
            out.append(self._value(item, depth + 1))
        return out

    def _dict(self, value: dict[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_ITEMS or self._spent():
                out["..."] = f"{len(value) - index} more"
                break
            name = mask_text(key, MAX_NESTED_STRING_CHARS) if type(key) is str else \
                str(self._object(key))
            out[name] = MASKED if sensitive_name(name) else self._value(item, depth + 1)
        return out

    def _spent(self) -> bool:
        self._nodes += 1
        return self._nodes > MAX_NODES_PER_VALUE

    def _object(self, value: Any) -> str:
        kind = type(value)
        lazy = _lazy_query_name(kind)
        if lazy is not None:
            return f"<{lazy} (not evaluated)>"
        if self.out_of_time():
            return f"<{_type_name(kind)}: not rendered, time limit reached>"
        try:
            text = self._repr.repr(value)
            if not isinstance(text, str):
                raise TypeError("repr() returned a non-string")
        except Exception as error:
            return _unreadable(value, error)
        return mask_text(text)


def _lazy_query_name(kind: type) -> str | None:
    try:
        for base in kind.__mro__:
            module = getattr(base, "__module__", "") or ""
            for prefix, name in _LAZY_QUERIES:
                if base.__name__ == name and module.startswith(prefix):
                    return kind.__name__
    except Exception:
        return None
    return None


def _type_name(kind: type) -> str:
    try:
        return str(kind.__qualname__)
    except Exception:
        return "object"


def _unreadable(value: Any, error: Exception) -> str:
    # The error's message is left out: it may quote the value.
    return f"<{_type_name(type(value))}: repr() raised {_type_name(type(error))}>"
