"""Round-based BFT consensus (sim/tendermint.py) and its proposer rotation (sim/proposer.py),
checked against values worked by hand from the protocol's rules: with no delay one round a
height and an interval of ``timeout_commit`` + execution; a proposal later than
``timeout_propose`` gives exactly the nil rounds the timeout schedule predicts; more than a
third of the voting power silent halts; the proposer order follows voting power exactly."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest
from sim_runs import four_tendermint

from msgstorm.analysis.consensus import consensus_marks
from msgstorm.history import read_history
from msgstorm.scenario import ScenarioError
from msgstorm.scenario.budget import estimate_work
from msgstorm.sim.proposer import ProposerSchedule, increment
from msgstorm.sim.tendermint import block_parts, voting_powers

NS = 1_000_000_000
MS = 1_000_000


def _heights(result: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = read_history(result.run_dir).table("heights").to_pylist()
    return rows


# --- the proposer rotation ---------------------------------------------------------------------

def test_proposer_priorities_step_as_worked_by_hand() -> None:
    """Powers 1, 2, 3, 4 (total 10). Each step adds the powers, the highest proposes (a tie:
    the lower index) and loses 10: (1,2,3,-6) -> 3; (2,4,-4,-2) -> 2; (3,-4,-1,2) -> 1;
    (4,-2,2,-4) -> 3; (5,0,5,0) tie -> 0, (-5,0,5,0); (-4,2,-2,4) -> 2; (-3,4,1,-2) -> 3;
    (-2,-4,4,2) -> 1; (-1,-2,-3,6) -> 2; (0,0,0,10) -> 3, all back to 0."""
    schedule = ProposerSchedule([1, 2, 3, 4])
    assert [schedule.proposer(h, 0) for h in range(1, 11)] == [3, 2, 1, 3, 0, 2, 3, 1, 2, 3]
    priorities = [0, 0, 0, 0]
    assert increment(priorities, [1, 2, 3, 4]) == 3 and priorities == [1, 2, 3, -6]
    # Round 1 of height 1: height 1's set (1,2,3,-6) stepped once more -> (2,4,-4,-2): validator 2.
    assert schedule.proposer(1, 1) == 2
    # Round 2: (3,-4,-1,2) -> validator 1.
    assert schedule.proposer(1, 2) == 1


def test_proposer_order_over_many_heights_matches_voting_power_exactly() -> None:
    """Over any whole number of periods of the total power each validator proposes exactly
    its power's share of the heights (the priorities return to 0 every ``total`` steps)."""
    powers = [5, 1, 7, 2, 9, 3]
    schedule = ProposerSchedule(powers)
    total = sum(powers)
    counts = Counter(schedule.proposer(h, 0) for h in range(1, 40 * total + 1))
    assert [counts[i] for i in range(len(powers))] == [40 * p for p in powers]
    # Within one period too: each validator exactly its power.
    period = Counter(schedule.proposer(h, 0) for h in range(total + 1, 2 * total + 1))
    assert [period[i] for i in range(len(powers))] == powers


def test_priorities_are_rescaled_into_the_window_then_centred() -> None:
    """A spread above 2 × total is divided by ceil(spread / (2 × total)), truncated toward
    zero, then centred (average rounded down): (30, -30, 0) with powers 1, 1, 1 (window 6):
    ratio ceil(60 / 6) = 10 -> (3, -3, 0), average 0; the step adds 1 -> (4, -2, 1), the
    first proposes -> (1, -2, 1)."""
    priorities = [30, -30, 0]
    assert increment(priorities, [1, 1, 1]) == 0
    assert priorities == [1, -2, 1]
    # Truncation toward zero and a floor average: (-7, 0, 0) window 6, spread 7 -> ratio 2:
    # (-3, 0, 0); average floor(-3 / 3) = -1 -> (-2, 1, 1); step -> (-1, 2, 2): index 1 proposes.
    priorities = [-7, 0, 0]
    assert increment(priorities, [1, 1, 1]) == 1
    assert priorities == [-1, -1, 2]


