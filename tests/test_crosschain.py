"""Two chains and relayers ([crosschain]): latency worked by hand, a halted source, reorgs
against relayers that wait or do not, a censoring relayer's share, determinism, validation."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
from scipy.stats import binom

from msgstorm.analysis.crosschain import crosschain_table
from msgstorm.history import read_history
from msgstorm.history.reader import read_table
from msgstorm.runner import reanalyse, run
from msgstorm.scenario import ScenarioError, parse_scenario
from msgstorm.scenario.destination import default_node, destination_scenario
from msgstorm.sim.relayers import plan_relays

MS = 1_000_000

# One node a chain, no processing, constant service: every time below follows from the
# first order's send time by hand. The source's blocks come every 100 ms, the destination's
# every 250 ms; the relayer waits 30 ms, the proof check takes 20 ms.
TINY = """
[run]
name = "tiny"
seed = 3
duration = "1s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = "0ns"

[sequencer]
service = { dist = "constant", value = "1ms" }

[blocks]
interval = "100ms"

[[agents]]
name = "traders"
arrival = { process = "constant", rate = "4/s" }
mix = { order = 1.0 }

[crosschain]
proof_check = "20ms"

[[crosschain.relayers]]
name = "r"
delay = "30ms"

[crosschain.destination.sequencer]
service = { dist = "constant", value = "2ms" }

[crosschain.destination.blocks]
interval = "250ms"

[[crosschain.destination.agents]]
name = "locals"
start = "2900ms"
arrival = { process = "constant", rate = "1/s" }
"""


def _ceil_to(t: int, step: int) -> int:
    return -(-t // step) * step


def test_latency_worked_by_hand(tmp_path: Path) -> None:
    result = run(parse_scenario(TINY, source="tiny.toml"), tmp_path / "run")
    first = int(result.history.messages.column("t_intended")[0].as_py())
    rows = crosschain_table(read_history(tmp_path / "run"))
    assert rows is not None
    expected = []
    for k in range(4):  # 4/s for 1 s, evenly spaced from the first
        intended = first + k * 250 * MS
        source_commit = _ceil_to(intended + 1 * MS, 100 * MS)  # served 1 ms, committed by the next block
        arrival = source_commit + 30 * MS + 20 * MS
        dest_commit = _ceil_to(arrival + 2 * MS, 250 * MS)  # served 2 ms, committed by the next block
        expected.append({"src_msg_id": k, "kind": "order", "relayer": "r-0", "t_intended": intended,
                         "t_source_commit": source_commit, "t_seen": source_commit,
                         "t_relayed": source_commit + 30 * MS, "t_arrival": arrival, "dest_msg_id": k,
                         "t_dest_commit": dest_commit, "fate": "delivered"})
    assert rows.to_pylist() == expected
    latencies = sorted(row["t_dest_commit"] - row["t_intended"] for row in expected)
    summary = result.summary["crosschain"]
    assert summary["latency_ms"]["max"] == round(latencies[-1] / MS, 3)
    assert summary["latency_ms"]["p50"] == round(latencies[1] / MS, 3)  # nearest rank of 4
    assert summary["split_ms"]["relay"] == {"p50": 30.0, "mean": 30.0}
    assert summary["split_ms"]["proof_check"] == {"p50": 20.0, "mean": 20.0}
    assert summary["fates"] == {"delivered": 4, "censored": 0, "never_final": 0, "reverted_on_source": 0,
                                "undelivered": 0}
    assert summary["source_halt"] is None
    # Re-analysed from the run directory alone (``msgstorm report``), the same section.
    (tmp_path / "run" / "summary.json").unlink()
    assert reanalyse(tmp_path / "run").summary["crosschain"] == summary
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["crosschain"] == summary
    # What the report page shows, read back.
    page = (tmp_path / "run" / "report.html").read_text()
    head = _table(page, "crosschain-table")
    assert head["cross-chain messages"] == ["4: delivered 4, censored 0, never final 0, reverted on source 0, "
                                            "undelivered 0"]
    assert head["relayed by"] == ["r-0 4"]
    stages = _table(page, "crosschain-stages")
    assert stages["relay"] == ["30 ms", "30 ms"]
    assert stages["proof check"] == ["20 ms", "20 ms"]


def _table(page: str, table_id: str) -> dict[str, list[str]]:
    """The rows of the page's table ``table_id``: first cell -> the other cells' text."""
    body = page[page.index(f'id="{table_id}"'):]
    body = body[:body.index("</table>")]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body)[1:]:
        cells = [html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        rows[cells[0]] = cells[1:]
    return rows


HALT = """
[run]
name = "halt"
seed = 5
duration = "6s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 3

