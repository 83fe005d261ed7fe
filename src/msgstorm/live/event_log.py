"""A live run's events, on disk as they happen: the ``events`` table a killed run still has.

Place in the pipeline: inside the live target (``live/target.py``), between what reports an
event (the target itself, its driver, the nemesis, the CPU sampler) and the history writer.
Every event is kept in memory (the target looks some up: the servers whose start is recorded,
a read-back's error) and written to the history's ``events`` table soon after it happens, as
a Parquet part of its own (``HistoryWriter.flush("events")``: encoded, fsync'd and renamed into
place on the writer's threads within milliseconds). So a run that is SIGKILLed, with or
without ``[live] record_every``, keeps its run start, the servers it started (with their
pids), its faults' starts and ends, disconnections and errors up to the kill.

Lifecycle: events before the run's clock starts (the run start, servers started, the fault
proxy, connecting) are held, because the clock's zero moves to the schedule's start and their
times with it (``start_clock``); from then on each event is handed to the writer as it comes,
on the ``write`` executor (the recorder's thread: the writer has one thread writing to it
while the run goes). ``CPU_SECONDS`` samples, many a second, wait for the next other event
or a recorder flush at most every ``SAMPLES_EVERY_S`` instead of a part each. After the drain
(``end_at``) an event's time is at most the run's end (the read-back and the stopping of
servers are a phase after it). ``stop_writing`` comes before the executor shuts down; ``finish``
then writes what is left, in time order, on the caller's thread. The table is in time order part by part, not as a
whole: readers sort events by time (``analysis/_common.events_of``).
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from typing import Any

from msgstorm.history.events import EventKind
from msgstorm.history.writer import HistoryWriter

__all__ = ["SAMPLES_EVERY_S", "Event", "EventLog"]

# (t on the run's clock in ns, kind, node, value, detail)
Event = tuple[int, str, "str | None", "float | None", "dict[str, Any] | None"]
# Kinds that wait for the next other event rather than being written as a part each.
_BATCHED = frozenset({EventKind.CPU_SECONDS})
# With nothing else to write, samples are written at most this often (``write_pending``'s
# ``unless_within_s``): a part a second would double the parts of a long recorded run.
SAMPLES_EVERY_S = 10.0


class EventLog:
    """The events of one live run, written as they come once the clock has started."""

    def __init__(self, writer: HistoryWriter, executor: concurrent.futures.Executor) -> None:
        self.writer = writer
        self.executor = executor
        self.events: list[Event] = []
        self.written = 0  # events[:written] are handed to the writer
        self.clock_started = False
        self.t_end: int | None = None  # the run's end, once the drain is over
        self.closed = False  # the executor is shut down: ``finish`` writes the rest
        self._lock = threading.Lock()  # a driver may report from a thread of its own
        self._writes: list[concurrent.futures.Future[None]] = []
        self._last_write_s = time.monotonic()

    def add(self, event: Event) -> None:
        """Keep ``event``; once the clock has started, write it (and what waited) now."""
        self.events.append(event)
        if self.clock_started and not self.closed and event[1] not in _BATCHED:
            self.write_pending()

    def start_clock(self, shift_ns: int) -> None:
        """The run's zero moves ``shift_ns`` later: the events so far are timed anew and
        written, and every event after them as it comes."""
        self.events = [(t - shift_ns, kind, node, value, detail) for t, kind, node, value, detail in self.events]
        self.clock_started = True
        self.write_pending()

    def end_at(self, t_end: int) -> None:
        """The run ended at ``t_end`` (the drain's end): later events are stamped then."""
        self.t_end = t_end

    def write_pending(self, unless_within_s: float = 0.0) -> None:
        """Hand what has not been written to the writer's thread, to land as a part now;
        not when the last was handed over less than ``unless_within_s`` ago."""
        with self._lock:
            if self.closed or self.written == len(self.events):
                return
            if time.monotonic() - self._last_write_s < unless_within_s:
                return
            self._last_write_s = time.monotonic()
            batch = sorted(self._clamped(self.events[self.written:]), key=lambda event: event[0])
            self.written = len(self.events)
            self._writes = [write for write in self._writes if not write.done() or write.exception() is not None]
            self._writes.append(self.executor.submit(self._write, batch))

    def stop_writing(self) -> None:
        """Before the executor shuts down: events from here on wait for ``finish``."""
        with self._lock:
            self.closed = True

    def finish(self) -> None:
        """Once the executor is done: what is left, written in time order on this thread (an
        event added later waits for another ``finish``); raises what a write on the executor
        raised."""
        with self._lock:
            self.closed = True
            rest = sorted(self._clamped(self.events[self.written:]), key=lambda event: event[0])
            self.written = len(self.events)
        for write in self._writes:
            error = write.exception()
            if error is not None:
                raise error  # the history could not be written
        self._append(rest)

    def _clamped(self, events: list[Event]) -> list[Event]:
        if self.t_end is None:
            return events
        t_end = self.t_end
        return [(min(t, t_end), kind, node, value, detail) for t, kind, node, value, detail in events]

    def _write(self, events: list[Event]) -> None:
        self._append(events)
        self.writer.flush("events")

    def _append(self, events: list[Event]) -> None:
        if not events:
            return
        t, kind, node, value, detail = zip(*events)
        self.writer.append("events", {
            "t": list(t), "kind": list(kind), "node": list(node), "value": list(value),
            "height": [None] * len(t), "detail": [None if d is None else json.dumps(d, default=str) for d in detail],
        })