def test_voting_powers_are_the_shares_when_whole_else_millionths() -> None:
    assert voting_powers([1.0, 2.0, 3.0]) == [1, 2, 3]
    assert voting_powers([0.25, 0.75]) == [250_000, 750_000]


# --- the protocol in the shadow network ----------------------------------------------------------

def test_zero_delay_one_round_a_height_and_interval_is_timeout_commit_plus_execution(
        scenario_from, run_scenario) -> None:
    """No delay anywhere: height 1 starts at 0, its proposal is executed 100 ms later, every
    validator prevotes and precommits it at once and commits at 0.1 s; each later height
    starts ``timeout_commit`` (1 s) after and commits 0.1 s into it: at 0.1 + 1.1 (h - 1) s."""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-zero", "5s", 'timeout_commit = "1s"\nexecution = "100ms"',
                                                   shares="[1, 2, 3, 4]")))
    rows = _heights(result)
    by_height: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_height[row["height"]].append(row)
    assert sorted(by_height) == [1, 2, 3, 4, 5]
    proposers = {1: "us-east-3", 2: "us-east-2", 3: "us-east-1", 4: "us-east-3", 5: "us-east-0"}
    for height, commits in by_height.items():
        assert sorted(row["node"] for row in commits) == [f"us-east-{i}" for i in range(4)]
        assert {row["round"] for row in commits} == {0}
        assert {row["t_committed"] for row in commits} == {100 * MS + (height - 1) * 1100 * MS}
        assert {row["interval_ns"] for row in commits} == ({None} if height == 1 else {1100 * MS})
        assert {row["proposer"] for row in commits} == {proposers[height]}
    blocks = read_history(result.run_dir).table("blocks").to_pylist()
    assert [(b["height"], b["canonical"]) for b in blocks] == [(h, True) for h in range(1, 6)]


def test_a_proposal_later_than_timeout_propose_gives_the_predicted_nil_rounds(scenario_from, run_scenario) -> None:
    """The proposer's block takes 3.7 s to build. Round r's propose timeout is 3 + 0.5 r s,
    the precommit timeout 1 + 0.5 r s. Round 0 (0 s): nil at 3 s, next round at 4 s. Round 1:
    nil at 4 + 3.5 = 7.5 s, next round at 7.5 + 1.5 = 9 s. Round 2: its timeout is 4 s,
    the block comes at 9 + 3.7 = 12.7 s: committed in round 2 at 12.7 s. Height 2 starts
    1 s later (13.7 s), the same rounds: committed at 13.7 + 12.7 = 26.4 s. The proposer
    of round 2 at height 1 (equal powers): (-3,1,1,1) -> (-2,-2,2,2) -> validator 2."""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-late", "27s", 'prepare = "3.7s"\ntimeout_commit = "1s"',
                                                   rate="10/s")))
    rows = _heights(result)
    assert {(row["height"], row["round"], row["t_committed"]) for row in rows} == {
        (1, 2, 12_700 * MS), (2, 2, 26_400 * MS)}
    assert len(rows) == 8  # every node, both heights
    assert {row["proposer"] for row in rows if row["height"] == 1} == {"us-east-2"}
    # Every round's proposer built its block, late: three at height 1, only round 2's committed.
    blocks = read_history(result.run_dir).table("blocks").to_pylist()
    at_one = [(b["producer"], b["t_produced"], b["canonical"]) for b in blocks if b["height"] == 1]
    assert at_one == [("us-east-0", 3_700 * MS, False), ("us-east-1", 7_700 * MS, False),
                      ("us-east-2", 12_700 * MS, True)]
    # The failure threshold: nothing is lost, and the first 1 s window with a commit in a round
    # above 0 is the one holding 12.7 s, at the constant 10/s offered.
    assert result.summary["failure_threshold"] == {"rate_per_s": 10.0, "reason": "round", "t_ns": 12 * NS}
    assert result.summary["consensus"]["conditions"] == ["round above 0"]


