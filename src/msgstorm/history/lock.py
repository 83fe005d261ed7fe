"""One writer per directory: the lock a run holds on its run directory and a sweep on its ``--out``.

Place in the pipeline: taken before anything is written into the directory (``runner.run``,
``msgstorm run``, ``sweep/manifest.py``) and held until the last file is written. Two
processes writing one directory mix their histories (a run's parts beside another's, one
removing what the other wrote with ``--overwrite``), so the second is refused at once.

``exclusive(path)`` holds an exclusive ``flock`` on the file ``path`` (created if need be)
and writes the holder's process id into it. The kernel drops the lock when the holder dies,
however it dies, so a file left behind by a killed holder never blocks anyone. The file is
left in place on release: removing it would let a process that opened it just before hold a
lock on a file no one else can see.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LockHeld", "exclusive"]


class LockHeld(Exception):
    """Another process holds the lock at ``path``; ``holder`` is its process id as it wrote it
    (or "another process" when it had not written it yet)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"process {holder} holds {path}")
        self.path = path
        self.holder = holder


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the lock at ``path`` while the block runs: ``LockHeld`` at once when another
    process holds it (this one never waits), ``OSError`` when the file cannot be opened."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "another process"
            raise LockHeld(path, holder) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # the lock goes with the descriptor
