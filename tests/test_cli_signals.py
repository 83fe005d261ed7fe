"""Stopping a run from outside: SIGINT and SIGTERM settle and exit 3; SIGKILL leaves a history
that ``msgstorm report`` reads and calls cut off. Real signals to a real ``msgstorm`` process.

The kill moments are drawn at random (seeded), and the assertions hold wherever a kill lands:
no traceback, a documented exit code, a readable history whose rows are whole.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import report_in_process

import msgstorm

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Long enough that any signal below lands while it runs (tens of seconds of wall time).
LONG = ["--set", 'run.duration="300s"', "--set", "agents.0.count=40"]


def _msgstorm(*args: str) -> list[str]:
    return [sys.executable, "-c", "from msgstorm.cli import app; app()", *args]


def _start(run_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(_msgstorm("run", str(EXAMPLES / "quickstart.toml"), "--out", str(run_dir), "-q", *LONG),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_start(process: subprocess.Popen[str], run_dir: Path) -> None:
    """Until the run row written at the start is on disk (the history exists)."""
    deadline = time.monotonic() + 120
    while not list((run_dir / "history" / "run").glob("part-*.parquet")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_the_run_and_exit_3_with_where_the_history_is(tmp_path: Path, signum: int) -> None:
    run_dir = tmp_path / "run"
    process = _start(run_dir)
    _wait_for_start(process, run_dir)
    time.sleep(random.Random(signum).uniform(0.5, 2.0))
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr + stdout
    assert f"msgstorm report {run_dir}" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["cut_off"] is False
    history = msgstorm.read_history(run_dir)
    assert history.cut_off is False and history.run_info["interrupted"] is True
    # Wherever the signal landed (even while a kernel compiled), what was sent is all there.
    assert summary["messages"]["sent"] == history.num_rows("messages")
    # Its report says what the run said: interrupted, exit 3 (not an SLO's exit 1).
    reported = report_in_process(run_dir)
    assert reported.returncode == 3, reported.stderr
    assert "interrupted" in reported.stderr and "Traceback" not in reported.stderr


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sigkill_at_a_random_moment_leaves_a_history_report_reads(tmp_path: Path, seed: int) -> None:
    run_dir = tmp_path / "run"
    process = _start(run_dir)
    _wait_for_start(process, run_dir)
    time.sleep(random.Random(seed).uniform(0.0, 4.0))
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    history = msgstorm.read_history(run_dir)
    assert history.cut_off
    ids = history.messages["msg_id"].to_pylist()
    assert len(ids) == len(set(ids)), "a message appears once"
    assert set(history.messages["status"].to_pylist()) <= {"committed", "dropped", "rejected", "lost", "pending"}
    done = report_in_process(run_dir)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == 3, done.stderr
    if ids:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["cut_off"] is True and summary["interrupted"] is True
        assert summary["messages"]["sent"] == len(ids)
        assert "cut off" in done.stderr and "CUT OFF" in done.stdout
        assert "This run was cut off" in (run_dir / "report.html").read_text(encoding="utf-8")
    else:
        assert "cut off before any message was recorded" in done.stderr


def test_a_sigkill_before_the_history_exists_is_reported_as_no_history(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = _start(run_dir)
    process.kill()  # at once: the interpreter may not even have imported msgstorm
    process.communicate(timeout=60)
    done = report_in_process(run_dir)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode in (2, 3), done.stderr


@pytest.mark.slow
def test_output_lines_are_never_wrapped_when_not_a_terminal(tmp_path: Path) -> None:
    run_dir = tmp_path / ("a-directory-name-long-enough-to-pass-eighty-columns-" * 3) / "run"
    done = subprocess.run(_msgstorm("run", str(EXAMPLES / "quickstart.toml"), "--out", str(run_dir), "-q",
                                    "--set", 'run.duration="1s"'),
                          capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    assert f"run directory: {run_dir} (report: {run_dir / 'report.html'})" in done.stdout.splitlines()


def test_ctrl_c_during_analysis_says_the_history_is_whole_and_how_to_finish(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C lands after the simulation, while the history is analysed (raised from there)."""
    from typer.testing import CliRunner

    import msgstorm.report.rerun
    from msgstorm.cli import app

    def interrupted(_history: object) -> object:
        raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(msgstorm.report.rerun, "analyse", interrupted)  # where a run's history is analysed
        result = CliRunner().invoke(app, ["run", str(EXAMPLES / "quickstart.toml"), "--out", str(run_dir), "-q",
                                          "--set", 'run.duration="1s"'])
    assert result.exit_code == 3, result.output
    assert f"the history in {run_dir} is written; finish the summary and report with: msgstorm report {run_dir}" \
        in result.output
    assert not (run_dir / "summary.json").exists()
    finished = CliRunner().invoke(app, ["report", str(run_dir)])
    assert finished.exit_code == 0, finished.output
    assert json.loads((run_dir / "summary.json").read_text())["interrupted"] is False


def test_a_signal_inside_the_compiler_is_told_apart_from_one_anywhere_else() -> None:
    """Where a stop signal found the main thread: a frame of numba's or llvmlite's (their
    ctypes callbacks, where a raised KeyboardInterrupt is lost and the process crashes) is
    told apart, and the signal comes again later; any other frame stops the run at once."""
    import sys

    from msgstorm.commands.common import _in_compiler

    namespace: dict[str, object] = {}
    exec(compile("import sys\ndef here():\n    return sys._getframe()\n",  # noqa: S102 (a frame with that file name)
                 "/venv/lib/python3.11/site-packages/llvmlite/binding/executionengine.py", "exec"), namespace)
    inside = namespace["here"]()  # type: ignore[operator]
    assert _in_compiler(inside)
    assert not _in_compiler(sys._getframe())
    assert not _in_compiler(None)


@pytest.mark.slow
def test_sigint_while_numba_compiles_from_a_cold_cache_settles_instead_of_crashing(tmp_path: Path) -> None:
    """With an empty numba cache the run compiles its loops for seconds after it starts; a
    SIGINT then (before the fix: a KeyboardInterrupt raised in llvmlite's ctypes callback, and
    a SIGSEGV) settles as any other: exit 3, a history report reads."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    process = subprocess.Popen(_msgstorm("run", str(EXAMPLES / "quickstart.toml"), "--out", str(run_dir), "-q", *LONG),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_start(process, run_dir)
    time.sleep(0.1)  # compiling: the signal comes again until the compiler has returned
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr + stdout
    history = msgstorm.read_history(run_dir)
    assert history.run_info["interrupted"] is True
    assert report_in_process(run_dir).returncode == 3
