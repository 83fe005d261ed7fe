"""Gossip propagation per region: how long a message takes to reach each node.

Place in the pipeline: joins ``deliveries`` (first delivery of a message at a node, maybe
sampled) with ``messages`` on msg_id; propagation time is ``t_delivered - t_sent`` of the
message, grouped by the receiving node's region (``History.nodes``; nodes not listed there
fall under "unknown"). Every delivery row counts, including the origin node's own.
Deliveries of messages without ``t_sent`` (or unknown msg_ids) are skipped.
"""

from __future__ import annotations

import numpy as np

from msgstorm.analysis._common import MessageArrays, message_rows, ms, percentiles
from msgstorm.history.reader import History

__all__ = ["propagation_by_region_ms"]

UNKNOWN_REGION = "unknown"


def propagation_by_region_ms(
    history: History, messages: MessageArrays | None = None
) -> dict[str, dict[str, float | int | None]]:
    """{region: {p50, p90, p99 (ms), count}} sorted by region name; {} without deliveries."""
    messages = messages if messages is not None else MessageArrays.from_history(history)
    if history.num_rows("deliveries") == 0 or messages.count == 0:
        return {}
    msg_id = messages.msg_id  # first: the metric before this one read it (see History.ints)
    delivered_id = history.ints("deliveries", "msg_id")[0]
    t_delivered = history.ints("deliveries", "t_delivered")[0]
    t_sent = messages.t_sent
    if (delivered_id.shape == msg_id.shape and bool(np.all(msg_id[1:] > msg_id[:-1]))
            and np.array_equal(delivered_id, msg_id)):
        # A delivery row per message in the messages' order (a one-node run), ids distinct
        # (a repeated id is looked up to one row of it, as the general path does): no lookup.
        known = t_sent.present.copy()
        propagation = t_delivered - t_sent.values
    else:
        row, known = message_rows(msg_id, delivered_id)
        known &= t_sent.present[row]
        propagation = t_delivered - t_sent.values[row]
        del row
    del msg_id, delivered_id, t_sent, t_delivered

    region_of = {node["name"]: node.get("region", UNKNOWN_REGION) for node in history.nodes}
    codes, names = history.codes("deliveries", "node")
    regions = sorted({region_of.get(name, UNKNOWN_REGION) for name in names})
    region_code = np.array([regions.index(region_of.get(name, UNKNOWN_REGION)) for name in names], dtype=np.int32)
    delivery_region = region_code[codes] if len(regions) > 1 else None  # one region: every row is in it
    del codes

    result: dict[str, dict[str, float | int | None]] = {}
    for code, region in enumerate(regions):
        if delivery_region is not None:
            values = propagation[known & (delivery_region == code)]
        elif known.all():
            values = propagation  # every row, and this function's own array (its last use)
        else:
            values = propagation[known]
        if values.size == 0:
            continue
        p50, p90, p99 = percentiles(values, (50.0, 90.0, 99.0), scratch=True)  # values: a copy, or the last use
        result[region] = {"p50": ms(p50), "p90": ms(p90), "p99": ms(p99), "count": int(values.size)}
    return result
