"""Twins (sim/twins.py, sim/votes.py): a second instance of a validator's identity, honest on
its own, across a partition from the first. Above the quorum bound the safety checker names
the conflicting blocks the two sides finalised, exactly where the blocks table says; below
it, none."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from sim_runs import four_validators

from msgstorm.analysis._common import events_of
from msgstorm.analysis.safety import conflicts, dishonest_nodes
from msgstorm.analysis.summary import analyse
from msgstorm.history import read_history
from msgstorm.history.events import EventKind
from msgstorm.scenario import ScenarioError

NS = 1_000_000_000

# Two regions of three nodes, 10 ms apart; the first two nodes of each region are the four
# validators (equal stake: a quorum is 3 of 4). The regions are cut apart from 2.5 s on,
# and from then each twinned validator's twin runs at the third node of the other region.
SPLIT = """
[[faults]]
kind = "partition"
groups = [["us-east"], ["eu-west"]]
at = "2.5s"

[[faults]]
kind = "twins"
nodes = {nodes}
hosts = {hosts}
at = "2.5s"
"""
OTHER_SIDE = {"us-east-1": "eu-west-2", "eu-west-1": "us-east-2"}


def _split(seed: int, twinned: list[str]) -> str:
    def quoted(names: list[str]) -> str:
        return "[" + ", ".join(f'"{name}"' for name in names) + "]"
    return four_validators("twins", seed) + SPLIT.format(nodes=quoted(twinned), hosts=quoted([OTHER_SIDE[v] for v in twinned]))


def _made_at(history: Any) -> dict[int, str]:
    """Where each block was made: its producer's node, or the node its twin runs at."""
    made = events_of(history, EventKind.BLOCK_PRODUCED)
    return {detail["block"]: detail.get("twin_at", node)
            for node, detail in zip(made.nodes(), made.details(), strict=True)}


def _checks(result: Any) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in result.summary["checks"]}


def test_two_twins_of_four_and_a_partition_finalise_both_sides_blocks(scenario_from, run_scenario) -> None:
    """Twins of us-east-1 (running in eu-west) and eu-west-1 (in us-east): each side has its
    two validators and the other side's twin, 3 of 4, a quorum; so every height both sides
    made a block at during the cut is finalised twice, each block by its side's honest nodes.
    A twin produces too: in its validator's slot each side makes a block at one height."""
    result: Any = run_scenario(scenario_from(_split(5, ["us-east-1", "eu-west-1"])))
    history = read_history(result.run_dir)
    assert dishonest_nodes(history) == {"us-east-1", "eu-west-1"}
    honest = {"us-east": ["us-east-0", "us-east-2"], "eu-west": ["eu-west-0", "eu-west-2"]}
    made_at = _made_at(history)
    side_blocks: dict[int, dict[int, list[str]]] = defaultdict(dict)
    by_one_identity = 0
    for row in history.table("blocks").to_pylist():
        if 2.5 * NS < row["t_produced"] < 8 * NS:
            side_blocks[row["height"]][row["block"]] = honest[made_at[row["block"]].rsplit("-", 1)[0]]
            by_one_identity += made_at[row["block"]] != row["producer"]
    expected = {height: dict(sorted(blocks.items())) for height, blocks in sorted(side_blocks.items())
                if len(blocks) == 2}
    assert len(expected) >= 2 and by_one_identity >= 1
    assert conflicts(history) == expected
    assert _checks(result)["safety"]["verdict"] == "invalid"
    # Each instance is honest: per height, a twinned validator voted once from each instance
    # (before the cut both for one block), for the two blocks where the sides made two.
    votes = history.table("votes").to_pylist()
    per_height: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row in votes:
        per_height[row["voter"], row["height"]].append(row["block"])
    for height, blocks in expected.items():
        assert sorted(per_height["us-east-1", height]) == sorted(blocks), height
    assert all(len(blocks) <= 2 for blocks in per_height.values())
    assert {len(blocks) for (voter, _), blocks in per_height.items() if voter in ("us-east-0", "eu-west-0")} == {1}
    finality = analyse(history).summary["finality"]
    assert (finality["byzantine_voters"], finality["within_bound"]) == (["eu-west-1", "us-east-1"], False)


