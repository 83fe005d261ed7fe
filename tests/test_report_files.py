"""Files a run leaves beside summary.json (windows.csv, report.html), the summary's JSON Schema,
``msgstorm schema`` and ``msgstorm report``, and the live progress view."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import msgstorm
from msgstorm.cli import app
from msgstorm.progress import ProgressSnapshot
from msgstorm.report.live import LiveProgress, SnapshotRates, tee
from msgstorm.report.schema import summary_schema
from msgstorm.report.windows_csv import read_windows_csv
from msgstorm.runner import RunResult, run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    root = tmp_path_factory.mktemp("files")
    plain = msgstorm.load_scenario(EXAMPLES / "quickstart.toml", ['run.duration="3s"', 'run.drain="2s"',
                                                                  'faults.0.at="1s"'])
    ramp = msgstorm.load_scenario(EXAMPLES / "ramp.toml", [
        'run.duration="4s"',
        'agents.0.arrival={process="step_ramp", start="200/s", step="200/s", every="1s", steps=4}',
        'backpressure={mode="eip1559", initial_base_fee=1.0, underpriced="reject"}',
    ])
    return {"plain": run(plain, root / "plain"), "ramp": run(ramp, root / "ramp")}


def test_summaries_validate_against_the_shipped_schema(runs) -> None:
    schema = summary_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    summaries = [json.loads((r.run_dir / "summary.json").read_text()) for r in runs.values()]
    for summary in summaries:
        validator.validate(summary)
    assert summaries[0]["faults"] and summaries[1]["capacity"] and summaries[1]["base_fee"], \
        "between them the runs fill the optional sections"
    broken = copy.deepcopy(summaries[0])
    broken["latency_ms"]["p99"] = "fast"
    assert not validator.is_valid(broken)
    del summaries[0]["messages"]
    assert not validator.is_valid(summaries[0])


def test_schema_command_prints_the_schema() -> None:
    outcome = CliRunner().invoke(app, ["schema"])
    assert outcome.exit_code == 0
    assert json.loads(outcome.output) == summary_schema()


def test_windows_csv_holds_the_window_table(runs) -> None:
    result = runs["plain"]
    written = read_windows_csv(result.run_dir / "windows.csv")
    table = result.analysis.windows
    assert list(written) == table.column_names
    for name in table.column_names:
        expected = [None if v is None else float(v) for v in table.column(name).to_pylist()]
        assert written[name] == expected, name
    assert len(written["t_start_ns"]) == table.num_rows > 0


def test_report_command_rewrites_report_and_csv(runs) -> None:
    run_dir = runs["plain"].run_dir
    (run_dir / "report.html").unlink()
    (run_dir / "windows.csv").unlink()
    outcome = CliRunner().invoke(app, ["report", str(run_dir)])
    assert outcome.exit_code == 0, outcome.output
    assert "report.html" in outcome.output
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert '<table id="slo-table">' in page and (run_dir / "windows.csv").is_file()
    assert '"wall_s"' in page, "the wall time kept in summary.json shows on the rewritten page"


def test_the_files_of_a_long_run_are_written_on_a_heap_handed_back_between_them(
        runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From ``HANDED_BACK_FROM_MESSAGES`` messages on, the heap's freed memory is handed back
    before the page, the windows' file and the HDR log are written (each one's peak then
    starts from what is held, not from the analysis' holes); a shorter run keeps it for
    reuse. The files are the same either way."""
    from msgstorm.analysis import summary
    from msgstorm.history import read_history
    from msgstorm.report import write_run_files

    handed_back: list[str] = []
    monkeypatch.setattr("msgstorm.heap.release_freed_memory", lambda: handed_back.append("trim") or True)
    result = runs["plain"]
    history = read_history(result.run_dir)
    write_run_files(tmp_path, history, result.analysis)
    assert handed_back == []  # a short run's: kept
    monkeypatch.setattr(summary, "HANDED_BACK_FROM_MESSAGES", history.num_rows("messages"))
    (tmp_path / "long").mkdir()
    write_run_files(tmp_path / "long", history, result.analysis)
    assert handed_back == ["trim"] * 3
    assert (tmp_path / "long" / "windows.csv").read_bytes() == (tmp_path / "windows.csv").read_bytes()


def _snapshot(t_ns: int, sent: int, committed: int, **fields: object) -> ProgressSnapshot:
    values: dict[str, object] = {"end_ns": 5_000_000_000, "emitted": sent, "settled": committed, "dropped": 0,
                                 "rejected": 0, "queue_depth": 0, "base_fee": None, "faults_active": 0,
                                 "leader": "n0"}
    values.update(fields)
    return ProgressSnapshot(t_ns=t_ns, sent=sent, committed=committed, **values)  # type: ignore[arg-type]


