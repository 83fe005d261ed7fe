"""The block step (one compiled call per slice) against the simulator's Python paths.

With the block step (``sim/block_step.py``) a slice of the leader's logged intake and its
service completions runs as one compiled loop over arrays; ``ShadowNetwork(reference=True)``
runs the intake one Python call per message, the reference. From the same
seed both must write the same history, row for row, and end at the same time: on the
shipped examples the block step takes (black-thursday in full and shortened, its fee-aware
twin, front-running, leverage-latency, the oracle attack, the venues' mechanisms), and on hypothesis-drawn small market
scenarios with a crash of the leader or its standby, under every fee policy and underpriced
mode the step takes, with one to three workers and each liquidation mechanism. The queue it
keeps as arrays is held against the policies it stands in for, operation by operation.
"""

from __future__ import annotations

import os
import tempfile
from bisect import bisect_right
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_runs import (
    LEADER_CRASH,
    REACTING_EXAMPLES,
    built_network,
    example_scenario,
    market_scenarios,
    same_both_ways,
    shared_tables,
    simulate_tables,
)

from msgstorm.history.events import EventKind
from msgstorm.scenario import Scenario, parse_scenario
from msgstorm.sim import warm
from msgstorm.sim.block_step import BlockStep
from msgstorm.sim.policies import FeePriorityPolicy, FifoPolicy
from msgstorm.sim.seq_core import ArrayQueue

CASES = int(os.environ.get("MSGSTORM_BLOCK_STEP_CASES", "10"))
SHORT = ['run.duration="6s"', 'run.drain="3s"']
# Black Thursday's flood starts at 10 s: two seconds of it price the queue out and back.
FLOOD = ['run.duration="12s"', 'run.drain="2s"']


