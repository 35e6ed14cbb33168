"""Summarise runs into one table (printed, and written as JSON and Markdown).

Each row is one measured quantity with its unit. A cell is the median across rounds, followed
in parentheses by its spread: for ``capture()`` the p10-p90 of the per-call samples (the median
over rounds of each run's p10 and p90); for delivery the lowest and highest round.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .core import Benchmark, RunResult, Settings, storm_captures

__all__ = ["RESULTS_DIR", "Row", "Summary", "build_rows", "load_average", "render_markdown",
           "render_text", "summarise", "write_results"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Row:
    """How one measured quantity is summarised and judged."""

    benchmark: str  # Benchmark.key the numbers come from
    metric: str  # key in RunResult.metrics
    label: str  # names the quantity and its unit
    lower_is_better: bool
    target: float | None  # for ours; None when there is none
    reference: str  # what the official client is known to do, for context
    spread: str  # "samples" (p10-p90 of per-call samples) or "rounds" (min-max over rounds)
    decimals: int
    floor_metric: str | None = None  # the same quantity for the bare app, taken in each run
    words: tuple[str, str] | None = None  # how ours compares when better, when worse
    target_vs_official: bool = False  # the target bounds official/ours, not ours alone


@dataclasses.dataclass(frozen=True)
class Summary:
    """One row's numbers for one variant."""

    median: float
    low: float
    high: float
    runs: int


