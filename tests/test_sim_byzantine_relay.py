"""Delaying and reordering nodes (sim/byzantine_relay.py, the kernel's WATCH_HOLD): on a
line of nodes with constant links, arrival times worked out by hand; through a scenario,
the fault's events, its validation and the order a reordering node forwards in."""

from __future__ import annotations

import numpy as np
import pytest
from sim_runs import delivered_when_quiet, deliveries_by_message, eight_nodes, gossip_on

from msgstorm.analysis._common import events_of
from msgstorm.analysis.safety import dishonest_nodes
from msgstorm.history import read_history
from msgstorm.history.events import EventKind
from msgstorm.scenario import ScenarioError
from msgstorm.scenario.kinds import MESSAGE_KINDS
from msgstorm.sim import kernel as k

L_NS = 3_000_000
V_NS = 200_000
HOLD_NS = 40_000_000
LINE = [[1], [0, 2], [1, 3], [2, 4], [3]]




def test_a_delaying_node_on_a_line_delays_everything_past_it_by_its_hold() -> None:
    state = gossip_on(LINE, L_NS, V_NS)
    state.set_holding(2, HOLD_NS, 0)
    state.inject(0, 0, 0, k.ITEM_MSG, 100)
    hop = L_NS + V_NS
    expected = {(0, v): V_NS + v * hop + (HOLD_NS if v > 2 else 0) for v in range(5)}
    assert delivered_when_quiet(state) == expected
    # Sent from behind it, the other way: only the nodes past it wait.
    state.inject(10**9, 4, 1, k.ITEM_MSG, 100)
    assert delivered_when_quiet(state) == {(1, v): 10**9 + V_NS + (4 - v) * hop + (HOLD_NS if v < 2 else 0)
                                 for v in range(5)}


def test_a_node_that_no_longer_holds_forwards_at_once() -> None:
    state = gossip_on(LINE, L_NS, V_NS)
    state.set_holding(2, HOLD_NS, 0)
    state.set_holding(2, 0, 0)
    assert state.watch[2] & k.WATCH_HOLD == 0
    state.inject(0, 0, 0, k.ITEM_MSG, 100)
    assert delivered_when_quiet(state) == {(0, v): V_NS + v * (L_NS + V_NS) for v in range(5)}


def test_a_reordering_node_holds_each_item_within_its_window_and_shuffles_close_ones() -> None:
    window = 50_000_000
    state = gossip_on(LINE, L_NS, V_NS)
    state.set_holding(1, 0, window)
    items = 200
    gap = 100_000  # sent 0.1 ms apart at node 0: far inside the window
    for m in range(items):
        state.inject(m * gap, 0, m, k.ITEM_MSG, 100)
    delivered = delivered_when_quiet(state)
    at_1 = [delivered[(m, 1)] for m in range(items)]
    at_2 = [delivered[(m, 2)] for m in range(items)]
    held = [t2 - t1 - L_NS - V_NS for t1, t2 in zip(at_1, at_2, strict=True)]
    assert all(0 <= h < window for h in held)
    # Node 1 received them in send order and forwarded them in another one.
    assert at_1 == sorted(at_1)
    order = sorted(range(items), key=at_2.__getitem__)
    assert order != list(range(items))
    # Uniform holds: their mean within about 4 standard errors of window / 2.
    se = window / np.sqrt(12 * items)
    assert abs(np.mean(held) - window / 2) < 4 * se


NETWORK = eight_nodes("delay", peers=2, rate="10/s")

DELAY = """
[[faults]]
kind = "delay_nodes"
nodes = ["eu-west-1"]
delay = "200ms"
at = "1s"
duration = "1s"
"""



