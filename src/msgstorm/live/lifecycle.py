"""The one run loop of every live target: brokers, an EVM node, CometBFT validators.

Place in the pipeline: ``runner`` -> a live target (``live/target.py``'s ``LiveTarget``,
``live/chain/target.py``'s ``ChainTarget``, ``live/chain/comet_target.py``'s ``CometTarget``)
-> **Lifecycle.run** -> the target's steps -> history. What a live run does, and in which
order, is written here once; a target says only how each step is done for what it drives.
The run loop is composed, not inherited: ``Lifecycle(state, steps)`` takes the ``RunState``
it shares with the target (the scenario, the event log, the run's clock, how it went) and
the target's ``Steps``; ``NoSteps`` is the do-nothing version of the optional ones.

The sequence (``run``, then ``_main`` on the event loop):

1. ``run_start`` (``run_start_detail``), the servers started (``start_servers``, one
   ``server_start`` each), blocking, before the event loop runs.
2. On the loop (``live/send_loop.py``): SIGINT and SIGTERM cancel the run (``live/stopping.py``);
   the clients connect (``open``: the fault proxy first, then the clients; a failure is a
   ``TargetError``, nothing sent).
3. The schedule's clock starts (connecting is not part of the run's time; ``clock_started``).
4. While the traffic is sent open loop (``send``): the scenario's faults at their times
   (``nemesis.run``), the CPU time of msgstorm and of every process it started on a grid of
   ``run.sample_interval`` (``sampled_processes``), a progress snapshot every
   ``_PROGRESS_S`` (``snapshot``), and the target's own watchers (``during``).
5. The faults still in force end (``_heal``), then what the clients buffer goes out
   (``settle``) and the drain waits, up to ``run.drain``, for what was sent to arrive
   (``drained``, polled every ``drain_poll_s``; a node lost for good ends it, ``node_lost_at``).
6. The run ends (``t_run_end``, the events' time axis ends there): the last CPU sample, the
   read-back and the target's reads after the drain (``after``), the final snapshot.
7. The clients close (``close``; the fault proxy after the clients that go through it).
8. Back off the loop, on every way out: the nemesis's last resort (``kill``), the servers
   stopped (``stop_servers``), one ``server_stop`` each (and a ``server_start`` for one
   spawned whose start was cut short, so every stop has its start), the ``cleanup`` report
   (``child_processes``: processes beside the servers). A signal is ``interrupted``; a
   ``TargetError`` is a ``client_error`` of client ``start`` and is raised.

``finish`` (the history) is the target's own; its first and last steps are here
(``RunState.end_history``, ``history_written``). Beside the class: ``send_windows``, the open-loop
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
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

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

__all__ = ["START_FAILED", "Lifecycle", "NoSteps", "RunState", "SendRows", "Steps", "cancelled", "keep_unsent",
           "send_windows"]

# A progress snapshot (the terminal bar, Prometheus) this often, in wall time.
_PROGRESS_S = 0.25
# The ``client`` of the ``client_error`` event of a run that never started.
START_FAILED = "start"

# Send rows ``i`` to ``j - 1`` of the window being sent, due now (``send_windows``).
SendRows = Callable[[int, int], Awaitable[None]]
# An event's detail (the ``detail`` column's JSON object).
Detail = dict[str, Any]


class RunState:
    """What a live run shares between its loop and its target: the scenario, the history
    being written (``log``, the events on disk as they happen), the run's clock (``now``)
    and how the run went (``interrupted``, ``start_error``, ``stopped_behind``, ``t_run_end``,
    ``node_lost_at``). ``nodes`` and ``interrupted`` are what the run row records (the
    ``Lifecycle`` gives them)."""

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
        self.t0 = time.monotonic_ns()
        # The recorder's thread: the one that writes to the history while the run goes.
        self.recording = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="msgstorm-recorder")
        self.log = EventLog(writer, self.recording)  # the events, on disk as they happen
        # The scenario's [[faults]], applied in wall time (``live/nemesis.py``); None without faults.
        self.nemesis: Nemesis | None = None

    def now(self) -> int:
        """The run's clock (ns): from the schedule's start once it has started."""
        return time.monotonic_ns() - self.t0

    def on_error(self, client: str, error: BaseException) -> None:
        self.log.add((self.now(), EventKind.CLIENT_ERROR, None, None,
                      {"client": client, "error": f"{type(error).__name__}: {error}"}))

    def end_history(self) -> int:
        """``finish``'s first step: the run's end (the drain's; events after it, such as the
        read-back and servers stopping, are stamped at it), the event log's writing handed
        back to this thread and the recorder's thread done. Returns that end (ns)."""
        t_end = self.t_run_end if self.t_run_end is not None else self.now()
        self.log.end_at(t_end)
        self.log.stop_writing()  # what comes from here on is written by ``finish``, on this thread
        self.recording.shutdown(wait=True)  # its last intake is written first
        return t_end

    def history_written(self, t_end: int, sent: int) -> None:
        """``finish``'s last event: ``run_end`` (value the messages sent), and the events written."""
        self.log.add((t_end, EventKind.RUN_END, None, float(sent), None))
        self.log.finish()


