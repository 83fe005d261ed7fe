"""The overlay in the run report: a topology view and what paths cost between regions.

Place in the pipeline: history ``edges`` table -> **topology** -> html. The view places each
region's nodes on an arc of their own around a circle, draws the gossip mesh's links and
colours nodes by region. The table compares, per region pair, the base one-way latency of
a direct link with the shortest path over the mesh (sum of base latencies, Dijkstra): a
pair whose mesh path is much longer than a direct link explains a propagation time that
would otherwise look like a bug. Both read only the ``edges`` table.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from typing import Any

import pyarrow as pa

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


def _shortest(adjacency: dict[str, list[tuple[str, int]]], source: str) -> dict[str, int]:
    best = {source: 0}
    queue = [(0, source)]
    while queue:
        d, node = heapq.heappop(queue)
        if d > best[node]:
            continue
        for peer, w in adjacency[node]:
            if d + w < best.get(peer, 1 << 62):
                best[peer] = d + w
                heapq.heappush(queue, (d + w, peer))
    return best


def region_path_rows(edges: pa.Table) -> list[dict[str, Any]]:
    """Per (from region, to region): ``direct_ms`` (a direct link's base latency) and the
    shortest path over the mesh in ms, ``mesh_mean_ms`` and ``mesh_max_ms`` over the node
    pairs measured, with ``mesh_hops_max`` links at most; ``unreachable`` pairs have no mesh
    path (their paths leave the mesh)."""
    names, region_of = _nodes(edges)
    adjacency: dict[str, list[tuple[str, int]]] = defaultdict(list)
    hops_adjacency: dict[str, list[tuple[str, int]]] = defaultdict(list)
    direct: dict[tuple[str, str], int] = {}
    for src, dst, rs, rd, base, mesh in zip(*(edges[c].to_pylist() for c in (
            "src", "dst", "src_region", "dst_region", "base_latency_ns", "mesh"))):
        direct.setdefault((rs, rd), base)
        if mesh:
            adjacency[src].append((dst, base))
            hops_adjacency[src].append((dst, 1))
    step = max(1, math.ceil(len(names) / MAX_PATH_SOURCES))
    paths: dict[tuple[str, str], list[int]] = defaultdict(list)
    hops: dict[tuple[str, str], int] = defaultdict(int)
    unreachable: dict[tuple[str, str], int] = defaultdict(int)
    for source in names[::step]:
        best = _shortest(adjacency, source)
        fewest = _shortest(hops_adjacency, source)
        for target in names:
            if target == source:
                continue
            key = (region_of[source], region_of[target])
            if target in best:
                paths[key].append(best[target])
                hops[key] = max(hops[key], fewest[target])
            else:
                unreachable[key] += 1
    rows = []
    for key in sorted(set(direct) | set(paths) | set(unreachable)):
        measured = paths.get(key, [])
        rows.append({
            "from": key[0], "to": key[1],
            "direct_ms": direct[key] / NS_PER_MS if key in direct else None,
            "mesh_mean_ms": sum(measured) / len(measured) / NS_PER_MS if measured else None,
            "mesh_max_ms": max(measured) / NS_PER_MS if measured else None,
            "mesh_hops_max": hops.get(key) if measured else None,
            "pairs": len(measured),
            "unreachable": unreachable.get(key, 0),
        })
    return rows
