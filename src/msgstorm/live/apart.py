"""A live run's recording in a process of its own, so that its analysis starts clean.

Place in the pipeline: ``runner.run`` -> **record_apart** -> (in a child process)
``LiveTarget`` / ``ChainTarget`` -> ``HistoryWriter`` -> ``RUN_DIR/history``; then, back in
the calling process, ``read_history`` -> analysis. The history is the only thing the two
halves share, as it is for ``msgstorm report``.

Why: a live run leaves its process larger than it found it (the wire clients' compiled
code, the allocator's scattered leftovers of millions of receipts and sends: 130-170 MB
that ``malloc_trim`` cannot hand back), and the analysis of the same run in the same
process added its own peak on top of that. The recording runs in a child forked from this
process (``os.fork``: it shares the interpreter, the imported modules and the scenario
without copying them, and starts at once), writes the history and exits; every page it
touched goes back to the kernel with it, and the analysis starts from what this process
held before the run. The child's peak is the recording's alone.

What crosses between the two: the child's progress snapshots (pickled through a pipe to a
thread here that hands them to ``progress``), signals (the child is in a process group of
its own, so a terminal's Ctrl-C reaches this process once, and each SIGINT or SIGTERM this
process gets is passed on to the child, whose target settles the run as it would in one
process: the first stops the run, the second ends it at once), and how the recording
ended (an exception is pickled back and raised here; an interruption the target did not
settle itself is raised here as ``KeyboardInterrupt``).

Where ``os.fork`` is missing (Windows), or this is not the main thread (whose signal
handlers are the ones to pass on), the recording runs in this process, as before.
Written with ``os.fork`` and pipes rather than ``multiprocessing``: its ``fork`` context
would add a manager of its own for nothing the two halves need, and its ``spawn`` would
import everything again and hand the scenario over by pickling.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from msgstorm.errors import ExitCode
from msgstorm.heap import map_large_blocks
from msgstorm.processes import die_with_parent, picklable_error
from msgstorm.progress import Progress, ProgressSnapshot

__all__ = ["RecordingEnded", "record_apart"]

_LENGTH = struct.Struct("<Q")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How the child's recording ended, sent back as (outcome, detail).
_DONE, _INTERRUPTED, _FAILED = "done", "interrupted", "failed"


class RecordingEnded(RuntimeError):
    """The recording's process ended without saying how its run ended (killed, out of
    memory): the history keeps what was flushed before."""


def record_apart(  # noqa: C901
    record: Callable[[Progress | None], None], progress: Progress | None) -> None:
    """Run ``record(progress)`` (the live run and its recording: it writes the history and
    returns nothing) in a child process, and return when it has ended; raise what it raised."""
    if not hasattr(os, "fork") or threading.current_thread() is not threading.main_thread():
        record(progress)
        return
    outcome_read, outcome_write = os.pipe()
    progress_read, progress_write = os.pipe() if progress is not None else (-1, -1)
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    # The signals are passed on from before the fork: a SIGINT or SIGTERM that comes while
    # the child starts is held until its pid is known, never taken by this process's own
    # handler (which would stop it while the child records on).
    forwarded = 0
    held: list[int] = []
    child = 0

    def send(signum: int) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:  # it has just ended
            pass

    def pass_on(signum: int, frame: FrameType | None) -> None:
        nonlocal forwarded
        forwarded += 1
        if child <= 0:
            held.append(signum)
        else:
            send(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in _STOP_SIGNALS}
    pid = os.fork()
    if pid == 0:  # the child: never returns
        inherited = len(held)  # those are the parent's to pass on
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _die_with(parent)
        map_large_blocks()  # this process's peak is what the recording holds (``heap.py``)
        os.close(outcome_read)
        if progress_read >= 0:
            os.close(progress_read)
        # One passed on before the handlers above were back stops the run before it starts.
        _record_in_child(record, outcome_write, progress_write if progress is not None else None,
                         stopped=lambda: len(held) > inherited)
    child = pid
    for signum in held:
        send(signum)
    try:
        os.setpgid(pid, pid)  # as the child does: whichever runs first, no Ctrl-C reaches both
    except OSError:  # it has already ended
        pass
    os.close(outcome_write)
    reader = None
    if progress is not None:
        os.close(progress_write)
        reader = _HandOn(progress_read, progress)
        reader.start()

    try:
        sent = _read_all(outcome_read)  # until the child's end closes the pipe
        _, status = os.waitpid(pid, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(outcome_read)
        if reader is not None:
            reader.join()
    if reader is not None and reader.failure is not None:
        raise reader.failure
    if not sent:
        if forwarded:  # a second signal ends the child at once, as it ends a run in one process
            raise KeyboardInterrupt
        raise RecordingEnded(f"the live run's recording process ended without finishing ({_status_text(status)}); "
                             "the history keeps what was flushed before")
    outcome, detail = pickle.loads(sent)
    if outcome == _INTERRUPTED:
        raise KeyboardInterrupt
    if outcome == _FAILED:
        raise detail


def _record_in_child(record: Callable[[Progress | None], None], outcome_write: int, progress_write: int | None,
                     stopped: Callable[[], bool]) -> None:
    """The child's whole life: record, say how it ended, exit without the parent's cleanups
    (its ``atexit`` hooks and open files are the parent's to run and close)."""
    sent: tuple[str, Any] = (_DONE, None)
    try:
        os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent only, which passes it on once
        if stopped():
            raise KeyboardInterrupt
        record(_Forward(progress_write) if progress_write is not None else None)
    except KeyboardInterrupt:
        sent = (_INTERRUPTED, None)
    except BaseException as error:  # noqa: BLE001 - raised in the parent
        sent = (_FAILED, picklable_error(error, "the recording's process"))
    finally:
        try:
            data = pickle.dumps(sent)
            _write_all(outcome_write, data)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(ExitCode.OK)  # how it ended went through the pipe


def _die_with(parent: int) -> None:
    """End this child when its parent ends, as the run would have ended with it in one
    process: a SIGKILL of ``msgstorm`` leaves no recording going on unseen."""
    die_with_parent()
    if os.getppid() != parent:  # the parent ended before the call
        os._exit(ExitCode.INTERRUPTED)  # the run it belonged to is gone


class _Forward:
    """The child's progress callback: each snapshot, pickled, through the pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        data = pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL)
        _write_all(self.fd, _LENGTH.pack(len(data)) + data)


class _HandOn(threading.Thread):
    """The parent's thread: every snapshot the child sends, to ``progress``, until the pipe
    closes. A callback that fails does not stop the reading (the child would wait on a full
    pipe): the first failure is kept for the parent to raise once the child has ended."""

    def __init__(self, fd: int, progress: Progress) -> None:
        super().__init__(name="msgstorm-progress", daemon=True)
        self.fd = fd
        self.progress: Progress | None = progress
        self.failure: BaseException | None = None

    def run(self) -> None:
        with os.fdopen(self.fd, "rb") as pipe:
            while True:
                head = pipe.read(_LENGTH.size)
                if len(head) < _LENGTH.size:
                    return
                data = pipe.read(_LENGTH.unpack(head)[0])
                if self.progress is None:
                    continue
                try:
                    self.progress(pickle.loads(data))
                except Exception as error:  # noqa: BLE001 - raised at the end
                    self.failure, self.progress = error, None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
