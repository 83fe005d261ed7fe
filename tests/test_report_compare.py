"""msgstorm compare: regressions flagged by direction and tolerance, bad run directories exit 2."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import msgstorm
from msgstorm.analysis.summary_model import Summary
from msgstorm.cli import app
from msgstorm.report.compare import (
    METRICS,
    RunDirError,
    compare_runs,
    format_delta,
    judge,
    load_run,
    parse_tolerance,
    print_comparison,
)
from msgstorm.runner import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SMALL = ['run.duration="3s"', 'run.drain="2s"']


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    made = {}
    for name, extra in (("base", []), ("same", []), ("slow", ['network.intra_region_latency="100ms"'])):
        scenario = msgstorm.load_scenario(EXAMPLES / "quickstart.toml", [*SMALL, *extra])
        made[name] = run(scenario, root / name).run_dir
    return made


def _compare(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(app, ["compare", *args])
    return outcome.exit_code, outcome.output


def test_identical_runs_are_not_flagged(runs, tmp_path) -> None:
    code, output = _compare(str(runs["base"]), str(runs["same"]), "--fail-on-regression",
                            "--html", str(tmp_path / "compare.html"))
    assert code == 0, output
    assert "no regression beyond 5%" in output
    assert "regression:" not in output
    assert 'data-regressions="0"' in (tmp_path / "compare.html").read_text()


def test_extra_latency_is_flagged(runs, tmp_path) -> None:
    page = tmp_path / "compare.html"
    code, output = _compare(str(runs["base"]), str(runs["slow"]), "--tolerance", "5%", "--fail-on-regression",
                            "--html", str(page))
    assert code == 1, output
    assert "regression: latency p50 in B" in output
    assert "regression: propagation p99 in B" in output
    assert "regression: throughput" not in output, "the same load is committed, only later"
    html = page.read_text()
    assert 'data-status="regression"' in html and 'id="compare-verdict" data-regressions="0"' not in html
    # Without --fail-on-regression the table is still printed, and the exit code is 0.
    code, output = _compare(str(runs["base"]), str(runs["slow"]), "--no-html")
    assert code == 0 and "regression: latency p50" in output
    # A tolerance wider than the slowdown lets it pass.
    code, output = _compare(str(runs["base"]), str(runs["slow"]), "--tolerance", "1000%", "--fail-on-regression",
                            "--no-html")
    assert code == 0, output


def test_direction_matters() -> None:
    by_name = {metric.name: metric for metric in METRICS}
    assert judge(by_name["latency p99"], 100.0, 110.0, 0.05).status == "regression"
    assert judge(by_name["latency p99"], 100.0, 90.0, 0.05).status == "improved"
    assert judge(by_name["latency p99"], 100.0, 104.0, 0.05).status == "worse"
    assert judge(by_name["throughput"], 1000.0, 900.0, 0.05).status == "regression"
    assert judge(by_name["throughput"], 1000.0, 1100.0, 0.05).status == "improved"
    assert judge(by_name["messages dropped"], 0.0, 1.0, 0.05).status == "regression"
    assert judge(by_name["failure threshold"], None, 3000.0, 0.05).status == "regression"
    assert judge(by_name["failure threshold"], 3000.0, None, 0.05).status == "improved"
    assert judge(by_name["receipts lost (live)"], 0.0, 12.0, 0.05).status == "regression"
    assert judge(by_name["client disconnects (live)"], 2.0, 0.0, 0.05).status == "improved"
    assert judge(by_name["offered rate"], 1000.0, 2000.0, 0.05).status == "n/a"
    assert judge(by_name["latency p99"], 100.0, 100.0, 0.0).status == "same"


def test_a_change_of_a_percentage_is_in_percentage_points() -> None:
    """0.2% of open interest to 14.8% is 14.6 points more, 7,300% of the baseline: the
    points are ``pp``, never a second percent; other units keep theirs."""
    by_name = {metric.name: metric for metric in METRICS}
    share = by_name["bad debt % of open interest"]
    assert format_delta(share, judge(share, 0.2, 14.8, 0.05)) == "+7300.0% (+14.6 pp)"
    assert format_delta(share, judge(share, 14.8, 0.2, 0.05)) == "−98.6% (−14.6 pp)"
    assert format_delta(by_name["throughput"], judge(by_name["throughput"], 1000.0, 1100.0, 0.05)) == "+10.0% (+100/s)"


def test_tolerance_parsing() -> None:
    assert parse_tolerance("5%") == pytest.approx(0.05)
    assert parse_tolerance("0.1") == pytest.approx(0.1)
    for bad in ("fast", "-1%", "nan"):
        with pytest.raises(ValueError, match="--tolerance"):
            parse_tolerance(bad)


def test_bad_run_directories_exit_2(runs, tmp_path) -> None:
    base = str(runs["base"])
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    history_only = tmp_path / "history-only"
    (history_only / "history").mkdir(parents=True)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = {
        str(tmp_path / "missing"): "no such run directory",
        str(empty): "not a msgstorm run directory",
        str(broken): "not valid JSON",
        str(history_only): "msgstorm report",
        str(a_file): "not a directory",
    }
    for path, message in cases.items():
        code, output = _compare(base, path, "--no-html")
        assert code == 2, (path, output)
        assert message in output and path in output, output
    code, output = _compare(base, "--no-html")
    assert code == 2 and "at least two run directories" in output
    code, output = _compare(base, base, "--tolerance", "lots", "--no-html")
    assert code == 2 and "--tolerance" in output


def test_fault_recovery_is_compared_by_the_slowest_recovery_and_the_faults_never_recovered() -> None:
    from msgstorm.report.compare import metric_value

    def fault(end_s: float | None, recovery_s: float | None, **more: Any) -> dict[str, Any]:
        return {"fault_id": 0, "kind": "partition", "start_s": 1.0, "end_s": end_s, "recovery_s": recovery_s, **more}

    def with_faults(faults: list[dict[str, Any]]) -> Summary:
        return Summary.model_validate(hand_summary(faults=faults))

    slowest = next(m for m in METRICS if m.name == "fault recovery max")
    unrecovered = next(m for m in METRICS if m.name == "faults not recovered")
    faults = [fault(2.0, 0.3), fault(5.0, 1.2), fault(8.0, None), fault(None, None)]  # the last never ended
    assert metric_value(with_faults(faults), slowest) == 1.2
    assert metric_value(with_faults(faults), unrecovered) == 1.0
    assert metric_value(with_faults([]), slowest) is None and metric_value(with_faults([]), unrecovered) is None
    assert judge(slowest, 0.3, 3.0, 0.1).status == "regression"  # a recovery 10x slower is worse
    # A fault with nothing to measure recovery against was not measured: not "never recovered".
    unmeasured = fault(9.0, None, no_baseline={"reason": "fault_before", "fault_id": 2})
    assert metric_value(with_faults([*faults, unmeasured]), unrecovered) == 1.0


def _p50_p99() -> dict[str, Any]:
    return {"p50": None, "p99": None}


# A summary.json with every section a run always has, each value null or 0: what a hand-made
# summary is laid over (``hand_summary``), as compare reads each file through its type.
EMPTY_SUMMARY: dict[str, Any] = {
    "scenario": "hand-made", "seed": 1, "target": "sim", "msgstorm_version": "0", "scenario_hash": None,
    "duration_s": 1.0, "interrupted": False, "cut_off": False, "offered_rate_per_s": None, "throughput_per_s": None,
    "latency_ms": dict.fromkeys(("p50", "p90", "p99", "p999", "max", "mean")),
    "latency_stages_ms": {stage: _p50_p99() for stage in ("propagation", "queue_wait", "service", "block_wait")},
    "jitter_ms": dict.fromkeys(("stddev", "p99_minus_p50", "ipdv_mean", "ipdv_p99")),
    "capacity": None, "failure_threshold": None, "queue": {"max_depth": None, "mean_depth": None},
    "backpressure": {"events": 0, "first_engaged_s": None}, "base_fee": None,
    "messages": dict.fromkeys(("sent", "sequenced", "committed", "dropped", "rejected", "lost", "pending", "unsent"),
                              0),
    "by_kind": {}, "by_agent": {}, "gossip_backlog": None, "generator": None, "delivery": None,
    "desync": {"episodes": 0, "max_height_gap": 0}, "propagation_ms": {}, "faults": [], "checks": [], "slo": [],
}
EMPTY_MARKET: dict[str, Any] = {
    "accounts": 0, "open_interest": None,
    "liquidations": dict.fromkeys(("eligible", "triggered", "executed", "late", "no_op", "not_attempted", "messages"),
                                  0),
    "liquidation_delay_ms": {**dict.fromkeys(("p50", "p99", "max", "mean")), "split": None},
    "bad_debt": {"absolute": None, "pct_of_open_interest": None, "accounts": 0},
    "price_staleness_ms": dict.fromkeys(("p50", "p99", "max")), "slippage_bps": {"p50": None, "p99": None},
}


def _laid_over(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return {**base, **{key: _laid_over(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict)
                       else value for key, value in values.items()}}


def hand_summary(**values: Any) -> dict[str, Any]:
    """A whole summary.json with the given values laid over ``EMPTY_SUMMARY`` (a ``market``
    over ``EMPTY_MARKET``), section by section."""
    if "market" in values:
        values["market"] = _laid_over(EMPTY_MARKET, values["market"])
    return _laid_over(EMPTY_SUMMARY, values)


def _summary(p99_ms: float, dropped: int) -> dict[str, object]:
    return hand_summary(latency_ms={"p99": p99_ms}, messages={"dropped": dropped}, throughput_per_s=100.0)


def _sweep_by_hand(directory: Path, scenario: str, content: str, runs: list[tuple[float, int]],
                   sets: list[str] | None = None) -> list[Path]:
    """A sweep of one point (``k = 1``) whose runs have the given (p99, dropped): its
    sweep.json, sweep.parquet, manifest and each run's summary.json, as ``msgstorm sweep``
    writes them."""
    import hashlib
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from msgstorm.sweep.manifest import MANIFEST_FILE, Manifest

    run_dirs = []
    for index, (p99_ms, dropped) in enumerate(runs):
        run_dir = directory / "runs" / f"{directory.name}-{index}"
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps(_summary(p99_ms, dropped)))
        run_dirs.append(run_dir)
    (directory / "sweep.json").write_text(json.dumps({"keys": ["k"], "seeds": list(range(len(runs))), "points": [
        {"point": 0, "grid": {"k": 1}, "runs": len(runs), "failed": 0, "metrics": {}}]}))
    pq.write_table(pa.table({"run_id": [path.name for path in run_dirs], "point": [0] * len(runs),
                             "status": ["ok"] * len(runs)}), directory / "sweep.parquet")
    manifest = Manifest(f"{scenario}.toml", scenario, hashlib.sha256(content.encode()).hexdigest(), sets or [],
                        list(range(len(runs))), ["k"], [{"k": 1}], msgstorm.__version__)
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest.to_json()))
    return run_dirs


def test_sweeps_of_different_scenarios_are_said_and_regressions_show_their_values(tmp_path) -> None:
    """Sweeps of two scenarios: a warning naming both. A metric whose baseline is 0 (no
    message dropped) regresses with its change shown, and a group without spread (every p99
    10 ms) against one with spread is tested without a warning (warnings are errors here)."""
    _sweep_by_hand(tmp_path / "a", "alpha", "one", [(10.0, 0), (10.0, 0), (10.0, 0)])
    _sweep_by_hand(tmp_path / "b", "beta", "two", [(20.0, 3), (21.0, 4), (22.0, 5)], sets=["x=1"])
    code, output = _compare(str(tmp_path / "a"), str(tmp_path / "b"))
    assert code == 0, output
    assert "warning: the sweeps ran different scenarios: A = alpha (alpha.toml" in output, output
    assert "B = beta (beta.toml" in output and "note: their --set differ: A none, B ['x=1']" in output, output
    (line,) = [line for line in output.splitlines() if "regressions:" in line]
    assert "messages dropped +4 " in line + " " and "latency p99 +110.0% (+11 ms)" in line, line
    _sweep_by_hand(tmp_path / "c", "alpha", "one", [(10.0, 0), (11.0, 0), (12.0, 0)])
    code, output = _compare(str(tmp_path / "a"), str(tmp_path / "c"))
    assert code == 0 and "warning" not in output and "note" not in output, output


def test_listed_groups_are_named_apart_and_each_comparison_keeps_its_own_page(tmp_path) -> None:
    """Two comma-listed groups from one runs/ directory are two sides, each shown by its
    list; comparing the baseline with two others writes two pages, each said."""
    a = _sweep_by_hand(tmp_path / "s", "alpha", "one", [(10.0, 0), (11.0, 0), (12.0, 0), (10.5, 0)])
    first, second, third = ",".join(map(str, a[:2])), ",".join(map(str, a[2:])), str(a[0].parent)
    code, output = _compare(first, second)
    assert code == 0, output
    assert f"A = {first} (2 runs: their mean)" in output and f"B = {second} (2 runs: their mean)" in output, output
    pages = [line.split("comparison: ", 1)[1] for line in output.splitlines() if line.startswith("comparison: ")]
    code, output = _compare(first, third)
    assert code == 0, output
    pages += [line.split("comparison: ", 1)[1] for line in output.splitlines() if line.startswith("comparison: ")]
    assert len(pages) == 2 and pages[0] != pages[1] and all(Path(page).is_file() for page in pages), pages
    assert second in Path(pages[0]).read_text() and third in Path(pages[1]).read_text()


def test_the_page_plots_a_groups_percentiles_as_the_table_gives_them(tmp_path) -> None:
    """A group's bar is its runs' mean, the value of the table beside it, not its first run's."""
    import json
    import re

    runs = _sweep_by_hand(tmp_path / "s", "alpha", "one", [(10.0, 0), (11.0, 0), (14.0, 0), (10.0, 0)])
    page = tmp_path / "page.html"
    code, output = _compare(",".join(map(str, runs[:2])), ",".join(map(str, runs[2:])), str(runs[2]),
                            "--html", str(page))
    assert code == 0, output
    (text,) = re.findall(r'<script type="application/json" id="fig-percentiles">(.*?)</script>', page.read_text(),
                         re.S)
    bars = {bar["name"][0]: dict(zip(bar["x"], bar["y"], strict=True)) for bar in json.loads(text)["data"]}
    assert {side: values["p99"] for side, values in bars.items()} == {"A": 10.5, "B": 12.0, "C": 14.0}, bars
    assert "10.5 ms" in output and "12 ms" in output, output


