"""The report all three check commands print (``posthog-integrations check``,
``manage.py posthog_check``, ``flask posthog check``): each command loads its framework's
settings, then :func:`run_check_command` sends one test event and reports, one line each, the
settings, the delivery and the hazards the environment shows.

With a secret key the report also says how many flags are evaluated locally and lists those
that are not (:mod:`posthog_integrations.check_local`).

Exit status: 0 when the test event was delivered (and, given a secret key, the flag definitions
loaded); 1 when sending was tried and failed, or the definitions did not load; 2 when
nothing could be tried: bad arguments, settings that do not load or are invalid, no API key,
PostHog disabled, or ``send`` False.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Callable

from .check import run_check
from .check_findings import Finding, can_send, delivery_findings, mask_key, settings_findings
from .check_hazards import runtime_findings
from .check_local import local_evaluation_findings
from .core.options import ClientOptions, ConfigurationError, positive_seconds
from .core.runtime import uwsgi_options

DELIVERED, NOT_DELIVERED, UNUSABLE = 0, 1, 2
DEFAULT_TIMEOUT = 10.0
EXIT_STATUS_HELP = (
    "exit status: 0 the test event was delivered; 1 sending it failed, or (given a secret key) "
    "the flag definitions did not load; 2 nothing could be sent "
    "(bad arguments, settings that do not load or are invalid, no API key, PostHog disabled, "
    "send=False)"
)
TIMEOUT_HELP = ("the test request is cut off after this many seconds, from connecting to the "
                "end of the answer (default 10)")
LIBRARY_LOGGER = "posthog_integrations"
# Shorter keys are not searched for in the output (they would match ordinary words).
_MIN_REDACTED_LENGTH = 6

Write = Callable[[str], None]
"""Writes one line of output (without its line ending)."""


class SettingsError(Exception):
    """The app's settings could not be loaded."""


@dataclasses.dataclass(frozen=True)
class AppSettings:
    """The client options an app would use, where they came from, and notes from loading."""

    source: str
    client_options: dict[str, Any]
    notes: tuple[Finding, ...] = ()


def run_check_command(load_settings: Callable[[], AppSettings], *, timeout: float,
                      out: Write, err: Write) -> int:
    """Load the settings, send one test event, write the report; returns the exit status.

    Settings that cannot be loaded (:class:`SettingsError`, ``ConfigurationError``) are one
    line on ``err``; the report goes to ``out``. The library's own log lines are held back
    meanwhile: the report says what they would.
    """
    printer = _Printer(out, err, os.environ.get("POSTHOG_API_KEY", ""))
    with library_logs_held_back():
        return _check(load_settings, timeout, printer)


def _check(load_settings: Callable[[], AppSettings], timeout: float, printer: _Printer) -> int:
    try:
        settings = load_settings()
        options = ClientOptions.resolve(settings.client_options)
    except (SettingsError, ConfigurationError) as error:
        printer.error(f"PostHog check failed: {error}")
        return UNUSABLE
    printer.secret = options.api_key or printer.secret
    printer.also_hidden = options.secret_key
    printer.say(f"PostHog check with the settings of {settings.source}")
    printer.show([*settings.notes, *settings_findings(options)])
    hazards = runtime_findings(options, os.environ, sys.argv, uwsgi_options())
    if not can_send(options):
        printer.show(hazards)
        printer.say("PostHog check failed: nothing was sent (see FAIL above)")
        return UNUSABLE
    result = run_check(settings.client_options, timeout=timeout)
    local = local_evaluation_findings(options, timeout=timeout)
    printer.show([*delivery_findings(result), *local, *hazards])
    if not result.ok:
        printer.say(f"PostHog check failed: {result.message}")
        return NOT_DELIVERED
    if any(finding.level == "FAIL" for finding in local):
        printer.say("PostHog check failed: the flag definitions did not load (see FAIL above)")
        return NOT_DELIVERED
    printer.say(f"PostHog check passed: {result.message}")
    return DELIVERED


@contextlib.contextmanager
def library_logs_held_back() -> Iterator[None]:
    """Nothing the ``posthog_integrations`` logger is given is logged until the block ends.

    Every module of the library logs to that one logger; a check command runs in a process
    of its own, so holding it back hides nothing from a serving app.
    """
    logger = logging.getLogger(LIBRARY_LOGGER)
    disabled = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = disabled


def seconds_argument(text: str) -> float:
    """``--timeout``'s value for argparse (and Django's parser): a positive number."""
    try:
        return positive_seconds("--timeout", float(text))
    except (ValueError, ConfigurationError):
        raise argparse.ArgumentTypeError(
            f"must be a positive number of seconds, got {text!r}") from None


class _Printer:
    """Writes the report, with the API key (once known) masked wherever it would appear."""

    def __init__(self, out: Write, err: Write, secret: str) -> None:
        self._out = out
        self._err = err
        self.secret = secret
        self.also_hidden = ""  # the secret key: never shown, not even masked

    def say(self, text: str) -> None:
        self._out(self._redacted(text))

    def error(self, text: str) -> None:
        self._err(self._redacted(text))

    def show(self, findings: Sequence[Finding]) -> None:
        for finding in findings:
            self.say(finding.render())

    def _redacted(self, text: str) -> str:
        if len(self.also_hidden) >= _MIN_REDACTED_LENGTH:
            text = text.replace(self.also_hidden, "<secret key>")
        if len(self.secret) < _MIN_REDACTED_LENGTH:
            return text
        return text.replace(self.secret, mask_key(self.secret))
