"""A rollup's commit levels and what its batches cost (summary.json's ``rollup``).

Place in the pipeline: analysis, from the ``commits``, ``batches`` and ``l1_blocks`` tables
(``sim/rollup`` writes them) and the messages' ``t_intended``. Latency to each commit level
is measured from ``t_intended``, as every latency is: soft (in an L2 block: the sequencer's
soft confirmation), safe (the batch in an L1 block), final (that block final); the split
shows each stage alone: sequencing (intent -> soft: the sequencer and its L2 block), batch
and L1 inclusion (soft -> safe), finality (safe -> final). The
latency to final is the sum of the three, message by message.
"""

from __future__ import annotations

from collections.abc import Callable
from math import fsum
from typing import Any

import numpy as np

from msgstorm.analysis._common import RowLookup, ms, percentiles
from msgstorm.history.reader import History

__all__ = ["WEI_PER_ETH", "WEI_PER_GWEI", "rollup_summary"]

WEI_PER_ETH = 10**18
WEI_PER_GWEI = 10**9


def _p50_p99_max(values: np.ndarray) -> dict[str, float | None]:
    """p50, p99 and max in ms of ``values`` (ns), which it reorders (a scratch array)."""
    if values.size == 0:
        return {"p50": None, "p99": None, "max": None}
    largest = float(values.max())
    p50, p99 = percentiles(values, (50.0, 99.0), scratch=True)
    return {"p50": ms(p50), "p99": ms(p99), "max": ms(largest)}


def _first_last_max(values: list[int], unit: int) -> dict[str, float]:
    return {"first": values[0] / unit, "last": values[-1] / unit, "max": max(values) / unit}


Columns = dict[str, np.ndarray]


def _intended_of(history: History) -> Callable[[np.ndarray], np.ndarray]:
    """msg_ids -> their t_intended (0 for an id no message has), through ``RowLookup``: the
    simulator writes its messages in id order from 0, so an id is its row and no table by id
    is made (a day of a rollup: 17 million ids, 138 MB a table)."""
    ids, _ = history.ints("messages", "msg_id")
    lookup = RowLookup(ids)
    del ids  # the lookup keeps what it needs of them (nothing, for ids in row order)
    intended, _ = history.ints("messages", "t_intended")

    def of(wanted: np.ndarray) -> np.ndarray:
        rows, known = lookup.rows(wanted)
        found: np.ndarray = intended[rows]
        if not known.all():
            found[~known] = 0
        return found

    return of


def _stage_ns(history: History, rows: int, stage: Callable[[Columns], np.ndarray]) -> np.ndarray:
    """One stage's time (ns) for every commit, read a part of ``commits`` at a time: memory
    holds this stage's column, not the table (a day of a rollup: 17 million rows)."""
    import pyarrow.compute as pc  # here: a run without a rollup loads no Arrow compute (tests/test_startup.py)

    out = np.empty(rows, dtype=np.int64)
    at = 0
    for part in history.parts("commits", ["msg_id", "t_soft", "t_safe", "t_final"]):
        columns = {name: np.asarray(pc.fill_null(part.column(name), 0).to_numpy(zero_copy_only=False),
                                    dtype=np.int64) for name in part.column_names}
        values = stage(columns)
        out[at:at + values.size] = values
        at += values.size
    return out[:at]


def rollup_summary(history: History) -> dict[str, Any] | None:
    """The ``rollup`` section; ``None`` for a run without ``[rollup]`` (no batches table rows
    and no commits). Each of the five stage columns is built, summarised and let go in turn."""
    rows = history.num_rows("commits")
    batches = history.table("batches")
    if rows == 0 and batches.num_rows == 0:
        return None
    intended = _intended_of(history)
    stages: dict[str, Callable[[Columns], np.ndarray]] = {
        "soft": lambda c: c["t_soft"] - intended(c["msg_id"]),
        "safe": lambda c: c["t_safe"] - intended(c["msg_id"]),
        "final": lambda c: c["t_final"] - intended(c["msg_id"]),
        "batch_and_l1": lambda c: c["t_safe"] - c["t_soft"],
        "finality": lambda c: c["t_final"] - c["t_safe"],
    }
    done = {name: _p50_p99_max(_stage_ns(history, rows, stage)) for name, stage in stages.items()}
    latency = {level: done[level] for level in ("soft", "safe", "final")}
    split = {"sequencing": done["soft"], "batch_and_l1": done["batch_and_l1"], "finality": done["finality"]}
    closed = batches.column("t_closed").to_pylist()
    full = batches.column("full").to_pylist()
    compressed = batches.column("compressed_bytes").to_pylist()
    cost = batches.column("cost_wei").to_pylist()
    l1 = history.table("l1_blocks")
    base_fee = l1.column("base_fee").to_pylist()
    blob_fee = l1.column("blob_base_fee").to_pylist()
    gaps = np.diff(np.asarray(closed, dtype=np.int64))
    return {
        "messages": rows,
        "latency_ms": latency,
        "split_ms": split,
        "batches": {
            "count": len(closed),
            "full": sum(1 for f in full if f),
            "compressed_bytes_mean": fsum(compressed) / len(compressed) if compressed else None,
            "interval_s_mean": float(gaps.mean()) / 1e9 if gaps.size else None,
            "data": str(((history.scenario.get("rollup") or {}).get("batcher") or {}).get("data", "calldata")),
        },
        "l1": {
            "blocks": l1.num_rows,
            "cost_eth": fsum(cost) / WEI_PER_ETH,
            "base_fee_gwei": _first_last_max(base_fee, WEI_PER_GWEI) if base_fee else None,
            "blob_base_fee_wei": _first_last_max(blob_fee, 1) if blob_fee else None,
        },
    }
