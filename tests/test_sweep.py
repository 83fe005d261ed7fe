"""Sweeps: a grid times seeds on local processes, one row per run, resumable after a kill."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_live_distributed import stop_cluster
from test_market import GAP, KEEPER
from typer.testing import CliRunner

from msgstorm import load_scenario, run
from msgstorm.cli import app
from msgstorm.sweep import GridError, parse_grid, plan_sweep, sweep
from msgstorm.sweep.results import flatten

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUICKSTART = str(EXAMPLES / "quickstart.toml")
SHORT = ['run.duration="2s"', 'run.drain="1s"']


def _rows(out: Path) -> list[dict[str, object]]:
    rows = pq.read_table(out / "sweep.parquet").to_pylist()
    for row in rows:
        row.pop("wall_s")
    return sorted(rows, key=lambda row: str(row["run_id"]))


def test_grids_are_toml_values_as_set_takes_them() -> None:
    assert parse_grid('sequencer.policy="fifo","fee_priority"') == ("sequencer.policy", ["fifo", "fee_priority"])
    assert parse_grid("agents.0.count=10, 20") == ("agents.0.count", [10, 20])
    with pytest.raises(GridError, match="quote strings"):
        parse_grid("sequencer.policy=fifo,fee_priority")
    with pytest.raises(GridError, match="expected KEY=VALUE"):
        parse_grid("no-equals-sign")
    plan = plan_sweep([("a", [1, 2]), ("b", ["x", "y", "z"])], zipped=False, seeds=3, base_seed=7)
    assert len(plan.points) == 6 and plan.seeds == [7, 8, 9] and len(plan.runs) == 18
    assert len({spec.run_id for spec in plan.runs}) == 18
    zipped = plan_sweep([("a", [1, 2]), ("b", ["x", "y"])], zipped=True, seeds=1, base_seed=0)
    assert zipped.points == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    with pytest.raises(GridError, match="one length"):
        plan_sweep([("a", [1, 2]), ("b", ["x"])], zipped=True, seeds=1, base_seed=0)


@pytest.mark.slow
def test_each_runs_summary_is_that_of_the_same_run_alone(tmp_path: Path) -> None:
    """Every row equals the summary of ``msgstorm run`` with that point's --set and seed
    (common random numbers: both points run seeds run.seed and run.seed + 1)."""
    result = sweep(QUICKSTART, [parse_grid("sequencer.workers=1,2")], seeds=2, workers=2, out_dir=tmp_path / "sweep",
                   sets=SHORT)
    assert result.ran == 4 and result.failed == 0 and result.skipped == 0
    rows = pq.read_table(tmp_path / "sweep" / "sweep.parquet").to_pylist()
    base_seed = load_scenario(QUICKSTART).run.seed
    assert sorted({row["seed"] for row in rows}) == [base_seed, base_seed + 1]
    for row in rows:
        alone = run(load_scenario(QUICKSTART, [*SHORT, f"sequencer.workers={int(row['sequencer.workers'])}",
                                               f"run.seed={row['seed']}"]), tmp_path / str(row["run_id"])).summary
        expected = flatten({k: v for k, v in alone.items() if k not in ("seed", "wall_s")})
        got = {k: v for k, v in row.items() if k in expected}
        assert got == expected, row["run_id"]
    document = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    p99 = document["points"][0]["metrics"]["latency_ms.p99"]
    assert p99["n"] == 2 and p99["ci95"][0] <= p99["mean"] <= p99["ci95"][1]
    assert 'id="points-table"' in (tmp_path / "sweep" / "sweep.html").read_text()
    # Only the summaries are kept.
    kept = {path.name for path in (tmp_path / "sweep" / "runs").rglob("*") if path.is_file()}
    assert kept == {"summary.json", "done.json"}


def test_a_run_without_its_report_writes_the_history_and_the_same_summary(tmp_path: Path) -> None:
    scenario = load_scenario(QUICKSTART, SHORT)
    full = run(scenario, tmp_path / "full").summary
    bare = run(scenario, tmp_path / "bare", write_report=False).summary
    assert sorted(path.name for path in (tmp_path / "bare").iterdir()) == [".run.lock", "history", "summary.json"]
    assert {"report.html", "windows.csv"} <= {path.name for path in (tmp_path / "full").iterdir()}
    assert {k: v for k, v in bare.items() if k != "wall_s"} == {k: v for k, v in full.items() if k != "wall_s"}


@pytest.mark.slow
def test_a_sweeps_runs_write_their_report_only_with_keep_runs_and_the_tables_agree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --keep-runs a sweep's run writes no report.html or windows.csv at all (not
    written, then removed); with it, every run keeps its whole directory. The rows agree."""
    grid = [parse_grid("sequencer.workers=1,2")]
    for keep in (False, True):
        sweep(QUICKSTART, grid, workers=1, out_dir=tmp_path / str(keep), keep_runs=keep, sets=SHORT)
    for keep, expected in ((False, {"summary.json", "done.json"}),
                           (True, {"history", "summary.json", "report.html", "windows.csv", "done.json", ".run.lock"})):
        runs = sorted((tmp_path / str(keep) / "runs").iterdir())
        assert len(runs) == 2 and all({entry.name for entry in run_dir.iterdir()} == expected for run_dir in runs)
    assert _rows(tmp_path / "False") == _rows(tmp_path / "True")
    # In this process, to see what each run writes before its directory is pruned.
    import msgstorm.report.rerun
    from msgstorm.sweep.execute import RunTask, run_one

    written: list[Path] = []
    monkeypatch.setattr(msgstorm.report.rerun, "write_run_files", lambda run_dir, *_: written.append(run_dir) or [])
    # Nor is a history removed once analysed synced to disk: no fsync without --keep-runs.
    import os

    fsync, synced = os.fsync, {False: 0, True: 0}
    spec = plan_sweep([], zipped=False, seeds=1, base_seed=1).runs[0]
    for keep in (False, True):
        def counted(fd: int, keep: bool = keep) -> None:
            synced[keep] += 1
            fsync(fd)

        monkeypatch.setattr(os, "fsync", counted)
        outcome = run_one(RunTask(QUICKSTART, SHORT, spec, str(tmp_path / f"one-{keep}"), keep))
        assert outcome["status"] == "ok", outcome
    assert written == [tmp_path / "one-True"]
    assert synced[False] == 0 and synced[True] >= 10  # two a part (file, directory), a part a table at least


