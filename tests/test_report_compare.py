"""msgstorm compare: regressions flagged by direction and tolerance, bad run directories exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import msgstorm
from msgstorm.cli import app
from msgstorm.report.compare import METRICS, judge, parse_tolerance
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

    slowest = next(m for m in METRICS if m.path == ("@recovery_max",))
    unrecovered = next(m for m in METRICS if m.path == ("@faults_unrecovered",))
    faults = [{"end_s": 2.0, "recovery_s": 0.3}, {"end_s": 5.0, "recovery_s": 1.2},
              {"end_s": 8.0, "recovery_s": None}, {"end_s": None, "recovery_s": None}]  # the last never ended
    assert metric_value({"faults": faults}, slowest) == 1.2
    assert metric_value({"faults": faults}, unrecovered) == 1.0
    assert metric_value({"faults": []}, slowest) is None and metric_value({"faults": []}, unrecovered) is None
    assert judge(slowest, 0.3, 3.0, 0.1).status == "regression"  # a recovery 10x slower is worse
