"""The rollup stage: from the L2 run's committed messages to the rollup's three tables.

Place in the pipeline: run by the runner after the simulator has written the ``messages``
table (``targets/sim.py``), before the history is closed. Two passes over the messages,
one Parquet part at a time, so memory follows the L2 blocks and one part, not the run:
the first sums each L2 block's committed messages (its time, bytes, count), the batcher
and the L1 run on those blocks (``batcher``, ``l1``), the second gives every committed
message its three commit times:

- ``t_soft``: in an L2 block (soft-confirmed: the block the sequencer published, before any
  batch holds it): the message's ``t_committed``, as the live rollup's L2 block arrival;
- ``t_safe``: its batch in an L1 block: that block's slot time;
- ``t_final``: that L1 block final (``l1.final_time``).

A sequencer outage with ``lose_unposted`` drops the soft-confirmed messages no batch on L1
held when it started (``unposted.py``); the batches are then made again without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.history.reader import History
from msgstorm.history.writer import HistoryWriter
from msgstorm.scenario.rollup import RollupSpec
from msgstorm.sim.rollup.batcher import Batches, make_batches
from msgstorm.sim.rollup.l1 import L1Blocks, Landed, final_time, land
from msgstorm.sim.rollup.unposted import drop_unposted

__all__ = ["RollupRun", "commit_rows", "l2_blocks", "run_rollup", "write_rollup"]


@dataclass(frozen=True)
class RollupRun:
    """What the rollup made of a run: its L2 blocks (ids ascending), batches and L1 blocks."""

    block_ids: np.ndarray
    batches: Batches
    landed: Landed
    l1: L1Blocks
    t_safe: np.ndarray  # per batch
    t_final: np.ndarray  # per batch

    def batch_columns(self) -> dict[str, Any]:
        b, landed = self.batches, self.landed
        return {"batch": np.arange(len(b.t_closed), dtype=np.int64), "t_opened": b.t_opened, "t_closed": b.t_closed,
                "slot": landed.slot, "t_safe": self.t_safe, "t_final": self.t_final, "l2_blocks": b.blocks,
                "messages": b.messages, "bytes": b.raw_bytes, "compressed_bytes": b.compressed_bytes, "full": b.full,
                "gas": landed.gas, "blobs": landed.blobs, "blob_gas": landed.blob_gas,
                "cost_wei": [float(c) for c in landed.cost_wei]}

    def l1_columns(self) -> dict[str, Any]:
        l1 = self.l1
        return {"slot": l1.slot, "t": l1.t, "gas_used": l1.gas_used, "base_fee": l1.base_fee, "blobs": l1.blobs,
                "excess_blob_gas": l1.excess_blob_gas, "blob_base_fee": l1.blob_base_fee, "batches": l1.batches}


def _committed(part: pa.Table) -> np.ndarray:
    import pyarrow.compute as pc  # here: a run without a rollup loads no Arrow compute (tests/test_startup.py)

    status = part.column("status")
    return np.asarray(pc.fill_null(pc.equal(status.cast(pa.string()), "committed"), False))


def l2_blocks(history: History) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each L2 block that committed messages: ids ascending, time (its messages' latest
    commit), message bytes and count (the first pass)."""
    ids, times, sizes, counts = [], [], [], []
    for part in history.parts("messages", ["status", "block", "t_committed", "size"]):
        keep = _committed(part)
        if not keep.any():
            continue
        block = np.asarray(part.column("block").to_numpy(zero_copy_only=False))[keep].astype(np.int64)
        t = np.asarray(part.column("t_committed").to_numpy(zero_copy_only=False))[keep].astype(np.int64)
        size = np.asarray(part.column("size").to_numpy(zero_copy_only=False))[keep].astype(np.int64)
        unique, inverse = np.unique(block, return_inverse=True)
        latest = np.full(unique.size, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(latest, inverse, t)
        ids.append(unique)
        times.append(latest)
        sizes.append(np.bincount(inverse, weights=size, minlength=unique.size).astype(np.int64))
        counts.append(np.bincount(inverse, minlength=unique.size).astype(np.int64))
    if not ids:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, empty
    all_ids = np.concatenate(ids)
    unique, inverse = np.unique(all_ids, return_inverse=True)  # a block split over two parts joins up
    latest = np.full(unique.size, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, inverse, np.concatenate(times))
    total = np.bincount(inverse, weights=np.concatenate(sizes), minlength=unique.size).astype(np.int64)
    number = np.bincount(inverse, weights=np.concatenate(counts), minlength=unique.size).astype(np.int64)
    return unique, latest, total, number


def run_rollup(history: History, spec: RollupSpec) -> RollupRun:
    """The batches and L1 blocks of a run's committed messages."""
    block_ids, block_t, block_bytes, block_messages = l2_blocks(history)
    if block_t.size > 1 and bool(np.any(np.diff(block_t) < 0)):
        raise ValueError("L2 blocks committed out of height order: the rollup needs one chain of blocks "
                         "(no [blocks.producers] with forks)")
    batches = make_batches(block_t, block_bytes, block_messages, spec.batcher)
    landed, l1 = land(batches, spec.l1, spec.batcher.data == "blobs")
    t_safe = np.asarray([k * spec.l1.slot for k in landed.slot], dtype=np.int64)
    t_final = np.asarray([final_time(k, spec.l1) for k in landed.slot], dtype=np.int64)
    return RollupRun(block_ids, batches, landed, l1, t_safe, t_final)


def commit_rows(history: History, rollup: RollupRun) -> Iterator[dict[str, Any]]:
    """The ``commits`` table's rows, one Parquet part of messages at a time (the second pass)."""
    for part in history.parts("messages", ["msg_id", "status", "block", "t_committed"]):
        keep = _committed(part)
        if not keep.any():
            continue
        msg_id = np.asarray(part.column("msg_id").to_numpy(zero_copy_only=False))[keep].astype(np.int64)
        block = np.asarray(part.column("block").to_numpy(zero_copy_only=False))[keep].astype(np.int64)
        t_soft = np.asarray(part.column("t_committed").to_numpy(zero_copy_only=False))[keep].astype(np.int64)
        batch = rollup.batches.of_block[np.searchsorted(rollup.block_ids, block)]
        yield {"msg_id": msg_id, "t_soft": t_soft, "t_safe": rollup.t_safe[batch], "t_final": rollup.t_final[batch],
               "batch": batch}


def write_rollup(writer: HistoryWriter, spec: RollupSpec) -> RollupRun:
    """Run the rollup on what ``writer`` has written of the run and append its three tables
    (the messages are made durable first: both passes read them back from disk)."""
    writer.sync()
    history = History(directory=writer.dir)
    rollup = run_rollup(history, spec)
    if drop_unposted(writer, history, lambda: commit_rows(history, rollup)):  # an outage lost some: again
        writer.sync()
        history = History(directory=writer.dir)
        rollup = run_rollup(history, spec)
    for rows in commit_rows(history, rollup):
        writer.append("commits", rows)
    writer.append("batches", rollup.batch_columns())
    writer.append("l1_blocks", rollup.l1_columns())
    return rollup
