"""Gossip propagation per region: how long a message takes to reach each node.

Place in the pipeline: joins ``deliveries`` (first delivery of a message at a node, maybe
sampled) with ``messages`` on msg_id; propagation time is ``t_delivered - t_sent`` of the
message, grouped by the receiving node's region (``History.nodes``; nodes not listed there
fall under "unknown"). Every delivery row counts, including the origin node's own.
Deliveries of messages without ``t_sent`` (or unknown msg_ids) are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from msgstorm.analysis._common import I64, MessageArrays, RowLookup, ms, percentiles
from msgstorm.history.reader import History

__all__ = ["joined_propagation", "propagation_by_region_ms"]

UNKNOWN_REGION = "unknown"


def propagation_by_region_ms(
    history: History, messages: MessageArrays | None = None
) -> dict[str, dict[str, float | int | None]]:
    """{region: {p50, p90, p99 (ms), count}} sorted by region name; {} without deliveries."""
    messages = messages if messages is not None else MessageArrays.from_history(history)
    rows = history.num_rows("deliveries")
    if rows == 0 or messages.count == 0:
        return {}
    region_of = {node["name"]: node.get("region", UNKNOWN_REGION) for node in history.nodes}
    regions: list[str] = []
    # The lookup first, then t_sent: msg_id is let go once the lookup is made (a simulator's
    # rows are their ids: nothing of it is kept), not held beside the sent times.
    lookup = RowLookup(messages.msg_id)
    sent = messages.t_sent  # one read: asked for twice, its values would be read again beside the first
    propagation, region = joined_propagation(
        history, lookup, sent.values, sent.present,
        lambda name: _region_index(regions, region_of.get(name, UNKNOWN_REGION)))
    del sent
    result: dict[str, dict[str, float | int | None]] = {}
    for index, name in sorted(enumerate(regions), key=lambda pair: pair[1]):
        values = propagation if len(regions) == 1 else propagation[region == index]  # one region: every row, its last use
        if values.size == 0:
            continue
        p50, p90, p99 = percentiles(values, (50.0, 90.0, 99.0), scratch=True)  # values: a copy, or the last use
        result[name] = {"p50": ms(p50), "p90": ms(p90), "p99": ms(p99), "count": int(values.size)}
    return result


def joined_propagation(history: History, msg_id: I64 | RowLookup, t_sent: I64, sent: npt.NDArray[np.bool_],
                       group_of: Callable[[str], int],
                       origin_group: npt.NDArray[np.integer[Any]] | None = None,
                       groups: int = 0) -> tuple[I64, npt.NDArray[np.int32]]:
    """Each delivery's ``t_delivered - t_sent`` of its message, for deliveries of messages
    that were sent (unknown ids and unsent messages skipped), in row order, and its group:
    ``group_of(receiving node)``, or with ``origin_group`` (a group per message row)
    ``origin_group[message] * groups + group_of(receiving node)``.

    ``msg_id``: the messages' ids, or a ``RowLookup`` made of them (a caller that reads
    other columns after it lets the ids go first). One pass over the deliveries parts
    through a msg_id row lookup built once: memory is
    12 bytes a kept delivery, never the whole table's columns at once. ``group_of`` is asked
    once for each name of a part's node dictionary, and not again for the next part when
    that has the same dictionary (the writer's parts of a run mostly do)."""
    lookup = msg_id if isinstance(msg_id, RowLookup) else RowLookup(msg_id)
    del msg_id  # the lookup is all the pass needs: the column goes unless the caller holds it
    rows = history.num_rows("deliveries")
    propagation = np.empty(rows, dtype=np.int64)
    group = np.empty(rows, dtype=np.int32)
    kept = 0
    names: pa.Array | None = None  # the last part's node dictionary, and its groups
    code = np.zeros(1, dtype=np.int32)
    for part in history.parts("deliveries", ["msg_id", "node", "t_delivered"]):
        if part.num_rows == 0:
            continue
        row, known = lookup.rows(np.asarray(part.column("msg_id").to_numpy(), dtype=np.int64))
        known &= sent[row]
        node = part.column("node").combine_chunks()
        if not pa.types.is_dictionary(node.type):
            node = node.dictionary_encode()
        if names is None or not node.dictionary.equals(names):  # parts mostly share one dictionary
            names = node.dictionary
            code = np.array([group_of(str(name)) for name in names.to_pylist()] or [0], dtype=np.int32)
        count = int(known.sum())
        t_delivered = np.asarray(part.column("t_delivered").to_numpy(), dtype=np.int64)[known]
        propagation[kept:kept + count] = t_delivered - t_sent[row[known]]
        group[kept:kept + count] = code[np.asarray(node.indices.to_numpy(), dtype=np.int64)[known]]
        if origin_group is not None:
            group[kept:kept + count] += origin_group[row[known]].astype(np.int32) * np.int32(groups)
        kept += count
        del row, known, t_delivered
    return propagation[:kept], group[:kept]


def _region_index(regions: list[str], region: str) -> int:
    """The index of ``region`` in ``regions``, added at the end when new."""
    if region not in regions:
        regions.append(region)
    return regions.index(region)
