"""What every process msgstorm starts needs to know of its host: the CPUs it may use, how
to end with its parent, how to send an error back to it, and how to reach the Ray cluster
its sweeps and distributed runs place their work on.

Place in the pipeline: at the bottom, importing nothing of msgstorm, so the simulator's
compile helpers, the live servers, proxies and recorders, and the sweep's workers all take
these from one place rather than each asking the OS its own way.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import traceback
from pathlib import Path

__all__ = ["connect_ray", "die_with_parent", "picklable_error", "usable_cpus"]

_PR_SET_PDEATHSIG = 1  # prctl(2)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity where the OS keeps one (a container's
    or ``taskset``'s limit), else every CPU of the machine; at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - not on Linux


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent ends (Linux's
    ``PR_SET_PDEATHSIG``), so a SIGKILLed ``msgstorm`` leaves no server, proxy, recording or
    worker running. Called first thing in a child, or as ``preexec_fn`` between fork and
    exec. Through ctypes: the standard library has no ``prctl``. Elsewhere it does nothing,
    and a child outlives a killed parent.

    The request holds from the moment it is made: a parent that ended before it goes
    unnoticed, so a caller that must not outlive it compares ``os.getppid()`` with the
    parent's pid afterwards."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def picklable_error(error: BaseException, where: str) -> BaseException:
    """``error`` as a child process sends it to its parent: with the child's traceback as a
    note (``where``: "the recording's process"), or a ``RuntimeError`` saying what it was
    where it does not survive pickling (an exception whose arguments are not its fields)."""
    trace = "".join(traceback.format_exception(error))
    try:
        error.add_note(f"in {where}:\n{trace}")
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - sent as text
        return RuntimeError(f"{type(error).__name__}: {error}\nin {where}:\n{trace}")


def connect_ray(address: str | None) -> None:
    """This process a driver of the Ray cluster at ``address`` (``auto``, host:port,
    ``ray://``; None: the one ``RAY_ADDRESS`` names, or one started here), unless it is one.

    A cluster ``ray start`` began on a machine holding ``~/.ray/auth_token`` asks for that
    token (Ray 2.5x and later), but Ray sends it from a driver given an address only under
    ``RAY_AUTH_MODE=token``; the refusal then reads as a cluster not found, so it says so."""
    import logging

    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except ConnectionError as error:
        token = Path.home() / ".ray" / "auth_token"
        if address not in (None, "auto") and "RAY_AUTH_MODE" not in os.environ and token.exists():
            raise ConnectionError(
                f"{error}; if the cluster was started with `ray start` on a machine holding {token}, it asks "
                "for that token, which Ray sends from a driver given an address only with RAY_AUTH_MODE=token "
                "set: set it (and the same token file here) and try again") from error
        raise
