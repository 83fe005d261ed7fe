"""A surrounded node (sim/eclipse.py with attackers): its gossip peers are replaced by
attacker nodes that withhold some kinds and hold what they forward, so it sees exactly what
they pass, that late; on a small overlay with constant links the times are worked out by
hand, and through a scenario the target's arrivals are checked against the attackers'."""

from __future__ import annotations

import pytest
from sim_runs import delivered_when_quiet, deliveries_by_message, eight_nodes, gossip_on

from msgstorm.analysis.safety import dishonest_nodes
from msgstorm.analysis.summary import analyse
from msgstorm.history import read_history
from msgstorm.scenario import ScenarioError
from msgstorm.sim import kernel as k

L_NS = 3_000_000
V_NS = 200_000
HOLD_NS = 40_000_000
# Node 4, the target, has peers 1 and 3; node 2, the attacker, is not one of them.
OVERLAY = [[1, 2, 3], [0, 2, 4], [0, 1, 3], [0, 2, 4], [1, 3]]
CENSORED = k.ITEM_MSG | k.ITEM_CENSORABLE


def test_a_surrounded_node_gets_exactly_what_its_attacker_passes_that_late() -> None:
    state = gossip_on(OVERLAY, L_NS, V_NS)
    state.surround(4, [2])
    state.set_censoring(2, True)
    state.set_holding(2, HOLD_NS, 0)
    assert state.forward[4] == [2] and 4 in state.forward[2] and all(4 not in state.forward[v] for v in (0, 1, 3))
    state.inject(0, 0, 0, k.ITEM_MSG, 100)  # passed, held: one hop from 0 to 2, the hold, one hop to 4
    state.inject(10**9, 0, 1, CENSORED, 100)  # withheld: never reaches the target
    state.inject(2 * 10**9, 4, 2, CENSORED, 100)  # the target's own, withheld: goes no further than 2
    state.inject(3 * 10**9, 4, 3, k.ITEM_MSG, 100)  # the target's own, passed: held at 2
    delivered = delivered_when_quiet(state)
    hop = L_NS + V_NS
    assert delivered[(0, 4)] == V_NS + 2 * hop + HOLD_NS
    assert {v for m, v in delivered if m == 1} == {0, 1, 2, 3}
    assert {v for m, v in delivered if m == 2} == {4, 2}
    assert {(v, t) for (m, v), t in delivered.items() if m == 3} == {
        (4, 3 * 10**9 + V_NS), (2, 3 * 10**9 + V_NS + hop),
        (0, 3 * 10**9 + V_NS + 2 * hop + HOLD_NS), (1, 3 * 10**9 + V_NS + 2 * hop + HOLD_NS),
        (3, 3 * 10**9 + V_NS + 2 * hop + HOLD_NS)}
    # Restored: the target has its own peers again and the attacker is honest.
    state.surround(4, None)
    state.set_censoring(2, False)
    state.set_holding(2, 0, 0)
    state.inject(4 * 10**9, 0, 4, CENSORED, 100)
    assert delivered_when_quiet(state)[(4, 4)] == 4 * 10**9 + V_NS + 2 * hop


NETWORK = eight_nodes("surround", peers=3, rate="20/s")
TARGET = "eu-west-2"
ATTACKERS = ["us-east-1", "eu-west-0"]
SURROUND = f"""
[[faults]]
kind = "eclipse"
node = "{TARGET}"
attackers = ["us-east-1", "eu-west-0"]
kinds = ["cancel"]
delay = "100ms"
at = "1s"
duration = "1s"
"""
AT, END, DELAY = 10**9, 2 * 10**9, 100_000_000


def test_a_surrounded_node_in_a_run_sees_only_what_the_attackers_let_through(scenario_from, run_scenario) -> None:
    history = read_history(run_scenario(scenario_from(NETWORK + SURROUND)).run_dir)
    delivered = deliveries_by_message(history)
    messages = history.table("messages").to_pylist()
    # Sent inside the window, long enough before its end for every copy to arrive inside it.
    inside = [row for row in messages if AT + 1_000_000 <= row["t_sent"] < END - 4 * DELAY]
    assert {row["kind"] for row in inside} == {"order", "cancel"}
    for row in inside:
        times = delivered[row["msg_id"]]
        if row["node"] == TARGET:  # its own: the attackers pass its orders on, held, and keep its cancels
            if row["kind"] == "cancel":
                assert set(times) <= {TARGET, *ATTACKERS} and row["status"] == "lost", row
            else:
                assert len(times) == 8 and row["status"] == "committed", row
            continue
        seen = [times[a] for a in ATTACKERS if a in times]
        assert seen, row  # every message reaches an attacker
        if row["kind"] == "cancel":
            assert TARGET not in times, row
        else:  # held by the attacker that had it first, then one hop
            assert min(seen) + DELAY < times[TARGET] < min(seen) + DELAY + 200_000_000, row
    # After the end the target is back on its own peers, nothing held.
    after = [row for row in messages if row["t_sent"] >= END + 10_000_000]
    assert after and all(len(delivered[row["msg_id"]]) == 8 for row in after)
    assert dishonest_nodes(history) == set(ATTACKERS)
    summary = analyse(history).summary
    assert summary["byzantine"]["eclipsed"] == [TARGET]
    assert summary["byzantine"]["faults"] == [{"fault_id": 0, "kind": "eclipse", "nodes": ATTACKERS}]


def test_attackers_drawn_with_the_seed_are_other_nodes_than_the_target(scenario_from, run_scenario) -> None:
    text = NETWORK + SURROUND.replace('attackers = ["us-east-1", "eu-west-0"]', "count = 3")
    history = read_history(run_scenario(scenario_from(text)).run_dir)
    drawn = dishonest_nodes(history)
    assert len(drawn) == 3 and TARGET not in drawn


@pytest.mark.parametrize(("edit", "message"), [
    ('attackers = ["mars-0"]', r"faults\[0\]\.attackers\[0\]: unknown node 'mars-0'"),
    ("count = 8", r"faults\[0\]\.count: 8 attackers drawn from the 7 nodes other than the target"),
    (f'attackers = ["{TARGET}"]', r"faults\[0\]\.eclipse: .*among its attackers"),
    ('attackers = ["us-east-1"]\ncount = 1', r"faults\[0\]\.eclipse: .*not both"),
])
def test_attackers_are_refused_with_the_field_named(scenario_from, edit: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from(NETWORK + SURROUND.replace('attackers = ["us-east-1", "eu-west-0"]', edit))


def test_withheld_kinds_need_attackers(scenario_from) -> None:
    text = NETWORK + SURROUND.replace('attackers = ["us-east-1", "eu-west-0"]\n', "")
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.eclipse: kinds are what attackers withhold"):
        scenario_from(text)




def test_two_surrounding_eclipses_at_once_are_refused(scenario_from) -> None:
    second = SURROUND.replace('at = "1s"', 'at = "1.5s"').replace(TARGET, "us-east-3")
    with pytest.raises(ScenarioError, match=r"faults\[1\]\.at: it surrounds a node while an earlier surrounding "
                                            r"eclipse is on: one at a time"):
        scenario_from(NETWORK + SURROUND + second)
    scenario_from(NETWORK + SURROUND + second.replace('at = "1.5s"', 'at = "2s"'))  # one after the other: fine
