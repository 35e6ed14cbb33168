"""``$exception_list`` from an exception, and the record that keeps it from being captured twice.

The list is outermost first: the caught exception, then what it wraps (``__cause__`` or
``__context__``) and the members of exception groups, depth first, at most 50 entries, cycles
stopped. Frames run from the entry point to the crash site, with source context read through
``linecache`` (cached, so a hot error path does not re-read files).

Exceptions are read without running their class's attribute hooks (``__getattr__``,
``__getattribute__``), and nothing is ever written onto them, so an exception of any class is
reported, and reported once.
"""

from __future__ import annotations

import collections
import linecache
import os
import sys
import threading
import types
import weakref
from collections.abc import Iterator
from typing import Any, NamedTuple

MAX_EXCEPTIONS = 50
MAX_FRAMES = 100
CONTEXT_LINES = 5
MAX_LINE_BYTES = 1024
MAX_HELD_EXCEPTIONS = 256
_LIBRARY_PACKAGES = ("/site-packages/", "/dist-packages/")


class InAppRules(NamedTuple):
    """How to decide whether a frame is the user's own code."""

    project_root: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


class CapturedExceptions:
    """The uuids of the exceptions already reported, by identity.

    An exception that takes weak references (most classes written in Python) is remembered for
    as long as it lives, without being kept alive. Builtin exception types and subclasses with
    ``__slots__`` take none: the most recent ``MAX_HELD_EXCEPTIONS`` of those are held, which
    covers an exception escaping through nested contexts and a framework's own handler.
    """

    def __init__(self, held: int = MAX_HELD_EXCEPTIONS) -> None:
        self._weak: dict[int, tuple[weakref.ref[BaseException], str]] = {}
        self._held: collections.OrderedDict[int, tuple[BaseException, str]] = (
            collections.OrderedDict())
        self._held_size = held
        self._lock = threading.Lock()

    def uuid_of(self, error: BaseException) -> str | None:
        """The uuid of the event that already reported ``error``, if any."""
        key = id(error)
        entry = self._weak.get(key)
        if entry is not None and entry[0]() is error:
            return entry[1]
        with self._lock:
            held = self._held.get(key)
        return held[1] if held is not None and held[0] is error else None

    def add(self, error: BaseException, uuid: str) -> None:
        key = id(error)
        try:
            reference = weakref.ref(error, lambda dead: self._forget(key, dead))
        except TypeError:  # takes no weak references: hold it, within the bound
            with self._lock:
                self._held[key] = (error, uuid)
                self._held.move_to_end(key)
                if len(self._held) > self._held_size:
                    self._held.popitem(last=False)
            return
        self._weak[key] = (reference, uuid)

    def _forget(self, key: int, dead: weakref.ref[BaseException]) -> None:
        # No lock: this may run inside a garbage collection triggered while the lock is held.
        # The id cannot be reused before this runs, so a newer entry is never removed.
        entry = self._weak.get(key)
        if entry is not None and entry[0] is dead:
            self._weak.pop(key, None)


_captured = CapturedExceptions()
captured_uuid = _captured.uuid_of
mark_captured = _captured.add


def traceback_of(error: BaseException) -> types.TracebackType | None:
    """``error.__traceback__``, read without the hooks of the error's class."""
    traceback = _attribute(error, "__traceback__")
    return traceback if isinstance(traceback, types.TracebackType) else None


def _attribute(error: BaseException, name: str) -> Any:
    try:
        return object.__getattribute__(error, name)
    except Exception:
        return None


def exception_list(
    error: BaseException,
    *,
    rules: InAppRules,
    mechanism_type: str,
    handled: bool,
    synthetic_traceback: types.TracebackType | None = None,
) -> list[dict[str, Any]]:
    """The canonical ``$exception_list`` for ``error`` (outermost first).

    ``synthetic_traceback`` stands in for the stack of an exception that was never raised.
    """
    entries: list[dict[str, Any]] = []
    for exception_id, (current, parent_id, source) in enumerate(_walk(error)):
        mechanism: dict[str, Any]
        if parent_id is None:
            mechanism = {"type": mechanism_type, "handled": handled, "exception_id": 0}
            if synthetic_traceback is not None:
                mechanism["synthetic"] = True
        else:
            mechanism = {"type": "chained", "source": source, "exception_id": exception_id,
                         "parent_id": parent_id}
        entry: dict[str, Any] = {
            "type": type(current).__name__,
            "value": _message(current),
            "mechanism": mechanism,
        }
        module = type(current).__module__
        if module != "builtins":
            entry["module"] = module
        traceback = traceback_of(current)
        if parent_id is None and synthetic_traceback is not None:
            traceback = synthetic_traceback
        frames = frames_of(traceback, rules)
        if frames:
            entry["stacktrace"] = {"type": "raw", "frames": frames}
        entries.append(entry)
    return entries


