"""Progress telemetry: raw counts and fresh commit latencies out of the simulator.

Place in the pipeline: inside the simulator, at its edge. The loop calls ``publish`` every
so often; it hands the progress callback a ``ProgressSnapshot`` (``msgstorm.progress``) of
counts so far and the latencies of the messages committed since the previous one. No
percentile is computed here: the consumers compute them with the analysis's definition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm.progress import Progress, ProgressSnapshot
from msgstorm.sim.context import SimContext
from msgstorm.sim.state import T_INTENDED

__all__ = ["Telemetry"]


class Telemetry:
    def __init__(self, ctx: SimContext, progress: Progress) -> None:
        self.ctx = ctx
        self.progress = progress
        self.recent: list[np.ndarray] = []  # commit latencies since the last snapshot

    def committed(self, t: int, records: list[list[Any]]) -> None:
        """Records of messages committed at ``t`` (the Python loop's commits)."""
        self.recent.append(np.array([t - r[T_INTENDED] for r in records], dtype=np.int64))

    def committed_latencies(self, latencies_ns: np.ndarray) -> None:
        """Commit latencies already computed (the compiled loop's commits)."""
        self.recent.append(latencies_ns.astype(np.int64))

    def publish(self, now: int, queue_depth: int, base_fee: float | None, faults_active: int,
                final: bool = False) -> None:
        ctx = self.ctx
        latencies = np.concatenate(self.recent) if self.recent else np.zeros(0, dtype=np.int64)
        self.recent = []
        tally = ctx.tally
        self.progress(ProgressSnapshot(
            t_ns=now, end_ns=ctx.hard_stop, sent=ctx.msgs.count, emitted=tally.emitted,
            settled=ctx.msgs.terminal, committed=tally.committed, dropped=tally.dropped,
            rejected=tally.rejected, queue_depth=queue_depth, base_fee=base_fee,
            faults_active=faults_active, leader=ctx.cluster.names[ctx.cluster.leader],
            latencies_ns=latencies, final=final,
        ))
