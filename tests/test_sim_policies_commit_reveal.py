"""The commit_reveal policy: every committed order is revealed by a second message."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow.compute as pc
import pytest

from msgstorm.scenario import ScenarioError
from msgstorm.scenario.loader import parse_scenario
from msgstorm.sim.policies_commit_reveal import CommitRevealPolicy
from msgstorm.sim.state import (
    AGENT,
    FEE,
    KEY,
    KIND,
    MSG_ID,
    NULL,
    ORIGIN,
    SEQ_NO,
    SEQUENCED,
    SIZE,
    WHERE,
)

SCENARIO = """
[run]
name = "commit-reveal"
seed = 5
duration = "2s"
drain = "3s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 2

[sequencer]
policy = "commit_reveal"
commit_reveal = { reveal_delay = "20ms" }

[[agents]]
name = "traders"
arrival = { process = "poisson", rate = "200/s" }
mix = { order = 0.5, cancel = 0.5 }
"""


def test_each_commitment_is_revealed_once_from_its_sender(scenario_from, run_scenario) -> None:
    result = run_scenario(scenario_from(SCENARIO))
    messages = result.history.messages.sort_by("msg_id").to_pylist()
    assert all(m["status"] == "committed" for m in messages)
    orders = [m for m in messages if m["kind"] == "order"]
    cancels = [m for m in messages if m["kind"] == "cancel"]
    # A reveal repeats its commitment (same agent, node, key, size, fee) and leaves 20 ms after
    # the commitment was sequenced: pair each order sent then with the commitment.
    commitment_at = {m["t_sequenced"] + 20_000_000: m for m in orders}
    pairs = [(commitment_at[m["t_sent"]], m) for m in orders if m["t_sent"] in commitment_at]
    assert len(pairs) * 2 == len(orders) and len(pairs) > 100
    assert all((c["agent"], c["node"], c["key"], c["size"], c["fee"]) == (r["agent"], r["node"], r["key"], r["size"], r["fee"])
               and c["msg_id"] != r["msg_id"] for c, r in pairs)
    assert len(cancels) > 100  # other kinds are not committed first


def test_without_commit_reveal_an_order_is_one_message(scenario_from, run_scenario) -> None:
    fifo = run_scenario(scenario_from(SCENARIO.replace('policy = "commit_reveal"', 'policy = "fifo"')))
    committing = run_scenario(scenario_from(SCENARIO))

    def orders(result) -> int:  # type: ignore[no-untyped-def]
        return pc.sum(pc.equal(result.history.messages["kind"], "order")).as_py()

    # The same order flow: under commit-reveal each order is two messages, under fifo one.
    assert orders(fifo) > 100 and orders(committing) == 2 * orders(fifo)
    assert len(committing.history.messages) - len(fifo.history.messages) == orders(fifo)


def test_watchers_at_an_isolated_node_see_its_reveals_at_once(scenario_from, run_scenario) -> None:
    # One node validating in no time: a reveal is validated (and seen by the front-runner
    # watching there) before ``send`` returns. It must already be known as a reveal.
    text = SCENARIO.replace('regions = ["us-east", "eu-west"]\nnodes_per_region = 2',
                            'regions = ["us-east"]\nnodes_per_region = 1\nprocessing = { dist = "constant", value = "0ns" }')
    text += """