@pytest.mark.slow
def test_a_failed_run_is_a_row_with_its_error_retried_once_and_again_on_resume(tmp_path: Path) -> None:
    """A point the scenario refuses fails the whole sweep before anything runs; a run that
    raises while running (a price file with a negative price, found only when read) is run
    once more, then is a row with its error, and the other runs go on. The same command
    again runs the failed run again (the file mended meanwhile: now it succeeds)."""
    out = tmp_path / "bad"
    result = CliRunner().invoke(app, ["sweep", QUICKSTART, "--grid", "sequencer.workers=0,1", "--out", str(out)])
    assert result.exit_code == 2 and "sequencer.workers" in result.output, result.output
    assert not (out / "sweep.parquet").exists()
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("t,price\n0,100\n1,90\n")
    bad.write_text("t,price\n0,100\n1,-5\n")
    command = ["sweep", QUICKSTART, "--grid", f'market.instruments.0.replay="{good}","{bad}"', "--workers", "2",
               "--out", str(tmp_path / "s"), "--set", 'market={instruments=[{name="X"}]}',
               *[arg for item in SHORT for arg in ("--set", item)]]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 5, result.output  # ExitCode.RUNS_FAILED
    assert "2 run(s) now, 0 finished before, 1 failed" in result.output, result.output
    rows = pq.read_table(tmp_path / "s" / "sweep.parquet").to_pylist()
    by_file = {row["market.instruments.0.replay"]: row for row in rows}
    assert by_file[str(good)]["status"] == "ok" and by_file[str(good)]["error"] is None
    assert by_file[str(good)]["attempt"] == 1
    failed = by_file[str(bad)]
    assert failed["status"] == "failed" and "every price must be a number above 0" in failed["error"]
    assert failed["attempt"] == 2, "a failed run is run once more within the sweep"
    assert failed["latency_ms.p99"] is None
    assert "Failed runs" in (tmp_path / "s" / "sweep.html").read_text()
    bad.write_text("t,price\n0,100\n1,95\n")
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    assert "1 finished before (skipped), 1 failed before: retried, 1 to run" in again.output, again.output
    assert "1 run(s) now (1 of them failed before: retried), 1 finished before, 0 failed" in again.output
    rows = pq.read_table(tmp_path / "s" / "sweep.parquet").to_pylist()
    assert [row["status"] for row in rows] == ["ok", "ok"]


