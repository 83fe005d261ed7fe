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
and events, the same end-of-run check every 64 events — so both write the same history.
``tests/test_sim_solo.py`` runs scenarios through both and compares every table.

Why compiled: per message the Python engine spends about 4 us in interpreter overhead
(records, heap tuples, method calls) on about 20 arithmetic steps; numba runs them in
tens of nanoseconds. Per-message state is a table of int64 records, one row of fields per
message (its updates touch one or two cache lines). A message takes a free row when it
is added and gives it back once it has settled and its row has been copied out, so the
table holds the messages not yet settled, however old: memory follows what is in flight.
Settled messages leave through a log that ``SoloSequencer`` turns into history rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from msgstorm.scenario.distributions import Constant
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
(S_NOW, S_EID, S_HEAP, S_DEPTH, S_ARRIVALS, S_BUSY, S_SEQ_HEAD, S_SEQ_TAIL, S_NEXT_SEQ, S_HEIGHT,
 S_CPU, S_SERVICE_I, S_PROCESSING_I, S_DEPTH_MAX, S_STEPS, S_SETTLED, S_EVENTS, S_DELIVERED,
 S_DELIVERY_BUDGET, S_SEND_I, S_TERMINAL, S_COUNT, S_ENGAGED) = range(23)
N_SCALARS = 23
FIELDS = WHERE + 1
_FREE = -2  # WHERE of a record row that holds no message
_YIELD_EVERY = 1 << 16
# Both loops look for the end of a run (everything settled or stranded) every 64 Python
# events: often enough that a drain does not idle, rarely enough to cost nothing.
END_CHECK_MASK = 0x3F


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


# Times and sizes the compiled loop takes: below this, a sum of two stays within int64.
_INT_LIMIT = 1 << 62


def _fits_int64(scenario: Scenario) -> bool:
    """Whether the loop's int64 arithmetic can hold this scenario's values exactly (the
    Python loop's integers cannot overflow; absurd values, such as an interval of 300
    years meaning "never", go there)."""
    run, blocks, seq, network = scenario.run, scenario.blocks, scenario.sequencer, scenario.network
    gas = max([21_000, *blocks.gas.values()])
    values = [run.duration + run.drain, run.sample_interval, blocks.interval, blocks.header_size,
              blocks.max_messages * (gas + (1 << 31))]  # a block's gas and bytes
    if blocks.max_gas is not None:
        values.append(blocks.max_gas)
    for dist in (seq.service, network.processing):
        if isinstance(dist, Constant):
            values.append(round(dist.value))
    return all(0 <= value < _INT_LIMIT for value in values)


def solo_plan(scenario: Scenario, nodes: int, policy: Any) -> SoloPlan | None:
    """The plan for a scenario the compiled loop runs exactly, or None (Python loop).

    Accepted: one node, no faults, backpressure that only drops (unbounded, drop_tail,
    shed), a queue policy that declares a static ``order_key`` ("arrival" or "fee"), and
    times and sizes that int64 arithmetic holds (see ``_fits_int64``).
    """
    if nodes != 1 or scenario.faults or not _fits_int64(scenario):
        return None
    key = getattr(policy, "order_key", None)
    if key not in ("arrival", "fee"):
        return None
    kinds = len(MESSAGE_KINDS)
    spec = scenario.backpressure
    fee = key == "fee"
    idle = bool(getattr(policy, "work_conserving", False))
    if isinstance(spec, Unbounded):
        return SoloPlan(fee, idle, False, _INT_LIMIT, ("normal", "normal"), (_INT_LIMIT,) * kinds,
                        (False,) * kinds)
    if isinstance(spec, DropTail):
        return SoloPlan(fee, idle, True, spec.capacity, ("normal", "dropping"), (spec.capacity,) * kinds,
                        (False,) * kinds)
    if isinstance(spec, Shed):
        limit = [spec.capacity] * kinds
        for kind, level in spec.levels.items():
            limit[MESSAGE_KINDS.index(kind)] = int(level * spec.capacity)
        protected = tuple(kind in spec.protect for kind in MESSAGE_KINDS)
        sheddable = [lim for lim, guarded in zip(limit, protected) if not guarded]
        lowest = min(sheddable) if sheddable else spec.capacity
        return SoloPlan(fee, idle, True, lowest, ("normal", "shedding"), tuple(limit), protected)
    return None  # suspend holds senders, EIP-1559 prices admission: the Python loop does these