[sequencer]
node = "us-east-0"

[blocks]
interval = "200ms"

[[agents]]
name = "traders"
node = "us-east-1"
arrival = { process = "poisson", rate = "50/s" }
mix = { order = 1.0 }

[[faults]]
kind = "crash"
at = "2s"
node = "us-east-0"

[crosschain]

[[crosschain.relayers]]
name = "r"
source_node = "us-east-2"
delay = "10ms"

[crosschain.destination.network]
regions = ["eu-west"]
nodes_per_region = 2

[crosschain.destination.sequencer]
node = "eu-west-0"

[[crosschain.destination.agents]]
name = "locals"
arrival = { process = "poisson", rate = "5/s" }
"""


def test_halted_source_relays_nothing_after_the_halt(tmp_path: Path) -> None:
    result = run(parse_scenario(HALT, source="halt.toml"), tmp_path / "run")
    rows = crosschain_table(read_history(tmp_path / "run"))
    assert rows is not None
    seen = [t for t in rows.column("t_seen").to_pylist() if t is not None]
    assert seen and max(seen) <= 2_000_000_000, "nothing is final once the only sequencer is down"
    fates = rows.column("fate").to_pylist()
    late = [fate for fate, t in zip(fates, rows.column("t_intended").to_pylist(), strict=True) if t > 2_000_000_000]
    assert late and set(late) == {"never_final"}
    halt = result.summary["crosschain"]["source_halt"]
    assert halt is not None
    assert halt["faults"] == ["crash at 2 s"]
    assert halt["from_s"] <= 2.0 and halt["to_s"] >= 6.0
    assert halt["seen_inside"] == 0
    # Those sent before the crash but not yet committed never become final either.
    uncommitted = rows.column("t_source_commit").null_count
    assert len(late) < uncommitted == result.summary["crosschain"]["fates"]["never_final"]


# Two proof-of-work producers, one a side of a partition from 2 s to 5 s: each side extends
# its own branch, and when the cut heals the shorter branch, us-east's, is reorganised away
# (4 blocks deep, within the 12 confirmations). The relayer watches from us-east-1.
REORG = """
[run]
name = "reorg"
seed = 11
duration = "10s"
drain = "4s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 2
processing = "50us"

[gossip]
degree = 2
peers = 3

[blocks]
interval = "300ms"

[blocks.producers]
rule = "pow"
nodes = ["us-east-0", "eu-west-0"]
confirmations = 12

[[agents]]
name = "traders"
count = 4
arrival = { process = "poisson", rate = "10/s" }
mix = { order = 1.0 }

[[faults]]
kind = "partition"
at = "2s"
duration = "3s"
groups = [["us-east"], ["eu-west"]]

[crosschain]

[[crosschain.relayers]]
name = "NAME"
source_node = "us-east-1"
wait = "WAIT"
delay = "5ms"

[crosschain.destination.network]
regions = ["us-east"]
nodes_per_region = 1

[crosschain.destination.blocks]
interval = "200ms"

