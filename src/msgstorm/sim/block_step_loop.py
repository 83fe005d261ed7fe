"""The block step's compiled loop: a slice of the leader's intake and service, over arrays.

Place in the pipeline: inside the simulator, under ``BlockStep`` (``sim/block_step.py``),
which owns the arrays and writes what the loop logs into the message records. ``replay``
does, for one slice of virtual time, what ``LoggedIntake.replay`` and ``before`` do one
Python call per message (``Sequencer.intake``, ``_take``, ``_serve``, ``service_done``):
the same operations in the same order, on the configurations ``BlockStep.fits`` allows (the
shared workers only, no hooks, a FIFO or fee-ordered queue, every arrival admitted, the
EIP-1559 price rule or dropping by depth), so the history is the same bit for bit.

What the loop cannot do itself it logs, each kind in its own row of ``logs`` in the order it
happened: a message that joins the fee waiting list (and whether it is marked held), a
message rejected, a service started, a sequence number given. Within one call a message
goes through those in that order only (the base fee does not move inside a slice), so
``BlockStep`` writes them kind by kind. (A message taken in was marked queued before the
call.)
"""

from __future__ import annotations

import numpy as np

from msgstorm.jit import borrowing, nb
from msgstorm.sim.seq_core import (
    ARRIVE_DROPPED,
    ARRIVE_PRICED_OUT,
    ARRIVE_SERVED,
    TAKE_NONE,
    TAKE_PRICED_OUT,
    arrive,
    engaged_after,
    heap_pop,
    heap_push,
    queue_pop,
    service_time,
    take_next,
)

# Scalars (int64), written at the exit (a call's state comes in as arguments). The
# completions' count (``S_CN``) persists from call to call.
# Whether a dropping mode is engaged (``S_ENGAGED``) comes in and goes out with them.
(S_DEPTH, S_DEPTH_MAX, S_BUSY, S_NEXT_SEQ, S_EID, S_SVC_I, S_POS, S_RAN, S_NOW, S_LOGGED, S_JOINED,
 S_CN, S_TOP_T, S_TOP_EID, S_ENGAGED) = range(15)
N_SCALARS = 15
# Parameters (int64), fixed for a run. ``P_DROPS``: backpressure only drops, by the
# ``DropRule`` tables (``limits``, ``protected``: a row a message kind), engaging at
# ``P_ENGAGE_AT``.
(P_SLOTS, P_SVC_CONST, P_PRICED, P_FEE_ORDERED, P_SERVE_IDLE, P_ADMITS_ALL, P_REJECT, P_DROPS,
 P_ENGAGE_AT) = range(9)
N_PARAMS = 9
# How the tail ends: completions before ``limit_t``, at or before it, or before the Python
# event ``(limit_t, limit_eid)``.
BEFORE, AT_OR_BEFORE, BEFORE_EVENT = 0, 1, 2
# The log: five int64 an entry (what, message, time, sequence number, service start), in
# the order done. What: a sequence number given (the message's service start with it), a
# service still going at the exit and started in this call, a message marked held (priced
# out on arrival or as the first of a queue), a message rejected. Every message that joins the fee
# waiting list (marked held or not: the rest of a queue turned away) is also in ``joins``
# and ``join_fees``, in the order they join. A dropping mode adds a message dropped on
# arrival, and its state changing (engaged 1 or released 0 in the sequence number's place,
# the depth in the service start's).
LOG_SERVE, LOG_DONE, LOG_HOLD, LOG_REJECT, LOG_DROP, LOG_STATE = range(6)
LOG_WIDTH = 5
# Rows of the completions' heap (``done``): time, eid, message, epoch, service start.
C_T, C_EID, C_M, C_EPOCH, C_START = range(5)
C_ROWS = 5
NO_TOP = -1  # ``S_TOP_T`` with no completion pending
# Return codes: the slice is done, or the service times ran out (draw more, call again).
DONE, REFILL = 0, 1


@nb.njit(cache=True, inline="always")
def _done_push(done: np.ndarray, n: int, t: int, eid: int, m: int, epoch: int, start: int) -> None:
    """Add a completion to the heap of ``n`` (ordered by time, then eid; its rows move
    with it)."""
    i = heap_push(done[C_T], done[C_EID], done, n, t, eid)
    done[C_M, i] = m
    done[C_EPOCH, i] = epoch
    done[C_START, i] = start


@borrowing()
def done_add(done: np.ndarray, sc: np.ndarray, t: int, eid: int, m: int, epoch: int) -> None:
    """A completion the Python sequencer scheduled, onto the heap (``sc[S_CN]`` counts it;
    its service start is in the record already)."""
    _done_push(done, sc[S_CN], t, eid, m, epoch, -1)
    sc[S_CN] += 1
    sc[S_TOP_T] = done[C_T, 0]
    sc[S_TOP_EID] = done[C_EID, 0]