def test_two_sweeps_compared_write_their_page_where_said(tmp_path) -> None:
    """Point by point, as the terminal says it: the page plots each side's p99 (its runs'
    mean), a table per point; --html puts it elsewhere, --no-html writes none."""
    import json
    import re

    _sweep_by_hand(tmp_path / "a", "alpha", "one", [(10.0, 0), (10.0, 0), (10.0, 0)])
    _sweep_by_hand(tmp_path / "b", "alpha", "one", [(20.0, 0), (21.0, 0), (22.0, 0)])
    code, output = _compare(str(tmp_path / "a"), str(tmp_path / "b"))
    assert code == 0, output
    (said,) = [line.split("comparison: ", 1)[1] for line in output.splitlines() if line.startswith("comparison: ")]
    page = Path(said)
    assert page.parent == tmp_path / "a" and page.name.startswith("compare-"), said
    text = page.read_text()
    (figure,) = re.findall(r'<script type="application/json" id="fig-sweep-p99">(.*?)</script>', text, re.S)
    bars = {bar["name"]: bar["y"] for bar in json.loads(figure)["data"]}
    assert bars == {"A": [10.0], "B": [21.0]}, bars
    assert 'id="verdict-0" data-regressions="1"' in text and "latency p99 +110.0% (+11 ms)" in text
    elsewhere = tmp_path / "elsewhere.html"
    code, output = _compare(str(tmp_path / "a"), str(tmp_path / "b"), "--html", str(elsewhere))
    assert code == 0 and f"comparison: {elsewhere}" in output and elsewhere.is_file(), output
    page.unlink()
    code, output = _compare(str(tmp_path / "a"), str(tmp_path / "b"), "--no-html")
    assert code == 0 and "comparison:" not in output and not page.exists(), output


