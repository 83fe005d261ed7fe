"""The examples a user runs first do what the README says they show."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
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


def test_matching_engine_runs_compiled_and_finds_its_capacity(tmp_path) -> None:
    from msgstorm.history import HistoryWriter
    from msgstorm.sim.shadow import ShadowNetwork

    scenario = msgstorm.load_scenario(EXAMPLES / "matching-engine.toml")
    probe = HistoryWriter(tmp_path / "probe")
    assert ShadowNetwork(scenario, probe, np.random.SeedSequence(1)).solo is not None  # it runs compiled
    probe.close()
    result = msgstorm.run(scenario, tmp_path / "run")
    summary = result.summary
    # Lognormal service, median 40us, sigma 0.5: mean 45.3us, 22,060 orders/s at full use;
    # the ramp steps by 2,000/s, so the last stable step is 20,000 or 22,000/s.
    assert 19_000 <= summary["capacity"]["knee_rate_per_s"] <= 22_100
    assert summary["failure_threshold"]["rate_per_s"] > summary["capacity"]["knee_rate_per_s"]
    assert summary["messages"]["committed"] == summary["messages"]["sent"] > 700_000


def test_byzantine_breaks_safety_at_one_confirmation_and_not_at_two(tmp_path) -> None:
    """The numbers docs/examples.md gives for examples/byzantine.toml."""
    scenario = msgstorm.load_scenario(EXAMPLES / "byzantine.toml")
    checks = {c["name"]: c for c in msgstorm.run(scenario, tmp_path / "one").summary["checks"]}
    assert checks["safety"]["verdict"] == "invalid"
    detail = checks["safety"]["detail"]
    assert detail.startswith("conflicting blocks finalised at 5 heights (byzantine: us-east-0): height 14: ")
    assert [int(h) for h in re.findall(r"height (\d+):", detail)] == [14, 19, 23, 25, 28]
    assert detail.count(", block ") == 5 and detail.count(" by eu-west-2;") + detail.endswith(" by eu-west-2") == 5
    assert checks["liveness"]["detail"] == (
        "62 commits, the first at 1 s; longest gap between commits 1000.0 ms (from 1 s to 2 s)")
    deep = msgstorm.load_scenario(EXAMPLES / "byzantine.toml", ["blocks.producers.confirmations=2"])
    checks = {c["name"]: c for c in msgstorm.run(deep, tmp_path / "two").summary["checks"]}
    assert checks["safety"] == {"name": "safety", "verdict": "valid",
                                "detail": "honest nodes finalised one block at each height up to 61 (byzantine: us-east-0)"}
