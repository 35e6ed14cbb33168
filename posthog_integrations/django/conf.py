"""``settings.POSTHOG``: one dict, read once, checked, with dotted paths for the hooks.

Keys are upper case: ``API_KEY``, ``HOST``, ``DISABLED``, ``DEBUG``, ``SYNC_MODE``, any other
client option (``FLUSH_AT``, ``BEFORE_SEND``, ...), the request options (``CAPTURE_EXCEPTIONS``,
``CAPTURE_PAGEVIEWS``, ``EXCLUDE_PATHS``, ``TRUSTED_PROXIES``, ``EXTRA_TAGS``, ``TAG_MAP``,
``REQUEST_FILTER``, ``IDENTIFY``, ``FLAG_PERSON_PROPERTIES``, ``FLAG_GROUPS``, ...) and
``IDENTIFY_USER``, and ``CELERY`` (``True``, or a dict of the Celery integration's options in
upper case: ``PROPAGATE``, ``PROPAGATE_TAGS``, ``CAPTURE_TASK_EVENTS``, ``CAPTURE_FAILURES``,
``SHUTDOWN_TIMEOUT``).
Unset keys fall back to the environment (``POSTHOG_API_KEY``,
``POSTHOG_HOST``, ...) and then to the defaults. An unknown
key (a misspelling, a lower-case ``api_key``) is ``ImproperlyConfigured`` naming the closest
known one, raised where the settings are read: the app's ``ready()`` and the middleware's
construction, both at startup.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from posthog_integrations.core.options import ClientOptions, ConfigurationError, suggest
from posthog_integrations.web.options import RequestOptions, RequestSettings

CLIENT_KEYS = frozenset(name.upper() for name in ClientOptions.names())
REQUEST_KEYS = frozenset(name.upper() for name in RequestSettings.__annotations__)
DJANGO_KEYS = frozenset({"IDENTIFY_USER", "CELERY"})
KNOWN_KEYS = CLIENT_KEYS | REQUEST_KEYS | DJANGO_KEYS
HOOK_KEYS = frozenset({"EXTRA_TAGS", "TAG_MAP", "REQUEST_FILTER", "IDENTIFY", "BEFORE_SEND",
                       "ON_ERROR", "FLAG_PERSON_PROPERTIES", "FLAG_GROUPS"})
# POSTHOG["CELERY"] as a dict: PostHogCelery's options, upper case (True: all the defaults).
CELERY_SWITCHES = ("PROPAGATE", "CAPTURE_TASK_EVENTS", "CAPTURE_FAILURES")
CELERY_KEYS = frozenset({*CELERY_SWITCHES, "PROPAGATE_TAGS", "SHUTDOWN_TIMEOUT"})
# The official package's flat settings, each with the POSTHOG key it stands for (first wins).
OFFICIAL_SETTINGS = (
    ("POSTHOG_MW_CAPTURE_EXCEPTIONS", "CAPTURE_EXCEPTIONS"),
    ("POSTHOG_MW_REQUEST_FILTER", "REQUEST_FILTER"),
    ("POSTHOG_MW_EXTRA_PROPERTIES", "EXTRA_TAGS"),
    ("POSTHOG_MW_EXTRA_TAGS", "EXTRA_TAGS"),
    ("POSTHOG_MW_PROPERTIES_MAP", "TAG_MAP"),
    ("POSTHOG_MW_TAG_MAP", "TAG_MAP"),
    ("POSTHOG_MW_CAPTURE_TRACING_HEADERS", "CAPTURE_TRACING_HEADERS"),
    ("POSTHOG_MW_TRUST_TRACING_HEADERS", "CAPTURE_TRACING_HEADERS"),
)


@dataclasses.dataclass(frozen=True)
class DjangoConfig:
    """``settings.POSTHOG``, split into what the client, the requests and Django itself take."""

    client_options: dict[str, Any]
    request_options: RequestOptions
    identify_user: bool
    # PostHogCelery's keyword arguments, or None when POSTHOG["CELERY"] is unset or False.
    celery: dict[str, Any] | None = None


def posthog_settings() -> Mapping[str, Any]:
    value = getattr(settings, "POSTHOG", None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"settings.POSTHOG must be a dict such as {{'API_KEY': 'phc_...'}}, got "
            f"{type(value).__name__}"
        )
    return value


def load(*, official_settings: bool = False) -> DjangoConfig:
    """Read and check ``settings.POSTHOG``; raise ``ImproperlyConfigured`` naming a bad key.

    With ``official_settings``, the official package's ``POSTHOG_MW_*`` settings fill in what
    ``settings.POSTHOG`` leaves unset.
    """
    raw = dict(posthog_settings())
    for key in raw:
        if key not in KNOWN_KEYS:
            raise ImproperlyConfigured(
                f"settings.POSTHOG: unknown key {key!r}{suggest(str(key), KNOWN_KEYS)}")
    if official_settings:
        for name, key in OFFICIAL_SETTINGS:
            if key not in raw and hasattr(settings, name):
                raw[key] = getattr(settings, name)
    values = {key: _resolve_hook(key, value) if key in HOOK_KEYS else value
              for key, value in raw.items()}
    client_options = {key.lower(): value for key, value in values.items() if key in CLIENT_KEYS}
    try:
        ClientOptions.resolve(client_options, environ={})  # check the values now, not later
        request_options = RequestOptions.build(
            {key.lower(): value for key, value in values.items() if key in REQUEST_KEYS}
        )
    except ConfigurationError as error:
        raise ImproperlyConfigured(_naming_the_key(str(error))) from None
    identify_user = values.get("IDENTIFY_USER", True)
    if not isinstance(identify_user, bool):
        raise ImproperlyConfigured(
            f"settings.POSTHOG['IDENTIFY_USER']: expected True or False, got {identify_user!r}"
        )
    celery = _celery_options(values.get("CELERY"))
    return DjangoConfig(client_options, request_options, identify_user, celery)


def _celery_options(value: Any) -> dict[str, Any] | None:
    """``POSTHOG["CELERY"]`` as PostHogCelery's keyword arguments; None: no Celery binding."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            "settings.POSTHOG['CELERY']: expected True, False or a dict of options such as "
            f"{{'CAPTURE_TASK_EVENTS': True}}, got {type(value).__name__}")
    options = {}
    for key, option in value.items():
        if key not in CELERY_KEYS:
            raise ImproperlyConfigured(f"settings.POSTHOG['CELERY']: unknown key "
                                       f"{key!r}{suggest(str(key), CELERY_KEYS)}")
        name = f"settings.POSTHOG['CELERY'][{key!r}]"
        if key in CELERY_SWITCHES and not isinstance(option, bool):
            raise ImproperlyConfigured(f"{name}: expected True or False, got {option!r}")
        if key == "PROPAGATE_TAGS":
            option = _propagate_tags(name, option)
        if key == "SHUTDOWN_TIMEOUT" and not (
                type(option) in (int, float) and math.isfinite(option) and option > 0):
            raise ImproperlyConfigured(
                f"{name}: expected a positive number of seconds, got {option!r}")
        options[key.lower()] = option
    return options


