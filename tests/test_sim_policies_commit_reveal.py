"""The commit_reveal policy: every committed order is revealed by a second message."""

from __future__ import annotations

import pyarrow.compute as pc

from msgstorm.scenario.loader import parse_scenario
from msgstorm.sim.policies_commit_reveal import CommitRevealPolicy

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
    result = run_scenario(scenario_from(SCENARIO.replace('policy = "commit_reveal"', 'policy = "fifo"')))
    messages = result.history.messages
    assert pc.sum(pc.equal(messages["kind"], "order")).as_py() < 250


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

    def send(self, t: int, agent: int, kind: str, node: int, key: int, size: int, fee: float) -> int:
        self.sent.append((t, agent, kind, node, key, size, fee))
        return 100 + len(self.sent)


def _record(msg: int, kind: int, seq_no: int) -> list[object]:
    # Fields of sim/state.py: MSG_ID, KIND, AGENT, ORIGIN, KEY, SIZE, FEE, ..., SEQ_NO at 12.
    return [msg, kind, 3, 2, 77, 250, 1.5, 0, 0, 0, 0, 0, seq_no, -1, -1, 0]


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
    assert policy.expired == 1
