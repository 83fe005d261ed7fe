"""The live target's sending part: the driver, what its callbacks bring in (receipts, acks,
events), and the open-loop generator that hands the traffic to the driver at its intended
times (``send_all``; ``_send_bursts`` for a driver that takes many messages at once), with
generator processes beside it (``live/generator_process.py``).

Place in the pipeline: held by ``live/target.py``'s ``LiveTarget`` (its ``sender``), whose
steps of the run (``live/lifecycle.py``'s ``Steps``) connect it, send with it and read what
it received; the run's shared state (clock, event log, how it went) is the ``RunState``
both are made with.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from msgstorm.errors import TargetError
from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import STOP_GRACE_NS, Callbacks, Driver
from msgstorm.live.drivers.capabilities import Bursts, DriverCapabilities, callbacks_for
from msgstorm.live.lifecycle import RunState
from msgstorm.live.pacing import SPIN_NS
from msgstorm.live.payload import HEADER, message_id, payload, slice_ends
from msgstorm.live.receipts import Acks, Receipts, Received
from msgstorm.live.receipts import warm_up as warm_up_receipts
from msgstorm.scenario.registry import LIVE_DRIVERS
from msgstorm.scenario.schema import Scenario
from msgstorm.traffic.generate import MessageBatch

__all__ = ["LiveSender"]

# A wait sleeps until ``SPIN_NS`` before the send time (asyncio's timers wake up to about a
# millisecond late) and spends the rest yielding to the event loop (consumers and the
# client's flusher run meanwhile): the first two stretches of ``live/pacing.py``'s wait.
# While behind schedule, let consumers and the client's flusher run after this many sends.
_YIELD_EVERY = 256
# A batch is staged with the driver (payloads and frames built) and its intended times
# turned into Python ints a slice at a time while it is sent (``slice_ends``: at most
# ``STAGED_MESSAGES`` messages or ``STAGED_BYTES`` of payloads): large enough that the
# per-slice work is a small share, small enough that building one (about 60 ns a small
# message on the wire client) delays no send by more than a few milliseconds.


def _next_window(batches: Iterator[MessageBatch]) -> tuple[MessageBatch, np.ndarray] | None:
    """The next batch and its send times (-1: not sent), made on a worker thread: a window's
    send times are megabytes of fresh memory at high rates, and filling them takes the
    page faults of it (a millisecond or more at a million messages) off the event loop."""
    batch = next(batches, None)
    return None if batch is None else (batch, np.full(len(batch), -1, dtype=np.int64))


class LiveSender:
    """A broker target's driver, what its callbacks bring in and its sends: ``connect`` the
    driver and the generator processes, ``send_all`` the traffic. The ``LiveTarget``
    (``live/target.py``) that holds it runs it."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        # The state's event log and clock, which never change for a run: a send reads them often.
        self.log, self.now, self.scenario, self.run_dir = state.log, state.now, state.scenario, state.run_dir
        scenario, run_dir = state.scenario, state.run_dir
        # What the progress bar shows, kept by the send loops without per-message work.
        self.emitted = 0  # messages this process handed to the driver
        self.lag_ns: int | None = None  # the latest hand-over's send lag
        self.driver: Driver = LIVE_DRIVERS[scenario.target](scenario.live, run_dir, self._on_event)
        self.can = DriverCapabilities.of(self.driver)  # what its class declares it can do beyond ``Driver``
        self.consumer_names = [f"consumer-{i}" for i in range(scenario.live.consumers)]
        self._authenticate(scenario)
        self.batches: list[MessageBatch] = []
        self.sent: list[np.ndarray] = []
        self.receipts = Receipts()
        # The distinct receipts, which the drain waits for (``LiveTarget.drained``).
        self.received = Received(by_consumer=bool(self.driver.fanout))
        self.acks = Acks()
        # [live.nats] generator_processes: this process sends the messages whose key is 0
        # modulo the count, generator processes the others (``generator_process.py``).
        self.generator_count = (self.can.processes.generator_processes(scenario.live)
                                if self.can.processes is not None else 1)
        self.generators: list[Any] = []
        self.sent_elsewhere: list[tuple[np.ndarray, np.ndarray]] = []  # since the last intake
        self.sent_elsewhere_count = 0
        self.dropped_elsewhere = 0  # publishes generator processes dropped
        self.seed: np.random.SeedSequence | None = None  # the traffic's: generator processes make it again
        self.outages_open = 0  # clients disconnected now (a user's server is watched meanwhile)
        self.unreadable = 0

    def _on_event(self, kind: str, detail: dict[str, Any]) -> None:
        now = self.now()
        if kind == EventKind.DISCONNECTED:  # a user's server is probed while a client is down
            self.outages_open += 1
        elif kind == EventKind.RECONNECTED:
            self.outages_open = max(0, self.outages_open - 1)
        if "at_wall_ns" in detail:  # it happened earlier: that wall-clock time on the run's clock
            detail = dict(detail)
            now = min(now, now - (time.time_ns() - int(detail.pop("at_wall_ns"))))
        self.log.add((now, kind, None, None, detail))

    def _on_receipt(self, consumer: int, data: bytes) -> None:
        t = self.now()
        msg_id = message_id(data)
        if msg_id is None:
            self.unreadable += 1
            return
        self.receipts.add(consumer, msg_id, t)
        self.received.add_one(consumer, msg_id)

    def _on_receipts(self, consumer: int, msg_ids: np.ndarray, unreadable: int) -> None:
        self.receipts.add_read(consumer, msg_ids, self.now())
        self.received.add(consumer, msg_ids)
        self.unreadable += unreadable

    def _on_timed_receipts(self, consumer: int, msg_ids: np.ndarray, read_times: np.ndarray,
                           read_counts: np.ndarray, unreadable: int) -> None:
        """Receipts a consumer process stamped itself, a time per read (CLOCK_MONOTONIC ns,
        the clock of ``RunState.now``)."""
        if msg_ids.size:  # a frame of no ids only says how far the process has reported
            self.receipts.add_timed(consumer, msg_ids, read_times - self.state.t0, read_counts)
            self.received.add(consumer, msg_ids)
        self.unreadable += unreadable

    def _on_ack(self, msg_id: int, order: int) -> None:
        self.acks.add(msg_id, order, self.now())

    def _on_acks(self, msg_ids: np.ndarray, orders: np.ndarray) -> None:
        """The acks one read brought (int64 arrays), with one time for them all."""
        self.acks.add_read(msg_ids, orders, self.now())

    def _authenticate(self, scenario: Scenario) -> None:
        """[security]: the driver's publisher signs and its consumers verify (``live/signing.py``)."""
        security = scenario.security
        if security is None or security.scheme == "none":
            return
        driver = self.can.signing
        if driver is None:
            raise TargetError(f"{scenario.target}: [security] scheme {security.scheme!r}: this target does not sign "
                              "messages (core NATS does)")
        problem = driver.signing_problem(scenario.live)
        if problem is not None:
            raise TargetError(f"{scenario.target}: [security] scheme {security.scheme!r}: {problem}")
        driver.authenticate(security.scheme, security.chain_id, scenario.run.seed)

    # --- the generator ----------------------------------------------------------------------

    async def connect(self) -> None:
        """The driver's clients, given its callbacks, then the generator processes."""
        # Compiled on a worker thread before the clock starts (a signal still stops the run).
        await asyncio.get_running_loop().run_in_executor(None, warm_up_receipts)
        await self.driver.connect(callbacks_for(type(self.driver), Callbacks(
            self._on_receipt, self._on_ack, self._on_receipts, self._on_acks, self._on_timed_receipts)))
        await self._start_generators()

    async def _start_generators(self) -> None:
        """Generator processes 1 .. N-1, connected and waiting for the run's start."""
        if self.generator_count == 1:
            return
        from msgstorm.live.generator_process import GeneratorProcess, write_spec

        if self.seed is None:
            raise TargetError("generator processes need the traffic's seed")
        assert self.can.processes is not None  # generator_count > 1 comes from it
        url = self.can.processes.url
        assert url is not None
        spec = self.run_dir / "servers" / "generators.pickle"
        write_spec(spec, self.scenario, self.seed)
        self.generators = [
            GeneratorProcess(index, self.generator_count, f"msgstorm-generator-{index}", url, spec,
                             self.run_dir / "servers", self._on_sent, self._on_generator_event)
            for index in range(1, self.generator_count)]
        try:
            started = await asyncio.gather(*(g.start(self.scenario.live.start_timeout / 1e9) for g in self.generators),
                                           return_exceptions=True)
            failed = next((outcome for outcome in started if isinstance(outcome, BaseException)), None)
            if failed is not None:
                raise failed
        except BaseException:
            for generator in self.generators:
                generator.kill()
            raise
        finally:
            spec.unlink(missing_ok=True)  # each has read it before it said it was ready

    def _on_sent(self, index: int, msg_ids: np.ndarray, times: np.ndarray, counts: np.ndarray, _: int) -> None:
        """What a generator process sent: each burst's time (CLOCK_MONOTONIC ns) and size."""
        if msg_ids.size:
            self.sent_elsewhere.append((msg_ids, np.repeat(times - self.state.t0, counts)))
            self.sent_elsewhere_count += msg_ids.size

    def _on_generator_event(self, kind: str, detail: dict[str, Any]) -> None:
        self.dropped_elsewhere += int(detail.get("dropped", 0) or 0)  # sent while its connection was down
        self._on_event(kind, detail)

    def refuse_what_the_server_refuses(self) -> None:
        """Before anything is sent: an agent whose messages can be larger than the server
        takes (NATS's max_payload, which it announces) would have every such publish refused
        and the connection closed, so the run would measure nothing. Said with the field."""
        limit = self.can.max_payload.max_payload if self.can.max_payload is not None else None
        if limit is None:
            return
        for index, agent in enumerate(self.scenario.agents):
            upper = agent.size.upper
            if upper is not None and max(int(upper), HEADER.size) > limit:
                raise TargetError(
                    f"agents[{index}].size ({agent.name!r}): messages of up to {int(upper):,} B are larger than "
                    f"the server takes ({self.scenario.target} max_payload {limit:,} B): it would refuse them "
                    f"and close the connection; lower the size or raise max_payload in the server's configuration")

    async def send_all(self, traffic: Iterator[MessageBatch]) -> None:
        # Generator processes need the burst path (its own-share filter), which also serves burst = 1.
        burst = self.can.bursts
        if burst is not None and (burst.burst > 1 or self.generator_count > 1):
            await self._send_bursts(burst, traffic)
            return
        run = self.scenario.run
        stop_at = run.duration
        publish = self.driver.publish
        counter = self.can.accounting.state if self.can.accounting is not None else None
        now = self.now
        since_yield = 0
        for batch in traffic:
            sent = np.full(len(batch), -1, dtype=np.int64)
            self.batches.append(batch)
            self.sent.append(sent)
            ids, keys, sizes = batch.msg_id.tolist(), batch.key.tolist(), batch.size.tolist()
            for i, t_intended in enumerate(batch.t_intended.tolist()):
                if t_intended >= stop_at:
                    return
                wait = t_intended - now()
                while wait > 0:
                    await asyncio.sleep((wait - SPIN_NS) / 1e9 if wait > SPIN_NS else 0)
                    wait = t_intended - now()
                sent[i] = now()
                if sent[i] >= stop_at + STOP_GRACE_NS:  # behind at the run's end: the rest is unsent, never late
                    sent[i] = -1
                    self.state.stopped_behind = True
                    return
                handed_over = counter.handed_over if counter is not None else 0
                try:
                    await publish(ids[i], payload(ids[i], keys[i], sizes[i]))
                except asyncio.CancelledError:
                    if counter is not None and counter.handed_over == handed_over:
                        sent[i] = -1  # interrupted before the driver took it: never sent
                    raise
                since_yield += 1
                self.emitted += 1
                self.lag_ns = sent[i] - t_intended
                if since_yield >= _YIELD_EVERY:
                    since_yield = 0
                    await asyncio.sleep(0)

    async def _send_bursts(self, driver: Bursts, traffic: Iterator[MessageBatch]) -> None:
        """As ``send_all``, for a driver that takes many messages at once: the batch is
        staged with the driver a slice at a time (``slice_ends``, as columns: no Python
        object per message), and every staged message due when the generator wakes leaves
        in one ``publish_staged`` (at most ``driver.burst``), each stamped with the time that
        burst was handed over. So that no pause opens in the schedule, the next window's
        batch is generated on a worker thread while this one is sent, and a slice's intended
        times are turned into Python ints (``bisect`` on a list finds a burst's end faster
        than a numpy call)."""
        stop_at = self.scenario.run.duration
        publish_staged = driver.publish_staged
        counter = self.can.accounting.state if self.can.accounting is not None else None
        burst = driver.burst
        now = self.now
        since_yield = 0
        loop = asyncio.get_running_loop()
        batches = iter(traffic)
        upcoming = loop.run_in_executor(None, _next_window, batches)
        while (window := await upcoming) is not None:
            upcoming = loop.run_in_executor(None, _next_window, batches)
            batch, sent = window
            self.batches.append(batch)
            self.sent.append(sent)
            stop = int(np.searchsorted(batch.t_intended, stop_at, side="left"))
            # With generator processes, this process sends its share only (positions in the batch).
            own = None if self.generator_count == 1 else np.flatnonzero(batch.key[:stop] % self.generator_count == 0)
            ids, keys, sizes, intended = ((batch.msg_id, batch.key, batch.size, batch.t_intended) if own is None else
                                          (batch.msg_id[own], batch.key[own], batch.size[own], batch.t_intended[own]))
            mine = stop if own is None else own.size
            first = 0
            for last in slice_ends(sizes[:mine]):
                times = intended[first:last].tolist()
                driver.stage(ids[first:last], keys[first:last], sizes[first:last])
                i, n = 0, last - first
                while i < n:
                    wait = times[i] - now()
                    while wait > 0:
                        await asyncio.sleep((wait - SPIN_NS) / 1e9 if wait > SPIN_NS else 0)
                        wait = times[i] - now()
                    t = now()
                    if t >= stop_at + STOP_GRACE_NS:  # behind at the run's end: the rest is unsent, never late
                        # Messages a driver's wait left over were stamped before it: unsent too.
                        if own is None:
                            sent[first + i:first + n] = -1
                        else:
                            sent[own[first + i:first + n]] = -1
                        self.state.stopped_behind = True
                        upcoming.cancel()
                        return
                    j = min(n, i + burst, max(i + 1, bisect.bisect_right(times, t, i, n)))
                    if own is None:
                        sent[first + i:first + j] = t
                    else:
                        sent[own[first + i:first + j]] = t
                    handed_over = counter.handed_over if counter is not None else 0
                    try:
                        published = await publish_staged(j - i)
                    except asyncio.CancelledError:
                        # Interrupted in a wait of the driver's: the messages it had not taken
                        # were never sent, and get no send time (nor a row).
                        taken = i + counter.handed_over - handed_over if counter is not None else j
                        if own is None:
                            sent[first + taken:first + j] = -1
                        else:
                            sent[own[first + taken:first + j]] = -1
                        raise
                    if published is not None:  # the driver waited: the rest is stamped when handed over again
                        j = i + published
                    since_yield += j - i
                    self.emitted += j - i
                    self.lag_ns = t - times[i]
                    i = j
                    if since_yield >= _YIELD_EVERY:
                        since_yield = 0
                        await asyncio.sleep(0)
                first = last
            if stop < len(batch):
                upcoming.cancel()
                return
