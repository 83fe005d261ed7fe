"""Round-based consensus after a partition heals (sim/tendermint_gossip.py): the proposals,
votes and block parts a cut dropped are sent again to the peers that lack them, and the
rounds go on as their timeouts predict, worked by hand here; without a partition nothing is
sent again and the rounds are those of tests/test_sim_tendermint.py."""

from __future__ import annotations

from typing import Any

import pytest
from sim_runs import four_tendermint

from msgstorm.analysis.summary import analyse
from msgstorm.history import read_history
from msgstorm.sim.tendermint import TendermintBook
from msgstorm.sim.tendermint_gossip import PeerGossip

NS = 1_000_000_000
MS = 1_000_000


def _cut(at: str, duration: str) -> str:
    """Validators 0 and 1 apart from 2 and 3: no side holds more than two thirds."""
    return f"""
[[faults]]
kind = "partition"
groups = [["us-east-0", "us-east-1"], ["us-east-2", "us-east-3"]]
at = "{at}"
duration = "{duration}"
"""


def _commits(result: Any) -> list[tuple[int, int, int, str]]:
    """(height, round, t_committed, proposer) of every commit, the same at every node here."""
    rows = read_history(result.run_dir).table("heights").to_pylist()
    return sorted({(row["height"], row["round"], row["t_committed"], row["proposer"]) for row in rows})


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int, set[str]]]:
    """Each sync that arrived (PeerGossip._arrived): its sender, its peer, the messages and
    parts it carried, and the peer's overlay neighbours (either way)."""
    arrived: list[tuple[str, str, int, set[str]]] = []
    original = PeerGossip._arrived

    def counting(self: PeerGossip, t: int, key: int, node: int, peer: int, d: int) -> None:
        names, forward = self.ctx.cluster.names, self.gossip.forward
        messages, parts, _ = self.in_flight[key]
        neighbours = {names[p] for p in forward[peer]} | {names[q] for q, peers in enumerate(forward) if peer in peers}
        arrived.append((names[node], names[peer], len(messages) + len(parts), neighbours))
        original(self, t, key, node, peer, d)

    monkeypatch.setattr(PeerGossip, "_arrived", counting)
    return arrived


def test_a_healed_2_2_partition_commits_after_round_0s_prevote_and_precommit_timeouts(
        scenario_from, run_scenario, syncs) -> None:
    """Four equal validators, no delay, CometBFT's timeouts (propose 3 s, prevote and
    precommit 1 s, each + 0.5 s a round; commit 1 s): height h commits at h - 1 s in round 0;
    with equal powers the proposer of (h, r) is validator (h - 1 + r) mod 4.

    The cut (5.5 s to 15.5 s) falls after height 6's commit (5 s). Height 7 starts at 6 s;
    its proposer, validator 2, is on the second side: 2 and 3 prevote its block at 6 s, 0
    and 1 time out at 6 + 3 = 9 s and prevote nil. Two prevotes of four are two thirds of
    nothing: no timer, no precommit; every validator waits in round 0's prevote step.

    At the heal (15.5 s) each side's prevotes reach the other at once: 2 for the block and
    2 nil, two thirds of any prevotes but of neither (line 34): timeout_prevote + 0 × 0.5 s
    = 1 s, nil precommits at 16.5 s; four nil precommits (line 47): timeout_precommit +
    0 × 0.5 s = 1 s, round 1 at 17.5 s, whose proposer (validator 3) builds at once and every
    validator prevotes and precommits it: height 7 commits in round 1 at 15.5 + 1 + 1 =
    17.5 s, the latest the schedule allows with no delay. Then one height a second again
    (height 8's proposer is validator 3 too: (8 - 1) mod 4): 19 heights in the 20 s after the
    heal, where the votes lost to the cut, never sent again, committed none."""
    heal = 15_500 * MS
    result: Any = run_scenario(scenario_from(four_tendermint("tm-heal", "35.5s", 'timeout_commit = "1s"',
                                                             rest=_cut("5.5s", "10s"))))
    commits = _commits(result)
    assert commits[:6] == [(h, 0, (h - 1) * NS, f"us-east-{(h - 1) % 4}") for h in range(1, 7)]
    assert not [c for c in commits if 5 * NS < c[2] < heal]  # halted while cut
    after = [c for c in commits if c[2] >= heal]
    assert after[0] == (7, 1, heal + 2 * NS, "us-east-3")
    assert after[1:] == [(h, 0, heal + 2 * NS + (h - 7) * NS, f"us-east-{(h - 1) % 4}") for h in range(8, 26)]
    assert len([c for c in after if c[2] <= heal + 20 * NS]) == 19
    rows = read_history(result.run_dir).table("heights").to_pylist()
    assert len(rows) == 4 * 25  # every validator commits every height
    # Each validator synced each peer across the cut once (2 × 2 × 2): its side's two prevotes,
    # and to 0 and 1 the block's one part too. The first to learn on a side passed it on to
    # the other, which had it from across at the same instant: at most one more a side.
    def side(name: str) -> int:
        return int(name.removeprefix("us-east-")) // 2

    across = sorted((sender, peer, carried) for sender, peer, carried, _ in syncs if side(sender) != side(peer))
    assert across == [(f"us-east-{a}", f"us-east-{b}", 3 if a > 1 else 2)
                      for a in range(4) for b in range(4) if a // 2 != b // 2]
    assert len(syncs) - len(across) <= 2


def test_a_heal_in_round_1_gives_nil_precommits_at_once_and_commits_in_round_2(
        scenario_from, run_scenario) -> None:
    """Every proposer's block takes 3.7 s to build (tests/test_sim_tendermint.py: uncut,
    height 1 commits in round 2 at 12.7 s). Round 0: nil at 3 s, round 1 at 4 s. The cut
    comes at 5 s: round 1's proposer (validator 1) builds at 7.7 s, after every validator
    prevoted nil at 4 + 3.5 = 7.5 s, and only 0 and 1 get its block. Two nil prevotes a
    side: stuck in round 1's prevote step until the heal at 12 s.

    At the heal the other side's nil prevotes arrive: four nil prevotes, 2/3 for nil (line
    44): nil precommits at once, four of them (line 47): timeout_precommit + 1 × 0.5 s =
    1.5 s, round 2 at 13.5 s. Its proposer (validator 2) builds at 13.5 + 3.7 = 17.2 s,
    before its timeout at 13.5 + 3 + 2 × 0.5 = 17.5 s: height 1 commits in round 2 at
    17.2 s, 4.5 s later than uncut. Round 1's block parts reach 2 and 3 at the heal."""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-heal-late", "18s",
                                                             'prepare = "3.7s"\ntimeout_commit = "1s"',
                                                             rest=_cut("5s", "7s"))))
    assert _commits(result) == [(1, 2, 17_200 * MS, "us-east-2")]
    history = read_history(result.run_dir)
    blocks = [(b["block"], b["producer"], b["t_produced"], b["canonical"]) for b in history.table("blocks").to_pylist()]
    assert blocks == [(1, "us-east-0", 3_700 * MS, False), (2, "us-east-1", 7_700 * MS, False),
                      (3, "us-east-2", 17_200 * MS, True)]
    round_1 = {row["node"]: row["t"] for row in history.table("block_arrivals").to_pylist() if row["block"] == 2}
    assert round_1 == {"us-east-0": 7_700 * MS, "us-east-1": 7_700 * MS, "us-east-2": 12 * NS, "us-east-3": 12 * NS}


