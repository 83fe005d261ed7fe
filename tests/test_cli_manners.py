"""The command line's manners: --version, "did you mean", counts in words, -q everywhere."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_cli_errors import EXAMPLES, SHORT, _invoke  # the same invocation and settings

import msgstorm


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
