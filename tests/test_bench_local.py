"""The local-evaluation benchmarks are registered with ``python -m bench`` and give table rows;
the engine rows run (ours and official agree on the definitions before anything is timed)."""

from __future__ import annotations

import dataclasses

import pytest

from bench.__main__ import _select
from bench.core import QUICK, Benchmark, RunResult
from bench.local_flags import LOCAL_BENCHMARKS
from bench.report import build_rows
from bench.variants import available_variants

TINY = dataclasses.replace(QUICK, samples=2, block=5, warmup_blocks=1)


def test_only_local_selects_the_three_local_benchmarks() -> None:
    assert [b.key for b in _select("local")] == ["local_1_flag", "local_50_flags",
                                                 "local_flags_request"]
    assert {b.key for b in LOCAL_BENCHMARKS} <= {b.key for b in _select(None)}


def test_each_local_benchmark_has_a_row_in_the_table() -> None:
    rows = build_rows(QUICK, LOCAL_BENCHMARKS)
    assert {row.benchmark for row in rows} == {b.key for b in LOCAL_BENCHMARKS}
    [one] = [row for row in rows if row.benchmark == "local_1_flag"]
    assert one.target == 3.0
    assert one.target_vs_official


@pytest.mark.parametrize("benchmark", LOCAL_BENCHMARKS[:2], ids=lambda b: b.key)
def test_the_engine_rows_run_for_every_variant(benchmark: Benchmark) -> None:
    variants, _missing = available_variants()
    for variant in variants:
        result = RunResult(benchmark.key, variant.name, 0)
        benchmark.run(variant, None, TINY, result)  # type: ignore[arg-type]  # no endpoint used
        assert result.ok, result.problems
        assert result.metrics["median_us"] > 0