def _propagate_tags(name: str, value: Any) -> Any:
    """None, a callable (or its dotted path), or an iterable of tag names, kept as given."""
    if isinstance(value, str):
        try:
            return import_string(value)
        except ImportError as error:
            raise ImproperlyConfigured(
                f"{name}: cannot import {value!r} ({error}); expected a list of tag names or "
                "the dotted path of a function") from None
    if value is None or callable(value):
        return value
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        raise ImproperlyConfigured(
            f"{name}: expected None, a list of tag names or a function, got {value!r}")
    if isinstance(value, Iterator):  # read once here: keep what was read
        value = tuple(value)
    for tag in value:
        if not isinstance(tag, str):
            raise ImproperlyConfigured(f"{name}: expected tag names (strings), got {tag!r}")
    return value


def _resolve_hook(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return import_string(value)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"settings.POSTHOG[{key!r}]: cannot import {value!r} ({error})"
        ) from None


def _naming_the_key(message: str) -> str:
    """``flush_at must be ...`` becomes ``settings.POSTHOG['FLUSH_AT'] must be ...``."""
    name, _, rest = message.partition(" ")
    key = name.rstrip(":").upper()
    if key in KNOWN_KEYS:
        return f"settings.POSTHOG[{key!r}]{':' if name.endswith(':') else ''} {rest}"
    return f"settings.POSTHOG: {message}"