def test_more_than_a_third_silent_halts(scenario_from, run_scenario) -> None:
    """Two of four equal validators down from the start: 2 of 4 is not more than 2/3, no
    height is ever committed. Round 0's proposer (validator 0) is down: the two live ones
    prevote nil at 3 s, but two nil prevotes are no 2/3 of anything, so no timer moves them
    on and no later round's proposer ever builds: no block at all in 30 s."""
    crash = """
[[faults]]
kind = "crash"
node = "us-east-0"
at = "0s"

[[faults]]
kind = "crash"
node = "us-east-3"
at = "0s"
"""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-halt", "30s", "", rest=crash)))
    assert _heights(result) == []
    assert read_history(result.run_dir).table("blocks").num_rows == 0


def test_one_silent_validator_of_four_costs_a_round_at_its_turns(scenario_from, run_scenario) -> None:
    """One of four equal validators down (1/4 < 1/3): the others commit, but at its turns
    (heights 1 and 5: the order is 0, 1, 2, 3, 0, ...) round 0 times out (nil at 3 s, round
    1 at 4 s) and round 1's proposer commits at once. Height 1 at 4 s; heights 2, 3, 4 one
    timeout_commit apart (5, 6, 7 s); height 5 starts at 8 s, commits at 12 s; height 6
    (validator 1's turn) at 13 s, the run's last instant."""
    crash = """
[[faults]]
kind = "crash"
node = "us-east-0"
at = "0s"
"""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-one", "13s", 'timeout_commit = "1s"', rest=crash)))
    rows = _heights(result)
    assert {row["node"] for row in rows} == {"us-east-1", "us-east-2", "us-east-3"}
    assert sorted({(row["height"], row["round"], row["t_committed"]) for row in rows}) == [
        (1, 1, 4 * NS), (2, 0, 5 * NS), (3, 0, 6 * NS), (4, 0, 7 * NS), (5, 1, 12 * NS), (6, 0, 13 * NS)]
    # The summary's section: rounds taken 2,1,1,1,2,1 (mean 8/6, most 2); commits 1 s apart but 7 -> 12 s;
    # mean 9 s / 5; p99 1 + 0.96 × 4 s; the longest stretch without one: 7 -> 12 s. Proposers: height 1 round 1
    # ((-3,1,1,1) stepped: validator 1), heights 2 and 6 (validator 1), 3 (2), 4 (3), height 5
    # round 1 (validator 1 again): validator 1 proposed 4 committed heights.
    consensus = result.summary["consensus"]
    assert consensus["height"] == 6 and consensus["rounds_max"] == 2 and consensus["heights_above_round_0"] == 2
    assert consensus["rounds_mean"] == round(8 / 6, 3)
    assert consensus["interval_ms"] == {"p50": 1000.0, "p99": pytest.approx(4840.0), "max": 5000.0, "mean": 1800.0}
    assert consensus["longest_without_commit_ms"] == 5000.0
    assert consensus["conditions"] == ["round above 0"]
    assert consensus["conflicting_heights"] == 0 and consensus["lag_max"] == 0
    assert {node: row["proposed"] for node, row in consensus["per_node"].items()} == {
        "us-east-1": 4, "us-east-2": 1, "us-east-3": 1}
    assert {row["above_round_0"] for row in consensus["per_node"].values()} == {2}


def test_orders_commit_in_the_decided_blocks(scenario_from, run_scenario) -> None:
    """With traffic, every message sent well before the end commits in a canonical block,
    at the first commit of that block's height."""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-load", "6s", 'timeout_commit = "1s"', rate="20/s")))
    history = read_history(result.run_dir)
    first_commit = {}
    for row in _heights(result):
        first_commit.setdefault(row["height"], row["t_committed"])
        first_commit[row["height"]] = min(first_commit[row["height"]], row["t_committed"])
    canonical = {b["block"]: b["height"] for b in history.table("blocks").to_pylist() if b["canonical"]}
    committed = [m for m in history.table("messages").to_pylist() if m["status"] == "committed"]
    assert len(committed) >= 80
    for m in committed:
        assert m["block"] in canonical
        assert m["t_committed"] == first_commit[canonical[m["block"]]]


