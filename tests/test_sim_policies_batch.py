"""The batch_auction policy: batches close on the interval; within one, arrival gives no place."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from msgstorm.scenario.loader import parse_scenario
from msgstorm.sim.policies_batch import BatchAuctionPolicy, within_batch_key

SCENARIO = """
[run]
name = "batches"
seed = 3
duration = "2s"
drain = "3s"

[network]
regions = ["us-east"]
nodes_per_region = 3
processing = "0ns"

[sequencer]
policy = "batch_auction"
service = { dist = "constant", value = "10us" }
batch_auction = { interval = "50ms" }

[[agents]]
name = "traders"
arrival = { process = "poisson", rate = "400/s" }
"""


class _Clock:
    """A PolicyHost for the policy alone: events kept in a list."""

    def __init__(self, interval: str) -> None:
        self.scenario = parse_scenario(SCENARIO.replace('"50ms"', f'"{interval}"'), source="t.toml")
        self.node_names = ["a"]
        self.events: list[tuple[int, object]] = []
        self.woken: list[int] = []

    def schedule(self, t: int, handler: object, *args: int) -> None:
        self.events.append((t, handler))

    def wake(self, t: int) -> None:
        self.woken.append(t)


def test_a_batch_is_held_until_its_interval_closes_then_served_without_arrival_order() -> None:
    policy = BatchAuctionPolicy()
    clock = _Clock("1ms")
    policy.attach(clock)  # type: ignore[arg-type]
    for msg in range(10):
        policy.push(msg, 1.0, 100 * msg)
    assert len(policy) == 10 and policy.ready() == 0
    t, close = clock.events.pop()
    assert t == 1_000_000
    close(t, 0, 0, 0, 0)  # type: ignore[operator]
    assert clock.woken == [1_000_000] and policy.ready() == 10
    served = [policy.pop() for _ in range(10)]
    assert served == sorted(range(10), key=within_batch_key) and served != list(range(10))
    policy.push(10, 1.0, 1_500_000)
    ranks = {msg: policy.execution_rank([msg]) for msg in (3, 7, 10)}
    assert ranks == {3: 0, 7: 0, 10: 1}  # one batch takes effect at once; the next after it


def test_messages_are_served_only_when_their_batch_closes(scenario_from, run_scenario) -> None:
    result = run_scenario(scenario_from(SCENARIO))
    messages = result.history.messages.filter(pc.is_valid(result.history.messages["t_dequeued"]))
    received = messages["t_received"].to_numpy()
    dequeued = messages["t_dequeued"].to_numpy()
    interval = 50_000_000
    closes = (received // interval + 1) * interval  # the close of the interval each arrived in
    assert len(messages) > 500
    assert np.all(dequeued >= closes)
    assert np.all(dequeued < closes + 5_000_000)  # 20 messages of 10 us each: served at the close
    assert result.summary["messages"]["committed"] == result.summary["messages"]["sent"]
    # Within a batch the service order is not the arrival order.
    seq = messages["seq_no"].to_numpy()
    in_first = closes == closes.min()
    assert not np.all(np.diff(seq[in_first][np.argsort(received[in_first])]) > 0)


CRASH = """
[[faults]]
kind = "crash"
node = "sequencer"
at = "700ms"
restart_after = "300ms"
"""


@pytest.mark.parametrize("policy", ["batch_auction", "commit_reveal", "fair_order"])
def test_a_leader_crash_gives_every_held_message_back(policy: str, scenario_from, run_scenario) -> None:
    # Messages a gated policy holds (a forming batch, unreported ones) go back in flight with
    # the rest; after the standby takes over everything is sequenced once and commits.
    text = SCENARIO.replace('policy = "batch_auction"', f'policy = "{policy}"\nstandby = ["us-east-1"]\n'
                            'failover_timeout = "100ms"') + CRASH
    result = run_scenario(scenario_from(text))
    assert all(check["verdict"] == "valid" for check in result.summary["checks"]), result.summary["checks"]
    messages = result.summary["messages"]
    assert messages["committed"] + messages["lost"] == messages["sent"] and messages["committed"] > 500
