"""Flag definitions the sink answers ``GET /flags/definitions`` with, from a JSON file or a mapping.

The file holds what PostHog's endpoint answers, for local evaluation::

    {
      "flags": [{"id": 1, "key": "beta", "active": true,
                 "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}}],
      "group_type_mapping": {"0": "company"},
      "cohorts": {}
    }

The answer carries a strong ``ETag`` computed from the content: a request whose
``If-None-Match`` names it is answered 304, as PostHog does. A request without an
``Authorization: Bearer`` header (the secret key) or without ``?token=`` (the project key) is
answered 401; any bearer token is accepted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from werkzeug.wrappers import Request, Response

from posthog_integrations.feature_flags.local.definitions import FlagDefinitions, parse_definitions

from .api import error_response
from .flags import file_stamp, load_json_file
from .wire import bearer_key

__all__ = ["DEFINITIONS_PATH", "DefinitionsFile", "DefinitionsSetting", "definitions_answer"]

logger = logging.getLogger("posthog_integrations.sink.definitions")

DEFINITIONS_PATH = "/flags/definitions"
DefinitionsSetting = Union[str, "os.PathLike[str]", Mapping[str, Any], None]
_EMPTY: Mapping[str, Any] = {"flags": [], "group_type_mapping": {}, "cohorts": {}}


@dataclass(frozen=True)
class PublishedDefinitions:
    """The answer's body, its ETag (unquoted) and how many flags it defines."""

    body: bytes
    etag: str
    flag_count: int
    definitions: FlagDefinitions = field(compare=False, repr=False)

    def summary(self) -> str:
        return f"{self.flag_count} flag definition" + ("" if self.flag_count == 1 else "s")


def publish(data: Any) -> PublishedDefinitions:
    """Check ``data`` reads as definitions (ValueError when not) and encode it once."""
    definitions = parse_definitions(data)
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    return PublishedDefinitions(body, hashlib.sha256(body).hexdigest()[:32],
                                len(definitions.flags), definitions)


def load_definitions_file(path: Path) -> PublishedDefinitions:
    """Read and check a definitions file; ValueError naming the file and the problem."""
    return load_json_file(path, "definitions", publish)


class DefinitionsFile:
    """The definitions answered: fixed, or from a file re-read whenever it changes.

    ``definitions`` is a path, a mapping in the answer's format, or None for no flags. An
    unreadable configuration raises ValueError; a file that becomes unreadable later keeps the
    last good definitions and logs one warning.
    """

    def __init__(self, definitions: DefinitionsSetting = None) -> None:
        self._lock = threading.Lock()
        self.path: Path | None = None
        self.given = definitions is not None  # then /flags is evaluated from them
        self._stamp: tuple[int, ...] | None = None
        if definitions is None or not isinstance(definitions, (str, os.PathLike)):
            self._published = publish(_EMPTY if definitions is None else definitions)
            return
        self.path = Path(definitions)
        self._stamp = file_stamp(self.path)
        self._published = load_definitions_file(self.path)

    def current(self) -> PublishedDefinitions:
        """The definitions to answer with now, re-reading the file first when it changed."""
        if self.path is None:
            return self._published
        stamp = file_stamp(self.path)
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._published = load_definitions_file(self.path)
                    logger.info("definitions file %s re-read: %s", self.path,
                                self._published.summary())
                except ValueError as exc:
                    logger.warning("%s; /flags/definitions keeps answering with the last good "
                                   "definitions", exc)
            return self._published


def definitions_answer(request: Request, published: PublishedDefinitions) -> Response:
    """The answer to ``request``: 401 without both keys, 304 for a matching ETag, else 200."""
    if bearer_key(request.headers.get("Authorization", "")) is None:
        return error_response(401, "authentication_error", "not_authenticated",
                              "send the secret key as 'Authorization: Bearer <key>'")
    if not request.args.get("token"):
        return error_response(401, "authentication_error", "invalid_api_key",
                              "no project API key: send it as ?token=<key>")
    if request.if_none_match.contains_weak(published.etag):
        response = Response(status=304)
    else:
        response = Response(published.body, status=200, mimetype="application/json")
    response.set_etag(published.etag)
    return response
