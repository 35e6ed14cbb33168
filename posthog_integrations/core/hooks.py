"""Process-wide exception hooks: report what nobody caught, then let the previous hook run."""

from __future__ import annotations

import sys
import threading
import types
from typing import Any, Callable, NamedTuple

UNCAUGHT = "onuncaughtexception"  # mechanism.type of what no code caught, in any thread


class Boundary(NamedTuple):
    """Where an exception was caught, as the exception spec names it."""

    source: str  # $exception_source
    level: str  # $exception_level
    mechanism: str  # mechanism.type of the outermost entry


MAIN_THREAD = Boundary("python.sys_excepthook", "fatal", UNCAUGHT)  # the process ends
OTHER_THREAD = Boundary("python.threading_excepthook", "error", UNCAUGHT)  # it goes on

Report = Callable[[BaseException, Boundary], None]


class ExceptHooks:
    """Installs ``sys.excepthook`` and ``threading.excepthook`` wrappers; removable."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._previous_sys: Callable[..., Any] | None = None
        self._previous_threading: Callable[..., Any] | None = None

    def install(self) -> None:
        self._previous_sys = sys.excepthook
        self._previous_threading = threading.excepthook
        sys.excepthook = self._sys_hook
        threading.excepthook = self._threading_hook

    def uninstall(self) -> None:
        """Restore the previous hooks, unless someone replaced ours in the meantime."""
        if sys.excepthook == self._sys_hook and self._previous_sys is not None:
            sys.excepthook = self._previous_sys
        if threading.excepthook == self._threading_hook and self._previous_threading is not None:
            threading.excepthook = self._previous_threading

    def _sys_hook(self, kind: type[BaseException], error: BaseException,
                  traceback: types.TracebackType | None) -> None:
        try:
            if isinstance(error, Exception):
                self._report(error, MAIN_THREAD)
        finally:
            (self._previous_sys or sys.__excepthook__)(kind, error, traceback)

    def _threading_hook(self, args: threading.ExceptHookArgs) -> None:
        try:
            if isinstance(args.exc_value, Exception):
                self._report(args.exc_value, OTHER_THREAD)
        finally:
            (self._previous_threading or threading.__excepthook__)(args)
