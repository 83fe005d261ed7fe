"""The live target: the open-loop generator, the consumers and the history they write.

Place in the pipeline: ``runner`` -> **LiveTarget** -> history, beside ``ShadowNetwork``.
The traffic model's messages leave at their intended times (``t_intended``), never when a
previous publish returns: a broker that stalls shows as latency, not as a lower offered
rate (no coordinated omission). One monotonic clock stamps the intended time, the send and
every receipt (CLOCK_MONOTONIC: the host's, also in consumer processes), so end-to-end
latency needs no clock sync.

The generator records its own send lag (``t_sent - t_intended``); the analysis reports it
as ``generator`` in summary.json and calls the generator saturated when it could not keep
the schedule. The run is bounded: nothing is sent after ``run.duration``, and receipts are
awaited at most ``run.drain`` after the last send.

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
delivery check needs), run end, servers started and stopped, disconnections, errors.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import gc
import itertools
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.errors import TargetError
from msgstorm.history.events import EventKind
from msgstorm.history.writer import HistoryWriter
from msgstorm.live.drivers.base import BulkAckDriver, BurstDriver, Driver
from msgstorm.live.payload import HEADER, message_id, payload
from msgstorm.scenario.registry import LIVE_DRIVERS
from msgstorm.scenario.schema import MESSAGE_KINDS, Scenario
from msgstorm.traffic.generate import MessageBatch, generate_traffic

__all__ = ["HEADER", "LiveTarget", "Receipts", "first_arrivals"]

# asyncio's sleep wakes up to about a millisecond late (its timers round to the loop's
# clock resolution), so a wait sleeps until this long before the send time and spends the
# rest yielding to the event loop (consumers and the client's flusher run meanwhile).
_SPIN_NS = 1_200_000
# While behind schedule, let consumers and the client's flusher run after this many sends.
_YIELD_EVERY = 256
# A batch is staged with the driver (payloads and frames built) and its intended times
# turned into Python ints this many messages at a time while it is sent: large enough that
# the per-slice work is a small share, small enough that building one (about 60 ns a
# message on the wire client) delays no send by more than a fraction of a millisecond.
_SLICE = 2048
# The interpreter's thread switch interval during a live run.
_SWITCH_S = 100e-6
# Signals that stop a run (``LiveTarget._stop_on_signals``).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PUBLISHER = "publisher"
STREAM = "stream"


class Receipts:
    """Every receipt in arrival order: (consumer, msg_id, time). One at a time (``add``),
    or the ids one read brought as one array, with one consumer and one time (``add_read``):
    nothing is made per message on the bulk path. Receipts a consumer process stamped
    itself (``add_timed``) arrive later than they happened, interleaved with other
    consumers': ``columns`` puts them in time order."""

    def __init__(self) -> None:
        self.count = 0
        self._timed = False
        # (consumer, ids, time): the time one int (a read), an array (an id each) or (each
        # read's time, each read's count of ids).
        self._chunks: list[tuple[np.ndarray | int, np.ndarray, np.ndarray | int | tuple[np.ndarray, np.ndarray]]] = []
        self._consumer: list[int] = []
        self._msg: list[int] = []
        self._t: list[int] = []

    def add(self, consumer: int, msg_id: int, t: int) -> None:
        self._consumer.append(consumer)
        self._msg.append(msg_id)
        self._t.append(t)
        self.count += 1

    def add_read(self, consumer: int, msg_ids: np.ndarray, t: int) -> None:
        self._close_singles()
        self._chunks.append((consumer, msg_ids, t))
        self.count += msg_ids.size

    def add_timed(self, consumer: int, msg_ids: np.ndarray, read_times: np.ndarray, read_counts: np.ndarray) -> None:
        """Receipts of several reads, in the order they happened: read k brought
        ``read_counts[k]`` of the ids, at ``read_times[k]`` (int64, this run's clock)."""
        self._close_singles()
        self._chunks.append((consumer, msg_ids, (read_times, read_counts)))
        self.count += msg_ids.size
        self._timed = True

    def _close_singles(self) -> None:
        if self._msg:
            self._chunks.append((np.asarray(self._consumer, dtype=np.int64), np.asarray(self._msg, dtype=np.int64),
                                 np.asarray(self._t, dtype=np.int64)))
            self._consumer, self._msg, self._t = [], [], []

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(consumer, msg_id, t), int64 each, in arrival order."""
        self._close_singles()
        empty = np.zeros(0, dtype=np.int64)
        consumer, msg, t = (np.concatenate([empty, *(np.broadcast_to(c, m.shape) for c, m, _ in self._chunks)]),
                            np.concatenate([empty, *(m for _, m, _ in self._chunks)]),
                            np.concatenate([empty, *(_times_of(t, m) for _, m, t in self._chunks)]))
        if self._timed and t.size > 1 and bool((t[1:] < t[:-1]).any()):
            order = np.argsort(t, kind="stable")  # equal times keep the order they came in
            consumer, msg, t = consumer[order], msg[order], t[order]
        return consumer, msg, t


def _times_of(t: np.ndarray | int | tuple[np.ndarray, np.ndarray], ids: np.ndarray) -> np.ndarray:
    if isinstance(t, tuple):
        return np.repeat(t[0], t[1])
    return np.broadcast_to(t, ids.shape)


def first_arrivals(ids: np.ndarray, arrived: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``ids`` (distinct message ids) found in ``arrived`` (ids in order of
    arrival; repeats and ids not in ``ids`` allowed), in order of their first arrival, and
    where in ``arrived`` that first arrival is."""
    if ids.size == 0 or arrived.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    place = np.minimum(np.searchsorted(ids[order], arrived), ids.size - 1)
    known = ids[order][place] == arrived
    rows = order[place[known]]
    first_rows, first = np.unique(rows, return_index=True)  # first: index into rows
    by_arrival = np.argsort(first, kind="stable")
    return first_rows[by_arrival], np.flatnonzero(known)[first[by_arrival]]


