"""The sequencer alone: a one-node network's whole event loop, compiled.

Place in the pipeline: inside the simulator, beside ``ShadowNetwork``. A network of one
node (a queueing experiment; a load ramp against a single matching engine) gossips
nothing, so every event is the sequencer's: a send validated on the node's CPU,
admission through backpressure, the queue policy, the workers, blocks (committed at
once: the node is its own quorum) and queue samples. ``ShadowNetwork`` runs such a
scenario here when ``solo_plan`` accepts it, and in its Python loop otherwise.

This is the same engine, not a model of it: the compiled loop (``sim/solo_loop.py``)
replays ``ShadowNetwork``'s rules step by step, so both write the same history;
``tests/test_sim_solo.py`` runs scenarios through both and compares every table.
``SoloSequencer`` owns the loop's arrays: a message takes a free record row when it is
added and gives it back once it has settled and its row has been copied out, so the
table holds the messages not yet settled, however old, and memory follows what is in
flight. Settled messages, events and deliveries leave through logs that it hands to the
history recorder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.sampling import Sampler
from msgstorm.scenario.schema import Scenario
from msgstorm.sim.block_packing import NO_GAS_LIMIT
from msgstorm.sim.changes import close_rows
from msgstorm.sim.recorder import Recorder
from msgstorm.sim.seq_core import ArrayQueue, doubled_ring, heap_push
from msgstorm.sim.solo_loop import (
    _FREE,
    E_SAMPLE,
    E_TICK,
    END,
    EV_BACKPRESSURE,
    EV_BLOCK_BACKLOG,
    EV_BLOCK_COMMITTED,
    EV_BLOCK_PRODUCED,
    EV_QUEUE_DEPTH,
    EV_QUEUE_DEPTH_MAX,
    FIELDS,
    GROW,
    N_PARAMS,
    N_SCALARS,
    NEED_BATCH,
    P_BLOCK,
    P_END_OF_TRAFFIC,
    P_ENGAGE_AT,
    P_FINAL,
    P_FIRST_ID,
    P_HEADER,
    P_KEY_FEE,
    P_MAX_GAS,
    P_MAX_MESSAGES,
    P_NEVER,
    P_PROCESSING_CONST,
    P_SAMPLE,
    P_SENDS,
    P_SERVE_IDLE,
    P_SERVICE_CONST,
    P_STRIDE,
    P_WATCH_DEPTH,
    P_WORKERS,
    REFILL,
    S_COUNT,
    S_DELIVERED,
    S_DELIVERY_BUDGET,
    S_DEPTH,
    S_EID,
    S_EVENTS,
    S_HEAP,
    S_NOW,
    S_PROCESSING_I,
    S_SAMPLE_T,
    S_SEND_I,
    S_SEQ_HEAD,
    S_SEQ_TAIL,
    S_SERVICE_I,
    S_SETTLED,
    S_TERMINAL,
    S_WRITTEN,
    STOP,
    YIELD,
    admit,
    advance,
    gather,
    release,
)
from msgstorm.sim.solo_plan import SoloPlan
from msgstorm.sim.state import (
    COMMITTED,
    MSG_ID,
    NULL,
    PENDING,
    T_SENT,
    WHERE,
)

__all__ = ["END", "NEED_BATCH", "STOP", "YIELD", "SoloSequencer"]

_PIECE_PAD = 24  # int64s after each column of a piece of settled records (see _keep_settled)
_REFILL_BLOCKS = 16  # Sampler blocks drawn per refill of the loop's service and processing times


# --- the Python side -------------------------------------------------------------------------


class SoloSequencer:
    """Owns the compiled loop's arrays, feeds it traffic batches and draws, and turns its
    logs into history rows and events through ``ShadowNetwork``'s recorder."""

    def __init__(self, plan: SoloPlan, scenario: Scenario, processing: Sampler, service: Sampler,
                 gas_of: list[int], delivery_stride: int, delivery_budget: int) -> None:
        run, blocks = scenario.run, scenario.blocks
        self.plan = plan
        self.p = np.zeros(N_PARAMS, dtype=np.int64)
        p = self.p
        p[P_WORKERS] = scenario.sequencer.workers
        p[P_BLOCK] = blocks.interval
        p[P_SAMPLE] = run.sample_interval
        p[P_NEVER] = run.duration + run.drain + 1
        p[P_END_OF_TRAFFIC] = run.duration
        p[P_MAX_MESSAGES] = blocks.max_messages
        p[P_MAX_GAS] = NO_GAS_LIMIT if blocks.max_gas is None else blocks.max_gas
        p[P_HEADER] = blocks.header_size
        p[P_SERVICE_CONST] = -1 if service.constant is None else service.constant
        p[P_PROCESSING_CONST] = -1 if processing.constant is None else processing.constant
        p[P_STRIDE] = delivery_stride
        p[P_KEY_FEE] = int(plan.key_fee)
        p[P_WATCH_DEPTH] = int(plan.watch_depth)
        p[P_ENGAGE_AT] = plan.engage_at
        p[P_SERVE_IDLE] = int(plan.serve_idle)
        self.sc = np.zeros(N_SCALARS, dtype=np.int64)
        self.sc[S_DELIVERY_BUDGET] = delivery_budget
        self.sc[S_WRITTEN:] = -1  # no sampled series written yet
        self.gas_of = np.asarray(gas_of, dtype=np.int64)
        self.limit = np.asarray(plan.limit, dtype=np.int64)
        self.protected = np.asarray(plan.protected, dtype=np.uint8)
        self.ev_t = np.zeros(1 << 10, dtype=np.int64)
        self.ev_eid = np.zeros(1 << 10, dtype=np.int64)
        self.ev_val = np.zeros(1 << 10, dtype=np.int64)
        self.queue = ArrayQueue("fee" if plan.key_fee else "arrival")
        self.seqring = np.zeros(1 << 10, dtype=np.int64)
        # Message records, a row each, and the rows free for new messages (a stack).
        self.records = np.full((1 << 12, FIELDS), NULL, dtype=np.int64)
        self.records[:, WHERE] = _FREE
        self.fees = np.zeros(1 << 12, dtype=np.float64)
        self.free = np.arange((1 << 12) - 1, -1, -1, dtype=np.int64)
        self.n_free = 1 << 12
        self.send_row = np.zeros(0, dtype=np.int64)
        self.slog = np.zeros(1 << 16, dtype=np.int64)  # about one piece of settled rows per drain
        self.elog = np.zeros((5, 1 << 10), dtype=np.int64)
        self.evalue = np.zeros(1 << 10, dtype=np.float64)
        self.dlog = np.zeros((2, 1 << 12), dtype=np.int64)
        self.send_t = np.zeros(0, dtype=np.int64)
        self._service_sampler = service
        self._processing_sampler = processing
        self.service = np.zeros(0, dtype=np.int64)
        self.processing = np.zeros(0, dtype=np.int64)
        # Settled records are copied out into pieces of piece_rows rows (columns and fees),
        # one being filled, the full ones waiting for take_settled: a piece the size of a
        # history part becomes that part's one batch.
        self.piece_rows = scenario.history.row_group_size
        self.piece: tuple[np.ndarray, np.ndarray] | None = None
        self.piece_filled = 0
        self.settled: list[tuple[np.ndarray, np.ndarray]] = []
        # Called once before the loop's first call: waits for a helper process compiling it
        # (sim/warm.py), so numba loads it from its cache instead of compiling it again.
        self.before_first_call: Callable[[], object] | None = None
        # The first block tick and sample, pushed as ShadowNetwork.run pushes them.
        self._push_initial(E_TICK, blocks.interval)
        self._push_initial(E_SAMPLE, run.sample_interval)

    def _push_initial(self, etype: int, t: int) -> None:
        n, eid = int(self.sc[S_HEAP]), int(self.sc[S_EID])
        # The compiled loop's own heap rule, run by Python for these two pushes: called
        # through its dispatcher it would be loaded from numba's cache as a function of its
        # own (a load of 10-40 ms) for two integer comparisons.
        self.ev_val[heap_push.py_func(self.ev_t, self.ev_eid, self.ev_val, n, t, eid)] = etype
        self.sc[S_HEAP] += 1
        self.sc[S_EID] += 1

    # --- state read by ShadowNetwork ---------------------------------------------------------

    @property
    def now(self) -> int:
        return int(self.sc[S_NOW])

    @property
    def count(self) -> int:
        return int(self.sc[S_COUNT])

    @property
    def emitted(self) -> int:
        """Messages sent so far."""
        return int(self.p[P_FIRST_ID] + self.sc[S_SEND_I]) if not self.p[P_FINAL] else self.count

    @property
    def terminal(self) -> int:
        return int(self.sc[S_TERMINAL])

    @property
    def depth(self) -> int:
        return int(self.sc[S_DEPTH])

    # --- feeding -------------------------------------------------------------------------------

    def add(self, batch: Any) -> None:
        """The next traffic batch (msg_ids continue from the previous one)."""
        n = len(batch)
        count = self.count
        if n and int(batch.msg_id[0]) != count:
            raise ValueError("traffic batches must have consecutive msg_ids")
        # Settled messages give their rows back once their records are copied out.
        self._keep_settled()
        if n > self.n_free:
            self._grow_records(n)
        rows = np.empty(n, dtype=np.int64)
        admit(self.records, self.fees, self.free, self.n_free, batch.msg_id, batch.kind, batch.agent,
              batch.node, batch.key, batch.size, batch.t_intended, batch.fee, rows)
        self.n_free -= n
        self.send_row = rows
        self.send_t = np.ascontiguousarray(batch.t_intended, dtype=np.int64)
        self.p[P_FIRST_ID] = count
        self.p[P_SENDS] = n
        self.sc[S_SEND_I] = 0
        self.sc[S_COUNT] = count + n

    def last_batch(self) -> None:
        """No more traffic: the loop may now run to the end."""
        self.p[P_FINAL] = 1
        self.p[P_SENDS] = 0
        self.sc[S_SEND_I] = 0
        self.send_t = np.zeros(0, dtype=np.int64)
        self.send_row = np.zeros(0, dtype=np.int64)

    def advance(self) -> int:
        """Run until the loop needs a batch (NEED_BATCH), yields (YIELD) or ends (END, STOP)."""
        if self.before_first_call is not None:
            # The loop's first call would ask for service and processing times: drawn first,
            # their draws compile while the helper still compiles the loop (from the
            # samplers' own streams, so the loop sees the same times either way).
            self._refill()
            wait, self.before_first_call = self.before_first_call, None
            wait()
        while True:
            q = self.queue
            code = advance(self.p, self.sc, self.ev_t, self.ev_eid, self.ev_val, q.keys, q.ties,
                           q.msgs, q.fees, q.qs, q.run, q.run_fees, self.seqring, self.records,
                           self.fees, self.slog, self.elog,
                           self.evalue, self.dlog, self.service, self.processing, self.gas_of,
                           self.limit, self.protected, self.send_t, self.send_row)
            if code == GROW:
                self._grow()
            elif code == REFILL:
                self._refill()
            else:
                return int(code)

    # --- buffers -----------------------------------------------------------------------------

    def _grow(self) -> None:
        sc = self.sc
        backlog = int(sc[S_SEQ_TAIL] - sc[S_SEQ_HEAD])
        while sc[S_HEAP] + self.p[P_WORKERS] + 2 > self.ev_t.shape[0]:
            self.ev_t, self.ev_eid, self.ev_val = (np.concatenate([a, np.zeros_like(a)])
                                                   for a in (self.ev_t, self.ev_eid, self.ev_val))
        self.queue.reserve(1)
        if backlog + 1 > self.seqring.shape[0]:
            self.seqring = doubled_ring(self.seqring, int(sc[S_SEQ_HEAD]), int(sc[S_SEQ_TAIL]))
        if sc[S_SETTLED] + backlog + 1 > self.slog.shape[0]:
            self._keep_settled()
            size = self.slog.shape[0]
            while backlog + 1 > size:
                size *= 2
            self.slog = np.zeros(size, dtype=np.int64)
        if sc[S_EVENTS] + 8 > self.elog.shape[1]:
            self.elog = np.concatenate([self.elog, np.zeros_like(self.elog)], axis=1)
            self.evalue = np.concatenate([self.evalue, np.zeros_like(self.evalue)])
        if sc[S_DELIVERED] + 1 > self.dlog.shape[1]:
            self.dlog = np.concatenate([self.dlog, np.zeros_like(self.dlog)], axis=1)

    def _keep_settled(self) -> None:
        """Copy the settle log's records into pieces and free their rows, so the log and the
        rows can be reused."""
        n = int(self.sc[S_SETTLED])
        self.sc[S_SETTLED] = 0
        done = 0
        while done < n:
            if self.piece is None:
                # Columns a few cache lines longer than the piece: at a power-of-two length
                # every column of a record lands in the same cache set, and copying records
                # in runs four times slower.
                table = np.empty((FIELDS, self.piece_rows + _PIECE_PAD), dtype=np.int64)
                self.piece = (table[:, :self.piece_rows], np.empty(self.piece_rows, dtype=np.float64))
            table, fee = self.piece
            take = min(n - done, self.piece_rows - self.piece_filled)
            release(self.records, self.fees, self.slog[done:done + take], table, fee, self.piece_filled,
                    self.free, self.n_free)
            self.n_free += take
            self.piece_filled += take
            done += take
            if self.piece_filled == self.piece_rows:
                self._hand_out()

    def _hand_out(self) -> None:
        """The piece being filled joins those waiting for take_settled, however full. A full
        piece goes as it is; a partial one (the hand-out interval, the end) is copied out
        and its buffer filled again, so that a few rows never hold a whole piece's memory."""
        if self.piece is None or not self.piece_filled:
            return
        table, fee = self.piece
        n = self.piece_filled
        if n == self.piece_rows:
            self.settled.append((table, fee))
            self.piece = None
        else:
            self.settled.append((table[:, :n].copy(), fee[:n].copy()))
        self.piece_filled = 0

    def _refill(self) -> None:
        # The Samplers' own streams, drawn block by block as Sampler.__call__ draws them, so
        # both loops see the same service and processing times in the same order. Blocks come
        # _REFILL_BLOCKS at a time: the same draws, a sixteenth of the calls.
        need = int(self.p[P_WORKERS]) + 1
        rest = self.service[self.sc[S_SERVICE_I]:]
        while self._service_sampler.constant is None and rest.shape[0] < need:
            rest = np.concatenate([rest, self._service_sampler.draw_block(_REFILL_BLOCKS)])
        self.service, self.sc[S_SERVICE_I] = rest, 0
        rest = self.processing[self.sc[S_PROCESSING_I]:]
        while self._processing_sampler.constant is None and rest.shape[0] < need:
            rest = np.concatenate([rest, self._processing_sampler.draw_block(_REFILL_BLOCKS)])
        self.processing, self.sc[S_PROCESSING_I] = rest, 0

    def _grow_records(self, need: int) -> None:
        """At least ``need`` free rows: the table doubles, its new rows go on the free stack."""
        old = self.records.shape[0]
        size = old
        while size - old + self.n_free < need:
            size *= 2
        records = np.full((size, FIELDS), NULL, dtype=np.int64)
        records[:old] = self.records
        records[old:, WHERE] = _FREE
        fees = np.zeros(size, dtype=np.float64)
        fees[:old] = self.fees
        free = np.empty(size, dtype=np.int64)
        added = np.arange(size - 1, old - 1, -1, dtype=np.int64)
        free[:added.shape[0]] = added
        free[added.shape[0]:added.shape[0] + self.n_free] = self.free[:self.n_free]
        self.records, self.fees, self.free = records, fees, free
        self.n_free += added.shape[0]

    # --- logs ----------------------------------------------------------------------------------

    def take_settled(self, partial: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
        """Records of messages settled since the last call, in settle order, in pieces: each
        as columns (int64[fields, n]: ``table[T_SENT]`` is every message's send time) and
        their fees (float64[n]). Pieces hold ``piece_rows`` rows; with ``partial`` the piece
        being filled comes too, however few rows it has. Pieces are not joined: the history
        takes each as it is."""
        self._keep_settled()
        if partial:
            self._hand_out()
        taken = self.settled
        self.settled = []
        return taken

    def _rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Copies of the records as columns and their fees, as MessageState.rows_from_columns
        # takes them.
        table = np.empty((FIELDS, rows.shape[0]), dtype=np.int64)
        fee = np.empty(rows.shape[0], dtype=np.float64)
        gather(self.records, self.fees, rows, table, fee, 0)
        return table, fee

    def record_events(self, record: Recorder, leader: int) -> None:
        """Write the events logged since the last call, as ShadowNetwork's handlers write
        them (the log holds codes and numbers; names and details are made here)."""
        n = int(self.sc[S_EVENTS])
        self.sc[S_EVENTS] = 0
        if not n:
            return
        e = self.elog[:, :n]
        states = self.plan.states
        node = record.names[leader]
        rows: list[tuple[int, str, str | None, float | None, int | None, str | None]] = []
        add = rows.append
        # The rows Recorder.event makes, built here without a call per event; a detail is
        # the JSON it would write (sorted keys; the numbers are ints).
        for t, code, value, height, a, b in zip(e[0].tolist(), e[1].tolist(), self.evalue[:n].tolist(),
                                                e[2].tolist(), e[3].tolist(), e[4].tolist()):
            if code == EV_BLOCK_PRODUCED:
                add((t, EventKind.BLOCK_PRODUCED, node, value, height, f'{{"bytes": {b}, "gas": {a}}}'))
            elif code == EV_BLOCK_COMMITTED:
                add((t, EventKind.BLOCK_COMMITTED, node, None, height, None))
            elif code == EV_QUEUE_DEPTH:
                add((t, EventKind.QUEUE_DEPTH, node, value, None, None))
            elif code == EV_QUEUE_DEPTH_MAX:
                add((t, EventKind.QUEUE_DEPTH_MAX, node, value, None, None))
            elif code == EV_BLOCK_BACKLOG:
                add((t, EventKind.BLOCK_BACKLOG, node, value, None, None))
            elif code == EV_BACKPRESSURE:
                add((t, EventKind.BACKPRESSURE, node, value, None, json.dumps({"state": states[a]}, sort_keys=True)))
        record.event_rows(rows)

    def close_samples(self, record: Recorder, leader: int) -> None:
        """The run ended: the sampled series' closing rows (``sim/changes.py``)."""
        written = self.sc[S_WRITTEN:].tolist()
        kinds = (EventKind.QUEUE_DEPTH, EventKind.QUEUE_DEPTH_MAX, EventKind.BLOCK_BACKLOG)
        last = [(kind, written[2 * i + 1], float(written[2 * i])) for i, kind in enumerate(kinds)]
        record.event_rows(close_rows(int(self.sc[S_SAMPLE_T]), last, record.names[leader]))

    def take_deliveries(self) -> np.ndarray:
        """Deliveries logged since the last call: int64[4, n] (msg, node, t, hops); node and
        hops are 0: the only node validates its own messages, no hop away."""
        n = int(self.sc[S_DELIVERED])
        self.sc[S_DELIVERED] = 0
        rows = np.zeros((4, n), dtype=np.int64)
        rows[0] = self.dlog[0, :n]
        rows[2] = self.dlog[1, :n]
        return rows

    def unsettled(self) -> tuple[np.ndarray, np.ndarray]:
        """At the end: rows for every message still moving, in msg_id order, as pending.

        In a one-node network with no faults nothing is stranded: a message not settled
        is still being validated, queued, served or waiting for block space. Messages
        generated ahead but never due (an interrupted run) are not sent, so not written.
        """
        where = self.records[:, WHERE]
        moving = (where >= 0) & (where < COMMITTED) & (self.records[:, T_SENT] != NULL)
        rows = np.flatnonzero(moving)
        rows = rows[np.argsort(self.records[rows, MSG_ID], kind="stable")]  # msg_id order
        self.records[rows, WHERE] = PENDING
        self.sc[S_TERMINAL] += rows.shape[0]
        return self._rows(rows)
