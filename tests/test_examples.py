"""The examples a user runs first do what the README says they show."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

import msgstorm

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_flash_crash_shows_burst_shedding_and_desync(tmp_path) -> None:
    result = msgstorm.run(msgstorm.load_scenario(EXAMPLES / "flash-crash.toml"), tmp_path)
    windows = {row["t_start_ns"] // 1_000_000_000: row for row in result.analysis.windows.to_pylist()}
    calm = max(windows[s]["p99_ms"] for s in range(5))
    burst = max(windows[s]["p99_ms"] for s in range(8, 14))
    assert burst > 2 * calm, (calm, burst)
    summary = result.summary
    assert summary["backpressure"]["events"] > 0
    assert 6 < summary["backpressure"]["first_engaged_s"] < 14
    messages = result.history.messages
    dropped = messages.filter(pc.equal(messages["status"], "dropped"))
    assert dropped.num_rows > 0
    assert set(dropped["kind"].to_pylist()) <= {"spam", "quote"}, "shedding spares orders and liquidations"
    assert summary["desync"]["episodes"] >= 3
    desync_nodes = {row["node"] for row in result.history.events.to_pylist() if row["kind"] == "desync_start"}
    assert {"ap-northeast-0", "ap-northeast-1", "ap-northeast-2"} <= desync_nodes
    assert summary["failure_threshold"] is not None


def test_ramp_reports_a_knee_below_service_capacity(tmp_path) -> None:
    result = msgstorm.run(msgstorm.load_scenario(EXAMPLES / "ramp.toml"), tmp_path)
    knee = result.summary["capacity"]["knee_rate_per_s"]
    assert knee is not None
    assert 3500 <= knee <= 5100  # service rate is 5,000/s
    assert result.summary["failure_threshold"]["rate_per_s"] > knee
    assert result.analysis.steps is not None and result.analysis.steps.num_rows == 10


def test_quickstart_runs_clean(tmp_path) -> None:
    result = msgstorm.run(msgstorm.load_scenario(EXAMPLES / "quickstart.toml"), tmp_path)
    assert result.summary["messages"]["committed"] == result.summary["messages"]["sent"] > 20_000
    assert all(slo["verdict"] == "pass" for slo in result.summary["slo"])
