"""SQLite storage for the events received by the local sink."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_MEMORY_EVENTS", "EventStore", "StoredEvent"]

# The most events an in-memory store keeps; the oldest go first (a file keeps all by default).
MAX_MEMORY_EVENTS = 100_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    endpoint    TEXT NOT NULL,
    api_key     TEXT NOT NULL,
    uuid        TEXT,
    event       TEXT,
    distinct_id TEXT,
    session_id  TEXT,
    timestamp   TEXT,
    data        TEXT NOT NULL
);
"""
# No secondary indexes on purpose: they cut insert speed by more than half, and a
# filtered query that scans 500,000 stored events still takes only about 0.1 s.

_INSERT = (
    "INSERT INTO events (received_at, endpoint, api_key, uuid, event, distinct_id,"
    " session_id, timestamp, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# ASCII output keeps lone surrogates storable; compact output keeps the table small.
_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class StoredEvent:
    """One stored event with the metadata the sink recorded for it."""

    seq: int
    received_at: float
    endpoint: str
    api_key: str
    event: dict[str, Any]


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _row(event: dict[str, Any], received_at: float, endpoint: str, api_key: str) -> tuple[Any, ...]:
    props = event.get("properties")
    session_id = props.get("$session_id") if isinstance(props, dict) else None
    return (
        received_at,
        endpoint,
        api_key,
        _text(event.get("uuid")),
        _text(event.get("event")),
        _text(event.get("distinct_id")),
        _text(session_id),
        _text(event.get("timestamp")),
        _encode(event),
    )


def _escape_surrogates(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        v.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(v, str) else v
        for v in row
    )


def _decode_all(texts: Iterable[str]) -> list[dict[str, Any]]:
    # One parse of a joined array is about a third faster than one json.loads per row.
    decoded: list[dict[str, Any]] = json.loads("[" + ",".join(texts) + "]")
    return decoded


class EventStore:
    """Thread-safe event table in a SQLite file, or in private memory when ``path`` is None.

    At most ``max_events`` are kept, the oldest deleted first and counted by :meth:`dropped`;
    by default :data:`MAX_MEMORY_EVENTS` in memory and no limit in a file.
    """

    def __init__(self, path: str | None = None, *, max_events: int | None = None) -> None:
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events must be at least 1, not {max_events}")
        self.path = path
        # The most events kept: the oldest are deleted beyond it. None keeps every event.
        self.max_events = MAX_MEMORY_EVENTS if max_events is None and path is None else max_events
        self._dropped = 0
        self._lock = threading.Lock()
        # One connection shared by the server threads; every use holds self._lock.
        self._conn = sqlite3.connect(
            path if path is not None else ":memory:",
            check_same_thread=False,
            isolation_level=None,
        )
        # Close the connection even if the owner forgets to (no ResourceWarning on 3.13+).
        self._finalizer = weakref.finalize(self, self._conn.close)
        if path is not None:
            # Big pages make bulk inserts about twice as fast; only applies to a new file.
            self._conn.execute("PRAGMA page_size=65536")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        # Kept in memory: COUNT(*) walks the whole table, and waiters ask after every batch.
        (count,) = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()
        self._count = int(count)

    def add(self, events: list[dict[str, Any]], *, api_key: str, endpoint: str) -> None:
        """Store ``events`` (dicts as received) in one transaction."""
        now = time.time()
        rows = [_row(event, now, endpoint, api_key) for event in events]
        with self._lock:
            try:
                self._insert(rows)
            except UnicodeEncodeError:
                # A lone surrogate (a "\ud800" escape in the JSON) is not valid UTF-8 text.
                self._insert([_escape_surrogates(row) for row in rows])
            self._count += len(rows)
            if self.max_events is not None and self._count > self.max_events:
                self._drop_oldest(self._count - self.max_events)

    def _drop_oldest(self, excess: int) -> None:
        self._conn.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
            (excess,),
        )
        self._count -= excess
        self._dropped += excess

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        self._conn.execute("BEGIN")
        try:
            self._conn.executemany(_INSERT, rows)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def events(
        self,
        *,
        event: str | None = None,
        distinct_id: str | None = None,
        session_id: str | None = None,
        api_key: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        after: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored events exactly as received, oldest first unless ``newest_first``.

        ``after`` keeps only the events stored after the one with that sequence number.
        """
        rows = self._select(
            "data", event, distinct_id, session_id, api_key, limit, newest_first, after
        )
        return _decode_all(data for (data,) in rows)

    def records(
        self,
        *,
        event: str | None = None,
        distinct_id: str | None = None,
        session_id: str | None = None,
        api_key: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        after: int | None = None,
    ) -> list[StoredEvent]:
        """Like :meth:`events`, with the sequence number, arrival time, endpoint and key."""
        rows = self._select(
            "seq, received_at, endpoint, api_key, data",
            event,
            distinct_id,
            session_id,
            api_key,
            limit,
            newest_first,
            after,
        )
        events = _decode_all(row[4] for row in rows)
        return [
            StoredEvent(seq, received_at, endpoint, key, event)
            for (seq, received_at, endpoint, key, _), event in zip(rows, events)
        ]

    def _select(
        self,
        columns: str,
        event: str | None,
        distinct_id: str | None,
        session_id: str | None,
        api_key: str | None,
        limit: int | None,
        newest_first: bool,
        after: int | None,
    ) -> list[tuple[Any, ...]]:
        filters = {
            "event": event,
            "distinct_id": distinct_id,
            "session_id": session_id,
            "api_key": api_key,
        }
        # Column names come from the fixed dict above, never from the caller.
        where = [f"{column} = ?" for column, value in filters.items() if value is not None]
        params: list[Any] = [value for value in filters.values() if value is not None]
        if after is not None:
            where.append("seq > ?")
            params.append(after)
        sql = f"SELECT {columns} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def dropped(self) -> int:
        """Number of events deleted to stay within ``max_events`` (since the last clear)."""
        with self._lock:
            return self._dropped

    def count(self) -> int:
        """Number of stored events."""
        with self._lock:
            return self._count

    def clear(self) -> int:
        """Delete every stored event and reset :meth:`dropped`; returns how many were deleted.

        Sequence numbers keep growing.
        """
        with self._lock:
            self._conn.execute("DELETE FROM events")
            cleared, self._count, self._dropped = self._count, 0, 0
        return cleared

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        with self._lock:
            self._finalizer()
