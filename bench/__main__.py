"""``python -m bench [--quick] [--rounds N] [--only capture,delivery] [--json PATH]``.

Runs posthog_integrations and the official ``posthog`` client side by side against a local
capture endpoint in a separate process, prints one table, and writes it to
``bench/results/latest.json`` and ``bench/results/latest.md``, then rewrites the README's
performance table from them. A ``--quick`` run writes ``bench/results/quick.*`` instead, and
a run of some benchmarks or rounds only ``bench/results/partial.*``: neither touches the
committed results.

Exit status: 0 when every variant ran and every event arrived, 1 when a run failed or lost
events (missing a performance target is reported, never an error; so are the drops the burst
benchmark provokes, as long as each one is counted), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .burst import BURST_BENCHMARKS
from .core import BENCHMARKS as CORE_BENCHMARKS
from .core import FULL, QUICK, Benchmark, RunResult, run_all
from .django_requests import DJANGO_BENCHMARKS
from .endpoint import Endpoint, EndpointError
from .flags import FLAGS_BENCHMARKS
from .flask_requests import FLASK_BENCHMARKS
from .local_flags import LOCAL_BENCHMARKS
from .memory import MEMORY_BENCHMARKS
from .readme import README, update_readme
from .report import (
    build_rows,
    environment,
    generated_at,
    load_average,
    render_text,
    table_rows,
    write_results,
)
from .variants import MAX_QUEUE_SIZE, available_variants
from .web import WEB_BENCHMARKS

BENCHMARKS = (*CORE_BENCHMARKS, *BURST_BENCHMARKS, *MEMORY_BENCHMARKS, *WEB_BENCHMARKS,
              *DJANGO_BENCHMARKS, *FLASK_BENCHMARKS, *FLAGS_BENCHMARKS, *LOCAL_BENCHMARKS)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark posthog_integrations against the official posthog client.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="short smoke run for CI: 1 round, few samples, 5,000 events")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help=f"rounds (default {FULL.rounds}, or {QUICK.rounds} with --quick)")
    parser.add_argument("--only", metavar="LIST",
                        help="comma-separated benchmarks or groups to run: context, "
                             "exception, capture, delivery, delivery_v1, burst, memory, asgi, "
                             "django, flask, "
                             "flags, local (or a single benchmark such as capture_10, asgi_server, "
                             "flask_server)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the JSON results to PATH")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        args.benchmarks = _select(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _select(only: str | None) -> list[Benchmark]:
    if not only:
        return list(BENCHMARKS)
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    known = {b.group for b in BENCHMARKS} | {b.key for b in BENCHMARKS}
    unknown = sorted(wanted - known)
    if unknown or not wanted:
        raise ValueError(f"--only: unknown benchmark(s) {unknown}; choose from {sorted(known)}")
    return [b for b in BENCHMARKS if b.group in wanted or b.key in wanted]


def _isolate_from_environment() -> list[str]:
    """Drop POSTHOG_* variables, which would change either client's configuration."""
    removed = sorted(name for name in os.environ if name.upper().startswith("POSTHOG_"))
    for name in removed:
        del os.environ[name]
    return removed


def _failures(
    runs: Sequence[RunResult], benchmarks: Sequence[Benchmark], variant_names: Sequence[str]
) -> list[str]:
    found = [
        f"{run.benchmark} / {run.variant} / "
        f"{'warm-up' if run.warmup else f'round {run.round + 1}'}: {'; '.join(run.problems)}"
        for run in runs if not run.ok
    ]
    for benchmark in benchmarks:
        for name in variant_names:
            if not any(r.ok and not r.warmup for r in runs
                       if r.benchmark == benchmark.key and r.variant == name):
                found.append(f"{benchmark.key} / {name}: no successful run, so no numbers")
    return found