def test_a_side_that_committed_before_the_cut_syncs_the_other_when_it_gets_to_the_next_height(
        scenario_from, run_scenario) -> None:
    """Validators 0 and 1 in us-east, 2 and 3 in eu-west, no delay inside a region, 100 ms
    across; the regions are cut from 150 ms to 5 s. Height 1 (proposer 0, built at 0): 0 and
    1 prevote at 0; 2 and 3 get the block and those prevotes at 100 ms, prevote and precommit
    then (four prevotes); their prevotes and precommits, on their way at the cut, reach 0
    and 1 at 200 ms: 0 and 1 precommit and commit height 1 at 200 ms. Their precommits leave
    after the cut and are dropped: 2 and 3 hold two precommits, stuck at height 1. Height 2
    (proposer 1) starts in us-east at 1.2 s: 1 builds, 0 and 1 prevote its block, two of
    four: stuck too.

    At the heal (5 s) us-east sends eu-west its height-1 precommits: 2 and 3 commit height 1
    at 5.1 s. Getting to height 2 they are told nothing by gossip of it (us-east's block and
    prevotes of height 2 were dropped), but us-east hears they are there 100 ms later and
    syncs them: the block and two prevotes reach them at 5.3 s, before their height 2 starts
    (5.1 + 1 s = 6.1 s). At 6.1 s they prevote the block, hold four prevotes and precommit
    it; both reach us-east at 6.2 s, which precommits and commits; its precommits reach
    eu-west at 6.3 s. Without that second sync 2 and 3 would time out at 9.1 s and prevote
    nil, never holding us-east's two prevotes of height 2: two thirds of nothing again."""
    text = four_tendermint("tm-heal-split", "6.5s", 'timeout_commit = "1s"', rest="""
[[faults]]
kind = "partition"
groups = [["us-east"], ["eu-west"]]
at = "150ms"
duration = "4850ms"
""")
    text = (text.replace('regions = ["us-east"]', 'regions = ["us-east", "eu-west"]')
            .replace("nodes_per_region = 4", "nodes_per_region = 2")
            .replace('intra_region_latency = "0ns"', 'intra_region_latency = "0ns"\nlatency = { "us-east/eu-west" = "100ms" }'))
    result: Any = run_scenario(scenario_from(text))
    rows = read_history(result.run_dir).table("heights").to_pylist()
    assert sorted((row["node"], row["height"], row["round"], row["t_committed"]) for row in rows) == sorted(
        [(f"us-east-{i}", 1, 0, 200 * MS) for i in (0, 1)] + [(f"eu-west-{i}", 1, 0, 5_100 * MS) for i in (0, 1)]
        + [(f"us-east-{i}", 2, 0, 6_200 * MS) for i in (0, 1)] + [(f"eu-west-{i}", 2, 0, 6_300 * MS) for i in (0, 1)])


