"""The Flask extension: ``PostHog(app)``, or ``ext = PostHog()`` then ``ext.init_app(app)``."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import sys
from typing import Any, Callable

from flask import Flask, current_app, got_request_exception, has_app_context, has_request_context
from flask import request as flask_request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

import posthog_integrations
from posthog_integrations.core.client import Client
from posthog_integrations.core.default_client import default_client
from posthog_integrations.core.options import ClientOptions, ConfigurationError, suggest
from posthog_integrations.feature_flags.bootstrap import bootstrap_json
from posthog_integrations.web import RequestInfo, current_request
from posthog_integrations.web.options import RequestSettings
from posthog_integrations.wsgi import PostHogMiddleware

logger = logging.getLogger("posthog_integrations")

EXTENSION_KEY = "posthog"
CONFIG_PREFIX = "POSTHOG_"
CLIENT_OPTIONS = frozenset(ClientOptions.names())
REQUEST_OPTIONS = frozenset(RequestSettings.__annotations__)
HOOKS = frozenset({"extra_tags", "tag_map", "request_filter", "identify",
                   "flag_person_properties", "flag_groups"})
EXTENSION_OPTIONS = frozenset({"identify_user"})
OPTIONS = CLIENT_OPTIONS | REQUEST_OPTIONS | EXTENSION_OPTIONS
"""Every setting the extension reads, as keyword arguments; ``POSTHOG_`` + upper case in
``app.config``."""
SIGNAL_SOURCE = "flask.got_request_exception"  # $exception_source of what Flask's signal reports
OWN_CLIENT_HINT = "PostHog(app).client, app.extensions['posthog'].client"


@dataclasses.dataclass(frozen=True)
class _AppState:
    """What the extension keeps per app, in ``app.extensions["posthog"]``."""

    client: Client
    identify_user: bool
    owns_client: bool


class _FlaskMiddleware(PostHogMiddleware):
    """The WSGI middleware, describing requests with Flask's matched URL rule and identifying
    them by Flask-Login's user (with ``identify_user``). What Flask's signal reports comes
    from ``flask.got_request_exception``; what fails outside Flask's request handling (a
    streamed body) is caught here, as ``wsgi.middleware``."""

    def __init__(self, app: Any, *, identify_user: bool, **options: Any) -> None:
        self._identify_user = identify_user
        super().__init__(app, **options)

    def user_finder(self) -> Callable[[dict[str, Any]], str | None] | None:
        return _flask_login_user_id if self._identify_user else None

    @staticmethod
    def read_info(environ: dict[str, Any]) -> RequestInfo:
        info = RequestInfo.from_wsgi(environ)
        request = environ.get("werkzeug.request")
        if request is None and has_request_context():  # a body streamed with its context
            request = flask_request._get_current_object()  # type: ignore[attr-defined]
        rule = getattr(request, "url_rule", None)
        return info._replace(route=rule.rule) if rule is not None else info


class PostHog:
    """PostHog for a Flask app: a context per request, exceptions captured, a client per app.

    Configuration comes from ``app.config`` (``POSTHOG_API_KEY``, ``POSTHOG_HOST``,
    ``POSTHOG_CAPTURE_PAGEVIEWS``, ... any client or request option with the ``POSTHOG_``
    prefix, plus ``POSTHOG_IDENTIFY_USER``: Flask-Login's user, when the app uses it, wins over
    the tracing header), then from keyword arguments given here as defaults,
    then the environment. Pass ``client=`` to use a client of your own.

    Module-level calls (``posthog_integrations.capture(...)``) in a request use the app's client.
    Outside a request (a ``flask`` CLI command, a thread, start-up code, an excluded path) they
    use the default client; while no module setting or ``configure()`` sets that, and this is
    the only app set up (or all share one client), the default client is the app's client.

    Every ``POSTHOG_*`` key of ``app.config`` is taken as a setting of this extension: one it
    does not know (a misspelling such as ``POSTHOG_FLUSH_ATT``) is a ``ConfigurationError`` at
    ``init_app``, as is an unknown keyword argument here.
    """

    def __init__(self, app: Flask | None = None, *, client: Client | None = None,
                 **options: Any) -> None:
        if client is not None and not isinstance(client, Client):  # not echoed: an API key?
            raise ConfigurationError(f"PostHog(client=...): expected a posthog_integrations."
                                     f"Client, got {type(client).__name__}")
        for name in options:
            if name not in OPTIONS:
                raise ConfigurationError(f"unknown PostHog option {name!r}"
                                         f"{suggest(name, OPTIONS)}")
        self._client = client
        self._defaults = options
        self._last_client: Client | None = None
        if app is not None:
            self.init_app(app)

    @property
    def client(self) -> Client:
        """The client of the current app (or of the app set up last, outside an app context)."""
        if has_app_context() and EXTENSION_KEY in current_app.extensions:
            state: _AppState = current_app.extensions[EXTENSION_KEY]
            return state.client
        if self._last_client is None:
            raise RuntimeError("PostHog has not been set up on an app yet: call init_app(app)")
        return self._last_client

    def init_app(self, app: Flask) -> None:
        """Set up ``app``: configuration, the request context around ``wsgi_app``, signals."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"PostHog is already set up on the app {app.name!r}: call init_app once per "
                "app and reuse the PostHog instance (its .client is the app's client)"
            )
        for name, value in self._defaults.items():
            app.config.setdefault(f"{CONFIG_PREFIX}{name.upper()}", value)
        client_options, request_options, identify_user = _read_config(app)
        try:
            client = self._client or Client(**client_options)
            middleware = _FlaskMiddleware(app.wsgi_app, client=client,
                                          identify_user=identify_user, **request_options)
        except ConfigurationError as error:
            raise ConfigurationError(_naming_the_key(str(error))) from None
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.extensions[EXTENSION_KEY] = _AppState(client, identify_user, self._client is None)
        self._last_client = client
        default_client.offer(client, "Flask", OWN_CLIENT_HINT)
        got_request_exception.connect(_on_request_exception, app, weak=False)
        app.add_template_global(posthog_bootstrap)
        app.cli.add_command(_cli_group())