def test_one_retry_rule_a_failed_run_runs_once_more_then_is_its_last_outcome() -> None:
    """``run_with_retries``, the rule of both executors: a run that fails is run once more;
    only each run's last outcome is reported."""
    from msgstorm.sweep.execute import run_with_retries

    specs = plan_sweep([("k", ["ok", "flaky", "broken"])], zipped=False, seeds=1, base_seed=0).runs
    calls: list[tuple[list[str], int]] = []

    def execute(todo, attempt):  # type: ignore[no-untyped-def]
        calls.append(([spec.values["k"] for spec in todo], attempt))
        for spec in todo:
            fails = spec.values["k"] == "broken" or (spec.values["k"] == "flaky" and attempt == 1)
            yield {"run_id": spec.run_id, "status": "failed" if fails else "ok", "attempt": attempt}

    reported: list[dict[str, object]] = []
    outcomes = list(run_with_retries(execute, specs, reported.append))
    assert calls == [(["ok", "flaky", "broken"], 1), (["flaky", "broken"], 2)]
    assert [(o["status"], o["attempt"]) for o in outcomes] == [("ok", 1), ("ok", 2), ("failed", 2)]
    assert reported == outcomes


@pytest.mark.slow
def _worker_start() -> tuple[int, bool, bool, list[str]]:
    """In a sweep's worker, before any run: its parent, whether the runner is imported and
    the warm-up ran, and the simulator's compiled functions already loaded."""
    import sys

    from numba.core.dispatcher import Dispatcher

    loaded = sorted(f"{module}.{name}" for module, found in list(sys.modules.items()) if module.startswith("msgstorm.sim")
                    for name, value in list(vars(found).items()) if isinstance(value, Dispatcher) and value.signatures)
    preload = sys.modules.get("msgstorm.sweep.preload")
    return os.getppid(), "msgstorm.runner" in sys.modules, bool(getattr(preload, "WARMED", False)), loaded


@pytest.mark.slow
def test_a_sweeps_workers_start_with_the_runner_imported_and_its_compiled_loops_loaded() -> None:
    """The workers are forked from a server that imported the runner and made the warm-up
    run, so none loads them again; a second pool's workers come from the same server."""
    from msgstorm.sweep.execute import WorkerPool

    servers = set()
    for _ in range(2):
        with WorkerPool(1) as pool:
            parent, runner_imported, warmed, loaded = pool.executor().submit(_worker_start).result(timeout=300)
        assert parent != os.getpid() and runner_imported and warmed
        # The warm-up's items all go by push: the kernel's loop for push alone.
        assert {"msgstorm.sim.kernel.run_until_push", "msgstorm.sim.kernel.link_delay"} <= set(loaded), loaded
        servers.add(parent)
    assert len(servers) == 1, servers


def test_a_local_worker_killed_mid_run_is_a_failed_run_retried(tmp_path: Path) -> None:
    """A worker process killed while it runs breaks the local pool: the runs it took down are
    failed outcomes, run once more in a new pool (the rule Ray's tasks follow too), and the
    sweep ends with every run ok and the rows of an undisturbed sweep."""
    import threading

    def workers() -> list[int]:  # forked by the sweep's fork server, a child of this process
        servers = [pid for pid, command in _children(os.getpid()) if b"multiprocessing.forkserver" in command]
        return [pid for server in servers for pid, _ in _children(server)]

    killed: list[int] = []
    out = tmp_path / "killed"

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if list((out / "runs").glob("*/done.json")) and workers():
                killed.append(workers()[0])
                os.kill(killed[0], signal.SIGKILL)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    grids = [parse_grid("sequencer.workers=1,2")]
    result = sweep(QUICKSTART, grids, seeds=3, workers=2, out_dir=out, sets=SHORT)
    killer.join()
    assert killed, "no worker was seen"
    assert result.failed == 0 and result.ran == 6
    rows = _rows(out)
    assert any(row["attempt"] == 2 for row in rows), rows
    sweep(QUICKSTART, grids, seeds=3, workers=2, out_dir=tmp_path / "whole", sets=SHORT)
    assert [{k: v for k, v in row.items() if k != "attempt"} for row in rows] == [
        {k: v for k, v in row.items() if k != "attempt"} for row in _rows(tmp_path / "whole")]


