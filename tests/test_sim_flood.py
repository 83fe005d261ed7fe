"""Flooding nodes (sim/flood.py, the kernel's ITEM_INVALID): each receiver validates every
invalid message and drops it; what it costs, exactly on a line, and counted in a run's
summary and terminal lines."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from sim_runs import delivered_when_quiet, eight_nodes, gossip_on

from msgstorm.analysis.summary import analyse
from msgstorm.history import read_history
from msgstorm.report.terminal import security_lines
from msgstorm.scenario import ScenarioError
from msgstorm.sim import kernel as k

L_NS = 3_000_000
V_NS = 200_000
LINE = [[1], [0, 2], [1, 3], [2, 4], [3]]




def test_an_invalid_message_costs_each_peer_one_validation_and_goes_no_further() -> None:
    state = gossip_on(LINE, L_NS, V_NS)
    state.inject(0, 2, 10**6, k.ITEM_INVALID, 100)
    assert delivered_when_quiet(state) == {}  # never sampled as a delivery
    assert state.invalid_validated == 2  # nodes 1 and 3, not 0 and 4


def test_an_honest_message_waits_behind_an_invalid_ones_validation() -> None:
    sent = V_NS // 2
    plain = gossip_on(LINE, L_NS, V_NS)
    plain.inject(sent, 2, 0, k.ITEM_MSG, 100)
    at_1 = delivered_when_quiet(plain)[(0, 1)]
    assert at_1 == sent + V_NS + L_NS + V_NS
    flooded = gossip_on(LINE, L_NS, V_NS)
    # The invalid message reaches node 1 at V + L and holds its CPU until 2V + L; the honest
    # one arrives at V / 2 + V + L, in between, and is validated V after the invalid one.
    flooded.inject(0, 0, 10**6, k.ITEM_INVALID, 100)
    flooded.inject(sent, 2, 0, k.ITEM_MSG, 100)
    assert delivered_when_quiet(flooded)[(0, 1)] == 2 * V_NS + L_NS + V_NS == at_1 + V_NS // 2
    assert flooded.invalid_validated == 1


NETWORK = eight_nodes("flood", peers=2, rate="10/s")

FLOOD = """
[[faults]]
kind = "flood_invalid"
nodes = ["eu-west-1"]
rate = "100/s"
at = "1s"
duration = "1s"
"""


def _peers(history: Any) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for row in history.table("edges").to_pylist():
        if row["overlay"]:
            out[row["src"]].add(row["dst"])
    return out


def test_a_flood_in_a_run_is_counted_in_the_summary_and_the_terminal(scenario_from, run_scenario) -> None:
    history = read_history(run_scenario(scenario_from(NETWORK + FLOOD)).run_dir)
    analysis = analyse(history)
    summary = analysis.summary
    peers = len(_peers(history)["eu-west-1"])
    assert peers >= 1
    assert summary["byzantine"] == {
        "faults": [{"fault_id": 0, "kind": "flood_invalid", "nodes": ["eu-west-1"]}],
        "eclipsed": [],
        "invalid_sent": 100,  # one every 10 ms in [1 s, 2 s)
        "invalid_validated": 100 * peers,
        "censorship": [],  # no censor_nodes fault: no victim
    }
    lines = dict(security_lines(analysis.result))
    assert lines["byzantine nodes"] == "flood_invalid: eu-west-1"
    assert lines["invalid flood"] == f"100 sent, {100 * peers} validated and dropped by receivers"
    # Honest traffic still commits, and no invalid message shows up as a message or a delivery.
    messages = history.table("messages").to_pylist()
    assert {row["status"] for row in messages} == {"committed"}
    ids = {row["msg_id"] for row in messages}
    assert {row["msg_id"] for row in history.table("deliveries").to_pylist()} <= ids


def test_a_run_without_a_flood_has_no_byzantine_section(scenario_from, run_scenario) -> None:
    summary = analyse(read_history(run_scenario(scenario_from(NETWORK)).run_dir)).summary
    assert "byzantine" not in summary


def test_a_flood_too_large_to_finish_is_refused_naming_its_rate(scenario_from) -> None:
    big = FLOOD.replace('rate = "100/s"', 'rate = "10000000/s"')
    with pytest.raises(ScenarioError, match=r"\.toml:\d+: faults\[0\]\.rate: this flood would send about "
                                            r"10,000,000 invalid messages"):
        scenario_from(NETWORK + big)
