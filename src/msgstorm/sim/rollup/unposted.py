"""The soft-confirmed messages a sequencer outage with ``lose_unposted`` lost: dropped after the run.

Place in the pipeline: the rollup stage (``stage.write_rollup``), before the batches are made.
When the sequencer goes down it loses what it accepted and no batch on L1 holds. Its queue
and its sequenced messages in no block are dropped in the run (``outage.py``); the messages
already in an L2 block are known to be unposted only from the batches, which the stage
derives after the run. The batcher and the L1 are causal (a batch closes and lands by what
came before it), so the batches on the full run's blocks that were in an L1 block by the
outage's start ``at`` are the ones of a run cut at ``at``: a message soft-confirmed before
``at`` whose batch's L1 block came after ``at`` was unposted then. Each such message's row
becomes ``dropped`` (its ``t_committed`` null; ``t_sequenced``, ``seq_no`` and ``block`` kept,
as a message in a block the chain left keeps the block that first held it), in place, one
Parquet part at a time (each rewritten under a temporary name and renamed, as the writer
lands parts); an ``unposted_lost`` event per outage (``stage: "soft"``) names them. The
batches are then made again from the messages still committed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.history.writer import HistoryWriter

__all__ = ["drop_unposted", "losing_outages", "unposted"]

OUTAGE_KIND = "sequencer_outage"


def losing_outages(history: History) -> list[tuple[int, int, str | None]]:
    """(at, fault_id, node) of each sequencer outage with ``lose_unposted``, by start."""
    import pyarrow.compute as pc  # here: a run without a rollup loads no Arrow compute (tests/test_startup.py)

    events = history.table("events")
    starts = pc.equal(events.column("kind").cast(pa.string()), EventKind.FAULT_START.value)
    found = []
    for t, node, detail in zip(*(events.filter(starts).column(c).to_pylist() for c in ("t", "node", "detail")),
                               strict=True):
        fields = json.loads(detail) if detail else {}
        if fields.get("kind") == OUTAGE_KIND and fields.get("lose_unposted"):
            found.append((int(t), int(fields["fault_id"]), node))
    return sorted(found)


CommitRows = Callable[[], Iterable[dict[str, Any]]]


def unposted(commits: Iterable[dict[str, Any]], at: int) -> np.ndarray:
    """The msg_ids soft-confirmed before ``at`` whose batch was not in an L1 block by ``at``
    (``commits``: the ``commits`` table's rows as ``stage.commit_rows`` yields them)."""
    lost = [rows["msg_id"][(rows["t_soft"] < at) & (rows["t_safe"] > at)] for rows in commits]
    return np.concatenate(lost) if lost else np.empty(0, dtype=np.int64)


def drop_unposted(writer: HistoryWriter, history: History, commits: CommitRows) -> bool:
    """Drop the soft-confirmed messages each losing outage lost (module docstring); whether any were."""
    outages = losing_outages(history)
    if not outages:
        return False
    taken: set[int] = set()
    groups: list[tuple[int, int, str | None, list[int]]] = []
    for at, fault_id, node in outages:
        ids = [int(m) for m in unposted(commits(), at) if int(m) not in taken]
        taken.update(ids)
        groups.append((at, fault_id, node, ids))
    for at, fault_id, node, ids in groups:
        writer.append("events", {"t": [at], "kind": [EventKind.UNPOSTED_LOST.value], "node": [node],
                                 "value": [float(len(ids))], "height": [None],
                                 "detail": [json.dumps({"fault_id": fault_id, "stage": "soft", "msg_ids": ids})]})
    if taken:
        _rewrite_messages(writer.dir / "messages", np.fromiter(taken, dtype=np.int64))
    return True


def _rewrite_messages(directory: Path, lost: np.ndarray) -> None:
    """Each part holding one of ``lost``: those rows ``dropped`` with no ``t_committed``."""
    import pyarrow.compute as pc  # here: a run without a rollup loads no Arrow compute (tests/test_startup.py)

    for path in sorted(directory.glob("part-*.parquet")):
        table = pq.read_table(path)
        hit = pc.is_in(table.column("msg_id"), value_set=pa.array(lost))
        if not pc.any(hit).as_py():
            continue
        status = pc.if_else(hit, "dropped", table.column("status").cast(pa.string()))
        t_committed = pc.if_else(hit, pa.scalar(None, pa.int64()), table.column("t_committed"))
        table = table.set_column(table.schema.get_field_index("status"), "status", status)
        table = table.set_column(table.schema.get_field_index("t_committed"), "t_committed", t_committed)
        temporary = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, temporary, store_schema=False)
        os.replace(temporary, path)
