"""Flooding nodes (sim/flood.py, the kernel's ITEM_INVALID): each receiver validates every
invalid message and drops it; what it costs, exactly on a line, and counted in a run's
summary and terminal lines."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from msgstorm.analysis.summary import analyse
from msgstorm.history import read_history
from msgstorm.report.terminal import security_lines
from msgstorm.scenario import ScenarioError
from msgstorm.scenario.distributions import Constant
from msgstorm.scenario.schema import LinkModel
from msgstorm.sim import kernel as k
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.link_model import Degradations
from msgstorm.sim.topology import Topology

L_NS = 3_000_000
V_NS = 200_000
LINE = [[1], [0, 2], [1, 3], [2, 4], [3]]
END = 10**12


def _state() -> GossipState:
    n = len(LINE)
    topology = Topology(names=[f"n-{i}" for i in range(n)], regions=["r"], region_of=[0] * n,
                        base_ns=[[L_NS]], region_model=[[LinkModel()]], node_overrides={},
                        forward=LINE, connections=LINE)
    return GossipState(topology, Constant(value=V_NS), 0.0, np.random.default_rng(1), np.random.default_rng(2),
                       Degradations(n), delivery_stride=1, delivery_budget=10**6, order_seed=7)


def _delivered(state: GossipState) -> dict[tuple[int, int], int]:
    while state.run(END) is not None:
        pass
    msg, node, t, _hops = state.drain_deliveries()
    return {(m, v): when for m, v, when in zip(msg.tolist(), node.tolist(), t.tolist(), strict=True)}


def test_an_invalid_message_costs_each_peer_one_validation_and_goes_no_further() -> None:
    state = _state()
    state.inject(0, 2, 10**6, k.ITEM_INVALID, 100)
    assert _delivered(state) == {}  # never sampled as a delivery
    assert state.invalid_validated == 2  # nodes 1 and 3, not 0 and 4


def test_an_honest_message_waits_behind_an_invalid_ones_validation() -> None:
    sent = V_NS // 2
    plain = _state()
    plain.inject(sent, 2, 0, k.ITEM_MSG, 100)
    at_1 = _delivered(plain)[(0, 1)]
    assert at_1 == sent + V_NS + L_NS + V_NS
    flooded = _state()
    # The invalid message reaches node 1 at V + L and holds its CPU until 2V + L; the honest
    # one arrives at V / 2 + V + L, in between, and is validated V after the invalid one.
    flooded.inject(0, 0, 10**6, k.ITEM_INVALID, 100)
    flooded.inject(sent, 2, 0, k.ITEM_MSG, 100)
    assert _delivered(flooded)[(0, 1)] == 2 * V_NS + L_NS + V_NS == at_1 + V_NS // 2
    assert flooded.invalid_validated == 1


NETWORK = """
[run]
name = "flood"
seed = 4
duration = "3s"
drain = "2s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 4
processing = "50us"
bandwidth = "unlimited"

[gossip]
mode = "flood"
degree = 8
peers = 2

[sequencer]
node = "us-east-0"

[history]
delivery_sample = 1.0

[[agents]]
name = "traders"
count = 8
arrival = { process = "poisson", rate = "10/s" }
"""

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
    summary = analyse(history).summary
    peers = len(_peers(history)["eu-west-1"])
    assert peers >= 1
    assert summary["byzantine"] == {
        "faults": [{"fault_id": 0, "kind": "flood_invalid", "nodes": ["eu-west-1"]}],
        "eclipsed": [],
        "invalid_sent": 100,  # one every 10 ms in [1 s, 2 s)
        "invalid_validated": 100 * peers,
    }
    lines = dict(security_lines(summary))
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
