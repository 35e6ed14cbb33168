"""``flask posthog check``: the check command with the settings of the app Flask loaded."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from posthog_integrations.check_findings import Finding
from posthog_integrations.check_report import (
    EXIT_STATUS_HELP,
    TIMEOUT_HELP,
    AppSettings,
    run_check_command,
    seconds_argument,
)
from posthog_integrations.core.client import Client
from posthog_integrations.core.options import ClientOptions

from .extension import EXTENSION_KEY, _read_config


def flask_app_settings(app: Flask, source: str) -> AppSettings:
    """The options of the client the PostHog extension made for ``app``; without the
    extension, the ``POSTHOG_*`` entries of ``app.config`` and a warning."""
    client = getattr(app.extensions.get(EXTENSION_KEY), "client", None)
    if isinstance(client, Client):
        return AppSettings(source, _as_keywords(client.options))
    client_options, _, _ = _read_config(app)
    note = Finding("warn", "Flask extension", "PostHog is not set up on this app (no "
                   "PostHog(app) or init_app(app)); checking its POSTHOG_* config anyway")
    return AppSettings(source, client_options, (note,))


def _as_keywords(options: ClientOptions) -> dict[str, Any]:
    return {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}


def _timeout(context: click.Context, parameter: click.Parameter, value: str) -> float:
    try:
        return seconds_argument(value)
    except argparse.ArgumentTypeError as error:
        raise click.BadParameter(str(error), context, parameter) from None


def _echo_error(line: str) -> None:
    click.echo(line, err=True)


@click.command("check", epilog=EXIT_STATUS_HELP)
@click.option("--timeout", default="10", callback=_timeout, metavar="SECONDS",
              help=TIMEOUT_HELP)
@with_appcontext
def check_command(timeout: float) -> None:
    """Send one test event with this app's PostHog settings and report what happened, plus
    fork and threading hazards."""
    app = current_app
    status = run_check_command(
        lambda: flask_app_settings(app, f"the Flask app {app.import_name}"),
        timeout=timeout, out=click.echo, err=_echo_error,
    )
    click.get_current_context().exit(status)
