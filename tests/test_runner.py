"""End to end on the simulator: determinism, conservation, interruption, the public API."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

import msgstorm
from msgstorm.history import STATUSES
from msgstorm.progress import ProgressSnapshot
from msgstorm.runner import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _small(*overrides: str) -> msgstorm.Scenario:
    return msgstorm.load_scenario(EXAMPLES / "quickstart.toml", ["run.duration=\"3s\"", "run.drain=\"2s\"", *overrides])


def _digest(run_dir: Path) -> dict[str, str]:
    """Each history table's content (parts are cut by wall time, so bytes may differ)."""
    history = msgstorm.read_history(run_dir)
    return {name: hashlib.sha256(json.dumps(getattr(history, name).to_pydict(), default=str).encode()).hexdigest()
            for name in ("messages", "deliveries", "events", "run")}


@pytest.mark.slow
def test_same_seed_same_history_content(tmp_path) -> None:
    a = run(_small(), tmp_path / "a")
    b = run(_small(), tmp_path / "b")
    assert (a.run_dir / "history" / "messages").is_dir()
    assert _digest(a.run_dir) == _digest(b.run_dir)
    c = run(_small("run.seed=43"), tmp_path / "c")
    assert _digest(a.run_dir)["messages"] != _digest(c.run_dir)["messages"]


def test_conservation_every_message_one_terminal_status(tmp_path) -> None:
    result = run(_small('backpressure.capacity=50', 'sequencer.service={dist="exponential", mean="400us"}'), tmp_path / "r")
    messages = result.history.messages
    ids = messages["msg_id"].to_numpy()
    assert len(ids) == len(set(ids.tolist())) > 1000
    assert sorted(ids.tolist()) == list(range(len(ids)))
    statuses = set(messages["status"].to_pylist())
    assert statuses <= set(STATUSES)
    counts = result.summary["messages"]
    assert counts["sent"] == len(ids)
    assert counts["committed"] + counts["dropped"] + counts["rejected"] + counts["lost"] + counts["pending"] == counts["sent"]
    assert counts["dropped"] > 0, "a 50-message queue under this load must drop"
    committed = messages.filter(pc.equal(messages["status"], "committed"))
    assert pc.all(pc.is_valid(committed["t_committed"])).as_py()
    assert pc.all(pc.greater_equal(committed["t_committed"], committed["t_sequenced"])).as_py()
    checks = {c["name"]: c["verdict"] for c in result.summary["checks"]}
    assert checks and all(v == "valid" for v in checks.values()), checks


def test_summary_json_written_and_reanalysed(tmp_path) -> None:
    result = run(_small(), tmp_path / "r")
    written = json.loads((result.run_dir / "summary.json").read_text())
    for key in ("scenario", "seed", "target", "offered_rate_per_s", "throughput_per_s", "latency_ms",
                "latency_stages_ms", "jitter_ms", "capacity", "failure_threshold", "queue", "messages",
                "desync", "slo"):
        assert key in written
    (result.run_dir / "summary.json").unlink()
    again = msgstorm.analyse(msgstorm.read_history(result.run_dir))
    assert again.summary["latency_ms"] == written["latency_ms"]


def test_interrupted_run_keeps_history(tmp_path) -> None:
    calls = {"n": 0}

    def stop_soon(snapshot: ProgressSnapshot) -> None:
        calls["n"] += 1
        if snapshot.t_ns > 1_000_000_000:
            raise KeyboardInterrupt

    result = run(_small(), tmp_path / "r", progress=stop_soon)
    assert result.summary["interrupted"] is True
    assert result.history.messages.num_rows > 0
    assert (result.run_dir / "summary.json").is_file()
    assert "interrupted" in result.history.events["kind"].to_pylist()


@pytest.mark.parametrize("mode", ["suspend", "eip1559", "shed", "unbounded"])
def test_backpressure_modes_engage(tmp_path, mode) -> None:
    table = {
        "suspend": ['backpressure={mode="suspend", high=200, low=20}'],
        "eip1559": ['backpressure={mode="eip1559", initial_base_fee=1.0, underpriced="reject"}', "blocks.max_messages=100"],
        "shed": ['backpressure={mode="shed", capacity=400}'],
        "unbounded": ['backpressure={mode="unbounded"}'],
    }[mode]
    overloaded = ['sequencer.service={dist="exponential", mean="2ms"}', *table]
    result = run(_small(*overloaded), tmp_path / mode)
    events = result.history.events
    kinds = events["kind"].to_pylist()
    counts = result.summary["messages"]
    if mode == "suspend":
        states = [json.loads(d)["state"] for k, d in zip(kinds, events["detail"].to_pylist()) if k == "backpressure"]
        assert "suspended" in states and "resumed" in states
        assert counts["dropped"] == 0
    elif mode == "eip1559":
        fees = [v for k, v in zip(kinds, events["value"].to_pylist()) if k == "base_fee"]
        assert max(fees) > 1.0
        assert counts["rejected"] > 0
    elif mode == "shed":
        dropped = result.history.messages.filter(pc.equal(result.history.messages["status"], "dropped"))
        assert dropped.num_rows > 0
        assert "quote" in set(dropped["kind"].to_pylist()), "quotes are shed before orders"
        assert result.summary["queue"]["max_depth"] <= 400 + 1
    else:
        assert counts["dropped"] == 0
        assert result.summary["queue"]["max_depth"] > 400


