"""Queue policies, fee escalation in wait mode, bandwidth, link overrides, delivery caps."""

from __future__ import annotations

import bisect
import heapq
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgstorm.sim.policies import QUEUE_POLICIES, FeePriorityPolicy, FifoPolicy

ONE_NODE = """
[run]
name = "policies"
seed = 4
duration = "{duration}"
drain = "{drain}"

[network]
regions = ["us-east"]
nodes_per_region = {nodes}
processing = "0ns"
bandwidth = "{bandwidth}"
{network_extra}

[gossip]
degree = 1
peers = 2

[sequencer]
service = {{ dist = "exponential", mean = "{service}" }}
policy = "{policy}"

[blocks]
interval = "100ms"
max_messages = {max_messages}

{backpressure}

[history]
max_deliveries = {max_deliveries}

[[agents]]
name = "cheap"
arrival = {{ process = "poisson", rate = "{rate}/s" }}
fee = {{ dist = "uniform", low = 0.1, high = 1.0 }}

[[agents]]
name = "rich"
arrival = {{ process = "poisson", rate = "{rate}/s" }}
fee = {{ dist = "uniform", low = 5.0, high = 10.0 }}
"""


def _text(**changes: object) -> str:
    values: dict[str, object] = dict(duration="3s", drain="10s", nodes=1, bandwidth="unlimited", network_extra="",
                                     service="1ms", policy="fifo", max_messages=100000, backpressure="",
                                     max_deliveries=5000000, rate=600)
    values.update(changes)
    return ONE_NODE.format(**values)


def _mean_wait_ms(messages, agent: str) -> float:  # type: ignore[no-untyped-def]
    rows = messages.filter(pc.and_(pc.equal(messages["agent"], agent), pc.is_valid(messages["t_dequeued"])))
    return float(np.mean(pc.subtract(rows["t_dequeued"], rows["t_received"]).to_numpy())) / 1e6


def test_policy_objects_order() -> None:
    fifo, fee = FifoPolicy(), FeePriorityPolicy()
    for msg, price in [(1, 1.0), (2, 5.0), (3, 5.0), (4, 0.5)]:
        fifo.push(msg, price, 0)
        fee.push(msg, price, 0)
    assert [fifo.pop() for _ in range(4)] == [1, 2, 3, 4]
    assert [fee.pop() for _ in range(4)] == [2, 3, 1, 4]
    assert set(QUEUE_POLICIES) >= {"fifo", "fee_priority"}


def test_fee_priority_serves_high_fees_first_under_overload(scenario_from, run_scenario) -> None:
    # 1,200/s offered to a 1,000/s server: the queue grows; who waits depends on the policy.
    fifo = run_scenario(scenario_from(_text(policy="fifo"))).history.messages
    fee = run_scenario(scenario_from(_text(policy="fee_priority"))).history.messages
    assert abs(_mean_wait_ms(fifo, "rich") - _mean_wait_ms(fifo, "cheap")) < 0.2 * _mean_wait_ms(fifo, "cheap")
    assert _mean_wait_ms(fee, "rich") < 0.1 * _mean_wait_ms(fee, "cheap")


def test_eip1559_wait_mode_holds_underpriced_until_fee_falls(scenario_from, run_scenario) -> None:
    # Blocks of 50 at 10 blocks/s hold 500/s; 1,200/s offered pushes the base fee up past the
    # cheap agent's fees, which then wait; after traffic stops the fee decays and they commit.
    text = _text(service="100us", max_messages=50,
                 backpressure='[backpressure]\nmode = "eip1559"\ninitial_base_fee = 0.5\nunderpriced = "wait"')
    result = run_scenario(scenario_from(text))
    events = result.history.events
    fees = events.filter(pc.equal(events["kind"], "base_fee"))["value"].to_numpy()
    assert fees.max() > 1.0 and fees[-1] < fees.max()
    messages = result.history.messages
    assert result.summary["messages"]["rejected"] == 0
    cheap = messages.filter(pc.equal(messages["agent"], "cheap"))
    rich = messages.filter(pc.equal(messages["agent"], "rich"))
    cheap_wait = pc.mean(pc.subtract(cheap["t_dequeued"], cheap["t_received"])).as_py()
    rich_wait = pc.mean(pc.subtract(rich["t_dequeued"], rich["t_received"])).as_py()
    assert cheap_wait > 3 * rich_wait


