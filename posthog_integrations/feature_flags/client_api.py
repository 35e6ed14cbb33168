"""The feature-flag methods of :class:`~posthog_integrations.Client`: snapshots, the
request's own snapshot, and the getters code coming from the official package calls.

Each evaluates through the client's :class:`FlagEvaluator`, and none raises: a failure is
logged once per kind and gives the defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import per_context
from .snapshot import FlagSnapshot

if TYPE_CHECKING:
    from posthog_integrations.core.notices import Notices
    from posthog_integrations.core.options import ClientOptions

    from .evaluator import FlagEvaluator
    from .local.definitions import FlagDefinitions


class FlagMethods:
    """Mixed into the client, which sets ``options``, ``_flags`` and ``_notices``."""

    options: ClientOptions
    _flags: FlagEvaluator
    _notices: Notices

    def evaluate_flags(
        self, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
        person_properties: Mapping[str, Any] | None = None,
        group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
        disable_geoip: bool | None = None, flag_keys: Iterable[str] | None = None,
    ) -> FlagSnapshot:
        """Evaluate flags for ``distinct_id`` (default: the context's) with one ``/flags`` request.

        Without an identity, or on a client that does not send, the snapshot is empty and no
        request is made. Never raises: a failed evaluation gives a snapshot that reads as
        ``flag_defaults``.
        """
        try:
            return self._flags.evaluate(
                distinct_id, groups=groups, person_properties=person_properties,
                group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
                disable_geoip=disable_geoip, flag_keys=flag_keys)
        except Exception:
            self._notices.warn("failed evaluate_flags()", "evaluate_flags() failed; its flags "
                               "read as flag_defaults", exc_info=True)
            return self._flags.empty()

    async def aevaluate_flags(
        self, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
        person_properties: Mapping[str, Any] | None = None,
        group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
        disable_geoip: bool | None = None, flag_keys: Iterable[str] | None = None,
    ) -> FlagSnapshot:
        """:meth:`evaluate_flags` for async code: the request runs in a worker thread."""
        try:
            prepared = self._flags.prepare(
                distinct_id, groups=groups, person_properties=person_properties,
                group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
                disable_geoip=disable_geoip, flag_keys=flag_keys)
            if isinstance(prepared, FlagSnapshot):
                return prepared
            return await asyncio.to_thread(prepared.run)
        except Exception:
            self._notices.warn("failed aevaluate_flags()", "aevaluate_flags() failed; its flags "
                               "read as flag_defaults", exc_info=True)
            return self._flags.empty()

    def flags(self) -> FlagSnapshot:
        """The current context's flags: evaluated once per context and identity, shared with
        the contexts opened inside it.

        After a flag was read from it (``is_enabled``, ``get_flag``), every event captured in
        the context carries ``$feature/<key>`` for the flags read so far and the sorted
        ``$active_feature_flags``. Outside a context, or without a distinct id, an empty
        snapshot and no request. In async code use :meth:`aflags`. Never raises.
        """
        try:
            return per_context.context_flags(self)
        except Exception:
            self._notices.warn("failed flags()", "flags() failed; its flags read as "
                               "flag_defaults", exc_info=True)
            return self._flags.empty()

    async def aflags(self) -> FlagSnapshot:
        """:meth:`flags` for async code: the request runs in a worker thread."""
        try:
            return await per_context.acontext_flags(self)
        except Exception:
            self._notices.warn("failed aflags()", "aflags() failed; its flags read as "
                               "flag_defaults", exc_info=True)
            return self._flags.empty()

    def get_feature_flag(
        self, key: str, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
        person_properties: Mapping[str, Any] | None = None,
        group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
        disable_geoip: bool | None = None, send_feature_flag_events: bool = True,
    ) -> Any:
        """``True``, ``False`` or the variant of flag ``key``, evaluated now for this one flag.

        When it cannot be evaluated: its entry in ``flag_defaults``, else None. Sends
        ``$feature_flag_called`` (once per distinct id, flag, value and groups).
        """
        try:
            return self._flags.evaluate(
                distinct_id, groups=groups, person_properties=person_properties,
                group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
                disable_geoip=disable_geoip, flag_keys=[key], report=send_feature_flag_events,
            ).get_flag(key)
        except Exception:
            self._notices.warn("failed get_feature_flag()", "get_feature_flag() failed; it "
                               "returns the flag's default", exc_info=True)
            return self.options.flag_defaults.get(key)

    def feature_enabled(
        self, key: str, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
        person_properties: Mapping[str, Any] | None = None,
        group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
        disable_geoip: bool | None = None, send_feature_flag_events: bool = True,
    ) -> bool | None:
        """Whether flag ``key`` is on (a variant counts); None when it has no value or default."""
        value = self.get_feature_flag(
            key, distinct_id, groups=groups, person_properties=person_properties,
            group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
            disable_geoip=disable_geoip, send_feature_flag_events=send_feature_flag_events)
        return None if value is None else bool(value)

    def get_feature_flag_payload(
        self, key: str, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
        person_properties: Mapping[str, Any] | None = None,
        group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
        disable_geoip: bool | None = None,
    ) -> Any:
        """The JSON-decoded payload of flag ``key``, evaluated now; None when there is none."""
        try:
            return self._flags.evaluate(
                distinct_id, groups=groups, person_properties=person_properties,
                group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
                disable_geoip=disable_geoip, flag_keys=[key], report=False,
            ).get_flag_payload(key)
        except Exception:
            self._notices.warn("failed get_feature_flag_payload()",
                               "get_feature_flag_payload() failed; it returns None", exc_info=True)
            return None

    def get_all_flags(
        self, distinct_id: Any = None, *, groups: Mapping[str, Any] | None = None,
        person_properties: Mapping[str, Any] | None = None,
        group_properties: Mapping[str, Any] | None = None, only_evaluate_locally: bool = False,
        disable_geoip: bool | None = None,
    ) -> dict[str, Any]:
        """Every flag's value, evaluated now; ``flag_defaults`` fill the flags with no value."""
        try:
            snapshot = self._flags.evaluate(
                distinct_id, groups=groups, person_properties=person_properties,
                group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
                disable_geoip=disable_geoip, report=False)
            values = dict(self.options.flag_defaults)
            values.update((key, snapshot.get_flag(key)) for key in snapshot.keys)
            return values
        except Exception:
            self._notices.warn("failed get_all_flags()", "get_all_flags() failed; it returns "
                               "flag_defaults", exc_info=True)
            return dict(self.options.flag_defaults)

    def load_flags(self, timeout: float | None = None) -> bool:
        """Load the flag definitions for local evaluation now (scripts, tests, start-up).

        Needs ``secret_key``. Waits for one poll, at most ``timeout`` seconds (default
        ``flags_timeout``), and starts the background poller if it is not running; returns
        whether definitions are loaded. Never raises.
        """
        try:
            return self._flags.load_definitions(timeout)
        except Exception:
            self._notices.warn("failed load_flags()", "load_flags() failed", exc_info=True)
            return False

    async def aload_flags(self, timeout: float | None = None) -> bool:
        """:meth:`load_flags` for async code: the wait happens in a worker thread."""
        try:
            return await asyncio.to_thread(self.load_flags, timeout)
        except Exception:
            self._notices.warn("failed aload_flags()", "aload_flags() failed", exc_info=True)
            return False

    def _flag_definitions(self) -> FlagDefinitions | None:
        """The definitions local evaluation reads now; None until some are loaded."""
        return self._flags.definitions()
