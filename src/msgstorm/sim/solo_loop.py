"""The compiled one-node loop: ``advance`` and the arrays' layout it works on.

Place in the pipeline: inside the simulator, under ``SoloSequencer`` (``sim/solo.py``),
which owns the arrays, feeds the loop traffic and draws, and turns its logs into history
rows. The loop replays ``ShadowNetwork``'s handlers for a one-node network step by step
(see ``advance``): the same event order (time, then insertion order; sends before events
at equal times), the same random draws in the same order, the same settle order and
events, the same end-of-run check every 64 Python events — so both write the same history.

Why compiled: per message the Python engine spends far more in interpreter overhead
(records, heap tuples, method calls) than on its about 20 arithmetic steps, which numba
runs directly (docs/dev/performance-log.md, "Costs the docstrings name"). Per-message state is a
table of int64 records, one row of fields per message (its updates touch one or two cache
lines), named by row everywhere in the loop.
"""

from __future__ import annotations

import numpy as np

from msgstorm.jit import borrowing, nb
from msgstorm.sim.block_packing import fits_compiled
from msgstorm.sim.seq_core import (
    ARRIVE_DROPPED,
    ARRIVE_SERVED,
    TAKE_NONE,
    arrive,
    engaged_after,
    heap_pop,
    heap_push,
    service_time,
    take_next,
)
from msgstorm.sim.state import (
    AGENT,
    BLOCK,
    COMMITTED,
    DROPPED,
    IN_FLIGHT,
    IN_SERVICE,
    KEY,
    KIND,
    MSG_ID,
    NULL,
    ORIGIN,
    QUEUED,
    SEQ_NO,
    SEQUENCED,
    SIZE,
    T_COMMITTED,
    T_DEQUEUED,
    T_INTENDED,
    T_RECEIVED,
    T_SENT,
    T_SEQUENCED,
    WHERE,
)

# Return codes of ``advance``.
# END: nothing is left before the hard stop; STOP: everything settled (the early end).
NEED_BATCH, END, STOP, YIELD, GROW, REFILL = 0, 1, 2, 3, 4, 5
# Event types on the event heap (keys: time, ties: insertion number, values: msg << 2 | type).
E_TICK, E_SAMPLE, E_VALIDATED, E_SERVICE_DONE = 0, 1, 2, 3
# Codes in the event log (int64[5, n]: t, code, height, a, b; float64 value). a and b are
# the block's gas and bytes for EV_BLOCK_PRODUCED, and a is 1 (engaged) or 0 (released)
# for EV_BACKPRESSURE; other codes leave them 0.
(EV_BLOCK_PRODUCED, EV_BLOCK_COMMITTED, EV_QUEUE_DEPTH, EV_QUEUE_DEPTH_MAX, EV_BLOCK_BACKLOG,
 EV_BACKPRESSURE) = range(6)
# Parameters (int64).
(P_WORKERS, P_BLOCK, P_SAMPLE, P_NEVER, P_END_OF_TRAFFIC, P_MAX_MESSAGES, P_MAX_GAS, P_HEADER,
 P_SERVICE_CONST, P_PROCESSING_CONST, P_STRIDE, P_KEY_FEE, P_WATCH_DEPTH, P_ENGAGE_AT,
 P_SERVE_IDLE, P_FINAL, P_FIRST_ID, P_SENDS) = range(18)
N_PARAMS = 18
# Scalars (int64).
(S_NOW, S_EID, S_HEAP, S_DEPTH, S_BUSY, S_SEQ_HEAD, S_SEQ_TAIL, S_NEXT_SEQ, S_HEIGHT, S_CPU,
 S_SERVICE_I, S_PROCESSING_I, S_DEPTH_MAX, S_STEPS, S_SETTLED, S_EVENTS, S_DELIVERED,
 S_DELIVERY_BUDGET, S_SEND_I, S_TERMINAL, S_COUNT, S_ENGAGED, S_SAMPLE_T) = range(23)
