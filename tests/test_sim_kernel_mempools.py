"""The standbys' mempools logged in the gossip kernel against handing every validation back.

A standby's validation of a message only fills its mempool, which the chain reads when
the standby takes over; the kernel logs it and runs on (``GossipState.set_watched``,
``kernel.WATCH_LOG``) instead of returning to Python for each. ``reference=True``
keeps the hand-back, the reference: from the same seed both must write the same history,
row for row, for hypothesis-drawn small market scenarios with a standby and a crash. (The
reference runs every part on its Python path, so the whole-run checks of the examples and of
a leader crash whose standby sequences what its mempool saw are written once, in
tests/test_sim_kernel_intake.py.) A fork chain's producers log theirs too (read
before a block is made): the same holds for the Bitcoin preset and the forks example with a
producer's crash, and the logged times set each message's ``t_received``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from sim_runs import (
    LEADER_CRASH,
    Tables,
    example_scenario,
    market_scenarios,
    same_both_ways,
    shared_tables,
    simulate_tables,
)

from msgstorm.history import HistoryWriter
from msgstorm.history.events import EventKind
from msgstorm.scenario import Scenario, parse_scenario
from msgstorm.sim.forks import ForkChain
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.shadow import ShadowNetwork

CASES = int(os.environ.get("MSGSTORM_MEMPOOL_CASES", "12"))



def _simulate(scenario: Scenario, out: Path, reference: bool = False) -> tuple[Tables, int]:
    """The run's tables (read while the directory exists), and its end."""
    tables, t_end, _steps = simulate_tables(scenario, out, reference=reference)
    return tables, t_end


def _leader_crash() -> Scenario:
    return example_scenario("flash-crash", ['run.duration="8s"', 'run.drain="3s"'], LEADER_CRASH)


@pytest.mark.slow
def test_losing_the_log_changes_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberate mutation: a kernel log that never reaches the mempools must show."""
    scenario = _leader_crash()
    reference = shared_tables(scenario, reference=True)[0]  # made before the mutation
    with tempfile.TemporaryDirectory() as tmp:
        monkeypatch.setattr(GossipState, "drain_mempool_log", lambda self: np.zeros((4, 0), dtype=np.int64))
        lost, _ = _simulate(scenario, Path(tmp) / "lost")
    assert lost["messages"] != reference["messages"]


# A producer of the forks example crashes while blocks race (its mempool is emptied).
PRODUCER_CRASH = """
[[faults]]
kind = "crash"
node = "us-east-0"
at = "7s"
restart_after = "3s"
"""


def test_fork_chain_producers_fill_the_same_mempools() -> None:
    """The Bitcoin preset (every node mines) at 300 nodes, a block a minute and a
    transaction every 2 s: the producers' mempools, logged in the kernel, make the same
    blocks and commits."""
    history = same_both_ways(example_scenario("bitcoin", [
        "network.total_nodes=300", "agents.0.count=300", 'agents.0.arrival.rate="6/h"',
        'blocks.interval="1min"', 'run.duration="15min"']))
    messages = history["messages"]
    committed = [i for i, status in enumerate(messages["status"]) if status == "committed"]
    assert len(committed) > 50, len(committed)
    # t_received is the first producer's validation: after the send, before the block.
    for i in committed:
        assert messages["t_sent"][i] < messages["t_received"][i] <= messages["t_committed"][i]
    assert len(history["blocks"]["block"]) >= 8


def test_a_producer_crash_empties_the_same_mempool() -> None:
    """Every node of the forks example produces (equal shares); one crashes with a mempool
    of messages, which its restart starts without."""
    history = same_both_ways(example_scenario("forks", [
        'run.duration="12s"', 'run.drain="4s"', "blocks.producers.count=30", "blocks.producers.shares=[]"],
        PRODUCER_CRASH))
    assert EventKind.NODE_DOWN in history["events"]["kind"]
    assert len(history["blocks"]["block"]) >= 3


# A partition (blocks then come without their parents, and nodes fetch them) and an
# equivocating producer (blocks given straight to its peers, outside the kernel).
SPLIT_AND_EQUIVOCATE = """
[[faults]]
kind = "partition"
at = "3s"
duration = "8s"
groups = [["eu-west"]]

[[faults]]
kind = "equivocate"
node = "{node}"
at = "11s"
duration = "9s"
"""


def _largest_producer(scenario: Scenario) -> str:
    """The producer with the largest share (the first drawn) of ``scenario``'s run."""
    with tempfile.TemporaryDirectory() as tmp:
        writer = HistoryWriter(Path(tmp) / "history", scenario.history.row_group_size)
        sim = ShadowNetwork(scenario, writer, np.random.SeedSequence(scenario.run.seed).spawn(2)[1], helper_cpus=0)
        assert isinstance(sim.chain, ForkChain)
        name = sim.cluster.names[sim.chain.producers[0]]
        sim.finish()
        writer.close()
    return name


def test_views_split_and_equivocated_connect_the_same_blocks() -> None:
    overrides = ['run.duration="20s"', 'run.drain="4s"', "blocks.producers.confirmations=1"]
    node = _largest_producer(example_scenario("forks", overrides))
    history = same_both_ways(example_scenario("forks", overrides, SPLIT_AND_EQUIVOCATE.format(node=node)))
    assert len(history["reorgs"]["depth"]) >= 5
    blocks = history["blocks"]
    assert blocks["canonical"].count(False) >= 2
    # The equivocating producer made twin blocks (one height, one parent, twice).
    made = list(zip(blocks["parent"], blocks["height"], blocks["producer"], strict=True))
    assert any(made.count(row) == 2 for row in made if row[2] == node)
    arrivals = history["block_arrivals"]
    # Every canonical block made before the last seconds reached every node once the cut
    # healed (some by a fetch).
    canonical = {b for b, on, t in zip(blocks["block"], blocks["canonical"], blocks["t_produced"], strict=True)
                 if on and t < 15_000_000_000}
    reached = {(b, n) for b, n in zip(arrivals["block"], arrivals["node"], strict=True)}
    nodes = set(arrivals["node"])
    assert len(nodes) == 30
    assert all((b, n) in reached for b in canonical for n in nodes)


def test_losing_the_producers_log_changes_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = example_scenario("forks", ['run.duration="6s"', 'run.drain="3s"'])
    reference = shared_tables(scenario, reference=True)[0]  # made before the mutation
    with tempfile.TemporaryDirectory() as tmp:
        monkeypatch.setattr(GossipState, "drain_mempool_log", lambda self: np.zeros((4, 0), dtype=np.int64))
        lost, _ = _simulate(scenario, Path(tmp) / "lost")
    assert lost["messages"] != reference["messages"]


@pytest.mark.slow
def test_drawn_market_scenarios_write_the_same_history() -> None:
    failovers = 0

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(market_scenarios())
    def check(spec: dict[str, Any]) -> None:
        nonlocal failovers
        history = same_both_ways(parse_scenario(tomli_w.dumps(spec), source="mempools.toml"))
        failovers += EventKind.LEADER_CHANGE in history["events"]["kind"]

    check()
    # The drawn cases must include failovers, where the mempools are read.
    if CASES >= 6:
        assert failovers >= 2, failovers
