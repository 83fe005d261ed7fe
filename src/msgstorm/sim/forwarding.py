"""The forwarding graph in the gossip kernel's columns: each node's forwarding peers in
CSR form (``ptr``, ``idx``) with each edge's base delay and link model.

Place in the pipeline: inside the simulator, between the overlay (``sim/topology.py``) and
the gossip state (``sim/gossip.py``), which hands these columns to the kernel and builds
them again when an eclipse rewires a node (``GossipState.surround``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from msgstorm.sim.link_model import model_code
from msgstorm.sim.topology import Topology

__all__ = ["ForwardingColumns", "forwarding_columns"]


@dataclass(frozen=True)
class ForwardingColumns:
    """Node i forwards to ``idx[ptr[i]:ptr[i + 1]]``; edge e's base delay (ns), link model
    code and parameter; and the most heap entries one event can add (``max_degree``: the
    largest out- or in-degree)."""

    ptr: np.ndarray
    idx: np.ndarray
    base: np.ndarray
    model: np.ndarray
    param: np.ndarray
    max_degree: int


def forwarding_columns(topology: Topology, forward: list[list[int]]) -> ForwardingColumns:
    """The columns of ``forward``: a region pair's link worked out once (a 6,000-node
    overlay has 100,000 edges and 36 pairs), a node pair's override for its edge, in edge
    order (an empirical model takes its place in the link samples when first met), and the
    columns filled with numpy."""
    n = len(forward)
    counts = np.fromiter(map(len, forward), dtype=np.int64, count=n)
    dst = np.fromiter(chain.from_iterable(forward), dtype=np.int64, count=int(counts.sum()))
    src = np.repeat(np.arange(n, dtype=np.int64), counts)
    region_of = np.asarray(topology.region_of, dtype=np.int64)
    regions = len(topology.regions)
    pair = region_of[src] * regions + region_of[dst]
    overrides = topology.node_overrides
    overridden = (np.fromiter((edge in overrides for edge in zip(src.tolist(), dst.tolist(), strict=True)),
                              dtype=bool, count=dst.size) if overrides else np.zeros(dst.size, dtype=bool))
    plain = np.flatnonzero(~overridden)
    _, first = np.unique(pair[plain], return_index=True)
    # Where a link is worked out, in edge order: each pair's first plain edge, every override.
    firsts = np.sort(np.concatenate([plain[first], np.flatnonzero(overridden)]))
    base = np.zeros(dst.size, dtype=np.int64)
    model = np.zeros(dst.size, dtype=np.int64)
    param = np.zeros(dst.size, dtype=np.float64)
    pair_base = np.zeros(regions * regions, dtype=np.int64)
    pair_model = np.zeros(regions * regions, dtype=np.int64)
    pair_param = np.zeros(regions * regions, dtype=np.float64)
    for e in firsts.tolist():
        if overridden[e]:
            delay, spec = overrides[(int(src[e]), int(dst[e]))]
            base[e] = delay
            model[e], param[e] = model_code(spec, topology.link_samples)
        else:
            a, b = divmod(int(pair[e]), regions)
            pair_base[pair[e]] = topology.base_ns[a][b]
            pair_model[pair[e]], pair_param[pair[e]] = model_code(topology.region_model[a][b],
                                                                  topology.link_samples)
    plain_pair = pair[plain]
    base[plain], model[plain], param[plain] = pair_base[plain_pair], pair_model[plain_pair], pair_param[plain_pair]
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    max_degree = int(max(counts.max(initial=0), np.bincount(dst, minlength=n).max(initial=0)))
    return ForwardingColumns(ptr, dst, base, model, param, max_degree)
