"""Finality by votes (sim/votes.py) and byzantine voters (sim/equivocation.py): below the
quorum bound safety holds in every seed; above it equivocating voters and a partition
finalise conflicting blocks exactly where the blocks say; a quorum out of reach stalls."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from sim_runs import four_validators

from msgstorm.analysis.safety import conflicts, dishonest_nodes, finality_stall
from msgstorm.history import read_history
from msgstorm.scenario import ScenarioError
from msgstorm.sim.votes import is_quorum

NS = 1_000_000_000

# Two regions of three nodes, 10 ms apart; the first two nodes of each region are the four
# validators (equal stake: a quorum is 3 of 4), taking turns in 1 s proof-of-stake slots.
# The regions are cut apart from 2.5 s to the end of the run.
SPLIT = """
[[faults]]
kind = "partition"
groups = [["us-east"], ["eu-west"]]
at = "2.5s"

[[faults]]
kind = "equivocate_votes"
nodes = {byzantine}
at = "0s"
"""

# Seven validators on 14 nodes in two regions with an equivocating producer; the regions
# are cut apart for 10 s. f byzantine voters drawn with the seed.
SEVEN = """
[run]
name = "seven"
seed = {seed}
duration = "30s"
drain = "2s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 7
processing = "50us"
bandwidth = "unlimited"

[gossip]
mode = "mesh"
degree = 4
peers = 8

[blocks]
interval = "1s"

[blocks.producers]
rule = "pos"
count = 7
finality = "votes"

[[agents]]
name = "one"
arrival = {{ process = "poisson", rate = "20/s" }}

[[faults]]
kind = "partition"
groups = [["us-east"], ["eu-west"]]
at = "5s"
duration = "10s"

