"""``posthog-integrations check``: the check command outside any framework's own command line.

It reads the POSTHOG_* environment, the settings of a Django project (``--django-settings``) or
those of a Flask app (``--flask-app``), then prints the report of :mod:`.check_report`.
"""

from __future__ import annotations

import argparse
import os
import sys

from .check_report import (
    DEFAULT_TIMEOUT,
    EXIT_STATUS_HELP,
    TIMEOUT_HELP,
    AppSettings,
    SettingsError,
    run_check_command,
    seconds_argument,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``check`` command's options to ``parser``."""
    parser.epilog = EXIT_STATUS_HELP
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--django-settings", metavar="MODULE",
                        help="use settings.POSTHOG of this Django settings module "
                             "(e.g. mysite.settings); default: the POSTHOG_* environment")
    source.add_argument("--flask-app", metavar="IMPORT",
                        help="use the PostHog settings of this Flask app, written as for "
                             "flask --app (e.g. 'shop:create_app()' or 'shop.wsgi:app')")
    parser.add_argument("--timeout", type=seconds_argument, default=DEFAULT_TIMEOUT,
                        metavar="SECONDS", help=TIMEOUT_HELP)


def run(args: argparse.Namespace) -> int:
    """Run the ``check`` command from parsed ``args``; returns the exit status."""
    return run_check_command(lambda: load_settings(args.django_settings, args.flask_app),
                             timeout=args.timeout, out=_stdout, err=_stderr)


def load_settings(django_settings: str | None, flask_app: str | None) -> AppSettings:
    """The client options from Django settings, a Flask app, or (default) the environment."""
    if django_settings:
        return _django_settings(django_settings)
    if flask_app:
        return _flask_settings(flask_app)
    return AppSettings("the environment", {})


def _django_settings(module: str) -> AppSettings:
    if os.getcwd() not in sys.path:  # as ``manage.py`` would, import the project from here
        sys.path.insert(0, os.getcwd())
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    try:
        import django

        django.setup()
        from .django import conf

        client_options = conf.load().client_options
    except Exception as error:  # the settings module is the app's code: anything can fail
        raise SettingsError(f"cannot load the Django settings {module!r}: "
                            f"{type(error).__name__}: {error}") from None
    return AppSettings(f"the Django settings {module}", client_options)


def _flask_settings(import_path: str) -> AppSettings:
    try:
        from flask.cli import ScriptInfo

        app = ScriptInfo(app_import_path=import_path, set_debug_flag=False).load_app()
        from .flask.check_command import flask_app_settings
    except Exception as error:  # the app factory is the app's code: anything can fail
        raise SettingsError(f"cannot load the Flask app {import_path!r}: "
                            f"{type(error).__name__}: {error}") from None
    return flask_app_settings(app, f"the Flask app {import_path}")


def _stdout(line: str) -> None:
    print(line, flush=True)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