class Steps(Protocol):
    """What a live target says: how each step of the run is done for what it drives. The
    ``Lifecycle`` calls them in the order the module docstring gives; each reads and sets
    the run's shared state through the ``RunState`` it was made with.

    ``drain_poll_s``: the drain looks at what has arrived this often. ``nodes``: the run
    row's nodes (the publisher and what the target drove). ``traffic``: the traffic to send,
    before anything starts (a target may add its own to it). ``run_start_detail``: the
    ``run_start`` event's detail (the delivery check reads ``fanout`` and ``acks``).
    ``after_run_start``: events that follow ``run_start`` before any server starts.
    ``start_servers``: start the servers the run needs (blocking); describe each started
    (its ``server_start`` detail: name, pid, url); a scenario the target cannot run raises
    ``TargetError`` there. ``stop_servers``: stop every server started (safe after a failed
    start); the servers to report. ``child_processes``: (name, pid) of the processes
    msgstorm started beside the servers (consumers, generators), which the cleanup checks
    are gone. ``open``: before the clock starts, the fault proxy, then the clients
    (``TargetError``: no run). ``before_schedule``: connected, about to start the schedule:
    how long ago it should have started (ns; a generator of a distributed run waits for the
    instant every generator starts at, ``live/distributed.py``). ``clock_started``: what
    starts with the schedule's clock. ``during``: the target's own tasks while the run goes
    (cancelled once it ends). ``send``: the traffic open loop, to the schedule's end (or a
    node lost for good). ``settle``: after the faults healed, before the drain, what the
    clients buffer goes out. ``drained``: whether everything the drain waits for has come.
    ``after``: the run has ended (``t_run_end``): reads after the drain (read-back,
    catch-up). ``close``: every client closed, on every way out (the fault proxy is closed
    after). ``sampled_processes``: (name, pid) of the processes msgstorm started, whose CPU
    time is sampled beside its own. ``snapshot``: what the progress bar shows now. ``finish``:
    write what happened into the history (``RunState.end_history`` first,
    ``history_written`` last); the run's end (ns)."""

    drain_poll_s: float

    @property
    def nodes(self) -> list[dict[str, str]]: ...

    def traffic(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None
                ) -> Iterator[MessageBatch]: ...

    def run_start_detail(self) -> Detail: ...

    def after_run_start(self) -> None: ...

    def start_servers(self) -> list[Detail]: ...

    def stop_servers(self) -> list[ManagedServer]: ...

    def child_processes(self) -> list[tuple[str, int | None]]: ...

    async def open(self) -> None: ...

    async def before_schedule(self) -> int: ...

    def clock_started(self) -> None: ...

    def during(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]: ...

    async def send(self, traffic: Iterator[MessageBatch]) -> None: ...

    async def settle(self) -> None: ...

    def drained(self) -> bool: ...

    async def after(self) -> None: ...

    async def close(self) -> None: ...

    def sampled_processes(self) -> list[tuple[str, int]]: ...

    def snapshot(self, final: bool = False) -> ProgressSnapshot: ...

    def finish(self) -> int: ...


