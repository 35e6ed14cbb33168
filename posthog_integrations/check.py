"""Send one test event and say plainly whether it arrived, and if not, why.

Used by ``manage.py posthog_check`` and the other "check" commands: the answer to "why are no
events arriving?" in one line.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import requests

from .core import APIError, Client, ConfigurationError

CHECK_EVENT = "posthog_integrations check"
_STATUS_MEANINGS = {
    400: "the endpoint rejected the request as malformed",
    401: "the API key was rejected: use the project API key (phc_...), not a personal one",
    403: "the API key is not allowed to send events",
    404: "there is no capture endpoint at this host: check the host (e.g. "
         "https://us.i.posthog.com or https://eu.i.posthog.com)",
    413: "the request was too large",
    429: "the endpoint is rate limiting this key",
}


@dataclasses.dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    host: str
    status: int | None = None
    latency_ms: float | None = None


def run_check(options: Mapping[str, Any], *, timeout: float = 10.0) -> CheckResult:
    """Build a client from ``options`` (environment fallbacks apply) and send one event.

    One attempt, cut off at ``timeout`` seconds from connecting to the end of the answer.
    """
    errors: list[Exception] = []
    try:
        client = Client(**{**options, "sync_mode": True, "max_retries": 0, "timeout": timeout,
                           "on_error": lambda error, batch: errors.append(error)})
    except ConfigurationError as error:
        return CheckResult(False, f"the configuration is invalid: {error}", host="?")
    host = client.options.host
    if client.disabled:
        reason = ("PostHog is disabled" if client.options.disabled
                  else "no API key is configured (set POSTHOG_API_KEY or the API key setting)")
        return CheckResult(False, f"nothing was sent: {reason}", host)
    if not client.options.send:
        return CheckResult(False, "nothing was sent: send is False (events are accepted, then "
                           "dropped)", host)
    started = time.perf_counter()
    accepted = client.capture(CHECK_EVENT, distinct_id="posthog-integrations-check",
                              properties={"$process_person_profile": False})
    latency_ms = (time.perf_counter() - started) * 1000
    client.shutdown(timeout=1.0)
    if accepted is None:
        return CheckResult(False, "nothing was sent: the client dropped the test event (does "
                           "before_send return None for it?)", host)
    if not errors:
        return CheckResult(True, f"delivered a test event to {host} in {latency_ms:.0f} ms",
                           host, 200, latency_ms)
    return _explain(errors[0], host, latency_ms)


def status_meaning(status: int) -> str:
    """What an HTTP status from the capture endpoint means for the sender, in a few words."""
    if 200 <= status < 300:
        return "the event was accepted"
    if status in _STATUS_MEANINGS:
        return _STATUS_MEANINGS[status]
    if 300 <= status < 400:
        return ("the host redirects elsewhere and redirects are not followed: set the host to "
                "the address that answers")
    if status >= 500:
        return "the endpoint had a server error; try again later"
    return "unexpected answer"


def _explain(error: Exception, host: str, latency_ms: float) -> CheckResult:
    if isinstance(error, APIError):
        meaning = status_meaning(error.status)
        if error.location:
            meaning += f" (it points to {error.location})"
        return CheckResult(False, f"{host} answered HTTP {error.status}: {meaning}", host,
                           error.status, latency_ms)
    if isinstance(error, requests.Timeout):
        return CheckResult(False, f"{host} did not answer in time", host, None, latency_ms)
    if isinstance(error, requests.ConnectionError):
        return CheckResult(False, f"cannot connect to {host}: check the host and the network "
                           "(firewall, proxy)", host, None, latency_ms)
    return CheckResult(False, f"sending failed: {type(error).__name__}: {error}", host, None,
                       latency_ms)