# --- the compiled loop ---------------------------------------------------------------------
# ``advance`` keeps the loop's state in local variables, loaded from ``sc`` on entry and
# stored back at its one exit: numba cannot tell the int64 arrays apart, so state kept in
# ``sc`` would be reloaded from memory after every store to the heap or the records.


@nb.njit(cache=True, inline="always")
def _heap_push(keys: np.ndarray, ties: np.ndarray, values: np.ndarray, n: int, key: Any, tie: int,
               value: int) -> None:
    """Add ``value`` to a binary heap of ``n`` entries ordered by (key, tie); the caller
    counts it. Two heaps use it: the events (key: time, tie: insertion number) and the
    policy queue (key: 0 for FIFO or minus the fee, tie: arrival number)."""
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] < key or (keys[parent] == key and ties[parent] < tie):
            break
        keys[i] = keys[parent]
        ties[i] = ties[parent]
        values[i] = values[parent]
        i = parent
    keys[i] = key
    ties[i] = tie
    values[i] = value


@nb.njit(cache=True, inline="always")
def _heap_pop(keys: np.ndarray, ties: np.ndarray, values: np.ndarray, n: int) -> int:
    """Remove and return the top value of a heap of ``n`` entries; the caller counts it."""
    top = int(values[0])
    last = n - 1
    if last == 0:
        return top
    key = keys[last]
    tie = ties[last]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= last:
            break
        right = child + 1
        if right < last and (keys[right] < keys[child]
                             or (keys[right] == keys[child] and ties[right] < ties[child])):
            child = right
        if key < keys[child] or (key == keys[child] and tie < ties[child]):
            break
        keys[i] = keys[child]
        ties[i] = ties[child]
        values[i] = values[child]
        i = child
    keys[i] = key
    ties[i] = tie
    values[i] = values[last]
    return top


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