def _notes(runs: Sequence[RunResult]) -> list[str]:
    notes = []
    for name in sorted({run.variant for run in runs}):
        mine = [run for run in runs if run.variant == name]
        warnings = [w for run in mine for w in run.log_warnings]
        if warnings:
            notes.append(f"{name} logged {len(warnings)} warning(s); first: {warnings[0]}")
        duplicates = sum(run.delivery.duplicates for run in mine if run.delivery is not None)
        if duplicates:
            notes.append(f"{name}: {duplicates:,} events arrived more than once (retries)")
        for benchmark, title in (("delivery", "delivery"), ("delivery_v1", "delivery v1")):
            delivery = [
                run for run in mine
                if run.benchmark == benchmark and not run.warmup and run.delivery is not None
                and run.metrics.get("elapsed_s")
            ]
            if not delivery:
                continue
            requests = statistics.median(run.delivery.requests for run in delivery if run.delivery)
            busy = statistics.median(
                run.delivery.endpoint_cpu_s / run.metrics["elapsed_s"]
                for run in delivery if run.delivery
            )
            notes.append(
                f"{title}, {name}: {requests:,.0f} requests per run; the endpoint process was"
                f" busy {busy:.0%} of one core (medians)"
            )
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")
    settings = QUICK if args.quick else FULL
    if args.rounds is not None:
        settings = dataclasses.replace(settings, rounds=args.rounds)
    benchmarks: list[Benchmark] = args.benchmarks

    removed = _isolate_from_environment()
    if removed:
        print(f"note: ignoring {', '.join(removed)} from the environment", file=sys.stderr)

    variants, missing = available_variants()
    for name, reason in missing.items():
        package = "posthog" if name == "official" else "posthog-integrations"
        hint = "  Install it with: pip install -e '.[bench]'" if name == "official" else ""
        print(f"*** The {name} client ({package}) is {reason}; it is left out of this run.{hint}",
              file=sys.stderr)
    if not any(variant.name == "ours" for variant in variants):
        print("error: posthog_integrations cannot be imported; nothing to benchmark",
              file=sys.stderr)
        return 1

    mode = "quick" if args.quick else "full"
    print(f"bench ({mode}): {settings.describe()}", file=sys.stderr)
    print(f"variants: {', '.join(v.label for v in variants)}; max_queue_size={MAX_QUEUE_SIZE:,}",
          file=sys.stderr)
    load_at_start = load_average()
    started = time.perf_counter()
    try:
        with Endpoint() as endpoint:
            print(f"endpoint: {endpoint.url} (process {endpoint.pid})", file=sys.stderr)
            runs = run_all(variants, benchmarks, settings, endpoint)
    except EndpointError as exc:
        print(f"error: the capture endpoint failed: {exc}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - started

    names = [variant.name for variant in variants]
    failures = _failures(runs, benchmarks, names)
    table = table_rows(build_rows(settings, benchmarks), runs, names)
    notes = _notes(runs)
    meta: dict[str, Any] = {
        "generated_at": generated_at(),
        "mode": mode,
        "settings": dataclasses.asdict(settings),
        "settings_text": settings.describe(),
        "wall_time_s": round(wall, 1),
        "variants": {variant.name: variant.label for variant in variants},
        "missing_variants": missing,
        "environment": environment(load_at_start),
        "notes": notes,
    }

    print()
    print(f"posthog_integrations vs official posthog — {mode} run, {settings.describe()}")
    print(render_text(table))
    print("Cells are medians across rounds. official/ours above 1 means ours costs less"
          " (µs, CPU s); below 1 on an events/s row means ours delivers more. bare: the same"
          " app with no middleware, measured in the same runs.")
    for name, reason in missing.items():
        print(f"NOTE: the {name} client did not run: {reason}")
    for note in notes:
        print(f"note: {note}")
    complete = not args.quick and args.only is None and args.rounds is None
    name = "latest" if complete else "quick" if args.quick else "partial"
    written = write_results(table, runs, meta, failures, args.json, name)
    print(f"wrote {', '.join(str(path) for path in written)} ({wall:.0f} s)")
    if complete and update_readme():
        print(f"rewrote the performance table of {README}")
    if failures:
        print("\nFAILED:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
