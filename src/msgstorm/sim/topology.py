"""The shadow network's shape: nodes in regions, base link latencies and the gossip overlay.

Built once per run from the scenario and a dedicated RNG stream. The overlay is a random
graph in which each node opens ``peers // 2`` outbound connections (as P2P clients do),
joined into one component; ``mesh`` mode forwards over a degree-``degree`` subgraph of it,
``flood`` over every connection. ``hop_distances`` is the BFS the gossip tests compare with.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import chain, pairwise
from typing import Any

import numpy as np

from msgstorm.scenario.refs import node_names, node_regions
from msgstorm.scenario.regions import region_base_ns
from msgstorm.scenario.schema import GossipSpec, LinkModel, NetworkSpec
from msgstorm.sim.link_samples import LinkSamples

__all__ = ["ALL_PAIRS_MAX_NODES", "Topology", "build_topology", "edge_columns", "hop_distances"]


@dataclass(frozen=True)
class Topology:
    names: list[str]
    regions: list[str]
    region_of: list[int]  # node -> region index
    base_ns: list[list[int]]  # region x region one-way latency
    region_model: list[list[LinkModel]]  # region x region delay variation
    node_overrides: dict[tuple[int, int], tuple[int, LinkModel]]
    forward: list[list[int]]  # gossip forwarding lists, node -> peers
    connections: list[list[int]]  # the full overlay
    # The delays of empirical link models (sim/link_samples.py), loaded as the links are coded.
    link_samples: LinkSamples = field(default_factory=LinkSamples)

    @property
    def size(self) -> int:
        return len(self.names)


def _overlay(n: int, gossip: GossipSpec, rng: np.random.Generator) -> list[set[int]]:
    adjacency: list[set[int]] = [set() for _ in range(n)]
    if n == 1:
        return adjacency
    if gossip.outbound_cdf or gossip.max_inbound is not None:
        _drawn_overlay(adjacency, gossip, rng)
    else:
        outbound = max(1, min(gossip.peers // 2, n - 1))
        for node in range(n):
            choices = rng.choice(n - 1, size=outbound, replace=False)
            for choice in choices.tolist():
                other = choice if choice < node else choice + 1
                adjacency[node].add(other)
                adjacency[other].add(node)
    # Join components in index order so the overlay is always connected.
    seen = [False] * n
    roots = []
    for start in range(n):
        if seen[start]:
            continue
        roots.append(start)
        seen[start] = True
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for other in adjacency[node]:
                if not seen[other]:
                    seen[other] = True
                    queue.append(other)
    for a, b in pairwise(roots):
        adjacency[a].add(b)
        adjacency[b].add(a)
    return adjacency


def _drawn_overlay(adjacency: list[set[int]], gossip: GossipSpec,
                   rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Each node opens an outbound count drawn from ``outbound_cdf`` (or ``peers // 2``) of
    connections to peers drawn uniformly among those not yet connected to it that accept
    more inbound connections (``max_inbound``), as SimBlock builds Bitcoin's overlay. A node
    that finds no such peer (every one is full) opens fewer. Returns each node's outbound
    and inbound connection counts."""
    n = len(adjacency)
    outbound = [0] * n
    cdf = np.asarray(gossip.outbound_cdf, dtype=np.float64)
    cap = gossip.max_inbound if gossip.max_inbound is not None else n
    inbound = [0] * n
    for node in range(n):
        wanted = (int(np.searchsorted(cdf, rng.random(), side="right")) + 1 if len(cdf)
                  else max(1, gossip.peers // 2))
        wanted = min(wanted, n - 1)
        opened = 0
        # Rejection draws; after 20 × n misses the peers left are taken in a shuffled order.
        for _ in range(20 * n):
            if opened == wanted:
                break
            other = int(rng.integers(n))
            if other != node and other not in adjacency[node] and inbound[other] < cap:
                adjacency[node].add(other)
                adjacency[other].add(node)
                inbound[other] += 1
                opened += 1
        else:
            for other in rng.permutation(n).tolist():
                if opened == wanted:
                    break
                if other != node and other not in adjacency[node] and inbound[other] < cap:
                    adjacency[node].add(other)
                    adjacency[other].add(node)
                    inbound[other] += 1
                    opened += 1
        outbound[node] = opened
    return outbound, inbound


def _mesh(adjacency: list[set[int]], degree: int, rng: np.random.Generator) -> list[list[int]]:
    """Keep up to ``degree`` links per node (symmetric), preferring links both ends keep."""
    n = len(adjacency)
    kept: list[set[int]] = [set() for _ in range(n)]
    for node in range(n):
        candidates = sorted(adjacency[node] - kept[node])
        rng.shuffle(candidates)
        for other in candidates:
            if len(kept[node]) >= degree:
                break
            if len(kept[other]) < degree:
                kept[node].add(other)
                kept[other].add(node)
    # A mesh must stay connected: add back overlay links between its components.
    component = [-1] * n
    label = 0
    for start in range(n):
        if component[start] >= 0:
            continue
        component[start] = label
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for other in kept[node]:
                if component[other] < 0:
                    component[other] = label
                    queue.append(other)
        label += 1
    if label > 1:
        for node in range(n):
            for other in sorted(adjacency[node]):
                if component[other] != component[node]:
                    old, new = component[other], component[node]
                    kept[node].add(other)
                    kept[other].add(node)
                    component = [new if c == old else c for c in component]
    return [sorted(peers) for peers in kept]


def build_topology(network: NetworkSpec, gossip: GossipSpec, rng: np.random.Generator) -> Topology:
    names = node_names(network)
    node_region = node_regions(network)
    regions = list(network.regions)
    index = {region: i for i, region in enumerate(regions)}
    base_ns = region_base_ns(network)
    region_model = [[network.link for _ in regions] for _ in regions]
    node_index = {name: i for i, name in enumerate(names)}
    node_overrides: dict[tuple[int, int], tuple[int, LinkModel]] = {}
    for link in network.links:
        a, b = link.between
        model = link.dist or network.link
        if a in index and b in index:
            ra, rb = index[a], index[b]  # its latency is in base_ns already
            region_model[ra][rb] = model
            if not link.one_way:
                region_model[rb][ra] = model
        else:
            side_a = [node_index[a]] if a in node_index else [i for i, r in enumerate(node_region) if r == a]
            side_b = [node_index[b]] if b in node_index else [i for i, r in enumerate(node_region) if r == b]
            for i in side_a:
                for j in side_b:
                    node_overrides[(i, j)] = (link.latency, model)
                    if not link.one_way:
                        node_overrides[(j, i)] = (link.latency, model)
    adjacency = _overlay(len(names), gossip, rng)
    connections = [sorted(peers) for peers in adjacency]
    forward = connections if gossip.mode == "flood" else _mesh(adjacency, gossip.degree, rng)
    return Topology(
        names=names,
        regions=regions,
        region_of=[index[r] for r in node_region],
        base_ns=base_ns,
        region_model=region_model,
        node_overrides=node_overrides,
        forward=forward,
        connections=connections,
    )


def hop_distances(forward: list[list[int]], source: int) -> list[int]:
    """Breadth-first hop counts from ``source`` over the forwarding graph (-1: unreachable)."""
    distance = [-1] * len(forward)
    distance[source] = 0
    queue = deque([source])
    while queue:
        node = queue.popleft()
        for other in forward[node]:
            if distance[other] < 0:
                distance[other] = distance[node] + 1
                queue.append(other)
    return distance


# Networks up to this many nodes also list their unconnected pairs in the edges table
# (4,032 rows at 64 nodes); larger ones list only their overlay connections.
ALL_PAIRS_MAX_NODES = 64


def edge_columns(topology: Topology) -> dict[str, Any]:
    """The ``edges`` history table: every overlay connection (and, up to
    ``ALL_PAIRS_MAX_NODES`` nodes, every other pair) with its base one-way latency, by
    source node, then destination node (a 6,000-node overlay has 100,000 rows: built as
    ``src * n + dst`` keys with numpy, not row by row)."""
    n = topology.size
    connected, forwards = _pair_keys(topology.connections, n), _pair_keys(topology.forward, n)
    if n <= ALL_PAIRS_MAX_NODES:
        keys = np.arange(n * n, dtype=np.int64)
    else:
        keys = np.unique(np.concatenate([connected, forwards]))
    src_a, dst_a = np.divmod(keys, n) if n else (keys, keys)
    others = src_a != dst_a
    keys, src_a, dst_a = keys[others], src_a[others], dst_a[others]
    region_of = np.asarray(topology.region_of, dtype=np.int64)
    base = np.asarray(topology.base_ns, dtype=np.int64).reshape(len(topology.regions), -1)
    latency = base[region_of[src_a], region_of[dst_a]] if keys.size else np.zeros(0, dtype=np.int64)
    if topology.node_overrides:
        row = {pair: k for k, pair in enumerate(zip(src_a.tolist(), dst_a.tolist(), strict=True))}
        for pair, (override_ns, _model) in topology.node_overrides.items():
            if pair in row:
                latency[row[pair]] = override_ns
    names = np.asarray(topology.names, dtype=object)
    regions = np.asarray(topology.regions, dtype=object)
    return {"src": names[src_a].tolist(), "dst": names[dst_a].tolist(),
            "src_region": regions[region_of[src_a]].tolist(), "dst_region": regions[region_of[dst_a]].tolist(),
            "base_latency_ns": latency, "overlay": np.isin(keys, connected), "mesh": np.isin(keys, forwards)}


def _pair_keys(peers: list[list[int]], n: int) -> np.ndarray:
    """Each (node, peer) of the lists as ``node * n + peer``."""
    counts = np.fromiter(map(len, peers), dtype=np.int64, count=len(peers))
    peer = np.fromiter(chain.from_iterable(peers), dtype=np.int64, count=int(counts.sum()))
    return np.repeat(np.arange(len(peers), dtype=np.int64), counts) * n + peer