@pytest.fixture(autouse=True)
def _block_step_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block step's loop taken whether or not it is compiled yet: a small run from an
    empty cache takes the message-by-message replay instead (``warm.uses_block_step``), and
    these tests are of the loop, whatever ran before them."""
    monkeypatch.setattr(warm, "uses_block_step", lambda large: True)



def _steps(scenario: Scenario) -> bool:
    """Whether the network built for ``scenario`` replays its slices by the block step."""
    return bool(built_network(scenario, lambda sim: sim.intake_log is not None
                              and sim.intake_log.step is not None))


def test_black_thursday_before_its_flood_writes_the_same_history() -> None:
    scenario = example_scenario("black-thursday", ['run.duration="3s"', 'run.drain="1s"'])
    assert _steps(scenario)
    history = same_both_ways(scenario)
    assert history["messages"]["status"].count("committed") > 100


@pytest.mark.slow
def test_black_thursday_with_two_seconds_of_its_flood_writes_the_same_history() -> None:
    scenario = example_scenario("black-thursday", FLOOD)
    assert _steps(scenario)
    history = same_both_ways(scenario)
    messages = history["messages"]
    assert messages["status"].count("committed") > 1000
    events = history["events"]
    changes = [(t, fee) for t, kind, fee in zip(events["t"], events["kind"], events["value"], strict=True)
               if kind == EventKind.BASE_FEE]
    times = [t for t, _ in changes]

    def base_fee_at(t: int) -> float:
        at = bisect_right(times, t)
        return changes[at - 1][1] if at else 0.5  # the example's initial base fee

    # Messages that came in under the base fee waited for it to fall, and were committed.
    waited = sum(status == "committed" and fee < base_fee_at(t)
                 for fee, t, status in zip(messages["fee"], messages["t_received"], messages["status"], strict=True))
    assert waited, waited

@pytest.mark.slow
def test_black_thursday_in_full_writes_the_same_history() -> None:
    """The whole flood: the queue priced out and let back in block after block, and the
    drain after the traffic."""
    history = same_both_ways(example_scenario("black-thursday", []))
    assert EventKind.BASE_FEE in history["events"]["kind"]


@pytest.mark.slow
@pytest.mark.parametrize(("example", "overrides"), [
    ("black-thursday-fee-aware", FLOOD),
    ("black-thursday", [*FLOOD, 'backpressure.underpriced="reject"']),
    ("black-thursday", [*FLOOD, 'sequencer.policy="fifo"', "sequencer.workers=2"]),
    ("black-thursday", [*FLOOD, 'sequencer.service={dist="constant", value="200us"}']),
    ("front-running", REACTING_EXAMPLES["front-running"]),
    ("leverage-latency", REACTING_EXAMPLES["leverage-latency"]),
    ("oracle-attack", REACTING_EXAMPLES["oracle-attack"]),
    ("venue-partial", []),
    ("venue-close-factor", []),
    ("venue-dutch", []),
    # Probe books (``msgstorm safe-leverage``) ride the block step: riding on carriers, and
    # with half their liquidations sent as messages of their own (which the flood holds back
    # past its first seconds: the whole run).
    ("black-thursday", [*FLOOD, "market.probes.leverages=[2.0, 4.0, 8.0]"]),
    ("black-thursday", ["market.probes.leverages=[2.0, 4.0, 8.0]", "market.probes.traffic_share=0.5"]),
])
def test_examples_write_the_same_history(example: str, overrides: list[str]) -> None:
    scenario = example_scenario(example, overrides)
    assert _steps(scenario)
    history = same_both_ways(scenario)
    if any(override.startswith("market.probes") for override in overrides):
        assert len(history["probe_executions"]["probe"]) > 100  # the probes liquidated, both ways alike


@pytest.mark.slow
@pytest.mark.parametrize("extra", ["", LEADER_CRASH])
def test_shedding_by_depth_writes_the_same_history(extra: str) -> None:
    """The flash crash sheds quotes and spam by the queue's depth (``PriorityShedding``):
    the loop drops them and engages and releases the mode as the Python sequencer does,
    with its leader crashing while the burst is on or not."""
    scenario = example_scenario("flash-crash", ['run.duration="12s"', 'run.drain="2s"'], extra)
    assert _steps(scenario)
    history = same_both_ways(scenario)
    assert history["messages"]["status"].count("dropped") > 100
    assert history["events"]["kind"].count(EventKind.BACKPRESSURE) >= 2  # engaged, then released


def test_the_step_stands_aside_where_its_loop_would_differ() -> None:
    base = ['run.duration="1s"', 'run.drain="1s"']
    assert _steps(example_scenario("black-thursday", base))
    # shedding by depth: in the loop
    assert _steps(example_scenario("flash-crash", base, LEADER_CRASH))
    # a lane of its own workers, a batch auction: the per-message replay
    assert not _steps(example_scenario("black-thursday-lane", base))
    assert not _steps(example_scenario("black-thursday", [*base, 'sequencer.policy="batch_auction"']))


def test_losing_what_the_loop_logged_changes_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberate mutation: the loop's log never written back must show."""
    scenario = example_scenario("black-thursday", ['run.duration="3s"', 'run.drain="1s"'])
    reference = shared_tables(scenario, reference=True)[0]  # made before the mutation
    with tempfile.TemporaryDirectory() as tmp:
        monkeypatch.setattr(BlockStep, "_write_back", lambda self, logged: None)
        lost, _, _ = simulate_tables(scenario, Path(tmp) / "lost")
    assert lost["messages"] != reference["messages"]


# The modes the step takes: every arrival admitted, the EIP-1559 price rule, or dropping by
# the queue's depth.
BACKPRESSURE = [
    {"mode": "unbounded"},
    {"mode": "drop_tail", "capacity": 40},
    {"mode": "shed", "capacity": 60, "levels": {"order": "50%"},
     "protect": ["liquidation", "price"]},
    {"mode": "eip1559", "underpriced": "wait", "initial_base_fee": 1.5},
    {"mode": "eip1559", "underpriced": "reject", "initial_base_fee": 1.5},
]
MECHANISMS = [
    {"mechanism": "whole"},
    {"mechanism": "partial", "insurance_fund": 100.0, "on_empty": "adl"},
    {"mechanism": "close_factor", "close_factor": "50%", "on_empty": "socialise"},
    {"mechanism": "dutch_auction"},
]


