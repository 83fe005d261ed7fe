"""The one live run loop (``live/lifecycle.py``): every target's run goes through the same
steps in the same order, and the servers, the cleanup and a failed start are recorded the same
way whatever the target. Driven here by a target of the test's own (no server, no client), so
the order is seen step by step; the real targets' runs are in the other ``test_live_*`` files."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from msgstorm.errors import TargetError
from msgstorm.history.writer import HistoryWriter
from msgstorm.live.drivers.capabilities import PARTS, DriverCapabilities, declares
from msgstorm.live.lifecycle import Lifecycle, NoSteps, RunState, keep_unsent, send_windows
from msgstorm.live.recorder import PUBLISHER
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.progress import ProgressSnapshot
from msgstorm.scenario import parse_scenario
from msgstorm.scenario.registry import LIVE_DRIVERS
from msgstorm.traffic.generate import MessageBatch

SCENARIO = """
target = "nats"

[run]
name = "lifecycle"
duration = "200ms"
drain = "{drain}"
sample_interval = "50ms"

[live]
consumers = 1

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "100/s" }}
size = "64B"
"""


class _Steps(NoSteps):
    """A target that records each step the lifecycle asks of it, in order."""

    def __init__(self, tmp_path: Path, drain: str = "100ms", fail_open: bool = False,
                 drained_after: int = 3, server: ManagedServer | None = None) -> None:
        scenario = parse_scenario(SCENARIO.format(drain=drain), source="lifecycle.toml")
        super().__init__(RunState(scenario, HistoryWriter(tmp_path / "history"), tmp_path, progress=self._progress))
        self.steps: list[str] = []
        self.snapshots: list[ProgressSnapshot] = []
        self.fail_open = fail_open
        self.drained_after = drained_after
        self.polls = 0
        self.server = server

    def run(self, traffic: Iterator[MessageBatch]) -> None:
        """The one run loop, composed of this target's steps."""
        Lifecycle(self.state, self).run(traffic)

    def _progress(self, snapshot: ProgressSnapshot) -> None:
        self.snapshots.append(snapshot)

    @property
    def nodes(self) -> list[dict[str, str]]:
        return [{"name": PUBLISHER, "region": "local"}]

    def start_servers(self) -> list[dict[str, Any]]:
        self.steps.append("start_servers")
        if self.server is None:
            return []
        self.server.spawn()  # spawned, and its start then cut short: no description of it
        raise TargetError("the server would not listen")

    def stop_servers(self) -> list[ManagedServer]:
        self.steps.append("stop_servers")
        if self.server is None:
            return []
        self.server.stop()
        return [self.server]

    async def open(self) -> None:
        self.steps.append("open")
        if self.fail_open:
            raise TargetError("cannot connect")

    def clock_started(self) -> None:
        self.steps.append("clock_started")

    def during(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
        self.steps.append("during")
        return [loop.create_task(asyncio.sleep(3600))]

    async def send(self, traffic: Iterator[MessageBatch]) -> None:
        self.steps.append(f"send {sum(len(batch) for batch in traffic)}")

    async def settle(self) -> None:
        self.steps.append("settle")

    def drained(self) -> bool:
        self.polls += 1
        return self.polls >= self.drained_after

    async def after(self) -> None:
        assert self.state.t_run_end is not None  # the run has ended before the reads after it
        self.steps.append("after")

    async def close(self) -> None:
        self.steps.append("close")

    def sampled_processes(self) -> list[tuple[str, int]]:
        return []

    def snapshot(self, final: bool = False) -> ProgressSnapshot:
        return ProgressSnapshot(t_ns=self.state.now(), end_ns=self.scenario.run.duration, sent=0, emitted=0,
                                settled=0, committed=0, dropped=0, rejected=0, queue_depth=0, base_fee=None,
                                faults_active=0, leader="", final=final, target=self.scenario.target)

    def finish(self) -> int:
        return self.state.end_history()


def _batch(first: int, count: int) -> MessageBatch:
    """Messages ``first`` .. ``first + count - 1``, message ``i`` meant at ``i`` ms."""
    ids = np.arange(first, first + count, dtype=np.int64)
    return MessageBatch(msg_id=ids, t_intended=ids * 1_000_000, agent=np.zeros(count, np.int32),
                        kind=np.zeros(count, np.int8), node=np.zeros(count, np.int32), key=ids,
                        size=np.full(count, 64, np.int32), fee=np.zeros(count))


def _traffic(count: int) -> Iterator[MessageBatch]:
    yield _batch(0, count)


def _kinds(target: _Steps) -> list[str]:
    return [str(event[1]) for event in target.state.log.events]


def test_every_step_comes_once_in_the_lifecycle_order(tmp_path: Path) -> None:
    target = _Steps(tmp_path, drained_after=3)
    target.run(_traffic(5))
    assert target.steps == ["start_servers", "open", "clock_started", "during", "send 5", "settle", "after",
                            "close", "stop_servers"]
    assert target.polls == 3  # the drain polled until drained, not to its deadline
    state = target.state
    assert state.t_run_end is not None and not state.interrupted and state.start_error is None
    kinds = _kinds(target)
    assert kinds[0] == "run_start" and kinds[-1] == "cleanup"
    assert kinds.count("cpu_seconds") >= 1  # msgstorm's own CPU, sampled for every target
    assert target.snapshots[-1].final and not any(s.final for s in target.snapshots[:-1])


def test_the_drain_ends_at_run_drain_when_what_it_waits_for_never_comes(tmp_path: Path) -> None:
    target = _Steps(tmp_path, drain="60ms", drained_after=10**9)
    target.run(_traffic(1))
    # Polled every drain_poll_s (10 ms) for 60 ms: at most six polls (and one at the start).
    assert 1 <= target.polls <= 7
    assert target.steps[-3:] == ["after", "close", "stop_servers"]


def test_a_failed_connect_is_a_start_error_and_the_clients_still_close(tmp_path: Path) -> None:
    target = _Steps(tmp_path, fail_open=True)
    with pytest.raises(TargetError, match="cannot connect"):
        target.run(_traffic(3))
    assert target.steps == ["start_servers", "open", "close", "stop_servers"]
    assert target.state.start_error == "cannot connect"
    failed = [event[4] for event in target.state.log.events if event[1] == "client_error"]
    assert failed == [{"client": "start", "error": "cannot connect"}]
    assert _kinds(target)[-1] == "cleanup"


def test_a_server_spawned_whose_start_was_cut_short_still_has_its_start_and_stop(tmp_path: Path) -> None:
    server = ManagedServer("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], free_port(),
                           tmp_path / "servers", 5.0)
    (tmp_path / "servers").mkdir()
    target = _Steps(tmp_path, server=server)
    with pytest.raises(TargetError, match="would not listen"):
        target.run(_traffic(3))
    starts = [event[4] for event in target.state.log.events if event[1] == "server_start"]
    stops = [event[4] for event in target.state.log.events if event[1] == "server_stop"]
    assert starts == [{"name": "sleeper", "pid": server.pid, "url": None, "started": False}]
    assert [stop["name"] for stop in stops] == ["sleeper"]
    cleanup = next(event[4] for event in target.state.log.events if event[1] == "cleanup")
    assert cleanup["servers_stopped"] == 1 and cleanup["left"] == []


def test_the_windows_left_unsent_are_kept_up_to_the_run_end_and_no_further() -> None:
    # Windows of 10 messages 1 ms apart; the run ends at 25 ms: the window 20..29 straddles it.
    windows = iter([_batch(10, 10), _batch(20, 10), _batch(30, 10)])
    kept: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        upcoming = loop.run_in_executor(None, next, windows, None)
        await keep_unsent(upcoming, windows, 25_000_000, lambda: False, lambda b: kept.append(int(b.msg_id[0])))

    asyncio.run(main())
    assert kept == [10, 20]  # the window past the end is never read as unsent


@pytest.mark.parametrize("target", ["jetstream", "kafka", "mqtt", "nats", "rabbitmq", "redis", "zmq"])
def test_the_capability_view_holds_the_driver_where_it_has_the_capability(tmp_path: Path, target: str) -> None:
    scenario = parse_scenario(SCENARIO.format(drain="1s").replace('target = "nats"', f'target = "{target}"'),
                              source="lifecycle.toml")
    driver = LIVE_DRIVERS[target](scenario.live, tmp_path, lambda kind, detail: None)
    can = DriverCapabilities.of(driver)
    for part, protocol in PARTS.items():
        if part.capability == "checks":  # the class's own, read at validation: no field of the view
            continue
        field = part.part or part.capability  # the view's field: the part, or the capability itself
        assert (getattr(can, field) is driver) == declares(type(driver), part), f"{target}: {part}"
        members = {name for name in vars(protocol) if not name.startswith("_")} | set(protocol.__annotations__)
        if members:  # (``BulkAcks`` has none: a driver declaring it uses the ``on_acks`` ``connect`` gives)
            assert declares(type(driver), part) == isinstance(driver, protocol), f"{target}: {part}"
    assert can.accounting is driver  # every built-in driver counts what it has taken


class _Clock:
    """A clock that moves 1 ms each time it is read, and as much more as a send takes."""

    def __init__(self, start_ns: int) -> None:
        self.t = start_ns

    def __call__(self) -> int:
        t, self.t = self.t, self.t + 1_000_000
        return t


def _send_windows(windows: list[MessageBatch], clock: _Clock, stop_at: int, most: int,
                  stall_at: int | None = None) -> tuple[bool, list[tuple[int, int, int]], list[int]]:
    """``send_windows`` over ``windows``: whether it stopped behind, each send (first msg_id
    of its window, rows i, j), and the first msg_id of each window kept unsent."""
    sends: list[tuple[int, int, int]] = []
    kept: list[int] = []

    def begin(batch: MessageBatch) -> Any:
        first = int(batch.msg_id[0])

        async def send_rows(i: int, j: int) -> None:
            sends.append((first, i, j))
            if stall_at == first + i:  # this send takes 30 ms
                clock.t += 30_000_000

        return send_rows

    behind = asyncio.run(send_windows(iter(windows), stop_at, most, clock, begin,
                                      lambda b: kept.append(int(b.msg_id[0])), lambda: False, lambda: False))
    return behind, sends, kept


def test_the_rows_due_when_the_sender_wakes_leave_together_at_most_most_at_once() -> None:
    # Rows due at 0..4 ms; the sender first wakes at 3.5 ms, each wake 1 ms after the last:
    # at 3.5 ms rows 0-3 are due, two go (most = 2); at 4.5 ms rows 2-4, two go; then row 4.
    behind, sends, kept = _send_windows([_batch(0, 5)], _Clock(3_500_000), 100_000_000, 2)
    assert sends == [(0, 0, 2), (0, 2, 4), (0, 4, 5)]
    assert not behind and kept == []


def test_a_sender_behind_at_the_run_end_stops_and_keeps_the_windows_meant_before_it() -> None:
    # Windows at 0-4, 5-9 and 10-14 ms; the run ends at 12 ms. The send of row 2 stalls 30 ms:
    # row 3 (due 3 ms) finds 33 ms, past 12 ms + the 10 ms grace, so the sending stops; the
    # window 5-9 and the one 10-14 (meant partly before the end) are kept unsent, none after.
    behind, sends, kept = _send_windows([_batch(0, 5), _batch(5, 5), _batch(10, 5), _batch(15, 5)],
                                        _Clock(0), 12_000_000, 10, stall_at=2)
    assert sends == [(0, 0, 1), (0, 1, 2), (0, 2, 3)]
    assert behind and kept == [5, 10]


def test_a_server_that_exits_at_start_because_its_port_is_taken_names_the_port(tmp_path: Path) -> None:
    """Its port taken between ``free_port``'s check and its own bind, a server exits saying
    so in its log: the error names 127.0.0.1:PORT as in use, not only the exit code."""
    port = free_port()
    said = f"bind: Address already in use 127.0.0.1:{port}"
    server = ManagedServer("taken", [sys.executable, "-c", f"import sys; print({said!r}); sys.exit(1)"], port,
                           tmp_path / "servers", 5.0)
    with pytest.raises(TargetError) as caught:
        server.start()
    assert str(caught.value).startswith(f"taken exited at start (code 1): 127.0.0.1:{port} was in use (another "
                                        "process listens on it); run again for another port; see "), caught.value
    other = ManagedServer("other", [sys.executable, "-c", "import sys; sys.exit(3)"], free_port(),
                          tmp_path / "servers", 5.0)
    with pytest.raises(TargetError, match=r"^other exited at start \(code 3\); see "):
        other.start()


# A server that rewrites a file in place, as anvil writes its state: truncated, half written,
# a pause, the rest. A kill at a moment drawn at random lands mid-write 19 times in 20.
_WRITES_IN_PLACE = """
import json, socket, sys, time
listener = socket.socket()
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen()
text = json.dumps({"blocks": list(range(2000))})
while True:
    with open(sys.argv[2], "w") as out:
        out.write(text[:len(text) // 2])
        out.flush()
        time.sleep(0.019)
        out.write(text[len(text) // 2:])
    time.sleep(0.001)
"""


def _whole(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except ValueError:
        return False
    return True


def test_a_crash_of_a_server_that_writes_a_file_in_place_lands_while_the_file_is_whole(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    for attempt in range(5):
        port = free_port()
        server = ManagedServer("writer", [sys.executable, "-c", _WRITES_IN_PLACE, str(port), str(state)], port,
                               tmp_path / "servers", 30.0, whole=lambda: _whole(state))
        server.start()
        try:
            deadline = time.monotonic() + 30
            while not state.is_file():
                assert time.monotonic() < deadline, "the server wrote no file"
                time.sleep(0.01)
            time.sleep(0.05 * attempt)
            held_s = server.kill()
        finally:
            server.stop()
        assert _whole(state), (attempt, held_s)
        assert server.process is not None and server.process.returncode == -signal.SIGKILL


def test_a_crash_waits_for_a_whole_file_a_bounded_time_then_kills_anyway(tmp_path: Path) -> None:
    port = free_port()
    never = tmp_path / "never.json"
    server = ManagedServer("stuck", [sys.executable, "-c", "import socket, sys, time; s = socket.socket(); "
                                     f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"], port,
                           tmp_path / "servers", 30.0, whole=lambda: _whole(never))
    never.write_text('{"cut": ')
    server.start()
    try:
        held_s = server.kill()
    finally:
        server.stop()
    assert held_s >= 2.0
    assert server.process is not None and server.process.returncode == -signal.SIGKILL