class NoSteps:
    """The steps a target need not say: each does nothing (a target's own class says the
    rest; ``Steps`` lists them all)."""

    drain_poll_s = 0.01

    def __init__(self, state: RunState) -> None:
        self.state = state
        # The state's event log and clock, which never change for a run: a step reads them often.
        self.log = state.log
        self.now = state.now
        self.scenario = state.scenario
        self.writer = state.writer
        self.run_dir = state.run_dir
        self.progress = state.progress

    def traffic(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None
                ) -> Iterator[MessageBatch]:
        return traffic

    def run_start_detail(self) -> Detail:
        return {"target": self.scenario.target, "consumers": 0, "processes": 1, "fanout": False, "acks": True}

    def after_run_start(self) -> None:
        return None

    def child_processes(self) -> list[tuple[str, int | None]]:
        return []

    async def before_schedule(self) -> int:
        return 0  # the schedule starts now

    def clock_started(self) -> None:
        return None

    def during(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
        return []

    async def settle(self) -> None:
        return None

    async def after(self) -> None:
        return None


class Lifecycle:
    """A live target's run: the ``RunState`` it shares with the target's ``Steps``, run in
    the order the module docstring gives; ``finish`` has the target write what happened.
    ``nodes`` and ``interrupted`` are what the run row records."""

    def __init__(self, state: RunState, steps: Steps) -> None:
        self.state = state
        self.steps = steps
        self.scenario = state.scenario
        self.progress = state.progress
        self._handlers: dict[int, Any] = {}

    @property
    def nodes(self) -> list[dict[str, str]]:
        return self.steps.nodes

    @property
    def interrupted(self) -> bool:
        return self.state.interrupted

    @interrupted.setter
    def interrupted(self, value: bool) -> None:
        self.state.interrupted = value

    @property
    def start_error(self) -> str | None:
        return self.state.start_error

    def finish(self) -> int:
        """Write what happened (the target's ``finish``); the run's end (ns)."""
        return self.steps.finish()

    # --- the run ----------------------------------------------------------------------------

    def run(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None = None) -> None:
        """Start the servers, send ``traffic`` (made from ``seed``), drain, read back; the
        servers are stopped, and the cleanup checked, on every way out."""
        state, steps = self.state, self.steps
        traffic = steps.traffic(traffic, seed)
        state.log.add((state.now(), EventKind.RUN_START, None, None, steps.run_start_detail()))
        steps.after_run_start()
        try:
            for described in steps.start_servers():
                state.log.add((state.now(), EventKind.SERVER_START, None, None, described))
            self._handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
            run_send_loop(self._main, traffic, self._handlers, lambda: state.interrupted)
        except KeyboardInterrupt:
            state.interrupted = True
            state.log.add((state.now(), EventKind.INTERRUPTED, None, None, None))
        except TargetError as error:
            # Nothing was sent: a server that would not start or died while it started, a
            # client that could not connect, a size the server refuses. The history says so
            # (``History.start_failure``), so the run directory is never read as an empty run.
            state.start_error = str(error)
            state.log.add((state.now(), EventKind.CLIENT_ERROR, None, None,
                           {"client": START_FAILED, "error": state.start_error}))
            raise
        finally:
            if state.nemesis is not None:
                state.nemesis.kill()  # the last resort: its close ran in the event loop unless that failed
            self._cleaned_up(steps.stop_servers())

    def _cleaned_up(self, servers: list[ManagedServer]) -> None:
        """One ``server_stop`` a server spawned (and its ``server_start`` when the start was
        cut short), then the ``cleanup`` report: verified, not assumed, that nothing msgstorm
        started still runs or listens."""
        log, now = self.state.log, self.state.now
        # A server started again by a fault records its own start; one found exited on its
        # own while the run went (``LiveTarget._watch_servers``) its own stop.
        started, stopped = ({int(event[4]["pid"]) for event in log.events
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
                log.add((now(), EventKind.SERVER_START, None, None,
                         {"name": managed.name, "pid": managed.pid, "url": None, "started": False}))
            log.add((now(), EventKind.SERVER_STOP, None, None,
                     {"name": managed.name, "returncode": managed.returncode,
                      **({"exited_early": True} if managed.exited_early else {})}))
        children = [(name, pid) for name, pid in self.steps.child_processes() if pid is not None]
        log.add((now(), EventKind.CLEANUP, None, None, cleanup_report(servers, self.state.nemesis, children)))

    async def _main(self, traffic: Iterator[MessageBatch]) -> None:
        state, steps = self.state, self.steps
        stop_on_signals(state, self._handlers)
        try:
            await steps.open()
            late_ns = await steps.before_schedule()
            # The schedule starts now (``late_ns`` ago): connecting is not part of the run's time.
            shift = state.now() - late_ns
            state.t0 += shift
            state.log.start_clock(shift)  # the events so far are on disk from here on, each next one as it comes
            steps.clock_started()
            loop = asyncio.get_running_loop()
            sampler = CpuSampler(PUBLISHER, steps.sampled_processes(), self._on_cpu, self._on_machine_cpu)
            sampling = loop.create_task(self._sample_cpu(sampler))
            reporting = loop.create_task(self._report_progress() if self.progress is not None else asyncio.sleep(0))
            nemesis = state.nemesis
            faulting = loop.create_task(nemesis.run(state.t0, state.now) if nemesis is not None else asyncio.sleep(0))
            own = steps.during(loop)
            try:
                try:
                    await steps.send(traffic)
                    # The drain comes after the heal: a fault still in force when the sending
                    # ends ends now (a crashed server without restart_after stays down).
                    await self._heal(faulting)
                    await steps.settle()
                    await self._drain()
                finally:
                    await self._heal(faulting)
                    await cancelled(sampling, reporting)
                    sampler.sample()  # the CPU the run's end used
                    # The run ends with the drain: what follows (reading back, stopping
                    # servers) is a phase after it, kept off the run's time axis.
                    state.t_run_end = state.now()
                    state.log.end_at(state.t_run_end)
                    await cancelled(*own)
                await steps.after()
            finally:
                if self.progress is not None:
                    self.progress(steps.snapshot(final=True))
        finally:
            try:
                await steps.close()
            finally:
                if state.nemesis is not None:  # the fault proxy, after the clients that go through it
                    await state.nemesis.close(state.now)

    async def _heal(self, faults: asyncio.Task[None]) -> None:
        """The sending ended: the faults still in force are ended (a server resumed or started
        again), each ``fault_end`` written. Safe to call twice."""
        await cancelled(faults)
        if self.state.nemesis is not None:
            await self.state.nemesis.heal(self.state.now)

    async def _drain(self) -> None:
        """Until ``drained``, a node lost for good (nothing comes from a server gone), or
        ``run.drain`` has passed."""
        state, now = self.state, self.state.now
        deadline = now() + self.scenario.run.drain
        poll_s = self.steps.drain_poll_s
        while now() < deadline and state.node_lost_at is None:
            if self.steps.drained():
                return
            await asyncio.sleep(poll_s)

    async def _report_progress(self) -> None:
        """A progress snapshot every ``_PROGRESS_S``."""
        assert self.progress is not None
        while True:
            await asyncio.sleep(_PROGRESS_S)
            self.progress(self.steps.snapshot())

    def _on_cpu(self, name: str, seconds: float) -> None:
        self.state.log.add((self.state.now(), EventKind.CPU_SECONDS, name, seconds, None))

    def _on_machine_cpu(self, busy_seconds: float) -> None:
        self.state.log.add((self.state.now(), EventKind.MACHINE_CPU_SECONDS, None, busy_seconds, None))

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
