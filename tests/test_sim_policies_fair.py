"""The fair_order policy: gamma-majority receive order, cycles batched, no inversion at gamma = 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.scenario.schema import FairOrderSpec
from msgstorm.sim.policies_fair import FairOrderPolicy, fair_order
from msgstorm.sim.state import HELD, IN_FLIGHT, QUEUED, WHERE

NEVER = np.iinfo(np.int64).max


def test_a_unanimous_order_is_kept_whatever_the_keys() -> None:
    # Three nodes all received 0, then 1, then 2; the keys would say the opposite.
    times = np.array([[1, 5, 7], [2, 6, 8], [3, 7, 9]], dtype=np.int64)  # rows: messages 0, 1, 2
    assert fair_order(times, 1.0, [3.0, 2.0, 1.0]) == [0, 1, 2]


def test_a_condorcet_cycle_is_one_batch_ordered_by_key() -> None:
    # Node 0 saw a < b < c, node 1 b < c < a, node 2 c < a < b: by two thirds, a > b > c > a.
    times = np.array([[1, 3, 2],   # a
                      [2, 1, 3],   # b
                      [3, 2, 1]],  # c
                     dtype=np.int64)
    assert fair_order(times, 2 / 3, [2.0, 0.0, 1.0]) == [1, 2, 0]  # one batch: by key
    # A fourth message every node received last follows the whole batch, even with the smallest key.
    last = np.vstack([times, [[10, 10, 10]]])
    assert fair_order(last, 2 / 3, [2.0, 1.0, 3.0, -5.0]) == [1, 0, 2, 3]


def test_without_a_majority_the_key_decides_and_a_missing_report_counts_last() -> None:
    times = np.array([[1, 9], [2, 8]], dtype=np.int64)  # the two nodes disagree
    assert fair_order(times, 1.0, [5.0, 4.0]) == [1, 0]
    missing = np.array([[NEVER, 5], [2, 3]], dtype=np.int64)  # node 0 never reported message 0
    assert fair_order(missing, 1.0, [0.0, 9.0]) == [1, 0]


SCENARIO = """
[run]
name = "fair"
seed = 11
duration = "3s"
drain = "3s"

[network]
regions = ["us-east", "eu-west", "ap-northeast"]
nodes_per_region = 2
processing = {{ dist = "lognormal", median = "50us", sigma = 0.5 }}
link = {{ dist = "lognormal", sigma = 0.3 }}

[sequencer]
node = "us-east-0"
policy = "{policy}"
service = {{ dist = "exponential", mean = "2ms" }}
fair_order = {{ gamma = 1.0, granularity = "{granularity}" }}

[[agents]]
name = "traders"
count = 6
arrival = {{ process = "poisson", rate = "60/s" }}
fee = {{ dist = "uniform", low = 0.1, high = 10.0 }}
"""


def _clear_inversions(history, granularity_ns: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Pairs (a, b) every node received a more than ``granularity_ns`` before b: how many,
    and how many of them were sequenced b first."""
    names = pa.array([node["name"] for node in history.nodes])
    d = history.deliveries
    node = pc.index_in(d["node"].cast(pa.string()), value_set=names).to_numpy(zero_copy_only=False)
    m = history.messages.filter(pc.equal(history.messages["status"], "committed"))
    ids = m["msg_id"].to_numpy()
    seq = m["seq_no"].to_numpy()
    row = {int(i): r for r, i in enumerate(ids.tolist())}
    times = np.full((len(ids), len(names)), NEVER, dtype=np.int64)
    for msg, k, t in zip(d["msg_id"].to_numpy().tolist(), node.tolist(), d["t_delivered"].to_numpy().tolist()):
        r = row.get(msg)
        if r is not None:
            times[r, k] = min(times[r, k], t)
    complete = np.all(times < NEVER, axis=1)
    times, seq = times[complete], seq[complete]
    apart = before_wrongly = 0
    for a in range(len(seq)):
        clearly = np.all(times[a] + granularity_ns < times, axis=1)  # a before b at every node, by more
        apart += int(np.count_nonzero(clearly))
        before_wrongly += int(np.count_nonzero(clearly & (seq < seq[a])))
    return apart, before_wrongly


def test_gamma_one_never_inverts_messages_every_node_received_a_granularity_apart(scenario_from,
                                                                                  run_scenario) -> None:
    result = run_scenario(scenario_from(SCENARIO.format(policy="fair_order", granularity="10ms")))
    assert result.summary["messages"]["committed"] == result.summary["messages"]["sent"]
    apart, inverted = _clear_inversions(result.history, 10_000_000)
    assert apart > 10_000
    assert inverted == 0
    assert result.summary["fairness"]["inversions"] == 0  # gamma = 1: no pair at all
    # The same flow under fee priority inverts such pairs (a loaded queue, random fees).
    fees = run_scenario(scenario_from(SCENARIO.format(policy="fee_priority", granularity="10ms")))
    apart_fee, inverted_fee = _clear_inversions(fees.history, 10_000_000)
    assert inverted_fee > 0


def test_an_unknown_reporting_node_and_a_live_target_are_refused_naming_the_field(scenario_from) -> None:
    text = SCENARIO.format(policy="fair_order", granularity="10ms").replace(
        'granularity = "10ms" }', 'granularity = "10ms", nodes = ["us-east-0", "us-east-7"] }')
    with pytest.raises(ScenarioError, match=r"test.toml:\d+: sequencer.fair_order.nodes\[1\]: unknown node 'us-east-7'"):
        scenario_from(text)
    live = SCENARIO.format(policy="fair_order", granularity="10ms").replace("[run]", 'target = "nats"\n\n[run]')
    with pytest.raises(ScenarioError, match="queue policy 'fair_order' runs on the simulator only") as error:
        scenario_from(live)
    assert "sequencer.fair_order: [sequencer.fair_order] applies on the simulator only" in str(error.value)