def test_block_capacity_overload_shows_as_backlog_and_failure(tmp_path) -> None:
    # Blocks of 50 every 250 ms carry 200/s of the ~3,000/s offered: the queue stays short
    # but the block backlog grows, and the failure threshold must say so.
    result = run(_small("blocks.max_messages=50"), tmp_path / "r")
    summary = result.summary
    assert summary["queue"]["max_block_backlog"] > 1000
    assert summary["failure_threshold"] is not None
    assert summary["failure_threshold"]["reason"] in ("overload", "slo")
    assert summary["messages"]["pending"] > 0


def test_the_api_refuses_a_run_directory_that_holds_a_run_as_the_command_line_does(tmp_path) -> None:
    """A second run into a run directory would leave the first run's later history parts
    beside the new ones (read as one run: messages twice, conservation broken). The API
    refuses as ``--out`` does, with the same error, and replaces the run with overwrite=True."""
    from msgstorm.runner import RunDirError, prepare_run_dir

    first = run(_small("history.row_group_size=1024"), tmp_path / "r")
    parts_before = len(list((first.run_dir / "history" / "messages").iterdir()))
    assert parts_before > 1  # small parts: the second run would write fewer
    with pytest.raises(RunDirError) as refused:
        run(_small(), tmp_path / "r")
    with pytest.raises(RunDirError) as by_cli_rule:
        prepare_run_dir(tmp_path / "r")
    assert str(refused.value) == str(by_cli_rule.value)
    assert "overwrite" in str(refused.value)
    assert msgstorm.read_history(tmp_path / "r").num_rows("messages") == first.summary["messages"]["sent"]
    (tmp_path / "r" / "notes.txt").write_text("kept")
    second = run(_small(), tmp_path / "r", overwrite=True)
    counts = second.summary["messages"]
    assert counts["sent"] == first.summary["messages"]["sent"]  # same scenario and seed, not twice as many
    assert all(check["verdict"] == "valid" for check in second.summary["checks"])
    assert (tmp_path / "r" / "notes.txt").read_text() == "kept"


def _wait_for_history(process: subprocess.Popen[str], run_dir: Path) -> None:
    """Until the run row written at the start is on disk: the run is writing its history."""
    deadline = time.monotonic() + 120
    while not list((run_dir / "history" / "run").glob("part-*.parquet")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_second_run_into_a_directory_a_run_is_writing_is_refused_naming_the_first(tmp_path: Path) -> None:
    """Two ``run --out D --overwrite`` started together: the second would remove the first's
    history under it and write its own parts beside the first's later ones. It exits 2 at
    once naming the process that writes there, and the first run's history stays its own."""
    from typer.testing import CliRunner

    from msgstorm.cli import app
    from msgstorm.runner import RunDirError

    run_dir = tmp_path / "r"
    long = ["--set", 'run.duration="300s"', "--set", "agents.0.count=40"]
    first = subprocess.Popen([sys.executable, "-c", "from msgstorm.cli import app; app()", "run",
                              str(EXAMPLES / "quickstart.toml"), "--out", str(run_dir), "--overwrite", "-q", *long],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_history(first, run_dir)
        parts = sorted(path.name for path in (run_dir / "history" / "run").iterdir())
        second = CliRunner().invoke(app, ["run", str(EXAMPLES / "quickstart.toml"), "--out", str(run_dir),
                                          "--overwrite", "-q", *long])
        assert second.exit_code == 2, second.output
        assert f"another run is writing there (process {first.pid} holds {run_dir / '.run.lock'})" in second.output
        assert "--overwrite: removed" not in second.output
        with pytest.raises(RunDirError, match=f"process {first.pid} holds"):
            run(_small(), run_dir, overwrite=True)
        assert first.poll() is None, "the first run goes on"
        assert sorted(path.name for path in (run_dir / "history" / "run").iterdir()) == parts
    finally:
        first.send_signal(signal.SIGINT)
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 3, stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["messages"]["sent"] == msgstorm.read_history(run_dir).num_rows("messages")
    # Once it has ended, the directory is free again: a run replaces it with --overwrite.
    again = run(_small(), run_dir, overwrite=True)
    assert again.summary["messages"]["sent"] == msgstorm.read_history(run_dir).num_rows("messages")
