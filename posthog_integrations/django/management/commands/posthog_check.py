"""``python manage.py posthog_check``: send one test event with the project's PostHog settings."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from posthog_integrations.check import run_check
from posthog_integrations.django import conf


class Command(BaseCommand):
    help = "Send one test event with settings.POSTHOG and report whether it was delivered."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=10.0,
                            help="seconds to wait for the endpoint (default 10)")

    def handle(self, *args: Any, **options: Any) -> None:
        result = run_check(conf.load().client_options, timeout=options["timeout"])
        if not result.ok:
            raise CommandError(f"PostHog check failed: {result.message}")
        self.stdout.write(self.style.SUCCESS(f"PostHog check passed: {result.message}"))