def test_a_market_runs_comparison_opens_with_the_money_not_a_jitter_detail(tmp_path) -> None:
    """As black-thursday against black-thursday-fee-aware: bad debt 158,633,890 -> 2,422,413
    (−98.5%) and IPDV p99 1.0 -> 1.057 ms (+5.7%). The money is what the scenario measures:
    its rows come first, and the verdict says its change before it names the jitter regression."""
    import json

    def summary(bad_debt: int, ipdv_p99_ms: float) -> dict[str, object]:
        return hand_summary(scenario="black-thursday", offered_rate_per_s=2_000.0, throughput_per_s=1_500.0,
                            latency_ms={"p99": 900.0}, jitter_ms={"ipdv_p99": ipdv_p99_ms},
                            messages={"sent": 30_000, "committed": 30_000}, market={"bad_debt": {"absolute": bad_debt}})

    for name, bad_debt, ipdv in (("stuck", 158_633_890, 1.0), ("fee-aware", 2_422_413, 1.057)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(summary(bad_debt, ipdv)))
    code, output = _compare(str(tmp_path / "stuck"), str(tmp_path / "fee-aware"), "--html",
                            str(tmp_path / "page.html"))
    assert code == 0, output
    rows = [line.split("│")[1].strip() for line in output.splitlines() if line.count("│") > 2]
    # The market's rows (its liquidation counts 0 in both) before the layer's headline numbers.
    assert rows[:6] == ["offered rate", "bad debt (market)", "liquidations executed", "liquidations late",
                        "throughput", "latency p99"], rows
    assert rows.index("IPDV p99") > rows.index("latency p99")
    lines = output.splitlines()
    money = next(i for i, line in enumerate(lines) if line.startswith("money:"))
    assert lines[money] == "money: bad debt (market) in B: fee-aware: −98.5% (−156,211,477) improved"
    jitter = next(i for i, line in enumerate(lines) if line.startswith("regression:"))
    assert money < jitter and lines[jitter].startswith("regression: IPDV p99 in B: fee-aware: +5.7%"), lines
    page = (tmp_path / "page.html").read_text()
    assert page.index('id="compare-headline" data-concern="money"') < page.index('id="compare-verdict"')
    assert "bad debt (market) in B: fee-aware: −98.5% (−156,211,477) " in page


