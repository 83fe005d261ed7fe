"""Block arrivals and the expected fork probability (analysis/forks.py) on a history written
by hand: which arrivals count, and which blocks the expectation averages."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from msgstorm.analysis.forks import forks_summary, wilson_interval
from msgstorm.history import HistoryWriter, read_history
from msgstorm.history.events import EventKind
from msgstorm.runner import write_run_row

MS = 1_000_000

# Three proof-of-work producers, A = us-east-0 and B = us-east-1 (us-east), C = eu-west-0,
# with hash shares 2 : 1 : 1 (weights 0.5, 0.25, 0.25), a block a second on average.
SCENARIO = """
[run]
name = "arrivals"
duration = "10s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 2

[blocks]
interval = "1s"

[blocks.producers]
rule = "pow"
nodes = ["us-east-0", "us-east-1", "eu-west-0"]
shares = [2, 1, 1]
confirmations = 2

[[agents]]
name = "one"
arrival = { process = "constant", rate = "1/s" }
"""

A, B, C = "us-east-0", "us-east-1", "eu-west-0"

# block: (parent, height, producer, t_produced in ms, canonical, the block_produced detail)
BLOCKS = {
    1: (0, 1, A, 1000, True, {}),
    2: (0, 1, A, 1000, False, {"equivocates": 1}),  # A's twin of block 1
    3: (1, 2, B, 3000, True, {}),
    4: (3, 3, C, 5000, True, {"twin_at": B}),  # made by a twin of C running at B
}
# (block, node, t in ms): when each node validated each block.
ARRIVALS = [
    (1, A, 1000), (1, B, 1000), (1, C, 1500),  # B at once, over a link of no delay
    (2, C, 1200), (2, B, 1400), (2, A, 1600),  # the twin comes back to A by gossip
    (3, B, 3000), (3, A, 3300),  # it never reaches C
    (4, B, 5000), (4, C, 5100), (4, A, 5250),
]


def _history(scenario_from, tmp_path: Path):
    scenario = scenario_from(SCENARIO)
    writer = HistoryWriter(tmp_path / "history")
    rows = sorted(BLOCKS.items())
    writer.append("blocks", {
        "block": [block for block, _ in rows], "parent": [row[0] for _, row in rows],
        "height": [row[1] for _, row in rows], "producer": [row[2] for _, row in rows],
        "t_produced": [row[3] * MS for _, row in rows], "messages": [0] * len(rows), "bytes": [80] * len(rows),
        "canonical": [row[4] for _, row in rows]})
    writer.append("block_arrivals", {"block": [row[0] for row in ARRIVALS], "node": [row[1] for row in ARRIVALS],
                                     "t": [row[2] * MS for row in ARRIVALS]})
    writer.append("events", {
        "t": [row[3] * MS for _, row in rows], "kind": [EventKind.BLOCK_PRODUCED] * len(rows),
        "node": [row[2] for _, row in rows], "value": [0.0] * len(rows), "height": [row[1] for _, row in rows],
        "detail": [json.dumps({"gas": 0, "bytes": 80, "block": block, "parent": row[0], **row[5]})
                   for block, row in rows]})
    nodes = [{"name": name, "region": name.rsplit("-", 1)[0]} for name in (A, B, C, "eu-west-1")]
    write_run_row(writer, scenario, SimpleNamespace(nodes=nodes, interrupted=False), 10_000 * MS)  # type: ignore[arg-type]
    writer.close()
    return read_history(tmp_path)


def test_block_arrivals_are_every_node_but_the_one_that_made_the_block(scenario_from, tmp_path) -> None:
    """Worked by hand, in ms after each making, leaving out only the node that made it:
    block 1: B 0 (at once: it counts), C 500; block 2: C 200, B 400 (A made it: its return
    at 600 is left out); block 3: A 300; block 4 (made at B): C 100, A 250.
    All: 0, 100, 200, 250, 300, 400, 500: p50 the 4th (250), p90 and p99 the 7th (500).
    us-east (A, B): 0, 250, 300, 400: p50 the 2nd (250), p90 the 4th (400).
    eu-west (C): 100, 200, 500: p50 the 2nd (200), p90 the 3rd (500)."""
    forks = forks_summary(_history(scenario_from, tmp_path))
    assert forks is not None
    assert forks["arrival_ms"] == {"p50": 250.0, "p90": 500.0, "p99": 500.0}
    assert forks["arrival_by_region_ms"] == {
        "eu-west": {"p50": 200.0, "p90": 500.0, "p99": 500.0, "count": 3},
        "us-east": {"p50": 250.0, "p90": 400.0, "p99": 400.0, "count": 4}}


def test_the_expected_fork_probability_averages_only_blocks_every_producer_got(scenario_from, tmp_path) -> None:
    """Σ_j w_j t_j over the producers other than the block's maker (its own t is 0), in s:
    block 1: B 0.25 × 0 + C 0.25 × 0.5 = 0.125; block 2: C 0.25 × 0.2 + B 0.25 × 0.4 = 0.15
    (A made it); block 4 (made at B): A 0.5 × 0.25 + C 0.25 × 0.1 = 0.15. Block 3 never
    reached C: left out, not counted as if C had it at once (which would add 1 − e^−0.15)."""
    forks = forks_summary(_history(scenario_from, tmp_path))
    assert forks is not None
    probability = [1 - math.exp(-0.125), 1 - math.exp(-0.15), 1 - math.exp(-0.15)]
    stale = wilson_interval(1, 4)  # block 2 of 4 is off the canonical chain
    assert forks["expected"] == {
        "fork_probability": round(sum(probability) / 3, 6),
        "stderr": round(float(np.std(probability, ddof=1)) / math.sqrt(3), 6),
        "blocks": 3,
        "stale_rate_interval": [round(stale[0], 6), round(stale[1], 6)]}