def build_rows(settings: Settings, benchmarks: Sequence[Benchmark]) -> list[Row]:
    """The table's rows for the selected benchmarks."""
    keys = {benchmark.key for benchmark in benchmarks}
    events = f"{settings.delivery_events:,}"
    burst = f"{settings.burst_events:,}"
    storm = f"{storm_captures(settings):,}"
    more, fewer, smaller = ("more", "fewer"), ("fewer", "more"), ("smaller", "larger")
    rows = [
        Row("context", "median_us", "context: enter + 5 tags + identify + session [µs]",
            True, 1.0, "official ≈ 3.2", "samples", 2),
        Row("capture_exception", "median_us",
            "capture_exception(), 3-deep chain [µs/call; median (p10-p90)]",
            True, 60.0, "official ≈ 274", "samples", 1),
        Row("exception_storm", "median_us",
            f"capture_exception() under a storm, {storm} of one kind"
            " [µs/call; median (p10-p90)]", True, None, "", "samples", 2),
        Row("exception_storm", "delivered",
            f"storm: $exception events delivered of {storm} [events; median (min-max)]",
            True, None, "", "rounds", 0, words=fewer),
        Row("capture_0", "median_us", "capture(), 0 props [µs/call; median (p10-p90)]",
            True, 6.0, "official ≈ 59", "samples", 2),
        Row("capture_10", "median_us", "capture(), 10 props [µs/call; median (p10-p90)]",
            True, 6.0, "official ≈ 59", "samples", 2),
        Row("delivery", "events_per_s",
            f"delivery, {events} events, gzip [events/s; median (min-max)]",
            False, 40_000.0, "official ≈ 9,300", "rounds", 0),
        Row("delivery", "cpu_s_per_10k",
            "client CPU per 10k delivered [CPU s; median (min-max)]",
            True, None, "", "rounds", 3),
        Row("delivery_v1", "events_per_s",
            f"delivery, {events} events, gzip, capture v1 [events/s; median (min-max)]",
            False, None, "", "rounds", 0),
        Row("delivery_v1", "cpu_s_per_10k",
            "client CPU per 10k delivered, capture v1 [CPU s; median (min-max)]",
            True, None, "", "rounds", 3),
        Row("burst", "accepted",
            f"burst of {burst} events, default client: accepted [events; median (min-max)]",
            False, None, "", "rounds", 0, words=more),
        Row("burst", "delivered", "burst: delivered [events; median (min-max)]",
            False, None, "", "rounds", 0, words=more),
        Row("burst", "dropped", "burst: dropped, each one counted [events; median (min-max)]",
            True, None, "", "rounds", 0, words=fewer),
        Row("burst", "burst_us_per_event",
            "burst: capture() on the calling thread [µs/event; median (min-max)]",
            True, None, "", "rounds", 2),
        Row("memory", "rss_delta_mib",
            f"memory: RSS growth, {settings.memory_events:,} queued 1 KiB events"
            " [MiB; median (min-max)]", True, None, "", "rounds", 1, words=smaller),
        Row("memory", "bytes_per_event", "memory: RSS per queued event [bytes; median (min-max)]",
            True, None, "", "rounds", 0, words=smaller),
        Row("asgi_direct", "median_us",
            "Starlette request, called directly [µs; median (p10-p90)]",
            True, None, "", "samples", 1, floor_metric="bare_us"),
        Row("asgi_direct", "ratio_to_bare", "Starlette request, called directly [x bare]",
            True, 1.5, "official ≈ 8.1", "rounds", 2),
        Row("asgi_server", "requests_per_s",
            "uvicorn + Starlette [requests/s; median (min-max)]",
            False, None, "", "rounds", 0, floor_metric="bare_requests_per_s"),
        Row("asgi_server", "ratio_to_bare", "uvicorn + Starlette requests/s [x bare]",
            False, 0.95, "official ≈ 0.61", "rounds", 3),
        Row("asgi_server", "p99_ms", "uvicorn + Starlette p99 latency [ms; median (min-max)]",
            True, None, "", "rounds", 2, floor_metric="bare_p99_ms"),
    ]
    for key, label in (("django_wsgi_alone", "Django WSGI, middleware alone"),
                       ("django_wsgi_project", "Django WSGI, startproject stack"),
                       ("django_asgi_alone", "Django ASGI, middleware alone"),
                       ("django_asgi_project", "Django ASGI, startproject stack")):
        rows.append(Row(key, "median_us", f"{label} [µs; median (p10-p90)]", True, None, "",
                        "samples", 1, floor_metric="bare_us"))
        rows.append(Row(key, "ratio_to_bare", f"{label} [x bare]", True, 1.15,
                        "official ≈ 2.65" if key == "django_wsgi_alone" else "", "rounds", 3))
    flags = "5 flags"
    rows.append(Row("capture_flags", "overhead_us",
                    f"capture(flags=), {flags}: overhead per event [µs; median (min-max)]",
                    True, 1.0, "", "rounds", 2))
    rows.append(Row("capture_flags", "median_us",
                    f"capture(flags=), {flags} [µs/call; median (p10-p90)]",
                    True, None, "", "samples", 2))
    rows.append(Row("capture_flags", "bare_us",
                    "capture() without flags, in the same runs [µs/call; median (min-max)]",
                    True, None, "", "rounds", 2))
    rows.append(Row("flags_request", "median_us",
                    "Starlette request: evaluate flags, read one, capture [µs; median (p10-p90)]",
                    True, 2.0, "", "samples", 1, floor_metric="bare_us",
                    target_vs_official=True))
    rows.append(Row("flags_request", "cpu_us",
                    "Starlette request with flags: CPU of the app's process [µs; median (min-max)]",
                    True, 2.0, "", "rounds", 1, floor_metric="bare_cpu_us",
                    target_vs_official=True))
    rows.append(Row("local_1_flag", "median_us",
                    "local evaluation, one flag [µs/call; median (p10-p90)]",
                    True, 3.0, "", "samples", 2, target_vs_official=True))
    rows.append(Row("local_50_flags", "median_us",
                    "local evaluation, 50-flag snapshot [µs/call; median (p10-p90)]",
                    True, 50.0, "", "samples", 1))
    rows.append(Row("local_flags_request", "median_us",
                    "Starlette request reading 5 local flags [µs; median (p10-p90)]",
                    True, None, "", "samples", 1, floor_metric="bare_us"))
    rows.append(Row("local_flags_request", "ratio_to_bare",
                    "Starlette request reading 5 local flags [x bare]", True, None, "",
                    "rounds", 2))
    rows.append(Row("flask", "median_us", "Flask request through WSGI [µs; median (p10-p90)]",
                    True, None, "", "samples", 1, floor_metric="bare_us"))
    rows.append(Row("flask", "ratio_to_bare", "Flask request through WSGI [x bare]", True, 1.15,
                    "official ≈ 2.8", "rounds", 3))
    rows.append(Row("flask_server", "requests_per_s",
                    "gunicorn gthread + Flask [requests/s; median (min-max)]",
                    False, None, "", "rounds", 0, floor_metric="bare_requests_per_s"))
    rows.append(Row("flask_server", "ratio_to_bare", "gunicorn gthread + Flask requests/s [x bare]",
                    False, 0.95, "official ≈ 0.8", "rounds", 3))
    rows.append(Row("flask_server", "p99_ms",
                    "gunicorn gthread + Flask p99 latency [ms; median (min-max)]",
                    True, None, "", "rounds", 2, floor_metric="bare_p99_ms"))
    return [row for row in rows if row.benchmark in keys]


