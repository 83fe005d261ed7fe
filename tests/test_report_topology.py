"""The run report's region path table (report/topology.py) against paths worked by hand and
a plain Dijkstra on random overlays."""

from __future__ import annotations

import heapq
import random
from collections import defaultdict

import numpy as np
import pyarrow as pa

from msgstorm.report.topology import _shortest_paths, region_path_rows

MS = 1_000_000


def _edges(rows: list[tuple[str, str, str, str, int, bool]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.table({name: list(values) for name, values in zip(
        ("src", "dst", "src_region", "dst_region", "base_latency_ns", "mesh"), columns, strict=True)})


def test_paths_between_regions_worked_by_hand() -> None:
    """a0 -> a1 (1 ms) -> b0 (10 ms); a direct a0 -> b0 link of 50 ms is not in the mesh; a
    second copy of a1 -> b0 at 30 ms counts as the lighter one only; b0 reaches nothing."""
    rows = region_path_rows(_edges([
        ("a0", "a1", "a", "a", 1 * MS, True), ("a1", "b0", "a", "b", 10 * MS, True),
        ("a1", "b0", "a", "b", 30 * MS, True), ("a0", "b0", "a", "b", 50 * MS, False)]))
    by_pair = {(row["from"], row["to"]): row for row in rows}
    # Sources: every node (three, under MAX_PATH_SOURCES). From a0: a1 at 1 ms, b0 at 11 ms
    # (2 links); from a1: a0 unreachable, b0 at 10 ms; from b0: nothing.
    assert by_pair[("a", "a")] == {"from": "a", "to": "a", "direct_ms": 1.0, "mesh_mean_ms": 1.0, "mesh_max_ms": 1.0,
                                   "mesh_hops_max": 1, "pairs": 1, "unreachable": 1}
    assert by_pair[("a", "b")] == {"from": "a", "to": "b", "direct_ms": 10.0, "mesh_mean_ms": 10.5,
                                   "mesh_max_ms": 11.0, "mesh_hops_max": 2, "pairs": 2, "unreachable": 0}
    assert by_pair[("b", "a")]["pairs"] == 0 and by_pair[("b", "a")]["unreachable"] == 2


def _reference(edges: pa.Table) -> dict[tuple[str, str], tuple[int, int, int, int, int]]:
    """(pairs, total ns, longest ns, most hops, unreachable) per region pair, every node a source."""
    rows = edges.to_pylist()
    region = {}
    adjacency: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for row in rows:
        region.setdefault(row["src"], row["src_region"])
        region.setdefault(row["dst"], row["dst_region"])
        if row["mesh"]:
            adjacency[row["src"]].append((row["dst"], row["base_latency_ns"]))

    def shortest(source: str, unit: bool) -> dict[str, int]:
        best, queue = {source: 0}, [(0, source)]
        while queue:
            d, node = heapq.heappop(queue)
            if d > best[node]:
                continue
            for peer, w in adjacency[node]:
                step = 1 if unit else w
                if d + step < best.get(peer, 1 << 62):
                    best[peer] = d + step
                    heapq.heappush(queue, (d + step, peer))
        return best

    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, -1, 0, 0])
    for source in region:
        best, fewest = shortest(source, False), shortest(source, True)
        for target in region:
            if target == source:
                continue
            entry = out[(region[source], region[target])]
            if target in best:
                entry[0] += 1
                entry[1] += best[target]
                entry[2] = max(entry[2], best[target])
                entry[3] = max(entry[3], fewest[target])
            else:
                entry[4] += 1
    return {key: (v[0], v[1], v[2], v[3], v[4]) for key, v in out.items()}


def test_random_overlays_agree_with_a_plain_dijkstra() -> None:
    rng = random.Random(7)
    for _ in range(150):
        n = rng.randint(2, 25)
        region = {f"n{i}": rng.choice("abc") for i in range(n)}
        rows = []
        for _ in range(rng.randint(1, 70)):
            src, dst = f"n{rng.randrange(n)}", f"n{rng.randrange(n)}"
            rows.append((src, dst, region[src], region[dst], rng.choice([0, 1, 7 * MS, rng.randrange(10**9)]),
                         rng.random() < 0.7))
        edges = _edges(rows)
        expected = _reference(edges)
        for row in region_path_rows(edges):
            pairs, total, longest, hops, unreachable = expected.get((row["from"], row["to"]), (0, 0, -1, 0, 0))
            assert (row["pairs"], row["unreachable"]) == (pairs, unreachable)
            if pairs:
                assert row["mesh_mean_ms"] == total / pairs / MS and row["mesh_max_ms"] == longest / MS
                assert row["mesh_hops_max"] == hops


def test_shortest_paths_agree_with_scipy_on_larger_random_overlays() -> None:
    """The hand-written label-correcting paths (``_shortest_paths``) give scipy's Dijkstra's
    sums and hop counts exactly, on overlays with repeated links, self-links, zero weights
    and unreachable nodes."""
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import dijkstra

    rng = np.random.default_rng(11)
    for _ in range(20):
        n = int(rng.integers(2, 400))
        links = int(rng.integers(0, 6 * n))
        src, dst = rng.integers(0, n, links), rng.integers(0, n, links)
        weight = np.where(rng.random(links) < 0.1, 0, rng.integers(1, 200 * MS, links)).astype(np.int64)
        sources = np.arange(0, n, max(1, n // 64))
        best, fewest = _shortest_paths(src, dst, weight, n, sources)
        order = np.lexsort((weight, dst, src))  # scipy's matrix adds repeated links: the lightest only
        keep = order[np.r_[True, (np.diff(src[order]) != 0) | (np.diff(dst[order]) != 0)]] if links else order
        graph = csr_array((weight[keep].astype(np.float64), (src[keep], dst[keep])), shape=(n, n))
        expected = dijkstra(graph, directed=True, indices=sources).ravel()
        expected_hops = dijkstra(graph, directed=True, indices=sources, unweighted=True).ravel()
        assert np.array_equal(best, np.where(np.isfinite(expected), expected, -1).astype(np.int64))
        assert np.array_equal(fewest, np.where(np.isfinite(expected_hops), expected_hops, -1).astype(np.int64))
