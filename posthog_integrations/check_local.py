"""The check commands' lines on local flag evaluation: given a secret key, the flag definitions
are loaded once, counted, and each flag local evaluation can never decide is listed with why
(each evaluation of one is a billable request to PostHog). Never the secret key itself."""

from __future__ import annotations

from .check_findings import Finding
from .core.options import ClientOptions
from .core.transport import Transport
from .feature_flags.local.definitions import parse_definitions
from .feature_flags.local.fetch import QUOTA_LIMITED, UNAUTHORIZED, UPDATED, fetch_definitions
from .feature_flags.local.unevaluable import unevaluable

TOPIC = "local evaluation"


def local_evaluation_findings(options: ClientOptions, *, timeout: float) -> list[Finding]:
    """One line for the definitions (or why they did not load), one per unevaluable flag."""
    if not options.secret_key:
        return [Finding("ok", TOPIC, "off: no secret key (POSTHOG_SECRET_KEY), so every flag "
                        "read asks PostHog")]
    transport = Transport(options.host, options.api_key, timeout=timeout, gzip=False)
    try:
        fetched = fetch_definitions(transport, project_key=options.api_key,
                                    secret_key=options.secret_key, etag=None)
    finally:
        transport.close()
    if fetched.outcome == UNAUTHORIZED:
        return [Finding("FAIL", TOPIC, "PostHog rejected the secret key (HTTP 401): use a "
                        "personal API key with feature flag read access, or the project's "
                        "secret key")]
    if fetched.outcome == QUOTA_LIMITED:
        return [Finding("FAIL", TOPIC, "the flag definitions are over their quota (HTTP 402): "
                        "no flag is evaluated locally until the quota allows it")]
    if fetched.outcome != UPDATED:
        return [Finding("FAIL", TOPIC, f"the flag definitions could not be loaded "
                        f"({fetched.detail or fetched.outcome})")]
    definitions = parse_definitions(fetched.data)  # fetch_definitions checked it reads
    problems = unevaluable(definitions)
    total = len(definitions.flags)
    findings = [Finding("ok", TOPIC, f"{total} flag{'' if total == 1 else 's'}, "
                        f"{total - len(problems)} evaluated locally")]
    findings.extend(
        Finding("warn", TOPIC, f"flag {key!r} is not evaluated locally: {why}; each "
                "evaluation of it is a billable request to PostHog")
        for key, why in sorted(problems.items()))
    return findings