def _children(pid: int) -> list[tuple[int, bytes]]:
    """The live children of process ``pid`` (from /proc), with their command lines."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(parent) == pid and state != "Z":
            found.append((int(stat.parent.name), command))
    return found


_WORKER = """
import json, sys
from msgstorm.sweep.execute import RunTask, finished, run_one
from msgstorm.sweep.grid import RunSpec
spec = RunSpec(run_id="r", point=0, values={}, seed=42)
outcome = run_one(RunTask(sys.argv[1], ['run.duration="600s"'], spec, sys.argv[2], keep_runs=False))
print(json.dumps([outcome["status"], outcome["error"], finished(__import__("pathlib").Path(sys.argv[2]).parent, "r")]))
"""


@pytest.mark.slow
def test_a_run_a_ctrl_c_stops_part_way_is_failed_so_a_resume_runs_it_again(tmp_path: Path) -> None:
    """The terminal's Ctrl-C reaches every worker of a sweep: a worker's run stops part way
    and its summary says ``interrupted``. That run did not finish: it is recorded failed (never
    ``ok``, which a resumed sweep would skip, leaving a cut-short run among whole ones)."""
    run_dir = tmp_path / "runs" / "r"
    # The worker takes SIGINT as a terminal's child does, whatever this process left it: a
    # child inherits an ignored signal, and a full CI run once started it that way (the run
    # then went on to its end, "ok").
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, QUICKSTART, str(run_dir)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list((run_dir / "history" / "messages").glob("part-*.parquet")):  # well into the run
        assert worker.poll() is None and time.monotonic() < deadline, worker.communicate()
        time.sleep(0.05)
    worker.send_signal(signal.SIGINT)
    stdout, stderr = worker.communicate(timeout=300)
    assert worker.returncode == 0, stderr
    status, error, recorded = json.loads(stdout.splitlines()[-1])
    assert status == "failed" and error.startswith("interrupted (Ctrl-C or SIGTERM)"), error
    assert "into a 600 s run: run again on resume" in error, error
    assert recorded["status"] == "failed" and recorded["summary"] is None, recorded


def _start(out: Path, seeds: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "msgstorm", "sweep", QUICKSTART, "--grid", "sequencer.workers=1,2",
                             "--seeds", str(seeds), "--workers", "2", "--out", str(out), "-q",
                             *[arg for item in SHORT for arg in ("--set", item)]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _left_of(pgid: int) -> list[str]:
    """Every live process of the process group ``pgid`` (from /proc), as "pid cmdline"."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(group) == pgid and state != "Z":
            found.append(f"{stat.parent.name} {command}")
    return found


@pytest.mark.slow
def test_a_sweep_killed_half_way_leaves_no_process_and_resumes_without_repeating_a_run(tmp_path: Path) -> None:
    """SIGKILL to the sweep's process alone (not its group): its workers die with it (none
    goes on writing into the directory), a second sweep beside a running one is refused, and
    the resumed sweep ends with the rows of an uninterrupted one."""
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    process = _start(killed, seeds=6)
    deadline = time.monotonic() + 120
    while len(list((killed / "runs").glob("*/done.json"))) < 3:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    beside = CliRunner().invoke(app, ["sweep", QUICKSTART, "--grid", "sequencer.workers=1,2", "--seeds", "6",
                                      "--out", str(killed), "-q", *[arg for item in SHORT for arg in ("--set", item)]])
    assert beside.exit_code == 2 and "another sweep is running there" in beside.output, beside.output
    assert f"process {process.pid} holds" in beside.output, beside.output
    os.kill(process.pid, signal.SIGKILL)  # the sweep alone: its workers must not outlive it
    process.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while _left_of(process.pid):
        assert time.monotonic() < deadline, f"left running after the sweep was killed: {_left_of(process.pid)}"
        time.sleep(0.1)
    done = {path.parent.name: path.stat().st_mtime_ns for path in (killed / "runs").glob("*/done.json")}
    assert 3 <= len(done) < 12
    again = _start(killed, seeds=6)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr.decode()
    assert f"{12 - len(done)} run(s) now, {len(done)} finished before" in stdout.decode(), stdout.decode()
    for run_id, mtime in done.items():  # not run again
        assert (killed / "runs" / run_id / "done.json").stat().st_mtime_ns == mtime
    whole_run = _start(whole, seeds=6)
    whole_run.communicate(timeout=300)
    assert whole_run.returncode == 0
    assert _rows(killed) == _rows(whole)



@pytest.mark.slow
def test_sigterm_to_the_sweep_alone_stops_its_workers_runs_part_way(tmp_path: Path) -> None:
    """SIGTERM reaches the sweep's process only (a ``kill``, a CI runner), not its workers as
    the terminal's Ctrl-C does: the sweep passes it on, so each run under way stops part way
    (recorded failed, interrupted, run again on resume) instead of the sweep waiting for it
    to finish."""
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "msgstorm", "sweep", QUICKSTART, "--grid",
                                "sequencer.workers=1,2", "--seeds", "1", "--workers", "2", "--out", str(out), "-q",
                                "--set", 'run.duration="600s"'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while len(list((out / "runs").glob("*/history/messages/part-*.parquet"))) < 2:  # both runs under way
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)  # a run of 600 s takes minutes of CPU
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 3, stderr.decode()  # ExitCode.INTERRUPTED
    outcomes = [json.loads(path.read_text()) for path in (out / "runs").glob("*/done.json")]
    assert len(outcomes) == 2, stderr.decode()
    for outcome in outcomes:
        assert outcome["status"] == "failed" and "into a 600 s run: run again on resume" in outcome["error"], outcome


