"""Where the sink keeps its events by default: the user's data directory, else a temp one."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DATABASE_NAME", "data_directory", "default_database"]

APP_DIRECTORY = "posthog-integrations"
DATABASE_NAME = "events.sqlite3"


def data_directory(
    platform: str = sys.platform,
    environ: Mapping[str, str] = os.environ,
    home: Path | None = None,
) -> Path:
    """The platform's per-user data directory for this package (not created).

    ``$XDG_DATA_HOME`` or ``~/.local/share`` on Linux and other Unixes, ``~/Library/Application
    Support`` on macOS, ``%LOCALAPPDATA%`` on Windows.
    """
    home = Path.home() if home is None else home
    if platform == "win32":
        local = environ.get("LOCALAPPDATA")
        base = Path(local) if local else home / "AppData" / "Local"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = environ.get("XDG_DATA_HOME", "")
        # The XDG specification says to ignore a relative path.
        base = Path(xdg) if os.path.isabs(xdg) else home / ".local" / "share"
    return base / APP_DIRECTORY


def default_database() -> Path:
    """The database file to use when none is given, its directory created.

    The user data directory (see :func:`data_directory`) when it can be created and written
    to; else a directory of this user's in the temp directory.
    """
    try:
        preferred = data_directory()
    except RuntimeError:  # no home directory to be found
        preferred = None
    if preferred is not None and _usable(preferred):
        return preferred / DATABASE_NAME
    return _temp_directory() / DATABASE_NAME


def _usable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


def _temp_directory() -> Path:
    """This user's directory in the temp directory; a fresh one if another user holds it."""
    temp = Path(tempfile.gettempdir())
    owner = os.getuid() if hasattr(os, "getuid") else None
    shared = temp / (APP_DIRECTORY if owner is None else f"{APP_DIRECTORY}-{owner}")
    try:
        shared.mkdir(mode=0o700, exist_ok=True)
        mine = owner is None or (shared.lstat().st_uid == owner and not shared.is_symlink())
    except OSError:
        mine = False
    if mine and os.access(shared, os.W_OK | os.X_OK):
        return shared
    return Path(tempfile.mkdtemp(prefix=f"{APP_DIRECTORY}-"))
