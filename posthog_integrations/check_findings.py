"""What the check commands' report says about the settings and the test event, one
:class:`Finding` (one line) each; never the API key itself."""

from __future__ import annotations

import dataclasses

from .check import CheckResult, status_meaning
from .core.options import ClientOptions

# Keys shorter than this show no tail when masked.
_MASKABLE_LENGTH = 20


@dataclasses.dataclass(frozen=True)
class Finding:
    """One line of the report: ``level`` is ``ok``, ``warn`` or ``FAIL``."""

    level: str
    topic: str
    text: str

    def render(self) -> str:
        return f"{self.level:<5}{self.topic}: {self.text}"


def can_send(options: ClientOptions) -> bool:
    """Whether a client with ``options`` would send anything at all."""
    return bool(options.api_key) and not options.disabled and options.send


def settings_findings(options: ClientOptions) -> list[Finding]:
    """The API key (masked), the host, and any setting that stops sending."""
    findings = [api_key_finding(options.api_key), Finding("ok", "host", options.host)]
    if options.disabled:
        findings.append(Finding("FAIL", "disabled", "PostHog is disabled (the disabled setting "
                                "or POSTHOG_DISABLED), so nothing is sent"))
    if not options.send:
        findings.append(Finding("FAIL", "send", "send is False: events are accepted, then "
                                "dropped, never sent"))
    return findings


def api_key_finding(api_key: str) -> Finding:
    """Whether there is a key and what kind it looks like; never the key itself."""
    if not api_key:
        return Finding("FAIL", "API key", "missing: set POSTHOG_API_KEY or the API key setting")
    masked = mask_key(api_key)
    if api_key.startswith("phx_"):
        return Finding("warn", "API key", f"present ({masked}), but phx_ is a personal API key: "
                       "sending events needs the project API key (phc_...)")
    if api_key.startswith("phc_"):
        return Finding("ok", "API key", f"present (project key {masked})")
    return Finding("ok", "API key", f"present ({masked}; not in the phc_ form of project keys)")


def mask_key(api_key: str) -> str:
    """``phc_...abcd``: the key's prefix and, if the key is long, its last four characters."""
    prefix = api_key[:4] if api_key[3:4] == "_" else ""
    tail = api_key[-4:] if len(api_key) >= _MASKABLE_LENGTH else ""
    return f"{prefix}...{tail}"


def delivery_findings(result: CheckResult) -> list[Finding]:
    """Reachable or not, the HTTP status and its meaning, the latency."""
    if result.latency_ms is None:  # the client refused to send
        return [Finding("FAIL", "test event", result.message)]
    if result.status is None:
        return [Finding("FAIL", "reachable", result.message)]
    return [
        Finding("ok", "reachable", f"{result.host} answered"),
        Finding("ok" if result.ok else "FAIL", "HTTP status",
                f"{result.status} ({status_meaning(result.status)})"),
        Finding("ok", "latency", f"{result.latency_ms:.0f} ms"),
    ]
