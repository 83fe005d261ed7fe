"""CPU samples of a live run's processes (live/cpu.py) and their reading (analysis/cpu.py).

The sampler reads /proc, so these tests need Linux (where CI runs); the reading is checked on
a history with known samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msgstorm.analysis.cpu import machine_cpu, process_cpu
from msgstorm.history import read_history
from msgstorm.history.schema import EVENTS
from msgstorm.live.cpu import CpuSampler, machine_busy_seconds, process_cpu_seconds
from msgstorm.live.servers import go_server_cpus
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")


@linux
def test_a_process_cpu_time_is_read_and_grows_with_its_work() -> None:
    """A child that spins 0.5 s of CPU, then waits: /proc counts it in clock ticks, sampled
    by the kernel, so the reading may fall a few ticks short of the child's own clock."""
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\n"
                              "while time.process_time() < end: pass\nprint(flush=True)\nimport sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        child.stdout.readline()  # the spin is over
        seconds = process_cpu_seconds(child.pid)
        assert seconds is not None and 0.4 <= seconds < 5.0  # the spin, plus the interpreter's start
    finally:
        child.communicate(b"")
    assert process_cpu_seconds(child.pid) is None  # gone: no sample, not a zero


@linux
def test_the_sampler_emits_this_process_and_each_server_that_can_be_read() -> None:
    samples: list[tuple[str, float]] = []
    machine: list[float] = []
    sampler = CpuSampler("publisher", [("alive", os.getpid()), ("gone", 2**22 + 12345)],
                         lambda name, seconds: samples.append((name, seconds)), machine.append)
    sampler.sample()
    assert [name for name, _ in samples] == ["publisher", "alive"]
    assert samples[0][1] == pytest.approx(time.process_time(), abs=0.5)
    # The machine's busy time since boot: at least this process's, whoever else ran.
    assert len(machine) == 1 and machine[0] >= samples[0][1] - 0.05


@linux
def test_the_machines_busy_time_counts_every_process_on_it() -> None:
    """A child spinning 0.5 s of CPU is busy time of the machine's, though msgstorm samples
    no process of it: the machine's count grows by at least its spin (and by whatever else
    ran meanwhile), and by no more than every core for the time it took."""
    before_s, start = machine_busy_seconds(), time.monotonic()
    child = subprocess.run([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\n"
                            "while time.process_time() < end: pass"], check=True)
    after_s, elapsed = machine_busy_seconds(), time.monotonic() - start
    assert child.returncode == 0 and before_s is not None and after_s is not None
    assert 0.45 <= after_s - before_s <= (os.cpu_count() or 1) * elapsed + 0.05


def _with_events(run_dir: Path, rows: list[dict[str, object]]) -> None:
    """Add event rows to a history as one more part of its events table."""
    table = pa.Table.from_pylist([{"node": None, "value": None, "height": None, "detail": None} | row
                                  for row in rows], schema=EVENTS)
    pq.write_table(table, run_dir / "history" / "events" / "part-999999.parquet")


def test_samples_read_back_as_mean_cpus_over_any_span(tmp_path: Path) -> None:
    scenario = parse_scenario('[run]\nname = "cpu"\nduration = "1s"\n[[agents]]\nname = "a"\n'
                              'arrival = { process = "poisson", rate = "100/s" }\n', source="cpu.toml")
    run(scenario, tmp_path)
    second = 1_000_000_000
    rows: list[dict[str, object]] = [
        {"t": 0, "kind": "server_start", "detail": json.dumps({"name": "broker", "pid": 1, "url": "x", "cpus": 2})}]
    # broker: 0.5 CPUs in the first second, 1.5 in the next two; then a second process of that
    # name (its time starts again from 0), which ends the first one's curve.
    for t, seconds in [(5, 0.0), (second, 0.5), (2 * second, 2.0), (3 * second, 3.5), (4 * second, 0.1)]:
        rows.append({"t": t, "kind": "cpu_seconds", "node": "broker", "value": seconds})
    rows += [{"t": t * second, "kind": "cpu_seconds", "node": "publisher", "value": 0.25 * t} for t in range(3)]
    # The machine: 1.75 cores busy in the first second, 0.5 in the next (counted since boot).
    rows += [{"t": t, "kind": "machine_cpu_seconds", "value": busy}
             for t, busy in [(0, 5000.0), (second, 5001.75), (2 * second, 5002.25)]]
    _with_events(tmp_path, rows)
    history = read_history(tmp_path)
    found = process_cpu(history)
    assert set(found) == {"broker", "publisher"}  # the machine is no process
    machine = machine_cpu(history)
    assert machine is not None and machine.cpus == os.cpu_count()  # the run's host facts
    assert machine.cores(0, second) == pytest.approx(1.75)
    assert machine.cores(0, 2 * second) == pytest.approx(1.125)
    broker = found["broker"]
    assert broker.cpus == 2 and found["publisher"].cpus is None
    assert broker.t.tolist() == [5, second, 2 * second, 3 * second]
    assert broker.cores(0, second) == pytest.approx(0.5, rel=1e-6)  # the first sample a moment late
    assert broker.cores(second, 3 * second) == pytest.approx(1.5)
    assert broker.cores(second // 2, 3 * second // 2) == pytest.approx(1.0)  # linear between samples
    assert broker.cores(3 * second, 5 * second) is None  # past the curve
    assert found["publisher"].cores(0, 2 * second) == pytest.approx(0.25)


@linux
def test_a_dead_process_is_not_sampled_while_it_waits_to_be_reaped() -> None:
    """A server killed mid-run stays a zombie until msgstorm stops it: its /proc entry is still
    there, and reading it as a process that uses no CPU would draw a flat line."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    break
            time.sleep(0.01)
        assert process_cpu_seconds(child.pid) is None
    finally:
        child.wait()


@pytest.mark.parametrize(("value", "expected"), [
    (None, "one below the CPUs"), ("1", 1), ("64", "the CPUs"), ("", "the CPUs"), ("zero", "the CPUs"), ("0", "the CPUs"),
])
def test_a_go_server_says_how_many_cpus_it_runs_on(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                                   expected: int | str) -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if value is None:
        monkeypatch.delenv("GOMAXPROCS", raising=False)
    else:
        monkeypatch.setenv("GOMAXPROCS", value)
    wanted = {"one below the CPUs": max(1, cpus - 1), "the CPUs": cpus}.get(str(expected), expected)
    assert go_server_cpus() == min(int(wanted), cpus)