@nb.njit(cache=True)
def advance(p: np.ndarray, sc: np.ndarray, ev_t: np.ndarray, ev_eid: np.ndarray, ev_val: np.ndarray,
            qkey: np.ndarray, qarr: np.ndarray, qrow: np.ndarray, seqring: np.ndarray,
            records: np.ndarray, fees: np.ndarray, slog: np.ndarray, elog: np.ndarray,
            evalue: np.ndarray, dlog: np.ndarray, service: np.ndarray, processing: np.ndarray,
            gas_of: np.ndarray, limit: np.ndarray, protected: np.ndarray, send_t: np.ndarray,
            send_row: np.ndarray) -> int:
    """Run sends and events in ShadowNetwork's order until a batch is used up, the run
    ends, or a buffer needs Python (GROW: more room; REFILL: more random draws).

    Each step is ShadowNetwork's handler of the same name, in the same order: a send is
    ``_inject`` + ``_validate_alone``; an arrival at the sequencer ``_intake``; then
    ``_start_service`` / ``_serve``, ``_depth_changed``, ``_service_done``,
    ``_block_tick`` (with ``_send_vote``, ``_vote`` and ``_commit``: the node is its own
    quorum) and ``_sample``. Messages are named by their row in ``records`` (the heaps,
    the queue, the sequenced ring and the settle log hold rows); send ``i`` is message
    ``first_id + i`` in row ``send_row[i]``.
    """
    seq_mask = seqring.shape[0] - 1
    heap_cap = ev_t.shape[0]
    queue_cap = qkey.shape[0]
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
    release_below = HYSTERESIS * engage_at
    serve_idle = p[P_SERVE_IDLE] != 0
    final = p[P_FINAL] != 0
    first_id = p[P_FIRST_ID]
    sends = p[P_SENDS]
    # State.
    now = sc[S_NOW]
    eid = sc[S_EID]
    hn = sc[S_HEAP]
    depth = sc[S_DEPTH]
    arrivals = sc[S_ARRIVALS]
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
                _heap_push(ev_t, ev_eid, ev_val, hn, done, eid, (row << 2) | E_VALIDATED)
                hn += 1
                eid += 1
        else:
            t = t_event
            now = t
            value = _heap_pop(ev_t, ev_eid, ev_val, hn)
            hn -= 1
            etype = value & 3
            row = value >> 2
            if etype == E_SERVICE_DONE:  # _service_done
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
                    _heap_push(ev_t, ev_eid, ev_val, hn, t + block_interval, eid, E_TICK)
                    hn += 1
                    eid += 1
                taken = 0
                gas = 0
                size = header
                first = seq_head
                while seq_head < seq_tail and taken < max_messages:
                    row = seqring[seq_head & seq_mask]
                    g = gas_of[records[row, KIND]]
                    if max_gas >= 0 and gas + g > max_gas:
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
                _log_event(elog, evalue, events, t, EV_QUEUE_DEPTH, float(depth), 0, 0, 0)
                _log_event(elog, evalue, events + 1, t, EV_QUEUE_DEPTH_MAX, float(depth_max), 0, 0, 0)
                _log_event(elog, evalue, events + 2, t, EV_BLOCK_BACKLOG, float(backlog), 0, 0, 0)
                events += 3
                depth_max = depth
                if t + sample_interval < never:
                    _heap_push(ev_t, ev_eid, ev_val, hn, t + sample_interval, eid, E_SAMPLE)
                    hn += 1
                    eid += 1
        depth_changed = False
        if arrived >= 0:  # _intake
            row = arrived
            records[row, T_RECEIVED] = t
            kind = records[row, KIND]
            if protected[kind] == 0 and depth >= limit[kind]:
                records[row, WHERE] = DROPPED
                slog[settled] = row
                settled += 1
                terminal += 1
            elif depth == 0 and busy < workers and serve_idle:
                direct = row  # an idle worker and an empty queue: straight to service
            else:
                _heap_push(qkey, qarr, qrow, depth, -fees[row] if key_fee else 0.0, arrivals, row)
                arrivals += 1
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
                elif busy < workers and depth > 0:
                    row = _heap_pop(qkey, qarr, qrow, depth)
                    depth -= 1
                else:
                    break
                records[row, T_DEQUEUED] = t
                records[row, WHERE] = IN_SERVICE
                busy += 1
                if service_const >= 0:
                    duration = service_const
                else:
                    duration = service[service_i]
                    service_i += 1
                _heap_push(ev_t, ev_eid, ev_val, hn, t + duration, eid, (row << 2) | E_SERVICE_DONE)
                hn += 1
                eid += 1
            depth_changed = start  # a direct hand-over leaves the depth alone
        if depth_changed:  # _depth_changed and the backpressure's on_depth
            if depth > depth_max:
                depth_max = depth
            if watch_depth:
                # DropTailQueue / PriorityShedding: engage at a depth, release below 90% of it.
                if engaged == 0 and depth >= engage_at:
                    engaged = 1
                    _log_event(elog, evalue, events, t, EV_BACKPRESSURE, float(depth), 0, 1, 0)
                    events += 1
                elif engaged != 0 and depth < release_below:
                    engaged = 0
                    _log_event(elog, evalue, events, t, EV_BACKPRESSURE, float(depth), 0, 0, 0)
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
    sc[S_ARRIVALS] = arrivals
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
        gas = [blocks.gas.get(kind, 21_000) for kind in MESSAGE_KINDS]  # type: ignore[call-overload]
        self.gas_of = np.asarray(gas, dtype=np.int64)
        self.limit = np.asarray(plan.limit, dtype=np.int64)
        self.protected = np.asarray(plan.protected, dtype=np.uint8)
        self.ev_t = np.zeros(1 << 10, dtype=np.int64)
        self.ev_eid = np.zeros(1 << 10, dtype=np.int64)
        self.ev_val = np.zeros(1 << 10, dtype=np.int64)
        self.qkey = np.zeros(1 << 10, dtype=np.float64)
        self.qarr = np.zeros(1 << 10, dtype=np.int64)
        self.qrow = np.zeros(1 << 10, dtype=np.int64)
        self.seqring = np.zeros(1 << 10, dtype=np.int64)
        # Message records, a row each, and the rows free for new messages (a stack).
        self.records = np.full((1 << 12, FIELDS), NULL, dtype=np.int64)
        self.records[:, WHERE] = _FREE
        self.fees = np.zeros(1 << 12, dtype=np.float64)
        self.free = np.arange((1 << 12) - 1, -1, -1, dtype=np.int64)
        self.n_free = 1 << 12
        self.send_row = np.zeros(0, dtype=np.int64)
        self.slog = np.zeros(1 << 14, dtype=np.int64)
        self.elog = np.zeros((5, 1 << 10), dtype=np.int64)
        self.evalue = np.zeros(1 << 10, dtype=np.float64)
        self.dlog = np.zeros((2, 1 << 12), dtype=np.int64)
        self.send_t = np.zeros(0, dtype=np.int64)
        self._service_sampler = service
        self._processing_sampler = processing
        self.service = np.zeros(0, dtype=np.int64)
        self.processing = np.zeros(0, dtype=np.int64)
        # Records copied out of the settle log, not yet taken by take_settled.
        self.settled: list[tuple[np.ndarray, np.ndarray]] = []
        # The first block tick and sample, pushed as ShadowNetwork.run pushes them.
        self._push_initial(E_TICK, blocks.interval)
        self._push_initial(E_SAMPLE, run.sample_interval)

    def _push_initial(self, etype: int, t: int) -> None:
        n, eid = int(self.sc[S_HEAP]), int(self.sc[S_EID])
        _heap_push(self.ev_t, self.ev_eid, self.ev_val, n, t, eid, etype)
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
        rows = self.free[self.n_free - n:self.n_free][::-1].copy()
        self.n_free -= n
        block = np.full((n, FIELDS), NULL, dtype=np.int64)
        block[:, MSG_ID] = batch.msg_id
        block[:, KIND] = batch.kind
        block[:, AGENT] = batch.agent
        block[:, ORIGIN] = batch.node
        block[:, KEY] = batch.key
        block[:, SIZE] = batch.size
        block[:, T_INTENDED] = batch.t_intended
        block[:, WHERE] = IN_FLIGHT
        self.records[rows] = block
        self.fees[rows] = batch.fee
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
        while True:
            code = advance(self.p, self.sc, self.ev_t, self.ev_eid, self.ev_val, self.qkey, self.qarr,
                           self.qrow, self.seqring, self.records, self.fees, self.slog, self.elog,
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
        if sc[S_DEPTH] + 1 > self.qkey.shape[0]:
            self.qkey = np.concatenate([self.qkey, np.zeros_like(self.qkey)])
            self.qarr = np.concatenate([self.qarr, np.zeros_like(self.qarr)])
            self.qrow = np.concatenate([self.qrow, np.zeros_like(self.qrow)])
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
        rows = self.slog[:n]
        taken = self._rows(rows)
        # Their records are copied out: the rows are free for new messages.
        self.records[rows, WHERE] = _FREE
        self.free[self.n_free:self.n_free + n] = rows
        self.n_free += n
        return taken

    def _rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Copies of the records and fees, as MessageState.rows_from_table takes them.
        return self.records[rows], self.fees[rows]

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