@nb.njit(cache=True, inline="always")
def _log(log: np.ndarray, n: int, what: int, m: int, t: int, seq_no: int, start: int) -> int:
    j = n * LOG_WIDTH
    log[j] = what
    log[j + 1] = m
    log[j + 2] = t
    log[j + 3] = seq_no
    log[j + 4] = start
    return n + 1


@nb.njit(cache=True, inline="always")
def _serve(done: np.ndarray, cn: int, svc: np.ndarray, svc_i: int, svc_const: int, t: int,
           eid: int, m: int, epoch: int) -> tuple[int, int, int]:
    """``Sequencer._serve``: a worker starts on ``m`` at ``t``, its completion onto the heap
    of ``cn`` after a service time (the constant, else the next draw); ``(svc_i, cn, eid)``
    after."""
    duration, svc_i = service_time(svc, svc_i, svc_const)
    _done_push(done, cn, t + duration, eid, m, epoch, t)
    return svc_i, cn + 1, eid + 1


@nb.njit(cache=True, inline="always")
def _hold(log: np.ndarray, n: int, joins: np.ndarray, join_fees: np.ndarray, joined: int, m: int,
          fee: float, t: int) -> tuple[int, int]:
    """A message marked held, joining the fee waiting list; ``(log entries, joined)`` after."""
    joins[joined] = m
    join_fees[joined] = fee
    return _log(log, n, LOG_HOLD, m, t, 0, 0), joined + 1


@nb.njit(cache=True, inline="always")
def _turn_away(log: np.ndarray, n: int, joins: np.ndarray, join_fees: np.ndarray, joined: int,
               reject: bool, m: int, fee: float, t: int) -> tuple[int, int]:
    """A message priced out (on arrival, or taken from the queue under a risen base fee):
    rejected, or marked held and joining the fee waiting list; ``(log entries, joined)``."""
    if reject:
        return _log(log, n, LOG_REJECT, m, t, 0, 0), joined
    return _hold(log, n, joins, join_fees, joined, m, fee, t)


@nb.njit(cache=True, inline="always")
def _on_depth(log: np.ndarray, n: int, engaged: int, depth: int, engage_at: int,
              t: int) -> tuple[int, int]:
    """``Backpressure.on_depth`` of a dropping mode (``engaged_after``), a change logged;
    ``(engaged, log entries)``."""
    state = engaged_after(engaged, depth, engage_at)
    if state == engaged:
        return engaged, n
    return state, _log(log, n, LOG_STATE, 0, t, state, depth)


