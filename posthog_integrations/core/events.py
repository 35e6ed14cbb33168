"""Pure event building: identity, ids, timestamps and the property merge. No I/O.

Precedence, lowest first: client super properties < context tags < the flags read in the
context < caller properties; then the library's own properties. The active OpenTelemetry span's
``$trace_id`` and ``$span_id`` fill in where none of those set them. An event with no distinct id
anywhere is personless.
"""

from __future__ import annotations

import datetime
import logging
import random
import time
import uuid as uuid_module
from collections.abc import Mapping
from typing import Any

from posthog_integrations._version import VERSION

from .context import DISTINCT_ID, FLAGS, SESSION_ID, TAGS, LazyTags, Scope
from .serialization import is_plain, make_json_safe
from .tracing import OTEL_TRACE_MODULE, add_trace_properties, loaded_module

logger = logging.getLogger("posthog_integrations")

LIB_NAME = "posthog-integrations"
Event = dict[str, Any]
_UTC = datetime.timezone.utc
# Mersenne Twister bits: event ids need uniqueness, not secrecy, and the `random` module reseeds
# itself in a forked child. This is four times cheaper than building a uuid.UUID per event.
_random_bits = random.getrandbits
_second_prefix: tuple[int, str] = (-1, "")


class EventDefaults:
    """Per-client constant parts of every event, computed once."""

    __slots__ = ("disable_geoip", "lib_properties", "lib_properties_geoip", "super_properties")

    def __init__(self, super_properties: Mapping[str, Any], disable_geoip: bool) -> None:
        self.super_properties = dict(super_properties)
        self.disable_geoip = disable_geoip
        self.lib_properties_geoip = {"$lib": LIB_NAME, "$lib_version": VERSION}
        self.lib_properties = {**self.lib_properties_geoip, "$geoip_disable": True}

    def lib(self, disable_geoip: bool | None) -> dict[str, Any]:
        disable = self.disable_geoip if disable_geoip is None else disable_geoip
        return self.lib_properties if disable else self.lib_properties_geoip


