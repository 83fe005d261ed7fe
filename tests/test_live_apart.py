"""The live recording in a process of its own (``live/apart.py``): it runs in a child, its
progress snapshots reach the caller's callback, and how it ended (done, failed, interrupted,
killed) comes back as it would from a call in one process."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from msgstorm.errors import TargetError
from msgstorm.live.apart import RecordingEnded, record_apart
from msgstorm.progress import Progress, ProgressSnapshot


def _snapshot(sent: int) -> ProgressSnapshot:
    return ProgressSnapshot(t_ns=sent, end_ns=10, sent=sent, emitted=sent, settled=0, committed=0, dropped=0,
                            rejected=0, queue_depth=0, base_fee=None, faults_active=0, leader="", target="nats")


def test_the_recording_runs_in_another_process_and_its_progress_comes_back(tmp_path: Path) -> None:
    seen: list[int] = []

    def record(progress: Progress | None) -> None:
        (tmp_path / "pid").write_text(str(os.getpid()))
        assert progress is not None
        for sent in range(50):
            progress(_snapshot(sent))

    record_apart(record, lambda snapshot: seen.append(snapshot.sent))
    assert int((tmp_path / "pid").read_text()) != os.getpid()
    assert seen == list(range(50)), "every snapshot, in order"


def test_without_progress_the_child_gets_none(tmp_path: Path) -> None:
    def record(progress: Progress | None) -> None:
        (tmp_path / "none").write_text(str(progress is None))

    record_apart(record, None)
    assert (tmp_path / "none").read_text() == "True"


def test_an_error_in_the_recording_is_raised_here_with_its_traceback() -> None:
    def record(progress: Progress | None) -> None:
        raise TargetError("nats-server did not start")

    with pytest.raises(TargetError, match="nats-server did not start") as raised:
        record_apart(record, None)
    assert any("in the recording's process" in note and "record" in note for note in raised.value.__notes__)


def test_an_error_that_does_not_pickle_comes_back_as_what_it_said() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}+{b}")

    def record(progress: Progress | None) -> None:
        raise Odd(1, 2)

    with pytest.raises(RuntimeError, match=r"Odd: 1\+2"):
        record_apart(record, None)


def test_an_interruption_the_recording_did_not_settle_is_raised_here() -> None:
    def record(progress: Progress | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        record_apart(record, None)


def test_a_recording_killed_is_said_to_have_ended_unfinished() -> None:
    def record(progress: Progress | None) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(RecordingEnded, match="SIGKILL"):
        record_apart(record, None)


def test_a_signal_to_this_process_is_passed_on_to_the_recording_once(tmp_path: Path) -> None:
    """SIGTERM to the caller reaches the child (its handler there says so in a file), once."""
    ready = tmp_path / "ready"

    def record(progress: Progress | None) -> None:
        got: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
        ready.write_text("")
        while not got:
            signal.pause()
        (tmp_path / "got").write_text(str(len(got)))

    def send_when_ready() -> None:
        while not ready.exists():
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send_when_ready)
    sender.start()
    record_apart(record, None)
    sender.join()
    assert (tmp_path / "got").read_text() == "1"


def test_a_signal_the_moment_the_recording_starts_is_passed_on_not_taken_here(tmp_path: Path) -> None:
    """The child signals its parent as its first act: the parent's handler is in place
    before the fork, so the signal comes back to the child, and this process lives on."""

    def record(progress: Progress | None) -> None:
        got: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
        os.kill(os.getppid(), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "got").write_text(str(len(got)))

    record_apart(record, None)
    assert (tmp_path / "got").read_text() == "1"