@borrowing()
def replay(rows: np.ndarray, flags: np.ndarray, fees: np.ndarray, kinds: np.ndarray,  # noqa: C901
           keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, qfees: np.ndarray, qs: np.ndarray,
           run: np.ndarray, run_fees: np.ndarray, done: np.ndarray, svc: np.ndarray, p: np.ndarray,
           sc: np.ndarray, log: np.ndarray, joins: np.ndarray, join_fees: np.ndarray,
           limits: np.ndarray, protected: np.ndarray, base_fee: float, mode: int, limit_t: int,
           limit_eid: int, stamp: int, epoch: int, leader: int, depth: int, depth_max: int,
           busy: int, next_seq: int, eid: int, svc_i: int, now: int, pos: int) -> int:
    """The log's rows from ``pos`` on (``rows``: the kernel's node, item, time; the leader
    takes the item where ``flags`` holds ``stamp``, at its fee in ``fees``, of its message
    kind in ``kinds`` when backpressure drops), each after the
    completions due at or before it, then the completions before the limit (``mode``).
    Returns ``REFILL`` before a step that could need more service times than ``svc`` holds
    (``sc[S_POS]`` says where to go on)."""
    slots = p[P_SLOTS]
    svc_const = p[P_SVC_CONST]
    priced = p[P_PRICED] != 0
    fee_ordered = p[P_FEE_ORDERED] != 0
    serve_idle = p[P_SERVE_IDLE] != 0
    admits_all = p[P_ADMITS_ALL] != 0
    reject = p[P_REJECT] != 0
    by_depth = p[P_DROPS] != 0
    engage_at = p[P_ENGAGE_AT]
    engaged = sc[S_ENGAGED]
    first_eid = eid  # completions from here on were scheduled in this call
    ran = 0
    logged = 0
    joined = 0
    cn = sc[S_CN]
    n_svc = len(svc)
    n_rows = rows.shape[1]
    code = DONE
    while True:
        # One step: a completion due before the next row (or in the tail), or the next row.
        if svc_const < 0 and svc_i + slots > n_svc:
            code = REFILL
            break
        take_at = -1  # a time at which idle workers take from the queue (``Sequencer._take``)
        if pos < n_rows:
            t = rows[2, pos]
            step_row = not (cn and done[C_T, 0] <= t)
        else:
            if not cn:
                break
            tc = done[C_T, 0]
            if mode == BEFORE:
                due = tc < limit_t
            elif mode == AT_OR_BEFORE:
                due = tc <= limit_t
            else:
                due = tc < limit_t or (tc == limit_t and done[C_EID, 0] < limit_eid)
            if not due:
                break
            step_row = False
        if not step_row:  # ``Sequencer.service_done``
            tc = done[C_T, 0]
            m = done[C_M, 0]
            m_epoch = done[C_EPOCH, 0]
            start = done[C_START, 0]
            heap_pop(done[C_T], done[C_EID], done, cn)
            cn -= 1
            ran += 1
            if pos >= n_rows:
                now = tc
            if m_epoch != epoch:
                continue  # the sequencer crashed while serving it
            busy -= 1
            logged = _log(log, logged, LOG_DONE, m, tc, next_seq, start)
            next_seq += 1
            if depth:
                take_at = tc
        else:  # ``Sequencer.intake`` (a standby's row only moves the clock)
            i = pos
            pos += 1
            now = t
            if rows[0, i] != leader or flags[i] != stamp:
                continue
            m = rows[1, i]
            fee = fees[i]
            came = arrive(keys, ties, msgs, qfees, qs, fee_ordered, by_depth, limits, protected,
                          kinds[i], admits_all or by_depth or fee >= base_fee, depth, busy, slots,
                          serve_idle, m, fee)
            if came == ARRIVE_DROPPED:
                logged = _log(log, logged, LOG_DROP, m, t, 0, 0)
            elif came == ARRIVE_PRICED_OUT:
                logged, joined = _turn_away(log, logged, joins, join_fees, joined, reject, m,
                                            fee, t)
            elif came == ARRIVE_SERVED:
                busy += 1
                svc_i, cn, eid = _serve(done, cn, svc, svc_i, svc_const, t, eid, m, epoch)
            else:  # queued
                depth += 1
                if busy < slots:
                    take_at = t
                else:  # ``Sequencer.depth_changed``
                    if depth > depth_max:
                        depth_max = depth
                    if by_depth:
                        engaged, logged = _on_depth(log, logged, engaged, depth, engage_at, t)
        if take_at < 0:
            continue
        while True:  # ``Sequencer._take``
            took, m, fee = take_next(keys, ties, msgs, qfees, qs, run, run_fees, fee_ordered,
                                     depth, busy, slots, priced, base_fee)
            if took == TAKE_NONE:
                break
            depth -= 1
            if took == TAKE_PRICED_OUT:  # ``Sequencer._priced_out``
                logged, joined = _turn_away(log, logged, joins, join_fees, joined, reject, m, fee,
                                            take_at)
                if fee_ordered:  # ``Sequencer._price_out_rest``: the rest in pop order
                    while depth:
                        m, fee = queue_pop(keys, ties, msgs, qfees, qs, run, run_fees, fee_ordered)
                        depth -= 1
                        if reject:
                            logged = _log(log, logged, LOG_REJECT, m, take_at, 0, 0)
                        else:
                            joins[joined] = m
                            join_fees[joined] = fee
                            joined += 1
                continue
            busy += 1
            svc_i, cn, eid = _serve(done, cn, svc, svc_i, svc_const, take_at, eid, m, epoch)
        if depth > depth_max:
            depth_max = depth
        if by_depth:  # ``Sequencer._take`` ends with ``depth_changed``
            engaged, logged = _on_depth(log, logged, engaged, depth, engage_at, take_at)
    for k in range(cn):  # services started in this call and still going
        if done[C_EID, k] >= first_eid:
            logged = _log(log, logged, LOG_SERVE, done[C_M, k], done[C_START, k], 0, 0)
    sc[S_DEPTH] = depth
    sc[S_DEPTH_MAX] = depth_max
    sc[S_BUSY] = busy
    sc[S_NEXT_SEQ] = next_seq
    sc[S_EID] = eid
    sc[S_SVC_I] = svc_i
    sc[S_POS] = pos
    sc[S_RAN] = ran
    sc[S_NOW] = now
    sc[S_LOGGED] = logged
    sc[S_JOINED] = joined
    sc[S_CN] = cn
    sc[S_ENGAGED] = engaged
    sc[S_TOP_T] = done[C_T, 0] if cn else NO_TOP
    sc[S_TOP_EID] = done[C_EID, 0] if cn else NO_TOP
    return code