def test_snapshot_rates_over_virtual_time() -> None:
    rates = SnapshotRates(span_ns=1_000_000_000)
    assert rates.committed_per_s is None
    for step in range(30):  # 100 ms apart, 500 committed and 600 generated per step
        rates.update(_snapshot(step * 100_000_000, step * 600, step * 500))
    assert rates.committed_per_s == pytest.approx(5000.0)
    assert rates.offered_per_s == pytest.approx(6000.0)
    rates.update(_snapshot(0, 0, 0))  # a new run starts over
    assert rates.committed_per_s is None


def test_live_progress_shows_rate_queue_errors_and_nearest_rank_p99() -> None:
    seen: list[ProgressSnapshot] = []
    bar = LiveProgress(Console(file=io.StringIO(), force_terminal=False), span_ns=1_000_000_000)
    both = tee(bar, seen.append, None)
    assert both is not None
    for step in range(1, 12):
        # 10 commits a snapshot, latencies step*1ms .. step*1ms + 9 ms: 110 in all.
        latencies = np.arange(10, dtype=np.int64) * 1_000_000 + step * 1_000_000
        both(_snapshot(step * 100_000_000, step * 400, step * 300, dropped=7, queue_depth=42,
                       latencies_ns=latencies))
    assert len(seen) == 11
    status = bar.status(seen[-1], wall_s=0.5)
    assert "committed 3,000/s" in status and "queue 42" in status and "dropped [red]7[/]" in status
    assert "rejected 0" in status and "errors" not in status  # names what the layer did, not msgstorm
    assert "t=1.10/5.00s" in status
    # Nearest rank over the 110 latencies (the analysis's definition): rank ceil(0.99 * 110) = 109.
    every = np.sort(np.concatenate([np.arange(10) + s for s in range(1, 12)]))
    assert every[108] == 19 and "p99 19 ms" in status  # in the one duration format (report/text.py)
    assert tee(None) is None


def test_the_shipped_schema_is_generated_from_the_summary_model() -> None:
    from msgstorm.report.schema import generated_schema_text, summary_schema_text

    assert summary_schema_text() == generated_schema_text(), \
        "regenerate: python -m msgstorm.report.schema > src/msgstorm/report/summary.schema.json"


def test_real_summaries_fit_the_summary_model(runs) -> None:
    from msgstorm.analysis.summary_model import Summary

    for r in runs.values():
        summary = json.loads((r.run_dir / "summary.json").read_text())
        Summary.model_validate(summary)
        # wall_s may be unknown; fairness, auction, control, security, integrity, forks, relay,
        # finality, crosschain, rollup, outages, sentinel, consensus, validators, collateral, hop_split and byzantine
        # are absent from runs without them.
        assert set(Summary.model_fields) - {"wall_s", "fairness", "auction", "control", "security",
                                            "integrity", "forks", "relay", "finality", "crosschain", "rollup",
                                            "outages", "sentinel", "consensus", "validators", "collateral", "hop_split",
                                            "byzantine", "cross"} <= set(summary)


def test_rates_are_printed_for_people_and_kept_whole_in_the_summary() -> None:
    import io

    from rich.console import Console
    from test_report_compare import hand_summary  # a whole summary.json, these values laid over

    from msgstorm.report.html import fmt
    from msgstorm.report.terminal import print_summary

    assert fmt(5039.667, "/s") == "5,040/s" and fmt(12.345, "/s") == "12.3/s" and fmt(2.5, "/s") == "2.5/s"
    assert fmt(0.1234, " ms") == "0.123 ms"  # other units keep their three decimals
    buffer = io.StringIO()
    print_summary(hand_summary(scenario="x", offered_rate_per_s=2890.101, throughput_per_s=2889.5,
                               capacity={"knee_rate_per_s": 5039.667, "method": "m", "limited_by": "machine CPU",
                                         "at_limit": {"step": 4, "offered_per_s": 6000.0, "send_lag_p50_ms": 0.2,
                                                      "cpu_busy": {"publisher": 1.1, "nats-server": 0.8},
                                                      "machine_cpus": 2}}),
                  Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "2,890/s" in text and "5,040/s" in text and "2,890.101" not in text
    assert "limited by the machine's CPUs" in text and "publisher 1.10, nats-server 0.80 of 2" in text


def test_a_live_summary_prints_no_stage_table() -> None:
    import io

    from rich.console import Console
    from test_report_compare import hand_summary  # a whole summary.json, these values laid over

    from msgstorm.report.terminal import print_summary

    stages = {stage: {"p50": 0.0, "p99": 0.0} for stage in ("propagation", "queue_wait", "service", "block_wait")}
    for target, shown in (("nats", False), ("sim", True)):
        buffer = io.StringIO()
        print_summary(hand_summary(scenario="x", target=target, latency_stages_ms=stages),
                      Console(file=buffer, width=200))
        assert ("block_wait" in buffer.getvalue()) is shown