def test_tendermint_settings_are_checked(scenario_from) -> None:
    """Each wrong combination is named with the file, line and field."""
    text = four_tendermint("tm-bad", "1s", "").replace('consensus = "tendermint"', 'consensus = "tendermint"\nrule = "pos"')
    with pytest.raises(ScenarioError, match=r"test\.toml:20: blocks\.producers: .*drop rule = 'pos'"):
        scenario_from(text)
    text = four_tendermint("tm-bad", "1s", "").replace('consensus = "tendermint"', 'rule = "pos"')
    with pytest.raises(ScenarioError, match=r"blocks\.producers: \[blocks\.producers\.tendermint\] needs consensus"):
        scenario_from(text)
    text = four_tendermint("tm-bad", "1s", "").replace('consensus = "tendermint"', "")
    with pytest.raises(ScenarioError, match=r"give a producer rule"):
        scenario_from(text)
    text = four_tendermint("tm-bad", "1s", "").replace('consensus = "tendermint"', 'consensus = "tendermint"\nfinality = "votes"')
    with pytest.raises(ScenarioError, match=r"drop finality"):
        scenario_from(text)


def test_a_validator_back_from_a_crash_catches_up_by_fetching_the_committed_blocks(scenario_from,
                                                                                   run_scenario) -> None:
    """Four equal validators, no delay; validator 3 is down from 0.5 s to 5.5 s. Heights 1,
    2, 3 commit at 0, 1, 2 s (proposers 0, 1, 2); validator 3 committed only height 1 and
    restarts at height 2. Height 4 (its own turn, from 3 s) times out at 6 s: the others'
    nil prevotes of height 4 reach it, it fetches heights 2 and 3 from the sender (a round
    trip of 0) and commits both at 6 s. Round 1 of height 4 (proposer 0) starts at 7 s
    everywhere and commits at once; height 5 (proposer 0) at 8 s."""
    crash = """
[desync]
max_height_gap = 1

[[faults]]
kind = "crash"
node = "us-east-3"
at = "0.5s"
restart_after = "5s"
"""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-catch", "8.5s", 'timeout_commit = "1s"', rest=crash)))
    rows = _heights(result)
    back = [(row["height"], row["round"], row["t_committed"]) for row in rows if row["node"] == "us-east-3"]
    assert back == [(1, 0, 0), (2, 0, 6 * NS), (3, 0, 6 * NS), (4, 1, 7 * NS), (5, 0, 8 * NS)]
    others = {(row["height"], row["round"], row["t_committed"]) for row in rows if row["node"] != "us-east-3"}
    assert others == {(1, 0, 0), (2, 0, NS), (3, 0, 2 * NS), (4, 1, 7 * NS), (5, 0, 8 * NS)}
    # Its lag peaked just before 6 s: heights 1, 2, 3 committed, its own only 1.
    assert result.summary["consensus"]["per_node"]["us-east-3"]["lag_max"] == 2
    # Against the bound of 1 it was behind by more from 2 s (height 3 committed) to 6 s: the
    # 1 s intervals starting at 2, 3, 4 and 5 s (the span [2 s, 6 s): at 6 s it had caught up);
    # the round above 0 in the interval starting at 7 s.
    history = read_history(result.run_dir)
    marks = consensus_marks(history, np.arange(0, 9 * NS, NS, dtype=np.int64), clip_last=True)
    assert marks is not None
    rounds, lagging = marks
    assert np.flatnonzero(rounds).tolist() == [7]
    assert np.flatnonzero(lagging).tolist() == [2, 3, 4, 5]