def test_one_twin_of_four_keeps_safety(scenario_from, run_scenario) -> None:
    """A twin of us-east-1 in eu-west: that side has 3 of 4 and finalises, us-east has 2 and
    cannot: nothing conflicts, and the twin stays below the bound."""
    result: Any = run_scenario(scenario_from(_split(5, ["us-east-1"])))
    history = read_history(result.run_dir)
    assert conflicts(history) == {}
    # In each of us-east-1's slots after the cut each instance made a block, one a side (on
    # its own side's chain, so not always at one height).
    made_at = _made_at(history)
    by_slot: dict[int, list[str]] = defaultdict(list)
    for row in history.table("blocks").to_pylist():
        if row["producer"] == "us-east-1" and row["t_produced"] > 2.5 * NS:
            by_slot[row["t_produced"]].append(made_at[row["block"]])
    assert by_slot and all(sorted(places) == ["eu-west-2", "us-east-1"] for places in by_slot.values()), by_slot
    assert _checks(result)["safety"]["verdict"] == "valid", _checks(result)["safety"]["detail"]
    final_after_cut = {row["node"] for row in history.table("finalized").to_pylist() if row["t"] > 2.6 * NS}
    assert final_after_cut == {"eu-west-0", "eu-west-1", "eu-west-2"}
    finality = analyse(history).summary["finality"]
    assert (finality["byzantine_voters"], finality["within_bound"]) == (["us-east-1"], True)
    assert analyse(history).summary["byzantine"]["faults"] == [
        {"fault_id": 1, "kind": "twins", "nodes": ["us-east-1"]}]


@pytest.mark.parametrize(("edit", "message"), [
    ('hosts = ["eu-west-2"]', r"\.toml:\d+: faults\[1\]\.twins: give one host per twinned validator \(2 nodes, 1 hosts\)"),
    ('hosts = ["eu-west-9", "us-east-2"]', r"faults\[1\]\.hosts\[0\]: unknown node 'eu-west-9'"),
    ('hosts = ["us-east-1", "us-east-2"]', r"faults\[1\]\.twins: 'us-east-1''s twin runs at 'us-east-1'"),
])
def test_twins_are_refused_with_the_field_named(scenario_from, edit: str, message: str) -> None:
    text = _split(5, ["us-east-1", "eu-west-1"]).replace('hosts = ["eu-west-2", "us-east-2"]', edit)
    with pytest.raises(ScenarioError, match=message):
        scenario_from(text)


def test_a_twin_of_a_node_that_is_not_a_validator_is_refused(scenario_from) -> None:
    text = _split(5, ["us-east-1"]).replace('nodes = ["us-east-1"]', 'nodes = ["us-east-2"]').replace(
        'hosts = ["eu-west-2"]', 'hosts = ["eu-west-0"]')
    with pytest.raises(ScenarioError, match=r"faults\[1\]\.nodes\[0\]: node 'us-east-2' is not a validator"):
        scenario_from(text)


def test_a_twin_in_one_network_makes_a_second_block_at_the_height_and_safety_holds(scenario_from,
                                                                                  run_scenario) -> None:
    """No partition: in each of us-east-1's slots its two instances build on the same tip, so
    they make two blocks at one height (as an equivocating producer would); one byzantine
    identity of four is below the bound, and no two honest nodes finalise both."""
    twin = '\n[[faults]]\nkind = "twins"\nnodes = ["us-east-1"]\nhosts = ["eu-west-2"]\nat = "0s"\n'
    result: Any = run_scenario(scenario_from(four_validators("twins-one-network", 5) + twin))
    history = read_history(result.run_dir)
    made_at = _made_at(history)
    by_slot: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for row in history.table("blocks").to_pylist():
        if row["producer"] == "us-east-1":
            by_slot[row["t_produced"]].append((row["height"], made_at[row["block"]]))
    assert by_slot
    for made in by_slot.values():
        assert sorted(place for _, place in made) == ["eu-west-2", "us-east-1"]
        assert len({height for height, _ in made}) == 1, made
    assert conflicts(history) == {}
    assert _checks(result)["safety"]["verdict"] == "valid"
