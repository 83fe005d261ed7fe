"""An eclipsed node (sim/eclipse.py): while the attacker holds its connections and passes
nothing, nothing reaches it and nothing leaves it; passing everything ``delay`` late, every
item reaches it at least that late; at the end it catches up."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import pytest
from sim_runs import deliveries_by_message, eight_nodes

from msgstorm.analysis.safety import dishonest_nodes
from msgstorm.analysis.summary import analyse
from msgstorm.history import read_history
from msgstorm.report.terminal import security_lines
from msgstorm.scenario import ScenarioError

NETWORK = eight_nodes("eclipse", peers=3, rate="20/s")

ECLIPSE = """
[[faults]]
kind = "eclipse"
node = "eu-west-2"
at = "1s"
duration = "1s"
"""
AT, END = 10**9, 2 * 10**9
TARGET = "eu-west-2"



def _graph(history: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for row in history.table("edges").to_pylist():
        if row["overlay"]:
            out[row["src"]].append(row["dst"])
    return out


def _reach(graph: dict[str, list[str]], origin: str) -> set[str]:
    """The nodes a message from ``origin`` reaches over paths that avoid the target."""
    seen = {origin}
    queue = deque([origin])
    while queue:
        for peer in graph[queue.popleft()]:
            if peer not in seen and peer != TARGET:
                seen.add(peer)
                queue.append(peer)
    return seen


def test_an_eclipsed_node_receives_and_passes_on_nothing_while_it_lasts(scenario_from, run_scenario) -> None:
    history = read_history(run_scenario(scenario_from(NETWORK + ECLIPSE)).run_dir)
    delivered = deliveries_by_message(history)
    graph = _graph(history)
    messages = history.table("messages").to_pylist()
    inside = [row for row in messages if AT + 10_000_000 <= row["t_sent"] < END - 100_000_000]
    assert inside
    for row in inside:
        times = delivered[row["msg_id"]]
        if row["node"] == TARGET:  # its own: never leaves it while eclipsed
            assert times == {TARGET: times[TARGET]}, row
            assert row["status"] == "lost", row
        else:  # the others': they go round the target, to every node a path without it reaches
            reach = _reach(graph, row["node"])
            assert set(times) == reach, row
            assert row["status"] == ("committed" if "us-east-0" in reach else "lost"), row
    assert any(row["node"] == TARGET for row in inside)
    # After the end it takes part again: messages sent later reach it and from it.
    after = [row for row in messages if row["t_sent"] >= END + 10_000_000]
    assert after and all(TARGET in delivered[row["msg_id"]] for row in after)
    # It is honest (not counted out by the safety checker) and named in the summary.
    assert dishonest_nodes(history) == set()
    analysis = analyse(history)
    assert analysis.summary["byzantine"]["eclipsed"] == [TARGET]
    assert dict(security_lines(analysis.result))["eclipsed"] == TARGET


def test_an_eclipse_with_a_delay_makes_every_item_reach_the_target_that_late(scenario_from, run_scenario) -> None:
    delay = 300_000_000
    history = read_history(run_scenario(scenario_from(NETWORK + ECLIPSE + 'delay = "300ms"\n')).run_dir)
    delivered = deliveries_by_message(history)
    messages = history.table("messages").to_pylist()
    # Sent well before the end: the copy to the target leaves while its links are slowed.
    inside = [row for row in messages if AT <= row["t_sent"] < END - 2 * delay and row["node"] != TARGET]
    assert inside
    for row in inside:
        assert delivered[row["msg_id"]][TARGET] >= row["t_sent"] + delay, row
    assert {row["status"] for row in messages} == {"committed"}


def test_an_eclipsed_node_must_exist(scenario_from) -> None:
    with pytest.raises(ScenarioError, match=r"\.toml:\d+: faults\[0\]\.node: unknown node 'eu-west-9'"):
        scenario_from(NETWORK + ECLIPSE.replace(TARGET, "eu-west-9"))
