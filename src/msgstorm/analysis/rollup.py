"""A rollup's commit levels and what its batches cost (summary.json's ``rollup``).

Place in the pipeline: analysis, from the ``commits``, ``batches`` and ``l1_blocks`` tables
(``sim/rollup`` writes them) and the messages' ``t_intended``. Latency to each commit level
is measured from ``t_intended``, as every latency is: soft (sequenced), safe (the batch in
an L1 block), final (that block final); the split shows each stage alone: sequencing
(intent -> soft), batch and L1 inclusion (soft -> safe), finality (safe -> final). The
latency to final is the sum of the three, message by message.
"""

from __future__ import annotations

from math import fsum
from typing import Any

import numpy as np

from msgstorm.analysis._common import ms, percentiles
from msgstorm.history.reader import History

__all__ = ["WEI_PER_ETH", "WEI_PER_GWEI", "rollup_summary"]

WEI_PER_ETH = 10**18
WEI_PER_GWEI = 10**9


def _p50_p99_max(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = percentiles(values, (50.0, 99.0))
    return {"p50": ms(p50), "p99": ms(p99), "max": ms(float(values.max()))}


def _first_last_max(values: list[int], unit: int) -> dict[str, float]:
    return {"first": values[0] / unit, "last": values[-1] / unit, "max": max(values) / unit}


def rollup_summary(history: History) -> dict[str, Any] | None:
    """The ``rollup`` section; ``None`` for a run without ``[rollup]`` (no batches table rows
    and no commits)."""
    commits = history.table("commits")
    batches = history.table("batches")
    if commits.num_rows == 0 and batches.num_rows == 0:
        return None
    ids, _ = history.ints("messages", "msg_id")
    intended, _ = history.ints("messages", "t_intended")
    order = np.argsort(ids, kind="stable")
    commit_ids = commits.column("msg_id").to_numpy()
    t_intended = intended[order[np.searchsorted(ids, commit_ids, sorter=order)]]
    t_soft = commits.column("t_soft").to_numpy()
    t_safe = commits.column("t_safe").to_numpy(zero_copy_only=False)
    t_final = commits.column("t_final").to_numpy(zero_copy_only=False)
    latency = {"soft": _p50_p99_max(t_soft - t_intended), "safe": _p50_p99_max(t_safe - t_intended),
               "final": _p50_p99_max(t_final - t_intended)}
    split = {"sequencing": _p50_p99_max(t_soft - t_intended), "batch_and_l1": _p50_p99_max(t_safe - t_soft),
             "finality": _p50_p99_max(t_final - t_safe)}
    closed = batches.column("t_closed").to_pylist()
    full = batches.column("full").to_pylist()
    compressed = batches.column("compressed_bytes").to_pylist()
    cost = batches.column("cost_wei").to_pylist()
    l1 = history.table("l1_blocks")
    base_fee = l1.column("base_fee").to_pylist()
    blob_fee = l1.column("blob_base_fee").to_pylist()
    gaps = np.diff(np.asarray(closed, dtype=np.int64))
    return {
        "messages": commits.num_rows,
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