# The hand-computed gap case of test_market, with one 30% gap and ten accounts drawn at a
# leverage the search sets.
LEVERAGE = (GAP.format(accounts="", keepers=KEEPER)
            .replace('shocks = [{ at = "500ms", fall = "8%" }, { at = "1s", fall = "30%" }]',
                     'shocks = [{ at = "1s", fall = "30%" }]')
            .replace('file = ""', "count = 10\nleverage_cap = 5.0"))


@pytest.mark.slow
def test_safe_leverage_brackets_the_boundary_computed_by_hand(tmp_path: Path) -> None:
    """A 30% gap, no delay to speak of (1 ms blocks), maintenance 10%, penalty 5%. A long at
    leverage L (collateral c, size L c / 100) is liquidated at 70 when its line, 100 (1 - 1/L)
    / 0.9, is at or above 70, i.e. L >= 2.70; it then keeps c (1 - 0.3 L - 0.035 L): bad debt
    over 0.1% of open interest (L c) when 0.335 - 1/L > 0.001, i.e. L > 1/0.334 = 2.994.
    Below 2.70 it is never liquidated and keeps c (1 - 0.3 L) > 0. The search's bracket must
    hold 2.994. Every seed gives the same outcome, so 2 seeds at 50% confidence show it (0 of 2
    over: P <= 0.29; 2 of 2: P >= 0.71)."""
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    result = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1%", "--seeds", "2",
                                      "--confidence", "50%", "--range", "1:5", "--workers", "2",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "safe_leverage.json").read_text())
    (curve,) = document["curves"]
    low, high = curve["bracket"]
    assert low <= 1 / 0.334 <= high and high / low < 1.1, curve["bracket"]
    assert curve["safe_leverage"] == low and curve["at_safe"]["exceed"] == 0
    assert all(p["exceed"] == (p["runs"] if p["leverage"] > 1 / 0.334 else 0) for p in curve["points"]), curve
    assert f"{low:g}x" in result.output and "one leverage for every account" in result.output
    assert 'id="leverage-table"' in (tmp_path / "out" / "safe_leverage.html").read_text()
    # The curve's runs are one sweep: its table has a row for every run of every bisection step.
    curve_dir = tmp_path / "out" / "curve-0"
    rows = pq.read_table(curve_dir / "sweep.parquet").to_pylist()
    assert len(rows) == len(list((curve_dir / "runs").iterdir())) == sum(p["runs"] for p in curve["points"]), rows
    assert len(json.loads((curve_dir / "sweep.json").read_text())["points"]) == len(curve["points"])


@pytest.mark.slow
def test_safe_leverage_draws_one_curve_per_value_of_vary(tmp_path: Path) -> None:
    """--vary: a deeper crash leaves a lower safe leverage (a 40% gap to 60: liquidated from
    L >= 2.17, keeping c (1 - 0.4 L - 0.03 L): over budget when 0.43 - 1/L > 0.001, L > 2.331)."""
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    result = CliRunner().invoke(app, [
        "safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1%", "--seeds", "1", "--confidence", "50%", "--range", "1:5",
        "--out",
        str(tmp_path / "out"), "--vary",
        'market.instruments.0.shocks=[{at="1s", fall="30%"}],[{at="1s", fall="40%"}]'])
    assert result.exit_code == 0, result.output
    curves = json.loads((tmp_path / "out" / "safe_leverage.json").read_text())["curves"]
    assert curves[0]["bracket"][0] <= 1 / 0.334 <= curves[0]["bracket"][1]
    assert curves[1]["bracket"][0] <= 1 / 0.429 <= curves[1]["bracket"][1]
    assert curves[1]["safe_leverage"] < curves[0]["safe_leverage"]
    assert 'id="plot-safe-leverage"' in (tmp_path / "out" / "safe_leverage.html").read_text()


# One long account a run (collateral c, size L c / 100, entry 100), zero drift, volatility
# 1%/sqrt(s), a 40% shock at 1 s, an oracle at every 100 ms step and a keeper reacting a fixed
# 2.05 s after the shock's price reaches it, on a network without delay to speak of.
GBM_LEVERAGE = (GAP.format(accounts="", keepers='[[market.keepers]]\nreaction = "2050ms"\n')
                .replace('duration = "2s"', 'duration = "4s"')
                .replace('shocks = [{ at = "500ms", fall = "8%" }, { at = "1s", fall = "30%" }]',
                         'volatility = "1%/s"\nshocks = [{ at = "1s", fall = "40%" }]')
                .replace('file = ""', "count = 1\nleverage_cap = 5.0"))


