"""Authenticated messages in the simulator (sim/integrity.py): tampered and replayed
messages are rejected exactly when the scheme authenticates, counted exactly; the
verification cost is a processing time in both loops; a run without [security] is unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from msgstorm.analysis.summary import analyse
from msgstorm.history import read_history
from msgstorm.history.writer import HistoryWriter
from msgstorm.scenario.loader import parse_scenario
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.traffic.generate import generate_traffic

TOML = """
[run]
name = "integrity"
seed = 7
duration = "2s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 3
processing = "10us"

[sequencer]
service = "50us"

[blocks]
interval = "100ms"

[security]
scheme = "{scheme}"
verify_cost = "60us"
verify = "{verify}"

[[agents]]
name = "traders"
role = "trader"
count = 4
arrival = {{ process = "poisson", rate = "500/s" }}

[[faults]]
kind = "tamper"
at = "0.5s"
duration = "0.5s"
probability = 0.3

[[faults]]
kind = "replay"
at = "1s"
duration = "0.5s"
probability = 0.2
delay = "5ms"

[[faults]]
kind = "replay"
at = "1.2s"
duration = "0.2s"
chain = "other"
probability = 0.5
kinds = ["order", "cancel"]
"""


def _run(scenario_from, run_scenario, scheme: str, verify: str = "model"):  # type: ignore[no-untyped-def]
    return run_scenario(scenario_from(TOML.format(scheme=scheme, verify=verify)))


@pytest.mark.parametrize("scheme", ["hmac-sha256", "ed25519"])
def test_authentication_rejects_every_tampered_and_replayed_message(scenario_from, run_scenario, scheme) -> None:
    result = _run(scenario_from, run_scenario, scheme)
    integrity = result.summary["integrity"]
    messages = result.summary["messages"]
    table = result.history.table("integrity")
    copies = table.filter(pc.equal(table["attack"], "replayed"))
    # Every copy is a message of its own in the history, numbered after the traffic's.
    assert integrity["tampered"] > 50 and integrity["replayed"] > 50 and integrity["replayed_other_chain"] > 20
    assert integrity["detected"] == integrity["tampered"] + integrity["replayed"]
    assert integrity["accepted"] == 0
    assert messages["rejected"] == integrity["detected"]  # nothing else rejects in this scenario
    assert messages["committed"] == messages["sent"] - integrity["detected"]
    assert copies.num_rows == integrity["replayed"]
    rejected = result.history.messages.filter(pc.equal(result.history.messages["status"], "rejected"))
    assert sorted(rejected["msg_id"].to_pylist()) == sorted(table["msg_id"].to_pylist())
    honest = run_scenario(scenario_from(TOML.format(scheme=scheme, verify="model").split("[[faults]]")[0]))
    assert honest.summary["messages"]["sent"] == messages["sent"] - integrity["replayed"]


def test_without_authentication_every_one_is_accepted(scenario_from, run_scenario) -> None:
    signed = _run(scenario_from, run_scenario, "ed25519").summary["integrity"]
    result = _run(scenario_from, run_scenario, "none")
    integrity = result.summary["integrity"]
    # The adversary's draws do not depend on the scheme: the same messages are attacked.
    assert (integrity["tampered"], integrity["replayed"]) == (signed["tampered"], signed["replayed"])
    assert integrity["detected"] == 0
    assert integrity["accepted"] == integrity["tampered"] + integrity["replayed"]
    messages = result.summary["messages"]
    assert messages["rejected"] == 0 and messages["committed"] == messages["sent"]
    # Each accepted copy executes beside its original: the same agent, key and fee twice.
    table = result.history.table("integrity")
    copies = table.filter(pc.equal(table["attack"], "replayed")).to_pylist()
    rows = {row["msg_id"]: row for row in result.history.messages.to_pylist()}
    for copy in copies:
        original, again = rows[copy["of_msg"]], rows[copy["msg_id"]]
        assert (original["agent"], original["key"], original["fee"]) == (again["agent"], again["key"], again["fee"])
        assert again["status"] == original["status"] == "committed"


def test_a_replayed_copy_enters_where_its_original_did(scenario_from, run_scenario) -> None:
    """docs/model.md: a copy is sent from the original's node, ``delay`` after the leader
    received the original (5 ms for the first replay fault, the 1 ms default for the other
    chain's), as a message of its own with the original's agent, kind, key, size and fee, and
    travels to the leader as any message does: at least the original's shortest trip from that
    node (the leader's own: 10 us processing + 60 us verification; another node's: a hop more)."""
    result = _run(scenario_from, run_scenario, "hmac-sha256")
    rows = {row["msg_id"]: row for row in result.history.messages.to_pylist()}
    table = result.history.table("integrity")
    copies = table.filter(pc.equal(table["attack"], "replayed")).to_pylist()
    assert len(copies) > 50
    shortest: dict[str, int] = {}  # over the messages the traffic sent
    copied = {copy["msg_id"] for copy in copies}
    for row in rows.values():
        if row["t_received"] is not None and row["msg_id"] not in copied:
            shortest[row["node"]] = min(shortest.get(row["node"], 1 << 62), row["t_received"] - row["t_intended"])
    assert shortest["us-east-0"] == 70_000  # the leader's own node
    for copy in copies:
        original, again = rows[copy["of_msg"]], rows[copy["msg_id"]]
        delay = 1_000_000 if copy["chain"] == "other" else 5_000_000
        assert again["msg_id"] != original["msg_id"]
        assert again["t_intended"] == again["t_sent"] == original["t_received"] + delay
        assert [again[key] for key in ("node", "agent", "kind", "key", "size", "fee")] == [
            original[key] for key in ("node", "agent", "kind", "key", "size", "fee")]
        assert copy["t"] == again["t_received"] >= again["t_intended"] + shortest[again["node"]]
    assert {rows[copy["msg_id"]]["node"] for copy in copies} == {"us-east-0", "us-east-1", "us-east-2"}


def test_scheme_none_reports_no_verification_cost(scenario_from, run_scenario) -> None:
    """Under ``none`` nothing is verified: the scenario's 60 us is not used (a one-node
    message's trip is its 10 us processing alone) and the summary says not applicable (null),
    not 0, in the terminal and on the page too."""
    from msgstorm.report.terminal import security_lines

    result = _run(scenario_from, run_scenario, "none")
    assert result.summary["security"] == {"scheme": "none", "verify": "model", "chain_id": 1,
                                          "verify_cost_us": None, "sign_cost_us": None, "source": None}
    trips = [row["t_received"] - row["t_intended"] for row in result.history.messages.to_pylist()
             if row["node"] == "us-east-0" and row["t_received"] is not None]
    assert min(trips) == 10_000
    assert dict(security_lines(result.analysis.result))["security"] == "none: nothing signed or verified, no cost (model)"
    page = (result.run_dir / "report.html").read_text()
    assert "<b>none</b> (model): no message is signed or verified, so verifying costs nothing." in page


@pytest.mark.parametrize("scheme", ["none", "hmac-sha256", "ed25519"])
def test_real_verification_agrees_with_the_model(scenario_from, run_scenario, scheme) -> None:
    """The library signs and verifies every message: its verdicts are the model's (the run
    stops on a disagreement), so the history is the same."""
    model = _run(scenario_from, run_scenario, scheme)
    real = _run(scenario_from, run_scenario, scheme, "real")
    assert real.history.table("integrity").equals(model.history.table("integrity"))
    assert real.history.messages.equals(model.history.messages)
    assert real.summary["security"]["verify"] == "real"


def _loop_history(text: str, out: Path, compiled: bool) -> dict[str, list[object]]:
    scenario = parse_scenario(text, source="one-node.toml")
    writer = HistoryWriter(out / "history", scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed, reference=not compiled)
    assert (sim.solo is not None) == compiled
    sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window))
    sim.finish()
    writer.close()
    return dict(read_history(out).messages.to_pydict())


@pytest.mark.parametrize("processing", ['"10us"', '{ dist = "lognormal", median = "10us", sigma = 0.5 }'])
def test_verification_cost_is_processing_time_in_both_loops(tmp_path: Path, processing: str) -> None:
    """One node: a message's propagation is its node's processing plus the 60us verification
    (at least; the CPU queues), and the compiled loop writes the Python loop's history."""
    text = TOML.format(scheme="ed25519", verify="model").split("[[faults]]")[0].replace(
        "nodes_per_region = 3", "nodes_per_region = 1").replace('processing = "10us"', f"processing = {processing}")
    compiled = _loop_history(text, tmp_path / "compiled", compiled=True)
    python = _loop_history(text, tmp_path / "python", compiled=False)
    assert compiled == python
    plain = _loop_history(text.replace('verify_cost = "60us"', 'verify_cost = "0s"'), tmp_path / "plain", True)
    cost = [r - i for r, i in zip(compiled["t_received"], compiled["t_intended"], strict=True)]
    free = [r - i for r, i in zip(plain["t_received"], plain["t_intended"], strict=True)]
    if processing == '"10us"':
        assert min(cost) == 70_000 and min(free) == 10_000
    assert float(np.mean(cost)) > float(np.mean(free)) + 60_000  # the cost, and the queue it makes


