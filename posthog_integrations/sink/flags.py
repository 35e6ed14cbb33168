"""Feature flag values the sink answers ``/flags`` with, from a JSON file or a mapping.

The file format::

    {
      "flags": {"new-checkout": "test", "dark-mode": true, "beta": false},
      "payloads": {"new-checkout": {"color": "blue"}},
      "distinct_ids": {"user-42": {"new-checkout": "control"}}
    }

``flags`` gives every flag's value for everyone: ``true`` or ``false``, or a string naming the
variant. ``distinct_ids`` gives some distinct ids their own values, which win over ``flags``.
``payloads`` gives a flag a payload (any JSON value), sent whenever the flag is enabled. Every
flag named in ``payloads`` or ``distinct_ids`` must be declared in ``flags``, so a typo is an
error rather than a flag that silently never matches.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar, Union

from .body import MAX_BODY_BYTES, BadRequest

__all__ = [
    "FlagDefinition",
    "FlagSource",
    "FlagsRequest",
    "MissingKey",
    "flags_answer",
    "flags_request",
    "parse_flags",
]

logger = logging.getLogger("posthog_integrations.sink.flags")

FlagValue = Union[bool, str]
FlagsSetting = Union[str, "os.PathLike[str]", Mapping[str, Any], None]
_TOP_LEVEL = ("flags", "payloads", "distinct_ids")
# A flags file is written by hand; anything this large is a mistake, not a configuration.
MAX_FLAGS_FILE_BYTES = MAX_BODY_BYTES
Parsed = TypeVar("Parsed")


@dataclass(frozen=True)
class FlagDefinition:
    """One flag: its value for everyone, the distinct ids with their own, and its payload."""

    key: str
    default: FlagValue
    overrides: dict[str, FlagValue]
    payload: str | None  # JSON-encoded, as /flags sends it

    def value_for(self, distinct_id: str) -> tuple[FlagValue, bool]:
        """The flag's value for ``distinct_id`` and whether it is that id's own."""
        if distinct_id in self.overrides:
            return self.overrides[distinct_id], True
        return self.default, False


@dataclass(frozen=True)
class PublishedFlag:
    """A definition with the id and version /flags reports; the version grows on each change."""

    definition: FlagDefinition
    id: int
    version: int


def _shown(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _flag_value(value: Any, where: str) -> FlagValue:
    if isinstance(value, bool) or (isinstance(value, str) and value):
        return value
    raise ValueError(f"{where} must be true, false or a variant name, not {_shown(value)}")


def _object(config: Mapping[str, Any], name: str, what: str) -> Mapping[Any, Any]:
    value = config.get(name, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"'{name}' must be an object of {what}, not {_shown(value)}")
    return value


def _keyed(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {what} must be a non-empty string, not {_shown(name)}")
    return name


def parse_flags(config: Any) -> dict[str, FlagDefinition]:
    """Validate a flags configuration; raises ValueError naming the first problem."""
    if not isinstance(config, Mapping):
        raise ValueError(
            f"the flags configuration must be a JSON object with a 'flags' object, not"
            f" {_shown(config)}"
        )
    for name in config:
        if name not in _TOP_LEVEL:
            expected = ", ".join(f"'{n}'" for n in _TOP_LEVEL)
            raise ValueError(f"unknown key {name!r} (expected {expected})")
    defaults = {
        _keyed(key, "flag key"): _flag_value(value, f"flags.{key}")
        for key, value in _object(config, "flags", "flag key to value").items()
    }
    payloads: dict[str, str | None] = {}
    for key, payload in _object(config, "payloads", "flag key to payload").items():
        if key not in defaults:
            raise ValueError(f"payloads.{key} is not a flag declared in 'flags'")
        try:
            payloads[key] = None if payload is None else json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payloads.{key} must be a JSON value: {exc}") from None
    overrides: dict[str, dict[str, FlagValue]] = {key: {} for key in defaults}
    for distinct_id, own in _object(config, "distinct_ids", "distinct id to flags").items():
        _keyed(distinct_id, "distinct id")
        if not isinstance(own, Mapping):
            raise ValueError(
                f"distinct_ids.{distinct_id} must be an object of flag key to value,"
                f" not {_shown(own)}"
            )
        for key, value in own.items():
            if key not in defaults:
                raise ValueError(
                    f"distinct_ids.{distinct_id}.{key} is not a flag declared in 'flags'"
                )
            overrides[key][distinct_id] = _flag_value(value, f"distinct_ids.{distinct_id}.{key}")
    return {
        key: FlagDefinition(key, value, overrides[key], payloads.get(key))
        for key, value in defaults.items()
    }


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json_file(path: Path, kind: str, parse: Callable[[Any], Parsed]) -> Parsed:
    """Read a JSON file of at most :data:`MAX_FLAGS_FILE_BYTES` and ``parse`` it; ValueError
    naming the ``kind`` of file, its path and the problem."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FLAGS_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{kind} file {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        if len(raw) > MAX_FLAGS_FILE_BYTES:
            raise ValueError(f"it is over {MAX_FLAGS_FILE_BYTES} bytes")
        try:
            data = json.loads(raw, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        return parse(data)
    except ValueError as exc:
        raise ValueError(f"{kind} file {path}: {exc}") from None


def load_flags_file(path: Path) -> dict[str, FlagDefinition]:
    """Read and validate a flags file; raises ValueError naming the file and the problem."""
    return load_json_file(path, "flags", parse_flags)


def describe(flags: Mapping[str, PublishedFlag]) -> str:
    """``3 flags, 1 distinct id with its own values``: for the banner and the log."""
    ids = {d for flag in flags.values() for d in flag.definition.overrides}
    text = f"{len(flags)} flag" + ("" if len(flags) == 1 else "s")
    if len(ids) == 1:
        text += ", 1 distinct id with its own values"
    elif ids:
        text += f", {len(ids)} distinct ids with their own values"
    return text


def file_stamp(path: Path) -> tuple[int, ...] | None:
    """What changes when the file is edited or replaced; None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev)


class FlagSource:
    """The flags /flags answers with: fixed, or from a file re-read whenever it changes.

    ``flags`` is a path or a mapping in the file format (see the module docstring), or None
    for no flags. An invalid configuration raises ValueError; a file that becomes invalid
    later keeps the last good values and logs one warning.
    """

    def __init__(self, flags: FlagsSetting = None) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, PublishedFlag] = {}
        self._published: dict[str, PublishedFlag] = {}
        self.path: Path | None = None
        self._stamp: tuple[int, ...] | None = None
        self.given = flags is not None  # then /flags answers from them, definitions or not
        if flags is None:
            return
        if not isinstance(flags, (str, os.PathLike)):
            self._publish(parse_flags(flags))
            return
        self.path = Path(flags)
        self._stamp = file_stamp(self.path)
        self._publish(load_flags_file(self.path))

    def current(self) -> dict[str, PublishedFlag]:
        """The flags to answer with now, re-reading the file first when it changed."""
        if self.path is None:
            return self._published
        stamp = file_stamp(self.path)
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload(self.path)
            return self._published

    def summary(self) -> str:
        """A short description, e.g. ``3 flags, 1 distinct id with its own values``."""
        return describe(self.current())

    def _reload(self, path: Path) -> None:
        try:
            definitions = load_flags_file(path)
        except ValueError as exc:
            logger.warning("%s; /flags keeps answering with the last good values", exc)
            return
        self._publish(definitions)
        logger.info("flags file %s re-read: %s", path, describe(self._published))

    def _publish(self, definitions: dict[str, FlagDefinition]) -> None:
        published = {}
        for key, definition in definitions.items():
            prior = self._known.get(key)
            if prior is None:
                flag = PublishedFlag(definition, id=len(self._known) + 1, version=1)
            elif prior.definition == definition:
                flag = prior
            else:
                flag = PublishedFlag(definition, id=prior.id, version=prior.version + 1)
            self._known[key] = published[key] = flag
        self._published = published


class MissingKey(Exception):
    """A /flags request without a project token; the message is safe to send back."""


@dataclass(frozen=True)
class FlagsRequest:
    """What the sink needs from a /flags body."""

    distinct_id: str
    keys: list[str] | None


def flags_request(body: Any) -> FlagsRequest:
    """Read a /flags body; raises BadRequest or MissingKey with a message for the client."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    key = body.get("token") or body.get("api_key")
    if not isinstance(key, str) or not key:
        raise MissingKey("no project API key: send it as 'token' (or 'api_key') in the body")
    distinct_id = body.get("distinct_id")
    if isinstance(distinct_id, int) and not isinstance(distinct_id, bool):
        distinct_id = str(distinct_id)
    if not isinstance(distinct_id, str) or not distinct_id:
        raise BadRequest("distinct_id is required: a non-empty string")
    keys = body.get("flag_keys_to_evaluate")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise BadRequest("flag_keys_to_evaluate must be a list of flag keys")
    return FlagsRequest(distinct_id, keys)


def _record(flag: PublishedFlag, distinct_id: str) -> dict[str, Any]:
    definition = flag.definition
    value, own = definition.value_for(distinct_id)
    enabled = value is not False
    where = "this distinct id's value in the flags file" if own else "the flags file's value"
    if enabled:
        reason = {"code": "condition_match", "condition_index": 0, "description": f"On: {where}"}
    else:
        reason = {"code": "no_condition_match", "condition_index": None,
                  "description": f"Off: {where}"}
    return {
        "key": definition.key,
        "enabled": enabled,
        "variant": value if isinstance(value, str) else None,
        "reason": reason,
        "metadata": {
            "id": flag.id,
            "version": flag.version,
            "payload": definition.payload if enabled else None,
            "description": "",
        },
        "failed": False,
    }


def flags_answer(flags: Mapping[str, PublishedFlag], request: FlagsRequest) -> dict[str, Any]:
    """The v2 /flags answer for ``request``."""
    wanted = None if request.keys is None else set(request.keys)
    records = {
        key: _record(flag, request.distinct_id)
        for key, flag in flags.items()
        if wanted is None or key in wanted
    }
    return {
        "flags": records,
        "errorsWhileComputingFlags": False,
        "requestId": str(uuid.uuid4()),
        "evaluatedAt": int(time.time() * 1000),
    }