def test_bandwidth_serialises_sends(scenario_from, run_scenario) -> None:
    # 2 nodes, 8 Mbit/s uplinks, 100 kB messages: 100 ms per transmission.
    text = _text(nodes=2, bandwidth="8Mbit/s", rate=3, duration="2s", drain="3s")
    text = text.replace('name = "cheap"', 'name = "cheap"\nnode = "us-east-0"\nsize = "100KB"')
    result = run_scenario(scenario_from(text))
    deliveries = result.history.deliveries
    far = deliveries.filter(pc.equal(deliveries["node"], "us-east-1"))
    messages = result.history.messages
    sent = dict(zip(messages["msg_id"].to_pylist(), messages["t_sent"].to_pylist()))
    kinds = dict(zip(messages["msg_id"].to_pylist(), messages["agent"].to_pylist()))
    gaps = [t - sent[m] for m, t in zip(far["msg_id"].to_pylist(), far["t_delivered"].to_pylist()) if kinds[m] == "cheap"]
    assert gaps and all(g >= 100_000_000 for g in gaps)


def test_link_override_between_nodes(scenario_from, run_scenario) -> None:
    text = _text(nodes=2, network_extra='links = [{ between = ["us-east-0", "us-east-1"], latency = "40ms" }]',
                 rate=20, duration="1s", drain="2s")
    text = text.replace('name = "cheap"', 'name = "cheap"\nnode = "us-east-0"')
    result = run_scenario(scenario_from(text))
    deliveries = result.history.deliveries
    far = deliveries.filter(pc.equal(deliveries["node"], "us-east-1"))
    messages = result.history.messages
    sent = dict(zip(messages["msg_id"].to_pylist(), messages["t_sent"].to_pylist()))
    gaps = [t - sent[m] for m, t in zip(far["msg_id"].to_pylist(), far["t_delivered"].to_pylist())]
    assert gaps and min(gaps) == 40_000_000


def test_delivery_cap_bounds_rows(scenario_from, run_scenario) -> None:
    result = run_scenario(scenario_from(_text(nodes=3, max_deliveries=500, rate=200, duration="2s", drain="2s")))
    assert result.history.deliveries.num_rows == 500
    assert result.summary["messages"]["sent"] * 3 > 500


@pytest.mark.parametrize("underpriced", ["wait", "reject"])
def test_eip1559_base_fee_is_met_when_sequenced_and_sequence_numbers_have_no_gaps(
        underpriced: str, scenario_from, run_scenario) -> None:
    text = _text(service="100us", max_messages=50,
                 backpressure=f'[backpressure]\nmode = "eip1559"\ninitial_base_fee = 0.5\nunderpriced = "{underpriced}"')
    result = run_scenario(scenario_from(text))
    events = result.history.events
    fees = events.filter(pc.equal(events["kind"], "base_fee"))
    change_t = fees["t"].to_pylist()
    change_fee = fees["value"].to_pylist()
    messages = result.history.messages.to_pylist()

    def lowest_base_fee_at(t: int) -> float:
        # The base fee in force at t: the one set before t, or one set at t itself (a block
        # at the same nanosecond may come before or after the worker takes the message).
        first, last = bisect.bisect_left(change_t, t), bisect.bisect_right(change_t, t)
        return min([0.5 if first == 0 else change_fee[first - 1], *change_fee[first:last]])

    sequenced = [m for m in messages if m["seq_no"] is not None]
    below = [m["msg_id"] for m in sequenced if m["fee"] < lowest_base_fee_at(m["t_dequeued"])]
    committed = [m for m in messages if m["status"] == "committed"]
    assert len(committed) > 1000 and len(change_t) > 10
    assert below == []
    # A message is sequenced once: the numbers are 0..n-1, the committed ones first, and
    # every message that did not commit says why (rejected, or pending at the end).
    numbers = sorted(m["seq_no"] for m in sequenced)
    assert numbers == list(range(len(sequenced)))
    assert sorted(m["seq_no"] for m in committed) == list(range(len(committed)))
    assert all(m["status"] in ("committed", "pending") for m in sequenced)
    others = {m["status"] for m in messages if m["status"] != "committed"}
    assert others <= {"rejected", "pending"} and others, others
    if underpriced == "reject":
        assert any(m["status"] == "rejected" for m in messages)


