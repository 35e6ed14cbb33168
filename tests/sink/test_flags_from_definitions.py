"""The sink's ``POST /flags`` answered by evaluating its flag definitions with the local engine,
over loopback HTTP, as PostHog evaluates them for the request's person and groups."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from posthog_integrations import Client
from posthog_integrations.sink import LocalSink
from tests.sink.test_definitions import write_definitions
from tests.sink.test_sink import KEY, REPO_ROOT, SHUTDOWN_TIMEOUT, SINK_CLI

DEFINITIONS: dict[str, Any] = {
    "flags": [
        {"id": 1, "key": "everyone", "active": True, "version": 3,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
                     "payloads": {"true": "{\"color\": \"blue\"}"}}},
        {"id": 2, "key": "pro-plan", "active": True,
         "filters": {"groups": [{"properties": [
             {"key": "plan", "value": ["pro"], "operator": "exact", "type": "person"}],
             "rollout_percentage": 100}]}},
        {"id": 3, "key": "big-companies", "active": True,
         "filters": {"aggregation_group_type_index": 0, "groups": [{"properties": [
             {"key": "size", "value": 100, "operator": "gt", "type": "group",
              "group_type_index": 0}], "rollout_percentage": 100}]}},
        {"id": 4, "key": "checkout", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
                     "multivariate": {"variants": [
                         {"key": "control", "rollout_percentage": 0},
                         {"key": "test", "rollout_percentage": 100}]}}},
        {"id": 5, "key": "static-cohort", "active": True,
         "filters": {"groups": [{"properties": [
             {"key": "id", "value": 7, "type": "cohort"}], "rollout_percentage": 100}]}},
        {"id": 6, "key": "off", "active": False,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}},
    ],
    "group_type_mapping": {"0": "company"},
    "cohorts": {},  # a static cohort is not sent: only PostHog knows its members
}


def ask(sink: LocalSink, **body: Any) -> dict[str, Any]:
    response = requests.post(f"{sink.url}/flags?v=2",
                             json={"token": KEY, "distinct_id": "user-1", **body}, timeout=5)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def values(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: (record["variant"] or record["enabled"]) if not record["failed"] else "failed"
            for key, record in answer["flags"].items()}


@pytest.fixture
def sink() -> Any:
    with LocalSink(definitions=DEFINITIONS) as running:
        yield running


def test_flags_are_evaluated_for_the_requests_person_and_groups(sink: LocalSink) -> None:
    answer = ask(sink, person_properties={"plan": "pro"}, groups={"company": "acme"},
                 group_properties={"company": {"size": 500}})
    assert values(answer) == {"everyone": True, "pro-plan": True, "big-companies": True,
                              "checkout": "test", "static-cohort": "failed", "off": False}
    everyone = answer["flags"]["everyone"]
    assert everyone["metadata"]["payload"] == "{\"color\": \"blue\"}"
    assert everyone["metadata"]["id"] == 1
    assert everyone["metadata"]["version"] == 3


def test_other_properties_give_other_values(sink: LocalSink) -> None:
    answer = ask(sink, person_properties={"plan": "free"}, groups={"company": "tiny"},
                 group_properties={"company": {"size": 3}})
    assert values(answer)["pro-plan"] is False
    assert values(answer)["big-companies"] is False
    assert answer["flags"]["pro-plan"]["metadata"]["payload"] is None


def test_a_flag_the_sink_cannot_decide_is_failed_and_says_why(sink: LocalSink) -> None:
    answer = ask(sink, flag_keys_to_evaluate=["static-cohort"])
    record = answer["flags"]["static-cohort"]
    assert record["failed"] is True
    assert "static cohort" in record["reason"]["description"]
    assert answer["errorsWhileComputingFlags"] is True


def test_only_the_keys_asked_for_and_no_unknown_key(sink: LocalSink) -> None:
    answer = ask(sink, flag_keys_to_evaluate=["everyone", "no-such-flag"])
    assert values(answer) == {"everyone": True}
    assert answer["errorsWhileComputingFlags"] is False


def test_a_client_reads_the_evaluated_values(sink: LocalSink) -> None:
    client = Client(KEY, host=sink.url)
    try:
        assert client.get_feature_flag("checkout", "user-1") == "test"
        for plan, expected in (("pro", True), ("free", False)):
            assert client.get_feature_flag("pro-plan", "user-1",
                                           person_properties={"plan": plan}) is expected
    finally:
        client.shutdown(timeout=2)


def test_with_flags_too_flags_answer_what_only_posthog_knows() -> None:
    with LocalSink(flags={"flags": {"beta": True}}, definitions=DEFINITIONS) as sink:
        answer = requests.post(f"{sink.url}/flags?v=2", json={
            "token": KEY, "distinct_id": "u", "flag_keys_to_evaluate": ["beta"]}, timeout=5)
        definitions = requests.get(f"{sink.url}/flags/definitions?token={KEY}&send_cohorts",
                                   headers={"Authorization": "Bearer phs_secret"}, timeout=5)
    assert answer.json()["flags"]["beta"]["enabled"] is True
    assert "pro-plan" in [flag["key"] for flag in definitions.json()["flags"]]


def test_the_command_answers_flags_from_a_definitions_file(tmp_path: Path) -> None:
    path = tmp_path / "definitions.json"
    write_definitions(path, DEFINITIONS)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK_CLI, "--port", "0", "--db", ":memory:", "--quiet",
         "--definitions", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        response = requests.post(f"{url}/flags?v=2", json={
            "token": KEY, "distinct_id": "u", "person_properties": {"plan": "pro"},
            "flag_keys_to_evaluate": ["pro-plan"]}, timeout=5)
        assert response.json()["flags"]["pro-plan"]["enabled"] is True
    finally:
        proc.kill()
        proc.communicate(timeout=SHUTDOWN_TIMEOUT)