def _walk(error: BaseException) -> Iterator[tuple[BaseException, int | None, str | None]]:
    """Depth-first (exception, parent id, source), each exception once, at most 50."""
    seen: set[int] = set()
    stack: list[tuple[BaseException, int | None, str | None]] = [(error, None, None)]
    count = 0
    while stack and count < MAX_EXCEPTIONS:
        current, parent_id, source = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current, parent_id, source
        own_id = count
        count += 1
        children: list[tuple[BaseException, int | None, str | None]] = []
        members = _attribute(current, "exceptions")  # BaseExceptionGroup, 3.11+
        if isinstance(members, tuple):
            children.extend((m, own_id, "member") for m in members if isinstance(m, BaseException))
        cause, context = _attribute(current, "__cause__"), _attribute(current, "__context__")
        if isinstance(cause, BaseException):
            children.append((cause, own_id, "cause"))
        elif isinstance(context, BaseException) and not _attribute(current,
                                                                   "__suppress_context__"):
            children.append((context, own_id, "context"))
        stack.extend(reversed(children))


def frames_of(traceback: types.TracebackType | None, rules: InAppRules) -> list[dict[str, Any]]:
    frames = []
    while traceback is not None:
        frame = traceback.tb_frame
        if not _hidden(frame):
            frames.append(_frame(frame, traceback.tb_lineno, rules))
        traceback = traceback.tb_next
    if len(frames) > MAX_FRAMES:  # keep where it started and where it broke
        half = MAX_FRAMES // 2
        frames = frames[:half] + frames[-half:]
    return frames


def traceback_here(skip: int = 0) -> types.TracebackType | None:
    """A traceback of the caller's stack, for an exception that was never raised."""
    frame: types.FrameType | None = sys._getframe(skip + 1)
    traceback = None
    while frame is not None:
        traceback = types.TracebackType(traceback, frame, frame.f_lasti, frame.f_lineno)
        frame = frame.f_back
    return traceback


def _frame(frame: types.FrameType, lineno: int, rules: InAppRules) -> dict[str, Any]:
    code = frame.f_code
    name = code.co_filename
    real_file = bool(name) and not (name.startswith("<") and name.endswith(">"))
    abs_path = os.path.abspath(name) if real_file else None
    module = frame.f_globals.get("__name__")
    module = module if isinstance(module, str) else None
    result: dict[str, Any] = {
        "platform": "python",
        "filename": _relative_filename(abs_path, module) if abs_path else name,
        "abs_path": abs_path,
        "function": getattr(code, "co_qualname", code.co_name) or "<unknown>",
        "module": module,
        "lineno": lineno,
    }
    if abs_path:
        lines = linecache.getlines(code.co_filename, frame.f_globals)
        if 0 < lineno <= len(lines):
            index = lineno - 1
            before = lines[max(0, index - CONTEXT_LINES):index]
            after = lines[index + 1:index + 1 + CONTEXT_LINES]
            result["pre_context"] = [_clip(line) for line in before]
            result["context_line"] = _clip(lines[index])
            result["post_context"] = [_clip(line) for line in after]
    in_app = _in_app(abs_path, module, rules)
    if in_app is not None:
        result["in_app"] = in_app
    return result


def _in_app(abs_path: str | None, module: str | None, rules: InAppRules) -> bool | None:
    if module and _matches(module, rules.include):
        return True
    if module and _matches(module, rules.exclude):
        return False
    if not abs_path:
        return None
    if any(marker in abs_path for marker in _LIBRARY_PACKAGES):
        return False
    return abs_path.startswith(rules.project_root)


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _relative_filename(abs_path: str, module: str | None) -> str:
    if not module or module == "__main__":
        return os.path.basename(abs_path)
    depth = module.count(".") + 1
    if os.path.basename(abs_path) == "__init__.py":
        depth += 1
    return "/".join(abs_path.replace(os.sep, "/").split("/")[-depth:])


_HIDE_MARKERS = ("__traceback_hide__", "__tracebackhide__")


def _hidden(frame: types.FrameType) -> bool:
    code = frame.f_code
    if not any(name in code.co_varnames or name in code.co_names for name in _HIDE_MARKERS):
        # Reading f_locals of a running frame would copy its locals into a dict that keeps
        # them alive until the frame returns; most frames never name a marker.
        return False
    try:
        local = frame.f_locals
        return bool(local.get("__traceback_hide__") or local.get("__tracebackhide__"))
    except Exception:
        return False


def _clip(line: str) -> str:
    line = line.rstrip("\r\n")
    if len(line) <= MAX_LINE_BYTES // 4 or len(line.encode("utf-8", "replace")) <= MAX_LINE_BYTES:
        return line  # the first test is enough for ordinary lines: UTF-8 is at most 4 bytes a char
    return line.encode("utf-8", "replace")[: MAX_LINE_BYTES - 3].decode("utf-8", "ignore") + "..."


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return f"<{type(error).__name__}: str() raised>"

