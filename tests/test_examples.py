"""The examples a user runs first do what the README says they show."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

import msgstorm

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_flash_crash_shows_burst_shedding_and_desync(example_run) -> None:
    result = example_run("flash-crash")
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


@pytest.mark.slow
def test_ramp_reports_a_knee_below_service_capacity(example_run) -> None:
    result = example_run("ramp")
    knee = result.summary["capacity"]["knee_rate_per_s"]
    assert knee is not None
    assert 3500 <= knee <= 5100  # service rate is 5,000/s
    assert result.summary["failure_threshold"]["rate_per_s"] > knee
    assert result.analysis.steps is not None and result.analysis.steps.num_rows == 10


@pytest.mark.slow
def test_quickstart_runs_clean(example_run) -> None:
    result = example_run("quickstart")
    assert result.summary["messages"]["committed"] == result.summary["messages"]["sent"] > 20_000
    assert all(slo["verdict"] == "pass" for slo in result.summary["slo"])


def test_matching_engine_runs_compiled_and_finds_its_capacity(tmp_path, example_run) -> None:
    from msgstorm.history import HistoryWriter
    from msgstorm.sim.shadow import ShadowNetwork

    scenario = msgstorm.load_scenario(EXAMPLES / "matching-engine.toml")
    probe = HistoryWriter(tmp_path / "probe")
    assert ShadowNetwork(scenario, probe, np.random.SeedSequence(1)).solo is not None  # it runs compiled
    probe.close()
    result = example_run("matching-engine")
    summary = result.summary
    # Lognormal service, median 40us, sigma 0.5: mean 45.3us, 22,060 orders/s at full use;
    # the ramp steps by 2,000/s, so the last stable step is 20,000 or 22,000/s.
    assert 19_000 <= summary["capacity"]["knee_rate_per_s"] <= 22_100
    assert summary["failure_threshold"]["rate_per_s"] > summary["capacity"]["knee_rate_per_s"]
    assert summary["messages"]["committed"] == summary["messages"]["sent"] > 700_000


@pytest.mark.slow
def test_byzantine_keeps_safety_below_the_quorum_bound_and_breaks_it_beyond(tmp_path, example_run) -> None:
    """The numbers docs/examples.md gives for examples/byzantine.toml."""
    one = example_run("byzantine").summary
    checks = {c["name"]: c for c in one["checks"]}
    assert one["finality"]["byzantine_voters"] == ["us-east-0"] and one["finality"]["within_bound"]
    assert checks["safety"] == {"name": "safety", "verdict": "valid", "detail": (
        "honest nodes finalised one block at each height up to 64 (byzantine: eu-west-2, us-east-0, us-east-2)")}
    assert checks["liveness"]["verdict"] == "valid"
    two = msgstorm.run(msgstorm.load_scenario(EXAMPLES / "byzantine.toml", ["faults.1.count=2"]),
                       tmp_path / "two").summary
    checks = {c["name"]: c for c in two["checks"]}
    assert two["finality"]["byzantine_voters"] == ["us-east-0", "us-east-2"]
    assert two["finality"]["byzantine_stake"] == 0.5 and not two["finality"]["within_bound"]
    detail = checks["safety"]["detail"]
    assert checks["safety"]["verdict"] == "invalid"
    assert detail.startswith("conflicting blocks finalised at 5 heights (byzantine: eu-west-2, us-east-0, us-east-2): "
                             "height 14: block 14 by ")
    # The equivocating producer's slots in its window, each pair of blocks final at the
    # same nine honest nodes (every vote reaches every node: no partition).
    assert [int(h) for h in re.findall(r"height (\d+):", detail)] == [14, 19, 23, 25, 28]
    honest = "ap-northeast-0 ap-northeast-1 ap-northeast-2 ap-northeast-3 eu-west-0 eu-west-1 eu-west-3 us-east-1 us-east-3"
    assert detail.count(f" by {honest}") == 10


def test_the_cross_chain_example_breaks_finality_undoes_no_commit_and_exits_0(tmp_path) -> None:
    """What the tour (docs/examples.md) and the example's header say of its safety rows: the cut makes
    nodes finalise different blocks at height 25 (us-east-1 its own, eu-west theirs, then every
    node the winning branch's), no reorg of the canonical chain goes past the 3 confirmations,
    the relayers' nodes finalise only the winner, and with no [slo] the run exits 0."""
    from typer.testing import CliRunner

    from msgstorm.cli import app
    from msgstorm.errors import ExitCode
    from msgstorm.history import read_history

    scenario = EXAMPLES / "cross-chain.toml"
    assert msgstorm.load_scenario(scenario).slo == {}
    result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(tmp_path / "run")])
    assert result.exit_code == ExitCode.OK, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    safety = next(check for check in summary["checks"] if check["name"] == "safety")
    assert safety["verdict"] == "invalid" and "height 25:" in safety["detail"]
    assert summary["forks"]["reorgs"]["final"] == 0
    finalized = read_history(tmp_path / "run").table("finalized").to_pylist()
    at_25: dict[str, set[int]] = {}
    for row in finalized:
        if row["height"] == 25:
            at_25.setdefault(row["node"], set()).add(row["block"])
    assert at_25 == {"us-east-0": {28}, "us-east-2": {28}, "us-east-1": {26, 28},
                     "eu-west-0": {27, 28}, "eu-west-1": {27, 28}, "eu-west-2": {27, 28}}