def summarise(row: Row, runs: Sequence[RunResult], variant: str | None) -> Summary | None:
    """The row's numbers for ``variant`` from its successful runs, or None when there are none.

    ``variant=None`` summarises the bare app, measured in every variant's runs.
    """
    metric = row.metric if variant is not None else row.floor_metric
    if metric is None:
        return None
    chosen = [
        run for run in runs
        if run.benchmark == row.benchmark and variant in (None, run.variant) and run.ok
        and not run.warmup and metric in run.metrics
    ]
    if not chosen:
        return None
    values = [run.metrics[metric] for run in chosen]
    if row.spread == "samples" and variant is None:
        low, high = min(values), max(values)
    elif row.spread == "samples":
        low = statistics.median(run.metrics["p10_us"] for run in chosen)
        high = statistics.median(run.metrics["p90_us"] for run in chosen)
    else:
        low, high = min(values), max(values)
    return Summary(statistics.median(values), low, high, len(chosen))


def _number(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def _cell(summary: Summary | None, row: Row, ran: bool) -> str:
    if summary is None:
        return "FAILED" if ran else "n/a"
    text = _number(summary.median, row.decimals)
    if row.spread == "samples" or summary.runs > 1:
        low, high = _number(summary.low, row.decimals), _number(summary.high, row.decimals)
        text += f" ({low}-{high})"
    return text


def _ratio(ours: Summary | None, official: Summary | None, row: Row) -> str:
    """official/ours, with how many times better (or worse) ours is in plain words."""
    if ours is None or official is None or ours.median <= 0 or official.median <= 0:
        return "-"
    ratio = official.median / ours.median
    advantage = ratio if row.lower_is_better else 1 / ratio
    better, worse = row.words or (("cheaper", "costlier") if row.metric.startswith("cpu") else (
        "faster", "slower"))
    if advantage >= 1:
        return f"{ratio:.2f} (ours {advantage:.1f}x {better})"
    return f"{ratio:.2f} (ours {1 / advantage:.1f}x {worse})"


def _target(row: Row) -> str:
    if row.target is None:
        return "-"
    if row.target_vs_official:
        return f"official/ours ≥ {row.target:,g}"
    sign = "≤" if row.lower_is_better else "≥"
    text = f"{sign} {row.target:,g}"
    return f"{text} ({row.reference})" if row.reference else text


def _met(summary: Summary | None, row: Row, official: Summary | None = None) -> str:
    if row.target is None:
        return "-"
    if row.target_vs_official:
        if summary is None or official is None or summary.median <= 0:
            return "no data"
        ratio = official.median / summary.median
        advantage = ratio if row.lower_is_better else 1 / ratio
        return "yes" if advantage >= row.target else "NO"
    if summary is None:
        return "no data"
    met = summary.median <= row.target if row.lower_is_better else summary.median >= row.target
    return "yes" if met else "NO"


HEADERS = ("benchmark", "ours", "official", "bare", "official/ours", "target", "met?")


def table_rows(
    rows: Sequence[Row], runs: Sequence[RunResult], variants: Sequence[str]
) -> list[dict[str, Any]]:
    """Each row's cells (for printing) and numbers (for JSON)."""
    out = []
    for row in rows:
        ours = summarise(row, runs, "ours")
        official = summarise(row, runs, "official")
        bare = summarise(row, runs, None)
        out.append({
            "cells": [
                row.label,
                _cell(ours, row, "ours" in variants),
                _cell(official, row, "official" in variants),
                "-" if row.floor_metric is None else _cell(bare, row, True),
                _ratio(ours, official, row),
                _target(row),
                _met(ours, row, official),
            ],
            "benchmark": row.benchmark,
            "metric": row.metric,
            "label": row.label,
            "lower_is_better": row.lower_is_better,
            "spread": "p10-p90 of samples" if row.spread == "samples" else "min-max over rounds",
            "target": row.target,
            "target_met": (None if row.target is None or _met(ours, row, official) == "no data"
                           else _met(ours, row, official) == "yes"),
            "target_vs_official": row.target_vs_official,
            "ours": None if ours is None else dataclasses.asdict(ours),
            "official": None if official is None else dataclasses.asdict(official),
            "bare": None if bare is None else dataclasses.asdict(bare),
            "ratio_official_over_ours": (
                None if ours is None or official is None or not ours.median
                else official.median / ours.median
            ),
        })
    return out


def render_text(table: Sequence[Mapping[str, Any]]) -> str:
    """The table as aligned plain text."""
    lines = [list(HEADERS), *(list(entry["cells"]) for entry in table)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]

    def fmt(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:5], widths[1:5])]
        tail = [cell.ljust(width) for cell, width in zip(cells[5:], widths[5:])]
        return "  ".join([first, *rest, *tail]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([fmt(lines[0]), rule, *(fmt(line) for line in lines[1:])])


def render_markdown(
    table: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], failures: Sequence[str]
) -> str:
    """The table and its context as Markdown."""
    env = meta["environment"]
    out = [
        "# Benchmark results",
        "",
        f"- generated: {meta['generated_at']} ({meta['mode']} run, {meta['settings_text']})",
        f"- variants: {', '.join(f'{k} = {v}' for k, v in meta['variants'].items())}",
        f"- Python {env['python']} on {env['platform']}, {env['cpu_count']} CPU(s); load average"
        f" (1/5/15 min) {env.get('load_average_at_start')} at the start,"
        f" {env.get('load_average_at_end')} at the end",
        f"- git commit: {env['git_commit'] or 'none'}"
        + (" (the library had uncommitted changes)"
           if env["library_has_uncommitted_changes"] else ""),
        "- endpoint: `LocalSink` in a separate process on 127.0.0.1; one fresh client and API key"
        " per run; variant order rotated each round",
    ]
    for name, reason in meta["missing_variants"].items():
        out.append(f"- **{name} did not run**: {reason}")
    out += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(entry["cells"]) + " |" for entry in table]
    out += ["", "Cells are medians across rounds. official/ours above 1 means ours costs less "
            "(µs, CPU s); below 1 on an events/s row means ours delivers more. bare is the same "
            "app with no middleware, measured in the same runs; 'x bare' rows divide each run by "
            "its own bare measurement."]
    if meta.get("notes"):
        out += ["", "## Notes", "", *(f"- {note}" for note in meta["notes"])]
    if failures:
        out += ["", "## Failures", "", *(f"- {failure}" for failure in failures)]
    return "\n".join(out) + "\n"


