"""The query parameters of ``/api/events``, validated."""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.wrappers import Request

__all__ = ["DEFAULT_API_LIMIT", "MAX_API_LIMIT", "ApiQuery", "InvalidQuery", "api_query"]

DEFAULT_API_LIMIT = 1000
# The most events one /api/events answer holds: a whole in-memory store.
MAX_API_LIMIT = 100_000
MAX_FILTER_CHARS = 1000
_API_FILTERS = ("event", "distinct_id", "session_id")
_API_PARAMS = (*_API_FILTERS, "limit", "after")
_MAX_CURSOR = 2**63 - 1  # SQLite's largest integer


class InvalidQuery(ValueError):
    """A query parameter is not what it should be; ``detail`` is safe to send back."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ApiQuery:
    """What one ``/api/events`` request asks for; a None filter matches everything."""

    event: str | None
    distinct_id: str | None
    session_id: str | None
    limit: int
    after: int


def api_query(request: Request) -> ApiQuery:
    """The validated query of ``/api/events``: known names only, each at most once."""
    args = request.args
    for name in args:
        if name not in _API_PARAMS:
            raise InvalidQuery(
                "unknown_parameter",
                f"unknown parameter {name[:40]!r}; /api/events takes {', '.join(_API_PARAMS)}",
            )
    values: dict[str, str] = {}
    for name in _API_PARAMS:
        given = args.getlist(name)
        if len(given) > 1:
            raise InvalidQuery(f"invalid_{name}", f"{name} is given {len(given)} times")
        if given:
            values[name] = given[0]
    for name in _API_FILTERS:
        if len(values.get(name, "")) > MAX_FILTER_CHARS:
            raise InvalidQuery(f"invalid_{name}", f"{name} is over {MAX_FILTER_CHARS} characters")
    return ApiQuery(
        # An empty filter is no filter, as the viewer's empty inputs send them.
        event=values.get("event") or None,
        distinct_id=values.get("distinct_id") or None,
        session_id=values.get("session_id") or None,
        limit=_whole_number(values, "limit", DEFAULT_API_LIMIT, MAX_API_LIMIT),
        after=_whole_number(values, "after", 0, _MAX_CURSOR),
    )


def _whole_number(values: dict[str, str], name: str, default: int, maximum: int) -> int:
    """``values[name]`` as plain ASCII digits from 0 to ``maximum``, or ``default`` if absent."""
    if name not in values:
        return default
    text = values[name]
    # Digits only: int() would also take "+5", " 5", "1_000" and non-ASCII digits. The length
    # is checked first, as int() refuses over 4300 digits with an error of its own.
    digits_ok = text.isascii() and text.isdigit() and len(text) <= len(str(maximum))
    if not digits_ok or int(text) > maximum:
        raise InvalidQuery(f"invalid_{name}", f"{name} must be a whole number from 0 to {maximum}")
    return int(text)
