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


def test_a_misspelt_middleware_option_is_logged_once_at_startup(sink: LocalSink) -> None:
    port = free_port()
    env = {"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": sink.url}
    command = ["uvicorn", "tests.e2e.starlette_misconfigured:app", "--port", str(port),
               "--log-level", "warning"]
    printed: list[str] = []
    with serve(command, port, env, output=printed) as url, httpx.Client(base_url=url) as http:
        assert [http.get("/").status_code for _ in range(3)] == [500, 500, 500]
    lines = printed[0].splitlines()
    logged = [n for n, line in enumerate(lines)
              if line.startswith("PostHogMiddleware cannot be built: unknown PostHogMiddleware "
                                 "option 'captur_pageviews'; did you mean 'capture_pageviews'?")]
    assert len(logged) == 1, printed[0]
    first_request_failure = next(n for n, line in enumerate(lines)
                                 if "Exception in ASGI application" in line)
    assert logged[0] < first_request_failure  # at startup (lifespan), before any request
