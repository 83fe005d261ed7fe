"""The overlay in the run report: a topology view and what paths cost between regions.

Place in the pipeline: history ``edges`` table -> **topology** -> html. The view places each
region's nodes on an arc of their own around a circle, draws the gossip mesh's links and
colours nodes by region. The table compares, per region pair, the base one-way latency of
a direct link with the shortest path over the mesh (sum of base latencies, Dijkstra): a
pair whose mesh path is much longer than a direct link explains a propagation time that
would otherwise look like a bug. Both read only the ``edges`` table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.report.plotspec import Figure, figure, title

__all__ = ["MAX_PATH_SOURCES", "region_path_rows", "topology_figure"]

NS_PER_MS = 1e6
# Shortest paths are computed from at most this many source nodes (evenly spread over the
# node list), so a thousand-node overlay costs a fraction of a second.
MAX_PATH_SOURCES = 64
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")


def _nodes(edges: pa.Table) -> tuple[list[str], dict[str, str], np.ndarray, np.ndarray]:
    """The node names in the order they first appear (each row's src, then its dst), each
    one's region, and the ``src`` and ``dst`` columns as indices into those names (each
    name looked up once per row in one dict; no Arrow compute module, whose import alone
    costs a report as much)."""
    rows = edges.num_rows
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(name, len(index))
                         for column in ("src", "dst") for name in edges[column].to_pylist()),
                        dtype=np.int64, count=2 * rows)
    interleaved = np.empty(2 * rows, dtype=np.int64)
    interleaved[0::2], interleaved[1::2] = codes[:rows], codes[rows:]
    distinct, first = np.unique(interleaved, return_index=True)
    appearance = np.argsort(first)
    renumber = np.zeros(max(len(index), 1), dtype=np.int64)
    renumber[distinct[appearance]] = np.arange(distinct.size)
    by_code = list(index)
    names = [by_code[code] for code in distinct[appearance].tolist()]
    # A node's region is the same in every row: read it where the node first appears.
    at = first[appearance]
    src_region = edges["src_region"].to_numpy(zero_copy_only=False)
    dst_region = edges["dst_region"].to_numpy(zero_copy_only=False)
    region = {name: str(src_region[p // 2] if p % 2 == 0 else dst_region[p // 2])
              for name, p in zip(names, at.tolist(), strict=True)}
    return names, region, renumber[codes[:rows]], renumber[codes[rows:]]


def topology_figure(edges: pa.Table) -> Figure:
    """Nodes on a circle, grouped by region and coloured by it; lines: mesh links."""
    names, region_of, src, dst = _nodes(edges)
    regions = list(dict.fromkeys(region_of[name] for name in names))
    ordered = sorted(names, key=lambda name: regions.index(region_of[name]))
    angle = {name: 2 * math.pi * i / max(len(ordered), 1) for i, name in enumerate(ordered)}
    xy = {name: (math.cos(a), math.sin(a)) for name, a in angle.items()}
    # Each mesh link once (its first row, either direction), in row order.
    mesh = np.flatnonzero(edges["mesh"].to_numpy(zero_copy_only=False))
    pair = np.minimum(src[mesh], dst[mesh]) * len(names) + np.maximum(src[mesh], dst[mesh])
    _, first = np.unique(pair, return_index=True)
    links = mesh[np.sort(first)]
    x = np.array([xy[name][0] for name in names])
    y = np.array([xy[name][1] for name in names])
    line_x: list[float | None] = [None] * (3 * links.size)
    line_y: list[float | None] = [None] * (3 * links.size)
    line_x[0::3], line_x[1::3] = x[src[links]].tolist(), x[dst[links]].tolist()
    line_y[0::3], line_y[1::3] = y[src[links]].tolist(), y[dst[links]].tolist()
    seen = links.size
    data: list[dict[str, Any]] = [{"type": "scatter", "x": line_x, "y": line_y, "mode": "lines",
                                   "name": f"mesh links ({seen})", "line": {"color": "#bbbbbb", "width": 1},
                                   "hoverinfo": "skip"}]
    for index, region in enumerate(regions):
        members = [name for name in ordered if region_of[name] == region]
        data.append({
            "type": "scatter", "x": [xy[n][0] for n in members], "y": [xy[n][1] for n in members],
            "mode": "markers", "name": region, "text": members, "hovertemplate": "%{text}<extra>" + region + "</extra>",
            "marker": {"size": 9 if len(names) <= 200 else 5, "color": _PALETTE[index % len(_PALETTE)]}})
    layout = {"title": title("Gossip overlay: nodes by region, lines are mesh links", x=0.01), "height": 520,
              "margin": {"l": 20, "r": 20, "t": 60, "b": 20}, "legend": {"orientation": "h", "y": -0.05, "x": 0},
              "showlegend": True, "xaxis": {"visible": False},
              "yaxis": {"visible": False, "scaleanchor": "x", "scaleratio": 1}}
    return figure(data, layout)


def region_path_rows(edges: pa.Table) -> list[dict[str, Any]]:
    """Per (from region, to region): ``direct_ms`` (a direct link's base latency) and the
    shortest path over the mesh in ms, ``mesh_mean_ms`` and ``mesh_max_ms`` over the node
    pairs measured, with ``mesh_hops_max`` links at most; ``unreachable`` pairs have no mesh
    path (their paths leave the mesh). Paths are ``_shortest_paths`` from every source at
    once, in whole nanoseconds."""
    names, region_of, src_all, dst_all = _nodes(edges)
    regions = sorted(set(region_of.values()))
    region = np.array([regions.index(region_of[name]) for name in names], dtype=np.int64)
    pairs = len(regions)
    base_all = edges["base_latency_ns"].to_numpy()
    # A direct link's latency: the first row's of each region pair.
    pair_of = region[src_all] * pairs + region[dst_all]
    pair_codes, first_row = np.unique(pair_of, return_index=True)
    direct = {(regions[code // pairs], regions[code % pairs]): int(base_all[row])
              for code, row in zip(pair_codes.tolist(), first_row.tolist(), strict=True)}
    mesh = edges["mesh"].to_numpy(zero_copy_only=False)
    n = len(names)
    sources = np.arange(0, n, max(1, math.ceil(n / MAX_PATH_SOURCES)))
    best, fewest = _shortest_paths(src_all[mesh], dst_all[mesh], base_all[mesh].astype(np.int64), n,
                                   sources)
    # Every (source, other node) pair at once: its region pair, and whether a path reached it.
    key = (region[sources][:, None] * pairs + region[None, :]).ravel()
    other = (np.arange(n)[None, :] != sources[:, None]).ravel()
    reached_all = best >= 0
    reached = other & reached_all
    length = best[reached]
    steps = fewest[reached]
    count = np.bincount(key[reached], minlength=pairs * pairs)
    total = np.zeros(pairs * pairs, dtype=np.int64)
    np.add.at(total, key[reached], length)
    longest = np.full(pairs * pairs, -1, dtype=np.int64)
    np.maximum.at(longest, key[reached], length)
    hops = np.zeros(pairs * pairs, dtype=np.int64)
    np.maximum.at(hops, key[reached], steps)
    missing = np.bincount(key[other & ~reached_all], minlength=pairs * pairs)
    rows = []
    keys = set(direct) | {(regions[k // pairs], regions[k % pairs]) for k in np.flatnonzero(count + missing).tolist()}
    for from_region, to_region in sorted(keys):
        k = regions.index(from_region) * pairs + regions.index(to_region) if from_region in regions and \
            to_region in regions else -1
        measured = int(count[k]) if k >= 0 else 0
        rows.append({
            "from": from_region, "to": to_region,
            "direct_ms": direct[(from_region, to_region)] / NS_PER_MS if (from_region, to_region) in direct else None,
            "mesh_mean_ms": int(total[k]) / measured / NS_PER_MS if measured else None,
            "mesh_max_ms": int(longest[k]) / NS_PER_MS if measured else None,
            "mesh_hops_max": int(hops[k]) if measured else None,
            "pairs": measured,
            "unreachable": int(missing[k]) if k >= 0 else 0,
        })
    return rows


def _shortest_paths(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n: int,
                    sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From each of ``sources`` (rows) to each of the ``n`` nodes (columns), flattened row by
    row, over the links ``src -> dst`` of ``weight`` (int64, at least 0): the least total
    weight and the fewest links of any path, -1 where there is none.

    Written by hand, not scipy's ``dijkstra``: ``scipy.sparse.csgraph`` imports
    ``scipy.sparse.linalg`` and ``scipy.linalg``, whose import alone costs a run's report more
    than this table of a thousand-node overlay. Every source at once, a round a few array
    operations: the sums in label-correcting rounds, each relaxing the links out of the
    waiting (source, node) pairs within a mean link weight of the nearest waiting one
    (delta-stepping, Meyer and Sanders), so that few pairs are relaxed from twice; the links
    in breadth-first rounds. Sums stay whole nanoseconds, exact in int64.
    ``tests/test_report_topology.py`` checks both against a plain Dijkstra and against
    scipy's on random overlays."""
    order = np.argsort(src, kind="stable")
    links = _Links(np.searchsorted(src[order], np.arange(n + 1)), dst[order], n)
    start = np.arange(sources.size) * n + sources
    return _least_sums(links, weight[order], start), _fewest_links(links, start)


@dataclass(frozen=True)
class _Links:
    """The links by the node they leave: node u's are ``first[u]:first[u + 1]`` of ``to``."""

    first: np.ndarray
    to: np.ndarray
    n: int

    def out_of(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each link out of each (row, node) pair (flat: row * n + node): the position of
        its pair in ``pairs``, the link's index, and the (row, node it reaches) pair."""
        node = pairs % self.n
        count = self.first[node + 1] - self.first[node]
        owner = np.repeat(np.arange(pairs.size), count)
        # Each pair's links: a run of consecutive link indices from its node's first.
        before = np.cumsum(count) - count
        link = np.arange(owner.size) + np.repeat(self.first[node] - before, count)
        return owner, link, (pairs - node)[owner] + self.to[link]


def _least_sums(links: _Links, cost: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The least sum of ``cost`` (one per link) over a path from each row's start
    (``start``: flat indices row * n + node) to each node, flattened; -1 where no path."""
    unreached = np.iinfo(np.int64).max
    best = np.full(start.size * links.n, unreached, dtype=np.int64)
    best[start] = 0
    # Pairs improved and not yet relaxed from; each round relaxes those within ``step`` of the
    # nearest, so a pair is seldom relaxed from again with a shorter sum.
    pending = np.zeros(best.size, dtype=bool)
    pending[start] = True
    step = max(int(cost.mean()) if cost.size else 1, 1)
    waiting = start
    while waiting.size:
        reach_so_far = best[waiting]
        nearest = waiting[reach_so_far <= reach_so_far.min() + step]
        pending[nearest] = False
        owner, link, pair = links.out_of(nearest)
        reach = best[nearest][owner] + cost[link]
        shorter = reach < best[pair]
        pair, reach = pair[shorter], reach[shorter]
        np.minimum.at(best, pair, reach)
        pending[pair] = True
        waiting = np.flatnonzero(pending)
    best[best == unreached] = -1
    return best


def _fewest_links(links: _Links, start: np.ndarray) -> np.ndarray:
    """The fewest links of a path from each row's start (as ``_least_sums``) to each node,
    flattened; -1 where no path. Round k reaches the pairs k links away."""
    fewest = np.full(start.size * links.n, -1, dtype=np.int64)
    fewest[start] = 0
    reached_now = np.zeros(fewest.size, dtype=bool)
    frontier, hops = start, 0
    while frontier.size:
        hops += 1
        pair = links.out_of(frontier)[2]
        pair = pair[fewest[pair] < 0]
        fewest[pair] = hops
        reached_now[pair] = True
        frontier = np.flatnonzero(reached_now)
        reached_now[frontier] = False
    return fewest
