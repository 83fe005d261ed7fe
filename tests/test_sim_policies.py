"""Queue policies, fee escalation in wait mode, bandwidth, link overrides, delivery caps."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

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


def test_eip1559_base_fee_is_met_at_inclusion(scenario_from, run_scenario) -> None:
    text = _text(service="100us", max_messages=50,
                 backpressure='[backpressure]\nmode = "eip1559"\ninitial_base_fee = 0.5\nunderpriced = "wait"')
    result = run_scenario(scenario_from(text))
    events = result.history.events
    produced = events.filter(pc.equal(events["kind"], "base_fee"))
    fee_at_height = {}
    heights = produced["height"].to_pylist()
    values = produced["value"].to_pylist()
    # The base fee in force while block h is packed is the one set after block h-1.
    for h, v in zip(heights, values):
        fee_at_height[h + 1] = v
    messages = result.history.messages
    committed = messages.filter(pc.equal(messages["status"], "committed"))
    below = [(f, b) for f, b in zip(committed["fee"].to_pylist(), committed["block"].to_pylist())
             if b in fee_at_height and f < fee_at_height[b]]
    assert committed.num_rows > 0
    assert below == []
