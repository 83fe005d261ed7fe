"""Re-analysing a run, and what running one leaves behind in the calling process."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import msgstorm
from msgstorm.report.rerun import reanalyse, without_cycle_collection

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_collector_is_paused_inside_and_restored_as_it_was() -> None:
    assert gc.isenabled()
    with without_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with without_cycle_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), without_cycle_collection():
        raise RuntimeError("a failing step")
    assert gc.isenabled()


def test_a_run_and_its_reanalysis_leave_the_collector_on_and_agree(tmp_path: Path) -> None:
    scenario = msgstorm.load_scenario(EXAMPLES / "quickstart.toml", ['run.duration="1s"', 'run.drain="1s"'])
    result = msgstorm.run(scenario, tmp_path / "run")
    assert gc.isenabled()
    again = reanalyse(tmp_path / "run")
    assert gc.isenabled()
    assert again.summary == result.summary
