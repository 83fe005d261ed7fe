"""Driving the compiled one-node loop: traffic in, history rows and telemetry out.

Place in the pipeline: inside the simulator, the one-node counterpart of
``ShadowNetwork.run``. ``SoloSequencer`` (``sim/solo.py``) owns the compiled loop's arrays;
this feeds it traffic batches, turns what it logged (settled records, events, deliveries)
into history rows through the run's recorder, and keeps the shared counts that progress
snapshots read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.history.writer import FLUSH_INTERVAL_S
from msgstorm.sim.context import SimContext
from msgstorm.sim.lone_cpu import LoneCpu
from msgstorm.sim.recorder import FLUSH_ROWS
from msgstorm.sim.solo import NEED_BATCH, YIELD, SoloSequencer
from msgstorm.sim.state import COMMITTED, DROPPED, T_COMMITTED, T_INTENDED, WHERE
from msgstorm.sim.telemetry import Telemetry
from msgstorm.traffic.generate import MessageBatch

__all__ = ["HAND_OUT_S", "SoloDriver"]

# Message rows the loop has settled reach the history writer at least this often (wall time),
# whole pieces or not: with the writer's own interval, a killed run loses about a second.
HAND_OUT_S = FLUSH_INTERVAL_S / 4


class SoloDriver:
    def __init__(self, ctx: SimContext, solo: SoloSequencer, lone: LoneCpu, telemetry: Telemetry | None) -> None:
        self.ctx = ctx
        self.solo = solo
        self.lone = lone
        self.telemetry = telemetry
        self.now = 0
        self.clock = time.monotonic
        self.handed_out = self.clock()

    def run(self, traffic: Iterable[Any], publish: Callable[[], None]) -> bool:
        """Run to the end; returns False when Ctrl-C stopped it (what it logged is kept).
        ``publish()`` hands telemetry a snapshot."""
        solo = self.solo
        batches = iter(traffic)
        # A new loop's first call asks for a batch and does nothing else (it has no sends), so
        # the first batch is taken before it: generating that batch compiles the traffic's
        # draws, which a cold start thus overlaps with a helper compiling the loop (sim/warm.py).
        code = NEED_BATCH
        try:
            while True:
                if code == NEED_BATCH:
                    # Windows are joined into pieces of FLUSH_ROWS messages: the loop sees the
                    # same sends in the same order, and pays its per-call costs less often.
                    taken: list[Any] = []
                    size = 0
                    while size < FLUSH_ROWS:
                        batch = next(batches, None)
                        if batch is None:
                            break
                        if len(batch):
                            taken.append(batch)
                            size += len(batch)
                    if taken:
                        solo.add(MessageBatch.concat(taken))
                    else:
                        solo.last_batch()
                elif code != YIELD:
                    break
                if self.telemetry is not None:
                    publish()
                code = solo.advance()
                self.drain()
        except KeyboardInterrupt:
            self.drain(everything=True)
            self.ctx.record.event(self.now, EventKind.INTERRUPTED)
            return False
        return True

    def drain(self, everything: bool = False) -> None:
        """Rows, events and deliveries the compiled loop logged since the last call. Message
        rows come in pieces the size of a history part, and also the piece being filled when
        ``everything`` is asked or ``HAND_OUT_S`` of wall time has passed since it last came
        (so that a killed run loses no more rows than the history writer's interval allows)."""
        solo = self.solo
        ctx = self.ctx
        self.now = solo.now
        ctx.tally.emitted = solo.emitted
        ctx.msgs.count = solo.count
        ctx.msgs.terminal = solo.terminal
        now = self.clock()
        partial = everything or now - self.handed_out >= HAND_OUT_S
        if partial:
            self.handed_out = now
        for table, fee in solo.take_settled(partial):
            where = table[WHERE]
            committed = where == COMMITTED
            ctx.tally.committed += int(np.count_nonzero(committed))
            ctx.tally.dropped += int(np.count_nonzero(where == DROPPED))
            if self.telemetry is not None and committed.any():
                self.telemetry.committed_latencies(table[T_COMMITTED, committed] - table[T_INTENDED, committed])
            ctx.record.settled_table(table, fee)
        solo.record_events(ctx.record, ctx.cluster.leader)
        rows = solo.take_deliveries()
        if rows.shape[1]:
            self.lone.add_deliveries(rows)
            if self.lone.delivery_rows >= FLUSH_ROWS:
                # Streamed as the run goes, not hoarded to the end: in a one-node network the
                # lone CPU's rows are the whole deliveries table (no gossip kernel rows), so
                # writing them now keeps the table's order and its encoding off the run's end.
                ctx.record.deliveries(self.lone.take_deliveries())

    def finish(self) -> None:
        """Settle what is still moving as pending."""
        self.drain(everything=True)
        self.solo.close_samples(self.ctx.record, self.ctx.cluster.leader)
        table, fee = self.solo.unsettled()
        if table.shape[1]:
            self.ctx.record.settled_table(table, fee)
        self.ctx.msgs.terminal = self.solo.terminal

    @property
    def depth(self) -> int:
        return self.solo.depth

