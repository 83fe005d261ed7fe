"""A sequencer outage on the live rollup (``live/chain/outage.py``, ``live/chain/forced.py``)
against two real anvils: nothing soft-confirmed while the sequencer is down but what the chain
forces in, each forced message in the first L2 block after its L1 block + the window, the
backlog drained after the return, every message accounted for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from conftest import require_anvil

from msgstorm.rules.forced_inclusion import forced_time, l1_block_time, sequencer_takes_first
from msgstorm.scenario import Scenario, parse_scenario
from msgstorm.scenario.errors import ScenarioError

MS = 1_000_000
S = 1_000_000_000
L2_BLOCK_NS = 200 * MS
WINDOW_NS = 2 * S
SCENARIO = """
target = "anvil"
[run]
name = "live-rollup-outage-test"
seed = 7
duration = "11s"
drain = "5s"
[sequencer]
policy = "fifo"
[rollup]
preset = "arbitrum-one"
block_time = "200ms"
batcher = { max_delay = "2s", max_size = 100000 }
l1 = { slot = "1s", slots_per_epoch = 2 }
[live]
start_timeout = "60s"
[[agents]]
name = "traders"
arrival = { process = "constant", rate = "10/s" }
mix = { order = 1 }
size = "100B"
[[agents]]
name = "exits"
arrival = { process = "constant", rate = "4/s" }
mix = { cancel = 1 }
size = "100B"
[[faults]]
kind = "sequencer_outage"
at = "2s"
duration = "6s"
via_l1 = ["cancel"]
window = "2s"
"""


def _scenario(text: str = SCENARIO, *overrides: str) -> Scenario:
    return parse_scenario(text, source="live-rollup-outage.toml", overrides=overrides)


def _rows(run_dir: Path, table: str) -> list[dict[str, Any]]:
    return ds.dataset(run_dir / "history" / table).to_table().to_pylist()


def test_the_rule_the_simulator_and_the_live_rollup_share() -> None:
    # Slots of 12 s: a message at 13 s is in the block at 24 s and forced in at 24 + 20 = 44 s.
    assert l1_block_time(13 * S, 12 * S) == 24 * S and l1_block_time(12 * S, 12 * S) == 24 * S
    assert forced_time(24 * S, 20 * S) == 44 * S
    assert sequencer_takes_first(24 * S, 20 * S, 44 * S)  # at the same instant the return comes first
    assert not sequencer_takes_first(24 * S, 20 * S, 44 * S + 1)


def test_a_live_sequencer_outage_is_the_live_rollups_and_keeps_its_backlog() -> None:
    assert _scenario().faults[0].kind == "sequencer_outage"
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.kind: a live sequencer outage is the live rollup's"):
        _scenario(SCENARIO.replace('[rollup]\npreset = "arbitrum-one"\nblock_time = "200ms"\n'
                                   'batcher = { max_delay = "2s", max_size = 100000 }\n'
                                   'l1 = { slot = "1s", slots_per_epoch = 2 }\n', ''))
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.lose_unposted: the live rollup keeps its backlog"):
        _scenario(SCENARIO + "lose_unposted = true\n")


@pytest.mark.slow
def test_forced_inclusion_through_the_l1_anvil_and_the_backlog_after_the_return(tmp_path: Path) -> None:
    from msgstorm.runner import run

    require_anvil()
    result = run(_scenario(), tmp_path / "run")
    events = _rows(result.run_dir, "events")
    start = next(e["t"] for e in events if e["kind"] == "fault_start")
    end_event = next(e for e in events if e["kind"] == "fault_end")
    end = end_event["t"]
    assert 6 * S - 50 * MS <= end - start <= 6 * S + 200 * MS
    messages = {m["msg_id"]: m for m in _rows(result.run_dir, "messages")}
    # Everything accounted for: 11 s at 10/s and 4/s, each message committed once, each sent
    # when it was due (a held one too: its user sent it then), not when the sequencer took it.
    assert len(messages) == 110 + 44
    assert all(0 <= m["t_sent"] - m["t_intended"] < 100 * MS for m in messages.values())
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert all(m["status"] == "committed" for m in messages.values()), \
        sorted({m["status"] for m in messages.values()})
    forced = [e for e in events if e["kind"] == "forced_inclusion"]
    by_window = {int(e["value"]): e for e in forced if json.loads(e["detail"])["forced"]}
    taken_back = {int(e["value"]): e for e in forced if not json.loads(e["detail"])["forced"]}
    assert len(by_window) + len(taken_back) == len(forced)  # each at most once
    # The cancels meant while it was down went through L1, each replayed once.
    down_cancels = {i for i, m in messages.items()
                    if m["kind"] == "cancel" and start + 20 * MS < m["t_intended"] < end - 20 * MS}
    assert down_cancels and down_cancels <= set(by_window) | set(taken_back)
    # During the outage nothing sent is soft-confirmed but what the chain forces in; what the
    # node had taken before it is in its next block.
    during = {i for i, m in messages.items() if start < m["t_committed"] < end}
    before = {i for i in during if messages[i]["t_sent"] < start}
    assert all(messages[i]["t_committed"] <= start + L2_BLOCK_NS + 300 * MS for i in before)
    assert during - before and during - before <= set(by_window), sorted(during - before - set(by_window))
    # A forced message lands in the first L2 block after its L1 block + the window; its L1
    # block is one the L1 anvil made (its head's arrival), at most a slot after it was sent.
    l1_times = {b["t"] for b in _rows(result.run_dir, "l1_blocks")}
    for msg_id, event in by_window.items():
        t_l1 = json.loads(event["detail"])["t_l1"]
        assert t_l1 in l1_times
        assert messages[msg_id]["t_sent"] < t_l1 <= messages[msg_id]["t_sent"] + S + 300 * MS
        due = forced_time(t_l1, WINDOW_NS)
        assert due <= event["t"] < end
        assert due <= messages[msg_id]["t_committed"] <= due + L2_BLOCK_NS + 300 * MS, (msg_id, event)
    # Those whose window had not passed at the return were taken by the sequencer then.
    for msg_id, event in taken_back.items():
        t_l1 = json.loads(event["detail"])["t_l1"]
        assert t_l1 is None or sequencer_takes_first(t_l1, WINDOW_NS, event["t"])
        assert messages[msg_id]["t_committed"] >= end
    # The backlog: the orders meant while down (held), and the cancels not yet forced in.
    held = [m for m in messages.values() if m["kind"] == "order" and start < m["t_intended"] < end]
    backlog = json.loads(end_event["detail"])["backlog"]
    assert backlog == len(held) + len(taken_back)
    assert all(m["t_sent"] < end <= m["t_received"] <= m["t_committed"] for m in held)  # sent on time, taken after
    outage = summary["outages"][0]
    assert outage["backlog"] == backlog
    last = max(m["t_committed"] for m in held)
    assert outage["drain_s"] == pytest.approx((last - end) / 1e9, abs=1e-6)
    assert 0 < outage["drain_s"] < 2.0  # 60-odd transactions: a few L2 blocks
    # Every committed message's batch landed on L1 (the batcher ran through the outage).
    commits = _rows(result.run_dir, "commits")
    assert sorted(c["msg_id"] for c in commits) == sorted(messages)
