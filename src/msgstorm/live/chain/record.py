"""A chain run's rows: what the chain target kept, written as the history's tables.

Place in the pipeline: ``live/chain/target.py`` -> **record** -> ``HistoryWriter``, as
``live/recorder.py`` is for brokers. ``write_messages`` makes one ``messages`` row per message
sent (and per message intended before the run's end and never sent, ``unsent``, unless the run
was interrupted: the windows after a node lost for good are kept for that), its status from what the node answered and what the blocks held;
``write_chain_events`` the blocks, base fees, pool samples and refusals, with their heights
(``live/event_log.py`` writes events without one). The status rules are in ``ChainTarget``'s
docstring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from msgstorm.history.events import EventKind
from msgstorm.history.schema import STATUSES
from msgstorm.history.writer import HistoryWriter
from msgstorm.live.chain.anvil import NAME
from msgstorm.live.recorder import PUBLISHER, nullable
from msgstorm.scenario.schema import MESSAGE_KINDS, Scenario
from msgstorm.traffic.generate import MessageBatch

__all__ = ["LOST", "PENDING", "REJECTED", "Block", "Window", "merged", "write_chain_events", "write_messages"]

# Status codes: indices into the history's STATUSES (history/schema.py), the one list of them.
COMMITTED, REJECTED, PENDING, LOST, UNSENT, DROPPED = (
    STATUSES.index(status) for status in ("committed", "rejected", "pending", "lost", "unsent", "dropped"))


@dataclass
class Window:
    """One window of traffic and what became of each of its messages (-1: not yet)."""

    batch: MessageBatch
    sent: np.ndarray
    answered: np.ndarray  # the node's answer arrived (accepted or refused)
    outcome: np.ndarray  # int8: -1 none yet, PENDING accepted, REJECTED, LOST
    # The market's messages (``live/chain/market.py``): every row is kept, whenever it was
    # meant; one never sent is still held by its sender (``pending``).
    market: bool = False

    @classmethod
    def unsent(cls, batch: MessageBatch) -> Window:
        """``batch``'s window before any of it is sent."""
        n = len(batch)
        return cls(batch, np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.full(n, -1, np.int8))


@dataclass
class Block:
    """One block as the heads brought it: its arrival ``t`` (ns, the run's clock)."""

    number: int
    t: int
    txs: int
    gas_used: int
    gas_limit: int
    base_fee_wei: int
    ours: list[int] = field(default_factory=list)  # msgstorm's msg_ids, in block order


def merged(windows: list[Window]) -> list[Window]:
    """The market's many small windows as one (one history append, not one per send)."""
    if len(windows) <= 1:
        return windows
    batch = MessageBatch.concat([w.batch for w in windows])
    return [Window(batch, np.concatenate([w.sent for w in windows]), np.concatenate([w.answered for w in windows]),
                   np.concatenate([w.outcome for w in windows]), market=all(w.market for w in windows))]