def test_the_summary_shows_the_cost_used(scenario_from, run_scenario) -> None:
    result = _run(scenario_from, run_scenario, "ed25519")
    assert result.summary["security"] == {"scheme": "ed25519", "verify": "model", "chain_id": 1,
                                          "verify_cost_us": 60.0, "sign_cost_us": None, "source": "scenario"}


def test_a_run_without_security_keeps_its_hash_and_summary(scenario_from, run_scenario) -> None:
    full = TOML.format(scheme="none", verify="model").split("[[faults]]")[0]
    text = full.split("[security]")[0] + "[[agents]]" + full.split("[[agents]]")[1]
    scenario = scenario_from(text)
    assert scenario.security is None
    assert "security" not in scenario.model_dump(mode="json")
    result = run_scenario(scenario)
    assert "security" not in result.summary and "integrity" not in result.summary
    assert result.history.table("integrity").num_rows == 0


def test_the_analysis_reads_the_counts_from_the_history(scenario_from, run_scenario) -> None:
    result = _run(scenario_from, run_scenario, "hmac-sha256")
    assert analyse(result.history).summary["integrity"] == result.summary["integrity"]


def test_the_terminal_says_what_got_through(scenario_from, run_scenario) -> None:
    from msgstorm.report.terminal import security_lines

    signed = dict(security_lines(_run(scenario_from, run_scenario, "ed25519").analysis.result))
    assert signed["security"].startswith("ed25519: verify 60 us a message (from scenario; model)")
    assert signed["integrity"].endswith("every one detected")
    unsigned = dict(security_lines(_run(scenario_from, run_scenario, "none").analysis.result))
    summary = _run(scenario_from, run_scenario, "none").summary["integrity"]
    assert unsigned["integrity"].endswith(f"detected 0, ACCEPTED {summary['accepted']:,}")


def test_the_report_page_shows_the_verdict_and_the_counts(scenario_from, run_scenario) -> None:
    import re

    for scheme, verdict in (("ed25519", "VALID: all"), ("none", "INVALID: ")):
        result = _run(scenario_from, run_scenario, scheme)
        page = (result.run_dir / "report.html").read_text()
        integrity = result.summary["integrity"]
        shown = re.search(r'<p id="integrity-verdict">([^<]*)</p>', page)
        assert shown is not None and shown.group(1).startswith(verdict)
        forged = integrity["tampered"] + integrity["replayed"]
        assert f"{forged:,} tampered or replayed messages" in shown.group(1)
        rows = re.search(r'id="integrity-table".*?</table>', page, re.S)
        assert rows is not None
        for key in ("tampered", "replayed", "detected", "accepted"):
            assert re.search(rf"<td>{key}</td><td class=\"num\">{integrity[key]:,}</td>", rows.group(0)), key
