"""The command line's manners: --version, "did you mean", counts in words, -q everywhere."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.core
from test_cli_errors import EXAMPLES, SHORT, _invoke  # the same invocation and settings
from typer.testing import CliRunner

import msgstorm
from msgstorm.cli import app
from msgstorm.errors import ExitCode


def test_version() -> None:
    code, output = _invoke("--version")
    assert code == 0 and output.strip() == f"msgstorm {msgstorm.__version__}"


def test_a_misspelt_field_or_name_gets_the_closest_known_one(tmp_path: Path) -> None:
    text = (EXAMPLES / "quickstart.toml").read_text().replace("nodes_per_region", "node_per_region", 1)
    assert "node_per_region" in text
    (tmp_path / "typo.toml").write_text(text)
    code, output = _invoke("validate", str(tmp_path / "typo.toml"))
    assert code == 2 and "network.node_per_region: unknown field: did you mean 'nodes_per_region'?" in output
    code, output = _invoke("validate", str(EXAMPLES / "quickstart.toml"), "--set", "sequencer.policy=\"fifi\"")
    assert code == 2 and "unknown queue policy 'fifi' (did you mean 'fifo'?)" in output
    code, output = _invoke("validate", str(EXAMPLES / "quickstart.toml"), "--set", "agents.0.region=\"us-eest\"")
    assert code == 2 and "(did you mean 'us-east'?)" in output
    # A table outside the schema's own module (the market's, a fault's) is looked through too.
    text = (EXAMPLES / "black-thursday.toml").read_text().replace("maintenance_margin", "maintenance_margn", 1)
    (tmp_path / "typo.toml").write_text(text)
    code, output = _invoke("validate", str(tmp_path / "typo.toml"))
    assert code == 2 and "did you mean 'maintenance_margin'?" in output
    code, output = _invoke("validate", str(EXAMPLES / "byzantine.toml"), "--set", "faults.0.probabilty=0.5")
    assert code == 2 and "did you mean 'probability'?" in output, output
    code, output = _invoke("validate", str(EXAMPLES / "quickstart.toml"), "--set", "run.zzzz=1")
    assert code == 2 and "unknown field (check the spelling" in output and "did you mean" not in output


def test_validate_counts_in_words() -> None:
    code, output = _invoke("validate", str(EXAMPLES / "quickstart.toml"))
    assert code == 0 and "2 agents, 1 fault," in output and "1 faults" not in output


def test_report_and_compare_take_quiet(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for run_dir, seed in ((first, "1"), (second, "2")):
        code, output = _invoke("run", str(EXAMPLES / "quickstart.toml"), "--out", str(run_dir), "-q", "--seed", seed,
                               *SHORT)
        assert code in (0, 1), output
    code, loud = _invoke("report", str(first))
    code_quiet, quiet = _invoke("report", str(first), "-q")
    assert code_quiet == code and f"report: {first / 'report.html'}" in quiet
    assert len(quiet.splitlines()) < len(loud.splitlines()) and "latency" in loud and "latency" not in quiet
    code, quiet = _invoke("compare", str(first), str(second), "-q", "--no-html")
    assert code == 0 and len(quiet.splitlines()) <= 3, quiet
    assert "regression" in quiet  # "no regression beyond 5%" or the regressions, nothing else
    shutil.rmtree(tmp_path)


def _help_texts(command: typer.core.TyperCommand) -> list[str]:
    """The help a command was given in the source (its docstring and every parameter's),
    as plain text: the command line escapes square brackets for rich, which is undone here."""
    texts = [command.help or ""] + [str(getattr(param, "help", None) or "") for param in command.params]
    return [text.replace("\\[", "[") for text in texts]


def test_every_help_text_keeps_its_square_brackets() -> None:
    """Rich markup ate "[cluster]" in ``pip install -e '.[cluster]'`` and "[market]" in "a
    scenario with [market] accounts": every command's --help shows every ``[word]`` its
    source help has."""
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    checked = 0
    for name, command in group.commands.items():
        # A width of its own: a narrow terminal (COLUMNS) crops the help's columns.
        result = CliRunner().invoke(app, [name, "--help"], terminal_width=200, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        shown = re.sub(r"[│╭╮╰╯─]", " ", result.output)
        for text in _help_texts(command):
            for word in re.findall(r"\[[^\]\s]+\]", text):
                assert word in shown, f"msgstorm {name} --help loses {word!r} of {text!r}"
                checked += 1
    assert checked >= 2  # [cluster] and [market] at least


@pytest.mark.slow
def test_run_quiet_prints_each_message_on_its_own_line(tmp_path: Path) -> None:
    """``run -q``, stdout and stderr on one stream: the run directory's line ends before
    anything else is said (an SLO failing here: ``latency.p99 < 1us``, said on its own line)."""
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "msgstorm", "run", str(EXAMPLES / "quickstart.toml"), "-q",
                           "--out", str(run_dir), *SHORT, "--set", 'slo={"latency.p99"="< 1us"}'],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == ExitCode.CHECK_FAILED, done.stdout
    lines = done.stdout.splitlines()
    # The shortened run cuts off the example's faults: a note for each, on its own line, first.
    notes = [line for line in lines if line.startswith("note: ")]
    assert notes and all(re.fullmatch(r"note: faults\[\d+\]\.at: .* it will not fire in this run", n) for n in notes)
    assert lines[:len(notes)] == notes, done.stdout
    lines = lines[len(notes):]
    assert lines[0] == f"run directory: {run_dir} (report: {run_dir / 'report.html'})", done.stdout
    assert len(lines) == 2 and re.fullmatch(r"SLO fail: latency\.p99 = [0-9.]+ ms \(wanted < 1us\)", lines[1]), \
        done.stdout
    assert done.stdout.endswith("\n")