def test_compare_words_durations_as_the_summary_does(tmp_path) -> None:
    """A p99 of 1,000 ms against 65,205.992 ms reads 1 s against 65.2 s, its change +64.2 s;
    a wall time of 0.5 s against 2.185311 s, 500 ms against 2.19 s (read back at 100 columns)."""
    for name, p99_ms, wall_s in (("a", 1000.0, 0.5), ("b", 65_205.992, 2.185311)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({**_summary(p99_ms, 0), "wall_s": wall_s}))
    buffer = io.StringIO()
    print_comparison(compare_runs([load_run(tmp_path / "a", "A"), load_run(tmp_path / "b", "B")], 0.05),
                     Console(file=buffer, width=100))
    lines = buffer.getvalue().splitlines()
    cells = {row[0]: row[1:] for row in ([cell.strip() for cell in line.strip("│ ").split("│")]
                                         for line in lines if line.startswith("│"))}
    assert cells["latency p99"] == ["1 s", "65.2 s", "+6420.6% (+64.2 s) ▲"]
    assert cells["wall time"] == ["500 ms", "2.19 s", "+337.1% (+1.69 s)"]
    assert "regression: latency p99 in B: b: +6420.6% (+64.2 s) (beyond 5%)" in lines
    assert not any("65,205" in line or "2.185" in line for line in lines)


