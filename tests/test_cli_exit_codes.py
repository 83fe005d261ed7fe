"""Exit codes: one per cause (``msgstorm.errors.ExitCode``), documented, and never a bare
number in the source. Each cause is reached here through the command line; the slow or
environment-bound ones (a real full disk, a real Ctrl-C, a live server that is not there)
have their own tests too (test_cli_errors, test_cli_signals, test_cli_target)."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest
from test_cli_errors import EXAMPLES, QUICKSTART, SHORT, _invoke
from typer.testing import CliRunner

from msgstorm import runner
from msgstorm.cli import app
from msgstorm.errors import ExitCode
from msgstorm.live.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_every_code_is_distinct_and_documented() -> None:
    assert len({int(code) for code in ExitCode}) == len(ExitCode)
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \| `{code.name}` \| \S", docs, re.MULTILINE), code


def test_no_exit_in_the_source_is_a_bare_number() -> None:
    """``raise typer.Exit(1)``, ``sys.exit(3)``, ``os._exit(2)``: every such literal is an
    ``ExitCode`` instead, so no code can mean two things again."""
    literal = re.compile(r"\b(?:Exit|sys\.exit|os\._exit|_exit)\(\s*(?:code\s*=\s*)?-?\d")
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / "src").rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if literal.search(line)]
    assert found == []


def test_ok() -> None:
    code, output = _invoke("validate", QUICKSTART)
    assert code == ExitCode.OK == 0, output


def test_an_slo_failed(tmp_path: Path) -> None:
    """Exit 1; with -q (no summary table) the failing SLO is said, with its value and unit."""
    code, output = _invoke("run", QUICKSTART, "--out", str(tmp_path / "run"), "-q", *SHORT,
                           "--set", 'slo={"latency.p99"="< 1us", "messages.dropped"="== 0"}')
    assert code == ExitCode.CHECK_FAILED == 1, output
    (said,) = [line for line in output.splitlines() if line.startswith("SLO ")]
    assert re.fullmatch(r"SLO fail: latency\.p99 = [0-9.]+ ms \(wanted < 1us\)", said), output
    code, output = _invoke("report", str(tmp_path / "run"), "-q")
    assert code == ExitCode.CHECK_FAILED, output
    assert [line for line in output.splitlines() if line.startswith("SLO ")] == [said], output


def test_a_knee_slo_no_step_reached_is_not_judged_and_fails_nothing(tmp_path: Path) -> None:
    """examples/ramp.toml cut to its first three steps (1,000, 2,000 and 3,000/s, offered 2,963/s
    in the last as drawn): every step keeps up, so no knee was reached. The terminal says the
    knee is at least the last step's rate, the knee's ``>= 3000/s`` SLO is not judged (unknown,
    with why), and the run exits 0; with --strict an unknown fails, as any does, and says why."""
    ramp = str(EXAMPLES / "ramp.toml")
    code, output = _invoke("run", ramp, "--out", str(tmp_path / "run"), "--set", "agents[0].arrival.steps=3")
    assert code == ExitCode.OK, output
    assert re.search(r"capacity \(knee\)\s*│\s*≥ 2,963/s, no knee reached", output), output
    assert re.search(r"capacity\.knee_rate\s*│\s*>= 3000/s\s*│\s*≥ 2,963/s\s*│\s*unknown", output), output
    assert "capacity.knee_rate: no knee reached: every step of the ramp passed" in output
    code, output = _invoke("run", ramp, "--out", str(tmp_path / "strict"), "-q", "--strict",
                           "--set", "agents[0].arrival.steps=3")
    assert code == ExitCode.CHECK_FAILED, output
    (said,) = [line for line in output.splitlines() if line.startswith("SLO ")]
    assert said.startswith("SLO unknown: capacity.knee_rate = ≥ 2963/s (wanted >= 3000/s): no knee reached"), said


def test_bad_input() -> None:
    code, output = _invoke("validate", str(EXAMPLES / "bad.toml"))
    assert code == ExitCode.BAD_INPUT == 2, output


@pytest.mark.parametrize(("args", "said"), [
    (["sweep", QUICKSTART, "--seeds", "0"],
     "error: msgstorm sweep: Invalid value for '--seeds': 0 is not in the range x>=1 (see 'msgstorm sweep --help')"),
    (["run", QUICKSTART, "--seed", "x"],
     "error: msgstorm run: Invalid value for '--seed': 'x' is not a valid int (see 'msgstorm run --help')"),
    (["report"], "error: msgstorm report: Missing argument 'RUN_DIR' (see 'msgstorm report --help')"),
    (["compare", "a", "b", "--no-such-option"], "error: msgstorm compare: No such option: --no-such-option"),
    (["safe-leverage", QUICKSTART, "--seeds", "-1"], "error: msgstorm safe-leverage: Invalid value for '--seeds'"),
    (["no-such-command"], "error: msgstorm: No such command 'no-such-command' (see 'msgstorm --help')"),
])
def test_a_bad_option_value_is_one_error_line(args: list[str], said: str) -> None:
    """A usage error, whatever the command, is one ``error:`` line and exit 2, as every other
    bad input is: no boxed usage panel."""
    code, output = _invoke(*args)
    assert code == ExitCode.BAD_INPUT, output
    assert output.splitlines()[0].startswith(said), output
    assert len(output.splitlines()) == 1, output


def test_a_cut_off_history_is_interrupted(tmp_path: Path) -> None:
    """A history whose run row says it never completed (a kill) and that holds no message."""
    run_dir = tmp_path / "run"
    code, output = _invoke("run", QUICKSTART, "--out", str(run_dir), "-q", *SHORT)
    assert code == ExitCode.OK, output
    import shutil

    shutil.rmtree(run_dir / "history" / "messages")
    (run_dir / "history" / "messages").mkdir()
    run_parts = sorted((run_dir / "history" / "run").iterdir())
    run_parts[-1].unlink()  # the row written at the end: what is left reads as cut off
    code, output = _invoke("report", str(run_dir))
    assert code == ExitCode.INTERRUPTED == 3, output


def test_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner, "run_claimed", full)  # what `msgstorm run` calls once it holds the directory
    code, output = _invoke("run", QUICKSTART, "--out", str(tmp_path / "run"), "-q")
    assert code == ExitCode.OUT_OF_SPACE == 4, output
    assert "No space left on device" in output


@pytest.mark.slow
def test_some_sweep_runs_failed(tmp_path: Path) -> None:
    """One of two grid points replays a price file with a negative price, which fails only
    when its run reads it: its row records the error, the sweep finishes and says so."""
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("t,price\n0,100\n1,90\n")
    bad.write_text("t,price\n0,100\n1,-5\n")
    result = CliRunner().invoke(app, [
        "sweep", QUICKSTART, "--grid", f'market.instruments.0.replay="{good}","{bad}"', "--workers", "1", "-q",
        "--out", str(tmp_path / "s"), "--set", 'market={instruments=[{name="X"}]}', *SHORT])
    assert result.exit_code == ExitCode.RUNS_FAILED == 5, result.output


def test_a_target_that_is_not_there(tmp_path: Path) -> None:
    code, output = _invoke("run", QUICKSTART, "--target", f"nats://127.0.0.1:{free_port()}", "--out",
                           str(tmp_path / "run"), "-q", "--set", 'live.start_timeout="1s"', "--set", "faults=[]")
    assert code == ExitCode.TARGET_FAILED == 6, output
    code, output = _invoke("report", str(tmp_path / "run"))
    assert code == ExitCode.TARGET_FAILED, output


def test_the_help_lists_every_code_with_what_it_means() -> None:
    """``msgstorm --help`` (and msgstorm alone) ends with the codes, each with its cause."""
    for args in (["--help"], []):
        output = " ".join(CliRunner().invoke(app, args, terminal_width=200).output.split())
        for code, words in ((ExitCode.OK, "ok"), (ExitCode.CHECK_FAILED, "an SLO failed"),
                            (ExitCode.BAD_INPUT, "bad input"), (ExitCode.INTERRUPTED, "interrupted (Ctrl-C, SIGTERM)"),
                            (ExitCode.OUT_OF_SPACE, "the disk filled"),
                            (ExitCode.RUNS_FAILED, "a sweep finished, but some of its runs failed"),
                            (ExitCode.TARGET_FAILED, "a live run never started")):
            assert f"{int(code)} {words}" in output, (code, output)
