"""Where a run writes: unique run directories, a non-empty --out refused, OS errors as one line.

Each case was a crash or a silent loss before: parallel runs colliding in the same second,
``--out`` over an existing run mixing files, ``/proc`` paths and a full disk ending in a
traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.errors import ExitCode

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUICKSTART = str(EXAMPLES / "quickstart.toml")
SHORT = ["--set", 'run.duration="500ms"', "--set", 'run.drain="500ms"']


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.slow
def test_parallel_runs_get_their_own_directories(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from msgstorm.cli import app; app()", "run", QUICKSTART, "-q", *SHORT]
    processes = [subprocess.Popen([*command, "--seed", str(seed)], cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for seed in (1, 2, 3)]
    outcomes = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], [err for _, err in outcomes]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 3
    assert all((run / "summary.json").is_file() for run in runs)


def test_an_existing_run_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert _invoke("run", QUICKSTART, "--out", str(run_dir), "-q", *SHORT)[0] == 0
    (run_dir / "notes.txt").write_text("mine")
    before = (run_dir / "summary.json").read_bytes()
    code, output = _invoke("run", QUICKSTART, "--out", str(run_dir), "-q", "--seed", "9", *SHORT)
    assert code == 2
    assert "not empty (holds history/, notes.txt, report.html, summary.json, windows.csv)" in output
    assert (run_dir / "summary.json").read_bytes() == before
    code, output = _invoke("run", QUICKSTART, "--out", str(run_dir), "-q", "--seed", "9", "--overwrite", *SHORT)
    assert code == 0, output
    assert "removed history/, summary.json, report.html, windows.csv" in output
    assert (run_dir / "summary.json").read_bytes() != before
    assert (run_dir / "notes.txt").read_text() == "mine", "files a run does not write are left alone"


@pytest.mark.parametrize(("out", "message"), [
    ("/proc/x", "/proc/x: cannot create the run directory: No such file or directory"),
    ("FILE/sub", "FILE/sub: cannot create the run directory: Not a directory"),
    ("FILE", "--out FILE: exists and is not a directory"),
])
def test_a_bad_place_to_write_is_one_line_and_exit_2(tmp_path: Path, out: str, message: str) -> None:
    (tmp_path / "FILE").write_text("")
    target = out if out.startswith("/") else str(tmp_path / out)
    code, output = _invoke("run", QUICKSTART, "--out", target, "-q", *SHORT)
    assert code == 2
    assert message.replace("FILE", str(tmp_path / "FILE")) in output


@pytest.mark.parametrize(("out", "message"), [
    ("FILE/sub", "FILE/sub: cannot create the search's directory: Not a directory"),
    ("FILE", "--out FILE: exists and is not a directory"),
])
def test_safe_leverage_says_a_bad_place_to_write_as_run_does(tmp_path: Path, out: str, message: str) -> None:
    """The same mistakes as ``run``'s above, said the same way (one line, exit 2), before
    anything runs: it raised FileExistsError and NotADirectoryError with a traceback, exit 1."""
    (tmp_path / "FILE").write_text("")
    code, output = _invoke("safe-leverage", str(EXAMPLES / "black-thursday.toml"), "--budget", "0.1%", "--range",
                           "1:8", "--out", str(tmp_path / out))
    assert code == 2, output
    assert output.strip() == "error: " + message.replace("FILE", str(tmp_path / "FILE"))


def test_safe_leverage_without_a_market_is_refused_with_exit_2() -> None:
    """No --range: the default range is the market's maintenance margin's, which a scenario
    without [market] has not (it raised OverflowError, exit 1)."""
    for given in ([], ["--range", "1:5"]):
        code, output = _invoke("safe-leverage", QUICKSTART, "--budget", "0.1%", *given)
        assert code == 2, output
        assert " ".join(output.split()) == (f"error: safe-leverage: {QUICKSTART}: safe-leverage needs a [market] "
                                            "with [[market.accounts]]")


def test_compare_writes_next_to_the_first_run_and_reports_a_bad_html_path(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [tmp_path / "a", tmp_path / "b"]
    for run_dir in runs:
        assert _invoke("run", QUICKSTART, "--out", str(run_dir), "-q", *SHORT)[0] == 0
    monkeypatch.chdir(tmp_path)
    code, output = _invoke("compare", *map(str, runs))
    (page,) = runs[0].glob("compare-*.html")
    assert code == 0 and f"comparison: {page}" in output and not list(tmp_path.glob("compare*.html"))
    code, output = _invoke("compare", *map(str, runs), "--html", "/proc/nope.html")
    assert code == 2 and "--html /proc/nope.html: cannot write: No such file or directory" in output


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A real 2 MiB filesystem (tmpfs): a run on it fills the disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); needs root"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; CI runs as root")
        pytest.skip(reason)
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_while_running_is_one_line_exit_4_and_keeps_what_was_written(tiny_disk: Path) -> None:
    run_dir = tiny_disk / "run"
    command = [sys.executable, "-c", "from msgstorm.cli import app; app()", "run", QUICKSTART, "--out", str(run_dir),
               "-q", "--set", 'run.duration="20s"', "--set", "history.row_group_size=1024"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == ExitCode.OUT_OF_SPACE == 4, done.stderr
    assert "No space left on device" in done.stderr and f"msgstorm report {run_dir}" in done.stderr
    assert list((run_dir / "history" / "messages").glob("part-*.parquet")), "parts written before are kept"


@pytest.mark.parametrize(("command", "usage"), [
    ("run", "msgstorm run [OPTIONS] SCENARIO.toml"), ("validate", "msgstorm validate [OPTIONS] SCENARIO.toml"),
    ("report", "msgstorm report [OPTIONS] RUN_DIR"), ("compare", "msgstorm compare [OPTIONS] RUN_DIR..."),
])
def test_help_names_the_arguments_plainly(command: str, usage: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], prog_name="msgstorm", terminal_width=200,
                                env={"COLUMNS": "200"})  # rich sizes typer's help from COLUMNS
    assert result.exit_code == 0
    assert usage in result.output and "{" not in result.output.split("\n\n")[0]


def test_paths_with_square_brackets_are_printed_as_they_are(tmp_path: Path) -> None:
    """Paths are text, not markup: "[/b]" ended in a traceback, "[y]" vanished from the line."""
    code, output = _invoke("validate", str(tmp_path / "my[/b]file.toml"))
    assert code == 2
    assert f"error: {tmp_path / 'my[/b]file.toml'}: no such scenario file" in output
    code, output = _invoke("report", str(tmp_path / "no[/x]run"))
    assert code == 2 and "no[/x]run" in output
    run_dir = tmp_path / "a[b]" / "run[y]"
    code, output = _invoke("run", QUICKSTART, "--out", str(run_dir), "-q", *SHORT)
    assert code == 0, output
    assert f"run directory: {run_dir} (report: {run_dir / 'report.html'})" in output
    code, output = _invoke("compare", str(run_dir), str(run_dir))
    assert code == 0, output
    assert f"A = {run_dir}" in output