def posthog_bootstrap(identified: bool | None = None) -> Markup:
    """Jinja global: ``{{ posthog_bootstrap() }}`` inside ``<script>`` gives posthog-js's
    bootstrap config for this request, escaped so no value can end the script element."""
    return Markup(bootstrap_json(posthog_integrations.flags(), identified=identified))


def _read_config(app: Flask) -> tuple[dict[str, Any], dict[str, Any], bool]:
    client_options: dict[str, Any] = {}
    request_options: dict[str, Any] = {}
    identify_user = True
    for key, value in app.config.items():
        if not isinstance(key, str) or not key.startswith(CONFIG_PREFIX):
            continue
        name = key[len(CONFIG_PREFIX):].lower()
        if name not in OPTIONS:
            raise ConfigurationError(_unknown_key(key))
        if name in CLIENT_OPTIONS:
            client_options[name] = value
        elif name in REQUEST_OPTIONS:
            request_options[name] = _with_flask_request(value) if name in HOOKS else value
        elif name == "identify_user":
            if not isinstance(value, bool):
                raise ConfigurationError(f"app.config['{key}']: expected True or False, got "
                                         f"{value!r}")
            identify_user = value
    return client_options, request_options, identify_user


def _unknown_key(key: str) -> str:
    # Matched without the prefix every key shares, which would make any two keys look alike.
    close = difflib.get_close_matches(key[len(CONFIG_PREFIX):].upper(),
                                      [name.upper() for name in OPTIONS], n=1)
    hint = f"; did you mean {CONFIG_PREFIX}{close[0]}?" if close else ""
    return (f"unknown PostHog setting {key} in app.config{hint} (every {CONFIG_PREFIX}* key "
            "of app.config is read as a PostHog setting)")


def _with_flask_request(hook: Any) -> Any:
    """User hooks get Flask's request, as Flask users expect, not the WSGI environ."""
    if not callable(hook) or hook is None:
        return hook

    def call(environ: dict[str, Any]) -> Any:
        request = environ.get("werkzeug.request")
        if request is None:  # before Flask made its request (request_filter): a light one
            request = current_app.request_class(environ, shallow=True) if has_app_context() \
                else _request_class()(environ, shallow=True)
        return hook(request)

    return call


def _request_class() -> Callable[..., Any]:
    from flask import Request

    return Request


def _naming_the_key(message: str) -> str:
    name, _, rest = message.partition(" ")
    return f"app.config['POSTHOG_{name.rstrip(':').upper()}']{':' if name.endswith(':') else ''}" \
        f" {rest}"


def _on_request_exception(sender: Flask, exception: BaseException | None = None,
                          **extra: Any) -> None:
    """Flask's signal for exceptions it turns into a 500: captured once, with the request."""
    error = exception if exception is not None else sys.exc_info()[1]
    context = current_request()
    if context is not None and isinstance(error, Exception) and not isinstance(
        error, HTTPException
    ):
        context.capture_exception(error, source=SIGNAL_SOURCE)


def _flask_login_user_id(environ: dict[str, Any]) -> str | None:
    """The id of Flask-Login's authenticated user, if the app uses Flask-Login, else None.

    Called when the request's identity is first needed, inside Flask's request context; so the
    user is loaded only for requests that capture, and an app without Flask-Login pays nothing.
    """
    flask_login = sys.modules.get("flask_login")
    if flask_login is None or not has_request_context() or \
            not hasattr(current_app, "login_manager"):
        return None
    try:
        user = flask_login.current_user
        if user is not None and user.is_authenticated:
            user_id = user.get_id()
            return None if user_id is None else str(user_id)
    except Exception:  # a broken user loader is the app's to report, not ours
        logger.debug("could not read Flask-Login's current user", exc_info=True)
    return None


def _cli_group() -> Any:
    from flask.cli import AppGroup

    from .check_command import check_command

    group = AppGroup("posthog", help="PostHog commands.")
    group.add_command(check_command)
    return group