def test_without_a_partition_nothing_is_sent_again_and_the_rounds_are_unchanged(
        scenario_from, run_scenario, syncs) -> None:
    """The same four validators uncut: one round a height, height h at h - 1 s proposed by
    validator (h - 1) mod 4, exactly the cut run's first six heights; a crash and restart
    (validator 3 down 0.5 s to 5.5 s: its turn, height 4, times out once) sends nothing
    again either: it catches up by fetching the committed blocks, as before."""
    result: Any = run_scenario(scenario_from(four_tendermint("tm-uncut", "12s", 'timeout_commit = "1s"')))
    assert _commits(result) == [(h, 0, (h - 1) * NS, f"us-east-{(h - 1) % 4}") for h in range(1, 13)]
    crash = """
[[faults]]
kind = "crash"
node = "us-east-3"
at = "0.5s"
restart_after = "5s"
"""
    crashed: Any = run_scenario(scenario_from(four_tendermint("tm-crash", "8.5s", 'timeout_commit = "1s"', rest=crash)))
    back = [(row["height"], row["round"], row["t_committed"])
            for row in read_history(crashed.run_dir).table("heights").to_pylist() if row["node"] == "us-east-3"]
    assert back == [(1, 0, 0), (2, 0, 6 * NS), (3, 0, 6 * NS), (4, 1, 7 * NS), (5, 0, 8 * NS)]
    assert syncs == []


def test_messages_sent_again_count_once_whether_the_kernel_or_python_counts_the_votes(
        scenario_from, run_scenario, syncs, monkeypatch) -> None:
    """Twelve nodes in two regions over a degree-3 mesh (jittered 10 ms links inside a
    region, 40 ms across), four validators, two a region; the regions are cut from 3 s to
    7 s. A node that lacked a message takes it once, from whichever peer (or gossip copy)
    comes first, so the kernel's counting and the reference's (every vote handed back)
    write the same tables, as does the same seed run again; the syncs reach nodes with no neighbour across the cut (passed on),
    every node commits after the heal, and no two nodes commit different blocks.

    The cut stops height 8 in round 0 (it starts at about 3.05 s, one timeout_commit after
    height 7's commit): each validator prevotes the block it got or nil, two prevotes a side.
    At the heal the four meet: 2/3 for nil gives nil precommits at once (line 44), a split
    only after timeout_prevote (1 s, line 34); then timeout_precommit (1 s, line 47) and
    round 1, whose block commits a few links later. So height 8 commits in round 1, no
    sooner than 1 s after the heal and no later than 2 s plus the few links (300 ms here
    bounds a sync's 40 ms, the nil precommits' and round 1's proposal, prevotes and
    precommits across regions)."""
    text = four_tendermint("tm-heal-mesh", "12s", 'timeout_commit = "300ms"\ntimeout_propose = "600ms"\nexecution = "2ms"',
                           rate="40/s", rest="""
[[faults]]
kind = "partition"
groups = [["us-east"], ["eu-west"]]
at = "3s"
duration = "4s"
""")
    text = (text.replace('regions = ["us-east"]', 'regions = ["us-east", "eu-west"]')
            .replace("nodes_per_region = 4", "nodes_per_region = 6")
            .replace('intra_region_latency = "0ns"', 'intra_region_latency = "10ms"\nlatency = { "us-east/eu-west" = "40ms" }\n'
                     'link = { dist = "lognormal", sigma = 0.3 }')
            .replace('processing = "0ns"', 'processing = "50us"')
            .replace('mode = "flood"', 'mode = "mesh"')
            .replace("[blocks.producers]\n", '[blocks.producers]\nnodes = ["us-east-0", "us-east-1", "eu-west-0", "eu-west-1"]\n')
            .replace("shares = [1, 1, 1, 1]\n", ""))
    heal = 7 * NS
    tables = []
    for in_kernel in (True, False, True):  # the last: the same seed again
        monkeypatch.setattr(TendermintBook, "count_in_kernel", in_kernel)
        result: Any = run_scenario(scenario_from(text))
        history = read_history(result.run_dir)
        tables.append([history.table(name).to_pylist() for name in ("heights", "finalized", "blocks")])
    assert tables[0] == tables[1] == tables[2]
    heights = tables[0][0]
    assert not [row for row in heights if 3_100 * MS < row["t_committed"] < heal]
    first = min((row for row in heights if row["t_committed"] >= heal), key=lambda row: row["t_committed"])
    assert (first["height"], first["round"]) == (8, 1)
    assert heal + NS < first["t_committed"] < heal + 2 * NS + 300 * MS
    assert len({row["node"] for row in heights if row["t_committed"] >= heal}) == 12
    # Passed on: what the heal brought reached nodes with no overlay neighbour across the cut.
    inland = {peer for _, peer, carried, neighbours in syncs
              if carried and all(n.split("-")[0] == peer.split("-")[0] for n in neighbours)}
    assert inland
    assert {c["name"]: c["verdict"] for c in analyse(history).summary["checks"]}["safety"] == "valid"