def test_a_delaying_node_in_a_run_is_named_in_its_events_and_delays_only_inside_its_window(
        scenario_from, run_scenario) -> None:
    plain = read_history(run_scenario(scenario_from(NETWORK)).run_dir)
    history = read_history(run_scenario(scenario_from(NETWORK + DELAY)).run_dir)
    assert dishonest_nodes(history) == {"eu-west-1"}
    starts = [d for d in events_of(history, EventKind.FAULT_START).details() if d["kind"] == "delay_nodes"]
    assert [d["byzantine"] for d in starts] == [["eu-west-1"]]
    before, after = deliveries_by_message(plain), deliveries_by_message(history)
    sent = {row["msg_id"]: row["t_sent"] for row in history.table("messages").to_pylist()}
    late = set()
    for m, times in before.items():
        if max(times.values()) < 10**9:  # done before the fault began: as without it
            assert after[m] == times, m
        if any(after[m][node] - t >= 200_000_000 for node, t in times.items()):
            late.add(m)
    # Some messages passed through the delaying node while it held them, each sent in its window.
    assert late
    assert all(10**9 - 200_000_000 <= sent[m] < 2 * 10**9 for m in late), sorted(sent[m] for m in late)
    assert {row["status"] for row in history.table("messages").to_pylist()} == {"committed"}


@pytest.mark.parametrize(("edit", "message"), [
    ('nodes = ["mars-0"]', r"faults\[0\]\.nodes\[0\]: unknown node 'mars-0'"),
    ('count = 9', r"faults\[0\]\.count: 9 delaying nodes drawn from 8 nodes"),
    ('nodes = ["eu-west-1"]\ncount = 1', r"faults\[0\].*one of the two"),
])
def test_delaying_nodes_are_refused_with_the_field_named(scenario_from, edit: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from(NETWORK + DELAY.replace('nodes = ["eu-west-1"]', edit))


def test_a_reorder_window_must_be_positive(scenario_from) -> None:
    text = NETWORK + '[[faults]]\nkind = "reorder_nodes"\ncount = 1\nwindow = "0s"\nat = "1s"\n'
    with pytest.raises(ScenarioError, match=r"\.toml:\d+: faults\[0\]\.window: Input should be greater than 0"):
        scenario_from(text)


# Announce and fetch: node 3 hears of the item first from node 2, which goes down before it
# can answer; after its timeout node 3 asks the next peer that validated the item, node 1,
# which holds what it forwards (so its own announcement comes later). Node 0 sends to 1 and
# 2; 1 and 2 to 0 and 3; 3 to 1 and 2.
DIAMOND = [[1, 2], [0, 3], [0, 3], [1, 2]]
TIMEOUT_NS = 5_000_000


def _fallback_to_the_holder(hold_ns: int) -> int:
    """When node 3 validates the item, node 1 holding ``hold_ns``."""
    relay = np.full(len(MESSAGE_KINDS), k.ANNOUNCE_FETCH, dtype=np.int64)
    state = gossip_on(DIAMOND, L_NS, V_NS, message_relay=relay, relay_timeout_ns=TIMEOUT_NS)
    state.set_holding(1, hold_ns, 0)
    state.inject(0, 0, 0, k.ITEM_MSG, 100)
    # Nodes 1 and 2 validate at 2V + 3L (an announcement, a request, the payload); node 2's
    # announcement reaches node 3 at 2V + 4L, and node 2 is down before node 3's request.
    down_at = 2 * V_NS + 4 * L_NS + 1
    assert state.run(down_at) is None
    state.set_up(2, False, down_at)
    return delivered_when_quiet(state)[(0, 3)]


def test_a_holding_node_answers_a_request_no_sooner_than_it_forwards() -> None:
    validated = 2 * V_NS + 3 * L_NS  # at nodes 1 and 2
    asked = validated + L_NS + TIMEOUT_NS  # node 3's fallback to node 1
    # A short hold is over when the fallback comes: node 1 answers at once.
    assert _fallback_to_the_holder(1_000_000) == asked + 2 * L_NS + V_NS
    # Inside its hold it answers at its release, as it forwards (it used to answer at once).
    assert validated + HOLD_NS > asked + L_NS
    assert _fallback_to_the_holder(HOLD_NS) == validated + HOLD_NS + L_NS + V_NS
