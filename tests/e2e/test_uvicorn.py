"""End to end: a Starlette app under a real uvicorn, delivering to the local capture endpoint."""

from __future__ import annotations

import httpx

from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.e2e.servers import free_port, serve


def test_every_event_arrives_with_its_requests_identity(sink: LocalSink) -> None:
    port = free_port()
    env = {"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url}
    command = ["uvicorn", "tests.e2e.starlette_served:app", "--port", str(port),
               "--log-level", "warning"]
    with serve(command, port, env) as url, httpx.Client(base_url=url) as http:
        for n in range(20):
            response = http.get(f"/orders/{n}", headers={"X-POSTHOG-DISTINCT-ID": f"user-{n}",
                                                         "X-POSTHOG-SESSION-ID": f"s-{n}"})
            assert response.text == "ok"
        failed = http.get("/broken", headers={"X-POSTHOG-DISTINCT-ID": "unlucky"})
        assert failed.status_code == 500
    # uvicorn has exited: what it captured was flushed at lifespan shutdown, with no sleep here
    orders = sink.events(event="order placed")
    assert sorted((e["distinct_id"], e["properties"]["order"]) for e in orders) == sorted(
        (f"user-{n}", str(n)) for n in range(20))
    assert all(e["properties"]["$session_id"] == f"s-{e['properties']['order']}" for e in orders)
    [error] = sink.events(event="$exception")
    assert error["distinct_id"] == "unlucky"
    assert error["properties"]["$exception_message"] == "checkout failed"
    assert error["properties"]["$route"] == "/broken"
    assert {r.api_key for r in sink.requests()} == {API_KEY}
