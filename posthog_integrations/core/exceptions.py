"""``$exception_list`` from an exception, and the record that keeps it from being captured twice.

The list is outermost first: the caught exception, then what it wraps (``__cause__`` or
``__context__``) and the members of exception groups, depth first, at most 50 entries, cycles
stopped. Frames run from the entry point to the crash site, at most 100 (the middle is left
out), with source context read through ``linecache`` (cached, so a hot error path does not
re-read files).

Sizes are bounded so that an ``$exception`` event is always sent: messages are cut to 8 KiB of
UTF-8, source lines to 300 characters, names and paths to 1,024 characters, and a list whose
JSON would pass 512 KiB is shrunk step by step (see :func:`_fit`).

Exceptions are read without running their class's attribute hooks (``__getattr__``,
``__getattribute__``), and nothing is ever written onto them, so an exception of any class is
reported, and reported once.
"""

from __future__ import annotations

import collections
import json
import linecache
import os
import sys
import threading
import types
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .code_variables import CodeVariables

MAX_EXCEPTIONS = 50
MAX_FRAMES = 100
CONTEXT_LINES = 5
MAX_MESSAGE_BYTES = 8 * 1024
MAX_LINE_CHARS = 300
MAX_NAME_CHARS = 1024
MAX_LIST_BYTES = 512 * 1024
MAX_HELD_EXCEPTIONS = 256
LEVELS = frozenset({"fatal", "error", "warning", "log", "info", "debug"})
_LEVEL_ALIASES = {"warn": "warning", "critical": "fatal"}
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


def normalise_level(level: object) -> str | None:
    """``level`` as one of :data:`LEVELS` (any case; ``warn`` and ``critical`` are read as
    ``warning`` and ``fatal``), or None when it is none of them."""
    if not isinstance(level, str):
        return None
    name = level.strip().lower()
    name = _LEVEL_ALIASES.get(name, name)
    return name if name in LEVELS else None


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
    code_variables: CodeVariables | None = None,
) -> list[dict[str, Any]]:
    """The canonical ``$exception_list`` for ``error`` (outermost first).

    ``synthetic_traceback`` stands in for the stack of an exception that was never raised; the
    outermost entry's ``mechanism.synthetic`` says whether it did.
    ``code_variables`` (when local variables are wanted) gives in-app frames their variables.
    """
    entries: list[dict[str, Any]] = []
    for exception_id, (current, parent_id, source) in enumerate(_walk(error)):
        mechanism: dict[str, Any]
        if parent_id is None:
            mechanism = {"type": mechanism_type, "handled": handled,
                         "synthetic": synthetic_traceback is not None, "exception_id": 0}
        else:
            mechanism = {"type": "chained", "source": source, "exception_id": exception_id,
                         "parent_id": parent_id}
        entry: dict[str, Any] = {
            "type": _cut(type(current).__name__),
            "value": _message(current),
            "mechanism": mechanism,
        }
        module = type(current).__module__
        if module != "builtins":
            entry["module"] = _cut(module)
        traceback = traceback_of(current)
        if parent_id is None and synthetic_traceback is not None:
            traceback = synthetic_traceback
        frames = frames_of(traceback, rules, code_variables)
        if frames:
            entry["stacktrace"] = {"type": "raw", "frames": frames}
        entries.append(entry)
    entries = _fit(entries)
    if code_variables is not None:
        code_variables.attach(entries)
    return entries


