"""Gossip propagation per region: how long a message takes to reach each node.

Place in the pipeline: joins ``deliveries`` (first delivery of a message at a node, maybe
sampled) with ``messages`` on msg_id; propagation time is ``t_delivered - t_sent`` of the
message, grouped by the receiving node's region (``History.nodes``; nodes not listed there
fall under "unknown"). Every delivery row counts, including the origin node's own.
Deliveries of messages without ``t_sent`` (or unknown msg_ids) are skipped.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import MessageArrays, RowLookup, ms, percentiles
from msgstorm.history.reader import History

__all__ = ["propagation_by_region_ms"]

UNKNOWN_REGION = "unknown"


def propagation_by_region_ms(
    history: History, messages: MessageArrays | None = None
) -> dict[str, dict[str, float | int | None]]:
    """{region: {p50, p90, p99 (ms), count}} sorted by region name; {} without deliveries."""
    messages = messages if messages is not None else MessageArrays.from_history(history)
    rows = history.num_rows("deliveries")
    if rows == 0 or messages.count == 0:
        return {}
    lookup = RowLookup(messages.msg_id)
    t_sent = messages.t_sent
    region_of = {node["name"]: node.get("region", UNKNOWN_REGION) for node in history.nodes}
    regions: list[str] = []
    # One pass over the deliveries parts: each row's propagation and region, kept for the
    # rows whose message was sent (9 bytes a row), never the whole table's columns at once.
    propagation = np.empty(rows, dtype=np.int64)
    region = np.empty(rows, dtype=np.int16)
    kept = 0
    for part in history.parts("deliveries", ["msg_id", "node", "t_delivered"]):
        if part.num_rows == 0:
            continue
        row, known = lookup.rows(np.asarray(part.column("msg_id").to_numpy(), dtype=np.int64))
        known &= t_sent.present[row]
        node = part.column("node").combine_chunks()
        if not pa.types.is_dictionary(node.type):
            node = node.dictionary_encode()
        code = np.array([_region_index(regions, region_of.get(str(name), UNKNOWN_REGION))
                         for name in node.dictionary.to_pylist()] or [0], dtype=np.int16)
        count = int(known.sum())
        t_delivered = np.asarray(part.column("t_delivered").to_numpy(), dtype=np.int64)[known]
        propagation[kept:kept + count] = t_delivered - t_sent.values[row[known]]
        region[kept:kept + count] = code[np.asarray(node.indices.to_numpy(), dtype=np.int64)[known]]
        kept += count
        del row, known, t_delivered
    propagation, region = propagation[:kept], region[:kept]

    result: dict[str, dict[str, float | int | None]] = {}
    for index, name in sorted(enumerate(regions), key=lambda pair: pair[1]):
        values = propagation if len(regions) == 1 else propagation[region == index]  # one region: every row, its last use
        if values.size == 0:
            continue
        p50, p90, p99 = percentiles(values, (50.0, 90.0, 99.0), scratch=True)  # values: a copy, or the last use
        result[name] = {"p50": ms(p50), "p90": ms(p90), "p99": ms(p99), "count": int(values.size)}
    return result


def _region_index(regions: list[str], region: str) -> int:
    """The index of ``region`` in ``regions``, added at the end when new."""
    if region not in regions:
        regions.append(region)
    return regions.index(region)
