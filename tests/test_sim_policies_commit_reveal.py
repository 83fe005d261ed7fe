"""The commit_reveal policy: every committed order is revealed by a second message."""

from __future__ import annotations

import pyarrow.compute as pc

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