def test_same_seed_same_consensus_history(scenario_from, run_scenario) -> None:
    """Voting power drawn from a distribution, traffic, a crash: two runs of one seed write
    the same heights, finalized and blocks tables."""
    crash = """
[[faults]]
kind = "crash"
node = "us-east-1"
at = "2s"
restart_after = "3s"
"""
    text = four_tendermint("tm-seed", "8s", 'timeout_commit = "300ms"\nexecution = "7ms"',
                 shares='{ dist = "lognormal", median = 10.0, sigma = 0.5 }', rest=crash, rate="30/s")
    text = text.replace('intra_region_latency = "0ns"', 'intra_region_latency = "12ms"\nlink = { dist = "lognormal", sigma = 0.3 }')
    tables = []
    for _ in range(2):
        result: Any = run_scenario(scenario_from(text))
        history = read_history(result.run_dir)
        tables.append([history.table(name).to_pylist() for name in ("heights", "finalized", "blocks")])
    assert tables[0] == tables[1]
    assert len(tables[0][0]) >= 20


def test_a_proposal_travels_as_64_kb_block_parts(scenario_from, run_scenario) -> None:
    """A 200,000-byte block is four parts (three of 65,536 bytes and 3,392). At 8 Mbit/s (one
    byte a microsecond) no node can hold it before 200 ms (its downlink), and the proposer's
    uplink has sent three copies of every part by 600 ms (its peers forward parts they hold, so
    some come sooner): every other node holds block 1 between 200 and 600 ms, and all commit it."""
    assert block_parts(200_000) == [65_536, 65_536, 65_536, 3_392]
    assert block_parts(65_536) == [65_536] and block_parts(500) == [500] and block_parts(65_537) == [65_536, 1]
    text = (four_tendermint("tm-parts", "1s", 'timeout_commit = "1s"').replace('bandwidth = "unlimited"', 'bandwidth = "8Mbit/s"')
            .replace("[blocks.producers]", "[blocks]\nheader_size = 200_000\n\n[blocks.producers]"))
    result: Any = run_scenario(scenario_from(text))
    history = read_history(result.run_dir)
    arrivals = {row["node"]: row["t"] for row in history.table("block_arrivals").to_pylist() if row["block"] == 1}
    assert arrivals.pop("us-east-0") == 0  # the proposer
    assert sorted(arrivals) == ["us-east-1", "us-east-2", "us-east-3"]
    assert all(200 * MS <= t <= 600 * MS for t in arrivals.values()), arrivals
    commits = {row["node"]: row["t_committed"] for row in _heights(result) if row["height"] == 1}
    assert sorted(commits) == [f"us-east-{i}" for i in range(4)]
    # A commit needs 3 of 4 prevotes for it: the proposer's and two others', each cast once its
    # node holds the block: no commit before the second of the other nodes holds it.
    assert min(commits.values()) >= sorted(arrivals.values())[1]


def test_the_wall_estimate_counts_every_vote_at_every_node(scenario_from) -> None:
    """13 s of run, heights of 1 s commit + 0 execution + 0.3 s: 10 heights; 4 validators cast
    2 votes each a height, received at 4 nodes: 320 receipts at 6.4 us, 2.048 ms beyond the
    same run with proof-of-stake producers."""
    tendermint = scenario_from(four_tendermint("tm-budget", "13s", 'timeout_commit = "1s"'))
    pos = scenario_from(four_tendermint("tm-budget", "13s", "").replace('consensus = "tendermint"', 'rule = "pos"')
                        .replace("[blocks.producers.tendermint]", ""))
    assert estimate_work(tendermint).wall_s - estimate_work(pos).wall_s == pytest.approx(0.002048)


