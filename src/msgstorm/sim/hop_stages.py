"""Each hop's stages: the gossip kernel's hop log made into the history's ``hop_stages`` rows.

Place in the pipeline: inside the simulator, between the gossip kernel (its hop log:
``sim/kernel.py``, HOP_SERVE) and the recorder. It runs when a relay protocol other than
push is set (``[network.relay]``), for every block and about ``HOP_MESSAGES`` messages
spread over the run (``hop_stride``: every n-th msg_id the delivery sample keeps, n from the
run's expected message count, so that a busy run's tracing costs a thousand messages' worth
of rows, not millions); ``analysis/hops.py`` sums the rows along each path.

The rule. Node N validated an item it received from S. Between S's validation and N's
lie N's steps with S, in time order; each step ends one stage, named by the step:

- N sends S a request (a getdata): the **announcement** ends (the announcement's trip, and
  any wait before N asked S: a timeout on a peer asked first);
- the request reaches S: the **request** ends (a compact block's getblocktxn, sent on the
  compact block's arrival, ends a request too);
- the payload from S reaches N (the block, a compact block or its missing messages): the
  **transfer** ends (S's uplink queue, the bytes at min(upload, download), the link);
- N validates it: the **validation** ends (N's CPU queue and its work).

Under push a hop is a transfer and a validation. The stages of a hop sum exactly to
t_valid(N) − t_valid(S). At the item's origin (S = none) there is one stage, its
validation, from its making (or sending) on.

Memory: the time each node validated each traced item (8 bytes × nodes × items), and the
steps of the nodes that have not validated an item yet.
"""

from __future__ import annotations

import math

import numpy as np

from msgstorm.sim import kernel as k

__all__ = ["HOP_COLUMNS", "HOP_MESSAGES", "HOP_STAGE_NAMES", "HopStages", "hop_stride"]

# About how many messages a run traces hop by hop (every block is traced).
HOP_MESSAGES = 1000

# The stages, in path order: the history's ``<name>_ns`` columns.
HOP_STAGE_NAMES = ("announce", "request", "transfer", "validation")
HOP_COLUMNS = ("block", "item", "node", "sender", "hops", "t", *(f"{name}_ns" for name in HOP_STAGE_NAMES))
_ANNOUNCE, _REQUEST, _TRANSFER, _VALIDATION = range(4)
# The stage each kind of step ends.
_ENDS = np.array([_REQUEST, _TRANSFER, _VALIDATION], dtype=np.int64)  # HOP_SERVE, HOP_PAYLOAD, HOP_VALID


def hop_stride(delivery_stride: int, expected_messages: float) -> int:
    """The msg_id stride of the messages traced: a multiple of the delivery stride (0: no
    message is sampled) that keeps about ``HOP_MESSAGES`` of the ``expected_messages``."""
    if delivery_stride <= 0:
        return 0
    return delivery_stride * max(1, math.ceil(expected_messages / delivery_stride / HOP_MESSAGES))