[[crosschain.destination.agents]]
name = "locals"
arrival = { process = "poisson", rate = "2/s" }
"""


def _reorg(name: str, wait: str) -> Any:
    return parse_scenario(REORG.replace("NAME", name).replace("WAIT", wait), source="reorg.toml")


def _reverted(plan_relays_table: Any, canonical: set[int]) -> int:
    relayed = plan_relays_table.filter(pc.equal(plan_relays_table["outcome"], "relayed"))
    return sum(block not in canonical for block in relayed.column("block").to_pylist())


def test_a_relayer_that_waits_never_relays_what_a_reorg_took_back(tmp_path: Path) -> None:
    fast = _reorg("fast", "included")
    result = run(fast, tmp_path / "run")
    blocks = read_table(tmp_path / "run" / "history", "blocks")
    canonical = set(blocks.filter(blocks["canonical"]).column("block").to_pylist())
    assert len(canonical) < blocks.num_rows, "the partition must leave stale blocks"
    checks = {check["name"]: check["verdict"] for check in result.summary["checks"]}
    assert checks["safety"] == "valid", "no reorg deeper than the confirmations"
    rows = crosschain_table(read_history(tmp_path / "run"))
    assert rows is not None
    reverted = rows.filter(pc.equal(rows["fate"], "reverted_on_source"))
    assert reverted.num_rows > 0, "a relayer at 0 confirmations carries what the reorg took back"
    assert result.summary["crosschain"]["fates"]["reverted_on_source"] == reverted.num_rows

    # The same source history read by relayers at the same node that wait for finality.
    source = read_history(tmp_path / "run")
    safe = _reorg("safe", "final")
    seed = np.random.SeedSequence(1).spawn(3)[2]
    node = default_node(destination_scenario(safe, []))
    plan = plan_relays(source, safe, node, seed)
    assert _reverted(plan.relays, canonical) == 0
    assert pc.sum(pc.equal(plan.relays["outcome"], "relayed")).as_py() > 0
    again = plan_relays(source, fast, node, seed)
    assert _reverted(again.relays, canonical) == reverted.num_rows


CENSOR = TINY.replace('rate = "4/s"', 'rate = "2000/s"').replace('value = "1ms"', 'value = "100us"').replace('delay = "30ms"', 'delay = "30ms"\ncensor = 0.3')


def test_a_censoring_relayers_share_is_binomial(tmp_path: Path) -> None:
    scenario = parse_scenario(CENSOR, source="censor.toml")
    result = run(scenario, tmp_path / "run")
    fates = result.summary["crosschain"]["fates"]
    seen = fates["censored"] + fates["delivered"] + fates["undelivered"]
    assert seen == result.summary["crosschain"]["messages"] == 2000  # 2000/s for 1 s, each seen final
    lo, hi = binom.ppf(0.0001, seen, 0.3), binom.ppf(0.9999, seen, 0.3)
    assert lo <= fates["censored"] <= hi, (fates, lo, hi)
    assert result.summary["crosschain"]["by_relayer"] == {"r-0": seen - fates["censored"]}
    # A mutation that refuses nothing leaves the interval.
    assert not lo <= 0 <= hi


def test_same_seed_same_histories(tmp_path: Path) -> None:
    scenario = _reorg("fast", "included")
    for name in ("a", "b"):
        run(scenario, tmp_path / name, write_report=False)
    for table in ("relays", "messages", "events"):
        a = read_table(tmp_path / "a" / "destination" / "history", table)
        b = read_table(tmp_path / "b" / "destination" / "history", table)
        assert a.equals(b), table
    a_summary = json.loads((tmp_path / "a" / "summary.json").read_text())["crosschain"]
    b_summary = json.loads((tmp_path / "b" / "summary.json").read_text())["crosschain"]
    assert a_summary == b_summary
    assert math.isclose(sum(stage["mean"] for stage in a_summary["split_ms"].values()),
                        a_summary["latency_ms"]["mean"], abs_tol=0.003), "the split's means add up"


def test_without_the_section_nothing_changes(tmp_path: Path) -> None:
    plain = TINY.split("[crosschain]")[0]
    scenario = parse_scenario(plain, source="plain.toml")
    assert "crosschain" not in scenario.model_dump(mode="json", by_alias=True)
    result = run(scenario, tmp_path / "run", write_report=False)
    assert "crosschain" not in result.summary
    assert not (tmp_path / "run" / "destination").exists()
    assert not (tmp_path / "run" / "history" / "inclusions").exists()


@pytest.mark.parametrize(("after", "added", "field", "says"), [
    ('value = "2ms" }', "workers = 0", "crosschain.destination.sequencer.workers", "greater than or equal to 1"),
    ('delay = "30ms"', 'source_node = "nowhere"', "crosschain.relayers[0].source_node", "unknown source node 'nowhere'"),
    ('delay = "30ms"', "censor = 1.5", "crosschain.relayers[0].censor", "expected a fraction between 0% and 100%"),
])
def test_mistakes_are_located(after: str, added: str, field: str, says: str) -> None:
    text = TINY.replace(after, f"{after}\n{added}")
    line = text.splitlines().index(added) + 1
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="bad.toml")
    issues = [(issue.field, issue.message, issue.line) for issue in caught.value.issues]
    assert any(f == field and says in message for f, message, _ in issues), issues
    if field.startswith("crosschain.relayers"):  # the destination's are located at their table
        assert (field, line) in [(f, at) for f, _, at in issues]


def test_a_live_target_is_refused_before_it_starts() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario('target = "nats"\n' + TINY, source="live.toml")
    assert any(issue.field == "crosschain" and "runs on target 'sim' only" in issue.message for issue in caught.value.issues)


def test_a_destination_over_its_limits_is_refused_before_the_source_runs() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(TINY, "tiny.toml", overrides=["crosschain.destination.limits={max_messages=1}",
                                                  'crosschain.destination.run={duration="10s"}'])
    assert any(issue.field.startswith("crosschain.destination") and "over limits.max_messages = 1" in issue.message
               for issue in caught.value.issues), caught.value.issues