def test_a_full_mempool_turns_arrivals_away_until_a_commit_makes_room(scenario_from, run_scenario) -> None:
    """Mempools of 5, 10 orders a second (every 100 ms from t0), no delay, blocks 3.7 s late
    (height 1 commits in round 2 at 12.7 s, as worked above). Every node takes the first five
    orders and turns the sixth away at t0 + 0.5 s: a mempool_full event at each node, height
    1. Every proposal of height 1 holds those five; the commit at 12.7 s makes room, the
    next five orders (t0 + 12.7 .. 13.1 s) go in, and the one at t0 + 13.2 s is turned away:
    events at height 2. The orders turned away everywhere were never in a block: lost."""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-mempool", "14s",
                                                   'prepare = "3.7s"\ntimeout_commit = "1s"\nmempool_size = 5',
                                                   rate="10/s")))
    history = read_history(result.run_dir)
    messages = sorted(history.table("messages").to_pylist(), key=lambda m: m["t_intended"])
    t0 = messages[0]["t_intended"]
    assert [m["t_intended"] - t0 for m in messages[:3]] == [0, 100 * MS, 200 * MS]
    full = sorted((e["t"] - t0, e["height"], e["node"]) for e in history.table("events").to_pylist()
                  if e["kind"] == "mempool_full")
    assert full == sorted([(500 * MS, 1, f"us-east-{i}") for i in range(4)]
                          + [(13_200 * MS, 2, f"us-east-{i}") for i in range(4)])
    assert all(e["value"] == 5.0 for e in history.table("events").to_pylist() if e["kind"] == "mempool_full")
    [committed_block] = [b["block"] for b in history.table("blocks").to_pylist() if b["canonical"]]
    assert [(m["status"], m["block"]) for m in messages[:5]] == [("committed", committed_block)] * 5
    assert {m["status"] for m in messages[5:127]} == {"lost"}  # t0 + 0.5 s .. 12.6 s
    assert [m["status"] for m in messages[127:132]] == ["pending"] * 5  # in the mempools at the end
    consensus = result.summary["consensus"]
    assert consensus["mempool_full"] == 8 and consensus["conditions"] == ["round above 0", "mempool full"]


def test_a_block_interval_slo_reads_the_consensus_section(scenario_from, run_scenario) -> None:
    """The one-silent-validator run's longest interval is 5 s (7 -> 12 s, above): "< 5s"
    fails, "<= 5s" passes, and the most rounds a height took, 2, passes "<= 2"."""
    rest = """
[[faults]]
kind = "crash"
node = "us-east-0"
at = "0s"

[slo]
"block_interval.max" = "< 5s"
"block_interval.p50" = "<= 1s"
"consensus.rounds_max" = "<= 2"
"""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-slo", "13s", 'timeout_commit = "1s"', rest=rest)))
    verdicts = {slo["name"]: (slo["verdict"], slo["value"]) for slo in result.summary["slo"]}
    assert verdicts == {"block_interval.max": ("fail", 5000.0), "block_interval.p50": ("pass", 1000.0),
                        "consensus.rounds_max": ("pass", 2)}


def test_votes_counted_in_the_kernel_give_the_history_of_each_vote_handed_back(scenario_from, run_scenario,
                                                                               monkeypatch) -> None:
    """The gossip kernel counts a node's votes of its height and round and hands one back only
    when a count passes two thirds (kernel._count_vote); the reference hands every vote back to
    Python to count. Twelve nodes over a degree-3 mesh, jittered 12 ms links, 50 µs of
    processing, seven validators of drawn power, traffic, and two validators down for 4 s
    (their turns time out: rounds above 0, nil prevotes, a catch-up after): both ways write the
    same heights, finalized and blocks tables. The reference hands back each of the 14 votes
    of a round to every node; the kernel at most the two that pass two thirds of a kind
    (its block's count, any block's: often one vote), the votes of a later round or height, and
    none at their sender: under a third of the reference's here."""
    from msgstorm.sim.tendermint import TendermintBook

    faults = "".join(f"""
[[faults]]
kind = "crash"
node = "us-east-{node}"
at = "2s"
restart_after = "4s"
""" for node in (1, 2))
    text = four_tendermint("tm-kernel", "12s", 'timeout_commit = "300ms"\ntimeout_propose = "600ms"\nexecution = "2ms"',
                 shares='{ dist = "lognormal", median = 10.0, sigma = 0.5 }', rest=faults, rate="40/s")
    text = (text.replace("nodes_per_region = 4", "nodes_per_region = 12")
            .replace('intra_region_latency = "0ns"', 'intra_region_latency = "12ms"\nlink = { dist = "lognormal", sigma = 0.3 }')
            .replace('processing = "0ns"', 'processing = "50us"')
            .replace('mode = "flood"', 'mode = "mesh"')
            .replace("[blocks.producers]\n", "[blocks.producers]\ncount = 7\n"))
    handed: list[int] = []
    received = TendermintBook.received

    def counting(self: TendermintBook, t: int, node: int, item: int, sender: int) -> None:
        if self.m_kind[item - self.item_base] != 0:  # a vote, not a proposal
            handed.append(item)
        received(self, t, node, item, sender)

    monkeypatch.setattr(TendermintBook, "received", counting)
    tables, counts = [], []
    for in_kernel in (True, False):
        monkeypatch.setattr(TendermintBook, "count_in_kernel", in_kernel)
        handed.clear()
        result: Any = run_scenario(scenario_from(text))
        history = read_history(result.run_dir)
        tables.append([history.table(name).to_pylist() for name in ("heights", "finalized", "blocks")])
        counts.append(len(handed))
    assert tables[0] == tables[1]
    heights = tables[0][0]
    assert len(heights) >= 12 * 10 and any(row["round"] > 0 for row in heights)
    assert 0 < 3 * counts[0] < counts[1]