def test_below_one_gamma_follows_the_majority_across_batches(run_scenario) -> None:
    # front-running.toml: the front-runner's order reaches four of the six nodes before the
    # whale's, which completes its reports first. With gamma 2/3 the whale's order must wait
    # for the front-runner's (four nodes prefer it): every race is won, no gamma-inversion.
    example = Path(__file__).resolve().parent.parent / "examples" / "front-running.toml"
    overrides = ['run.duration="4s"', 'run.drain="3s"', 'sequencer.policy="fair_order"']
    majority = run_scenario(load_scenario(example, [*overrides, "sequencer.fair_order.gamma=0.66"])).summary
    everyone = run_scenario(load_scenario(example, overrides)).summary
    assert majority["fairness"]["inversions"] == 0
    races = majority["fairness"]["front_run_attempts"]
    assert races > 5 and majority["fairness"]["front_run_successes"] == races
    assert everyone["fairness"]["front_run_successes"] < races  # gamma 1: no node majority binds


def _policy(gamma: float, nodes: int, timeout: str = "1s") -> FairOrderPolicy:
    policy = FairOrderPolicy()
    policy.spec = FairOrderSpec(gamma=gamma, timeout=timeout)
    policy.reporters = {node: node for node in range(nodes)}
    return policy


def test_unblocked_holds_back_what_a_partly_reported_message_may_precede_and_what_follows() -> None:
    policy = _policy(1.0, 3)
    # Due: 0 received before 1 at every node; 2 received apart from both (first at node 2 only).
    due = np.array([[5, 5, 5], [6, 6, 6], [20, 20, 1]], dtype=np.int64)
    # Nothing still being reported: everything is free.
    assert policy._unblocked(due, np.empty((0, 3), dtype=np.int64)).tolist() == [True, True, True]
    # A message still being reported that every node received before 0 blocks 0, and 1
    # which must follow 0; not 2, which node 2 received first.
    early = np.array([[1, 2, 3]], dtype=np.int64)
    assert policy._unblocked(due, early).tolist() == [False, False, True]
    # A node that has not reported it yet has the due ones: a vote against it. At gamma 1
    # it blocks nothing; at gamma 2/3 the two nodes that did suffice.
    missing = np.array([[1, 2, NEVER]], dtype=np.int64)
    assert policy._unblocked(due, missing).tolist() == [True, True, True]
    assert _policy(2 / 3, 3)._unblocked(due, missing).tolist() == [False, False, False]
    later = np.array([[9, 2, NEVER]], dtype=np.int64)  # before 2 at two nodes, not before 0 or 1
    assert _policy(2 / 3, 3)._unblocked(due, later).tolist() == [True, True, False]


class _Host:
    """The records ``_partial`` reads (``PolicyHost.message``): msg -> record, None once settled."""

    def __init__(self, where: dict[int, int]) -> None:
        self.where = where

    def message(self, msg: int) -> list[object] | None:
        if msg not in self.where:
            return None
        record: list[object] = [None] * (WHERE + 1)
        record[WHERE] = self.where[msg]
        return record


def test_only_a_message_still_in_flight_and_recently_reported_blocks() -> None:
    policy = _policy(1.0, 2, timeout="100ns")
    policy.host = _Host({1: IN_FLIGHT, 2: HELD, 4: IN_FLIGHT, 5: QUEUED, 6: QUEUED})  # type: ignore[assignment]
    # 1 in flight, 2 held for admission, 3 settled (dropped), 4 in flight but first reported
    # long ago, 5 and 6 admitted (waiting for their reports), 6 due now.
    policy.waiting = {5: 900, 6: 800}
    policy.reports = {1: {0: 950}, 2: {0: 950}, 3: {0: 950}, 4: {0: 850, 1: 990}, 5: {0: 950}, 6: {0: 800}}
    assert policy._partial(1000, [6]) == [1, 5]
    assert set(policy.reports) == {1, 2, 4, 5, 6}  # the settled one's reports are forgotten
    # A report of a message that settled (or was ordered) is not kept.
    policy.received(1001, 1, 3)
    assert 3 not in policy.reports


def test_drop_tail_backpressure_does_not_stall_fair_order(scenario_from, run_scenario) -> None:
    # A tiny queue drops most messages the leader validates: those are heard of at other
    # nodes yet never ordered. They must not hold back the ones that were admitted (before,
    # the first dropped one stopped ordering for good: 3 of 1,060 sequenced).
    tail = '\n[backpressure]\nmode = "drop_tail"\ncapacity = 3\n'
    result = run_scenario(scenario_from(SCENARIO.format(policy="fair_order", granularity="10ms") + tail))
    counts = result.summary["messages"]
    assert counts["dropped"] > 0
    # Messages wait for their reports in the queue, so a queue of 3 drops more than under
    # fifo (972 sequenced); but ordering goes on through every second of the traffic.
    assert counts["sequenced"] > 150
    messages = result.history.messages
    committed = messages.filter(pc.equal(messages["status"], "committed"))
    per_second = np.bincount(committed["t_committed"].to_numpy() // 1_000_000_000, minlength=3)
    assert (per_second[:3] > 20).all(), per_second


def test_a_reporting_node_listed_twice_is_refused_naming_the_field(scenario_from) -> None:
    text = SCENARIO.format(policy="fair_order", granularity="10ms").replace(
        'granularity = "10ms" }', 'granularity = "10ms", nodes = ["us-east-0", "eu-west-0", "us-east-0"] }')
    with pytest.raises(ScenarioError, match=r"test.toml:\d+: sequencer.fair_order.nodes\[2\]: node 'us-east-0' is listed twice"):
        scenario_from(text)
