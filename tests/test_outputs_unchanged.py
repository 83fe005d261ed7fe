"""Making the run faster changed none of its results.

``tests/data/summaries/`` holds summary.json of four examples (shortened where long) as the
code before the speed work wrote them, ``wall_s`` aside; the same runs now must give the
same file, key for key and digit for digit. ``tests/data/histories/`` holds a digest of
every column of the same runs' histories (``test_golden.column_digests``: the content, not
the Parquet bytes, which depend on how parts are cut and encoded), also as that code wrote
them. To re-pin after a deliberate change of results, run this module with
``MSGSTORM_REPIN_SUMMARIES=1`` and say why in the commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_golden import column_digests

from msgstorm.history import read_history
from msgstorm.runner import run
from msgstorm.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PINNED = Path(__file__).resolve().parent / "data" / "summaries"
PINNED_HISTORIES = Path(__file__).resolve().parent / "data" / "histories"
CASES = {"quickstart": ['run.duration="3s"', 'run.drain="2s"'], "flash-crash": ['run.duration="4s"', 'run.drain="2s"'],
         "ramp": [], "matching-engine": ['run.duration="3s"']}


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(CASES))
def test_summary_is_what_it_was(tmp_path: Path, example: str) -> None:
    run(load_scenario(EXAMPLES / f"{example}.toml", CASES[example]), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    summary.pop("wall_s", None)
    text = json.dumps(summary, indent=1, sort_keys=True) + "\n"
    pinned = PINNED / f"{example}.json"
    digests = json.dumps(column_digests(read_history(tmp_path / "run")), indent=1, sort_keys=True) + "\n"
    pinned_history = PINNED_HISTORIES / f"{example}.json"
    if os.environ.get("MSGSTORM_REPIN_SUMMARIES") == "1":
        pinned.write_text(text)
        pinned_history.write_text(digests)
    assert text == pinned.read_text(), f"{example}: summary.json differs from {pinned}"
    changed = [column for column, digest in json.loads(digests).items()
               if json.loads(pinned_history.read_text()).get(column) != digest]
    assert not changed, f"{example}: history columns differ from {pinned_history}: {changed}"