def _gbm_exceed_probability(leverage: float, budget: float = 0.001) -> float:
    """P(bad debt > budget x open interest) at ``leverage``, in closed form. For leverages past
    about 2.2 the line, 100 (1 - 1/L) / 0.9, is above the shocked price (60, give or take 1%),
    so the keeper sees the crossing at 1 s and the liquidation executes at the on-chain price
    of 3.0 s: P = 100 x 0.6 x exp(-s^2 T / 2 + s sqrt(T) Z), T = 3 s. The account keeps
    c + size (P - 100) - 0.05 size P; bad debt over budget x L c when
    P < 100 (1 - 1/L - budget) / 0.95, a normal probability in log P."""
    sigma, horizon_s = 0.01, 3.0
    threshold = 100 * (1 - 1 / leverage - budget) / 0.95
    if threshold <= 0:
        return 0.0
    mean = math.log(60.0) - sigma**2 * horizon_s / 2
    return 0.5 * math.erfc(-(math.log(threshold) - mean) / (sigma * math.sqrt(horizon_s)) / math.sqrt(2))


@pytest.mark.slow
def test_safe_leverage_interval_covers_the_boundary_of_gbm_after_a_fixed_delay(tmp_path: Path) -> None:
    """The boundary L* where P(bad debt over budget) = 1 - confidence, from the closed form
    above (2.287 at 80%), lies in the reported boundary interval; the curve's estimates follow
    the closed form; and the common random numbers make each seed's outcome grow with leverage."""
    confidence = 0.8
    low, high = 2.0, 3.5
    while high - low > 1e-9:  # bisection on the closed form
        middle = (low + high) / 2
        low, high = (middle, high) if _gbm_exceed_probability(middle) <= 1 - confidence else (low, middle)
    boundary = low
    assert 2.25 < boundary < 2.32, boundary
    scenario = tmp_path / "gbm.toml"
    scenario.write_text(GBM_LEVERAGE)
    result = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1%", "--confidence", "80%",
                                      "--seeds", "16", "--range", "1.5:4", "--workers", "2",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (curve,) = json.loads((tmp_path / "out" / "safe_leverage.json").read_text())["curves"]
    within, over = curve["boundary"]
    assert within is not None and over is not None, curve
    assert within <= boundary <= over, (curve["boundary"], boundary)
    assert over / within < 1.5, curve["boundary"]
    for point in curve["points"]:  # each estimate within its 80% interval's reach of the truth
        truth = _gbm_exceed_probability(point["leverage"])
        assert abs(point["p"] - truth) <= 3 * math.sqrt(max(truth * (1 - truth), 0.01) / point["runs"]), point
    exceeding = [point["exceed"] for point in curve["points"]]
    assert exceeding == sorted(exceeding), curve["points"]
    assert f"boundary at 80%: between {within:g}x" in result.output, result.output


@pytest.mark.slow
def test_replicas_compare_as_groups_and_only_significant_differences_regress(tmp_path: Path) -> None:
    """Ten seeds against ten other seeds of one scenario: no regression, whatever the noise.
    Against double the service time: latency regresses, significantly (Welch's t)."""
    short = [*SHORT, 'agents.0.arrival={process="poisson", rate="40/s"}']
    sweep(QUICKSTART, [], seeds=10, workers=2, out_dir=tmp_path / "a", sets=short)
    sweep(QUICKSTART, [], seeds=10, workers=2, out_dir=tmp_path / "b", sets=[*short, "run.seed=101"])
    sweep(QUICKSTART, [], seeds=10, workers=2, out_dir=tmp_path / "slow", sets=[
        *short, 'sequencer.service={dist="exponential", mean="400us"}'])
    # A directory of runs is a group (a sweep's runs/; two sweep directories compare point by point).
    same = CliRunner().invoke(app, ["compare", str(tmp_path / "a" / "runs"), str(tmp_path / "b" / "runs"),
                                    "--no-html", "--fail-on-regression", "--tolerance", "0%"])
    assert same.exit_code == 0, same.output
    assert "(10 runs: their mean)" in same.output
    slower = CliRunner().invoke(app, ["compare", str(tmp_path / "a" / "runs"), str(tmp_path / "slow" / "runs"),
                                      "--no-html", "--fail-on-regression", "-q"])
    assert slower.exit_code == 1, slower.output
    assert "service p99" in slower.output, slower.output
    # A comma-separated group is the same group.
    runs = sorted(str(path.parent) for path in (tmp_path / "a").glob("runs/*/summary.json"))
    listed = CliRunner().invoke(app, ["compare", ",".join(runs), str(tmp_path / "b" / "runs"), "--no-html"])
    assert listed.exit_code == 0 and "(10 runs: their mean)" in listed.output, listed.output