def environment(load_at_start: list[float] | None = None) -> dict[str, Any]:
    """Where the numbers were taken, and how busy the machine was at the start and the end."""
    repo = RESULTS_DIR.parent.parent
    commit = dirty = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = _git(repo, "rev-parse", "--short", "HEAD") or None
        # Uncommitted changes to the library mean the commit alone does not name what ran.
        dirty = bool(_git(repo, "status", "--porcelain", "--", "posthog_integrations"))
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_average(),
        "git_commit": commit,
        "library_has_uncommitted_changes": dirty,
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, where the platform has them."""
    if not hasattr(os, "getloadavg"):
        return None
    return [round(x, 2) for x in os.getloadavg()]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


def _run_json(run: RunResult) -> dict[str, Any]:
    return {
        "benchmark": run.benchmark,
        "variant": run.variant,
        "round": run.round,
        "warmup": run.warmup,
        "ok": run.ok,
        "problems": run.problems,
        "metrics": run.metrics,
        "samples_us": [round(sample, 4) for sample in run.samples_us],
        "delivery": None if run.delivery is None else dataclasses.asdict(run.delivery),
        "client_dropped": run.client_dropped,
        "flush_drained": run.flush_drained,
        "log_warnings": run.log_warnings[:20],
        "log_warning_count": len(run.log_warnings),
        "error": run.error,
    }


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_results(
    table: Sequence[Mapping[str, Any]],
    runs: Sequence[RunResult],
    meta: Mapping[str, Any],
    failures: Sequence[str],
    extra_json: Path | None = None,
    name: str = "latest",
) -> list[Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (and ``extra_json``)."""
    document = {
        **meta,
        "ok": not failures,
        "failures": list(failures),
        "rows": [dict(entry) for entry in table],
        "runs": [_run_json(run) for run in runs],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    written = []
    for path in (RESULTS_DIR / f"{name}.json", extra_json):
        if path is not None:
            _write_atomic(path, text)
            written.append(path)
    markdown = RESULTS_DIR / f"{name}.md"
    _write_atomic(markdown, render_markdown(table, meta, failures))
    written.append(markdown)
    return written


def generated_at() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