[[faults]]
kind = "equivocate_votes"
count = {count}
at = "0s"
"""


def _checks(result: Any) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in result.summary["checks"]}


def _split(seed: int, byzantine: list[str]) -> str:
    return four_validators("split", seed) + SPLIT.format(byzantine=repr(byzantine).replace("'", '"'))


def test_the_quorum_is_more_than_two_thirds_of_the_stake() -> None:
    assert is_quorum(3, 4) and not is_quorum(2, 4)
    assert not is_quorum(2, 3) and is_quorum(3, 3)  # exactly 2/3 is not more than 2/3
    assert is_quorum(5, 7) and not is_quorum(4.666, 7)


def test_two_equivocating_voters_of_four_and_a_partition_finalise_both_sides_exactly(
        scenario_from, run_scenario) -> None:
    """f = 2 of 4 (above n/3): each side's honest validator and the two byzantine voters are
    a quorum of 3, so every height both sides made a block at during the cut is finalised
    twice: each side's block by that side's honest nodes."""
    result: Any = run_scenario(scenario_from(_split(5, ["us-east-1", "eu-west-1"])))
    history = read_history(result.run_dir)
    assert dishonest_nodes(history) == {"us-east-1", "eu-west-1"}
    honest = {"us-east": ["us-east-0", "us-east-2"], "eu-west": ["eu-west-0", "eu-west-2"]}
    # From the blocks table: the heights at which both sides made a block after the cut
    # (the one made at the run's last instant has no time left for votes).
    side_blocks: dict[int, dict[int, list[str]]] = defaultdict(dict)
    for row in history.table("blocks").to_pylist():
        if 2.5 * NS < row["t_produced"] < 8 * NS:
            side_blocks[row["height"]][row["block"]] = honest[row["producer"].rsplit("-", 1)[0]]
    expected = {height: dict(sorted(blocks.items())) for height, blocks in sorted(side_blocks.items())
                if len(blocks) == 2}
    assert len(expected) >= 2  # both sides keep making blocks: the test has something to find
    assert conflicts(history) == expected
    safety = _checks(result)["safety"]
    assert safety["verdict"] == "invalid"
    first_height, first_blocks = next(iter(expected.items()))
    shown = ", ".join(f"block {block} by {' '.join(nodes)}" for block, nodes in first_blocks.items())
    assert safety["detail"].startswith(
        f"conflicting blocks finalised at {len(expected)} heights (byzantine: eu-west-1, us-east-1): "
        f"height {first_height}: {shown}")
    # Each honest validator voted once per height, each byzantine one for both blocks.
    votes = history.table("votes").to_pylist()
    per_height: dict[tuple[str, int], int] = defaultdict(int)
    for row in votes:
        per_height[row["voter"], row["height"]] += 1
    assert {count for (voter, height), count in per_height.items() if voter in ("us-east-0", "eu-west-0")} == {1}
    assert all(per_height["us-east-1", height] == 2 for height in expected)


def test_one_equivocating_voter_of_four_keeps_safety_and_stalls_the_short_side(scenario_from, run_scenario) -> None:
    """f = 1 of 4 (below n/3): the side with two honest validators and the byzantine one
    finalises; the other (one honest validator, 2 of 4 with the byzantine vote) cannot, and
    liveness says which node stalled."""
    result: Any = run_scenario(scenario_from(_split(5, ["us-east-1"])))
    history = read_history(result.run_dir)
    checks = _checks(result)
    assert conflicts(history) == {}
    assert checks["safety"]["verdict"] == "valid", checks["safety"]["detail"]
    final_after_cut = {row["node"] for row in history.table("finalized").to_pylist() if row["t"] > 2.6 * NS}
    assert final_after_cut == {"eu-west-0", "eu-west-1", "eu-west-2"}
    stall = finality_stall(history)
    assert stall is not None and stall.node.startswith("us-east") and stall.ns > stall.bound_ns
    assert checks["liveness"]["verdict"] == "invalid"
    assert f"({stall.node}, from" in checks["liveness"]["detail"]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_below_the_bound_safety_holds_in_every_seed(scenario_from, run_scenario, seed: int) -> None:
    """f = 2 of 7 (< n/3): two quorums of 5 share 3 validators, at least one honest."""
    result: Any = run_scenario(scenario_from(SEVEN.format(seed=seed, count=2)))
    history = read_history(result.run_dir)
    assert len(dishonest_nodes(history)) == 2
    assert history.table("finalized").num_rows > 0
    assert _checks(result)["safety"]["verdict"] == "valid", _checks(result)["safety"]["detail"]


def test_above_the_bound_the_same_network_breaks_safety_in_some_seed(scenario_from, run_scenario) -> None:
    """The check above can fail: f = 4 of 7 (> n/3) with the same partition finalises
    conflicting blocks."""
    broken = [_checks(run_scenario(scenario_from(SEVEN.format(seed=seed, count=4))))["safety"]["verdict"]
              for seed in (1, 2)]
    assert "invalid" in broken


def test_a_drawn_count_grows_by_adding_voters(scenario_from, run_scenario) -> None:
    drawn = [dishonest_nodes(read_history(run_scenario(scenario_from(SEVEN.format(seed=3, count=count))).run_dir))
             for count in (1, 3)]
    assert len(drawn[0]) == 1 and len(drawn[1]) == 3 and drawn[0] < drawn[1]


def test_finality_by_votes_is_deterministic(scenario_from, run_scenario) -> None:
    text = _split(5, ["us-east-1", "eu-west-1"])
    runs = [read_history(run_scenario(scenario_from(text)).run_dir) for _ in range(2)]
    for table in ("blocks", "votes", "finalized", "events", "messages"):
        assert runs[0].table(table).equals(runs[1].table(table)), table


@pytest.mark.parametrize(("edit", "message"), [
    (("finality = \"votes\"", "finality = \"depth\""), r'faults\[1\]\.kind: byzantine voters need \[blocks\.producers\] with finality = "votes"'),
    (('nodes = ["us-east-1", "eu-west-1"]', 'nodes = ["us-east-2"]'), r"faults\[1\]\.nodes\[0\]: node 'us-east-2' is not a validator"),
    (('nodes = ["us-east-1", "eu-west-1"]', "count = 5"), r"faults\[1\]\.count: 5 byzantine voters drawn from 4 validators"),
    (('nodes = ["us-east-1", "eu-west-1"]', 'nodes = ["us-east-1"]\ncount = 1'), r"test\.toml:\d+: faults\[1\].*one of the two"),
])
def test_byzantine_voters_are_refused_with_the_field_named(scenario_from, edit: tuple[str, str],
                                                           message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from(_split(5, ["us-east-1", "eu-west-1"]).replace(*edit))


def test_the_report_shows_the_verdicts_the_bound_and_each_node_s_blocks_where_they_diverge(
        scenario_from, run_scenario) -> None:
    import re

    result: Any = run_scenario(scenario_from(_split(5, ["us-east-1", "eu-west-1"])))
    history = read_history(result.run_dir)
    page = (result.run_dir / "report.html").read_text()
    section = re.search(r'<section id="safety">.*?</section>', page, re.S)
    assert section is not None
    verdicts = dict(re.findall(r'<tr><td>(\w+)</td><td data-verdict="(\w+)">', section.group(0)))
    assert verdicts == {"safety": "invalid", "liveness": _checks(result)["liveness"]["verdict"]}
    assert "2 byzantine voter(s) of 4 validators hold 0.500 of the stake, not below" in section.group(0)
    cells = {(node, int(height)): text for node, height, text in
             re.findall(r'data-node="([^"]+)" data-height="(\d+)">([^<]*)</td>', section.group(0))}
    found = conflicts(history)
    assert sorted({height for _, height in cells}) == sorted(found)  # the heights where they diverge
    finalized: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row in history.table("finalized").to_pylist():
        finalized[row["node"], row["height"]].append(row["block"])
    for (node, height), text in cells.items():
        assert text == (" ".join(map(str, sorted(finalized[node, height]))) or "—"), (node, height)
    for height, blocks in found.items():  # each honest node's cell holds the block the checker names
        for block, nodes in blocks.items():
            assert all(str(block) in cells[node, height].split() for node in nodes)
    assert "us-east-1 (byzantine)" in section.group(0) and "us-east-0 (byzantine)" not in section.group(0)


_PARTITION = """[[faults]]
kind = "partition"
groups = [["us-east"], ["eu-west"]]
at = "2.5s"
"""


@pytest.mark.parametrize(("withheld", "live"), [(["us-east-1"], True), (["us-east-1", "eu-west-1"], False)])
def test_withholding_voters_stall_finality_at_the_bound(scenario_from, run_scenario, withheld: list[str],
                                                        live: bool) -> None:
    """No partition: one silent voter of four leaves 3 of 4, a quorum; two leave 2 of 4 and
    nothing is final again (liveness breaks at f >= n/3), while safety holds."""
    text = _split(5, withheld).replace(_PARTITION, "").replace('kind = "equivocate_votes"', 'kind = "withhold_votes"')
    result: Any = run_scenario(scenario_from(text))
    history = read_history(result.run_dir)
    checks = _checks(result)
    assert {row["voter"] for row in history.table("votes").to_pylist()}.isdisjoint(withheld)
    assert result.summary["finality"]["byzantine_voters"] == sorted(withheld)
    assert checks["safety"]["verdict"] == "valid"
    assert checks["liveness"]["verdict"] == ("valid" if live else "invalid"), checks["liveness"]["detail"]
    assert result.summary["finality"]["live"] is live
    if not live:
        assert history.table("finalized").num_rows == 0
