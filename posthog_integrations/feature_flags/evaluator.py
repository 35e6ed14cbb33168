"""A client's flag evaluations: who to evaluate for, the one ``/flags`` request, the events.

Below the client and above the request: it resolves the identity (the argument, else the current
context's), decides whether a request may be made at all, makes it over the client's own flags
transport, and turns the answer into a :class:`FlagSnapshot` whose reads send
``$feature_flag_called`` through the client's capture.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional

from posthog_integrations.core.context import get_context_distinct_id
from posthog_integrations.core.events import InvalidEvent, normalize_distinct_id
from posthog_integrations.core.options import ClientOptions
from posthog_integrations.core.transport import Transport

from . import overrides
from .called import CalledTracker, called_properties
from .local.definitions import NO_DEFINITIONS, FlagDefinitions
from .local.poller import DefinitionsPoller
from .local_records import decide_locally
from .records import FlagRecord, FlagResponse, FlagValue
from .remote import FlagsFailure, FlagsRequest, fetch_flags
from .request_inputs import FlagInputs, request_flag_inputs
from .snapshot import FlagSnapshot

logger = logging.getLogger("posthog_integrations")

QUOTA_LIMITED = "quota_limited"
Capture = Callable[..., Optional[str]]
_live_evaluators: weakref.WeakSet[FlagEvaluator] = weakref.WeakSet()


@dataclasses.dataclass(frozen=True)
class PendingEvaluation:
    """An evaluation that needs its ``/flags`` request; :meth:`run` makes it (blocking).
    ``local`` holds the flags local evaluation decided: the request asks only for the others."""

    evaluator: FlagEvaluator
    request: FlagsRequest
    report: bool
    local: Mapping[str, FlagRecord] = dataclasses.field(default_factory=dict)

    def run(self) -> FlagSnapshot:
        return self.evaluator._run(self)


class FlagEvaluator:
    """Evaluates flags for one client: locally from the polled definitions (given a secret key)
    what they decide, with one ``/flags`` request for the rest. Thread-safe; never raises from
    its entry points."""

    def __init__(self, options: ClientOptions, capture: Capture, *, active: bool) -> None:
        self._options = options
        self._capture = capture
        self._active = active
        self._tracker = CalledTracker()
        self._lock = threading.Lock()
        self._transport: Transport | None = None
        self._transport_pid = 0
        self._logged: set[str] = set()
        # Definitions for local evaluation are polled by a client that sends, given a secret key.
        self._poller = DefinitionsPoller(options) if active and options.secret_key else None
        _live_evaluators.add(self)

    def stop(self) -> None:
        """No more requests; forget which ``$feature_flag_called`` events were sent."""
        self._active = False
        self._tracker.clear()
        with self._lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        if self._poller is not None:
            self._poller.stop()

    def definitions(self) -> FlagDefinitions | None:
        """The flag definitions for local evaluation, None until some are loaded (and always
        without a secret key). The first call starts the poller; none waits for it."""
        poller = self._poller
        return None if poller is None else poller.current()

    def load_definitions(self, timeout: float | None) -> bool:
        """Poll for the definitions now, waiting up to ``timeout`` (default ``flags_timeout``)
        seconds; whether definitions are loaded."""
        if self._poller is None:
            if not self._options.secret_key:
                self._log_once("load_flags", "load_flags() needs a secret key (secret_key or "
                               "POSTHOG_SECRET_KEY): no flag definitions are loaded")
            else:
                logger.debug("load_flags(): this client sends nothing (no API key, disabled or "
                             "send=False), so it loads no flag definitions")
            return False
        return self._poller.load(self._options.flags_timeout if timeout is None else timeout)

    def prepare(self, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
                person_properties: Mapping[str, Any] | None = None,
                group_properties: Mapping[str, Any] | None = None,
                only_evaluate_locally: bool = False, disable_geoip: bool | None = None,
                flag_keys: Iterable[str] | None = None,
                report: bool = True) -> FlagSnapshot | PendingEvaluation:
        """A finished snapshot when no request is needed, else the request to make.

        Evaluated for the current request's person, the request's ``flag_groups`` and
        ``flag_person_properties`` hooks supply groups and person properties (the arguments win).
        """
        person = self._identity(distinct_id)
        geoip = self._options.disable_geoip if disable_geoip is None else bool(disable_geoip)
        group_keys = self._mapping(groups, "groups")
        person_props = self._mapping(person_properties, "person_properties")
        if person is not None:
            from_request = self._request_inputs(person)
            if from_request is not None:
                group_keys = {**from_request.groups, **group_keys}
                person_props = {**from_request.person_properties, **person_props}
        overridden = overrides.current  # set only by posthog_integrations.testing
        if overridden is not None:
            return overridden.snapshot(person, group_keys, geoip, _keys(flag_keys),
                                       defaults=self._options.flag_defaults,
                                       reporter=self._report if report else None)
        if person is None or not self._active:
            return self.empty(person, group_keys, geoip, report=False)
        keys = _keys(flag_keys)
        if keys == []:
            return self.empty(person, group_keys, geoip, report=False)
        group_props = self._mapping(group_properties, "group_properties")
        definitions = self.definitions()  # never waits: not loaded yet means remote, as before
        local: Mapping[str, FlagRecord] = {}
        if definitions is not None and definitions is not NO_DEFINITIONS:
            decision = decide_locally(definitions, keys, distinct_id=person, groups=group_keys,
                                      person_properties=person_props,
                                      group_properties=group_props)
            if not decision.undecided or only_evaluate_locally:
                return FlagSnapshot(decision.with_inconclusive(), distinct_id=person,
                                    groups=group_keys, disable_geoip=geoip,
                                    defaults=self._options.flag_defaults,
                                    reporter=self._report if report else None)
            local, keys = decision.records, decision.undecided
        elif only_evaluate_locally:
            # No definitions: nothing can be decided without the server.
            return self.empty(person, group_keys, geoip, report=report)
        request = FlagsRequest(
            distinct_id=person, groups=group_keys, person_properties=person_props,
            group_properties=group_props, disable_geoip=geoip, flag_keys=keys,
        )
        return PendingEvaluation(self, request, report, local)

    def evaluate(self, distinct_id: Any = None, **arguments: Any) -> FlagSnapshot:
        """Evaluate now, blocking for the request when one is needed."""
        prepared = self.prepare(distinct_id, **arguments)
        return prepared if isinstance(prepared, FlagSnapshot) else prepared.run()

    def empty(self, distinct_id: str | None = None, groups: Mapping[str, Any] | None = None,
              disable_geoip: bool | None = None, *, report: bool = False) -> FlagSnapshot:
        """A snapshot holding no flag: every read gives the defaults."""
        return FlagSnapshot(distinct_id=distinct_id, groups=groups, disable_geoip=disable_geoip,
                            defaults=self._options.flag_defaults,
                            reporter=self._report if report else None)

    def _run(self, pending: PendingEvaluation) -> FlagSnapshot:
        request = pending.request
        try:
            body = request.body(self._options.api_key)
            outcome: FlagsFailure | FlagResponse = fetch_flags(
                self._flags_transport(), body,
                max_retries=self._options.feature_flags_request_max_retries)
        except Exception as error:  # before sending: never retried
            outcome = FlagsFailure("unknown_error", type(error).__name__)
        reporter = self._report if pending.report else None
        common: dict[str, Any] = {
            "distinct_id": request.distinct_id, "groups": request.groups,
            "disable_geoip": request.disable_geoip, "defaults": self._options.flag_defaults,
            "reporter": reporter,
        }
        local = pending.local  # kept whatever the request gives
        if isinstance(outcome, FlagsFailure):
            self._log_once(outcome.code, "feature flags could not be evaluated (%s): %s; reads "
                           "return flag_defaults", outcome.code, self._redacted(outcome.detail))
            return FlagSnapshot(local, failure=outcome.code, **common)
        if outcome.quota_limited:
            self._log_once(QUOTA_LIMITED, "feature flags are quota limited by PostHog; reads "
                           "return flag_defaults")
            return FlagSnapshot(local, failure=QUOTA_LIMITED, request_id=outcome.request_id,
                                evaluated_at=outcome.evaluated_at, **common)
        records: dict[str, FlagRecord] = dict(outcome.records)
        if request.flag_keys is not None:
            wanted = set(request.flag_keys)
            records = {key: record for key, record in records.items() if key in wanted}
        records.update(local)  # a flag decided locally keeps its local value
        return FlagSnapshot(records, request_id=outcome.request_id,
                            evaluated_at=outcome.evaluated_at,
                            errors_while_computing=outcome.errors_while_computing, **common)

    def _report(self, snapshot: FlagSnapshot, key: str, value: FlagValue | None,
                record: FlagRecord | None, errors: list[str]) -> None:
        """Send ``$feature_flag_called`` for a read, unless it was sent already."""
        try:
            person = snapshot.distinct_id
            if person is None or not self._tracker.first_time(person, key, value,
                                                              snapshot.groups):
                return
            properties = called_properties(key, value, record, errors=errors,
                                           request_id=snapshot.request_id,
                                           evaluated_at=snapshot.evaluated_at)
            self._capture("$feature_flag_called", distinct_id=person, properties=properties,
                          groups=dict(snapshot.groups) or None,
                          disable_geoip=snapshot.disable_geoip)
        except Exception:
            self._log_once("report", "sending $feature_flag_called failed", exc_info=True)

    def _flags_transport(self) -> Transport:
        pid = os.getpid()
        with self._lock:
            # A forked child must not share its parent's connections.
            if self._transport is None or self._transport_pid != pid:
                self._transport = Transport(self._options.host, self._options.api_key,
                                            timeout=self._options.flags_timeout, gzip=False)
                self._transport_pid = pid
            return self._transport

    def _identity(self, distinct_id: Any) -> str | None:
        try:
            person = normalize_distinct_id(distinct_id)
        except InvalidEvent as error:
            self._log_once("distinct_id", "flags not evaluated: %s", error)
            return None
        # The context's user, looked up now if the adapter left it lazy (a logged-in user wins
        # over the browser's header).
        return person if person is not None else get_context_distinct_id()

    def _request_inputs(self, person: str) -> FlagInputs | None:
        """The current request's flag groups and person properties; None when it has none or
        reading them failed (logged: the flags are evaluated without them)."""
        try:
            return request_flag_inputs(person)
        except Exception:
            self._log_once("request_inputs", "the request's flag groups and person properties "
                           "could not be read; flags are evaluated without them", exc_info=True)
            return None

    def _mapping(self, value: Any, name: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self._log_once(name, "%s must be a mapping, got %s; it is ignored", name,
                           type(value).__name__)
            return {}
        return {str(key): item for key, item in value.items()}

    def _after_fork_in_child(self) -> None:
        """New locks (a parent thread may have held one at the fork) and no parent connection."""
        self._lock = threading.Lock()
        self._transport = None
        self._tracker.after_fork_in_child()

    def _log_once(self, kind: str, message: str, *args: Any, exc_info: bool = False) -> None:
        """A warning the first time a kind of failure happens in this client, debug after."""
        with self._lock:
            first = kind not in self._logged
            self._logged.add(kind)
        logger.log(logging.WARNING if first else logging.DEBUG, message, *args,
                   exc_info=exc_info)

    def _redacted(self, text: str) -> str:
        key = self._options.api_key
        return text.replace(key, "<api key>") if key else text


def _keys(flag_keys: Iterable[str] | None) -> list[str] | None:
    if flag_keys is None:
        return None
    if isinstance(flag_keys, str):
        return [flag_keys]
    return [str(key) for key in dict.fromkeys(flag_keys)]


def forget_called_events() -> None:
    """Every client forgets which ``$feature_flag_called`` events it sent."""
    for evaluator in list(_live_evaluators):
        evaluator._tracker.clear()


def _reset_after_fork() -> None:
    for evaluator in list(_live_evaluators):
        evaluator._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