class HopStages:
    """Takes the hop log in event order (``add``, any number of pieces) and gives each hop's
    stages once its node has validated the item."""

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.t_valid: dict[int, np.ndarray] = {}  # item key (item × 2 + is block) -> per node, -1: not yet
        self.pending = np.zeros((k.H_ROWS, 0), dtype=np.int64)

    def add(self, log: np.ndarray) -> dict[str, np.ndarray]:
        """Rows of the hop log (int64[k.H_ROWS, n], after those given before); return the
        hops their nodes completed: columns ``block`` (bool), ``item``, ``node``, ``sender``
        (-1 at the origin), ``hops``, ``t`` (the validation) and ``<stage>_ns``."""
        rows = np.concatenate([self.pending, log], axis=1) if self.pending.shape[1] else log
        what = rows[k.H_WHAT]
        step = what & k.HOP_CODE
        item_key = rows[k.H_ITEM] * 2 + ((what & k.HOP_BLOCK) != 0)
        group = item_key * self.nodes + rows[k.H_NODE]
        valid = np.flatnonzero(step == k.HOP_VALID)
        if valid.size == 0:  # no hop done yet: keep every step for later
            self.pending = self._not_done(rows)
            return {name: np.zeros(0, dtype=bool if name == "block" else np.int64) for name in HOP_COLUMNS}
        # Each item's validations, grouped by a stable sort (in log order within an item).
        by_item = valid[np.argsort(item_key[valid], kind="stable")]
        keys, starts = np.unique(item_key[by_item], return_index=True)
        ends = np.append(starts[1:], by_item.size)
        for key, start, end in zip(keys.tolist(), starts.tolist(), ends.tolist(), strict=True):
            times = self.t_valid.get(key)
            if times is None:
                times = self.t_valid[key] = np.full(self.nodes, -1, dtype=np.int64)
            mine = by_item[start:end]
            times[rows[k.H_NODE, mine]] = rows[k.H_T, mine]
        # The hops done: each validation's group, its sender, and when the hop began.
        done_group = group[valid]
        sender = rows[k.H_PEER, valid]
        order = np.argsort(done_group, kind="stable")
        done_group, valid, sender = done_group[order], valid[order], sender[order]
        begin = np.full(valid.size, -1, dtype=np.int64)
        done_key = item_key[valid]  # sorted: a group is item_key × nodes + node
        keys, starts = np.unique(done_key, return_index=True)
        ends = np.append(starts[1:], done_key.size)
        for key, start, end in zip(keys.tolist(), starts.tolist(), ends.tolist(), strict=True):
            mine = start + np.flatnonzero(sender[start:end] >= 0)
            begin[mine] = self.t_valid[key][sender[mine]]
        # The steps of those hops with their senders (the validation's own row included).
        at = np.searchsorted(done_group, group)
        at_clipped = np.minimum(at, done_group.size - 1)
        done = (at < done_group.size) & (done_group[at_clipped] == group)  # its node validated the item
        # A hop's steps are its node's with its sender up to the validation: a step after it
        # (in this piece of the log or a later one) is no part of the hop.
        ours = done & (rows[k.H_PEER] == sender[at_clipped]) & (np.arange(rows.shape[1]) <= valid[at_clipped])
        steps = np.flatnonzero(ours)
        hop = at_clipped[steps]
        # Each step's boundaries: a request also marks when it was sent (AUX; -1 for a getblocktxn).
        asked = steps[(step[steps] == k.HOP_SERVE) & (rows[k.H_AUX, steps] >= 0)]
        bound_hop = np.concatenate([hop, at_clipped[asked]])
        bound_t = np.concatenate([rows[k.H_T, steps], rows[k.H_AUX, asked]])
        bound_stage = np.concatenate([_ENDS[step[steps]], np.full(asked.size, _ANNOUNCE, dtype=np.int64)])
        by = np.lexsort((bound_stage, bound_t, bound_hop))
        bound_hop, bound_t, bound_stage = bound_hop[by], bound_t[by], bound_stage[by]
        first = np.r_[True, bound_hop[1:] != bound_hop[:-1]] if bound_hop.size else np.zeros(0, dtype=bool)
        # At the origin the hop begins at its first step (the payload's arrival: its making).
        origin_begin = np.full(done_group.size, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(origin_begin, bound_hop, bound_t)
        begin = np.where(sender >= 0, begin, origin_begin)
        previous = np.empty_like(bound_t)
        previous[1:] = bound_t[:-1]
        previous[first] = begin[bound_hop[first]]
        stages = np.zeros((len(HOP_STAGE_NAMES), done_group.size), dtype=np.int64)
        np.add.at(stages, (bound_stage, bound_hop), bound_t - previous)
        self.pending = self._not_done(rows[:, ~done])
        back = np.argsort(valid)  # in the order the nodes validated
        valid = valid[back]
        out: dict[str, np.ndarray] = {
            "block": (rows[k.H_WHAT, valid] & k.HOP_BLOCK) != 0,
            "item": rows[k.H_ITEM, valid],
            "node": rows[k.H_NODE, valid],
            "sender": sender[back],
            "hops": rows[k.H_AUX, valid],
            "t": rows[k.H_T, valid],
        }
        for i, name in enumerate(HOP_STAGE_NAMES):
            out[f"{name}_ns"] = stages[i, back]
        return out

    def _not_done(self, rows: np.ndarray) -> np.ndarray:
        """The steps whose node has not validated their item yet (those after a validation
        belong to no hop)."""
        if not rows.shape[1] or not self.t_valid:
            return rows
        item_key = rows[k.H_ITEM] * 2 + ((rows[k.H_WHAT] & k.HOP_BLOCK) != 0)
        keep = np.ones(rows.shape[1], dtype=bool)
        for key in np.unique(item_key).tolist():
            times = self.t_valid.get(key)
            if times is not None:
                mine = np.flatnonzero(item_key == key)
                keep[mine] = times[rows[k.H_NODE, mine]] < 0
        return rows[:, keep]