def _commit_times_and_txs(result: Any) -> tuple[dict[int, int], dict[int, int]]:
    """Each height's commit time (the same at every node, no delay) and its block's transactions."""
    history = read_history(result.run_dir)
    commits = {row["height"]: row["t_committed"] for row in history.table("heights").to_pylist()}
    blocks = {row["height"]: row["messages"] for row in history.table("blocks").to_pylist() if row["canonical"]}
    return commits, blocks


def test_the_apply_after_a_commit_delays_the_next_height_only_past_timeout_commit(scenario_from,
                                                                                   run_scenario) -> None:
    """No delay, ``execution`` 10 ms, ``timeout_commit`` 100 ms, ``finalize_per_tx`` 40 ms,
    30 transactions a second: height h + 1 commits 10 ms + max(100 ms, 40 ms × the
    transactions of block h) after height h (CometBFT's ``StartTime = CommitTime +
    timeout_commit`` with the block applied in between)."""
    tendermint = 'timeout_commit = "100ms"\nexecution = "10ms"\nfinalize_per_tx = "40ms"'
    result: Any = run_scenario(scenario_from(four_tendermint("tm-apply", "4s", tendermint, rate="30/s")))
    commits, txs = _commit_times_and_txs(result)
    gaps = {h: commits[h + 1] - commits[h] for h in sorted(commits)[:-1]}
    assert any(txs[h] * 40 * MS > 100 * MS for h in gaps) and any(txs[h] * 40 * MS < 100 * MS for h in gaps)
    for h, gap in gaps.items():
        assert gap == 10 * MS + max(100 * MS, 40 * MS * txs[h]), (h, gap, txs[h])


def test_the_recheck_counts_what_the_mempool_still_holds(scenario_from, run_scenario) -> None:
    """Blocks of at most 2 transactions at 30 a second leave a growing mempool; each left
    transaction rechecked costs 20 ms: height h + 1 commits 10 ms + max(100 ms, 20 ms × the
    transactions received by h's commit and not in blocks 1..h) after height h."""
    tendermint = 'timeout_commit = "100ms"\nexecution = "10ms"\nrecheck_per_tx = "20ms"'
    text = four_tendermint("tm-recheck", "3s", tendermint, rate="30/s").replace(
        "[blocks.producers]", "[blocks]\nmax_messages = 2\n\n[blocks.producers]")
    result: Any = run_scenario(scenario_from(text))
    commits, txs = _commit_times_and_txs(result)
    received = sorted(row["t_received"] for row in read_history(result.run_dir).table("messages").to_pylist()
                      if row["t_received"] is not None)
    seen_longer = False
    for h in sorted(commits)[:-1]:
        left = sum(1 for t in received if t <= commits[h]) - sum(txs[i] for i in range(1, h + 1))
        gap = commits[h + 1] - commits[h]
        assert gap == 10 * MS + max(100 * MS, 20 * MS * left), (h, gap, left)
        seen_longer |= 20 * MS * left > 100 * MS
    assert seen_longer
