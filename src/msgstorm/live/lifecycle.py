"""The one run loop of every live target: brokers, an EVM node, CometBFT validators.

Place in the pipeline: ``runner`` -> a live target (``live/target.py``'s ``LiveTarget``,
``live/chain/target.py``'s ``ChainTarget``, ``live/chain/comet_target.py``'s ``CometTarget``)
-> **Lifecycle.run** -> the target's steps -> history. What a live run does, and in which
order, is written here once; a target says only how each step is done for what it drives.

The sequence (``run``, then ``_main`` on the event loop):

1. ``run_start`` (``_run_start_detail``), the servers started (``_start_servers``, one
   ``server_start`` each), blocking, before the event loop runs.
2. On the loop (``live/send_loop.py``): SIGINT and SIGTERM cancel the run (``live/stopping.py``);
   the clients connect (``_open``: the fault proxy first, then the clients; a failure is a
   ``TargetError``, nothing sent).
3. The schedule's clock starts (connecting is not part of the run's time; ``_clock_started``).
4. While the traffic is sent open loop (``_send``): the scenario's faults at their times
   (``nemesis.run``), the CPU time of msgstorm and of every process it started on a grid of
   ``run.sample_interval`` (``_sampled_processes``), a progress snapshot every
   ``_PROGRESS_S`` (``_snapshot``), and the target's own watchers (``_during``).
5. The faults still in force end (``_heal``), then what the clients buffer goes out
   (``_settle``) and the drain waits, up to ``run.drain``, for what was sent to arrive
   (``_drained``, polled every ``drain_poll_s``; a node lost for good ends it, ``node_lost_at``).
6. The run ends (``t_run_end``, the events' time axis ends there): the last CPU sample, the
   read-back and the target's reads after the drain (``_after``), the final snapshot.
7. The clients close (``_close``; the fault proxy after the clients that go through it).
8. Back off the loop, on every way out: the nemesis's last resort (``kill``), the servers
   stopped (``_stop_servers``), one ``server_stop`` each (and a ``server_start`` for one
   spawned whose start was cut short, so every stop has its start), the ``cleanup`` report
   (``_child_processes``: processes beside the servers). A signal is ``interrupted``; a
   ``TargetError`` is a ``client_error`` of client ``start`` and is raised.

``finish`` (the history) is the target's own; its first and last steps are here
(``_end_history``, ``_history_written``). Beside the class: ``send_windows``, the open-loop
send of the targets that send a window's due rows in one JSON-RPC batch (an EVM node,
validators; a broker's generator is ``live/sending.py``'s, with bursts and generator
processes), ``keep_unsent`` (the windows a sender stopped behind never reads, kept unsent)
and ``cancelled``.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import itertools
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from msgstorm.errors import TargetError
from msgstorm.history.events import EventKind
from msgstorm.history.writer import HistoryWriter
from msgstorm.live.cpu import MIN_INTERVAL_S, CpuSampler
from msgstorm.live.drivers.base import STOP_GRACE_NS
from msgstorm.live.event_log import EventLog
from msgstorm.live.nemesis import Nemesis, cleanup_report
from msgstorm.live.pacing import due_through, wait_until
from msgstorm.live.recorder import PUBLISHER
from msgstorm.live.send_loop import run_send_loop
from msgstorm.live.servers import ManagedServer
from msgstorm.live.stopping import STOP_SIGNALS, stop_on_signals
from msgstorm.progress import Progress, ProgressSnapshot
from msgstorm.scenario.schema import Scenario
from msgstorm.traffic.generate import MessageBatch

__all__ = ["START_FAILED", "Lifecycle", "SendRows", "cancelled", "keep_unsent", "send_windows"]

# A progress snapshot (the terminal bar, Prometheus) this often, in wall time.
_PROGRESS_S = 0.25
# The ``client`` of the ``client_error`` event of a run that never started.
START_FAILED = "start"

# Send rows ``i`` to ``j - 1`` of the window being sent, due now (``send_windows``).
SendRows = Callable[[int, int], Awaitable[None]]


class Lifecycle(ABC):
    """A live target's run, in the order the module docstring gives; ``finish`` writes what
    happened. ``nodes`` and ``interrupted`` are what the run row records."""

    # The drain looks at what has arrived this often.
    drain_poll_s = 0.01

    def __init__(self, scenario: Scenario, writer: HistoryWriter, run_dir: Path,
                 progress: Progress | None = None) -> None:
        self.scenario = scenario
        self.writer = writer
        # Absolute: servers run in their own directory, so a path they are given on their command
        # line (data, logs) must not be relative to msgstorm's (``--out runs/x`` is).
        self.run_dir = Path(run_dir).resolve()
        self.progress = progress
        self.interrupted = False
        self.start_error: str | None = None  # why the run never started (nothing was sent)
        # The run's end came while the sender was behind its schedule: what it had not sent by
        # then stays unsent (status ``unsent``), never sent late.
        self.stopped_behind = False
        self.t_run_end: int | None = None  # the drain's end: the run's end on its time axis
        # The node or server found gone for good mid-run, on the run's clock: the sending and
        # the drain end there.
        self.node_lost_at: int | None = None
        self._t0 = time.monotonic_ns()
        # The recorder's thread: the one that writes to the history while the run goes.
        self._recording = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="msgstorm-recorder")
        self.log = EventLog(writer, self._recording)  # the events, on disk as they happen
        # The scenario's [[faults]], applied in wall time (``live/nemesis.py``); None without faults.
        self.nemesis: Nemesis | None = None
        self._handlers: dict[int, Any] = {}

    def _now(self) -> int:
        return time.monotonic_ns() - self._t0

    @property
    @abstractmethod
    def nodes(self) -> list[dict[str, str]]:
        """The run row's nodes: the publisher and what the target drove."""

    # --- what a target says: how each step is done -----------------------------------------

    def _traffic(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None
                 ) -> Iterator[MessageBatch]:
        """The traffic to send, before anything starts (a target may add its own to it)."""
        return traffic

    def _run_start_detail(self) -> dict[str, Any]:
        """The ``run_start`` event's detail (the delivery check reads ``fanout`` and ``acks``)."""
        return {"target": self.scenario.target, "consumers": 0, "processes": 1, "fanout": False, "acks": True}

    def _after_run_start(self) -> None:
        """Events that follow ``run_start`` before any server starts."""
        return None  # nothing, unless the target says

    @abstractmethod
    def _start_servers(self) -> list[dict[str, Any]]:
        """Start the servers the run needs (blocking); describe each started (its
        ``server_start`` detail: name, pid, url). A scenario the target cannot run raises
        ``TargetError`` here."""

    @abstractmethod
    def _stop_servers(self) -> list[ManagedServer]:
        """Stop every server started (safe after a failed start); the servers to report."""

    def _child_processes(self) -> list[tuple[str, int | None]]:
        """(name, pid) of the processes msgstorm started beside the servers (consumers,
        generators), which the cleanup checks are gone."""
        return []

    @abstractmethod
    async def _open(self) -> None:
        """Before the clock starts: the fault proxy, then the clients (``TargetError``: no run)."""

    async def _before_schedule(self) -> int:
        """Connected, about to start the schedule: how long ago it should have started (ns).
        Here it starts now (0). A generator of a distributed run waits for the instant every
        generator starts at, and says how late it woke up (``live/distributed.py``)."""
        return 0

    def _clock_started(self) -> None:
        """The schedule's clock has started (``_t0``): what starts with it."""
        return None  # nothing, unless the target says

    def _during(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
        """The target's own tasks while the run goes (cancelled by ``_after``'s caller once it ends)."""
        return []

    @abstractmethod
    async def _send(self, traffic: Iterator[MessageBatch]) -> None:
        """Send the traffic open loop, to the schedule's end (or a node lost for good)."""

    async def _settle(self) -> None:
        """After the faults healed, before the drain: what the clients buffer goes out."""
        return None  # nothing, unless the target says

    @abstractmethod
    def _drained(self) -> bool:
        """Whether everything the drain waits for has come (polled every ``drain_poll_s``)."""

    async def _after(self) -> None:
        """The run has ended (``t_run_end``): reads after the drain (read-back, catch-up)."""
        return None  # nothing, unless the target says

    @abstractmethod
    async def _close(self) -> None:
        """Close every client, on every way out (the fault proxy is closed after it)."""

    @abstractmethod
    def _sampled_processes(self) -> list[tuple[str, int]]:
        """(name, pid) of the processes msgstorm started, whose CPU time is sampled beside its own."""

    @abstractmethod
    def _snapshot(self, final: bool = False) -> ProgressSnapshot:
        """What the progress bar shows now: counts the target keeps, nothing per message."""

    # --- the run ----------------------------------------------------------------------------

    def run(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None = None) -> None:
        """Start the servers, send ``traffic`` (made from ``seed``), drain, read back; the
        servers are stopped, and the cleanup checked, on every way out."""
        traffic = self._traffic(traffic, seed)
        self.log.add((self._now(), EventKind.RUN_START, None, None, self._run_start_detail()))
        self._after_run_start()
        try:
            for described in self._start_servers():
                self.log.add((self._now(), EventKind.SERVER_START, None, None, described))
            self._handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
            run_send_loop(self._main, traffic, self._handlers, lambda: self.interrupted)
        except KeyboardInterrupt:
            self.interrupted = True
            self.log.add((self._now(), EventKind.INTERRUPTED, None, None, None))
        except TargetError as error:
            # Nothing was sent: a server that would not start or died while it started, a
            # client that could not connect, a size the server refuses. The history says so
            # (``History.start_failure``), so the run directory is never read as an empty run.
            self.start_error = str(error)
            self.log.add((self._now(), EventKind.CLIENT_ERROR, None, None,
                          {"client": START_FAILED, "error": self.start_error}))
            raise
        finally:
            if self.nemesis is not None:
                self.nemesis.kill()  # the last resort: its close ran in the event loop unless that failed
            self._cleaned_up(self._stop_servers())

    def _cleaned_up(self, servers: list[ManagedServer]) -> None:
        """One ``server_stop`` a server spawned (and its ``server_start`` when the start was
        cut short), then the ``cleanup`` report: verified, not assumed, that nothing msgstorm
        started still runs or listens."""
        # A server started again by a fault records its own start; one found exited on its
        # own while the run went (``LiveTarget._watch_servers``) its own stop.
        started, stopped = ({int(event[4]["pid"]) for event in self.log.events
                             if event[1] == kind and event[4] and event[4].get("pid") is not None}
                            for kind in (EventKind.SERVER_START, EventKind.SERVER_STOP))
        for managed in servers:
            if managed.pid is None:  # never spawned: a start that failed or was interrupted first
                continue
            if managed.pid in stopped:
                continue
            if managed.pid not in started:
                # Spawned, but the start was cut short (a signal while it waited for the port,
                # a sibling of a cluster that failed): the history still pairs every stop
                # with its start.
                self.log.add((self._now(), EventKind.SERVER_START, None, None,
                              {"name": managed.name, "pid": managed.pid, "url": None, "started": False}))
            self.log.add((self._now(), EventKind.SERVER_STOP, None, None,
                          {"name": managed.name, "returncode": managed.returncode,
                           **({"exited_early": True} if managed.exited_early else {})}))
        self.log.add((self._now(), EventKind.CLEANUP, None, None, cleanup_report(
            servers, self.nemesis, [(name, pid) for name, pid in self._child_processes() if pid is not None])))

    async def _main(self, traffic: Iterator[MessageBatch]) -> None:
        stop_on_signals(self, self._handlers)
        try:
            await self._open()
            late_ns = await self._before_schedule()
            # The schedule starts now (``late_ns`` ago): connecting is not part of the run's time.
            shift = self._now() - late_ns
            self._t0 += shift
            self.log.start_clock(shift)  # the events so far are on disk from here on, each next one as it comes
            self._clock_started()
            loop = asyncio.get_running_loop()
            sampler = CpuSampler(PUBLISHER, self._sampled_processes(), self._on_cpu, self._on_machine_cpu)
            sampling = loop.create_task(self._sample_cpu(sampler))
            reporting = loop.create_task(self._report_progress() if self.progress is not None else asyncio.sleep(0))
            nemesis = self.nemesis
            faulting = loop.create_task(nemesis.run(self._t0, self._now) if nemesis is not None else asyncio.sleep(0))
            own = self._during(loop)
            try:
                try:
                    await self._send(traffic)
                    # The drain comes after the heal: a fault still in force when the sending
                    # ends ends now (a crashed server without restart_after stays down).
                    await self._heal(faulting)
                    await self._settle()
                    await self._drain()
                finally:
                    await self._heal(faulting)
                    await cancelled(sampling, reporting)
                    sampler.sample()  # the CPU the run's end used
                    # The run ends with the drain: what follows (reading back, stopping
                    # servers) is a phase after it, kept off the run's time axis.
                    self.t_run_end = self._now()
                    self.log.end_at(self.t_run_end)
                    await cancelled(*own)
                await self._after()
            finally:
                if self.progress is not None:
                    self.progress(self._snapshot(final=True))
        finally:
            try:
                await self._close()
            finally:
                if self.nemesis is not None:  # the fault proxy, after the clients that go through it
                    await self.nemesis.close(self._now)

    async def _heal(self, faults: asyncio.Task[None]) -> None:
        """The sending ended: the faults still in force are ended (a server resumed or started
        again), each ``fault_end`` written. Safe to call twice."""
        await cancelled(faults)
        if self.nemesis is not None:
            await self.nemesis.heal(self._now)

    async def _drain(self) -> None:
        """Until ``_drained``, a node lost for good (nothing comes from a server gone), or
        ``run.drain`` has passed."""
        deadline = self._now() + self.scenario.run.drain
        while self._now() < deadline and self.node_lost_at is None:
            if self._drained():
                return
            await asyncio.sleep(self.drain_poll_s)

    async def _report_progress(self) -> None:
        """A progress snapshot every ``_PROGRESS_S``."""
        assert self.progress is not None
        while True:
            await asyncio.sleep(_PROGRESS_S)
            self.progress(self._snapshot())

    def _on_cpu(self, name: str, seconds: float) -> None:
        self.log.add((self._now(), EventKind.CPU_SECONDS, name, seconds, None))

    def _on_machine_cpu(self, busy_seconds: float) -> None:
        self.log.add((self._now(), EventKind.MACHINE_CPU_SECONDS, None, busy_seconds, None))

    async def _sample_cpu(self, sampler: CpuSampler) -> None:
        """The CPU time of this process and of those msgstorm started, every
        ``run.sample_interval`` on a grid from the schedule's start (a late wake-up does not
        push the later samples back; ``live/cpu.py``)."""
        every_s = max(self.scenario.run.sample_interval / 1e9, MIN_INTERVAL_S)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in itertools.count(1):
            sampler.sample()
            await asyncio.sleep(max(0.0, start + k * every_s - loop.time()))

    def _on_error(self, client: str, error: BaseException) -> None:
        self.log.add((self._now(), EventKind.CLIENT_ERROR, None, None,
                      {"client": client, "error": f"{type(error).__name__}: {error}"}))

    # --- the history ------------------------------------------------------------------------

    def _end_history(self) -> int:
        """``finish``'s first step: the run's end (the drain's; events after it, such as the
        read-back and servers stopping, are stamped at it), the event log's writing handed
        back to this thread and the recorder's thread done. Returns that end (ns)."""
        t_end = self.t_run_end if self.t_run_end is not None else self._now()
        self.log.end_at(t_end)
        self.log.stop_writing()  # what comes from here on is written by ``finish``, on this thread
        self._recording.shutdown(wait=True)  # its last intake is written first
        return t_end

    def _history_written(self, t_end: int, sent: int) -> None:
        """``finish``'s last event: ``run_end`` (value the messages sent), and the events written."""
        self.log.add((t_end, EventKind.RUN_END, None, float(sent), None))
        self.log.finish()


async def cancelled(*tasks: asyncio.Future[Any]) -> None:
    """Cancel ``tasks`` and wait until each has ended (what each raised is dropped: a task
    cancelled at the end of its phase has nothing more to say)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def keep_unsent(upcoming: asyncio.Future[MessageBatch | None], batches: Iterator[MessageBatch],
                      stop_at: int, interrupted: Callable[[], bool], keep: Callable[[MessageBatch], None],
                      number: Callable[[MessageBatch], MessageBatch] | None = None) -> None:
    """The sending stopped before the schedule's end (the sender behind at the run's end, a
    node lost for good): the windows not read yet are ``keep``-ed too (``number`` first, when
    given), none of their rows sent, so every message meant before ``stop_at``
    (``run.duration``) gets a row (``unsent``) and the offered rate counts the whole schedule."""
    loop = asyncio.get_running_loop()
    while not interrupted() and (batch := await upcoming) is not None:
        if number is not None:
            batch = number(batch)
        n = len(batch)
        if n and int(batch.t_intended[0]) >= stop_at:
            return
        keep(batch)
        if n and int(batch.t_intended[-1]) >= stop_at:
            return
        upcoming = loop.run_in_executor(None, next, batches, None)


async def send_windows(traffic: Iterator[MessageBatch], stop_at: int, most: int, now: Callable[[], int],
                       begin: Callable[[MessageBatch], SendRows], keep: Callable[[MessageBatch], None],
                       lost: Callable[[], bool], interrupted: Callable[[], bool],
                       number: Callable[[MessageBatch], MessageBatch] | None = None,
                       waiting: Callable[[int], None] | None = None) -> bool:
    """The open-loop send of a target that sends a window's rows in batches (JSON-RPC): each
    window is read on a worker thread while the one before is sent (``number``-ed first,
    when given), ``begin`` is told of it and gives the function that sends its rows; every
    row due when the sender wakes goes in one call, at most ``most`` (``live/pacing.py``),
    ``waiting`` told first of the time it waits for. The sending stops at ``stop_at``
    (``run.duration``): a row due before it that could not leave within ``STOP_GRACE_NS`` of
    it, or a node ``lost`` for good, ends it there, every window not read yet ``keep``-ed
    unsent (``keep_unsent``). Returns whether it stopped behind its schedule."""
    loop = asyncio.get_running_loop()
    batches = iter(traffic)
    upcoming = loop.run_in_executor(None, next, batches, None)
    while (batch := await upcoming) is not None:
        upcoming = loop.run_in_executor(None, next, batches, None)
        if number is not None:
            batch = number(batch)
        send_rows = begin(batch)
        times = batch.t_intended.tolist()
        n = len(times)
        end = bisect.bisect_left(times, stop_at)
        i = 0
        while i < end:
            if waiting is not None:
                waiting(times[i])
            t = await wait_until(times[i], now, asyncio.sleep)
            if t >= stop_at + STOP_GRACE_NS or lost():
                behind = not lost()
                if end == n:  # windows meant before the run's end may follow
                    await keep_unsent(upcoming, batches, stop_at, interrupted, keep, number)
                return behind
            j = due_through(times, i, end, t, most)
            await send_rows(i, j)
            i = j
            await asyncio.sleep(0)
        if end < n:
            upcoming.cancel()
            break
    return False