def test_black_thursday_2020s_header_says_what_its_data_and_its_drawn_book_are(tmp_path: Path) -> None:
    """The header's numbers, computed from the shipped series and the book the run draws.
    Before, it said the closes reach $101.01 (they bottom at $106.59: 101.01 is the lowest
    trade inside a bar), none below 153% (the cap 2.9 is 152.6%), and 33 vaults were drawn at
    a leverage below 1, with no debt. Now each bar is walked from its open through its two
    extremes to its close, so the run's prices reach the bars' low, and the walk's closes are
    the closes file's."""
    path = EXAMPLES / "black-thursday-2020.toml"
    header = " ".join(line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#"))
    assert 'replay = "data/eth-usd-2020-03-12-ohlc.csv"' in path.read_text()

    def series(name: str) -> list[tuple[int, float]]:
        rows = (EXAMPLES / "data" / name).read_text().split()[1:]
        return [(int(t), float(price)) for t, price in (row.split(",") for row in rows)]

    walk, closes = series("eth-usd-2020-03-12-ohlc.csv"), series("eth-usd-2020-03-12.csv")
    assert len(walk) == 4 * 144 and [t % 600 for t, _ in walk[:4]] == [0, 180, 360, 540]
    # Every fourth point is a bar's close, a minute before the closes file has it.
    assert [(t + 60, price) for t, price in walk[3::4]] == closes[1:]
    low_t, low = min(walk, key=lambda row: row[1])
    assert f"from ${walk[0][1]:.2f} at 00:00 UTC" in header and walk[0] == closes[0]
    assert f"to the bars' low, ${low:.2f} at {low_t // 3600:02d}:{low_t % 3600 // 60:02d}" in header  # $101.01, 23:26
    assert f"(in the {low_t // 3600:02d}:{low_t % 3600 // 600 * 10:02d}-" in header  # the 23:20-23:30 bar
    close_t, close_low = min(closes, key=lambda row: row[1])
    assert f"their low ${close_low:.2f} at {close_t // 3600:02d}:{close_t % 3600 // 60:02d}" in header  # $106.59, 23:40
    assert "the day's lowest trade" not in header  # the bars' low is one aggregator's, not the day's every trade
    fees = [float(row.split(",")[1]) for row in (EXAMPLES / "data" / "gas-2020-03-12.csv").read_text().split()[1:]]
    assert round(fees[0]) == 7 and max(fees) == 200 and "about 7 gwei at 00:00 and 200 gwei at the peak" in header
    result = msgstorm.run(msgstorm.load_scenario(path, ['run.duration="10min"', 'run.drain="0s"']), tmp_path / "run",
                          write_report=False)
    accounts = result.history.table("accounts").to_pydict()
    leverage = (np.asarray(accounts["size"]) * np.asarray(accounts["entry"]) / np.asarray(accounts["collateral"]))
    assert len(leverage) == 3_000 and int((leverage <= 1).sum()) == 0  # every vault borrows
    ratio = leverage / (leverage - 1)  # collateral over debt
    assert f"none below {100 * ratio.min():.1f}% (leverage {leverage.max():.1f}, the cap)" in header  # 152.6%
    assert f"none above {100 * ratio.max():,.0f}% (leverage {leverage.min():.2f}, the floor" in header  # 2,100%
    assert f"collateral at {100 * np.median(ratio):.0f}% of the debt" in header  # 227%
    assert f"drawn at a leverage of {np.median(leverage):.1f} at the median" in header