@pytest.fixture
def ray_cluster():  # type: ignore[no-untyped-def]
    """A real local Ray cluster (``ray start --head`` on 127.0.0.1), stopped at the end."""
    import shutil
    import socket

    if shutil.which("ray") is None and not os.environ.get("CI"):
        pytest.skip("ray is not installed (pip install -e '.[cluster]')")
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tempfile.mkdtemp(prefix="msr-", dir="/tmp")  # short: Ray's socket paths live under it
    subprocess.run([ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        ray.shutdown()
        # Its own processes only: ``ray stop`` would end another test's cluster running beside it.
        assert stop_cluster(temp) == [], "a process of the test's Ray cluster is still running"


@pytest.mark.slow
def test_a_sweep_on_a_ray_cluster_gives_the_rows_of_local_processes(tmp_path: Path, ray_cluster: str) -> None:
    """The same sweep as Ray tasks and on local processes: identical rows. A Ray worker killed
    while it runs a task: the run is retried (the sweep's one rule), the sweep ends with every row."""
    import threading

    grids = [parse_grid("sequencer.workers=1,2")]
    sweep(QUICKSTART, grids, seeds=3, workers=2, out_dir=tmp_path / "local", sets=SHORT)
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            found = subprocess.run(["pgrep", "-f", "ray::run_one"], capture_output=True, text=True).stdout.split()
            if found:
                os.kill(int(found[0]), signal.SIGKILL)
                killed.append(int(found[0]))
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    result = sweep(QUICKSTART, grids, seeds=3, out_dir=tmp_path / "ray", sets=SHORT, ray=ray_cluster)
    killer.join()
    assert killed, "no Ray worker was seen running a task"
    assert result.ran == 6
    rows_ray, rows_local = _rows(tmp_path / "ray"), _rows(tmp_path / "local")
    failed = [row for row in rows_ray if row["status"] != "ok"]
    assert all("ray task failed" in str(row["error"]) and row["attempt"] == 2 for row in failed)  # retried once
    ok = {row["run_id"] for row in rows_ray if row["status"] == "ok"}
    assert len(ok) >= 5
    def settled(rows: list[dict[str, object]]) -> list[dict[str, object]]:  # the killed run took two attempts
        return [{k: v for k, v in row.items() if k != "attempt"} for row in rows if row["run_id"] in ok]

    assert settled(rows_ray) == settled(rows_local)


@pytest.mark.slow
def test_two_sweeps_compare_point_by_point(tmp_path: Path) -> None:
    """The same grid on other seeds: no point regresses. With the service twice as slow:
    every point's service time does, significantly."""
    short = [*SHORT, 'agents.0.arrival={process="poisson", rate="40/s"}']
    grids = [parse_grid("sequencer.workers=1,2")]
    sweep(QUICKSTART, grids, seeds=5, workers=2, out_dir=tmp_path / "a", sets=short)
    sweep(QUICKSTART, grids, seeds=5, workers=2, out_dir=tmp_path / "b", sets=[*short, "run.seed=50"])
    sweep(QUICKSTART, grids, seeds=5, workers=2, out_dir=tmp_path / "slow",
          sets=[*short, 'sequencer.service={dist="exponential", mean="400us"}'])
    same = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on-regression",
                                    "--tolerance", "0%"])
    assert same.exit_code == 0, same.output
    assert same.output.count("regressions: none") == 2 and "2 shared point(s)" in same.output, same.output
    slower = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "slow"), "--fail-on-regression"])
    assert slower.exit_code == 1, slower.output
    lines = [line for line in slower.output.splitlines() if "runs): regressions:" in line]
    assert len(lines) == 2 and all("service p99" in line for line in lines), slower.output


def test_the_sweep_progress_counts_runs_done_failed_and_the_time_left() -> None:
    """In a log (no terminal) a line at the first run and one for each failed run; on a
    terminal one bar redrawn in place, a failed run said above it."""
    import io

    from rich.console import Console

    from msgstorm.report.live import SweepProgress

    log = io.StringIO()
    with SweepProgress(Console(file=log, force_terminal=False, width=200)) as progress:
        progress.start(3)
        progress({"run_id": "a", "status": "ok"})
        progress({"run_id": "b", "status": "failed", "error": "ValueError: no"})
    lines = log.getvalue().splitlines()
    assert lines == ["  1/3 done, 0 failed", "  2/3 done, 1 failed  (run b: ValueError: no)"], lines
    screen = io.StringIO()
    with SweepProgress(Console(file=screen, force_terminal=True, width=200), label="safe-leverage") as bar:
        bar({"run_id": "c", "status": "failed", "error": "boom"})  # a search: no total, no ETA
        assert bar.status() == "1 done, [red]1 failed[/]"
    assert "run c failed: boom" in screen.getvalue() and "\r" in screen.getvalue()