# The sampled series as ``sim/changes.py`` writes them: per series (EV_QUEUE_DEPTH,
# EV_QUEUE_DEPTH_MAX, EV_BLOCK_BACKLOG, in that order) the value written last and when
# (``-1``: none yet), from ``S_WRITTEN``; ``S_SAMPLE_T`` is the last sample's time.
S_WRITTEN = 23
N_SCALARS = S_WRITTEN + 6
FIELDS = WHERE + 1
_FREE = -2  # WHERE of a record row that holds no message
_YIELD_EVERY = 1 << 16
# Both loops look for the end of a run (everything settled or stranded) every 64 Python
# events: often enough that a drain does not idle, rarely enough to cost nothing.
END_CHECK_MASK = 0x3F


@nb.njit(cache=True, inline="always")
def _log_samples(elog: np.ndarray, evalue: np.ndarray, events: int, t: int, sc: np.ndarray,
                 depth: int, depth_max: int, backlog: int) -> int:
    """The sample at ``t``: each series' row if its value changed (``sim/changes.py``'s
    rule; the last written kept in ``sc`` from ``S_WRITTEN``); returns the events logged."""
    sc[S_SAMPLE_T] = t
    for i in range(3):
        value = depth if i == 0 else (depth_max if i == 1 else backlog)
        if sc[S_WRITTEN + 2 * i + 1] < 0 or sc[S_WRITTEN + 2 * i] != value:
            _log_event(elog, evalue, events, t, EV_QUEUE_DEPTH + i, float(value), 0, 0, 0)
            events += 1
            sc[S_WRITTEN + 2 * i] = value
            sc[S_WRITTEN + 2 * i + 1] = t
    return events


# --- the compiled loop ---------------------------------------------------------------------
# ``advance`` keeps the loop's state in local variables, loaded from ``sc`` on entry and
# stored back at its one exit: numba cannot tell the int64 arrays apart, so state kept in
# ``sc`` would be reloaded from memory after every store to the heap or the records.


@nb.njit(cache=True, inline="always")
def _log_event(elog: np.ndarray, evalue: np.ndarray, i: int, t: int, code: int, value: float,
               height: int, a: int, b: int) -> None:
    """Write event ``i`` of the log; the caller counts it."""
    elog[0, i] = t
    elog[1, i] = code
    elog[2, i] = height
    elog[3, i] = a
    elog[4, i] = b
    evalue[i] = value


