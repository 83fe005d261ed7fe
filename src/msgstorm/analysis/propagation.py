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

from msgstorm.analysis._common import MessageArrays, ms, percentile
from msgstorm.history.reader import History

__all__ = ["propagation_by_region_ms"]

UNKNOWN_REGION = "unknown"


def propagation_by_region_ms(
    history: History, messages: MessageArrays | None = None
) -> dict[str, dict[str, float | int | None]]:
    """{region: {p50, p90, p99 (ms), count}} sorted by region name; {} without deliveries."""
    messages = messages if messages is not None else MessageArrays.from_history(history)
    deliveries = history.deliveries
    if deliveries.num_rows == 0 or messages.count == 0:
        return {}
    delivered_id = np.asarray(deliveries.column("msg_id").to_numpy(), dtype=np.int64)
    t_delivered = np.asarray(deliveries.column("t_delivered").to_numpy(), dtype=np.int64)
    order = np.argsort(messages.msg_id, kind="stable")
    sorted_ids = messages.msg_id[order]
    position = np.minimum(np.searchsorted(sorted_ids, delivered_id), len(sorted_ids) - 1)
    row = order[position]
    known = (sorted_ids[position] == delivered_id) & messages.t_sent.present[row]
    propagation = t_delivered - messages.t_sent.values[row]

    region_of = {node["name"]: node.get("region", UNKNOWN_REGION) for node in history.nodes}
    node_codes = deliveries.column("node").combine_chunks().dictionary_encode()
    assert isinstance(node_codes, pa.DictionaryArray)
    names = node_codes.dictionary.to_pylist()
    regions = sorted({region_of.get(name, UNKNOWN_REGION) for name in names})
    region_code = np.array([regions.index(region_of.get(name, UNKNOWN_REGION)) for name in names])
    delivery_region = region_code[np.asarray(node_codes.indices.to_numpy(zero_copy_only=False))]

    result: dict[str, dict[str, float | int | None]] = {}
    for code, region in enumerate(regions):
        values = propagation[known & (delivery_region == code)]
        if values.size == 0:
            continue
        result[region] = {
            "p50": ms(percentile(values, 50.0)),
            "p90": ms(percentile(values, 90.0)),
            "p99": ms(percentile(values, 99.0)),
            "count": int(values.size),
        }
    return result
