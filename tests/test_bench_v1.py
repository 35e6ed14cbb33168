"""The capture v1 delivery benchmark is registered, has its table rows, and fails a run that
sent anything outside the v1 endpoint."""

from __future__ import annotations

from bench.__main__ import _select
from bench.core import QUICK
from bench.endpoint import V1_PATH, Delivery
from bench.report import build_rows


def _delivery(paths: dict[str, int]) -> Delivery:
    return Delivery(api_key="phc_x", expected=1, accepted=1, unique=1, requests=1,
                    failed_requests={}, stored_total=1, waited_s=0.0, endpoint_cpu_s=0.0,
                    paths=paths)


def test_only_delivery_v1_selects_it_alone_and_it_has_two_rows() -> None:
    selected = _select("delivery_v1")
    assert [b.key for b in selected] == ["delivery_v1"]
    rows = build_rows(QUICK, selected)
    assert [row.metric for row in rows] == ["events_per_s", "cpu_s_per_10k"]
    assert all("capture v1" in row.label for row in rows)


def test_a_run_counts_as_v1_only_when_every_request_went_to_the_v1_path() -> None:
    assert _delivery({V1_PATH: 5}).v1_only
    assert not _delivery({V1_PATH: 4, "/batch": 1}).v1_only
    assert not _delivery({"/batch": 5}).v1_only
    assert not _delivery({}).v1_only