@borrowing(nogil=True)
def advance(p: np.ndarray, sc: np.ndarray,  # noqa: C901
            ev_t: np.ndarray, ev_eid: np.ndarray, ev_val: np.ndarray, keys: np.ndarray,
            ties: np.ndarray, msgs: np.ndarray, qfees: np.ndarray, qs: np.ndarray,
            run: np.ndarray, run_fees: np.ndarray, seqring: np.ndarray,
            records: np.ndarray, fees: np.ndarray, slog: np.ndarray, elog: np.ndarray,
            evalue: np.ndarray, dlog: np.ndarray, service: np.ndarray, processing: np.ndarray,
            gas_of: np.ndarray, limit: np.ndarray, protected: np.ndarray, send_t: np.ndarray,
            send_row: np.ndarray) -> int:
    """Run sends and events in ShadowNetwork's order until a batch is used up, the run
    ends, or a buffer needs Python (GROW: more room; REFILL: more random draws).

    Each step is ShadowNetwork's handler of the same name, in the same order: a send is
    ``_inject`` + ``_validate_alone``; an arrival at the sequencer ``_intake``; then
    ``_start_service`` / ``_serve``, ``_depth_changed``, ``service_done``,
    ``_block_tick`` (with ``_send_vote``, ``_vote`` and ``_commit``: the node is its own
    quorum) and ``_sample``. Messages are named by their row in ``records`` (the heaps,
    the queue, the sequenced ring and the settle log hold rows); send ``i`` is message
    ``first_id + i`` in row ``send_row[i]``. The queue is the core's (``keys`` to
    ``run_fees``: ``ArrayQueue.arrays``), taken in and out by its steps.
    """
    seq_mask = seqring.shape[0] - 1
    heap_cap = ev_t.shape[0]
    queue_cap = msgs.shape[0]
    slog_cap = slog.shape[0]
    elog_cap = elog.shape[1]
    dlog_cap = dlog.shape[1]
    n_service = service.shape[0]
    n_processing = processing.shape[0]
    # Parameters.
    workers = p[P_WORKERS]
    block_interval = p[P_BLOCK]
    sample_interval = p[P_SAMPLE]
    never = p[P_NEVER]
    end_of_traffic = p[P_END_OF_TRAFFIC]
    max_messages = p[P_MAX_MESSAGES]
    max_gas = p[P_MAX_GAS]
    header = p[P_HEADER]
    service_const = p[P_SERVICE_CONST]
    processing_const = p[P_PROCESSING_CONST]
    stride = p[P_STRIDE]
    key_fee = p[P_KEY_FEE] != 0
    watch_depth = p[P_WATCH_DEPTH] != 0
    engage_at = p[P_ENGAGE_AT]
    serve_idle = p[P_SERVE_IDLE] != 0
    final = p[P_FINAL] != 0
    first_id = p[P_FIRST_ID]
    sends = p[P_SENDS]
    # State.
    now = sc[S_NOW]
    eid = sc[S_EID]
    hn = sc[S_HEAP]
    depth = sc[S_DEPTH]
    busy = sc[S_BUSY]
    seq_head = sc[S_SEQ_HEAD]
    seq_tail = sc[S_SEQ_TAIL]
    next_seq = sc[S_NEXT_SEQ]
    height = sc[S_HEIGHT]
    cpu = sc[S_CPU]
    service_i = sc[S_SERVICE_I]
    processing_i = sc[S_PROCESSING_I]
    depth_max = sc[S_DEPTH_MAX]
    steps = sc[S_STEPS]
    settled = sc[S_SETTLED]
    events = sc[S_EVENTS]
    delivered = sc[S_DELIVERED]
    budget = sc[S_DELIVERY_BUDGET]
    si = sc[S_SEND_I]
    terminal = sc[S_TERMINAL]
    count = sc[S_COUNT]
    engaged = sc[S_ENGAGED]
    work = 0
    code = END
    while True:
        if si >= sends and not final:
            code = NEED_BATCH
            break
        # Room for the largest single step: a block settles every sequenced message.
        backlog = seq_tail - seq_head
        if (hn + workers + 2 > heap_cap or depth + 1 > queue_cap or backlog + 1 > seq_mask + 1
                or settled + backlog + 1 > slog_cap or events + 8 > elog_cap
                or delivered + 1 > dlog_cap):
            code = GROW
            break
        if ((service_const < 0 and service_i + workers > n_service)
                or (processing_const < 0 and processing_i + 1 > n_processing)):
            code = REFILL
            break
        work += 1
        if work >= _YIELD_EVERY:
            code = YIELD
            break
        t_send = send_t[si] if si < sends else never
        t_event = ev_t[0] if hn > 0 else never
        if t_send >= never and t_event >= never:
            code = END
            break
        arrived = -1  # the row of a message reaching the sequencer at ``t`` (_intake)
        start = False  # a worker may take the next queued message (_start_service)
        direct = -1  # a message served without queueing (_intake's hand-over to _serve)
        is_event = t_send > t_event
        if not is_event:
            # A send: the node validates its own message (_inject, _validate_alone).
            t = t_send
            now = t
            m = first_id + si
            row = send_row[si]
            si += 1
            records[row, T_SENT] = t
            begin = cpu if cpu > t else t
            if processing_const >= 0:
                done = begin + processing_const
            else:
                done = begin + processing[processing_i]
                processing_i += 1
            cpu = done
            if stride > 0 and m % stride == 0 and budget > 0:
                budget -= 1
                dlog[0, delivered] = m
                dlog[1, delivered] = done
                delivered += 1
            if done == t:
                arrived = row
            else:
                ev_val[heap_push(ev_t, ev_eid, ev_val, hn, done, eid)] = (row << 2) | E_VALIDATED
                hn += 1
                eid += 1
        else:
            t = t_event
            now = t
            value = ev_val[0]
            heap_pop(ev_t, ev_eid, ev_val, hn)
            hn -= 1
            etype = value & 3
            row = value >> 2
            if etype == E_SERVICE_DONE:  # service_done
                busy -= 1
                records[row, SEQ_NO] = next_seq
                next_seq += 1
                records[row, T_SEQUENCED] = t
                records[row, WHERE] = SEQUENCED
                seqring[seq_tail & seq_mask] = row
                seq_tail += 1
                start = depth > 0
            elif etype == E_VALIDATED:  # _validated_alone
                arrived = row
            elif etype == E_TICK:  # _block_tick
                if t + block_interval < never:
                    ev_val[heap_push(ev_t, ev_eid, ev_val, hn, t + block_interval, eid)] = E_TICK
                    hn += 1
                    eid += 1
                taken = 0
                gas = 0
                size = header
                first = seq_head
                while seq_head < seq_tail:
                    row = seqring[seq_head & seq_mask]
                    g = gas_of[records[row, KIND]]
                    if not fits_compiled(taken, gas, g, max_messages, max_gas):
                        break
                    seq_head += 1
                    taken += 1
                    gas += g
                    size += records[row, SIZE]
                height += 1
                _log_event(elog, evalue, events, t, EV_BLOCK_PRODUCED, float(taken), height, gas,
                           size)
                events += 1
                # The node is the whole quorum: its own vote commits the block at once.
                for i in range(first, first + taken):
                    row = seqring[i & seq_mask]
                    records[row, BLOCK] = height
                    records[row, T_COMMITTED] = t
                    records[row, WHERE] = COMMITTED
                    slog[settled] = row
                    settled += 1
                terminal += taken
                _log_event(elog, evalue, events, t, EV_BLOCK_COMMITTED, 0.0, height, 0, 0)
                events += 1
                # Validating its own block costs the node CPU.
                begin = cpu if cpu > t else t
                if processing_const >= 0:
                    cpu = begin + processing_const
                else:
                    cpu = begin + processing[processing_i]
                    processing_i += 1
            else:  # E_SAMPLE: _sample
                backlog = seq_tail - seq_head
                events = _log_samples(elog, evalue, events, t, sc, depth, depth_max, backlog)
                depth_max = depth
                if t + sample_interval < never:
                    ev_val[heap_push(ev_t, ev_eid, ev_val, hn, t + sample_interval, eid)] = E_SAMPLE
                    hn += 1
                    eid += 1
        depth_changed = False
        if arrived >= 0:  # _intake
            row = arrived
            records[row, T_RECEIVED] = t
            came = arrive(keys, ties, msgs, qfees, qs, key_fee, True, limit, protected,
                          records[row, KIND], True, depth, busy, workers, serve_idle, row,
                          fees[row])
            if came == ARRIVE_DROPPED:
                records[row, WHERE] = DROPPED
                slog[settled] = row
                settled += 1
                terminal += 1
            elif came == ARRIVE_SERVED:
                direct = row  # an idle worker and an empty queue: straight to service
            else:  # queued
                depth += 1
                records[row, WHERE] = QUEUED
                if busy < workers:
                    start = True
                else:
                    depth_changed = True
        if start or direct >= 0:  # _start_service and _serve
            while True:
                if direct >= 0:
                    row = direct
                    direct = -1
                else:
                    took, row, _ = take_next(keys, ties, msgs, qfees, qs, run, run_fees, key_fee,
                                             depth, busy, workers, False, 0.0)
                    if took == TAKE_NONE:
                        break
                    depth -= 1
                records[row, T_DEQUEUED] = t
                records[row, WHERE] = IN_SERVICE
                busy += 1
                duration, service_i = service_time(service, service_i, service_const)
                slot = heap_push(ev_t, ev_eid, ev_val, hn, t + duration, eid)
                ev_val[slot] = (row << 2) | E_SERVICE_DONE
                hn += 1
                eid += 1
            depth_changed = start  # a direct hand-over leaves the depth alone
        if depth_changed:  # _depth_changed and the backpressure's on_depth
            if depth > depth_max:
                depth_max = depth
            if watch_depth:  # DropTailQueue / PriorityShedding (``DropRule``)
                state = engaged_after(engaged, depth, engage_at)
                if state != engaged:
                    engaged = state
                    _log_event(elog, evalue, events, t, EV_BACKPRESSURE, float(depth), 0, state, 0)
                    events += 1
        if is_event:
            steps += 1
            # ShadowNetwork.run looks for the end every 64 events: so does this loop.
            if ((steps & END_CHECK_MASK) == 0 and final and si >= sends and t >= end_of_traffic
                    and terminal >= count):
                code = STOP
                break
    sc[S_NOW] = now
    sc[S_EID] = eid
    sc[S_HEAP] = hn
    sc[S_DEPTH] = depth
    sc[S_BUSY] = busy
    sc[S_SEQ_HEAD] = seq_head
    sc[S_SEQ_TAIL] = seq_tail
    sc[S_NEXT_SEQ] = next_seq
    sc[S_HEIGHT] = height
    sc[S_CPU] = cpu
    sc[S_SERVICE_I] = service_i
    sc[S_PROCESSING_I] = processing_i
    sc[S_DEPTH_MAX] = depth_max
    sc[S_STEPS] = steps
    sc[S_SETTLED] = settled
    sc[S_EVENTS] = events
    sc[S_DELIVERED] = delivered
    sc[S_DELIVERY_BUDGET] = budget
    sc[S_SEND_I] = si
    sc[S_TERMINAL] = terminal
    sc[S_ENGAGED] = engaged
    return code