@pytest.mark.slow
def test_drawn_market_scenarios_write_the_same_history() -> None:
    failovers = 0
    dropped: list[int] = []  # each case's messages dropped by depth

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(market_scenarios(), st.sampled_from(BACKPRESSURE), st.sampled_from(["100us", "300us", "1ms"]),
           st.integers(min_value=1, max_value=3), st.sampled_from(MECHANISMS), st.sampled_from([40, 200, 2000]),
           st.sampled_from([200, 2000]))
    def check(spec: dict[str, Any], backpressure: dict[str, Any], service: str, workers: int,
              mechanism: dict[str, Any], blocks: int, flood: int) -> None:
        nonlocal failovers
        spec = {**spec, "backpressure": backpressure,
                "sequencer": {**spec["sequencer"], "workers": workers,
                              "service": {"dist": "exponential", "mean": service}},
                "blocks": {**spec["blocks"], "max_messages": blocks},
                "agents": [*spec["agents"], {"name": "bots", "role": "flooder", "start": "1s", "stop": "2s",
                                             "arrival": {"process": "poisson", "rate": f"{flood}/s"},
                                             "fee": {"dist": "pareto", "scale": 1.0, "alpha": 1.5}}],
                "market": {**spec["market"], "liquidation": mechanism}}
        scenario = parse_scenario(tomli_w.dumps(spec), source="block-step.toml")
        assert _steps(scenario)
        history = same_both_ways(scenario)
        failovers += EventKind.LEADER_CHANGE in history["events"]["kind"]
        dropped.append(history["messages"]["status"].count("dropped"))

    check()
    assert max(dropped) > 0  # some drawn case dropped by depth
    if CASES >= 6:  # the drawn cases must include failovers
        assert failovers >= 2, failovers


# --- the queue as arrays against the policies it stands in for ---------------------------

OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("push"), st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.5])),
    st.tuples(st.just("pop"), st.just(0.0)),
    st.tuples(st.just("push_all"), st.integers(min_value=0, max_value=6)),
    st.tuples(st.just("take_all"), st.just(0.0)),
), max_size=60)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(OPERATIONS, st.sampled_from(["fee", "arrival"]))
def test_the_array_queue_orders_as_the_policy_it_replaces(operations: list[tuple[str, float]],
                                                          order_key: str) -> None:
    policy: FeePriorityPolicy | FifoPolicy = FeePriorityPolicy() if order_key == "fee" else FifoPolicy()
    queue = ArrayQueue(order_key, capacity=2)
    next_msg = 0
    for operation, value in operations:
        if operation == "push":
            policy.push(next_msg, value, 0)
            queue.push(next_msg, value, 0)
            next_msg += 1
        elif operation == "pop" and len(policy):
            assert queue.pop() == policy.pop()
        elif operation == "push_all":
            fees = sorted(([1.0, 2.0, 0.5, 2.0, 3.0, 1.0] * 2)[int(value):int(value) + 4], reverse=int(value) % 2 == 0)
            msgs = list(range(next_msg, next_msg + len(fees)))
            next_msg += len(fees)
            if isinstance(policy, FeePriorityPolicy):
                policy.push_all(msgs, fees, 0)
            else:
                for m, fee in zip(msgs, fees, strict=True):
                    policy.push(m, fee, 0)
            queue.push_all(msgs, fees, 0)
        elif operation == "take_all" and isinstance(policy, FeePriorityPolicy):
            assert queue.take_all() == policy.take_all()
        assert len(queue) == len(policy)
    while len(policy):
        assert queue.pop() == policy.pop()
    assert not len(queue)
