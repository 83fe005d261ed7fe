"""Censoring nodes (sim/censor.py, the kernel's WATCH_CENSOR): a censoring node that is the
only path to some nodes cuts them off from exactly the kinds it censors; with a second
path nothing is lost; other kinds pass through it as before."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import pytest

from msgstorm.analysis.safety import dishonest_nodes
from msgstorm.history import read_history
from msgstorm.scenario import ScenarioError

# Eight nodes in two regions, gossip over every overlay connection; each node opens
# {outbound} connection(s) (one: the overlay is a tree, every inner node a cut vertex).
# The sequencer is us-east-0; traders and liquidators send from every node.
NETWORK = """
[run]
name = "censor"
seed = 4
duration = "4s"
drain = "2s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 4
processing = "50us"
bandwidth = "unlimited"

[gossip]
mode = "flood"
degree = 8
peers = {peers}

[sequencer]
node = "us-east-0"

[history]
delivery_sample = 1.0

[[agents]]
name = "traders"
count = 8
arrival = {{ process = "poisson", rate = "5/s" }}

[[agents]]
name = "keepers"
role = "liquidator"
count = 8
arrival = {{ process = "poisson", rate = "5/s" }}
"""

CENSOR = """
[[faults]]
kind = "censor_nodes"
nodes = ["{node}"]
kinds = ["liquidation"]
at = "0s"
"""


def _graph(history: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for row in history.table("edges").to_pylist():
        if row["overlay"]:
            out[row["src"]].append(row["dst"])
    return out


def _reach(graph: dict[str, list[str]], origin: str, censor: str) -> set[str]:
    """The nodes a message from ``origin`` reaches when ``censor`` forwards nothing."""
    seen = {origin}
    queue = deque([origin] if origin != censor else [])
    while queue:
        node = queue.popleft()
        for peer in graph[node]:
            if peer not in seen:
                seen.add(peer)
                if peer != censor:
                    queue.append(peer)
    return seen


def _cut_vertex(graph: dict[str, list[str]], leader: str) -> str | None:
    """A node other than the leader whose silence cuts some nodes off from the leader."""
    nodes = sorted(graph)
    for node in nodes:
        if node != leader and len(_reach(graph, leader, node)) < len(nodes):
            return node
    return None


def _run(scenario_from: Any, run_scenario: Any, peers: int, censor: str | None) -> Any:
    text = NETWORK.format(peers=peers) + ("" if censor is None else CENSOR.format(node=censor))
    return read_history(run_scenario(scenario_from(text)).run_dir)


def _delivered(history: Any) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    for row in history.table("deliveries").to_pylist():
        out[row["msg_id"]].add(row["node"])
    return out


def test_a_censoring_cut_vertex_withholds_exactly_the_censored_kind(scenario_from, run_scenario) -> None:
    plain = _run(scenario_from, run_scenario, 2, None)
    graph = _graph(plain)
    censor = _cut_vertex(graph, "us-east-0")
    assert censor is not None  # a tree overlay: the test has a cut to find
    history = _run(scenario_from, run_scenario, 2, censor)
    assert dishonest_nodes(history) == {censor}
    nodes = set(graph)
    delivered = _delivered(history)
    messages = history.table("messages").to_pylist()
    lost = []
    for row in messages:
        if row["kind"] == "liquidation":
            reach = _reach(graph, row["node"], censor)
            assert delivered[row["msg_id"]] == reach, row
            if "us-east-0" not in reach:
                lost.append(row["msg_id"])
                assert row["status"] == "lost", row
            else:
                assert row["status"] == "committed", row
        else:
            assert delivered[row["msg_id"]] == nodes, row
            assert row["status"] == "committed", row
    assert lost  # some liquidations came from behind the censor and never reached the sequencer
    # Without the fault the same traffic all commits.
    assert {row["status"] for row in plain.table("messages").to_pylist()} == {"committed"}


def test_with_a_second_path_the_censor_loses_nothing(scenario_from, run_scenario) -> None:
    plain = _run(scenario_from, run_scenario, 6, None)
    graph = _graph(plain)
    censor = "eu-west-1"
    assert len(_reach(graph, "us-east-0", censor)) == len(graph)  # not a cut vertex: a second path
    history = _run(scenario_from, run_scenario, 6, censor)
    messages = history.table("messages").to_pylist()
    delivered = _delivered(history)
    for row in messages:
        if row["kind"] == "liquidation" and row["node"] == censor:
            # Sent by an agent on the censoring node: it withholds its own too.
            assert (row["status"], delivered[row["msg_id"]]) == ("lost", {censor}), row
        else:
            assert (row["status"], delivered[row["msg_id"]]) == ("committed", set(graph)), row
    passing = [row for row in messages if row["kind"] == "liquidation" and row["node"] != censor]
    assert passing  # liquidations went round the censor


@pytest.mark.parametrize(("edit", "message"), [
    ('nodes = ["us-east-1"]', r"faults\[0\]\.nodes\[0\]: unknown node 'mars-0'"),
    ('count = 9', r"faults\[0\]\.count: 9 censoring nodes drawn from 8 nodes"),
])
def test_censoring_nodes_are_refused_with_the_field_named(scenario_from, edit: str, message: str) -> None:
    text = NETWORK.format(peers=2) + CENSOR.format(node="us-east-1")
    bad = text.replace('nodes = ["us-east-1"]', edit.replace("us-east-1", "mars-0"))
    with pytest.raises(ScenarioError, match=message):
        scenario_from(bad)


RESCUERS = """
[[agents]]
name = "rescuers"
role = "liquidator"
count = 8
arrival = { process = "poisson", rate = "5/s" }
"""


def test_censoring_by_agent_withholds_only_that_agents_messages(scenario_from, run_scenario) -> None:
    plain = _run(scenario_from, run_scenario, 2, None)
    graph = _graph(plain)
    censor = _cut_vertex(graph, "us-east-0")
    assert censor is not None
    text = (NETWORK.format(peers=2) + RESCUERS + CENSOR.format(node=censor)
            + 'agents = ["keepers"]\n')
    history = read_history(run_scenario(scenario_from(text)).run_dir)
    nodes = set(graph)
    delivered = _delivered(history)
    messages = history.table("messages").to_pylist()
    lost = []
    for row in messages:
        if row["agent"] == "keepers":
            reach = _reach(graph, row["node"], censor)
            assert delivered[row["msg_id"]] == reach, row
            assert row["status"] == ("committed" if "us-east-0" in reach else "lost"), row
            if "us-east-0" not in reach:
                lost.append(row["msg_id"])
        else:  # the rescuers' liquidations and the traders' orders pass the censor
            assert (row["status"], delivered[row["msg_id"]]) == ("committed", nodes), row
    assert lost
    # The rescuers sent liquidations from behind the censor, and they passed.
    assert any(row["agent"] == "rescuers" and "us-east-0" not in _reach(graph, row["node"], censor)
               for row in messages)


def test_a_censored_agent_must_exist(scenario_from) -> None:
    text = NETWORK.format(peers=2) + CENSOR.format(node="us-east-1") + 'agents = ["keeprs"]\n'
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.agents\[0\]: unknown agent 'keeprs' \(did you mean "
                                            r"'keepers'\?\)"):
        scenario_from(text)



def test_censorship_per_victim_counts_exactly_the_messages_producers_left_out(tmp_path) -> None:
    """A history written by hand: the keepers sent three liquidations while the fault was on
    (one more unsent, one of another agent after its end, traders' orders not censored); a
    censoring producer's blocks left out two of them, one twice: 2 of 3."""
    from test_analysis_history import event, message, write_history

    from msgstorm.analysis.byzantine import censorship_by_victim

    detail = {"fault_id": 0, "kind": "censor_nodes", "kinds": ["liquidation"], "byzantine": ["n0"]}
    events = [event(0, "fault_start", **detail), event(5, "fault_end", **detail),
              event(2, "block_produced", block=1, censored=[1, 2]), event(3, "block_produced", block=2, censored=[2]),
              event(4, "block_produced", block=3)]
    liquidation = {"kind": "liquidation"}
    messages = [message(0, 1, agent="keepers", t_sent=None, **liquidation),
                message(1, 1, agent="keepers", **liquidation), message(2, 1, agent="keepers", **liquidation),
                message(3, 4, agent="keepers", **liquidation), message(4, 1, agent="traders"),
                message(5, 6, agent="others", **liquidation)]
    history = write_history(tmp_path, messages, events)
    assert censorship_by_victim(history) == [
        {"agent": "keepers", "kinds": ["liquidation"], "messages": 3, "censored": 2, "rate": 2 / 3}]


def test_censoring_producers_leave_the_censored_kind_out_and_say_which(scenario_from, run_scenario) -> None:
    """Two of four validators censor orders: no order commits in a block of theirs, each of
    their blocks lists the orders it held and left out (orders only), and the victims' rate is
    the share of orders some such block left out."""
    from sim_runs import four_validators

    from msgstorm.analysis._common import events_of
    from msgstorm.analysis.byzantine import censorship_by_victim
    from msgstorm.history.events import EventKind

    censor = '\n[[faults]]\nkind = "censor_nodes"\nnodes = ["us-east-0", "eu-west-0"]\nkinds = ["order"]\nat = "0s"\n'
    history = read_history(run_scenario(scenario_from(four_validators("censoring", 3) + censor)).run_dir)
    producer = {row["block"]: row["producer"] for row in history.table("blocks").to_pylist()}
    messages = {row["msg_id"]: row for row in history.table("messages").to_pylist()}
    left_out: set[int] = set()
    made = events_of(history, EventKind.BLOCK_PRODUCED)
    for node, detail in zip(made.nodes(), made.details(), strict=True):
        if "censored" in detail:
            assert node in ("us-east-0", "eu-west-0")
            assert {messages[m]["kind"] for m in detail["censored"]} == {"order"}
            left_out.update(detail["censored"])
    orders = [row for row in messages.values() if row["kind"] == "order"]
    assert left_out and all(producer[row["block"]] not in ("us-east-0", "eu-west-0")
                            for row in orders if row["status"] == "committed")
    assert censorship_by_victim(history) == [{"agent": "one", "kinds": ["order"], "messages": len(orders),
                                              "censored": len(left_out), "rate": len(left_out) / len(orders)}]