def uuid7() -> str:
    """A new RFC 9562 version 7 UUID as a string: millisecond time, then 74 random bits."""
    bits = _random_bits(74)
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (bits >> 62) << 64
        | 0b10 << 62
        | (bits & 0x3FFF_FFFF_FFFF_FFFF)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utc_now() -> str:
    """The current time as ISO 8601 in UTC with microseconds (cached per second)."""
    global _second_prefix
    now = time.time()
    second = int(now)
    cached = _second_prefix
    if cached[0] != second:
        stamp = datetime.datetime.fromtimestamp(second, _UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cached = _second_prefix = (second, stamp)
    return f"{cached[1]}.{int((now - second) * 1_000_000):06d}+00:00"


class InvalidEvent(ValueError):
    """Input that cannot become an event: the client refuses it and counts it as ``invalid``.

    ``kind`` names the problem (a fixed word, never caller data) for rate-limited logging.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def normalize_timestamp(value: Any) -> str:
    """An ISO 8601 UTC string for the same instant; naive datetimes are read as UTC."""
    if value is None:
        return utc_now()
    if isinstance(value, str):
        parsed = _parse_timestamp(value)
        if parsed is None:
            logger.warning("ignoring invalid timestamp %r; using the current time", value[:64])
            return utc_now()
        value = parsed
    if isinstance(value, datetime.datetime):
        try:
            if value.tzinfo is None:
                return value.replace(tzinfo=_UTC).isoformat()
            return value.astimezone(_UTC).isoformat()
        except Exception:  # before year 1 or after 9999 once in UTC, or a broken subclass
            logger.warning("ignoring timestamp %s: it has no UTC time; using the current time",
                           _shown(value))
            return utc_now()
    logger.warning("timestamp must be a datetime or ISO 8601 string, got %s", type(value).__name__)
    return utc_now()


def normalize_uuid(value: Any) -> str:
    """The caller's uuid when it is one, else a new UUIDv7."""
    if value is None:
        return uuid7()
    if isinstance(value, uuid_module.UUID):
        return str(value)
    try:
        return str(uuid_module.UUID(str(value)))
    except Exception:
        logger.warning("ignoring invalid event uuid %s; generating one", _shown(value))
        return uuid7()


def normalize_distinct_id(value: Any) -> str | None:
    """``value`` as a string, None when absent or empty; InvalidEvent when ``str()`` fails."""
    if value is None:
        return None
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception as error:
        raise InvalidEvent("distinct_id", f"a distinct_id of type {type(value).__name__} has no "
                           f"string form (str() raised {type(error).__name__})") from None
    return text or None


def read_mapping(value: Any, what: str) -> dict[str, Any]:
    """A copy of the caller's mapping ``value`` (None: empty); InvalidEvent when it cannot be read.

    Anything that is not a mapping is ignored with a warning, so the event is kept.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        logger.warning("%s must be a mapping, got %s; ignoring them", what, type(value).__name__)
        return {}
    try:
        return dict(value)
    except Exception as error:
        raise InvalidEvent(what, f"{what} could not be read (a {type(value).__name__} whose "
                           f"reading raised {type(error).__name__})") from None


def build_event(
    name: str,
    *,
    distinct_id: Any,
    properties: Mapping[str, Any] | None,
    defaults: EventDefaults,
    context: Scope | None = None,
    timestamp: Any = None,
    uuid: Any = None,
    groups: Mapping[str, Any] | None = None,
    disable_geoip: bool | None = None,
    top_level: Mapping[str, Any] | None = None,
    library_properties: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Event:
    """Assemble one event. Explicit arguments win over the context, the context over defaults.

    ``library_properties`` are built by this library from JSON types only; they win over the
    caller's properties and skip the JSON-safety walk that caller values get. ``flags`` (the
    ``$feature/*`` properties of a snapshot given to ``capture``) are built the same way, win
    over the flags read in the context, and lose to the caller's properties.
    """
    person = distinct_id if type(distinct_id) is str else normalize_distinct_id(distinct_id)
    caller = properties if type(properties) is dict else read_mapping(properties, "properties")
    if context is None:
        merged = {**defaults.super_properties, **caller}
    else:
        if not person:
            found = context[DISTINCT_ID]
            person = found if found is None or isinstance(found, str) else found.resolve()
        tags = context[TAGS]
        if type(tags) is not dict and isinstance(tags, LazyTags):
            tags = tags.resolve()  # one call instead of a Python __getitem__ per tag
        read_flags = context[FLAGS] if len(context) > FLAGS else None
        if read_flags and person in read_flags:  # flags read in this context, for this person
            read = read_flags[person].event_properties()
            flags = {**read, **flags} if flags else read
        merged = {**defaults.super_properties, **tags, **caller}
        if context[SESSION_ID] is not None:
            merged.setdefault("$session_id", context[SESSION_ID])
    if not person:
        person = uuid7()
        merged.setdefault("$process_person_profile", False)
    if groups is not None:
        group_keys = read_mapping(groups, "groups")
        if group_keys:
            merged["$groups"] = group_keys
    merged.update(defaults.lib(disable_geoip))
    trace_api = loaded_module(OTEL_TRACE_MODULE)
    if trace_api is not None:  # the app uses OpenTelemetry: the active span's ids
        add_trace_properties(merged, trace_api)
    if not is_plain(merged):
        merged = make_json_safe(merged)
    if flags:  # after the JSON-safety walk: $active_feature_flags, a list, would force it
        if caller.keys().isdisjoint(flags):
            merged.update(flags)
        else:
            merged.update((key, value) for key, value in flags.items() if key not in caller)
    if library_properties:
        merged.update(library_properties)
    event: Event = {
        "event": name,
        "distinct_id": person,
        "properties": merged,
        "timestamp": utc_now() if timestamp is None else normalize_timestamp(timestamp),
        "uuid": uuid7() if uuid is None else normalize_uuid(uuid),
    }
    if top_level:
        for key, value in top_level.items():
            event[key] = value if is_plain(value) else make_json_safe(value)
    return event


def sendable_problem(event: Event, *, uuid_before: Any, timestamp_before: Any) -> str | None:
    """What makes ``event`` (as ``before_send`` returned it) unsendable, or None when it is fine.

    An event needs a non-empty string name and distinct id, a properties mapping, a uuid and a
    timestamp that serialise as such. The uuid and timestamp the library built are trusted when
    the hook left them as they were, so an untouched event costs a few type checks.
    """
    name = event.get("event")
    if not isinstance(name, str) or not name:
        missing = name is None or isinstance(name, str)  # absent, or the empty string
        return "without an event name" if missing else "whose event name is not a string"
    distinct_id = event.get("distinct_id")
    if not isinstance(distinct_id, str) or not distinct_id:
        return "without a distinct_id string"
    if not isinstance(event.get("properties"), Mapping):
        return "whose properties are not a mapping"
    uuid = event.get("uuid")
    if uuid is not uuid_before and not isinstance(uuid, uuid_module.UUID):
        try:
            uuid_module.UUID(uuid)
        except Exception:
            return "without a valid uuid"
    timestamp = event.get("timestamp")
    if timestamp is not timestamp_before and not isinstance(timestamp, datetime.datetime) and (
            not isinstance(timestamp, str) or _parse_timestamp(timestamp) is None):
        return "without an ISO 8601 timestamp"
    return None


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:64])
    return f"of type {type(value).__name__}"


def _parse_timestamp(text: str) -> datetime.datetime | None:
    text = text.strip()
    if "T" not in text and " " not in text:
        return None  # a bare date is not an instant
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
