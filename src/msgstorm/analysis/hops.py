"""The latency split per hop: where a relayed item's time goes on its way to each node.

Place in the pipeline: analysis, read by ``analysis/summary.py`` as summary.json's
``hop_split`` (absent when the history has no ``hop_stages`` rows: a live run, or a sim run
whose ``[network.relay]`` pushes everything). It reads only that table: each hop's
announcement, request, transfer and validation (``sim/hop_stages.py`` says where each
begins and ends), and sums them along each node's path from the item's origin (a node's
path is its sender's path and its own hop; the origin's is its validation), so that a
path's four stages add up to the item's arrival at that node after its making (blocks) or
its sending (messages). For blocks and for messages apart:

- ``items``, ``arrivals`` (an item at a node other than its origin) and ``hops`` (p50, max);
- ``path_ms``: each stage's mean over the arrivals of its sum along the path, and ``total``
  (means add up, so the stages sum to the total);
- ``median_node_ms``: the same along the path to each item's median node (nearest rank by
  its arrival), as the mean over the items;
- ``hop_ms``: each stage's mean over the hops (origins aside).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import ms, percentiles
from msgstorm.history.reader import History
from msgstorm.progress import nearest_rank_index

__all__ = ["HOP_SPLIT_PATHS", "HOP_STAGES", "hop_split", "path_stages_ns"]

HOP_STAGES = ("announce", "request", "transfer", "validation")
# The means ``hop_split`` gives for blocks and messages, and how the reports name them.
HOP_SPLIT_PATHS = (("path_ms", "to a node"), ("median_node_ms", "to the median node"), ("hop_ms", "one hop"))


def path_stages_ns(item: np.ndarray, node: np.ndarray, sender: np.ndarray, hops: np.ndarray,
                   stages: np.ndarray) -> np.ndarray:
    """Each row's stages summed along its path: ``stages`` int64[4, n] of each hop, nodes as
    codes (``sender`` -1 at the origin). A row whose sender's row is missing gets -1s."""
    width = int(max(node.max(initial=0), sender.max(initial=0))) + 1
    key = item * width + node
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    path = np.full_like(stages, -1)
    origin = hops == 0
    path[:, origin] = stages[:, origin]
    for level in range(1, int(hops.max(initial=0)) + 1):
        rows = np.flatnonzero(hops == level)
        parent_key = item[rows] * width + sender[rows]
        at = np.minimum(np.searchsorted(sorted_key, parent_key), sorted_key.size - 1)
        found = (sorted_key[at] == parent_key) & (sender[rows] >= 0)
        parent = order[at[found]]
        known = path[0, parent] >= 0
        rows, parent = rows[found][known], parent[known]
        path[:, rows] = path[:, parent] + stages[:, rows]
    return path


def hop_split(history: History) -> dict[str, Any] | None:
    """summary.json's ``hop_split``; None without ``hop_stages`` rows."""
    if history.num_rows("hop_stages") == 0:
        return None
    # Names as integer codes (History.codes): a byte or two a row, not a string.
    kind_codes, kinds = history.codes("hop_stages", "kind")
    kind = np.asarray(kinds, dtype=object)[kind_codes] if kinds else np.zeros(0, dtype=object)
    node, names = history.codes("hop_stages", "node")
    code_of = {name: i for i, name in enumerate(names)}
    # The senders (null at an origin) part by part, as the parts store them: dictionaries.
    senders = []
    names_seen: pa.Array | None = None  # the last part's dictionary, and its codes
    sender_code = np.full(1, -1, dtype=np.int64)
    for part in history.parts("hop_stages", ["sender"]):
        column = part.column("sender").combine_chunks()
        if not pa.types.is_dictionary(column.type):  # a history held in memory
            column = column.dictionary_encode()
        if names_seen is None or not column.dictionary.equals(names_seen):  # parts mostly share one
            names_seen = column.dictionary
            sender_code = np.array([code_of.get(str(name), -1) for name in names_seen.to_pylist()] + [-1],
                                   dtype=np.int64)
        senders.append(sender_code[_codes_or(column.indices, len(column.dictionary))])
    sender = np.concatenate(senders) if senders else np.zeros(0, dtype=np.int64)
    node = np.asarray(node, dtype=np.int64)
    table = history.columns("hop_stages", ["item", "hops", *(f"{name}_ns" for name in HOP_STAGES)])
    item = table.column("item").to_numpy()
    hops = table.column("hops").to_numpy().astype(np.int64)
    stages = np.stack([table.column(f"{name}_ns").to_numpy() for name in HOP_STAGES])
    result: dict[str, Any] = {}
    for label in ("block", "message"):
        rows = np.flatnonzero(kind == label)
        if rows.size:
            result[label] = _split(item[rows], path_stages_ns(item[rows], node[rows], sender[rows], hops[rows],
                                                              stages[:, rows]), hops[rows], stages[:, rows])
    return result


def _codes_or(indices: pa.Array, missing: int) -> np.ndarray:
    """A dictionary array's indices as int64, ``missing`` where null. With numpy, not
    ``pyarrow.compute.fill_null``: importing that module costs a run about 0.15 s."""
    if not indices.null_count:
        return np.asarray(indices.to_numpy(), dtype=np.int64)
    values = indices.to_numpy(zero_copy_only=False)  # float64, NaN where null (indices < 2**31: exact)
    return np.where(np.isnan(values), missing, values).astype(np.int64)


def _split(item: np.ndarray, path: np.ndarray, hops: np.ndarray, stages: np.ndarray) -> dict[str, Any]:
    arrived = (hops > 0) & (path[0] >= 0)
    paths = path[:, arrived]
    total = paths.sum(axis=0)
    p50, = percentiles(hops[arrived], (50,)) if arrived.any() else (None,)
    # The median node of each item: nearest rank by its arrival.
    by = np.lexsort((total, item[arrived]))
    items = item[arrived][by]
    starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]]) if items.size else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], items.size] if items.size else starts
    median = by[[start + nearest_rank_index(int(end - start), 50)
                 for start, end in zip(starts.tolist(), ends.tolist(), strict=True)]]
    hop_rows = hops > 0
    return {
        "items": int(np.unique(item).size),
        "arrivals": int(arrived.sum()),
        "hops": {"p50": None if p50 is None else int(p50), "max": int(hops.max(initial=0))},
        "path_ms": _means(paths),
        "median_node_ms": _means(paths[:, median]),
        "hop_ms": _means(stages[:, hop_rows]),
    }


def _means(stages: np.ndarray) -> dict[str, float | None]:
    """Each stage's mean (ms) over the columns of int64[4, n], and their total's."""
    if stages.shape[1] == 0:
        return {name: None for name in (*HOP_STAGES, "total")}
    means = stages.mean(axis=1)
    return {**{name: ms(float(mean)) for name, mean in zip(HOP_STAGES, means.tolist(), strict=True)},
            "total": ms(float(stages.sum(axis=0).mean()))}
