"""The README's performance table is the one generated from the committed benchmark results."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench.core import RunResult
from bench.readme import END, README, RESULTS, START, render_section, update_readme
from bench.report import Row, table_rows

RATIO_HEADER = "| | ours vs official | ours, x bare | official, x bare | target |"
ABSOLUTE_HEADER = "| | posthog-integrations | official | bare app |"


def _committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
    return document


def test_the_readme_shows_the_committed_results() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(START) + len(START):text.index(END)].strip()
    expected = render_section(_committed())
    assert section == expected, "regenerate it: python -m bench.readme"


def test_update_rewrites_only_the_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{START}\nold table\n{END}\n\nafter\n", encoding="utf-8")
    assert update_readme(readme, RESULTS)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(f"# title\n\n{START}\n")
    assert text.endswith(f"{END}\n\nafter\n")
    assert "old table" not in text
    assert not update_readme(readme, RESULTS)  # unchanged the second time


def test_ratios_lead_and_absolute_numbers_follow() -> None:
    section = render_section(_committed())
    assert section.index(RATIO_HEADER) < section.index(ABSOLUTE_HEADER)
    ratio_table = section[section.index(RATIO_HEADER):section.index(ABSOLUTE_HEADER)]
    # An "x bare" row gives both clients' ratios to the bare app in the ratio table only.
    x_bare = next(row for row in _committed()["rows"] if row["metric"] == "ratio_to_bare")
    ours, official = (cell.split(" (")[0] for cell in x_bare["cells"][1:3])
    assert f"| {ours} | {official} |" in ratio_table
    absolute_table = section[section.index(ABSOLUTE_HEADER):]
    assert "[x bare]" not in absolute_table


def test_the_heading_names_the_load_during_the_run() -> None:
    document = copy.deepcopy(_committed())
    document["environment"]["load_average_at_start"] = [3.25, 2.5, 1.75]
    document["environment"]["load_average_at_end"] = [4.0, 2.75, 1.8]
    heading = render_section(document).splitlines()[0]
    assert "load average (1 / 5 / 15 min) 3.25 / 2.50 / 1.75 at the start," in heading
    assert "4.00 / 2.75 / 1.80 at the end" in heading


def test_a_target_against_the_official_client_is_judged_on_the_ratio() -> None:
    row = Row("flags_request", "median_us", "request [µs]", True, 2.0, "", "rounds", 1,
              target_vs_official=True)
    runs = [RunResult("flags_request", name, 0, metrics={"median_us": value})
            for name, value in (("ours", 100.0), ("official", 150.0))]
    for run in runs:
        run.sends_events = False
    (entry,) = table_rows([row], runs, ["ours", "official"])
    assert entry["target_met"] is False  # 1.5x faster, not 2x
    document = {**_committed(), "rows": [entry]}
    assert "| request [µs] | 1.5x faster |  |  | official/ours ≥ 2: **missed** |" in (
        render_section(document))


def test_a_readme_without_markers_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no section\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no performance section markers"):
        update_readme(readme, RESULTS)