def test_a_summary_that_does_not_fit_its_type_is_refused_naming_the_file_and_the_field(runs, tmp_path) -> None:
    """Read by string keys, a p99 of "slow" was no number and its row vanished; read through the
    summary's type it is refused, naming the file and the field (exit 2)."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text(json.dumps(hand_summary(latency_ms={"p99": "slow"})))
    code, output = _compare(str(runs["base"]), str(bad), "--no-html")
    assert code == 2, output
    assert f"{bad / 'summary.json'}: not a msgstorm summary (latency_ms.p99: input should be a valid number" \
        in " ".join(output.split()), output
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "summary.json").write_text(json.dumps({key: value for key, value in hand_summary().items()
                                                      if key != "messages"}))
    with pytest.raises(RunDirError, match=r"summary.json: not a msgstorm summary \(messages: field required\)"):
        load_run(missing, "B")
    (missing / "summary.json").write_text("[1, 2]")
    with pytest.raises(RunDirError, match="a JSON list, not an object"):
        load_run(missing, "B")


def test_a_run_without_an_optional_section_compares_with_it_absent(tmp_path) -> None:
    """An older run's summary.json without the sections added since (connections, market) is
    read with them None: their rows are left out, the rest compared."""
    for name, p99_ms in (("old", 10.0), ("new", 12.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(hand_summary(latency_ms={"p99": p99_ms})))
    old = load_run(tmp_path / "old", "A")
    assert "market" not in json.loads((tmp_path / "old" / "summary.json").read_text())
    assert old.summary.market is None and old.summary.connections is None and old.summary.forks is None
    names = [metric.name for metric, _, _ in compare_runs([old, load_run(tmp_path / "new", "B")], 0.05).rows]
    assert "latency p99" in names and "bad debt (market)" not in names and "client disconnects (live)" not in names


@pytest.mark.slow
def test_mypy_checks_the_field_a_metric_reads(tmp_path: Path) -> None:
    """A metric reads a typed field: a misspelt one is a mypy error, where a misspelt path
    of string keys gave None and its row silently went missing from the comparison."""
    from conftest import mypy_on

    snippet = tmp_path / "metrics.py"
    snippet.write_text(
        "from msgstorm.report.compare import Metric, _within\n"
        "\n"
        'good = Metric("bad debt", _within(lambda s: s.market, lambda m: m.bad_debt.absolute))\n'
        'misspelt = Metric("bad debt", _within(lambda s: s.market, lambda m: m.bad_debt.absolut))\n'
        'unguarded = Metric("bad debt", lambda s: s.market.bad_debt.absolute)\n'
    )
    errors, out, status = mypy_on(snippet)
    assert status == 1
    assert any('metrics.py:4: error: "BadDebt" has no attribute "absolut"' in line for line in errors), out
    assert any('metrics.py:5: error: Item "None" of "Market | None" has no attribute "bad_debt"' in line
               for line in errors), out
    assert not any("metrics.py:3:" in line for line in errors), out
