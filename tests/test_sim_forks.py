"""Producers across the nodes (sim/forks.py, sim/producers.py): forks against the Poisson
race, a fork, a reorg and its commits worked by hand, proof-of-stake slots, determinism."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from scipy.stats import binomtest

from msgstorm.analysis.forks import forks_summary, reach_times_ns, wilson_interval
from msgstorm.analysis.summary_model import Summary
from msgstorm.history import HistoryWriter, read_history
from msgstorm.history.reader import read_table
from msgstorm.report.terminal import print_summary
from msgstorm.runner import write_run_row
from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.scenario.schema import MESSAGE_KINDS, ProducersSpec
from msgstorm.sim.context import Cluster, EventQueue, SimContext, Tally
from msgstorm.sim.fork_tree import producer_shares
from msgstorm.sim.forks import ForkChain
from msgstorm.sim.producers import ProofOfStake, ProofOfWork
from msgstorm.sim.recorder import Recorder
from msgstorm.sim.state import IN_FLIGHT, NULL, MessageState

NS = 1_000_000_000

# Two nodes, one link of a fixed delay, no processing: a block reaches the other producer
# exactly ``delay`` after it is made.
RACE = """
[run]
name = "race"
seed = {seed}
duration = "{duration_s}s"
drain = "0s"

[network]
regions = ["us-east"]
nodes_per_region = 2
intra_region_latency = "{delay_ms}ms"
processing = "0ns"
bandwidth = "unlimited"

[gossip]
mode = "flood"
degree = 1
peers = 1

[blocks]
interval = "{interval_ms}ms"

[blocks.producers]
rule = "pow"
nodes = ["us-east-0", "us-east-1"]
shares = [{share_a}, {share_b}]
confirmations = 2

