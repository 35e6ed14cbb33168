"""The rows of the exception spec's boundary table, and checks every ``$exception`` must pass."""

from __future__ import annotations

from typing import Any, NamedTuple

from posthog_integrations.core.exceptions import MAX_EXCEPTIONS

RELATIONS = {"cause", "context", "member"}


class Row(NamedTuple):
    """What one capture boundary writes: level, mechanism type, handled, source (or None)."""

    level: str
    mechanism: str
    handled: bool
    source: str | None


MANUAL = Row("error", "generic", True, None)
DJANGO = Row("error", "middleware", False, "django.middleware")
FLASK = Row("error", "middleware", False, "flask.got_request_exception")
ASGI = Row("error", "middleware", False, "asgi.middleware")
WSGI = Row("error", "middleware", False, "wsgi.middleware")
CELERY = Row("error", "task", False, "celery.task_failure")
MAIN_THREAD = Row("fatal", "onuncaughtexception", False, "python.sys_excepthook")
OTHER_THREAD = Row("error", "onuncaughtexception", False, "python.threading_excepthook")


def assert_row(event: dict[str, Any], row: Row, *, synthetic: bool = False) -> None:
    """``event`` carries ``row``'s metadata and a well-formed ``$exception_list``."""
    properties = event["properties"]
    assert properties["$exception_level"] == row.level
    if row.source is None:
        assert "$exception_source" not in properties
    else:
        assert properties["$exception_source"] == row.source
    entries = properties["$exception_list"]
    assert entries[0]["mechanism"] == {
        "type": row.mechanism, "handled": row.handled, "synthetic": synthetic, "exception_id": 0,
    }
    assert_well_formed(entries)


def assert_well_formed(entries: list[dict[str, Any]]) -> None:
    """Ids count up from 0 in depth-first order, each parent comes before its children, nested
    entries say how they hang off their parent, and no value is written as unknown."""
    assert 1 <= len(entries) <= MAX_EXCEPTIONS
    open_path: list[int] = [0]  # the ids from the outermost down to the previous entry
    for index, entry in enumerate(entries):
        mechanism = entry["mechanism"]
        assert mechanism["exception_id"] == index
        if index == 0:
            assert "parent_id" not in mechanism
            assert "source" not in mechanism
            continue
        assert mechanism["type"] == "chained"
        assert mechanism["source"] in RELATIONS
        assert set(mechanism) == {"type", "source", "exception_id", "parent_id"}
        parent = mechanism["parent_id"]
        assert parent in open_path, "depth first: a parent is on the path to its child"
        del open_path[open_path.index(parent) + 1:]
        open_path.append(index)
    _assert_nothing_unknown(entries)


def _assert_nothing_unknown(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert item is not None, f"{key} written as null"
            _assert_nothing_unknown(item)
    elif isinstance(value, list):
        for item in value:
            _assert_nothing_unknown(item)
