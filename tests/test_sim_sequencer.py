"""The sequencer conserves messages under every queue policy, lane and backpressure mode.

Below capacity and with a drain long enough, every message sent ends in exactly one
terminal state (committed, dropped, rejected, lost) and none is pending; the lane's
liquidations are all committed. Parametrized over the policy registry, so a policy added
to ``QUEUE_POLICIES`` is covered without touching this file.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from msgstorm.scenario.registry import QUEUE_POLICIES

TERMINAL = {"committed", "dropped", "rejected", "lost"}

# Three nodes (the Python loop, and receive orders for fair ordering); 3 workers of 1 ms
# (3,000/s) for 650/s offered; blocks carry 10,000/s.
TOML = """
[run]
name = "conservation"
seed = 7
duration = "2s"
drain = "10s"
sample_interval = "100ms"

[network]
regions = ["us-east"]
nodes_per_region = 3
intra_region_latency = "1ms"
processing = "20us"

[sequencer]
workers = 3
service = {{ dist = "exponential", mean = "1ms" }}
policy = "{policy}"
{lane}

[blocks]
interval = "100ms"
max_messages = 1000

{backpressure}

[history]
delivery_sample = "0%"

[[agents]]
name = "keepers"
role = "liquidator"
mix = {{ liquidation = 1 }}
arrival = {{ process = "poisson", rate = "100/s" }}
fee = 5.0

[[agents]]
name = "oracle"
role = "oracle"
mix = {{ price = 1 }}
arrival = {{ process = "poisson", rate = "50/s" }}
fee = 5.0

[[agents]]
name = "traders"
mix = {{ order = 1 }}
arrival = {{ process = "poisson", rate = "500/s" }}
fee = {{ dist = "lognormal", median = 5.0, sigma = 0.3 }}
"""

LANES = {
    "no lane": "",
    "lane, lends": "lane = { workers = 1 }",
    "lane, keeps": "lane = { workers = 1, lend = false }",
    "block share": 'lane = { block_share = "20%" }',
    "lane and block share": 'lane = { workers = 1, block_share = "20%" }',
}

BACKPRESSURE = {
    "unbounded": "",
    "drop_tail": '[backpressure]\nmode = "drop_tail"\ncapacity = 400',
    "suspend": '[backpressure]\nmode = "suspend"\nhigh = 200\nlow = 50',
    "eip1559": '[backpressure]\nmode = "eip1559"\ninitial_base_fee = 1.0\nmin_base_fee = 0.5\nunderpriced = "wait"',
    "shed": '[backpressure]\nmode = "shed"\ncapacity = 400\nlevels = { order = "50%" }',
}


def _conserved(result) -> None:  # type: ignore[no-untyped-def]
    messages = result.history.messages
    ids = messages["msg_id"].to_numpy()
    assert len(set(ids.tolist())) == len(ids), "a message settled twice"
    statuses = Counter(messages["status"].to_pylist())
    assert set(statuses) <= TERMINAL, statuses  # nothing pending after the drain
    counts = result.summary["messages"]
    assert counts["pending"] == 0 and counts["sent"] == len(ids), counts
    assert counts["sent"] > 1000


def _lane_executed(result) -> None:  # type: ignore[no-untyped-def]
    """Every liquidation and price (the lane's kinds) committed, each given one sequence number."""
    messages = result.history.messages
    lane = messages.filter(pc.is_in(messages["kind"], value_set=pa.array(["liquidation", "price"])))
    assert len(lane) > 100
    assert set(lane["status"].to_pylist()) == {"committed"}
    committed = messages.filter(pc.equal(messages["status"], "committed"))["seq_no"].to_numpy()
    assert len(set(committed.tolist())) == len(committed)


@pytest.mark.parametrize("lane", list(LANES))
@pytest.mark.parametrize("policy", list(QUEUE_POLICIES))
def test_every_policy_and_lane_conserve_messages(scenario_from, run_scenario, policy: str, lane: str) -> None:
    result = run_scenario(scenario_from(TOML.format(policy=policy, lane=LANES[lane], backpressure="")))
    _conserved(result)
    _lane_executed(result)


@pytest.mark.parametrize("backpressure", [mode for mode in BACKPRESSURE if mode != "unbounded"])
@pytest.mark.parametrize("policy", list(QUEUE_POLICIES))
def test_every_policy_and_backpressure_conserve_messages_with_a_lane(scenario_from, run_scenario, policy: str,
                                                                     backpressure: str) -> None:
    result = run_scenario(scenario_from(TOML.format(policy=policy, lane=LANES["lane and block share"],
                                                    backpressure=BACKPRESSURE[backpressure])))
    _conserved(result)
    _lane_executed(result)


# A small Black Thursday: prices fall 43% over 4 s, keepers liquidate through a lane of 2 of
# the sequencer's 4 workers; the load stays far below capacity.
MARKET_TOML = """
[run]
name = "lane-market"
seed = 12
duration = "8s"
drain = "10s"

[network]
regions = ["us-east"]
nodes_per_region = 3
processing = "10us"

[sequencer]
workers = 4
service = { dist = "exponential", mean = "1ms" }
policy = "{policy}"
lane = { workers = 2 }

[blocks]
interval = "250ms"
max_messages = 1000

[[agents]]
name = "traders"
role = "trader"
count = 20
arrival = { process = "poisson", rate = "20/s" }
fee = { dist = "lognormal", median = 1.0, sigma = 0.3 }

[market]
resolution = "100ms"
maintenance_margin = "10%"
liquidation_penalty = "5%"

[[market.instruments]]
name = "ETH"
price = 194.0
volatility = "100%/y"
shocks = [{ at = "2s", fall = "43%", over = "4s" }]

[market.oracle]
node = "us-east-1"
heartbeat = "1h"
deviation = "0.5%"

[[market.accounts]]
count = 500
leverage_median = 3.0
leverage_sigma = 0.4
leverage_cap = 8.0
collateral = { dist = "lognormal", median = 20_000.0, sigma = 1.0 }
long_share = "100%"

[[market.keepers]]
name = "keepers"
count = 3
reaction = { dist = "lognormal", median = "100ms", sigma = 0.5 }
fee = 1.0
"""


@pytest.mark.parametrize("policy", list(QUEUE_POLICIES))
def test_every_policy_executes_the_liquidations_on_the_lane(scenario_from, run_scenario, policy: str) -> None:
    # Every liquidation a keeper triggers is executed, whatever the queue policy.
    result = run_scenario(scenario_from(MARKET_TOML.replace("{policy}", policy)))
    assert result.summary["messages"]["pending"] == 0, result.summary["messages"]
    liquidations = result.summary["market"]["liquidations"]
    assert liquidations["triggered"] > 300 and liquidations["executed"] == liquidations["triggered"], liquidations