[[agents]]
name = "one"
arrival = {{ process = "constant", rate = "1/s" }}
"""


def _race_share(run_dir: Path) -> tuple[int, int]:
    """(A's blocks, those met by a block of B's made before A's reached B), from the history."""
    blocks = read_table(run_dir / "history", "blocks").to_pylist()
    arrivals = read_table(run_dir / "history", "block_arrivals").to_pylist()
    at_b = {row["block"]: row["t"] for row in arrivals if row["node"] == "us-east-1"}
    made_b = np.array(sorted(row["t_produced"] for row in blocks if row["producer"] == "us-east-1"))
    a_blocks = [row for row in blocks if row["producer"] == "us-east-0" and row["block"] in at_b]
    met = 0
    for row in a_blocks:
        first = np.searchsorted(made_b, row["t_produced"], side="right")
        met += bool(first < made_b.size and made_b[first] < at_b[row["block"]])
    return len(a_blocks), met


@pytest.mark.slow
@pytest.mark.parametrize("delay_ms", [150, 600])
def test_a_competing_block_meets_a_share_one_minus_exp_of_minus_rate_times_delay(scenario_from, run_scenario,
                                                                                   delay_ms) -> None:
    """λ_A = 1/s, λ_B = 0.5/s: B meets A's block when it mines within ``d`` of it, which a
    Poisson process does with probability 1 − exp(−λ_B·d) (0.072 at 150 ms, 0.259 at 600 ms)."""
    rate_a, rate_b = 1.0, 0.5
    scenario = scenario_from(RACE.format(seed=5, duration_s=2500, delay_ms=delay_ms,
                                         interval_ms=round(1000 / (rate_a + rate_b), 6),
                                         share_a=rate_a, share_b=rate_b))
    result: Any = run_scenario(scenario)
    n, met = _race_share(result.run_dir)
    expected = 1 - math.exp(-rate_b * delay_ms / 1000)
    assert n > 2000, "too few of A's blocks for the interval below"
    stderr = math.sqrt(expected * (1 - expected) / n)
    assert abs(met / n - expected) < 3.5 * stderr, (met / n, expected, stderr)
    # The summary counts the same races as forks: a height with both producers' blocks.
    forks = result.summary["forks"]
    assert forks["blocks"]["fork_heights"] > 0.5 * met
    assert forks["blocks"]["stale"] == forks["blocks"]["made"] - forks["blocks"]["canonical"]
    # The fork probability the arrivals imply: every block reaches the other producer d
    # after its making, so A's blocks fork with 1 - exp(-λ_B d) and B's with 1 - exp(-λ_A d).
    producers = [row["producer"] for row in read_table(result.run_dir / "history", "blocks").to_pylist()]
    n_a, n_b = producers.count("us-east-0"), producers.count("us-east-1")
    d = delay_ms / 1000
    implied = (n_a * (1 - math.exp(-rate_b * d)) + n_b * (1 - math.exp(-rate_a * d))) / (n_a + n_b)
    expected_forks = forks["expected"]
    assert expected_forks["blocks"] == n_a + n_b
    assert expected_forks["fork_probability"] == pytest.approx(implied, abs=2e-6)
    # Races that overlap (a block met, and the block that met it met in turn) are one stale
    # block but two blocks met: the stale rate is below the probability, the more so the
    # more often blocks meet (0.077 against 0.094 at 150 ms here; 0.198 against 0.321 at 600 ms).
    low, high = expected_forks["stale_rate_interval"]
    assert low < forks["blocks"]["stale_rate"] < high < expected_forks["fork_probability"]


def test_a_race_without_delay_never_forks(scenario_from, run_scenario) -> None:
    scenario = scenario_from(RACE.format(seed=5, duration_s=300, delay_ms=0, interval_ms=500,
                                         share_a=1, share_b=1))
    forks = run_scenario(scenario).summary["forks"]  # type: ignore[attr-defined]
    assert forks["blocks"]["made"] > 400
    assert forks["blocks"]["stale"] == 0 and forks["reorgs"]["count"] == 0


# --- a fork, a reorg and its commits, by hand ---------------------------------------------------

HAND = """
[run]
name = "hand"
duration = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 3

[blocks.producers]
rule = "pos"
nodes = ["us-east-0", "us-east-1"]
confirmations = 2

[[agents]]
name = "one"
arrival = { process = "constant", rate = "1/s" }
"""


class _Gossip:
    """Records the blocks handed to gossip; the test delivers them by hand."""

    wants_contents = False  # blocks relayed whole (no compact relay)

    def __init__(self) -> None:
        self.injected: list[tuple[int, int, int]] = []

    def inject(self, t: int, node: int, item: int, kind: int, size: int, contents: object = None) -> None:
        self.injected.append((t, node, item))

    def drain_mempool_log(self) -> np.ndarray:
        return np.zeros((4, 0), dtype=np.int64)  # the test hands every validation to ``saw`` itself

    def view_blocks(self, parent: object, holds: object) -> None:
        """The test hands every block to ``validated_block`` itself."""


def _hand_chain(scenario_from, tmp_path: Path) -> tuple[ForkChain, HistoryWriter, list[list[Any]]]:
    scenario = scenario_from(HAND)
    names = ["us-east-0", "us-east-1", "us-east-2"]
    writer = HistoryWriter(tmp_path / "history")
    msgs = MessageState(["one"], names)
    for m in range(3):  # messages m0, m1, m2 of 100 bytes, sent at 0 from node 2
        msgs.live[m] = [m, 0, 0, 2, m, 100, 1.0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, IN_FLIGHT]
    msgs.count = 3
    ctx = SimContext(scenario, EventQueue(), Cluster(names=names, up=[True] * 3, leader=0, standby=[],
                                                    isolated=[False] * 3),
                     msgs, Recorder(writer, msgs, names), Tally(), hard_stop=100 * NS)
    commits: list[list[Any]] = []
    chain = ForkChain(ctx, _Gossip(), None, writer, [21_000] * len(MESSAGE_KINDS),  # type: ignore[arg-type]
                      lambda t, records: commits.append([t, *(r[0] for r in records)]), np.random.default_rng(1))
    return chain, writer, commits


def test_a_fork_a_reorg_and_the_commits_that_follow_the_canonical_chain(scenario_from, tmp_path) -> None:
    """a = node 0, b = node 1 (producers), c = node 2. m0 reaches a and b, m2 only a.

    t=1  a makes block 1 on genesis [m0, m2]; b makes block 2 on genesis [m0]: a fork at height 1;
         the canonical chain keeps block 1 (made first).
    t=2,3  c gets block 2, then block 1: it keeps block 2 (first seen).
    t=4  b (which saw m1 at 3) makes block 3 on block 2 [m1]: the canonical chain moves to
         0-2-3, dropping block 1 (a canonical reorg of 1); block 2 is two deep: m0 commits in it.
    t=5  a gets blocks 2 and 3: its view moves from block 1 to block 3 (a reorg of depth 1).
    t=6  a makes block 4 on block 3 [m2]: m2, orphaned with block 1, is included again; block 3
         commits m1.
    t=7  b makes block 5 on block 3 (it has not seen block 4): a second fork, at height 3.
    t=8  a makes block 6 on block 4: block 4 is two deep, m2 commits in it.
    """
    chain, writer, commits = _hand_chain(scenario_from, tmp_path)
    a, b, c = 0, 1, 2
    chain.saw(0, a, 0)
    chain.saw(0, b, 0)
    chain.saw(0, a, 2)
    chain._produce(1 * NS, a, 0, 0, 0)
    chain._produce(1 * NS, b, 0, 0, 0)
    assert chain.contents[1:] == [[0, 2], [0]]
    assert chain.canonical == [0, 1]
    chain.validated_block(2 * NS, c, 2, b)
    chain.validated_block(3 * NS, c, 1, a)
    assert chain.tip[c] == 2
    chain.saw(3 * NS, b, 1)
    chain._produce(4 * NS, b, 0, 0, 0)
    assert chain.contents[3] == [1]
    assert chain.canonical == [0, 2, 3]
    assert commits == [[4 * NS, 0]]
    chain.validated_block(5 * NS, a, 2, b)
    assert chain.tip[a] == 1  # a tie: a keeps its own
    chain.validated_block(5 * NS, a, 3, b)
    assert chain.tip[a] == 3
    chain._produce(6 * NS, a, 0, 0, 0)
    assert chain.contents[4] == [2]  # m2 again: it was on block 1 only
    assert commits[-1] == [6 * NS, 1]
    chain._produce(7 * NS, b, 0, 0, 0)
    assert chain.parent[5] == 3 and chain.contents[5] == []
    chain._produce(8 * NS, a, 0, 0, 0)
    assert commits[-1] == [8 * NS, 2]
    chain.close(9 * NS)
    chain.ctx.record.flush()
    write_run_row(writer, chain.ctx.scenario, SimpleNamespace(  # type: ignore[arg-type]
        nodes=[{"name": f"us-east-{i}", "region": "us-east"} for i in range(3)], interrupted=False), 9 * NS)
    writer.close()

    history = read_history(tmp_path)
    blocks = {row["block"]: row for row in history.table("blocks").to_pylist()}
    assert {k: (v["parent"], v["height"], v["canonical"]) for k, v in blocks.items()} == {
        1: (0, 1, False), 2: (0, 1, True), 3: (2, 2, True), 4: (3, 3, True), 5: (3, 3, False), 6: (4, 4, True)}
    messages = {row["msg_id"]: row for row in history.messages.to_pylist()}
    assert {m: (row["status"], row["block"], row["t_committed"]) for m, row in messages.items()} == {
        0: ("committed", 2, 4 * NS), 1: ("committed", 3, 6 * NS), 2: ("committed", 4, 8 * NS)}
    assert [(r["t"], r["node"], r["depth"], r["old_tip"], r["new_tip"]) for r in history.table("reorgs").to_pylist()] \
        == [(5 * NS, "us-east-0", 1, 1, 3)]
    # Recomputed by hand from the rows above: 6 blocks, 2 stale (1 and 5), forks at heights 1
    # and 3 of a canonical chain 4 high; one canonical reorg (block 1 dropped at t=4), not final.
    forks = forks_summary(history)
    assert forks is not None
    assert forks["blocks"] == {"made": 6, "canonical": 4, "stale": 2, "stale_rate": round(2 / 6, 6),
                               "fork_heights": 2, "fork_rate": 0.5, "height": 4}
    assert forks["reorgs"] == {"count": 1, "max_depth": 1, "mean_depth": 1.0, "canonical": 1, "final": 0}
    # Arrivals after the making (producers' own at 0 left out): c got block 2 1 s and block 1
    # 2 s after, a got block 2 4 s and block 3 1 s after: 1, 1, 2, 4 s (nearest rank).
    assert forks["arrival_ms"] == {"p50": 1000.0, "p90": 4000.0, "p99": 4000.0}
    assert forks["arrival_by_region_ms"] == {"us-east": {"p50": 1000.0, "p90": 4000.0, "p99": 4000.0, "count": 4}}


def test_a_message_only_in_an_orphaned_block_stays_uncommitted(scenario_from, tmp_path) -> None:
    """m2 is only in block 1, which the canonical chain leaves, and no producer that saw it
    makes another block: it is never committed."""
    chain, writer, commits = _hand_chain(scenario_from, tmp_path)
    a, b = 0, 1
    chain.saw(0, a, 2)
    chain._produce(1 * NS, a, 0, 0, 0)  # block 1 [m2]
    chain._produce(1 * NS, b, 0, 0, 0)  # block 2 []
    chain._produce(2 * NS, b, 0, 0, 0)  # block 3 on 2: block 1 orphaned
    chain._produce(3 * NS, b, 0, 0, 0)  # block 4 on 3: blocks 2 and 3 (heights 1, 2) commit
    assert chain.canonical == [0, 2, 3, 4]
    assert chain.committed_height == 2
    assert commits == [[2 * NS], [3 * NS]]  # blocks 2 and 3 commit (told, as every block is) holding no message
    assert 2 in chain.ctx.msgs.live


def test_reach_times_count_the_producer_and_need_the_share(scenario_from) -> None:
    ids, made = np.array([1, 2]), np.array([0, 10])
    blocks, times = np.array([1, 1, 1, 2, 2]), np.array([0, 5, 9, 10, 40])
    assert reach_times_ns(ids, made, blocks, times, 3, 0.5).tolist() == [5, 30]
    assert reach_times_ns(ids, made, blocks, times, 3, 1.0).tolist() == [9]


# --- proof of stake ------------------------------------------------------------------------------


def test_the_leader_schedule_is_seeded_slotted_and_weighted_by_stake() -> None:
    stakes = [5.0, 3.0, 2.0]
    first = ProofOfStake(100, stakes, np.random.default_rng(3))
    again = ProofOfStake(100, stakes, np.random.default_rng(3))
    other = ProofOfStake(100, stakes, np.random.default_rng(4))
    t, slots = 0, []
    for _ in range(20_000):
        t, leader = first.next_block(t)
        slots.append((t, leader))
    assert [s[0] for s in slots[:3]] == [100, 200, 300]  # one block a slot, at its start
    schedule = [leader for _, leader in slots]
    assert schedule[:200] == [again.next_block(100 * i)[1] for i in range(200)]
    assert schedule[:200] != [other.next_block(100 * i)[1] for i in range(200)]
    n = len(schedule)
    for producer, stake in enumerate(stakes):
        p = stake / sum(stakes)
        assert abs(schedule.count(producer) / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_proof_of_work_blocks_come_at_the_rate_and_by_hash_share() -> None:
    rule = ProofOfWork(1000, [1.0, 3.0], np.random.default_rng(9))
    t, by = 0, [0, 0]
    n = 20_000
    for _ in range(n):
        t, producer = rule.next_block(t)
        by[producer] += 1
    assert abs(t / n - 1000) < 4 * 1000 / math.sqrt(n)  # exponential gaps: sd = mean
    assert abs(by[1] / n - 0.75) < 4 * math.sqrt(0.75 * 0.25 / n)


POS = """
[run]
name = "pos"
seed = {seed}
duration = "20s"
drain = "3s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 4
intra_region_latency = "{latency}"
latency = {{ "us-east/eu-west" = "{latency}" }}
processing = "{processing}"
bandwidth = "unlimited"

[gossip]
mode = "mesh"
degree = 3
peers = 4

[blocks]
interval = "400ms"

[blocks.producers]
rule = "pos"
count = 5
shares = [4, 3, 2, 1, 1]
confirmations = 2

[[agents]]
name = "traders"
count = 4
arrival = {{ process = "poisson", rate = "50/s" }}
"""


def test_shares_drawn_from_a_distribution_are_seeded_one_per_producer() -> None:
    spec = ProducersSpec(rule="pow", shares={"dist": "normal", "mean": 400_000, "std": 100_000})
    drawn = producer_shares(spec, 4000, np.random.default_rng(3))
    assert drawn == producer_shares(spec, 4000, np.random.default_rng(3))
    assert drawn != producer_shares(spec, 4000, np.random.default_rng(4))
    # Mean and spread of 4,000 draws: within 4 standard errors of the distribution's.
    assert abs(np.mean(drawn) - 400_000) < 4 * 100_000 / math.sqrt(4000)
    assert abs(np.std(drawn) - 100_000) < 4 * 100_000 / math.sqrt(2 * 4000)
    listed = ProducersSpec(rule="pow", count=2, shares=[3, 1])
    assert producer_shares(listed, 2, np.random.default_rng(3)) == [3.0, 1.0]
    assert producer_shares(ProducersSpec(rule="pow"), 3, np.random.default_rng(3)) == [1.0, 1.0, 1.0]


def test_a_region_table_shows_each_regions_block_and_message_arrival() -> None:
    """The terminal's table reads the summary's per-region block arrivals and message propagation."""
    from test_report_compare import hand_summary  # a whole summary.json, these sections laid over

    summary = {"scenario": "s", "seed": 1, "target": "sim", "forks": {
        "blocks": {"made": 2, "canonical": 2, "stale": 0, "stale_rate": 0.0, "fork_heights": 0, "fork_rate": 0.0,
                   "height": 2},
        "reorgs": {"count": 0, "max_depth": 0, "mean_depth": None, "canonical": 0, "final": 0}, "reach_ms": {},
        "arrival_ms": {"p50": 1500.0, "p90": 2500.0, "p99": 3000.0},
        "arrival_by_region_ms": {"eu": {"p50": 1200.0, "p90": 2200.0, "p99": 2400.0, "count": 4}}},
        "propagation_ms": {"eu": {"p50": 300.0, "p90": 800.0, "p99": 900.0, "count": 4},
                           "us": {"p50": 400.0, "p90": 900.0, "p99": 950.0, "count": 4}}}
    buffer = io.StringIO()
    print_summary(hand_summary(**summary), Console(file=buffer, width=120, color_system=None, force_terminal=False))
    text = buffer.getvalue()
    assert re.search(r"block arrival p50 / p90 / p99\s*│\s*1.5 s / 2.5 s / 3 s", text)
    assert re.search(r"│ eu\s*│\s*1.2 s / 2.2 s │\s*300 ms / 800 ms │", text)
    assert re.search(r"│ us\s*│\s*— / — │\s*400 ms / 900 ms │", text)


def test_proof_of_stake_with_zero_delay_never_forks(scenario_from, run_scenario) -> None:
    result: Any = run_scenario(scenario_from(POS.format(seed=2, latency="0ms", processing="0ns")))
    forks = result.summary["forks"]
    blocks = read_history(result.run_dir).table("blocks").to_pylist()
    # Every slot up to the run's end has its block, one height above the last.
    assert [(row["height"], row["t_produced"]) for row in blocks] == [
        (h, h * 400_000_000) for h in range(1, len(blocks) + 1)]
    assert len(blocks) >= 20_000 // 400
    assert len({row["producer"] for row in blocks}) == 5
    assert forks["blocks"]["stale"] == 0 and forks["reorgs"]["count"] == 0
    assert forks["reach_ms"]["100%"]["p90"] == 0.0
    assert result.summary["desync"]["episodes"] == 0
    messages = result.summary["messages"]
    assert messages["committed"] > 0.95 * messages["sent"]


def _tables(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    history = read_history(run_dir)
    return {name: history.table(name).to_pylist()
            for name in ("messages", "deliveries", "events", "blocks", "block_arrivals", "reorgs", "finalized",
                          "edges")}


def test_same_seed_same_history_and_another_seed_another(scenario_from, run_scenario) -> None:
    """Slow links (a slot is shorter than a block's trip) so that forks happen."""
    text = POS.format(seed=8, latency="300ms", processing="50us")
    first: Any = run_scenario(scenario_from(text))
    second: Any = run_scenario(scenario_from(text))
    third: Any = run_scenario(scenario_from(POS.format(seed=9, latency="300ms", processing="50us")))
    assert first.summary["forks"]["blocks"]["stale"] > 0, "a run without forks proves little here"
    assert _tables(first.run_dir) == _tables(second.run_dir)
    assert _tables(first.run_dir)["blocks"] != _tables(third.run_dir)["blocks"]


PARTITION = """
[run]
name = "partition"
seed = 4
duration = "40s"
drain = "10s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 4
processing = "50us"

[gossip]
mode = "mesh"
degree = 3
peers = 4

[blocks]
interval = "1s"

[blocks.producers]
rule = "pow"
confirmations = {confirmations}

[[agents]]
name = "traders"
count = 2
arrival = {{ process = "poisson", rate = "20/s" }}

[[faults]]
kind = "partition"
at = "5s"
duration = "15s"
groups = [["eu-west"]]
"""


def test_views_split_by_a_partition_meet_again_when_it_heals(scenario_from, run_scenario) -> None:
    """Both sides mine apart for 15 s; once the cut heals, a block from the other side comes
    without its parent and the node fetches the branch: every node ends with every canonical
    block, and the losing side's views reorg by several blocks. With one confirmation the
    canonical chain itself moves past commits already made: final reorgs."""
    result: Any = run_scenario(scenario_from(PARTITION.format(confirmations=1), "blocks.producers.reach=[0.25, 1.0]"))
    history = read_history(result.run_dir)
    canonical = {row["block"] for row in history.table("blocks").to_pylist() if row["canonical"]}
    held = {(row["block"], row["node"]) for row in history.table("block_arrivals").to_pylist()}
    nodes = [node["name"] for node in history.nodes]
    missing = [(block, node) for block in canonical for node in nodes if (block, node) not in held]
    assert missing == []
    forks = result.summary["forks"]
    assert forks["reorgs"]["max_depth"] >= 3
    assert forks["blocks"]["stale"] >= 3
    assert forks["reorgs"]["final"] >= 1
    # The side whose branch lost trailed the canonical chain from the fork on: desynchronised.
    assert result.summary["desync"]["episodes"] >= 1
    # The report's table shows the summary's numbers.
    page = (result.run_dir / "report.html").read_text()
    table = page[page.index('id="forks-table"'):]
    table = table[:table.index("</table>")]
    for label, value in (("stale blocks", forks["blocks"]["stale"]), ("reorg depth, max", forks["reorgs"]["max_depth"]),
                         ("final reorgs", forks["reorgs"]["final"])):
        assert re.search(rf"{label}</td>\s*<td class=\"num\">{value}</td>", table), label
    Summary.model_validate(json.loads((result.run_dir / "summary.json").read_text()))
    assert list(forks["reach_ms"]) == ["25%", "100%"]
    assert forks["reach_ms"]["25%"]["p50"] < forks["reach_ms"]["100%"]["p50"]
    buffer = io.StringIO()
    print_summary(result.summary, Console(file=buffer, width=200))
    shown = buffer.getvalue()
    blocks, reorgs = forks["blocks"], forks["reorgs"]
    assert re.search(rf"blocks made / stale / fork rate\s*│\s*{blocks['made']} / {blocks['stale']} \(", shown)
    assert re.search(rf"reorgs / max depth / final\s*│\s*{reorgs['count']} / {reorgs['max_depth']} / "
                     rf"{reorgs['final']}", shown)
    # Deep enough confirmations: no commit is undone, and every message still commits.
    safe: Any = run_scenario(scenario_from(PARTITION.format(confirmations=30)))
    assert safe.summary["forks"]["reorgs"]["final"] == 0


# --- mistakes in [blocks.producers] ---------------------------------------------------------------


@pytest.mark.parametrize("section, field, words", [
    ('rule = "pow"\nnodes = ["us-east-0", "us-east-9"]', "blocks.producers.nodes[1]", "unknown node 'us-east-9'"),
    ('rule = "pow"\ncount = 4', "blocks.producers.count", "4 producers drawn from 3 nodes"),
    ('rule = "pow"\ncount = 2\nshares = [1, 2, 3]', "blocks.producers", "shares has 3 entries for 2 producers"),
    ('rule = "pow"\nnodes = ["us-east-0"]\ncount = 1', "blocks.producers", "not both"),
    ('rule = "pbft"', "blocks.producers.rule", "unknown producer rule 'pbft'"),
    ('rule = "pow"\nshares = { dist = "normal", mean = 0, std = 1 }', "blocks.producers", "positive mean"),
])
def test_a_mistake_in_the_producers_names_its_line_and_field(tmp_path, section, field, words) -> None:
    text = HAND.replace('rule = "pos"\nnodes = ["us-east-0", "us-east-1"]\nconfirmations = 2', section)
    path = tmp_path / "producers.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issue = caught.value.issues[0]
    assert issue.field == field and words in issue.message, (issue.field, issue.message)
    assert issue.line is not None and text.splitlines()[issue.line - 1].strip() != ""


def test_producers_are_refused_on_a_live_target(tmp_path) -> None:
    path = tmp_path / "live.toml"
    path.write_text(HAND)
    with pytest.raises(ScenarioError, match="producers across the nodes are the simulator's"):
        load_scenario(path, ["target=nats"])


@pytest.mark.parametrize(("stale", "made"), [(0, 38), (1, 38), (16, 796), (5, 313), (737, 3729), (38, 38)])
def test_the_stale_rates_interval_is_wilsons_as_scipy_gives_it(stale: int, made: int) -> None:
    interval = binomtest(stale, made).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(stale, made) == pytest.approx((interval.low, interval.high), abs=1e-12)