def _fit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shrink ``entries`` until their JSON is at most ``MAX_LIST_BYTES``.

    Step by step, until it fits: drop the lines around each crash line, then the crash lines,
    keep 20 frames of each exception (10 at each end), then 4, then keep the first 10 exceptions,
    then only the outermost one. Each step keeps what locates the error best.
    """
    for step in range(6):
        if _fits(entries):
            break
        if step == 0:
            _drop_from_frames(entries, ("pre_context", "post_context"))
        elif step == 1:
            _drop_from_frames(entries, ("context_line",))
        elif step in (2, 3):
            _keep_frames(entries, 20 if step == 2 else 4)
        else:
            del entries[10 if step == 4 else 1:]
    return entries


def _fits(entries: list[dict[str, Any]]) -> bool:
    # Encoding only when counting characters cannot tell: the JSON takes at least one byte
    # and at most six (\u0000) per character, plus some per frame for the keys.
    chars, pieces = _characters(entries)
    if 6 * chars + 400 * pieces <= MAX_LIST_BYTES:
        return True  # the usual case
    if chars > MAX_LIST_BYTES:
        return False
    # ASCII-escaped JSON is never shorter than its UTF-8 form: an upper bound without encoding.
    return len(json.dumps(entries, separators=(",", ":"))) <= MAX_LIST_BYTES


def _characters(entries: list[dict[str, Any]]) -> tuple[int, int]:
    """The characters of the strings in ``entries``, and how many entries and frames hold them."""
    chars = 0
    frame_count = 0
    for entry in entries:
        chars += len(entry["value"]) + len(entry["type"]) + len(entry.get("module", ""))
        for frame in entry.get("stacktrace", {}).get("frames", ()):
            frame_count += 1
            for key in ("filename", "abs_path", "function", "module", "context_line"):
                value = frame.get(key)
                chars += len(value) if isinstance(value, str) else 0
            for key in ("pre_context", "post_context"):
                chars += sum(map(len, frame.get(key, ())))
    return chars, frame_count + len(entries)


def _drop_from_frames(entries: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    for entry in entries:
        for frame in entry.get("stacktrace", {}).get("frames", ()):
            for key in keys:
                frame.pop(key, None)


def _keep_frames(entries: list[dict[str, Any]], count: int) -> None:
    for entry in entries:
        stacktrace = entry.get("stacktrace")
        if stacktrace is not None and len(stacktrace["frames"]) > count:
            frames = stacktrace["frames"]
            stacktrace["frames"] = frames[:count // 2] + frames[-(count // 2):]


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


def frames_of(traceback: types.TracebackType | None, rules: InAppRules,
              code_variables: CodeVariables | None = None) -> list[dict[str, Any]]:
    shown: list[tuple[types.FrameType, int]] = []
    while traceback is not None:
        frame = traceback.tb_frame
        if not _hidden(frame):
            shown.append((frame, traceback.tb_lineno))
        traceback = traceback.tb_next
    if len(shown) > MAX_FRAMES:  # keep where it started and where it broke
        half = MAX_FRAMES // 2
        shown = shown[:half] + shown[-half:]
    return [_frame(frame, lineno, rules, code_variables) for frame, lineno in shown]


def traceback_here(skip: int = 0) -> types.TracebackType | None:
    """A traceback of the caller's stack, for an exception that was never raised."""
    frame: types.FrameType | None = sys._getframe(skip + 1)
    traceback = None
    while frame is not None:
        traceback = types.TracebackType(traceback, frame, frame.f_lasti, frame.f_lineno)
        frame = frame.f_back
    return traceback


def _frame(frame: types.FrameType, lineno: int, rules: InAppRules,
           code_variables: CodeVariables | None = None) -> dict[str, Any]:
    code = frame.f_code
    name = code.co_filename
    real_file = bool(name) and not (name.startswith("<") and name.endswith(">"))
    abs_path = os.path.abspath(name) if real_file else None
    module = frame.f_globals.get("__name__")
    module = module if isinstance(module, str) else None
    result: dict[str, Any] = {
        "platform": "python",
        "filename": _cut(_relative_filename(abs_path, module) if abs_path else name),
        "function": _cut(getattr(code, "co_qualname", code.co_name) or "<unknown>"),
        "lineno": lineno,
    }
    if module:  # unknown values are left out, never written as null
        result["module"] = _cut(module)
    if abs_path:
        result["abs_path"] = _cut(abs_path)
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
        if in_app and code_variables is not None:
            code_variables.note(result, frame)
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
    return _cut(line.rstrip("\r\n"), MAX_LINE_CHARS)


def _cut(text: str, limit: int = MAX_NAME_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _message(error: BaseException) -> str:
    try:
        message = str(error)
    except Exception:
        return f"<{type(error).__name__}: str() raised>"
    if len(message) <= MAX_MESSAGE_BYTES // 4:
        return message  # enough for ordinary messages: UTF-8 takes at most 4 bytes a character
    data = message.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    return data[:MAX_MESSAGE_BYTES - 3].decode("utf-8", "ignore") + "..."