def _next_window(batches: Iterator[MessageBatch]) -> tuple[MessageBatch, np.ndarray] | None:
    """The next batch and its send times (-1: not sent), made on a worker thread: a window's
    send times are megabytes of fresh memory at high rates, and filling them takes the
    page faults of it (a millisecond or more at a million messages) off the event loop."""
    batch = next(batches, None)
    return None if batch is None else (batch, np.full(len(batch), -1, dtype=np.int64))


class LiveTarget:
    """Drive ``scenario.target``'s driver with the scenario's traffic; ``finish`` writes
    what happened. ``nodes`` and ``interrupted`` are what the run row records."""

    def __init__(self, scenario: Scenario, writer: HistoryWriter, run_dir: Path) -> None:
        self.scenario = scenario
        self.writer = writer
        self.run_dir = run_dir
        self.interrupted = False
        self.drained = False
        self._t0 = time.monotonic_ns()
        self._events: list[tuple[int, str, str | None, float | None, dict[str, Any] | None]] = []
        self.driver: Driver = LIVE_DRIVERS[scenario.target](scenario.live, run_dir, self._on_event)
        self.consumer_names = [f"consumer-{i}" for i in range(scenario.live.consumers)]
        self.batches: list[MessageBatch] = []
        self.sent: list[np.ndarray] = []
        self.receipts = Receipts()
        # [live.nats] generator_processes: this process sends the messages whose key is 0
        # modulo the count, generator processes the others (``generator_process.py``).
        nats = scenario.live.nats
        self.generator_count = nats.generator_processes if scenario.target == "nats" and nats.client == "wire" else 1
        self.generators: list[Any] = []
        self.sent_elsewhere: list[tuple[np.ndarray, np.ndarray]] = []
        self.sent_elsewhere_count = 0
        self.seed: np.random.SeedSequence | None = None
        self._handlers: dict[int, Any] = {}
        self.ack_msg: list[int] = []
        self.ack_order: list[int] = []
        self.ack_t: list[int] = []
        self.stored: list[bytes] | None = None
        self.t_read_back = 0
        self.unreadable = 0

    @property
    def nodes(self) -> list[dict[str, str]]:
        nodes = [{"name": PUBLISHER, "region": "local"}, *({"name": n, "region": "local"} for n in self.consumer_names)]
        return nodes + ([{"name": STREAM, "region": "broker"}] if self.stored is not None else [])

    def _now(self) -> int:
        return time.monotonic_ns() - self._t0

    def _on_event(self, kind: str, detail: dict[str, Any]) -> None:
        self._events.append((self._now(), kind, None, None, detail))

    def _on_receipt(self, consumer: int, data: bytes) -> None:
        t = self._now()
        msg_id = message_id(data)
        if msg_id is None:
            self.unreadable += 1
            return
        self.receipts.add(consumer, msg_id, t)

    def _on_receipts(self, consumer: int, msg_ids: np.ndarray, unreadable: int) -> None:
        self.receipts.add_read(consumer, msg_ids, self._now())
        self.unreadable += unreadable

    def _on_timed_receipts(self, consumer: int, msg_ids: np.ndarray, read_times: np.ndarray,
                           read_counts: np.ndarray, unreadable: int) -> None:
        """Receipts a consumer process stamped itself, a time per read (CLOCK_MONOTONIC ns,
        the clock of ``_now``)."""
        self.receipts.add_timed(consumer, msg_ids, read_times - self._t0, read_counts)
        self.unreadable += unreadable

    def _on_ack(self, msg_id: int, order: int) -> None:
        self.ack_t.append(self._now())
        self.ack_msg.append(msg_id)
        self.ack_order.append(order)

    def _on_acks(self, msg_ids: np.ndarray, orders: np.ndarray) -> None:
        """The acks one read brought (int64 arrays), with one time for them all."""
        self.ack_t.extend([self._now()] * msg_ids.size)
        self.ack_msg.extend(msg_ids.tolist())
        self.ack_order.extend(orders.tolist())

    # --- running ------------------------------------------------------------------------

    def run(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None = None) -> None:
        """Send ``traffic`` (made from ``seed``: generator processes make it again from that)."""
        self.seed = seed
        self._events.append((self._now(), EventKind.RUN_START, None, None, {
            "target": self.scenario.target, "consumers": len(self.consumer_names),
            "processes": int(getattr(self.driver, "processes", 1)) + self.generator_count - 1,
            "fanout": bool(self.driver.fanout), "acks": bool(self.driver.acks)}))
        started: set[int] = set()  # pids of the servers whose server_start is recorded
        try:
            for server in self.driver.start_servers():
                self._events.append((self._now(), EventKind.SERVER_START, None, None, server))
                started.add(server["pid"])
            # A batch can take a few hundred ms to build (a step ramp's first), and the first
            # two windows compile the traffic draws' code paths on a fresh install (numba
            # holds the GIL while it compiles: a 200 ms stall of the generator). Build both
            # before the clock starts, so the schedule neither opens late nor stalls. On a worker
            # thread: numba swallows an exception raised inside its compiler, so a SIGTERM or
            # Ctrl-C (KeyboardInterrupt) would be lost if it came while the main thread compiled.
            traffic = iter(traffic)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                ahead = pool.submit(lambda: list(itertools.islice(traffic, 2))).result()
            # The next window is generated on a worker thread: hand the GIL back to the event
            # loop within _SWITCH_S (Python's default, 5 ms, would show in the latency).
            # The cycle collector stops the interpreter while it walks every tracked object: in
            # a process holding a large heap (a long test session, a notebook) a full collection
            # takes tens of ms, which would show as send lag. Objects that exist now are frozen
            # out of its reach and collection is off while the generator runs; what the run
            # itself allocates is freed by reference counting (payloads, lists of ints).
            switch = sys.getswitchinterval()
            collecting = gc.isenabled()
            gc.collect()
            gc.freeze()
            gc.disable()
            sys.setswitchinterval(_SWITCH_S)
            self._handlers = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
            try:
                asyncio.run(self._main(itertools.chain(ahead, traffic)))
            except asyncio.CancelledError:
                if not self.interrupted:  # not cancelled by a signal of ours
                    raise
                raise KeyboardInterrupt from None
            finally:
                sys.setswitchinterval(switch)
                gc.unfreeze()
                if collecting:
                    gc.enable()
                if threading.current_thread() is threading.main_thread():
                    for sig, handler in self._handlers.items():  # the loop's own handlers are gone with it
                        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        except KeyboardInterrupt:
            self.interrupted = True
            self._events.append((self._now(), EventKind.INTERRUPTED, None, None, None))
        finally:
            self.driver.stop_servers()
            for server in getattr(self.driver, "servers", []):
                if server.pid is None:  # never spawned: a start that failed or was interrupted first
                    continue
                if server.pid not in started:
                    # Spawned, but the start was cut short (a signal while it waited for the port,
                    # a sibling of a cluster that failed): the history still pairs every stop
                    # with its start.
                    self._events.append((self._now(), EventKind.SERVER_START, None, None,
                                         {"name": server.name, "pid": server.pid, "url": None,
                                          "started": False}))
                self._events.append((self._now(), EventKind.SERVER_STOP, None, None,
                                     {"name": server.name, "returncode": server.returncode}))

    def _stop_on_signals(self) -> None:
        """SIGINT and SIGTERM, while the loop runs, cancel the run's task: every await it is in
        ends with CancelledError and the ``finally`` blocks stop what was started. A handler
        that raises KeyboardInterrupt wherever the interpreter happens to be (the command
        line's) can land inside the event loop's own bookkeeping and lose the wake-up of the
        very task it stops, which then waits forever. A second signal goes to that handler."""
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread's loop only
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(sig: int) -> None:
            if not self.interrupted:
                self.interrupted = True
                task.cancel()
                return
            handler = self._handlers.get(sig)
            if callable(handler):
                handler(sig, None)

        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop, sig)

    async def _main(self, traffic: Iterator[MessageBatch]) -> None:
        self._stop_on_signals()
        try:
            try:
                if isinstance(self.driver, BurstDriver):
                    self.driver.on_receipts = self._on_receipts
                if isinstance(self.driver, BulkAckDriver):
                    self.driver.on_acks = self._on_acks
                if hasattr(self.driver, "on_timed_receipts"):
                    self.driver.on_timed_receipts = self._on_timed_receipts
                await self.driver.connect(self._on_receipt, self._on_ack)
                await self._start_generators()
            except Exception as error:  # noqa: BLE001 - any client failure here means no run
                raise TargetError(f"{self.scenario.target}: cannot connect: {type(error).__name__}: {error}") from error
            # The schedule starts now: connecting is not part of the run's time.
            shift = self._now()
            self._t0 += shift
            self._events = [(t - shift, kind, node, value, detail) for t, kind, node, value, detail in self._events]
            for generator in self.generators:
                generator.begin(self._t0)
            await self._send_all(traffic)
            # The generator processes keep the same schedule: wait for the end of theirs.
            await asyncio.gather(*(generator.finished() for generator in self.generators))
            await self.driver.flush()
            await self._drain()
            if not self.interrupted:
                self.stored = await self.driver.read_back()
                self.t_read_back = self._now()
                self._events.append((self.t_read_back, EventKind.READ_BACK, None,
                                     None if self.stored is None else float(len(self.stored)), None))
        finally:
            # Interrupted: stopped now, each reports what it sent (a no-op for one that is done).
            await asyncio.gather(*(generator.stop() for generator in self.generators))
            await self.driver.close()

    async def _start_generators(self) -> None:
        """Generator processes 1 .. N-1, connected and waiting for the run's start."""
        if self.generator_count == 1:
            return
        from msgstorm.live.generator_process import GeneratorProcess, write_spec

        if self.seed is None:
            raise TargetError("generator processes need the traffic's seed")
        url = getattr(self.driver, "url", None)
        assert url is not None
        spec = self.run_dir / "servers" / "generators.pickle"
        write_spec(spec, self.scenario, self.seed)
        self.generators = [
            GeneratorProcess(index, self.generator_count, f"msgstorm-generator-{index}", url, spec,
                             self.run_dir / "servers", self._on_sent, self._on_event)
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
        self.sent_elsewhere.append((msg_ids, np.repeat(times - self._t0, counts)))
        self.sent_elsewhere_count += msg_ids.size

    async def _send_all(self, traffic: Iterator[MessageBatch]) -> None:
        # Generator processes need the burst path (its own-share filter), which also serves burst = 1.
        if isinstance(self.driver, BurstDriver) and (self.driver.burst > 1 or self.generator_count > 1):
            await self._send_bursts(self.driver, traffic)
            return
        run = self.scenario.run
        stop_at = run.duration
        publish = self.driver.publish
        now = self._now
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
                    await asyncio.sleep((wait - _SPIN_NS) / 1e9 if wait > _SPIN_NS else 0)
                    wait = t_intended - now()
                sent[i] = now()
                await publish(ids[i], payload(ids[i], keys[i], sizes[i]))
                since_yield += 1
                if since_yield >= _YIELD_EVERY:
                    since_yield = 0
                    await asyncio.sleep(0)

    async def _send_bursts(self, driver: BurstDriver, traffic: Iterator[MessageBatch]) -> None:
        """As ``_send_all``, for a driver that takes many messages at once: the batch is
        staged with the driver a slice at a time (``_SLICE`` messages, as columns: no Python
        object per message), and every staged message due when the generator wakes leaves
        in one ``publish_staged`` (at most ``driver.burst``), each stamped with the time that
        burst was handed over. So that no pause opens in the schedule, the next window's
        batch is generated on a worker thread while this one is sent, and a slice's intended
        times are turned into Python ints (``bisect`` on a list finds a burst's end faster
        than a numpy call)."""
        stop_at = self.scenario.run.duration
        publish_staged = driver.publish_staged
        burst = driver.burst
        now = self._now
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
            for first in range(0, mine, _SLICE):
                last = min(first + _SLICE, mine)
                times = intended[first:last].tolist()
                driver.stage(ids[first:last], keys[first:last], sizes[first:last])
                i, n = 0, last - first
                while i < n:
                    wait = times[i] - now()
                    while wait > 0:
                        await asyncio.sleep((wait - _SPIN_NS) / 1e9 if wait > _SPIN_NS else 0)
                        wait = times[i] - now()
                    t = now()
                    j = min(n, i + burst, max(i + 1, bisect.bisect_right(times, t, i, n)))
                    if own is None:
                        sent[first + i:first + j] = t
                    else:
                        sent[own[first + i:first + j]] = t
                    await publish_staged(j - i)
                    since_yield += j - i
                    i = j
                    if since_yield >= _YIELD_EVERY:
                        since_yield = 0
                        await asyncio.sleep(0)
            if stop < len(batch):
                upcoming.cancel()
                return

    async def _drain(self) -> None:
        """Wait until every message sent is received (by every consumer on a fan-out target,
        by one otherwise) and acked (on a target with acks), or ``run.drain`` has passed."""
        sent = sum(int((s >= 0).sum()) for s in self.sent) + self.sent_elsewhere_count
        expected = sent * (len(self.consumer_names) if self.driver.fanout else 1)
        acks = sent if self.driver.acks else 0
        deadline = self._now() + self.scenario.run.drain
        while self._now() < deadline:
            if self.receipts.count >= expected and len(self.ack_msg) >= acks:
                self.drained = True
                return
            await asyncio.sleep(0.005)

    # --- the history ------------------------------------------------------------------------

    def finish(self) -> int:
        """Write the messages, deliveries and events; return the run's end time (ns)."""
        t_end = self._now()
        self._write_messages()
        sent = sum(int((s >= 0).sum()) for s in self.sent) + self.sent_elsewhere_count
        self._events.append((t_end, EventKind.RUN_END, None, float(sent), None))
        self._events.sort(key=lambda event: event[0])
        if self._events:
            t, kind, node, value, detail = zip(*self._events)
            self.writer.append("events", {
                "t": list(t), "kind": list(kind), "node": list(node), "value": list(value),
                "height": [None] * len(t), "detail": [None if d is None else json.dumps(d, default=str) for d in detail],
            })
        self._events = []
        return t_end

    def _write_messages(self) -> None:
        if self.batches:
            batch = MessageBatch.concat(self.batches)
            sent = np.concatenate(self.sent)
        else:
            batch, sent = None, np.zeros(0, dtype=np.int64)
        if self.sent_elsewhere:
            # Generator processes keep their own schedule: one ahead of this process when the run
            # was stopped sent messages of windows this one had not made yet. Traffic is a pure
            # function of the scenario and seed: make those windows again so the messages get rows.
            top = max((int(ids.max()) for ids, _ in self.sent_elsewhere if ids.size), default=-1)
            held = int(batch.msg_id[-1]) if batch is not None and len(batch) else -1
            if top > held and self.seed is not None:
                more, more_sent = [], []
                for extra in generate_traffic(self.scenario, self.seed, window_ns=self.scenario.run.window):
                    if not len(extra) or int(extra.msg_id[-1]) <= held:
                        continue
                    more.append(extra)
                    more_sent.append(np.full(len(extra), -1, dtype=np.int64))
                    if int(extra.msg_id[-1]) >= top:
                        break
                batch = MessageBatch.concat(([batch] if batch is not None else []) + more)
                sent = np.concatenate([sent, *more_sent])
        if batch is not None:
            # What generator processes sent, by message id (ids are consecutive from the first batch's).
            first = int(batch.msg_id[0]) if len(batch) else 0
            for ids, times in self.sent_elsewhere:
                at = ids - first
                inside = (at >= 0) & (at < sent.size)
                sent[at[inside]] = times[inside]
        receipts_consumer, receipts_msg, receipts_t = self.receipts.columns()
        if receipts_msg.size:
            self.writer.append("deliveries", {
                "msg_id": receipts_msg,
                "node": pa.array(np.asarray(self.consumer_names, dtype=object)[receipts_consumer]),
                "t_delivered": receipts_t, "hops": np.ones(receipts_msg.size, dtype=np.int32)})
        if self.stored:
            stored = [HEADER.unpack_from(p)[0] for p in self.stored if len(p) >= HEADER.size]
            self.writer.append("deliveries", {
                "msg_id": np.asarray(stored, dtype=np.int64), "node": pa.array([STREAM] * len(stored)),
                "t_delivered": np.full(len(stored), self.t_read_back, dtype=np.int64),
                "hops": np.zeros(len(stored), dtype=np.int32)})
        if batch is None:
            return
        keep = sent >= 0
        ids = batch.msg_id[keep]
        n = ids.size
        # First receipt per message (over consumers), and the order of first receipts.
        first_t = np.full(n, -1, dtype=np.int64)
        seq_no = np.full(n, -1, dtype=np.int64)
        rows, at = first_arrivals(ids, receipts_msg)
        first_t[rows] = receipts_t[at]
        seq_no[rows] = np.arange(rows.size)
        if self.driver.acks:
            # The broker's ack is the commit: its time and order, whatever consumers saw.
            ack_t = np.full(n, -1, dtype=np.int64)
            ack_order = np.full(n, -1, dtype=np.int64)
            rows, at = first_arrivals(ids, np.asarray(self.ack_msg, dtype=np.int64))
            ack_t[rows] = np.asarray(self.ack_t, dtype=np.int64)[at]
            ack_order[rows] = np.asarray(self.ack_order, dtype=np.int64)[at]
            acked = ack_t >= 0
            first_t = np.where(acked, ack_t, first_t)
            seq_no = np.where(acked, ack_order, -1)
        got = first_t >= 0
        unreceived = "pending" if self.interrupted else "lost"
        status = np.where(got, "committed", unreceived)
        agents = np.asarray([a.name for a in self.scenario.agents], dtype=object)
        kinds = np.asarray(MESSAGE_KINDS, dtype=object)

        def nullable(values: np.ndarray) -> pa.Array:
            return pa.array(values, mask=values < 0)

        self.writer.append("messages", {
            "msg_id": ids, "kind": pa.array(kinds[batch.kind[keep]]), "agent": pa.array(agents[batch.agent[keep]]),
            "node": pa.array([PUBLISHER] * n, type=pa.string()), "key": batch.key[keep], "size": batch.size[keep],
            "fee": batch.fee[keep], "t_intended": batch.t_intended[keep], "t_sent": sent[keep],
            "t_received": pa.nulls(n, pa.int64()) if self.driver.acks else nullable(first_t), "t_dequeued": pa.nulls(n, pa.int64()),
            "t_sequenced": nullable(np.where(seq_no >= 0, first_t, -1)), "seq_no": nullable(seq_no),
            "t_committed": nullable(first_t),
            "block": pa.nulls(n, pa.int64()), "status": pa.array(status.tolist(), type=pa.string()),
        })