def write_messages(writer: HistoryWriter, scenario: Scenario, windows: list[Window],
                   included: dict[int, tuple[int, int, int]], dropped: set[int], interrupted: bool,
                   started: bool, agents: list[str], undone: dict[int, int] | None = None,
                   proposed: dict[int, int] | None = None) -> int:
    """One row per message sent, and per message intended before the run's end and never
    sent (``unsent``) unless the run was interrupted, and per market message; the number
    sent. ``agents``: the names of the agent indexes; ``undone``: msg_id -> the block a
    restarted node lost it with (its ``block``, not committed); ``proposed``: msg_id -> when
    the block holding it was proposed (its ``t_dequeued`` and ``t_sequenced``: the wait in the
    pool ends there; else they are its ``t_committed``)."""
    undone = undone or {}
    proposed = proposed or {}
    duration = scenario.run.duration
    complete = not interrupted and started
    sent_total = 0
    for window in windows:
        batch = window.batch
        keep = (window.sent >= 0) | ((batch.t_intended < duration) if complete else False) | window.market
        rows = np.flatnonzero(keep)
        if not rows.size:
            continue
        sent_total += int((window.sent >= 0).sum())
        ids = batch.msg_id[rows]
        t_committed = np.full(rows.size, -1, np.int64)
        t_proposed = np.full(rows.size, -1, np.int64)
        block = np.full(rows.size, -1, np.int64)
        seq_no = np.full(rows.size, -1, np.int64)
        outcome = window.outcome[rows].copy()
        for r, msg_id in enumerate(ids.tolist()):
            found = included.get(msg_id)
            if found is not None:
                t_committed[r], block[r], seq_no[r] = found
                t_proposed[r] = proposed.get(msg_id, found[0])
                continue
            if msg_id in dropped:
                outcome[r] = DROPPED
            if msg_id in undone:
                block[r] = undone[msg_id]
        sent = window.sent[rows]
        # The node took a transaction no later than the head of the block holding it arrived
        # (or, with ``proposed``, that block's proposal): that can come before the answer
        # (answers to pipelined requests are read in order, behind a slow one), and is then
        # the first word of its acceptance.
        answered = window.answered[rows]
        answered = np.where((t_proposed >= 0) & ((answered < 0) | (answered > t_proposed)), t_proposed, answered)
        status = np.where(sent < 0, np.where(outcome == PENDING, PENDING, UNSENT), np.where(t_committed >= 0, COMMITTED,
                          np.where((outcome == REJECTED) | (outcome == DROPPED), outcome,
                                   np.where(outcome == PENDING, PENDING,
                                            np.where(interrupted, PENDING, LOST))))).astype(np.int8)
        # A lost transaction had no answer: the time its request failed is no receipt.
        answered = np.where(status == LOST, -1, answered)
        writer.append("messages", {
            "msg_id": ids, "kind": pa.array(np.asarray(MESSAGE_KINDS, dtype=object)[batch.kind[rows]]),
            "agent": pa.array(np.asarray(agents, dtype=object)[batch.agent[rows]]),
            "node": pa.array([PUBLISHER] * rows.size), "key": batch.key[rows],
            "size": batch.size[rows], "fee": batch.fee[rows], "t_intended": batch.t_intended[rows],
            "t_sent": nullable(sent), "t_received": nullable(answered),
            "t_dequeued": nullable(t_proposed), "t_sequenced": nullable(t_proposed),
            "seq_no": nullable(seq_no), "t_committed": nullable(t_committed), "block": nullable(block),
            "status": pa.DictionaryArray.from_arrays(status, pa.array(STATUSES)).cast(pa.string()),
        })
    return sent_total

def write_chain_events(writer: HistoryWriter, blocks: list[Block], pool: list[tuple[int, int, int]],
                   rejections: dict[str, list[int]], rejection_text: dict[str, str], unit: int,
                   t_end: int) -> None:
    """The blocks, base fees, pool samples and refusals, with their heights."""
    rows: list[tuple[int, str, str | None, float | None, int | None, str | None]] = []
    for block in blocks:
        t = min(block.t, t_end)
        rows.append((t, EventKind.BLOCK_PRODUCED, NAME, float(block.txs), block.number, json.dumps(
            {"gas": block.gas_used, "gas_limit": block.gas_limit, "base_fee_wei": block.base_fee_wei,
             "ours": len(block.ours)})))
        # One node's chain has no forks: a head is final when it comes, so the block is committed
        # then too (the liveness check reads the commits).
        rows.append((t, EventKind.BLOCK_COMMITTED, NAME, float(block.txs), block.number, None))
        rows.append((t, EventKind.BASE_FEE, NAME, block.base_fee_wei / unit, block.number, None))
    for t, pending, queued in pool:
        rows.append((min(t, t_end), EventKind.QUEUE_DEPTH, NAME, float(pending), None,
                     json.dumps({"pending": pending, "queued": queued})))
    for reason, times in sorted(rejections.items()):
        rows.append((min(times[0], t_end), EventKind.TX_REJECTED, NAME, float(len(times)), None,
                     json.dumps({"reason": reason, "error": rejection_text[reason]})))
    if not rows:
        return
    rows.sort(key=lambda row: row[0])
    writer.append("events", {"t": [row[0] for row in rows], "kind": [str(row[1]) for row in rows],
                             "node": [row[2] for row in rows], "value": [row[3] for row in rows],
                             "height": [row[4] for row in rows], "detail": [row[5] for row in rows]})
