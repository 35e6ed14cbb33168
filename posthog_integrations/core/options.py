"""Every client setting and its default, in one typed place.

Precedence when a client is built: keyword arguments > framework settings > environment > default.
Bad values fail here, at configuration time, with a message that names the setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional

DEFAULT_HOST = "https://us.i.posthog.com"
EU_HOST = "https://eu.i.posthog.com"
_HOST_ALIASES = {
    "https://app.posthog.com": DEFAULT_HOST,
    "https://us.posthog.com": DEFAULT_HOST,
    "https://eu.posthog.com": EU_HOST,
}
MIN_POLL_INTERVAL = 0.1  # below this a poller would do little but poll (each poll is billed)
# Other names an option is accepted under: the official package's name for the secret key.
ALIASES = {"personal_api_key": "secret_key"}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
# capture_mode: the names each protocol is accepted under.
CAPTURE_MODES = {"v0": "v0", "legacy": "v0", "v1": "v1", "analytics_v1": "v1"}
# capture_compression (v1 only): None follows the gzip option.
CAPTURE_COMPRESSIONS = {"none": "none", "identity": "none", "gzip": "gzip",
                        "deflate": "deflate", "zstd": "zstd"}
logger = logging.getLogger("posthog_integrations")

Event = dict[str, Any]
BeforeSend = Callable[[Event], Optional[Event]]
OnError = Callable[[Exception, list[Event]], None]


class ConfigurationError(ValueError):
    """A setting has a value the client cannot work with."""


@dataclasses.dataclass(frozen=True)
class ClientOptions:
    """Validated client settings. Build with :meth:`resolve`, which applies the precedence rules."""

    api_key: str = dataclasses.field(default="", repr=False)
    host: str = DEFAULT_HOST
    debug: bool = False
    disabled: bool = False
    send: bool = True
    sync_mode: bool = False
    flush_at: int = 100
    flush_interval: float = 1.0
    max_batch_size: int = 1000
    max_queue_size: int = 10_000
    max_retries: int = 3
    retry_base_delay: float = 0.5
    timeout: float = 15.0
    gzip: bool = True
    capture_mode: str = "v0"  # "v1": POST /i/v1/analytics/events (see core/capture_v1.py)
    capture_compression: str | None = None  # v1 only; None: "gzip" if gzip else "none"
    on_error: OnError | None = None
    before_send: BeforeSend | None = None
    super_properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    disable_geoip: bool = True
    historical_migration: bool = False
    enable_exception_autocapture: bool = False
    exception_rate_limit: tuple[int, float] | None = (30, 2.0)  # (burst, per second); see storms
    # The level from which log records become $exception events (a handler on the root logger
    # while the client runs); None: off. Given as True (ERROR), False, a level name or number.
    capture_logging: int | None = None
    capture_exception_code_variables: bool = False
    project_root: str | None = None
    in_app_include: tuple[str, ...] = ()
    in_app_exclude: tuple[str, ...] = ()
    flags_timeout: float = 3.0
    flag_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    feature_flags_request_max_retries: int = 1
    secret_key: str = dataclasses.field(default="", repr=False)
    poll_interval: float = 30.0
    flag_definitions_cache: str | None = None

    @classmethod
    def names(cls) -> frozenset[str]:
        """Every option's name, and the aliases accepted for some (``personal_api_key``)."""
        return frozenset(field.name for field in dataclasses.fields(cls)) | frozenset(ALIASES)

    @classmethod
    def resolve(
        cls,
        options: Mapping[str, Any],
        *,
        framework: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ClientOptions:
        """Merge keyword options over framework settings over the environment, then validate.

        ``None`` in ``options`` or ``framework`` means "not set here", so the next source applies.
        """
        environ = os.environ if environ is None else environ
        from_environment = _from_environment(environ)
        merged: dict[str, Any] = dict(from_environment)
        for source in (framework or {}, options):
            _reject_unknown(source)
            source = _unaliased(source)
            merged.update((name, value) for name, value in source.items() if value is not None)
        for name, value in from_environment.items():
            if merged[name] is value:  # still the environment's value: say which variable
                _validate_environment_value(name, value)
        return cls(**_validated(merged))

    @property
    def v1_compression(self) -> str:
        """How v1 request bodies are compressed: the option, else what ``gzip`` says."""
        if self.capture_compression is not None:
            return self.capture_compression
        return "gzip" if self.gzip else "none"

    @property
    def effective_disabled(self) -> bool:
        """Disabled explicitly, or no API key to send with."""
        return self.disabled or not self.api_key


def normalize_host(host: str) -> str:
    host = host.strip().rstrip("/")
    if not host:
        return DEFAULT_HOST
    if not host.startswith(("http://", "https://")):
        shown = ("an API key: are api_key and host swapped?" if host.startswith(("phc_", "phx_"))
                 else repr(host))  # never echo a key
        raise ConfigurationError(f"host must start with http:// or https://, got {shown}")
    return _HOST_ALIASES.get(host, host)


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if environ.get("POSTHOG_API_KEY"):
        found["api_key"] = environ["POSTHOG_API_KEY"]
    if environ.get("POSTHOG_HOST"):
        found["host"] = environ["POSTHOG_HOST"]
    if environ.get("POSTHOG_SECRET_KEY"):
        found["secret_key"] = environ["POSTHOG_SECRET_KEY"]
    if environ.get("POSTHOG_FLAG_DEFINITIONS_CACHE"):
        found["flag_definitions_cache"] = environ["POSTHOG_FLAG_DEFINITIONS_CACHE"].strip()
    mode = environ.get("POSTHOG_CAPTURE_MODE", "").strip()
    if mode:
        found["capture_mode"] = _env_choice("POSTHOG_CAPTURE_MODE", mode, CAPTURE_MODES, "v0")
    compression = environ.get("POSTHOG_CAPTURE_COMPRESSION", "").strip()
    if compression:
        chosen = _env_choice("POSTHOG_CAPTURE_COMPRESSION", compression, CAPTURE_COMPRESSIONS,
                             "gzip")
        if chosen == "zstd" and not zstd_available():
            logger.warning("POSTHOG_CAPTURE_COMPRESSION=zstd needs the zstandard package "
                           "(pip install 'posthog-integrations[zstd]'); using gzip")
            chosen = "gzip"
        found["capture_compression"] = chosen
    for name in ("debug", "disabled"):
        variable = f"POSTHOG_{name.upper()}"
        if variable in environ:
            found[name] = _parse_env_bool(variable, environ[variable])
    return found


def _env_choice(variable: str, raw: str, choices: Mapping[str, str], fallback: str) -> str:
    """An environment variable's value among ``choices``; a wrong one warns and falls back."""
    value = choices.get(raw.lower())
    if value is None:
        logger.warning("%s must be one of %s, got %s; using %s", variable, "/".join(choices),
                       shown(raw), fallback)
        return fallback
    return value


def zstd_available() -> bool:
    """True when the optional ``zstandard`` package can be imported."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def _choice(name: str, value: Any, choices: Mapping[str, str]) -> str:
    chosen = choices.get(value.strip().lower()) if isinstance(value, str) else None
    if chosen is None:
        raise ConfigurationError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                                 f"got {shown(value)}")
    return chosen


def _validate_environment_value(name: str, value: Any) -> None:
    try:
        _validated({name: value})
    except ConfigurationError as error:
        raise ConfigurationError(f"POSTHOG_{name.upper()}: {error}") from None


def _parse_env_bool(variable: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{variable} must be one of 1/0, true/false, yes/no, on/off")


def suggest(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or an empty string.

    Compared without case, so ``'api_key'`` finds ``'API_KEY'`` (Django's settings) and
    ``'FLUSH_AT'`` finds ``'flush_at'``; the suggestion is spelt as it is known.
    """
    by_folded = {str(option).lower(): str(option) for option in known}
    close = difflib.get_close_matches(str(name).lower(), list(by_folded), n=1)
    return f"; did you mean {by_folded[close[0]]!r}?" if close else ""


def _reject_unknown(source: Mapping[str, Any]) -> None:
    known = ClientOptions.names()
    for name in source:
        if name not in known:
            raise ConfigurationError(f"unknown PostHog option {name!r}{suggest(name, known)}")


def _unaliased(source: Mapping[str, Any]) -> Mapping[str, Any]:
    """``source`` with each alias given under its option's name; the same option given under
    two names with two values is an error (that shows neither value: they are secrets)."""
    if not any(source.get(alias) is not None for alias in ALIASES):
        return source
    out = {name: value for name, value in source.items() if name not in ALIASES}
    for alias, name in ALIASES.items():
        value = source.get(alias)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigurationError(f"{alias} must be a string, got a {type(value).__name__}")
        if out.get(name) is not None and _stripped(out[name]) != _stripped(value):
            raise ConfigurationError(f"{name} and {alias} are the same setting and were given "
                                     f"different values: give only {name}")
        out[name] = value
    return out


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _validated(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for name in ("debug", "disabled", "send", "sync_mode", "gzip", "disable_geoip",
                 "historical_migration", "enable_exception_autocapture",
                 "capture_exception_code_variables"):
        if name in out and not isinstance(out[name], bool):
            raise ConfigurationError(f"{name} must be True or False, got {shown(out[name])}")
    for name, minimum in (("flush_at", 1), ("max_batch_size", 1), ("max_queue_size", 1)):
        if name in out:
            out[name] = _int(name, out[name], minimum)
    for name in ("max_retries", "feature_flags_request_max_retries"):
        if name in out:
            out[name] = max(0, _int(name, out[name], None))
    for name in ("flush_interval", "timeout", "retry_base_delay", "flags_timeout"):
        if name in out:
            out[name] = positive_seconds(name, out[name])
    for name in ("on_error", "before_send"):
        if name in out and not callable(out[name]):
            raise ConfigurationError(f"{name} must be callable, got {shown(out[name])}")
    for name in ("api_key", "secret_key"):  # never shown: a key is a secret
        if name in out:
            if not isinstance(out[name], str):
                raise ConfigurationError(f"{name} must be a string, got a "
                                         f"{type(out[name]).__name__}")
            out[name] = out[name].strip()
    if "poll_interval" in out:
        out["poll_interval"] = positive_seconds("poll_interval", out["poll_interval"])
        if out["poll_interval"] < MIN_POLL_INTERVAL:
            raise ConfigurationError(f"poll_interval must be at least {MIN_POLL_INTERVAL:g} "
                                     f"seconds, got {out['poll_interval']:g}")
    if "flag_definitions_cache" in out:
        out["flag_definitions_cache"] = _cache_url(out["flag_definitions_cache"])
    if "host" in out:
        if not isinstance(out["host"], str):
            raise ConfigurationError(f"host must be a string, got {shown(out['host'])}")
        out["host"] = normalize_host(out["host"])
    if "super_properties" in out:
        if not isinstance(out["super_properties"], Mapping):
            raise ConfigurationError("super_properties must be a mapping of property names")
        out["super_properties"] = dict(out["super_properties"])
    if "project_root" in out and not isinstance(out["project_root"], str):
        raise ConfigurationError(
            f"project_root must be a path string, got {shown(out['project_root'])}")
    for name in ("in_app_include", "in_app_exclude"):
        if name in out:
            out[name] = _module_names(name, out[name])
    if "flag_defaults" in out:
        out["flag_defaults"] = _flag_defaults(out["flag_defaults"])
    if "exception_rate_limit" in out:
        out["exception_rate_limit"] = _rate_limit("exception_rate_limit",
                                                  out["exception_rate_limit"])
    if "capture_logging" in out:
        out["capture_logging"] = _logging_level(out["capture_logging"])
    if "capture_mode" in out:
        out["capture_mode"] = _choice("capture_mode", out["capture_mode"], CAPTURE_MODES)
    if "capture_compression" in out:
        chosen = _choice("capture_compression", out["capture_compression"],
                         CAPTURE_COMPRESSIONS)
        if chosen == "zstd" and not zstd_available():
            raise ConfigurationError("capture_compression='zstd' needs the zstandard package: "
                                     "pip install 'posthog-integrations[zstd]' (the zstd extra)")
        out["capture_compression"] = chosen
    return out


def _rate_limit(name: str, value: Any) -> tuple[int, float] | None:
    """``(burst, per_second)`` from a pair or a ``{"burst", "per_second"}`` mapping; False
    (or None given directly) turns the limit off."""
    if value is None or value is False:
        return None
    if isinstance(value, Mapping) and set(value) == {"burst", "per_second"}:
        burst, per_second = value["burst"], value["per_second"]
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        burst, per_second = value
    else:
        raise ConfigurationError(f"{name} must be (burst, per_second), {{'burst': ..., "
                                 f"'per_second': ...}} or False, got {shown(value)}")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ConfigurationError(f"{name}: burst must be an integer of at least 1, "
                                 f"got {shown(burst)}")
    if isinstance(per_second, bool) or not isinstance(per_second, (int, float)) or \
            not 0 < per_second < float("inf"):
        raise ConfigurationError(f"{name}: per_second must be a positive number, "
                                 f"got {shown(per_second)}")
    return burst, float(per_second)


def _logging_level(value: Any) -> int | None:
    """``capture_logging``: None when off, else the level from which records are captured."""
    if value is False:
        return None
    if value is True:
        return logging.ERROR
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        level = logging.getLevelName(value.strip().upper())
        if isinstance(level, int):  # a registered level name
            return level
    raise ConfigurationError("capture_logging must be True, False, a logging level name such "
                             f"as 'WARNING' or a level number, got {shown(value)}")


def _cache_url(value: Any) -> str:
    """A Redis URL the shared definitions cache can use here (the `redis` extra installed)."""
    from posthog_integrations.feature_flags.local.shared import check_cache_url

    try:
        check_cache_url(value)
    except ValueError as error:
        # A URL may hold a password: the message shows only its scheme.
        raise ConfigurationError(str(error)) from None
    url: str = value
    return url


def _flag_defaults(value: Any) -> Mapping[str, Any]:
    """``{flag key: True, False or a variant string}``, frozen."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"flag_defaults must be a mapping of flag keys to values, got {shown(value)}")
    for key, default in value.items():
        if not isinstance(key, str) or not key:
            raise ConfigurationError(
                f"flag_defaults keys must be non-empty flag keys, got {shown(key)}")
        if not isinstance(default, (bool, str)):
            raise ConfigurationError(f"flag_defaults[{key!r}] must be True, False or a variant "
                                     f"string, got {shown(default)}")
    return types.MappingProxyType(dict(value))


def _int(name: str, value: Any, minimum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer, got {shown(value)}")
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, cut short; its type when ``repr`` itself fails."""
    try:
        text = repr(value)
    except Exception:
        return f"a {type(value).__name__} whose repr() fails"
    return text if len(text) <= 200 else f"{text[:197]}..."


def positive_seconds(name: str, value: Any) -> float:
    # At most threading.TIMEOUT_MAX: longer (or infinite) waits overflow in the sender's waits
    # and in socket timeouts, failing later instead of here.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0 < value <= threading.TIMEOUT_MAX:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {shown(value)}")
    return float(value)


def _module_names(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(item, str) for item in value
    ):
        raise ConfigurationError(f"{name} must be a list of module names, got {shown(value)}")
    return tuple(value)
