"""What self-healing controllers did, from their ``control`` events (analysis/control.py)."""

from __future__ import annotations

from pathlib import Path

from test_analysis_failure import THROTTLED, steady
from test_analysis_history import BASE_SCENARIO, MS, event, message, scenario_dict, write_history

from msgstorm.analysis import analyse
from msgstorm.analysis.control import control_summary


def test_a_throttles_decisions_and_what_it_shed(tmp_path: Path) -> None:
    rows = steady()
    for i in (12, 25, 33):
        rows[i] = message(i, rows[i]["t_intended"], status="dropped", kind="spam")
    events = [event(1200 * MS, "control", value=0.5, controller="throttle", previous=1.0, strain=300.0, shed=0),
              event(2500 * MS, "control", value=0.25, controller="throttle", previous=0.5, strain=250.0, shed=2),
              event(3700 * MS, "control", value=1.0, controller="throttle", previous=0.25, strain=20.0, shed=3),
              event(2000 * MS, "control", value=150e6, controller="block_time", previous=250e6, strain=3.0)]
    history = write_history(tmp_path, rows, events, scenario=scenario_dict(THROTTLED))
    expected = {
        "throttle": {"decisions": 3, "output": "admitted_share", "lowest": 0.25, "highest": 1.0, "last": 1.0,
                     "shed": 3, "sheds": ["spam"]},
        "block_time": {"decisions": 1, "output": "block_interval_ms", "lowest": 150.0, "highest": 150.0,
                       "last": 150.0, "shed": None, "sheds": []},
    }
    assert control_summary(history) == expected
    summary = analyse(history).summary
    assert summary["control"] == expected and summary["failure_threshold"] is None
    assert summary["by_kind"]["spam"]["dropped"] == 3


def test_a_run_without_decisions_has_no_control(tmp_path: Path) -> None:
    history = write_history(tmp_path, steady(), scenario=scenario_dict(BASE_SCENARIO))
    assert control_summary(history) is None and "control" not in analyse(history).summary
