"""The live recording in a process of its own (``live/apart.py``): it runs in a child, its
progress snapshots reach the caller's callback, and how it ended (done, failed, interrupted,
killed) comes back as it would from a call in one process."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
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


_HANDED_BACK = """
import sys
import numpy as np
from msgstorm.heap import keep_freed_memory
from msgstorm.live.apart import record_apart

def rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

def freed_kb(out: str, mb: int) -> None:
    column = np.ones(mb << 17, dtype=np.int64)  # a window's column: 8 MB at a million messages
    held = rss_kb()
    del column
    with open(out, "a") as f:
        f.write(f"{held - rss_kb()}\\n")

keep_freed_memory()  # as the command sets it
freed_kb(sys.argv[1], 8)  # here: the freed block is kept in the heap
# The recording's process, a larger window (a block the size of the one freed above
# would be served from the heap it inherited):
record_apart(lambda progress: freed_kb(sys.argv[1], 12), None)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the setting is glibc's (mallopt)")
def test_the_recording_hands_a_freed_window_sized_block_back_where_the_caller_keeps_it(tmp_path: Path) -> None:
    # What freeing a block of 8 or 12 MB gives back to the kernel (VmRSS before and after
    # the free): nothing where the command keeps freed memory for reuse, the whole block in
    # the recording's process, whose peak is what it holds (``heap.map_large_blocks``).
    out = tmp_path / "freed"
    subprocess.run([sys.executable, "-c", _HANDED_BACK, str(out)], check=True, capture_output=True, text=True)
    kept_kb, handed_back_kb = (int(line) for line in out.read_text().split())
    assert kept_kb < 1024, kept_kb
    assert handed_back_kb > 11 * 1024, handed_back_kb
