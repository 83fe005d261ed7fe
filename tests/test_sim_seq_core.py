"""The sequencer core's rules (``sim/seq_core.py``) against a small model of a sequencer.

The core's compiled steps are driven here as the one-node loop and the block step drive
them (an arrival: the depth rule, the price rule, the hand-over to an idle worker or the
queue; idle workers taking from the queue, or pricing out what the base fee has risen above;
the engage/release state; a completion: a worker freed takes the next), on hypothesis-drawn
arrivals, kinds, fees, base fees, workers, drop tables, thresholds, queue orders and service
times. The model states each rule in plain Python with ``heapq``; both must give the same
trace of drops, prices out, services, completions and state changes, step for step.
Python's backpressure modes, which run the same rules uncompiled, are held to the model too,
and ``covers``, which every compiled path's gate asks, to the sequencers the core serves.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgstorm.scenario import parse_scenario
from msgstorm.scenario.registry import QUEUE_POLICIES
from msgstorm.scenario.schema import MESSAGE_KINDS
from msgstorm.sim.backpressure import ADMIT, DROP, DroppingMode, DropRule, make_backpressure
from msgstorm.sim.lane import Lane
from msgstorm.sim.policies import Ordering
from msgstorm.sim.seq_core import (
    ARRIVE_DROPPED,
    ARRIVE_PRICED_OUT,
    ARRIVE_SERVED,
    TAKE_NONE,
    TAKE_PRICED_OUT,
    ArrayQueue,
    arrive,
    covers,
    engaged_after,
    heap_pop,
    heap_push,
    service_time,
    take_next,
)

KINDS = 3
# An arrival that never queues, as the trace names it.
TURNED_AWAY = {ARRIVE_DROPPED: "drop", ARRIVE_PRICED_OUT: "priced out"}
NEVER = 1 << 62
Trace = list[tuple[str, int, int]]


@dataclass(frozen=True)
class Case:
    gaps: list[int]  # between arrivals, ns
    kinds: list[int]
    fees: list[float]
    workers: int
    limit: list[int]  # per kind
    protected: list[bool]
    engage_at: int
    by_fee: bool
    # The base fee from each arrival on (before the completions due then): an arrival under
    # it, or a message taken from the queue under it, is priced out.
    base_fees: list[float]
    serve_idle: bool
    service_constant: int  # -1: the drawn times
    service: list[int]


CASES = st.builds(
    Case,
    gaps=st.lists(st.integers(0, 4), min_size=1, max_size=40),
    kinds=st.lists(st.integers(0, KINDS - 1), min_size=40, max_size=40),
    fees=st.lists(st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.5]), min_size=40, max_size=40),
    workers=st.integers(1, 3),
    limit=st.lists(st.sampled_from([0, 1, 2, 3, 4, 6, NEVER]), min_size=KINDS, max_size=KINDS),
    protected=st.lists(st.booleans(), min_size=KINDS, max_size=KINDS),
    engage_at=st.integers(1, 12),
    by_fee=st.booleans(),
    base_fees=st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.0]), min_size=40, max_size=40),
    serve_idle=st.booleans(),
    service_constant=st.sampled_from([-1, -1, 0, 3, 7]),
    service=st.lists(st.integers(0, 12), min_size=80, max_size=80),
)


def _core(case: Case) -> Trace:
    """The loops' order of steps, each rule the core's."""
    n = len(case.gaps)
    limit = np.array(case.limit, np.int64)
    protected = np.array(case.protected, np.uint8)
    service = np.array(case.service, np.int64)
    done_t, done_eid, done_m = (np.zeros(n, np.int64) for _ in range(3))
    keys, ties, msgs, fees, qs, run, run_fees = ArrayQueue("fee" if case.by_fee else "arrival",
                                                           capacity=n).arrays()
    state = {"cn": 0, "depth": 0, "busy": 0, "engaged": 0, "svc_i": 0, "eid": 0, "base": 0.0}
    trace: Trace = []

    def serve(t: int, m: int) -> None:
        duration, state["svc_i"] = service_time(service, state["svc_i"], case.service_constant)
        slot = heap_push(done_t, done_eid, done_m, state["cn"], t + duration, state["eid"])
        done_m[slot] = m
        state["cn"] += 1
        state["eid"] += 1
        state["busy"] += 1
        trace.append(("serve", m, t))

    def depth_changed(t: int) -> None:
        engaged = engaged_after(state["engaged"], state["depth"], case.engage_at)
        if engaged != state["engaged"]:
            state["engaged"] = engaged
            trace.append(("state", engaged, state["depth"]))

    def take(t: int) -> None:
        while (took := take_next(keys, ties, msgs, fees, qs, run, run_fees, case.by_fee,
                                 state["depth"], state["busy"], case.workers, True,
                                 state["base"]))[0] != TAKE_NONE:
            state["depth"] -= 1
            if took[0] == TAKE_PRICED_OUT:
                trace.append(("priced out", took[1], t))
            else:
                serve(t, took[1])
        depth_changed(t)

    def complete() -> None:
        t, m = int(done_t[0]), int(done_m[0])
        heap_pop(done_t, done_eid, done_m, state["cn"])
        state["cn"] -= 1
        state["busy"] -= 1
        trace.append(("done", m, t))
        if state["depth"]:
            take(t)

    t = 0
    for m, gap in enumerate(case.gaps):
        t += gap
        state["base"] = case.base_fees[m]
        while state["cn"] and done_t[0] <= t:
            complete()
        fee = case.fees[m]
        came = arrive(keys, ties, msgs, fees, qs, case.by_fee, True, limit, protected,
                      case.kinds[m], fee >= state["base"], state["depth"], state["busy"],
                      case.workers, case.serve_idle, m, fee)
        if came in TURNED_AWAY:
            trace.append((TURNED_AWAY[came], m, t))
        elif came == ARRIVE_SERVED:
            serve(t, m)
        else:
            state["depth"] += 1
            if state["busy"] < case.workers:
                take(t)
            else:
                depth_changed(t)
    while state["cn"]:
        complete()
    return trace


def _comes_to(case: Case, m: int, depth: int, busy: int) -> str:
    """What arrival ``m`` comes to, plainly: dropped at its kind's limit (unless protected),
    priced out under the base fee, served by an idle worker when none waits, or queued."""
    kind = case.kinds[m]
    if not case.protected[kind] and depth >= case.limit[kind]:
        return "drop"
    if case.fees[m] < case.base_fees[m]:
        return "priced out"
    if not depth and busy < case.workers and case.serve_idle:
        return "serve"
    return "queue"


def _engaged_plainly(engaged: int, depth: int, engage_at: int) -> int:
    """Engaged (1) from ``engage_at`` queued on, released (0) below 90% of it."""
    if not engaged and depth >= engage_at:
        return 1
    if engaged and depth < 0.9 * engage_at:
        return 0
    return engaged


def _model(case: Case) -> Trace:
    """The same sequencer with each rule written out plainly."""
    queue: list[tuple[float, int, int]] = []  # (minus the fee, or 0; arrival; message)
    done: list[tuple[int, int, int]] = []  # (time, eid, message)
    draws = iter(case.service)
    trace: Trace = []
    busy = engaged = eid = 0
    base = 0.0

    def serve(t: int, m: int) -> None:
        nonlocal busy, eid
        duration = case.service_constant if case.service_constant >= 0 else next(draws)
        heapq.heappush(done, (t + duration, eid, m))
        eid += 1
        busy += 1
        trace.append(("serve", m, t))

    def depth_changed() -> None:
        nonlocal engaged
        now = _engaged_plainly(engaged, len(queue), case.engage_at)
        if now != engaged:
            engaged = now
            trace.append(("state", now, len(queue)))

    def take(t: int) -> None:
        while busy < case.workers and queue:
            m = heapq.heappop(queue)[2]
            if case.fees[m] < base:
                trace.append(("priced out", m, t))
            else:
                serve(t, m)
        depth_changed()

    def complete() -> None:
        nonlocal busy
        t, _, m = heapq.heappop(done)
        busy -= 1
        trace.append(("done", m, t))
        if queue:
            take(t)

    t = 0
    for m, gap in enumerate(case.gaps):
        t += gap
        base = case.base_fees[m]
        while done and done[0][0] <= t:
            complete()
        came = _comes_to(case, m, len(queue), busy)
        if came in ("drop", "priced out"):
            trace.append((came, m, t))
        elif came == "serve":
            serve(t, m)
        else:
            heapq.heappush(queue, (-case.fees[m] if case.by_fee else 0.0, m, m))
            if busy < case.workers:
                take(t)
            else:
                depth_changed()
    while done:
        complete()
    return trace


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(CASES)
def test_the_core_steps_follow_the_model(case: Case) -> None:
    assert _core(case) == _model(case)


def test_the_model_drops_serves_and_engages_where_worked_by_hand() -> None:
    # One worker, service 10 ns, arrivals at 0, 1, 2, 3, 4; kind 0 dropped at depth 2,
    # engaged at depth 2 (released below 1.8). 0 is served at once; 1 and 2 queue (depth 2:
    # engaged); 3 and 4 are dropped; at 10, 1 is served (depth 1: released); 2 at 20.
    case = Case(gaps=[0, 1, 1, 1, 1], kinds=[0] * 40, fees=[1.0] * 40, workers=1,
                limit=[2, 2, 2], protected=[False] * 3, engage_at=2, by_fee=False,
                base_fees=[0.0] * 40, serve_idle=True, service_constant=10, service=[0] * 80)
    expected = [("serve", 0, 0), ("state", 1, 2), ("drop", 3, 3), ("drop", 4, 4),
                ("done", 0, 10), ("serve", 1, 10), ("state", 0, 1), ("done", 1, 20),
                ("serve", 2, 20), ("done", 2, 30)]
    assert _model(case) == expected
    assert _core(case) == expected


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(0, len(MESSAGE_KINDS) - 1), st.integers(0, 14)), max_size=40),
       st.lists(st.sampled_from([0, 2, 5, 9, NEVER]), min_size=len(MESSAGE_KINDS),
                max_size=len(MESSAGE_KINDS)),
       st.lists(st.booleans(), min_size=len(MESSAGE_KINDS), max_size=len(MESSAGE_KINDS)),
       st.integers(1, 12))
def test_python_backpressure_decides_as_the_model(steps: list[tuple[int, int]], limit: list[int],
                                                  protected: list[bool], engage_at: int) -> None:
    mode = DroppingMode(DropRule(tuple(limit), tuple(protected), engage_at, ("normal", "dropping")))
    engaged = False
    for kind, depth in steps:
        dropped = not protected[kind] and depth >= limit[kind]
        assert mode.admit(kind, 1.0, depth) == (DROP if dropped else ADMIT)
        state = mode.on_depth(depth)
        if not engaged and depth >= engage_at:
            engaged = True
            assert state == "dropping"
        elif engaged and depth < 0.9 * engage_at:
            engaged = False
            assert state == "normal"
        else:
            assert state is None
        assert mode.engaged == engaged


# --- what the core covers -------------------------------------------------------------------

def _parts(policy: str, backpressure: str, lane: str = "") -> SimpleNamespace:
    """A sequencer's three parts ``covers`` reads, as a run builds them from its scenario."""
    text = (f'[run]\nname = "core"\nduration = "1s"\n[network]\nregions = ["us-east"]\n'
            f'[sequencer]\nworkers = 2\npolicy = "{policy}"\n{lane}\n'
            f'[backpressure]\n{backpressure}\n'
            '[[agents]]\nname = "traders"\narrival = { process = "poisson", rate = "100/s" }\n')
    scenario = parse_scenario(text, source="core.toml")
    return SimpleNamespace(ordering=Ordering.of(QUEUE_POLICIES[policy]()),
                           lane=Lane(scenario.sequencer.lane),
                           backpressure=make_backpressure(scenario.backpressure))


@pytest.mark.parametrize("policy", ["fifo", "fee_priority"])
@pytest.mark.parametrize("backpressure", ['mode = "unbounded"', 'mode = "drop_tail"\ncapacity = 10',
                                          'mode = "shed"\ncapacity = 10', 'mode = "eip1559"'])
def test_the_core_covers_a_static_order_with_a_dropping_or_priced_mode(policy: str,
                                                                        backpressure: str) -> None:
    assert covers(_parts(policy, backpressure))  # type: ignore[arg-type]


@pytest.mark.parametrize(("policy", "backpressure", "lane"), [
    ("fair_order", 'mode = "unbounded"', ""),  # no static order
    ("batch_auction", 'mode = "unbounded"', ""),
    ("commit_reveal", 'mode = "unbounded"', ""),
    ("fifo", 'mode = "suspend"\nhigh = 100\nlow = 10', ""),  # suspends senders
    ("fifo", 'mode = "unbounded"', "[sequencer.lane]\nworkers = 1"),  # a lane
])
def test_the_core_leaves_other_sequencers_to_python(policy: str, backpressure: str,
                                                     lane: str) -> None:
    assert not covers(_parts(policy, backpressure, lane))  # type: ignore[arg-type]
