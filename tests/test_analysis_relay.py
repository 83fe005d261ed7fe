"""The relay section: the gossip kernel's counts, through the history, in summary.json, the
terminal, report.html and ``compare``.

A small chain whose messages relay slowly (announce and fetch with a 50 ms overhead), so
that compact blocks often reach a node before some of their messages: every number shown
must be the one the kernel counted, read back from each output.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from rich.console import Console

from msgstorm.analysis.summary_model import Summary
from msgstorm.history import read_history
from msgstorm.report.compare import compare_runs, load_run
from msgstorm.report.terminal import print_summary

SCENARIO = """
[run]
name = "relay-counts"
seed = 5
duration = "2s"
drain = "3s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 8
bandwidth = "20Mbit/s"

[network.relay]
protocol = "announce"
control_overhead = "50ms"
high_bandwidth = 4
kinds = {{ block = "{block}" }}

[gossip]
mode = "mesh"
degree = 4
peers = 6

[blocks]
interval = "200ms"

[[agents]]
name = "traders"
region = "us-east"
count = 4
arrival = {{ process = "poisson", rate = "100/s" }}
size = 300
"""


def _cell(page: str, label: str) -> str:
    table = page[page.index('id="relay-table"'):]
    table = table[:table.index("</table>")]
    found = re.search(rf"{re.escape(label)}</td>\s*<td class=\"num\">([^<]*)</td>", table)
    assert found, label
    return found.group(1)


def test_relay_counts_reach_the_summary_terminal_page_and_compare(scenario_from, run_scenario) -> None:
    compact: Any = run_scenario(scenario_from(SCENARIO.format(block="compact")), "compact")
    history = read_history(compact.run_dir)
    events = [row for row in history.events.to_pylist() if row["kind"] == "relay"]
    assert len(events) == 1
    detail = json.loads(events[0]["detail"])
    relay = compact.summary["relay"]
    Summary.model_validate(json.loads((compact.run_dir / "summary.json").read_text()))
    assert relay["payloads"] == detail["payloads"] == int(events[0]["value"])
    assert relay["compact"] == detail["compact"]
    assert relay["compact"]["getblocktxn"] > 0 and relay["compact"]["missing_bytes"] == 300 * relay["compact"]["missing"]
    assert relay["duplicates_avoided"] == relay["announcements"] - relay["requests"] > 0
    assert sum(relay["uploaded_bytes"].values()) > 0
    assert relay["uploaded_bytes_per_node"]["eu-west"] == round(relay["uploaded_bytes"]["eu-west"] / 8)

    buffer = io.StringIO()
    print_summary(compact.summary, Console(file=buffer, width=200))
    shown = buffer.getvalue()
    c = relay["compact"]
    assert re.search(rf"compact blocks: round trips / missing\s*│\s*{c['getblocktxn']:,} / {c['missing']:,} messages "
                     rf"\({c['missing_bytes']:,} B; {c['held']:,} held\)", shown)
    assert re.search(rf"relay payloads / announcements / requests\s*│\s*{relay['payloads']:,} / "
                     rf"{relay['announcements']:,} / {relay['requests']:,}", shown)

    page = (compact.run_dir / "report.html").read_text()
    assert _cell(page, "getblocktxn").replace(",", "") == str(c["getblocktxn"])
    assert _cell(page, "missing bytes").replace(",", "") == str(c["missing_bytes"])
    assert _cell(page, "uploaded, us-east").replace(",", "") == str(relay["uploaded_bytes"]["us-east"])

    # Whole blocks pushed instead: no round trips, and more bytes uploaded.
    pushed: Any = run_scenario(scenario_from(SCENARIO.format(block="push")), "pushed")
    assert pushed.summary["relay"]["compact"]["getblocktxn"] == 0
    assert sum(pushed.summary["relay"]["uploaded_bytes"].values()) > 1.5 * sum(relay["uploaded_bytes"].values())
    comparison = compare_runs([load_run(pushed.run_dir, "pushed"), load_run(compact.run_dir, "compact")], 0.05)
    rows = {metric.name: (base, deltas[0].value) for metric, base, deltas in comparison.rows}
    assert rows["compact block round trips"] == (0, c["getblocktxn"])
    assert rows["relay payloads sent"] == (pushed.summary["relay"]["payloads"], relay["payloads"])


def test_a_run_that_pushes_everything_has_no_relay_section(scenario_from, run_scenario) -> None:
    text = SCENARIO.format(block="push").replace('protocol = "announce"', 'protocol = "push"').replace(
        'kinds = { block = "push" }', "")
    result: Any = run_scenario(scenario_from(text))
    assert "relay" not in result.summary
    assert "relay" not in {row["kind"] for row in read_history(result.run_dir).events.to_pylist()}
    # Nor a hop split: the hop log is off, and the history has no hop_stages directory.
    assert "hop_split" not in result.summary
    assert not (result.run_dir / "history" / "hop_stages").exists()