class _Clock:
    """Seconds that a test moves on by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_long_search_in_a_log_writes_a_few_lines_and_an_eta_only_once_it_means_something() -> None:
    """305 runs of a search of at most 552 in 87 s, the first back after 8.6 s (the workers'
    start): in a log, a line at the first run, at each tenth of the most and at least every
    30 s, not one a run; no ETA on the first lines, and none the first run's wait inflates
    (it was "ETA ≤4,773 s" for a job of 87 s)."""
    import io

    from rich.console import Console

    from msgstorm.report.live import SweepProgress

    log, clock = io.StringIO(), _Clock()
    with SweepProgress(Console(file=log, force_terminal=False, width=200), label="safe-leverage",
                       clock=clock) as progress:
        progress.start(552, at_most=True)
        clock.now = 8.6
        for _ in range(305):
            progress({"run_id": "r", "status": "ok"})
            clock.now += (87.0 - 8.6) / 305
    lines = log.getvalue().splitlines()
    assert 4 <= len(lines) <= 12, lines
    assert lines[0] == "  1/≤552 done, 0 failed", lines
    etas = [float(line.split("ETA ≤")[1].removesuffix(" s").replace(",", "")) for line in lines if "ETA" in line]
    assert etas and max(etas) < 200, lines  # at most (552 - done) runs at the rate after the first: under 142 s
    quiet = io.StringIO()
    with SweepProgress(Console(file=quiet, force_terminal=False, width=200), quiet=True) as progress:
        progress.start(2)
        progress({"run_id": "a", "status": "failed", "error": "no"})
    assert quiet.getvalue() == "" and (progress.done, progress.failed) == (1, 1)


def test_a_points_interval_is_students_t_as_scipy_stats_gives_it() -> None:
    """The 95% interval's quantile comes from scipy.special (lighter to import than
    scipy.stats): the interval scipy.stats' Student's t gives."""
    from scipy import stats

    from msgstorm.sweep.results import point_stats

    for count in (2, 3, 7, 30, 101):
        values = [math.sin(1.0 + index) * 10.0 for index in range(count)]
        mean = math.fsum(values) / count
        spread = math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (count - 1))
        half = float(stats.t.ppf(0.975, count - 1)) * spread / math.sqrt(count)
        found = point_stats(values)
        assert found["n"] == count and found["ci95"] is not None
        assert found["ci95"] == pytest.approx([mean - half, mean + half], rel=1e-12, abs=1e-12)
        assert found["ci95"][1] - found["mean"] == pytest.approx(half, rel=1e-12)


@pytest.mark.slow
@pytest.mark.serial
def test_a_cluster_that_asks_for_a_token_is_named_as_such_and_reached_with_ray_auth_mode_token(tmp_path: Path) -> None:
    """``ray start`` on a machine holding ``~/.ray/auth_token`` asks drivers for it, which Ray
    sends from a driver given an address only under ``RAY_AUTH_MODE=token``: without it the
    refusal says so (not only "failed to connect"), and with it the driver connects."""
    import shutil
    import socket

    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    if not Path(ray_bin).exists():
        if os.environ.get("CI"):
            pytest.fail("ray is not installed; CI must install it (pip install -e '.[test]')")
        pytest.skip("ray is not installed (pip install -e '.[cluster]')")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("a" * 64)
    env = {key: value for key, value in os.environ.items() if key != "RAY_AUTH_MODE"}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="msr-", dir="/tmp")  # short: Ray's socket paths live under it
    subprocess.run([ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                    f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
    connect = ("import sys\nfrom msgstorm.processes import connect_ray\n"
               "try:\n    connect_ray(sys.argv[1])\nexcept ConnectionError as error:\n    print('REFUSED', error)\n"
               "else:\n    import ray\n    print('NODES', len(ray.nodes()))\n")
    try:
        refused = subprocess.run([sys.executable, "-c", connect, f"127.0.0.1:{port}"], env=env, capture_output=True,
                                 text=True, timeout=180, check=False)
        with_token = subprocess.run([sys.executable, "-c", connect, f"127.0.0.1:{port}"],
                                    env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True,
                                    timeout=180, check=False)
    finally:
        stop_cluster(temp)  # its own processes only, not another test's cluster beside it
    assert "REFUSED" in refused.stdout and "RAY_AUTH_MODE=token" in refused.stdout, refused.stdout + refused.stderr
    assert str(home / ".ray" / "auth_token") in refused.stdout
    assert "NODES 1" in with_token.stdout, with_token.stdout + with_token.stderr
