"""What the simulator writes about its network: the ``edges`` table (the overlay) and the
gossip nodes' ``validation_backlog`` samples."""

from __future__ import annotations

from collections import Counter

import pyarrow.compute as pc
from sim_runs import gossip_on

from msgstorm.scenario import parse_scenario
from msgstorm.sim.kernel import N_CPU
from msgstorm.sim.shadow import BACKLOG_NODES
from msgstorm.sim.topology import ALL_PAIRS_MAX_NODES

NETWORK = """
[run]
name = "overlay"
seed = 4
duration = "{duration}"
drain = "1s"
sample_interval = "100ms"

[network]
regions = ["us-east", "eu-west", "ap-northeast"]
nodes_per_region = {per_region}
processing = "{processing}"

[gossip]
degree = 4
peers = 8

[sequencer]
service = "20us"

[[agents]]
name = "traders"
arrival = {{ process = "poisson", rate = "{rate}/s" }}
"""


def _run(run_scenario, **values):  # type: ignore[no-untyped-def]
    text = NETWORK.format(**{"duration": "1s", "processing": "20us", "rate": 200, **values})
    return run_scenario(parse_scenario(text, source="overlay.toml"))


def test_a_small_network_lists_every_pair_and_its_mesh(run_scenario) -> None:
    result = _run(run_scenario, per_region=4)
    edges = result.history.edges.to_pylist()
    n = 12
    assert len(edges) == n * (n - 1) and n <= ALL_PAIRS_MAX_NODES
    mesh = {(e["src"], e["dst"]) for e in edges if e["mesh"]}
    overlay = {(e["src"], e["dst"]) for e in edges if e["overlay"]}
    assert mesh <= overlay < {(e["src"], e["dst"]) for e in edges}
    # Every node forwards to someone, to about ``degree`` peers on average.
    per_node = Counter(src for src, _ in mesh)
    assert len(per_node) == n and sum(per_node.values()) / n <= 4.5
    # Base latency: the region pair's, the same both ways; inside a region below across.
    latency = {(e["src_region"], e["dst_region"]): e["base_latency_ns"] for e in edges}
    assert all(latency[(a, b)] == latency[(b, a)] for a, b in latency)
    assert latency[("us-east", "us-east")] < latency[("us-east", "eu-west")] < latency[("us-east", "ap-northeast")]
    names = {e["src"] for e in edges}
    assert len(names) == n and len({(e["src"], e["dst"]) for e in edges}) == n * (n - 1)


def test_a_large_network_lists_only_its_overlay(run_scenario) -> None:
    result = _run(run_scenario, per_region=30, duration="200ms", rate=50)
    edges = result.history.edges
    assert 90 > ALL_PAIRS_MAX_NODES
    assert pc.all(edges["overlay"]).as_py()
    assert 90 * 4 <= edges.num_rows < 90 * 89 // 4


def test_gossip_backlog_is_sampled_where_it_builds(run_scenario) -> None:
    """Gossip nodes that validate slower than messages arrive queue work while the
    sequencer's queue stays short: the backlog shows in ``validation_backlog``."""
    result = _run(run_scenario, per_region=15, processing="2ms", rate=800, duration="2s")
    events = result.history.events
    backlog = events.filter(pc.equal(events["kind"], "validation_backlog"))
    depth = events.filter(pc.equal(events["kind"], "queue_depth"))
    values = backlog["value"].to_pylist()
    assert max(values) > 50  # receipts' worth of queued validation
    assert max(depth["value"].to_pylist()) < 20
    per_sample = Counter(backlog["t"].to_pylist())
    assert max(per_sample.values()) == BACKLOG_NODES
    assert result.summary["gossip_backlog"]["max"] == round(max(values), 3)


def test_a_network_that_keeps_up_samples_no_backlog(run_scenario) -> None:
    result = _run(run_scenario, per_region=4, processing="0ns")
    kinds = result.history.events["kind"].to_pylist()
    assert "validation_backlog" not in kinds and "queue_depth" in kinds


def test_backlog_reads_the_lone_cpus_only_where_they_worked() -> None:
    """A sample takes each node's later-free CPU, the kernel's or its lone one
    (``LoneCpu.cpu_queues``: only the nodes it ever held); the rest count the kernel's alone."""
    state = gossip_on([[1], [0], [], []], 1_000, 1_000)
    state.nodes[N_CPU, :] = [5_000, 9_000, 0, 2_000]
    assert state.validation_backlog(1_000, {}, 8) == [(0, 4_000), (1, 8_000), (3, 1_000)]
    # Node 2's lone CPU is busy until 7,000; node 0's lone one ends before its kernel one.
    assert state.validation_backlog(1_000, {2: 7_000, 0: 3_000}, 8) == [(0, 4_000), (1, 8_000), (2, 6_000),
                                                                       (3, 1_000)]
    assert state.validation_backlog(1_000, {2: 7_000}, 2) == [(1, 8_000), (2, 6_000)]
