"""The live target: the open-loop generator, the consumers and the history they write.

Place in the pipeline: ``runner`` -> **LiveTarget** -> history, beside ``ShadowNetwork``.
The traffic model's messages leave at their intended times (``t_intended``), never when a
previous publish returns: a broker that stalls shows as latency, not as a lower offered
rate (no coordinated omission). One monotonic clock stamps the intended time, the send and
every receipt (CLOCK_MONOTONIC: the host's, also in consumer processes), so end-to-end
latency needs no clock sync.

The generator records its own send lag (``t_sent - t_intended``); the analysis reports it
as ``generator`` in summary.json and calls the generator saturated when it could not keep
the schedule. The run is bounded: nothing is sent more than ``STOP_GRACE_NS`` (10 ms) after
``run.duration`` (a generator behind then stops; what it has not sent gets the status
``unsent``), and receipts are
awaited at most ``run.drain`` after the last send, and not at all for publishes the driver
says will never arrive (dropped, refused: ``Accounting``) or acks it says will not come.

History written (the same tables as the simulator; the driver's docstring maps the stage
columns): one ``messages`` row per message sent (a message the schedule held when the run
was interrupted was never sent and has no row). On a target with publish acks
(``driver.acks``) ``t_sequenced`` = ``t_committed`` is the ack's arrival and ``seq_no`` the
broker's order; without acks both are the first consumer receipt and ``seq_no`` the order
of first receipts. Status ``committed`` when acked or received, ``lost`` when neither by
the end of the drain (``pending`` if the run was interrupted first). ``deliveries``: one row
per receipt, ``node`` the consumer; after the run, a driver that can read its stream back
adds one row per stored message with ``node`` = ``stream`` and ``hops`` = 0.
``events``: run start (its detail says ``fanout``, ``acks`` and ``read_back``, which the
delivery check needs), run end, servers started and stopped, disconnections, errors; on disk
as they happen (``live/event_log.py``), so a killed run keeps them.

``messages`` and ``deliveries`` are written at the end (``finish``), or, with ``[live]
record_every`` set, also while the run goes: that often the event loop hands what came since
(references, no copy) to a thread of its own, where ``live/recorder.py`` writes the rows that
nothing still to come can change (acked; or first received, before a horizon every receipt
has reached) and the writer's thread encodes them. So a run killed (SIGKILL, power loss)
keeps the messages settled up to about that long before; ``finish`` writes the rest (lost,
pending, received but not acked) and the stream read back. The rows are the same either way;
only their order in the tables differs (see the recorder). Writing while the run goes is off
by default: the recorder's thread competes with the generator for the interpreter, and on
a 2-core machine the highest core-NATS rate with p99 send lag within 1 ms fell from about
1,000,000/s to about 20,000/s with it on (``benchmarks/live_generator.py --quick``).

The driver, its callbacks and the generator are ``LiveSender`` (``live/sending.py``), a
part ``LiveTarget`` holds (``sender``) and runs with its steps of the run (``Steps``):
the one run loop every live target shares takes them as parts (``live/lifecycle.py``'s
``Lifecycle``: the order they come in, signals, faults, CPU sampling, progress, the drain's
loop, cleanup are there); here are the drain's condition, the read-back and the history.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.errors import DataFileError, TargetError
from msgstorm.heap import release_freed_memory
from msgstorm.history.events import EventKind
from msgstorm.live.drivers.capabilities import ChildProcess
from msgstorm.live.event_log import SAMPLES_EVERY_S
from msgstorm.live.lifecycle import NoSteps, RunState, cancelled
from msgstorm.live.nemesis import Nemesis
from msgstorm.live.payload import StoredCopy
from msgstorm.live.recorder import FAR, PUBLISHER, Intake, LiveRecorder
from msgstorm.live.sending import LiveSender
from msgstorm.live.servers import BindError, ManagedServer
from msgstorm.live.user_server import GONE_AFTER_S, refused_by, watched_address
from msgstorm.progress import ProgressSnapshot
from msgstorm.security.costs import CostSource, resolve_verify_cost
from msgstorm.traffic.generate import MessageBatch, generate_traffic

__all__ = ["LiveTarget"]

# How often a run without ``[live] record_every`` hands its new windows to the recorder.
_HAND_EVERY_S = 1.0
# While a client is disconnected from a user's server, whether the server is gone, this often.
_WATCH_S = 0.1
STREAM = "stream"


# The part of the schedule a target sends: all of it, or a distributed generator's share.
SchedulePart = Callable[[Iterator[MessageBatch]], Iterator[MessageBatch]]
# Connected, about to start the schedule: how long ago it should have started (ns).
Start = Callable[[], Awaitable[int]]


def _whole(traffic: Iterator[MessageBatch]) -> Iterator[MessageBatch]:
    return traffic


class LiveTarget(NoSteps):
    """Drive ``scenario.target``'s driver with the scenario's traffic through the ``sender``
    it holds; ``finish`` writes what happened. ``part``: the part of the schedule it sends
    (its traffic and the recorder's remade schedule alike); ``start``: what it waits for
    before the schedule starts (a distributed generator's agreed instant), none by default."""

    drain_poll_s = 0.005

    def __init__(self, state: RunState, part: SchedulePart = _whole,
                 start: Start | None = None) -> None:
        super().__init__(state)
        scenario = state.scenario
        self.sender = LiveSender(state)
        # The driver and what it can do, for the whole run.
        self.driver, self.can = self.sender.driver, self.sender.can
        self.consumer_names = self.sender.consumer_names
        self._part, self._start = part, start
        self.stored: StoredCopy | None = None
        self.node_copies: dict[str, StoredCopy] = {}  # server name -> its stream's copy, read back
        self.t_read_back = 0
        self._to_drain = 0  # the messages sent, when the drain starts
        self._sent_count = 0  # messages sent, counted as the windows go to the recorder at the end
        # The history's messages and deliveries rows, written on a thread of its own while the
        # run goes (``live/recorder.py``): what the run brought is handed over as intakes.
        agents = [agent.name for agent in scenario.agents]
        self.recorder = LiveRecorder(state.writer, agents, self.consumer_names, bool(self.driver.acks),
                                     self.sender.generator_count, remake=self._traffic_again,
                                     hold_schedule=scenario.live.record_every is not None)
        # The scenario's [[faults]], applied in wall time (``live/nemesis.py``); None without faults.
        faults = scenario.faults
        state.nemesis = Nemesis(scenario, self.driver, self.run_dir, self._on_fault_event) if faults else None
        self._flushing: concurrent.futures.Future[None] | None = None
        self._writing: asyncio.Task[None] | None = None  # the recording task while the run goes
        self._sending: asyncio.Task[None] | None = None  # the open-loop sender while the run goes
        self._windows_taken = 0  # windows in ``batches`` handed to the recorder
        self._sent_let_go = 0  # sends in the windows let go (the recorder's now)

    def _on_fault_event(self, t: int, kind: str, node: str | None, detail: dict[str, Any]) -> None:
        self.log.add((t, kind, node, None, detail))

    def _traffic_again(self) -> Iterator[MessageBatch]:
        """The run's traffic made again, window by window (a pure function of the scenario
        and the seed), its ``part``: the recorder's last intake writes the rows from it."""
        seed = self.sender.seed
        if seed is None:
            raise TargetError("the traffic's seed is needed to write the rows")
        return self._part(generate_traffic(self.scenario, seed, window_ns=self.scenario.run.window))

    @property
    def nodes(self) -> list[dict[str, str]]:
        nodes = [{"name": PUBLISHER, "region": "local"}, *({"name": n, "region": "local"} for n in self.consumer_names)]
        return nodes + ([{"name": STREAM, "region": "broker"}] if self.stored is not None else [])

    def _security_detail(self) -> dict[str, Any] | None:
        """The ``security`` event's detail: a live run verifies for real; the cost per message
        shown is the calibration's (or the scenario's ``verify_cost``), when there is one."""
        security = self.scenario.security
        if security is None:
            return None
        try:
            cost = resolve_verify_cost(security.scheme, security.verify_cost)
        except DataFileError:
            cost = CostSource(verify_ns=0, sign_ns=None, source="not calibrated (msgstorm calibrate crypto)")
        return {"scheme": security.scheme, "verify": "real", "chain_id": security.chain_id, **cost.model_dump()}

    def _record_refused(self) -> None:
        """A signed run's ``integrity`` event: what each consumer refused (its verification)."""
        security = self.scenario.security
        if security is None or security.scheme == "none" or self.can.signing is None:
            return
        refused = [{"tampered": tampered, "replayed": replayed} for tampered, replayed in self.can.signing.refused()]
        self.log.add((self.state.t_run_end if self.state.t_run_end is not None else self.now(), EventKind.INTEGRITY, None,
                      float(sum(r["tampered"] + r["replayed"] for r in refused)), {"consumers": refused}))

    # --- running: the lifecycle's steps (``live/lifecycle.py``) ----------------------------

    def traffic(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None
                ) -> Iterator[MessageBatch]:
        """``traffic`` is made from ``seed`` (``generate_traffic`` with the run's window):
        generator processes, and the recorder's last intake, make it again from that."""
        self.sender.seed = seed
        return traffic

    def run_start_detail(self) -> dict[str, Any]:
        return {"target": self.scenario.target, "consumers": len(self.consumer_names),
                "processes": (self.can.processes.processes if self.can.processes is not None else 1)
                + self.sender.generator_count - 1,
                "fanout": bool(self.driver.fanout), "acks": bool(self.driver.acks)}

    def after_run_start(self) -> None:
        security = self._security_detail()
        if security is not None:
            self.log.add((self.now(), EventKind.SECURITY, None, float(security["verify_ns"]), security))

    def start_servers(self) -> list[dict[str, Any]]:
        return self.driver.start_servers()

    def stop_servers(self) -> list[ManagedServer]:
        self.driver.stop_servers()
        return self._servers()

    def child_processes(self) -> list[tuple[str, int | None]]:
        return [(child.name, child.process.pid if child.process is not None else None)
                for child in [*self._consumer_processes(), *self.sender.generators]]

    async def open(self) -> None:
        try:
            if self.state.nemesis is not None:
                await self.state.nemesis.prepare()  # the fault proxy, before the clients connect through it
            await self.sender.connect()
        except BindError as error:  # msgstorm's own listener (ZeroMQ's publisher): nothing to connect to
            raise TargetError(f"{self.scenario.target}: {error}") from error
        except Exception as error:  # noqa: BLE001 - any client failure here means no run
            said = str(error) or (f"no answer within live.start_timeout ({self.scenario.live.start_timeout / 1e9:g} s)"
                                  if isinstance(error, TimeoutError) else "no detail given")
            raise TargetError(f"{self.scenario.target}: cannot connect: {type(error).__name__}: {said}") from error
        self.sender.refuse_what_the_server_refuses()

    async def before_schedule(self) -> int:
        return await self._start() if self._start is not None else 0

    def clock_started(self) -> None:
        for generator in self.sender.generators:
            generator.begin(self.state.t0)

    def during(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
        record_every = self.scenario.live.record_every
        self._writing = loop.create_task(
            self._record(record_every / 1e9) if record_every is not None else self._hand_windows(_HAND_EVERY_S))
        address = watched_address(self.scenario.live.url) if not self._servers() else None
        watching = loop.create_task(self._watch_user_server(address) if address is not None else self._watch_servers())
        return [self._writing, watching]  # the rest of the rows is written by ``finish``

    async def send(self, traffic: Iterator[MessageBatch]) -> None:
        self._sending = asyncio.get_running_loop().create_task(self.sender.send_all(traffic))
        try:
            await self._sent_until_the_end_or_the_server_lost(self._sending)
            if self.state.node_lost_at is None:
                # The generator processes keep the same schedule: wait for the end of theirs.
                await asyncio.gather(*(g.finished() for g in self.sender.generators))
        finally:
            await cancelled(self._sending)  # done by now, unless this run was interrupted or failed

    async def settle(self) -> None:
        await self.driver.flush()
        self._to_drain = self._sent_here() + self.sender.sent_elsewhere_count

    def drained(self) -> bool:
        """Every message sent is received (by every consumer on a fan-out target, by one
        otherwise) and acked (on a target with acks). Publishes the driver (or a generator
        process) says will never arrive, dropped or refused, are not waited for, nor acks it
        says will not come (they can still come in while it drains). Receipts are counted
        distinct (``Received``): copies received twice (a replay, a redelivery) would
        otherwise stand in for the tail still in flight, which closing would then lose."""
        sender = self.sender
        sent = self._to_drain
        consumers = len(self.consumer_names) if self.driver.fanout else 1
        lost, unacked = sender.dropped_elsewhere, 0
        if self.can.accounting is not None:
            counts = self.can.accounting.state
            lost, unacked = lost + counts.lost_publishes, counts.unacked_publishes
        acks = sent - lost - unacked if self.driver.acks else 0
        return sender.received.count >= (sent - lost) * consumers and sender.acks.count >= acks

    async def after(self) -> None:
        writing = self._writing
        if writing is not None and not writing.cancelled() and writing.exception() is not None:
            raise writing.exception()  # type: ignore[misc]  # the history could not be written
        assert self.state.t_run_end is not None
        if self.state.interrupted or self.state.node_lost_at is not None:  # a server gone has nothing to read back
            return
        events_before = len(self.log.events)
        self.stored = await self.driver.read_back()
        seconds = (self.now() - self.state.t_run_end) / 1e9
        # None is a target that keeps nothing to read (core NATS, ZeroMQ, a trimmed Redis
        # stream): no phase; unless the driver said why a read-back failed.
        failed = any(event[1] == EventKind.CLIENT_ERROR and (event[4] or {}).get("client") == "read_back"
                     for event in self.log.events[events_before:])
        if self.can.node_copies is not None:  # each server's own copy (a cluster under faults)
            self.node_copies = await self.can.node_copies.read_back_nodes() or {}
        if self.stored is not None or failed:
            self.t_read_back = self.state.t_run_end
            self.log.add((self.t_read_back, EventKind.READ_BACK, None,
                          None if self.stored is None else float(len(self.stored)), {"seconds": round(seconds, 3)}))

    async def close(self) -> None:
        if self.state.nemesis is not None:  # interrupted or failed: heal before the clients close
            await self.state.nemesis.heal(self.now)
        # Interrupted: stopped now, each reports what it sent (a no-op for one that is done).
        await asyncio.gather(*(generator.stop() for generator in self.sender.generators))
        await self.driver.close()
        self._record_refused()

    async def _sent_until_the_end_or_the_server_lost(self, sending: asyncio.Task[None]) -> None:
        """Wait for ``sending`` to end: at the schedule's end, or cut short by the loss of a
        user's server (``_watch_user_server`` cancels it; what it never sent is ``unsent``).
        A cancellation of this run itself (a signal) goes on as before."""
        try:
            await sending
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.state.node_lost_at is None or (task is not None and task.cancelling()):
                raise

    async def _watch_servers(self) -> None:
        """Every ``_WATCH_S`` while the run goes, whether a server msgstorm started has exited
        on its own (killed from outside, crashed): its ``server_stop`` (``exited_early``, its
        pid) is written when that is found, not when the run's end stops the servers."""
        while True:
            await asyncio.sleep(_WATCH_S)
            for server in self._servers():
                returncode = server.exit_unasked()
                if returncode is not None:
                    self.log.add((self.now(), EventKind.SERVER_STOP, None, None, {
                        "name": server.name, "pid": server.pid, "returncode": returncode, "exited_early": True}))

    async def _watch_user_server(self, address: tuple[str, int]) -> None:
        """While a client is disconnected from the user's server (``live.url``), whether the
        server still takes connections, every ``_WATCH_S``: one that refuses them for
        ``GONE_AFTER_S`` is gone
        (``live/user_server.py``), named once (``node_down``, its URL in the detail), and the
        sending ends there, as for a user's chain node."""
        url = self.scenario.live.url
        refused_since: int | None = None  # every probe refused since then
        while True:
            await asyncio.sleep(_WATCH_S)
            refused = await refused_by(address) if self.sender.outages_open else None
            if refused is None:
                refused_since = None
                continue
            now = self.now()
            refused_since = now if refused_since is None else refused_since
            if now - refused_since < GONE_AFTER_S * 1e9:
                continue  # a server restarting on its port is back within it
            self.state.node_lost_at = now
            self.log.add((self.state.node_lost_at, EventKind.NODE_DOWN, None, None, {
                "name": self.scenario.target, "url": url, "returncode": None, "refused_since": refused_since,
                "error": f"the server at {url} no longer takes connections ({type(refused).__name__}: {refused}) "
                         f"after a client lost its connection, for {GONE_AFTER_S:g} s"}))
            if self._sending is not None:
                self._sending.cancel()
            return

    def snapshot(self, final: bool = False) -> ProgressSnapshot:
        sender = self.sender
        emitted = sender.emitted + sender.sent_elsewhere_count
        lost = sender.dropped_elsewhere + (self.can.accounting.state.lost_publishes if self.can.accounting is not None else 0)
        consumers = len(self.consumer_names) if self.driver.fanout else 1
        received = sender.receipts.count
        distinct = sender.received.count // max(1, consumers)
        committed = sender.acks.count if self.driver.acks else distinct
        return ProgressSnapshot(
            t_ns=self.now(), end_ns=self.scenario.run.duration, sent=emitted, emitted=emitted,
            settled=committed + lost, committed=committed, dropped=lost, rejected=0,
            queue_depth=max(0, emitted - committed - lost), base_fee=None,
            faults_active=len(self.state.nemesis.active) if self.state.nemesis is not None else 0, leader="",
            final=final, target=self.scenario.target, send_lag_ns=sender.lag_ns, receipts=received)

    def _servers(self) -> list[ManagedServer]:
        """The servers the driver started (``Servers``)."""
        return list(self.can.servers.servers) if self.can.servers is not None else []

    def _consumer_processes(self) -> list[ChildProcess]:
        """The driver's consumer processes (``Processes``)."""
        return list(self.can.processes.consumer_processes) if self.can.processes is not None else []

    def sampled_processes(self) -> list[tuple[str, int]]:
        """(name, pid) of the servers msgstorm started, of its fault proxy and of its consumer
        and generator processes, whose CPU time is sampled beside its own."""
        servers = [(server.name, server.pid) for server in self._servers() if server.pid is not None]
        children = [*self._consumer_processes(), *self.sender.generators]
        nemesis = self.state.nemesis
        proxies = [(proxy.name, proxy.pid) for proxy in ((nemesis.proxy, nemesis.route_proxy) if nemesis else ())
                   if proxy is not None and proxy.pid is not None]
        return servers + proxies + [(child.name, child.process.pid) for child in children if child.process is not None]

    async def _record(self, every_s: float) -> None:
        """Every ``every_s`` (``[live] record_every``), what the run brought goes to the
        recorder's thread, which writes the rows it makes final: the event loop only hands
        over references."""
        while True:
            await asyncio.sleep(every_s)
            self.log.write_pending(SAMPLES_EVERY_S)  # the CPU samples since the last event, on disk too
            # Kept: a flush this task hands over goes on to its end on the recorder's thread even
            # when the task is cancelled (a signal, the run's end), shielded so the cancellation
            # does not cancel it before it starts, and ``finish`` raises what it raised.
            self._flushing = self.state.recording.submit(self.recorder.flush, self._intake())
            await asyncio.shield(asyncio.wrap_future(self._flushing))

    async def _hand_windows(self, every_s: float) -> None:
        """Without ``record_every``: every ``every_s`` the windows made since go to the
        recorder's thread, which copies their send times into its columns (9 bytes a
        message; the schedule it makes again at the end), and this process lets go of those
        sent in full. No row is made (writing rows while the run goes costs the generator
        headroom): a copy of the new windows' send times, a few milliseconds a second."""
        while True:
            await asyncio.sleep(every_s)
            windows, sent_elsewhere = self._windows_since(), self.sender.sent_elsewhere
            self.sender.sent_elsewhere = []
            # Shielded as in ``_record``: these windows are no longer held here, so the recorder
            # must take them even when a signal cancels this task before its thread starts.
            self._flushing = self.state.recording.submit(self.recorder.take_windows, windows, sent_elsewhere)
            await asyncio.shield(asyncio.wrap_future(self._flushing))

    def _windows_since(self) -> list[tuple[MessageBatch, np.ndarray]]:
        """The windows made since the last intake; those before the newest (sent in full: the
        sender moves on in order) are let go here, their sends counted."""
        sender = self.sender
        windows = list(zip(sender.batches[self._windows_taken:], sender.sent[self._windows_taken:]))
        done = max(len(sender.batches) - 1, 0)
        self._sent_let_go += sum(int((s >= 0).sum()) for s in sender.sent[:done])
        del sender.batches[:done], sender.sent[:done]
        self._windows_taken = len(sender.batches)
        return windows

    def _sent_here(self) -> int:
        """Messages this process sent so far."""
        return self._sent_let_go + sum(int((s >= 0).sum()) for s in self.sender.sent)

    def _intake(self) -> Intake:
        """What came since the last intake (on the event loop's thread: references only)."""
        sender = self.sender
        windows = self._windows_since()
        sent_elsewhere, sender.sent_elsewhere = sender.sent_elsewhere, []
        horizon = self.now()  # receipts the target stamps: every one before now is in
        if self.can.timed_receipts is not None:
            through = self.can.timed_receipts.receipts_through()
            if through is not None:
                horizon = min(horizon, through - self.state.t0)
        t0 = self.state.t0
        shares = [FAR if g.reported_until == FAR else g.reported_until - t0 for g in sender.generators]
        return Intake(windows, sender.receipts.take(), sender.acks.take(), sent_elsewhere, horizon, shares)

    # --- the history ------------------------------------------------------------------------

    def finish(self) -> int:
        """Write the rest of the messages and deliveries, and the events; return the run's
        end time (ns)."""
        sender = self.sender
        # The run's end is the drain's: events of the phase after it (the read-back, servers
        # stopping) are stamped at that end, the read-back's own duration is in its event.
        t_end = self.state.end_history()
        if self._flushing is not None and not self._flushing.cancelled() and self._flushing.exception() is not None:
            raise self._flushing.exception()  # type: ignore[misc]  # the history could not be written
        # The sending's transient buffers (frames, reads, the transport's) are freed by now;
        # their heap holes do not fit the last intake's arrays: handed back, not kept under them.
        release_freed_memory()
        self._write_rest()
        unreadable = sender.unreadable
        if unreadable:  # payloads changed in flight (or not msgstorm's): no receipt of any message
            self.log.add((t_end, EventKind.CLIENT_ERROR, None, None, {
                "client": "consumers", "damaged": unreadable,
                "error": f"{unreadable} payloads received damaged or not msgstorm's (counted as no receipt)"}))
        self.state.history_written(t_end, self._sent_count)
        return t_end

    def _write_rest(self) -> None:
        """The last intake (nothing more will come), then the stream read back. A generator
        stopped behind at the run's end never made the windows after the one it was
        sending, and generator processes ahead of it sent messages of windows it had not
        made: the recorder makes them again for those rows."""
        sender = self.sender
        duration = self.scenario.run.duration
        intake = self._intake()
        intake.horizon, intake.shares_through = FAR, [FAR] * len(sender.generators)
        # The windows are the recorder's now: let them go as soon as it has copied them.
        self._sent_count = self._sent_here() + sender.sent_elsewhere_count
        sender.batches, sender.sent = [], []
        # Every message intended before the end that no process sent is the shortfall (a
        # generator process behind at the end stops as this one does).
        complete = not self.state.interrupted and self.state.start_error is None
        self.recorder.finish(intake, self.state.interrupted, duration if complete else None)
        copies = ([(STREAM, self.stored)] if self.stored else []) + [
            (f"{STREAM}@{name}", copy) for name, copy in self.node_copies.items() if copy]
        for node, copy in copies:
            stored, damaged = copy.ids, copy.damaged
            if damaged:  # stored damaged (a corrupt toxic upstream): no copy of any message
                self.log.add((self.t_read_back, EventKind.CLIENT_ERROR, node, None, {
                    "client": "read_back", "damaged": damaged,
                    "error": f"{damaged} stored payloads damaged or not msgstorm's (counted as not stored)"}))
            self.writer.append("deliveries", {
                "msg_id": stored, "node": pa.DictionaryArray.from_arrays(np.zeros(stored.size, dtype=np.int32),
                                                                         pa.array([node], type=pa.string())),
                "t_delivered": np.full(stored.size, self.t_read_back, dtype=np.int64),
                "hops": np.zeros(stored.size, dtype=np.int32)})
