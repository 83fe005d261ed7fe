"""Gossip propagation against breadth-first search on the same overlay."""

from __future__ import annotations

import numpy as np
import pytest

from msgstorm.history import HistoryWriter, read_history
from msgstorm.runner import write_run_row
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.sim.topology import hop_distances
from msgstorm.traffic import generate_traffic

GOSSIP_TOML = """
[run]
name = "gossip"
seed = 3
duration = "50ms"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = {nodes}
intra_region_latency = "{latency_us}us"
processing = "0ns"
bandwidth = "unlimited"

[gossip]
mode = "{mode}"
degree = {degree}
peers = {peers}

[[agents]]
name = "one"
node = "us-east-{origin}"
arrival = {{ process = "constant", rate = "20/s" }}
"""


@pytest.mark.parametrize("mode, nodes, degree, peers, origin", [
    ("mesh", 60, 4, 8, 0),
    ("mesh", 200, 8, 16, 17),
    ("flood", 40, 8, 6, 5),
])
def test_first_delivery_is_latency_times_bfs_hops(scenario_from, tmp_path, mode, nodes, degree, peers, origin) -> None:
    latency_ns = 700_000
    scenario = scenario_from(GOSSIP_TOML.format(nodes=nodes, latency_us=latency_ns // 1000, mode=mode,
                                                degree=degree, peers=peers, origin=origin))
    writer = HistoryWriter(tmp_path / "history")
    traffic_seed, sim_seed = np.random.SeedSequence(1).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed)
    sim.run(generate_traffic(scenario, traffic_seed))
    write_run_row(writer, scenario, sim, sim.finish())
    writer.close()
    history = read_history(tmp_path)
    hops = hop_distances(sim.topology.forward, origin)
    assert min(hops) >= 0, "the overlay must be connected"
    assert max(hops) >= 2, "a test of one hop proves little"
    messages = history.messages.to_pylist()
    assert messages, "the agent sent nothing"
    sent = {row["msg_id"]: row["t_sent"] for row in messages}
    deliveries = history.deliveries.to_pylist()
    by_msg: dict[int, dict[str, int]] = {}
    for row in deliveries:
        by_msg.setdefault(row["msg_id"], {})[row["node"]] = row["t_delivered"]
    assert set(by_msg) == set(sent)
    for msg_id, delivered in by_msg.items():
        assert len(delivered) == nodes
        for node, t in delivered.items():
            index = sim.cluster.index[node]
            assert t - sent[msg_id] == latency_ns * hops[index], (msg_id, node)


def test_mesh_forwarding_degree_is_bounded(scenario_from) -> None:
    scenario = scenario_from(GOSSIP_TOML.format(nodes=300, latency_us=100, mode="mesh", degree=6, peers=12, origin=0))
    from msgstorm.sim.topology import build_topology

    topo = build_topology(scenario.network, scenario.gossip, np.random.default_rng(0))
    degrees = [len(peers) for peers in topo.forward]
    assert np.mean(degrees) <= 6.5
    assert all(len(c) >= len(f) for c, f in zip(topo.connections, topo.forward))
    assert min(hop_distances(topo.forward, 0)) >= 0

