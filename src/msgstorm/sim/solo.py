"""The sequencer alone: a one-node network's whole event loop, compiled.

Place in the pipeline: inside the simulator, beside ``ShadowNetwork``. A network of one
node (a queueing experiment; a load ramp against a single matching engine) gossips
nothing, so every event is the sequencer's: a send validated on the node's CPU,
admission through backpressure, the queue policy, the workers, blocks (committed at
once: the node is its own quorum) and queue samples. ``ShadowNetwork`` runs such a
scenario here when ``solo_plan`` accepts it, and in its Python loop otherwise.

This is the same engine, not a model of it: the loop below replays ``ShadowNetwork``'s
rules step by step — the same event order (time, then insertion order; sends before
events at equal times), the same random draws in the same order, the same settle order
and events, the same end-of-run check every 1,024 events — so both write the same history.
``tests/test_sim_solo.py`` runs scenarios through both and compares every table.

Why compiled: per message the Python engine spends about 4 us in interpreter overhead
(records, heap tuples, method calls) on about 20 arithmetic steps; numba runs them in
tens of nanoseconds. Per-message state lives in a ring of int64 records (one row of fields per message, so a
message's updates touch one or two cache lines) indexed by ``msg_id & mask`` that holds the messages not yet settled, so memory follows what is in
flight; settled messages leave through a log that ``SoloSequencer`` turns into rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from msgstorm.scenario.schema import MESSAGE_KINDS, DropTail, Scenario, Shed, Unbounded
from msgstorm.sim.backpressure import HYSTERESIS
from msgstorm.sim.sampling import Sampler
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
    PENDING,
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

__all__ = ["SoloPlan", "SoloSequencer", "solo_plan"]

# Return codes of ``advance``.
NEED_BATCH, END, STOP, YIELD, GROW, REFILL = 0, 1, 2, 3, 4, 5
# Event types on the heap (int64[capacity, 4]: t, insertion number, type, msg).
E_TICK, E_SAMPLE, E_VALIDATED, E_SERVICE_DONE = 0, 1, 2, 3
# Codes in the event log (int64[5, n]: t, code, height, a, b; float64 value).
EV_BLOCK_PRODUCED, EV_BLOCK_COMMITTED, EV_QUEUE_DEPTH, EV_QUEUE_DEPTH_MAX, EV_BLOCK_BACKLOG, EV_BACKPRESSURE = range(6)
# Parameters (int64).
(P_WORKERS, P_BLOCK, P_SAMPLE, P_NEVER, P_END_OF_TRAFFIC, P_MAX_MESSAGES, P_MAX_GAS, P_HEADER,
 P_SERVICE_CONST, P_PROCESSING_CONST, P_STRIDE, P_KEY_FEE, P_WATCH_DEPTH, P_ENGAGE_AT,
 P_SERVE_IDLE, P_FINAL, P_FIRST_ID, P_SENDS) = range(18)
N_PARAMS = 18
# Scalars (int64).
(S_NOW, S_EID, S_HEAP, S_DEPTH, S_ARRIVALS, S_BUSY, S_SEQ_HEAD, S_SEQ_TAIL, S_NEXT_SEQ, S_HEIGHT,
 S_CPU, S_SERVICE_I, S_PROCESSING_I, S_DEPTH_MAX, S_STEPS, S_SETTLED, S_EVENTS, S_DELIVERED,
 S_DELIVERY_BUDGET, S_SEND_I, S_TERMINAL, S_COUNT, S_ENGAGED, S_VALIDATING) = range(24)
N_SCALARS = 24
FIELDS = WHERE + 1
_YIELD_EVERY = 1 << 16


@dataclass(frozen=True)
class SoloPlan:
    """What the compiled loop needs to know about a scenario it accepts."""

    key_fee: bool  # the queue serves the highest fee first (else arrival order)
    serve_idle: bool  # work-conserving policy: an idle worker takes an arrival at once
    watch_depth: bool  # backpressure reacts to depth (drop_tail, shed)
    engage_at: int  # depth at which it engages ("dropping" / "shedding")
    states: tuple[str, str]  # the backpressure event's state names: (released, engaged)
    limit: tuple[int, ...]  # per kind: arrivals are dropped at this depth
    protected: tuple[bool, ...]  # per kind: never dropped


def solo_plan(scenario: Scenario, nodes: int, policy: Any) -> SoloPlan | None:
    """The plan for a scenario the compiled loop runs exactly, or None (Python loop).

    Accepted: one node, no faults, backpressure that only drops (unbounded, drop_tail,
    shed), and a queue policy that declares a static ``order_key`` ("arrival" or "fee").
    """
    if nodes != 1 or scenario.faults:
        return None
    key = getattr(policy, "order_key", None)
    if key not in ("arrival", "fee"):
        return None
    kinds = len(MESSAGE_KINDS)
    spec = scenario.backpressure
    never = 1 << 62
    if isinstance(spec, Unbounded):
        return SoloPlan(key == "fee", bool(getattr(policy, "work_conserving", False)), False, never,
                        ("normal", "normal"), (never,) * kinds, (False,) * kinds)
    if isinstance(spec, DropTail):
        return SoloPlan(key == "fee", bool(getattr(policy, "work_conserving", False)), True, spec.capacity,
                        ("normal", "dropping"), (spec.capacity,) * kinds, (False,) * kinds)
    if isinstance(spec, Shed):
        limit = [spec.capacity] * kinds
        for kind, level in spec.levels.items():
            limit[MESSAGE_KINDS.index(kind)] = int(level * spec.capacity)
        protected = tuple(kind in spec.protect for kind in MESSAGE_KINDS)
        sheddable = [lim for lim, guarded in zip(limit, protected) if not guarded]
        lowest = min(sheddable) if sheddable else spec.capacity
        return SoloPlan(key == "fee", bool(getattr(policy, "work_conserving", False)), True, lowest,
                        ("normal", "shedding"), tuple(limit), protected)
    return None  # suspend holds senders, EIP-1559 prices admission: the Python loop does these


# --- the compiled loop ---------------------------------------------------------------------
# The helpers are inlined into ``advance`` at numba's level: called as functions, each call
# passes a dozen array structs, which cost a quarter of the loop's time (0.25 s against
# 0.19 s per million M/M/1 customers); the price is a longer first compile (about 9 s
# instead of 4, once per install: the machine code is cached).


@nb.njit(cache=True, inline="always")
def _push(heap: np.ndarray, sc: np.ndarray, t: int, etype: int, msg: int) -> None:
    eid = sc[S_EID]
    sc[S_EID] = eid + 1
    i = sc[S_HEAP]
    sc[S_HEAP] = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        pt = heap[parent, 0]
        if pt < t or (pt == t and heap[parent, 1] < eid):
            break
        heap[i, 0] = pt
        heap[i, 1] = heap[parent, 1]
        heap[i, 2] = heap[parent, 2]
        heap[i, 3] = heap[parent, 3]
        i = parent
    heap[i, 0] = t
    heap[i, 1] = eid
    heap[i, 2] = etype
    heap[i, 3] = msg


@nb.njit(cache=True, inline="always")
def _pop(heap: np.ndarray, sc: np.ndarray) -> None:
    last = sc[S_HEAP] - 1
    sc[S_HEAP] = last
    if last == 0:
        return
    t = heap[last, 0]
    eid = heap[last, 1]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= last:
            break
        right = child + 1
        if right < last and (heap[right, 0] < heap[child, 0]
                             or (heap[right, 0] == heap[child, 0] and heap[right, 1] < heap[child, 1])):
            child = right
        if t < heap[child, 0] or (t == heap[child, 0] and eid < heap[child, 1]):
            break
        for col in range(4):
            heap[i, col] = heap[child, col]
        i = child
    for col in range(4):
        heap[i, col] = heap[last, col]


@nb.njit(cache=True, inline="always")
def _queue_push(qkey: np.ndarray, qarr: np.ndarray, qmsg: np.ndarray, n: int, key: float,
                arrival: int, msg: int) -> None:
    """The policy queue: a binary heap on (key, arrival); FIFO is key 0 for everyone."""
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if qkey[parent] < key or (qkey[parent] == key and qarr[parent] < arrival):
            break
        qkey[i] = qkey[parent]
        qarr[i] = qarr[parent]
        qmsg[i] = qmsg[parent]
        i = parent
    qkey[i] = key
    qarr[i] = arrival
    qmsg[i] = msg


@nb.njit(cache=True, inline="always")
def _queue_pop(qkey: np.ndarray, qarr: np.ndarray, qmsg: np.ndarray, n: int) -> int:
    top = int(qmsg[0])
    last = n - 1
    if last == 0:
        return top
    key = qkey[last]
    arrival = qarr[last]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= last:
            break
        right = child + 1
        if right < last and (qkey[right] < qkey[child]
                             or (qkey[right] == qkey[child] and qarr[right] < qarr[child])):
            child = right
        if key < qkey[child] or (key == qkey[child] and arrival < qarr[child]):
            break
        qkey[i] = qkey[child]
        qarr[i] = qarr[child]
        qmsg[i] = qmsg[child]
        i = child
    qkey[i] = key
    qarr[i] = arrival
    qmsg[i] = qmsg[last]
    return top


@nb.njit(cache=True)
def _log_event(elog: np.ndarray, evalue: np.ndarray, sc: np.ndarray, t: int, code: int,
               value: float, height: int, a: int, b: int) -> None:
    i = sc[S_EVENTS]
    elog[0, i] = t
    elog[1, i] = code
    elog[2, i] = height
    elog[3, i] = a
    elog[4, i] = b
    evalue[i] = value
    sc[S_EVENTS] = i + 1


@nb.njit(cache=True, inline="always")
def _settle(slog: np.ndarray, sc: np.ndarray, ring: np.ndarray, mask: int, m: int, status: int) -> None:
    ring[m & mask, WHERE] = status
    slog[sc[S_SETTLED]] = m
    sc[S_SETTLED] += 1
    sc[S_TERMINAL] += 1


@nb.njit(cache=True, inline="always")
def _depth_changed(p: np.ndarray, sc: np.ndarray, elog: np.ndarray, evalue: np.ndarray, t: int) -> None:
    depth = sc[S_DEPTH]
    if depth > sc[S_DEPTH_MAX]:
        sc[S_DEPTH_MAX] = depth
    if p[P_WATCH_DEPTH] == 0:
        return
    # DropTailQueue / PriorityShedding.on_depth: engage at a depth, release below 90% of it.
    if sc[S_ENGAGED] == 0 and depth >= p[P_ENGAGE_AT]:
        sc[S_ENGAGED] = 1
        _log_event(elog, evalue, sc, t, EV_BACKPRESSURE, float(depth), 0, 1, 0)
    elif sc[S_ENGAGED] != 0 and depth < HYSTERESIS * p[P_ENGAGE_AT]:
        sc[S_ENGAGED] = 0
        _log_event(elog, evalue, sc, t, EV_BACKPRESSURE, float(depth), 0, 0, 0)


@nb.njit(cache=True, inline="always")
def _serve(p: np.ndarray, sc: np.ndarray, heap: np.ndarray, ring: np.ndarray, mask: int,
           service: np.ndarray, t: int, m: int) -> None:
    slot = m & mask
    ring[slot, T_DEQUEUED] = t
    ring[slot, WHERE] = IN_SERVICE
    sc[S_BUSY] += 1
    if p[P_SERVICE_CONST] >= 0:
        duration = p[P_SERVICE_CONST]
    else:
        duration = service[sc[S_SERVICE_I]]
        sc[S_SERVICE_I] += 1
    _push(heap, sc, t + duration, E_SERVICE_DONE, m)


@nb.njit(cache=True, inline="always")
def _start_service(p: np.ndarray, sc: np.ndarray, heap: np.ndarray, ring: np.ndarray, mask: int,
                   service: np.ndarray, qkey: np.ndarray, qarr: np.ndarray, qmsg: np.ndarray,
                   elog: np.ndarray, evalue: np.ndarray, t: int) -> None:
    while sc[S_BUSY] < p[P_WORKERS] and sc[S_DEPTH] > 0:
        m = _queue_pop(qkey, qarr, qmsg, sc[S_DEPTH])
        sc[S_DEPTH] -= 1
        _serve(p, sc, heap, ring, mask, service, t, m)
    _depth_changed(p, sc, elog, evalue, t)


@nb.njit(cache=True, inline="always")
def _intake(p: np.ndarray, sc: np.ndarray, heap: np.ndarray, ring: np.ndarray, fees: np.ndarray,
            mask: int, service: np.ndarray, qkey: np.ndarray, qarr: np.ndarray, qmsg: np.ndarray,
            slog: np.ndarray, elog: np.ndarray, evalue: np.ndarray,
            limit: np.ndarray, protected: np.ndarray, t: int, m: int) -> None:
    slot = m & mask
    ring[slot, T_RECEIVED] = t
    kind = ring[slot, KIND]
    if protected[kind] == 0 and sc[S_DEPTH] >= limit[kind]:
        _settle(slog, sc, ring, mask, m, DROPPED)
        return
    if sc[S_DEPTH] == 0 and sc[S_BUSY] < p[P_WORKERS] and p[P_SERVE_IDLE] != 0:
        _serve(p, sc, heap, ring, mask, service, t, m)
        return
    key = -fees[slot] if p[P_KEY_FEE] != 0 else 0.0
    _queue_push(qkey, qarr, qmsg, sc[S_DEPTH], key, sc[S_ARRIVALS], m)
    sc[S_ARRIVALS] += 1
    sc[S_DEPTH] += 1
    ring[slot, WHERE] = QUEUED
    if sc[S_BUSY] < p[P_WORKERS]:
        _start_service(p, sc, heap, ring, mask, service, qkey, qarr, qmsg, elog, evalue, t)
    else:
        _depth_changed(p, sc, elog, evalue, t)


@nb.njit(cache=True)
def _block_tick(p: np.ndarray, sc: np.ndarray, heap: np.ndarray, ring: np.ndarray, mask: int,
                seqring: np.ndarray, slog: np.ndarray, elog: np.ndarray, evalue: np.ndarray,
                gas_of: np.ndarray, processing: np.ndarray, t: int) -> None:
    if t + p[P_BLOCK] < p[P_NEVER]:
        _push(heap, sc, t + p[P_BLOCK], E_TICK, 0)
    seq_mask = seqring.shape[0] - 1
    taken = 0
    gas = 0
    size = p[P_HEADER]
    height = sc[S_HEIGHT] + 1
    first = sc[S_SEQ_HEAD]
    while sc[S_SEQ_HEAD] < sc[S_SEQ_TAIL] and taken < p[P_MAX_MESSAGES]:
        m = seqring[sc[S_SEQ_HEAD] & seq_mask]
        slot = m & mask
        g = gas_of[ring[slot, KIND]]
        if p[P_MAX_GAS] >= 0 and gas + g > p[P_MAX_GAS]:
            break
        sc[S_SEQ_HEAD] += 1
        taken += 1
        gas += g
        size += ring[slot, SIZE]
    _log_event(elog, evalue, sc, t, EV_BLOCK_PRODUCED, float(taken), height, gas, size)
    sc[S_HEIGHT] = height
    # The node is the whole quorum: its own vote commits the block at once.
    for i in range(first, first + taken):
        m = seqring[i & seq_mask]
        slot = m & mask
        ring[slot, BLOCK] = height
        ring[slot, T_COMMITTED] = t
        _settle(slog, sc, ring, mask, m, COMMITTED)
    _log_event(elog, evalue, sc, t, EV_BLOCK_COMMITTED, 0.0, height, 0, 0)
    # Validating its own block costs the node CPU, as in ShadowNetwork._block_tick.
    start = sc[S_CPU] if sc[S_CPU] > t else t
    if p[P_PROCESSING_CONST] >= 0:
        sc[S_CPU] = start + p[P_PROCESSING_CONST]
    else:
        sc[S_CPU] = start + processing[sc[S_PROCESSING_I]]
        sc[S_PROCESSING_I] += 1


@nb.njit(cache=True)
def advance(p: np.ndarray, sc: np.ndarray, heap: np.ndarray, qkey: np.ndarray, qarr: np.ndarray,
            qmsg: np.ndarray, seqring: np.ndarray, ring: np.ndarray, fees: np.ndarray,
            slog: np.ndarray, elog: np.ndarray, evalue: np.ndarray, dlog: np.ndarray,
            service: np.ndarray, processing: np.ndarray, gas_of: np.ndarray, limit: np.ndarray,
            protected: np.ndarray, send_t: np.ndarray) -> int:
    """Run sends and events in ShadowNetwork's order until a batch is used up, the run
    ends, or a buffer needs Python (GROW: more room; REFILL: more random draws)."""
    mask = ring.shape[0] - 1
    never = p[P_NEVER]
    sends = p[P_SENDS]
    workers = p[P_WORKERS]
    work = 0
    while True:
        si = sc[S_SEND_I]
        if si >= sends and p[P_FINAL] == 0:
            return NEED_BATCH
        # Room for the largest single step: a block settles every sequenced message.
        backlog = sc[S_SEQ_TAIL] - sc[S_SEQ_HEAD]
        if (sc[S_HEAP] + workers + 2 > heap.shape[0] or sc[S_DEPTH] + 1 > qkey.shape[0]
                or backlog + 1 > seqring.shape[0] or sc[S_SETTLED] + backlog + 1 > slog.shape[0]
                or sc[S_EVENTS] + 8 > elog.shape[1] or sc[S_DELIVERED] + 1 > dlog.shape[1]):
            return GROW
        if ((p[P_SERVICE_CONST] < 0 and sc[S_SERVICE_I] + workers > service.shape[0])
                or (p[P_PROCESSING_CONST] < 0 and sc[S_PROCESSING_I] + 1 > processing.shape[0])):
            return REFILL
        work += 1
        if work >= _YIELD_EVERY:
            return YIELD
        t_send = send_t[si] if si < sends else never
        t_event = heap[0, 0] if sc[S_HEAP] > 0 else never
        if t_send >= never and t_event >= never:
            return END
        if t_send <= t_event:
            # A send: the node validates its own message (ShadowNetwork._validate_alone).
            sc[S_NOW] = t_send
            m = p[P_FIRST_ID] + si
            sc[S_SEND_I] = si + 1
            slot = m & mask
            ring[slot, T_SENT] = t_send
            start = sc[S_CPU] if sc[S_CPU] > t_send else t_send
            if p[P_PROCESSING_CONST] >= 0:
                done = start + p[P_PROCESSING_CONST]
            else:
                done = start + processing[sc[S_PROCESSING_I]]
                sc[S_PROCESSING_I] += 1
            sc[S_CPU] = done
            stride = p[P_STRIDE]
            if stride > 0 and m % stride == 0 and sc[S_DELIVERY_BUDGET] > 0:
                sc[S_DELIVERY_BUDGET] -= 1
                dlog[0, sc[S_DELIVERED]] = m
                dlog[1, sc[S_DELIVERED]] = done
                sc[S_DELIVERED] += 1
            if done == t_send:
                _intake(p, sc, heap, ring, fees, mask, service, qkey, qarr, qmsg, slog, elog, evalue,
                        limit, protected, t_send, m)
            else:
                sc[S_VALIDATING] += 1
                _push(heap, sc, done, E_VALIDATED, m)
            continue
        t = t_event
        etype = heap[0, 2]
        m = heap[0, 3]
        _pop(heap, sc)
        sc[S_NOW] = t
        if etype == E_SERVICE_DONE:
            sc[S_BUSY] -= 1
            slot = m & mask
            ring[slot, SEQ_NO] = sc[S_NEXT_SEQ]
            sc[S_NEXT_SEQ] += 1
            ring[slot, T_SEQUENCED] = t
            ring[slot, WHERE] = SEQUENCED
            seqring[sc[S_SEQ_TAIL] & (seqring.shape[0] - 1)] = m
            sc[S_SEQ_TAIL] += 1
            if sc[S_DEPTH] > 0:
                _start_service(p, sc, heap, ring, mask, service, qkey, qarr, qmsg, elog, evalue, t)
        elif etype == E_VALIDATED:
            sc[S_VALIDATING] -= 1
            _intake(p, sc, heap, ring, fees, mask, service, qkey, qarr, qmsg, slog, elog, evalue,
                    limit, protected, t, m)
        elif etype == E_TICK:
            _block_tick(p, sc, heap, ring, mask, seqring, slog, elog, evalue, gas_of, processing, t)
        else:  # E_SAMPLE
            _log_event(elog, evalue, sc, t, EV_QUEUE_DEPTH, float(sc[S_DEPTH]), 0, 0, 0)
            _log_event(elog, evalue, sc, t, EV_QUEUE_DEPTH_MAX, float(sc[S_DEPTH_MAX]), 0, 0, 0)
            _log_event(elog, evalue, sc, t, EV_BLOCK_BACKLOG, float(sc[S_SEQ_TAIL] - sc[S_SEQ_HEAD]), 0, 0, 0)
            sc[S_DEPTH_MAX] = sc[S_DEPTH]
            if t + p[P_SAMPLE] < never:
                _push(heap, sc, t + p[P_SAMPLE], E_SAMPLE, 0)
        sc[S_STEPS] += 1
        # ShadowNetwork.run looks for the end every 1,024 events: so does this loop.
        if (sc[S_STEPS] & 0x3FF) == 0 and p[P_FINAL] != 0 and sc[S_SEND_I] >= sends \
                and t >= p[P_END_OF_TRAFFIC] and sc[S_TERMINAL] >= sc[S_COUNT]:
            return STOP


@nb.njit(cache=True)
def _oldest_unsettled(ring: np.ndarray, lo: int, count: int) -> int:
    mask = ring.shape[0] - 1
    while lo < count and ring[lo & mask, WHERE] >= COMMITTED:
        lo += 1
    return lo


# --- the Python side -------------------------------------------------------------------------


class SoloSequencer:
    """Owns the compiled loop's arrays, feeds it traffic batches and draws, and turns its
    logs into history rows and events through ``ShadowNetwork``'s recorder."""

    def __init__(self, plan: SoloPlan, scenario: Scenario, processing: Sampler, service: Sampler,
                 delivery_stride: int, delivery_budget: int) -> None:
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
        p[P_MAX_GAS] = -1 if blocks.max_gas is None else blocks.max_gas
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
        self.gas_of = np.asarray([blocks.gas.get(kind, 21_000) for kind in MESSAGE_KINDS], dtype=np.int64)  # type: ignore[call-overload]
        self.limit = np.asarray(plan.limit, dtype=np.int64)
        self.protected = np.asarray(plan.protected, dtype=np.uint8)
        self.heap = np.zeros((1 << 10, 4), dtype=np.int64)
        self.qkey = np.zeros(1 << 10, dtype=np.float64)
        self.qarr = np.zeros(1 << 10, dtype=np.int64)
        self.qmsg = np.zeros(1 << 10, dtype=np.int64)
        self.seqring = np.zeros(1 << 10, dtype=np.int64)
        self.ring = np.zeros((1 << 12, FIELDS), dtype=np.int64)
        self.fees = np.zeros(1 << 12, dtype=np.float64)
        self.slog = np.zeros(1 << 14, dtype=np.int64)
        self.elog = np.zeros((5, 1 << 10), dtype=np.int64)
        self.evalue = np.zeros(1 << 10, dtype=np.float64)
        self.dlog = np.zeros((2, 1 << 12), dtype=np.int64)
        self.send_t = np.zeros(0, dtype=np.int64)
        self._service_sampler = service
        self._processing_sampler = processing
        self.service = np.zeros(0, dtype=np.int64)
        self.processing = np.zeros(0, dtype=np.int64)
        self.lo = 0  # the oldest msg_id that may still be unsettled
        self.settled: list[tuple[np.ndarray, np.ndarray]] = []  # rows out of the settle log, not yet taken
        # The first block tick and sample, pushed as ShadowNetwork.run pushes them.
        self._push_initial(E_TICK, blocks.interval)
        self._push_initial(E_SAMPLE, run.sample_interval)

    def _push_initial(self, etype: int, t: int) -> None:
        _push(self.heap, self.sc, t, etype, 0)

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
        # Rows of settled messages must be taken before new messages reuse their slots.
        self._keep_settled()
        self.lo = int(_oldest_unsettled(self.ring, self.lo, count))
        need = count + n - self.lo
        if need > self.ring.shape[0]:
            self._grow_ring(need)
        size = self.ring.shape[0]
        start = count & (size - 1)
        # The batch's rows are one slice of the ring, or two where it wraps around.
        split = min(n, size - start)
        for rows, part in ((slice(start, start + split), slice(0, split)), (slice(0, n - split), slice(split, n))):
            block = self.ring[rows]
            block[:] = NULL
            block[:, MSG_ID] = batch.msg_id[part]
            block[:, KIND] = batch.kind[part]
            block[:, AGENT] = batch.agent[part]
            block[:, ORIGIN] = batch.node[part]
            block[:, KEY] = batch.key[part]
            block[:, SIZE] = batch.size[part]
            block[:, T_INTENDED] = batch.t_intended[part]
            block[:, WHERE] = IN_FLIGHT
            self.fees[rows] = batch.fee[part]
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

    def advance(self) -> int:
        """Run until the loop needs a batch (NEED_BATCH), yields (YIELD) or ends (END, STOP)."""
        while True:
            code = advance(self.p, self.sc, self.heap, self.qkey, self.qarr, self.qmsg, self.seqring,
                           self.ring, self.fees, self.slog, self.elog, self.evalue, self.dlog,
                           self.service, self.processing, self.gas_of, self.limit, self.protected,
                           self.send_t)
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
        while sc[S_HEAP] + self.p[P_WORKERS] + 2 > self.heap.shape[0]:
            self.heap = np.concatenate([self.heap, np.zeros_like(self.heap)])
        if sc[S_DEPTH] + 1 > self.qkey.shape[0]:
            self.qkey = np.concatenate([self.qkey, np.zeros_like(self.qkey)])
            self.qarr = np.concatenate([self.qarr, np.zeros_like(self.qarr)])
            self.qmsg = np.concatenate([self.qmsg, np.zeros_like(self.qmsg)])
        if backlog + 1 > self.seqring.shape[0]:
            # Unroll the ring into one twice as large, keeping head and tail positions.
            old = self.seqring
            new = np.zeros(2 * old.shape[0], dtype=np.int64)
            positions = np.arange(sc[S_SEQ_HEAD], sc[S_SEQ_TAIL])
            new[positions & (new.shape[0] - 1)] = old[positions & (old.shape[0] - 1)]
            self.seqring = new
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
        """Move the settle log's rows aside (for take_settled) so the log can be reused."""
        if self.sc[S_SETTLED]:
            self.settled.append(self._settled_rows())

    def _refill(self) -> None:
        # The Samplers' own streams, drawn block by block as Sampler.__call__ draws them, so
        # both loops see the same service and processing times in the same order.
        need = int(self.p[P_WORKERS]) + 1
        rest = self.service[self.sc[S_SERVICE_I]:]
        while self._service_sampler.constant is None and rest.shape[0] < need:
            rest = np.concatenate([rest, self._service_sampler.draw_block()])
        self.service, self.sc[S_SERVICE_I] = rest, 0
        rest = self.processing[self.sc[S_PROCESSING_I]:]
        while self._processing_sampler.constant is None and rest.shape[0] < need:
            rest = np.concatenate([rest, self._processing_sampler.draw_block()])
        self.processing, self.sc[S_PROCESSING_I] = rest, 0

    def _grow_ring(self, need: int) -> None:
        old = self.ring
        size = old.shape[0]
        while size < need:
            size *= 2
        ring = np.zeros((size, FIELDS), dtype=np.int64)
        fees = np.zeros(size, dtype=np.float64)
        ids = np.arange(self.lo, self.count)
        ring[ids & (size - 1)] = old[ids & (old.shape[0] - 1)]
        fees[ids & (size - 1)] = self.fees[ids & (old.shape[0] - 1)]
        self.ring, self.fees = ring, fees

    # --- logs ----------------------------------------------------------------------------------

    def take_settled(self) -> tuple[np.ndarray, np.ndarray]:
        """Records of messages settled since the last call, in settle order, and their fees:
        (int64[n, fields], float64[n])."""
        self._keep_settled()
        taken = self.settled
        self.settled = []
        if not taken:
            return np.zeros((0, FIELDS), dtype=np.int64), np.zeros(0, dtype=np.float64)
        if len(taken) == 1:
            return taken[0]
        return np.concatenate([t for t, _ in taken]), np.concatenate([f for _, f in taken])

    def _settled_rows(self) -> tuple[np.ndarray, np.ndarray]:
        n = int(self.sc[S_SETTLED])
        self.sc[S_SETTLED] = 0
        return self._rows(self.slog[:n] & (self.ring.shape[0] - 1))

    def _rows(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Records and fees as MessageState.rows_from_table takes them (copies: the slots
        # are reused by later messages).
        return self.ring[slots], self.fees[slots]

    def take_events(self) -> list[tuple[int, int, float, int, int, int]]:
        """Events logged since the last call: (t, code, value, height, a, b)."""
        n = int(self.sc[S_EVENTS])
        self.sc[S_EVENTS] = 0
        if not n:
            return []
        e = self.elog[:, :n]
        return list(zip(e[0].tolist(), e[1].tolist(), self.evalue[:n].tolist(), e[2].tolist(),
                        e[3].tolist(), e[4].tolist()))

    def take_deliveries(self) -> np.ndarray:
        """Deliveries logged since the last call: int64[4, n] (msg, node, t, hops)."""
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
        ids = np.arange(self.lo, self.count)
        slots = ids & (self.ring.shape[0] - 1)
        slots = slots[(self.ring[slots, WHERE] < COMMITTED) & (self.ring[slots, T_SENT] != NULL)]
        self.ring[slots, WHERE] = PENDING
        self.sc[S_TERMINAL] += slots.shape[0]
        return self._rows(slots)
