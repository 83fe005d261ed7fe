"""A sequencer outage on the live rollup (``live/faults/sequencer_outage.py``, ``live/chain/forced.py``)
against two real anvils: nothing soft-confirmed while the sequencer is down but what the chain
forces in, each forced message in the first L2 block after its L1 block + the window, the
backlog drained after the return, every message accounted for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
import pytest
from conftest import require_anvil

from msgstorm.live.chain.forced import FORCED_INBOX, SequencerFront
from msgstorm.live.chain.record import Window
from msgstorm.live.chain.rollup import L1Head
from msgstorm.rules.forced_inclusion import forced_time, l1_block_time, sequencer_takes_first
from msgstorm.scenario import Scenario, parse_scenario
from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.faults import SequencerOutageFault
from msgstorm.scenario.kinds import MESSAGE_KINDS
from msgstorm.traffic.generate import MessageBatch

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
batcher = { max_delay = "2s", max_size = 100000, data = "calldata" }
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
                                   'batcher = { max_delay = "2s", max_size = 100000, data = "calldata" }\n'
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
    # Each edge at its time or after (a loaded machine's stall of the run's loop starts it
    # late); its end is stamped when the sequencer is back, after the L1 sends under way were
    # answered (200 ms idle, 2.25 s seen at load 9).
    assert start >= 2 * S and end >= 8 * S and end - start <= 6 * S + 3 * S
    messages = {m["msg_id"]: m for m in _rows(result.run_dir, "messages")}
    # Everything accounted for: 11 s at 10/s and 4/s, each message committed once.
    assert len(messages) == 110 + 44
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
    held = [m for m in messages.values() if m["kind"] == "order" and start <= m["t_sent"] < end]
    backlog = json.loads(end_event["detail"])["backlog"]
    assert backlog == len(held) + len(taken_back)
    # Each held order sent when it was due (its user sent it then; a second is the slack of a
    # loaded machine against the seconds to the return), taken by the node after the return.
    assert all(m["t_sent"] - m["t_intended"] < S and m["t_sent"] < end <= m["t_received"] <= m["t_committed"]
               for m in held)
    outage = summary["outages"][0]
    assert outage["backlog"] == backlog
    # The drain: until the last message meant before the return is committed (the held orders
    # among them: none had reached the node, so their t_received is after the return).
    last = max(m["t_committed"] for m in messages.values() if m["t_intended"] < end <= m["t_committed"])
    assert outage["drain_s"] == pytest.approx((last - end) / 1e9, abs=1e-6)
    assert last >= max(m["t_committed"] for m in held) and all(m["t_received"] >= end for m in held)
    assert 0 < outage["drain_s"] < 2.0  # 60-odd transactions: a few L2 blocks
    # Every committed message's batch landed on L1 (the batcher ran through the outage).
    commits = _rows(result.run_dir, "commits")
    assert sorted(c["msg_id"] for c in commits) == sorted(messages)


class _FakeL1:
    """The batcher's L1 side as the front uses it: user transactions land in ``lands[k]``
    (the k-th sent), whose head came at ``heads[block]``."""

    poster = "0xposter"

    def __init__(self, lands: list[int], heads: dict[int, int]) -> None:
        self.lands = lands
        self.sent: list[str] = []
        self.l1_rpc = self
        self.l1_blocks = {n: L1Head(n, t, 0, 0, []) for n, t in heads.items()}

    async def call(self, method: str, *params: Any) -> Any:
        assert method == "eth_sendTransaction" and params[0]["to"] == FORCED_INBOX
        self.sent.append(params[0]["data"])
        return hex(len(self.sent) - 1)

    async def calls(self, method: str, params: list[list[Any]]) -> list[Any]:
        assert method == "eth_getTransactionReceipt"
        return [{"blockNumber": hex(self.lands[int(p[0], 16)])} for p in params]


def test_the_front_forces_in_by_the_window_and_sends_the_backlog_in_order_at_the_return() -> None:
    """Down at 0 with cancels through L1 and a 2 s window. Rows: 0 an order, 1 to 4 cancels, 5
    an order. The cancels land in L1 blocks 5, 6, 9 and 12, whose heads came at 1 s, 2 s and
    4.5 s (block 12's not yet at the return): due at 3 s, 4 s and 6.5 s. Looked at 2.9 s, 3.5 s
    and 4.2 s: row 1 forced in at 3.5 s, row 2 at 4.2 s. The sequencer returns at 5 s: the held
    orders first (rows 0 and 5, in one send), then the cancel on L1 whose window has not passed
    (row 3), then the one not in an L1 block yet (row 4). Backlog: 2 held + 2 cancels."""
    cancel, order = MESSAGE_KINDS.index("cancel"), MESSAGE_KINDS.index("order")
    kinds = [order, cancel, cancel, cancel, cancel, order]
    n = len(kinds)
    batch = MessageBatch(np.arange(10, 10 + n, dtype=np.int64), np.arange(n, dtype=np.int64) * MS,
                         np.zeros(n, np.int32), np.asarray(kinds, np.int8), np.zeros(n, np.int32),
                         np.zeros(n, np.int64), np.full(n, 100, np.int32), np.ones(n))
    window = Window(batch, np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.full(n, -1, np.int8))
    clock = [0]
    replays: list[tuple[int, list[int]]] = []
    events: list[tuple[int, str, Any, Any, Any]] = []
    l1 = _FakeL1([5, 6, 9, 12], {5: 1 * S, 6: 2 * S, 9: 4_500 * MS})
    front = SequencerFront(l1, lambda: clock[0], lambda w, rows: replays.append((clock[0], list(rows))),
                           events.append)
    spec = _scenario().faults[0]
    assert isinstance(spec, SequencerOutageFault)

    async def drive() -> tuple[int, int]:
        front.go_down(spec, spec.window_ns(_scenario().rollup))
        front.take(window, range(n))
        await asyncio.sleep(0)  # the L1 sends answered
        for t in (2_900 * MS, 3_500 * MS, 4_200 * MS):
            clock[0] = t
            await front.step()
        clock[0] = 5 * S
        return await front.up()

    t_up, backlog = asyncio.run(drive())
    assert len(l1.sent) == 4 and all(data.startswith("0x6d736773") for data in l1.sent)  # the messages' inputs
    assert list(window.sent) == [0] * n  # all sent by their users when due (clock 0)
    assert replays == [(3_500 * MS, [1]), (4_200 * MS, [2]), (5 * S, [0, 5]), (5 * S, [3]), (5 * S, [4])]
    assert [(t, value, detail) for t, _, _, value, detail in events] == [
        (3_500 * MS, 11.0, {"t_l1": 1 * S, "forced": True}), (4_200 * MS, 12.0, {"t_l1": 2 * S, "forced": True}),
        (5 * S, 13.0, {"t_l1": 4_500 * MS, "forced": False}), (5 * S, 14.0, {"t_l1": None, "forced": False})]
    assert (t_up, backlog) == (5 * S, 4)