# --- moving records in and out (called between loop calls) -----------------------------------


@borrowing()
def admit(records: np.ndarray, fees: np.ndarray, free: np.ndarray, n_free: int, msg_id: np.ndarray,
          kind: np.ndarray, agent: np.ndarray, node: np.ndarray, key: np.ndarray, size: np.ndarray,
          t_intended: np.ndarray, fee: np.ndarray, rows: np.ndarray) -> None:
    """A traffic batch's messages into free record rows, taken from the top of the free
    stack (``rows[i]`` is message i's row): every field NULL but the batch's own, in flight."""
    for i in range(msg_id.shape[0]):
        r = free[n_free - 1 - i]
        rows[i] = r
        for f in range(FIELDS):
            records[r, f] = NULL
        records[r, MSG_ID] = msg_id[i]
        records[r, KIND] = kind[i]
        records[r, AGENT] = agent[i]
        records[r, ORIGIN] = node[i]
        records[r, KEY] = key[i]
        records[r, SIZE] = size[i]
        records[r, T_INTENDED] = t_intended[i]
        records[r, WHERE] = IN_FLIGHT
        fees[r] = fee[i]


@borrowing()
def gather(records: np.ndarray, fees: np.ndarray, rows: np.ndarray, table: np.ndarray, fee: np.ndarray,
           offset: int) -> None:
    """The records of ``rows`` as columns from ``offset`` on: ``table[f, offset + i]`` = field
    f of ``rows[i]``."""
    for i in range(rows.shape[0]):
        r = rows[i]
        for f in range(FIELDS):
            table[f, offset + i] = records[r, f]
        fee[offset + i] = fees[r]


@borrowing()
def release(records: np.ndarray, fees: np.ndarray, rows: np.ndarray, table: np.ndarray, fee: np.ndarray,
            offset: int, free: np.ndarray, n_free: int) -> None:
    """``gather`` the records of settled ``rows``, then give the rows back: each is marked
    free and pushed on the free stack (``free[n_free:n_free + len(rows)]``; the caller
    counts them)."""
    gather(records, fees, rows, table, fee, offset)
    for i in range(rows.shape[0]):
        r = rows[i]
        records[r, WHERE] = _FREE
        free[n_free + i] = r
