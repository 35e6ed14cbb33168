"""``python manage.py posthog_check``: the check command with the project's ``settings.POSTHOG``.

It exits with the check's status (0 delivered, 1 sending failed, 2 nothing could be sent), as
``makemigrations --check`` does, after the report has said why.
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandParser

from posthog_integrations.check_report import (
    DEFAULT_TIMEOUT,
    EXIT_STATUS_HELP,
    TIMEOUT_HELP,
    AppSettings,
    SettingsError,
    run_check_command,
    seconds_argument,
)
from posthog_integrations.django import conf


class Command(BaseCommand):
    help = ("Send one test event with settings.POSTHOG and report what happened, plus fork and "
            "threading hazards.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.epilog = EXIT_STATUS_HELP
        parser.add_argument("--timeout", type=seconds_argument, default=DEFAULT_TIMEOUT,
                            metavar="SECONDS", help=TIMEOUT_HELP)

    def handle(self, *args: Any, **options: Any) -> None:
        status = run_check_command(project_settings, timeout=options["timeout"],
                                   out=self.stdout.write, err=self.stderr.write)
        if status:
            sys.exit(status)


def project_settings() -> AppSettings:
    """``settings.POSTHOG``, checked as the middleware would read it."""
    module = settings.SETTINGS_MODULE
    try:
        client_options = conf.load().client_options
    except ImproperlyConfigured as error:
        raise SettingsError(str(error)) from None
    return AppSettings(f"the Django settings {module}" if module else "the Django settings",
                       client_options)
