"""``posthog-integrations demo``: capture end to end against a local capture endpoint.

No PostHog account is needed: the demo starts the local endpoint on a free loopback port, sends
events through a real client over HTTP, and prints what arrived.
"""

from __future__ import annotations

import time
from typing import Any

from .core import Client
from .core.context import identify_context, set_context_session, tag
from .sink import LocalSink

DEMO_KEY = "phc_local_demo"


def _checkout(order: dict[str, Any]) -> None:
    try:
        order["card"]
    except KeyError as missing:
        raise ValueError("payment details missing") from missing


def _send_request_events(client: Client) -> list[str | None]:
    """What a web adapter does per request: one context carrying identity, session and tags."""
    with client.new_context():
        identify_context("user-42")
        set_context_session("session-7")
        tag("route", "/checkout")
        sent = [client.capture("checkout started", properties={"items": 2})]
        try:
            _checkout({})
        except ValueError:
            sent.append(client.capture_exception())
    return sent


def _send_demo_events(client: Client) -> list[str | None]:
    return [
        client.capture("$pageview", properties={"$current_url": "http://localhost/pricing"}),
        client.capture(
            "signed up", distinct_id="user-42", properties={"plan": "pro", "seats": 3}
        ),
        client.set(distinct_id="user-42", properties={"plan": "pro"}),
        client.group_identify("company", "acme", {"name": "Acme Inc."}, distinct_id="user-42"),
        client.alias("anonymous-7", "user-42"),
        client.capture(
            "order processed",
            distinct_id="user-42",
            properties={"total": 99.5, "items": ["book", "pen"]},
            groups={"company": "acme"},
        ),
    ]


def _row(event: dict[str, Any]) -> str:
    properties = event.get("properties", {})
    if "$exception_list" in properties:
        chain = " <- ".join(e["type"] for e in properties["$exception_list"])
        properties = {"chain": chain, **{k: v for k, v in properties.items()
                                         if k in ("$session_id", "route")}}
    shown = {k: v for k, v in properties.items() if not k.startswith(("$lib", "$geoip"))}
    detail = ", ".join(f"{k}={v!r}" for k, v in list(shown.items())[:4])
    return f"  {event['event']:<17} {event['distinct_id'][:24]:<25} {detail}"


def run() -> int:
    """Run the demo; return 0 when every captured event arrived, 1 otherwise."""
    print("posthog-integrations demo: events over real HTTP to a local capture endpoint")
    with LocalSink() as sink:
        print(f"  local capture endpoint: {sink.url}")
        client = Client(DEMO_KEY, host=sink.url, flush_interval=0.2)
        started = time.perf_counter()
        sent = _send_demo_events(client) + _send_request_events(client)
        uuids = [uuid for uuid in sent if uuid is not None]
        delivered = client.flush(timeout=10)
        elapsed_ms = (time.perf_counter() - started) * 1000
        client.shutdown()
        arrived = sink.events()
        print(f"  captured {len(uuids)} events; delivered in {elapsed_ms:.0f} ms, gzip-compressed")
        print(f"\n  {'event':<17} {'distinct_id':<25} properties")
        for event in arrived:
            print(_row(event))
        missing = set(uuids) - {event["uuid"] for event in arrived}
        stats = client.stats()
    print(f"\n  client stats: sent={stats.sent} retried={stats.retried} dropped={stats.dropped}")
    if missing or not delivered:
        print(f"  FAILED: {len(missing)} events did not arrive")
        return 1
    print(f"  all {len(uuids)} events arrived. Run your own: posthog-integrations sink")
    return 0
