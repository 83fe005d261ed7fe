"""A sequencer outage (sim/rollup/outage.py): nothing sequenced while down, the backlog drained after."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from msgstorm.history.reader import read_history
from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.faults import SequencerOutageFault
from msgstorm.scenario.rollup import OP_SEQUENCING_WINDOW_NS
from msgstorm.scenario.schema import Scenario

MS = 1_000_000
S = 1_000_000_000

_OUTAGE = """
[run]
name = "outage"
duration = "5s"
drain = "2s"
[network]
nodes_per_region = 1
processing = "50us"
[sequencer]
service = "1ms"
[[agents]]
name = "t"
role = "trader"
arrival = { process = "constant", rate = "100/s" }
[[faults]]
kind = "sequencer_outage"
at = "2s"
duration = "1s"
"""


def test_nothing_is_sequenced_while_down_and_the_backlog_drains_at_the_service_rate(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    result = run_scenario(scenario_from(_OUTAGE))
    history = read_history(result.run_dir)  # type: ignore[attr-defined]
    m = history.table("messages").to_pylist()
    assert all(r["status"] == "committed" for r in m)
    # No message started service in the window; the one a worker held at 2 s (if any) ended by 2.001 s.
    assert not [r for r in m if 2 * S <= r["t_dequeued"] < 3 * S]
    assert not [r for r in m if 2 * S + 1 * MS < r["t_sequenced"] <= 3 * S]
    # The backlog: every message received while down and not yet taken; one worker at a
    # constant 1 ms takes them first (FIFO, ahead of later arrivals): the k-th at 3 s + k ms.
    backlog = sorted((r for r in m if 2 * S <= r["t_received"] < 3 * S), key=lambda r: r["seq_no"])
    assert len(backlog) == 100  # 100/s for 1 s
    assert [r["t_sequenced"] for r in backlog] == [3 * S + (k + 1) * MS for k in range(100)]
    later = [r for r in m if r["t_received"] >= 3 * S]
    assert min(r["seq_no"] for r in later) > max(r["seq_no"] for r in backlog)
    ends = [e for e in history.table("events").to_pylist() if e["kind"] == "fault_end"]
    assert len(ends) == 1 and ends[0]["value"] == 100.0 and json.loads(ends[0]["detail"])["backlog"] == 100
    summary = result.analysis.summary  # type: ignore[attr-defined]
    outage = summary["outages"][0]
    assert outage["backlog"] == 100
    assert outage["drain_s"] == 0.1  # 100 x 1 ms
    assert np.isclose(outage["down_s"], 1.0)


_FORCED = """
[run]
name = "forced"
duration = "70s"
drain = "5s"
[network]
nodes_per_region = 1
processing = "50us"
[sequencer]
service = "1ms"
[[agents]]
name = "t"
role = "trader"
arrival = { process = "constant", rate = "10/s" }
[[faults]]
kind = "sequencer_outage"
at = "2s"
duration = "60s"
via_l1 = ["order", "cancel", "quote"]
window = "20s"
"""


def test_a_message_through_l1_is_forced_in_one_window_after_its_l1_block(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    # Down from 2 s to 62 s; L1 blocks every 12 s; window 20 s. A message that reached the
    # sequencer at t goes to L1 block (t // 12 s + 1) x 12 s and in at that + 20 s: received in
    # [2, 12) s: 32 s; [12, 24): 44 s; [24, 36): 56 s. From 36 s on its L1 block (48 s, 60 s,
    # 72 s) + 20 s is after the return at 62 s: the sequencer takes it then.
    result = run_scenario(scenario_from(_FORCED))
    history = read_history(result.run_dir)  # type: ignore[attr-defined]
    m = history.table("messages").to_pylist()
    assert all(r["status"] == "committed" for r in m)
    down = [r for r in m if 2 * S <= r["t_received"] < 62 * S]
    assert len(down) == 600
    for r in down:
        t = r["t_received"]
        if t < 36 * S:
            assert r["t_sequenced"] == (t // (12 * S) + 1) * 12 * S + 20 * S, r
        else:
            assert r["t_sequenced"] > 62 * S, r
    assert not [r for r in m if 2 * S + MS < r["t_sequenced"] < 62 * S
                and r["t_sequenced"] not in (32 * S, 44 * S, 56 * S)]
    forced = [e for e in history.table("events").to_pylist() if e["kind"] == "forced_inclusion"]
    assert sum(json.loads(e["detail"])["forced"] for e in forced) == 340  # received in [2, 36) s at 10/s
    assert len(forced) == 340 + 240  # [36, 60) s: in an L1 block before the return
    # The 240 the returning sequencer took go into its queue at 62 s in their L1 order; its one
    # worker at 1 ms sequences the k-th at 62 s + k ms: the event says when each entered the
    # L2 sequence, not when the sequencer came back.
    sequenced = {r["msg_id"]: r["t_sequenced"] for r in m}
    taken = [e for e in forced if not json.loads(e["detail"])["forced"]]
    assert sorted(e["t"] for e in taken) == [62 * S + k * MS for k in range(1, 241)]
    assert all(e["t"] == sequenced[int(e["value"])] for e in forced)


_OP_OUTAGE = """
[run]
name = "op-forced"
duration = "12.6h"
drain = "10s"
[network]
nodes_per_region = 1
processing = "50us"
[sequencer]
service = "1ms"
[rollup]
preset = "op-stack"
[[agents]]
name = "t"
role = "trader"
arrival = { process = "constant", rate = "0.001/s" }
[[faults]]
kind = "sequencer_outage"
at = "1s"
duration = "12.5h"
via_l1 = ["order", "cancel", "quote"]
"""


def test_the_op_stack_preset_forces_in_after_its_12_hour_sequencing_window(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    # OP Stack's sequencing window: 3,600 L1 blocks of 12 s = 12 h (Arbitrum One's delayed
    # inbox: 24 h). Down from 1 s to 1 s + 12.5 h = 45,001 s; a message every 1,000 s. One
    # received at t reaches L1 in the block of (t // 12 s + 1) x 12 s and is forced in 12 h
    # later when that is before the return: those received before 45,001 - 43,200 - 12 =
    # 1,789 s, the first two (the arrivals' phase puts them at 378.65 s and 1,378.65 s: L1 at
    # 384 s and 1,380 s, in at 43,584 s and 44,580 s). Under a 24 h window the returning
    # sequencer would have taken every one.
    scenario = scenario_from(_OP_OUTAGE)
    outage = scenario.faults[0]
    assert isinstance(outage, SequencerOutageFault)
    assert outage.window is None and outage.window_ns(scenario.rollup) == 12 * 3600 * S == OP_SEQUENCING_WINDOW_NS
    result = run_scenario(scenario)
    history = read_history(result.run_dir)  # type: ignore[attr-defined]
    received = {r["msg_id"]: r["t_received"] for r in history.table("messages").to_pylist()}
    forced = [(int(e["value"]), e["t"], json.loads(e["detail"])) for e in history.table("events").to_pylist()
              if e["kind"] == "forced_inclusion" and json.loads(e["detail"])["forced"]]
    assert [t for _, t, _ in forced] == [43_584 * S, 44_580 * S]
    for msg_id, t, detail in forced:
        assert detail["t_l1"] == (received[msg_id] // (12 * S) + 1) * 12 * S
        assert t == detail["t_l1"] + 12 * 3600 * S


def test_the_forced_inclusion_window_is_the_fault_s_else_the_rollup_s_else_24_hours(
        scenario_from: Callable[..., Scenario]) -> None:
    day, half = 24 * 3600 * S, 12 * 3600 * S
    arbitrum = scenario_from(_OP_OUTAGE.replace('"op-stack"', '"arbitrum-one"'))
    assert arbitrum.faults[0].window_ns(arbitrum.rollup) == day  # type: ignore[union-attr]
    bare = scenario_from(_OUTAGE)
    assert bare.rollup is None and bare.faults[0].window_ns(None) == day  # type: ignore[union-attr]
    given = scenario_from(_OP_OUTAGE + 'window = "1h"\n')
    assert given.faults[0].window_ns(given.rollup) == 3600 * S  # type: ignore[union-attr]
    op = scenario_from(_OP_OUTAGE)
    assert op.rollup is not None and op.rollup.forced_inclusion_window == half


_LOSE = """
[run]
name = "lose"
duration = "20s"
drain = "2s"
[network]
nodes_per_region = 1
processing = "50us"
[sequencer]
service = "1ms"
[rollup]
block_time = "1s"
batcher = { max_delay = "3s" }
l1 = { slot = "2s" }
[[agents]]
name = "t"
role = "trader"
arrival = { process = "constant", rate = "10/s" }
[[faults]]
kind = "sequencer_outage"
at = "10.5s"
duration = "2s"
lose_unposted = true
"""


def test_an_outage_that_loses_unposted_drops_what_no_batch_on_l1_held(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    # 10 messages a second, each sequenced 1.05 ms after it is sent; L2 blocks every 1 s (block
    # k holds what was sequenced in (k - 1, k] s); batches of 3 s: blocks 1-3 close at 4 s, 4-6
    # at 7 s, 7-9 at 10 s; an L1 block every 2 s takes what closed before it: 4 s -> 6 s, 7 s ->
    # 8 s, 10 s -> 12 s. Down at 10.5 s: on L1 by then the batches of blocks 1-6; blocks 7-10
    # are soft-confirmed, unposted (sent in [6, 10) s: 40 messages); sent in [10, 10.5) s: in no
    # block yet (5). Those 45 end dropped; what came during the outage (20) is kept and drained.
    result = run_scenario(scenario_from(_LOSE))
    history = read_history(result.run_dir)  # type: ignore[attr-defined]
    m = history.table("messages").to_pylist()
    assert len(m) == 200
    dropped = sorted(r["t_intended"] // (100 * MS) for r in m if r["status"] == "dropped")
    assert dropped == list(range(60, 105))  # sent at 6.0 s ... 10.4 s (a tenth of a second each)
    assert all(r["status"] == "committed" for r in m if r["status"] != "dropped")
    soft = [r for r in m if r["status"] == "dropped" and r["t_intended"] < 10 * S]
    assert all(r["t_committed"] is None and r["block"] == r["t_sequenced"] // S + 1 for r in soft)
    lost = [e for e in history.table("events").to_pylist() if e["kind"] == "unposted_lost"]
    assert [(e["t"], e["value"], json.loads(e["detail"])["stage"]) for e in lost] == [
        (10_500 * MS, 5.0, "queued"), (10_500 * MS, 40.0, "soft")]
    assert sorted(i for e in lost for i in json.loads(e["detail"])["msg_ids"]) == sorted(
        r["msg_id"] for r in m if r["status"] == "dropped")
    # The rollup's tables hold only what is still committed, its first two batches as before.
    commits = history.table("commits").to_pylist()
    assert sorted(c["msg_id"] for c in commits) == sorted(r["msg_id"] for r in m if r["status"] == "committed")
    batches = history.table("batches").to_pylist()
    assert [(b["t_opened"], b["t_closed"], b["slot"], b["messages"]) for b in batches[:2]] == [
        (1 * S, 4 * S, 3, 30), (4 * S, 7 * S, 4, 30)]
    assert batches[2]["t_opened"] == 13 * S  # the next block with messages: after the return at 12.5 s
    outage = result.analysis.summary["outages"][0]  # type: ignore[attr-defined]
    assert outage["lost_unposted"] == 45 and outage["backlog"] == 20


def test_an_outage_that_keeps_its_backlog_says_nothing_lost(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    result = run_scenario(scenario_from(_LOSE.replace("lose_unposted = true\n", "")))
    history = read_history(result.run_dir)  # type: ignore[attr-defined]
    assert all(r["status"] == "committed" for r in history.table("messages").to_pylist())
    assert "lost_unposted" not in result.analysis.summary["outages"][0]  # type: ignore[attr-defined]


def test_lose_unposted_without_a_rollup_is_refused_naming_the_field(
        scenario_from: Callable[..., Scenario]) -> None:
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.lose_unposted.*no batches: add a \[rollup\]"):
        scenario_from(_OUTAGE + "lose_unposted = true\n")


def test_the_failure_threshold_of_an_outage_names_its_window_and_the_fault_not_an_overload(tmp_path) -> None:
    """examples/rollup-outage.toml: the one-minute window from 1,200 s, when the sequencer
    stops for 78 minutes, commits nothing while the queue grows. That is the outage's doing:
    the threshold's reason is ``fault`` (it said ``overload``, and read as a capacity of
    5.97/s), its window's time and fault are named in summary.json, the terminal and the
    report's card."""
    import html
    import re
    from pathlib import Path

    from typer.testing import CliRunner

    from msgstorm.cli import app

    example = Path(__file__).resolve().parent.parent / "examples" / "rollup-outage.toml"
    result = CliRunner().invoke(app, ["run", str(example), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["failure_threshold"] == {"rate_per_s": 5.967, "reason": "fault", "t_ns": 1_200 * S,
                                            "faults": [{"fault_id": 0, "kind": "sequencer_outage"}]}
    said = " ".join(result.output.replace("│", " ").split())
    assert ("failure threshold 5.97/s (fault) in the window from 20 min 0 s, during fault 0 (sequencer_outage)"
            in said), said
    page = (tmp_path / "run" / "report.html").read_text()
    card = re.search(r'<div class="label">failure threshold</div><div class="value">([^<]*)</div>'
                     r'<div class="sub">([^<]*)</div>', page)
    assert card is not None
    assert (card.group(1), html.unescape(card.group(2))) == (
        "5.97/s", "fault in the window from 20 min 0 s, during fault 0 (sequencer_outage)")
