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
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra

from msgstorm.report.plotspec import Figure, figure, title

__all__ = ["MAX_PATH_SOURCES", "region_path_rows", "topology_figure"]

NS_PER_MS = 1e6
# Shortest paths are computed from at most this many source nodes (evenly spread over the
# node list), so a thousand-node overlay costs a fraction of a second.
MAX_PATH_SOURCES = 64
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")


def _nodes(edges: pa.Table) -> tuple[list[str], dict[str, str]]:
    region: dict[str, str] = {}
    for src, dst, rs, rd in zip(edges["src"].to_pylist(), edges["dst"].to_pylist(),
                                edges["src_region"].to_pylist(), edges["dst_region"].to_pylist()):
        region.setdefault(src, rs)
        region.setdefault(dst, rd)
    return list(region), region


def topology_figure(edges: pa.Table) -> Figure:
    """Nodes on a circle, grouped by region and coloured by it; lines: mesh links."""
    names, region_of = _nodes(edges)
    regions = list(dict.fromkeys(region_of[name] for name in names))
    ordered = sorted(names, key=lambda name: regions.index(region_of[name]))
    angle = {name: 2 * math.pi * i / max(len(ordered), 1) for i, name in enumerate(ordered)}
    xy = {name: (math.cos(a), math.sin(a)) for name, a in angle.items()}
    line_x: list[float | None] = []
    line_y: list[float | None] = []
    seen: set[tuple[str, str]] = set()
    for src, dst, mesh in zip(edges["src"].to_pylist(), edges["dst"].to_pylist(), edges["mesh"].to_pylist()):
        pair = (min(src, dst), max(src, dst))
        if not mesh or pair in seen:
            continue
        seen.add(pair)
        line_x += [xy[src][0], xy[dst][0], None]
        line_y += [xy[src][1], xy[dst][1], None]
    data: list[dict[str, Any]] = [{"type": "scatter", "x": line_x, "y": line_y, "mode": "lines",
                                   "name": f"mesh links ({len(seen)})", "line": {"color": "#bbbbbb", "width": 1},
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
    path (their paths leave the mesh). Paths are scipy's Dijkstra from every source at once
    (a Python heap took two minutes on a 6,000-node overlay); latencies are whole
    nanoseconds, so float64 sums of them stay exact."""
    names, region_of = _nodes(edges)
    index = {name: i for i, name in enumerate(names)}
    regions = sorted(set(region_of.values()))
    region = np.array([regions.index(region_of[name]) for name in names], dtype=np.int64)
    direct: dict[tuple[str, str], int] = {}
    src, dst, weight = [], [], []
    for s, d, rs, rd, base, mesh in zip(*(edges[c].to_pylist() for c in (
            "src", "dst", "src_region", "dst_region", "base_latency_ns", "mesh"))):
        direct.setdefault((rs, rd), base)
        if mesh:
            src.append(index[s])
            dst.append(index[d])
            weight.append(base)
    n = len(names)
    sources = np.arange(0, n, max(1, math.ceil(n / MAX_PATH_SOURCES)))
    if src:
        # A sparse matrix adds up repeated entries: keep each link's lightest copy only.
        s_arr, d_arr, w_arr = np.array(src), np.array(dst), np.array(weight, dtype=np.int64)
        order = np.lexsort((w_arr, d_arr, s_arr))
        first = np.r_[True, (np.diff(s_arr[order]) != 0) | (np.diff(d_arr[order]) != 0)]
        keep = order[first]
        graph = csr_array((w_arr[keep].astype(np.float64), (s_arr[keep], d_arr[keep])), shape=(n, n))
        best = dijkstra(graph, directed=True, indices=sources)
        fewest = dijkstra(graph, directed=True, indices=sources, unweighted=True)
    else:
        best = np.full((sources.size, n), np.inf)
        fewest = best
    pairs = len(regions)
    count = np.zeros(pairs * pairs, dtype=np.int64)
    total = np.zeros(pairs * pairs, dtype=np.int64)
    longest = np.full(pairs * pairs, -1, dtype=np.int64)
    hops = np.zeros(pairs * pairs, dtype=np.int64)
    missing = np.zeros(pairs * pairs, dtype=np.int64)
    for row, source in enumerate(sources.tolist()):
        others = np.arange(n) != source
        key = region[source] * pairs + region[others]
        reached = np.isfinite(best[row][others])
        length = np.where(reached, best[row][others], 0).astype(np.int64)
        steps = np.where(reached, fewest[row][others], 0).astype(np.int64)
        np.add.at(count, key[reached], 1)
        np.add.at(total, key[reached], length[reached])
        np.maximum.at(longest, key[reached], length[reached])
        np.maximum.at(hops, key[reached], steps[reached])
        np.add.at(missing, key[~reached], 1)
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
