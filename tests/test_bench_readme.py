"""The README's performance table is the one generated from the committed benchmark results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.readme import END, README, RESULTS, START, render_section, update_readme


def test_the_readme_shows_the_committed_results() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(START) + len(START):text.index(END)].strip()
    expected = render_section(json.loads(RESULTS.read_text(encoding="utf-8")))
    assert section == expected, "regenerate it: python -m bench.readme"


def test_update_rewrites_only_the_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{START}\nold table\n{END}\n\nafter\n", encoding="utf-8")
    assert update_readme(readme, RESULTS)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(f"# title\n\n{START}\n")
    assert text.endswith(f"{END}\n\nafter\n")
    assert "old table" not in text
    assert "| posthog-integrations | official |" in text
    assert not update_readme(readme, RESULTS)  # unchanged the second time


def test_a_readme_without_markers_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no section\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no performance section markers"):
        update_readme(readme, RESULTS)
