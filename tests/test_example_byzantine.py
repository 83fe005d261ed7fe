"""examples/byzantine.toml beyond the quorum's bound (two equivocating voters of four): the
terminal names the conflicting heights the tour (docs/examples.md) states, the safety checker's are
those heights, and report.html's chain view shows each node's blocks there, read back."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from test_docs import ROOT, table_rows, terminal_lines

import msgstorm
from msgstorm.analysis.safety import conflicts
from msgstorm.history import read_history


@pytest.mark.slow
def test_beyond_the_bound_the_example_names_its_conflicting_heights_everywhere(tmp_path: Path) -> None:
    scenario = msgstorm.load_scenario(ROOT / "examples" / "byzantine.toml", ["faults.1.count=2"])
    result = msgstorm.run(scenario, tmp_path / "run")
    row = table_rows(terminal_lines(result.summary))["safety / conflicting heights"]
    assert f"`{row}`" in " ".join((ROOT / "docs" / "examples.md").read_text().split())  # the tour's claim, as printed
    history = read_history(tmp_path / "run")
    found = conflicts(history)
    assert row == f"invalid / {len(found)} (at {', '.join(map(str, sorted(found)))})"
    page = (tmp_path / "run" / "report.html").read_text()
    section = re.search(r'<section id="safety">.*?</section>', page, re.S)
    assert section is not None
    cells = {(node, int(height)): text for node, height, text in
             re.findall(r'data-node="([^"]+)" data-height="(\d+)">([^<]*)</td>', section.group(0))}
    assert sorted({height for _, height in cells}) == sorted(found)
    finalized: dict[tuple[str, int], list[int]] = defaultdict(list)
    for entry in history.table("finalized").to_pylist():
        finalized[entry["node"], entry["height"]].append(entry["block"])
    for (node, height), text in cells.items():
        assert text == (" ".join(map(str, sorted(finalized[node, height]))) or "—"), (node, height)
    for height, blocks in found.items():  # every honest node finalised both blocks: "a b" in its cell
        for block, nodes in blocks.items():
            assert all(str(block) in cells[node, height].split() for node in nodes), (height, block)
