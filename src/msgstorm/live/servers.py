"""Servers msgstorm starts itself for a live run, and stops on every way out.

Place in the pipeline: under the live drivers. ``ManagedServer`` starts one server
process on a free loopback port with its data and log under ``RUN_DIR/servers/``, waits
until it accepts connections, and stops it (SIGTERM, then SIGKILL) when the run ends, fails
or is interrupted. The child asks the kernel to kill it if msgstorm itself dies (Linux
``PR_SET_PDEATHSIG``, through ``processes.die_with_parent``), so even a SIGKILLed run leaves
no server behind. Every server still running is stopped at interpreter exit too.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from msgstorm.errors import TargetError
from msgstorm.processes import die_with_parent, usable_cpus
from msgstorm.scenario.refs import is_loopback_url

__all__ = [
    "BindError",
    "ManagedServer",
    "ServerError",
    "cannot_bind",
    "free_port",
    "go_server_cpus",
    "go_server_env",
    "require_loopback",
]

_RUNNING: set[ManagedServer] = set()
_FIRST_PORT = 20000  # free_port's ports: from here to the ephemeral range's start
_PORTS = random.SystemRandom()
_HANDED: set[int] = set()  # ports free_port has given out in this process
# How long a crash may hold a server's SIGKILL while a file it writes in place is half written.
_WHOLE_WAIT_S = 2.0


class ServerError(TargetError):
    """A server could not be found, started or reached."""


class BindError(ServerError):
    """An address msgstorm listens on itself (ZeroMQ's publisher, the fault proxy) could not
    be bound: the message names it as host:port, and whether another process holds it."""


def cannot_bind(address: str, error: OSError | Exception) -> BindError:
    """``cannot bind ADDRESS: why``, the address as given (``tcp://127.0.0.1:5555``,
    ``127.0.0.1:5555``); a port in use is said as such, with what to do."""
    code = getattr(error, "errno", None)
    if code == errno.EADDRINUSE:
        where = urlsplit(address).netloc if "://" in address else address
        return BindError(f"cannot bind {address}: {where} is in use (another process listens on it): stop that "
                         "process or choose another port")
    said = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return BindError(f"cannot bind {address}: {said}")


# What a server's log says when its port was taken before it could bind it (nats-server,
# redis-server, mosquitto, Kafka's JVM, anvil, cometbft: each words it a little differently).
_IN_USE_WORDS = ("address already in use", "address in use", "eaddrinuse")
_LOG_TAIL_BYTES = 64 * 1024


def said_address_in_use(log: Path) -> bool:
    """Whether the end of a server's log says its address was in use."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(log.stat().st_size - _LOG_TAIL_BYTES, 0))
            tail = handle.read().decode("utf-8", errors="replace").lower()
    except OSError:
        return False
    return any(words in tail for words in _IN_USE_WORDS)


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections (Linux ``ip_local_port_range``)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _wait_stopped(pid: int, timeout_s: float = 1.0) -> None:
    """Until every thread of ``pid`` is stopped (a SIGSTOP takes effect as each thread
    leaves the kernel: one mid-write finishes that write first), or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    tasks = Path(f"/proc/{pid}/task")
    while time.monotonic() < deadline:
        try:
            stats = [(task / "stat").read_text() for task in tasks.iterdir()]
            states = [stat.rsplit(")", 1)[1].split()[0] for stat in stats]
        except (OSError, IndexError):
            return  # gone, or no /proc: nothing more to wait for
        if all(state in "tTZX" for state in states):
            return
        time.sleep(0.001)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now, for a server (or proxy listener) to
    bind soon after. Drawn below the kernel's ephemeral range, where no outgoing connection
    is ever placed: a port from ``bind(0)`` lies inside that range, and a server's own
    outgoing connections (a cluster's routes) could take it in the moment before the server
    that was given it binds it. Never the same port twice in one process (a cluster is given
    several before any binds)."""
    low, _ = _ephemeral_range()
    first = _FIRST_PORT if low - _FIRST_PORT >= 1000 else None
    for _ in range(200):
        if first is None:  # an unusual range: the kernel's choice
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
        else:
            port = _PORTS.randrange(first, low)
        if port not in _HANDED and _bindable(port):
            _HANDED.add(port)
            if len(_HANDED) > 2000:  # long-lived processes: forget the oldest half's worth
                _HANDED.clear()
                _HANDED.add(port)
            return port
    raise ServerError("no free TCP port on 127.0.0.1")


def require_loopback(url: str, allow_remote: bool) -> None:
    """Refuse a load target off this machine unless the user said so (``live.allow_remote``)."""
    if not allow_remote and not is_loopback_url(url):
        raise ServerError(f"{url}: not a loopback address; load goes only to 127.0.0.0/8 or ::1 unless "
                          "live.allow_remote = true")


def check_user_url(url: str, parse: Callable[[str], object], target: str, example: str, allow_remote: bool) -> None:
    """A server the user runs (``live.url``): a URL ``parse`` reads (it raises ValueError
    otherwise), on loopback unless allowed; ServerError naming the target and an example."""
    try:
        parse(url)
    except ValueError as error:
        raise ServerError(f"{error}: live.url for target \"{target}\" is the broker's address, e.g. {example}") from error
    require_loopback(url, allow_remote)


def go_server_env() -> dict[str, str]:
    """The environment of a Go server (nats-server) msgstorm starts beside its generator:
    GOMAXPROCS one below the CPUs this process may use, unless the user set GOMAXPROCS.
    The generator keeps one core busy (it spins to send on time); a Go runtime that also
    schedules on that core is preempted at the kernel's tick (4 ms at HZ=250), which shows
    as a p99 latency of the co-location, not of the broker."""
    if "GOMAXPROCS" in os.environ:
        return {}
    return {"GOMAXPROCS": str(max(1, usable_cpus() - 1))}


def go_server_cpus() -> int:
    """How many CPUs a Go server started with ``go_server_env`` runs on at once: its
    GOMAXPROCS (the user's, else the one ``go_server_env`` sets), at most the CPUs this
    process may use (Go does not cap GOMAXPROCS there, but no more can run at once)."""
    cpus = usable_cpus()
    if "GOMAXPROCS" not in os.environ:
        return int(go_server_env()["GOMAXPROCS"])
    own = os.environ["GOMAXPROCS"].strip()
    # The Go runtime ignores a value it cannot read (empty, 0, not a number) and uses every CPU.
    return min(int(own), cpus) if own.isdigit() and int(own) > 0 else cpus


class ManagedServer:
    """One server process: ``start()`` returns once its port accepts connections."""

    def __init__(self, name: str, argv: list[str], port: int, directory: Path, start_timeout_s: float,
                 env: dict[str, str] | None = None, cpus: int | None = None,
                 whole: Callable[[], bool] | None = None) -> None:
        self.name = name
        # Whether the files it writes in place (truncated, then written) are whole now: a
        # crash's SIGKILL lands only then (``kill``), as a restart reads them back.
        self.whole = whole
        # How many CPUs the server's work can run on at once (None: not known); the run's
        # server_start event says it, and calibration's utilisation law saturates there.
        self.cpus = cpus
        self.env = env  # added to this process's environment
        self.argv = argv
        self.port = port
        self.directory = directory
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        # It had exited on its own (killed, crashed) when msgstorm came to stop it, after it
        # had listened (one that fails at start is an error of its own).
        self.exited_early = False
        self._listened = False
        # When it was started (time.time_ns): its log is appended to run after run in one directory.
        self.started_wall_ns = 0
        # Process faults (``live/nemesis.py``): paused now (SIGSTOP), and stopped on purpose
        # (a kill or a restart of the schedule's, not an exit of its own).
        self.paused = False
        self.stopped_by_fault = False
        self.pids: list[int] = []  # every process it ran as (a restart is a new one)
        self._exits_told: set[int] = set()  # pids whose exit ``exit_unasked`` has told

    @staticmethod
    def program(*names: str, install: str) -> str:
        """The path of the first of ``names`` on PATH (or beside this Python), else a
        ServerError saying how to install it."""
        beside = Path(sys.executable).parent
        for name in names:
            found = shutil.which(name) or (str(beside / name) if (beside / name).is_file() else None)
            if found:
                # Absolute: the server starts in its own directory, where a PATH entry such as
                # ``bin`` would point elsewhere.
                return os.path.abspath(found)
        raise ServerError(f"{names[0]} not found; install it: {install}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        self.spawn()
        self.wait_listening()

    def spawn(self) -> None:
        """Start the process (``start`` also waits for its port). Call it on a thread that
        outlives the server: the kernel's parent-death signal follows the thread that forked
        it, so a server spawned from a worker thread would be killed when that thread ends."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started_wall_ns = time.time_ns()
        log = open(self.directory / f"{self.name}.out", "ab")  # noqa: SIM115 - the child holds it
        try:
            # A group of its own: a terminal's Ctrl-C reaches msgstorm, which stops the
            # server after the run's end is written, not the server mid-run (it would look
            # like a crash, its clients cut off). PDEATHSIG still ends it if msgstorm dies.
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env={**os.environ, **self.env} if self.env else None,
                                            cwd=self.directory, preexec_fn=die_with_parent, process_group=0)
        finally:
            log.close()
        _RUNNING.add(self)
        self.pids.append(self.process.pid)
        self.stopped_by_fault = False
        self.paused = False
        # Written whole or not at all (a temporary file renamed): whoever watches for the file
        # (a tool that pauses the server, a test) never reads it half written.
        pid_file = self.directory / f"{self.name}.pid"
        partial = pid_file.with_suffix(".pid.tmp")
        partial.write_text(str(self.process.pid), encoding="utf-8")
        partial.replace(pid_file)

    def _check_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            self.stop()
            log = self.directory / (self.name + ".out")
            if said_address_in_use(log):  # taken between free_port's check and the server's bind
                raise ServerError(f"{self.name} exited at start (code {self.returncode}): 127.0.0.1:{self.port} was in "
                                  f"use (another process listens on it); run again for another port; see {log}")
            raise ServerError(f"{self.name} exited at start (code {self.returncode}); see {log}")

    def listens_now(self) -> bool:
        """Whether its port accepts a connection now; a ServerError if it exited."""
        self._check_running()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                self._listened = True
                return True
        except OSError:
            return False

    async def accepts_now(self) -> bool:
        """``listens_now`` without blocking the event loop (a restart inside a run)."""
        self._check_running()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 0.2)
        except (OSError, TimeoutError):
            return False
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass  # closed by the server first: it accepted, which is all this asks
        self._listened = True
        return True

    def wait_listening(self) -> None:
        """Until its port accepts connections (``start_timeout_s``), else a ServerError."""
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.listens_now():
                return
            time.sleep(0.02)
        self.stop()
        raise ServerError(f"{self.name} did not listen on 127.0.0.1:{self.port} within {self.start_timeout_s:g} s")

    def exit_unasked(self) -> int | None:
        """The exit code of this server's process when it has exited on its own since it
        listened (killed from outside, crashed: not stopped by msgstorm or by a fault), the
        first time it is asked; else None. ``exited_early`` is set then."""
        process = self.process
        if (process is None or not self._listened or self.stopped_by_fault or self.returncode is not None
                or process.pid in self._exits_told or process.poll() is None):
            return None
        self._exits_told.add(process.pid)
        self.exited_early = True
        return process.returncode

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; a paused (SIGSTOPped) server is
        continued first so it can exit. Safe to call twice."""
        process = self.process
        if process is None:
            return
        if self._listened and self.returncode is None and process.poll() is not None and not self.stopped_by_fault:
            self.exited_early = True
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            except ProcessLookupError:
                pass
        self.returncode = process.returncode
        _RUNNING.discard(self)


    # --- process faults (``live/nemesis.py``) -------------------------------------------

    def pause(self) -> None:
        """SIGSTOP: the server stops running, its sockets stay open (a GC pause, a VM stall)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def kill(self) -> float:
        """SIGKILL (a crash) and wait for the exit; ``start`` brings it back on its port and data.
        With ``whole``, the kill lands while the files it writes in place are whole: it is
        stopped (SIGSTOP) and its files read; half written, it runs a few milliseconds more, for
        at most ``_WHOLE_WAIT_S`` (a kill mid-write would leave a file it cannot start from).
        The seconds the kill was held for that."""
        process = self.process
        if process is None or process.poll() is not None:
            return 0.0
        self.stopped_by_fault = True
        held_s = 0.0
        if self.whole is None:
            os.kill(process.pid, signal.SIGCONT)
        else:
            held_s = self._stop_whole(process.pid)  # killed stopped: it writes nothing more
        process.kill()
        process.wait()
        self.returncode = None  # not stopped by ``stop``: the run's end still stops what runs then
        self.paused = False
        return held_s

    def _stop_whole(self, pid: int) -> float:
        """Stop ``pid`` at a moment ``whole`` holds (or after ``_WHOLE_WAIT_S``); the seconds
        that took."""
        assert self.whole is not None
        started = time.monotonic()
        while True:
            os.kill(pid, signal.SIGSTOP)
            _wait_stopped(pid)
            if self.whole() or time.monotonic() - started > _WHOLE_WAIT_S:
                return time.monotonic() - started
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.005)

    def terminate(self, timeout_s: float = 10.0) -> None:
        """A graceful stop (SIGTERM; SIGKILL after ``timeout_s``); ``start`` brings it back."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        self.stopped_by_fault = True
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.paused = False


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop(timeout_s=2.0)