@pytest.mark.parametrize("nodes", [1, 3])
def test_suspend_releases_held_messages_only_as_the_queue_has_room(nodes: int, scenario_from, run_scenario) -> None:
    # 1,200/s offered to a 1,000/s server for 3 s: the queue reaches high again and again.
    text = _text(nodes=nodes, rate=600, backpressure='[backpressure]\nmode = "suspend"\nhigh = 200\nlow = 50')
    result = run_scenario(scenario_from(text))
    events = result.history.events
    states = events.filter(pc.equal(events["kind"], "backpressure"))["detail"].to_pylist()
    depth_max = events.filter(pc.equal(events["kind"], "queue_depth_max"))["value"].to_numpy()
    assert sum('"resumed"' in s for s in states) >= 3, "the breaker must cycle for this to test anything"
    if nodes == 1:
        # Nothing is in flight between sender and sequencer (no processing, no links): the
        # queue never exceeds high.
        assert depth_max.max() <= 200
    else:
        # Released messages travel a link (1 ms at most here): what was on its way may add to high.
        assert 200 <= depth_max.max() <= 200 + 1.2 * 2 * 600 * 0.002 + 10
    messages = result.history.messages
    held_then_committed = pc.and_(pc.greater(pc.subtract(messages["t_sent"], messages["t_intended"]), 0),
                                  pc.equal(messages["status"], "committed"))
    assert pc.sum(held_then_committed).as_py() > 100
    # Held messages are sent again oldest first, before anything sent later: send order is intended order.
    order = messages.sort_by("t_sent")["t_intended"].to_numpy()
    assert (np.diff(order) >= 0).all()


@pytest.mark.parametrize("policy", ["fifo", "fee_priority", "batch_auction", "fair_order", "commit_reveal"])
def test_a_policys_hooks_are_found_once_and_no_method_is_swapped(policy: str, tmp_path) -> None:
    # The sequencer and the network take a policy's hooks from its Ordering (looked up once),
    # and no instance attribute hides a method of its class (that hid the lane's overrides).
    from msgstorm.history import HistoryWriter
    from msgstorm.scenario.loader import parse_scenario
    from msgstorm.sim.shadow import ShadowNetwork

    text = _text(duration="1s", drain="1s", nodes=3, policy=policy)
    writer = HistoryWriter(tmp_path / "probe")
    sim = ShadowNetwork(parse_scenario(text, source="t.toml"), writer, np.random.SeedSequence(1), reference=True)
    writer.close()
    ordering = sim.sequencer.ordering
    hooks = {name for name in ("attach", "ready", "sequenced", "received", "execution_rank", "hides")
             if getattr(ordering, name) is not None}
    expected = {"fifo": set(), "fee_priority": set(), "batch_auction": {"attach", "ready", "execution_rank"},
                "fair_order": {"attach", "ready", "received"},
                "commit_reveal": {"attach", "sequenced", "execution_rank", "hides"}}[policy]
    assert hooks == expected
    parts = [sim, sim.sequencer, sim.sequencer.lane, sim.host, sim.chain, sim.faults, sim.lone, sim.gossip]
    for part in parts:
        swapped = {name for name, value in vars(part).items()
                   if callable(value) and callable(getattr(type(part), name, None))}
        assert swapped == set(), (type(part).__name__, swapped)


_fee = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.floats(0.1, 10.0))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("push"), st.lists(_fee, min_size=1, max_size=1)),
    st.tuples(st.just("push_all"), st.lists(_fee, max_size=30).map(lambda fees: sorted(fees, reverse=True))),
    st.tuples(st.just("push_all"), st.lists(_fee, max_size=10)),  # in no order: into the heap
    st.tuples(st.just("pop"), st.integers(1, 20)),
    st.tuples(st.just("take_all"), st.just(0)),
), max_size=40))
def test_fee_priority_moves_give_what_pushing_and_popping_one_at_a_time_gives(
        operations: list[tuple[str, Any]]) -> None:
    """The run that ``push_all`` keeps, and ``take_all``'s merge of it with the heap, against
    a plain heap of ``(-fee, arrival, msg)`` pushed and popped one message at a time; fees
    often tie, so the arrival order decides."""
    policy, reference, arrivals, msg = FeePriorityPolicy(), [], 0, 0
    for name, value in operations:
        if name in ("push", "push_all"):
            msgs = list(range(msg + 1, msg + 1 + len(value)))
            if name == "push":
                policy.push(msgs[0], value[0], 0)
            else:
                policy.push_all(msgs, list(value), 0)
            for m, fee in zip(msgs, value):
                arrivals += 1
                heapq.heappush(reference, (-fee, arrivals, m))
            msg += len(value)
        elif name == "pop":
            for _ in range(min(value, len(reference))):
                assert policy.pop() == heapq.heappop(reference)[2]
        else:
            ordered = sorted(reference)
            reference.clear()
            assert policy.take_all() == ([m for _, _, m in ordered], [-neg_fee for neg_fee, _, _ in ordered])
        assert len(policy) == len(reference)