[market]
[[market.instruments]]
name = "ETH"
price = 2000.0
[[market.frontrunners]]
name = "frontrunner"
reaction = "1ms"
"""
    fairness = run_scenario(scenario_from(text)).summary["fairness"]
    assert fairness["front_run_attempts"] > 100  # every reveal is raced (and lost)
    assert fairness["front_run_successes"] == 0


class _Host:
    """A PolicyHost for the policy alone: records by msg id, events and sends kept in lists."""

    def __init__(self, window: str) -> None:
        self.scenario = parse_scenario(SCENARIO.replace('reveal_delay = "20ms"', f'window = "{window}"'), source="t.toml")
        self.node_names = ["a"]
        self.records: dict[int, list[object]] = {}
        self.events: list[tuple[int, object, int]] = []
        self.sent: list[tuple[object, ...]] = []

    def message(self, msg: int) -> list[object] | None:
        return self.records.get(msg)

    def schedule(self, t: int, handler: object, a: int = 0, *rest: int) -> None:
        self.events.append((t, handler, a))

    def send(self, t: int, agent: int, kind: str, node: int, key: int, size: int, fee: float,
             named: Callable[[int], None] | None = None) -> int:
        self.sent.append((t, agent, kind, node, key, size, fee))
        msg = 100 + len(self.sent)
        self.records[msg] = _record(msg, 0, NULL)
        if named is not None:
            named(msg)
        return msg


def _record(msg: int, kind: int, seq_no: int) -> list[object]:
    record: list[object] = [NULL] * (WHERE + 1)
    record[MSG_ID], record[KIND], record[AGENT], record[ORIGIN] = msg, kind, 3, 2
    record[KEY], record[SIZE], record[FEE], record[SEQ_NO], record[WHERE] = 77, 250, 1.5, seq_no, SEQUENCED
    return record


def test_a_reveal_after_the_window_has_expired_and_one_within_takes_its_commitments_place() -> None:
    host = _Host("1s")
    policy = CommitRevealPolicy()
    policy.attach(host)  # type: ignore[arg-type]
    for msg, seq_no in ((1, 10), (2, 11)):  # two orders (kind 0) sequenced at t = 0
        host.records[msg] = _record(msg, 0, seq_no)
        assert policy.hides(host.records[msg])  # watchers see a commitment, not its order
        policy.sequenced(0, msg)
    for t, reveal, _ in list(host.events):
        reveal(t, _, 0, 0, 0)  # type: ignore[operator]
    assert [s[1:] for s in host.sent] == [(3, "order", 2, 77, 250, 1.5)] * 2  # the same content, from its node
    host.records[101], host.records[102] = _record(101, 0, 20), _record(102, 0, 21)
    assert not policy.hides(host.records[101])
    policy.sequenced(900_000_000, 101)  # within the 1 s window
    policy.sequenced(1_100_000_000, 102)  # after it
    assert policy.execution_rank(host.records[101]) == 10
    assert policy.execution_rank(host.records[102]) is None
    assert policy.execution_rank(host.records[101]) == 10  # asked again: the same answer
    assert policy.execution_rank(host.records[102]) is None
    assert policy.expired == 1


def test_a_commitment_sequenced_again_takes_its_new_place_and_is_revealed_once() -> None:
    host = _Host("1s")
    policy = CommitRevealPolicy()
    policy.attach(host)  # type: ignore[arg-type]
    host.records[1] = _record(1, 0, 10)
    policy.sequenced(0, 1)
    (t, reveal, a), = host.events
    reveal(t, a, 0, 0, 0)  # type: ignore[operator]
    host.records[101] = _record(101, 0, 11)
    policy.sequenced(5_000_000, 101)
    # The leader crashes; the new one sequences the commitment again (its old number reused).
    host.records[1][SEQ_NO] = 4
    policy.sequenced(9_000_000, 1)
    assert len(host.events) == 1 and len(host.sent) == 1  # no second reveal
    assert policy.execution_rank(host.records[101]) == 4
    assert policy.execution_rank(host.records[1]) == 4


def test_state_of_settled_reveals_is_dropped() -> None:
    host = _Host("1s")
    policy = CommitRevealPolicy()
    policy.attach(host)  # type: ignore[arg-type]
    for n in range(3000):
        msg = 100_000 + n  # commitments, apart from the reveals' ids (101, 102, ...)
        host.records[msg] = _record(msg, 0, n)
        policy.sequenced(n, msg)
        _, reveal, a = host.events[-1]
        reveal(n, a, 0, 0, 0)  # type: ignore[operator]
        reveal_id = 100 + len(host.sent)
        policy.sequenced(n + 1, reveal_id)
        del host.records[msg], host.records[reveal_id]  # both settled
    assert len(policy.reveal_of) < 1100 and len(policy.on_time) < 1100 and len(policy.committed_at) < 1100



def test_a_reveal_delay_not_shorter_than_the_window_is_refused(scenario_from) -> None:
    text = SCENARIO.replace('reveal_delay = "20ms"', 'reveal_delay = "2s", window = "2s"')
    with pytest.raises(ScenarioError, match=r"test.toml:\d+: sequencer.commit_reveal: .*reveal_delay .* must be shorter than window"):
        scenario_from(text)
