"""Rows on their way from the live target into the history writer, written while the run goes.

Place in the pipeline: ``live/target.py`` -> **LiveRecorder** -> ``HistoryWriter``, as
``sim/recorder.py`` is for the simulator. The target keeps what the run brings (windows of
traffic and their send times, receipts, acks, what generator processes sent) on the event
loop's thread, and about once a second hands what came since to the recorder as an
``Intake`` (references, nothing copied); the recorder turns it into ``messages`` and
``deliveries`` rows on a thread of its own, and the writer's thread encodes them. A run that
is killed keeps the rows flushed up to about a second before the kill. Without
``record_every`` the target hands only its windows every second (``take_windows``: their
send times copied into the recorder's run columns, no row made, so the generator keeps its
headroom) and lets go of those sent in full; the rows are made at the end, from the windows
made again (the schedule is a pure function of the scenario and the seed, so it is not held
through the run: 9 bytes a message are, not 42).

A message's row is written once nothing that can still come would change it:

- on a target with acks, when its first ack arrives (``t_committed`` its time, ``seq_no``
  the broker's order);
- without acks, when its first receipt is known to be first: receipts are taken in time
  order (ties in the order they reached the target) up to a horizon before which every
  receipt is in (now, for receipts the target stamps itself; for consumer processes, which
  stamp their own and send them every 20 ms, the latest time each has reported), and
  ``seq_no`` counts first receipts in that order, as the end-of-run write did.

``deliveries`` rows are written in that same order, as a prefix: a receipt whose message's
row cannot be written yet (its send, by a generator process, is not reported yet, or falls
in a window this process has not made yet) holds back the receipts after it, so no delivery
is on disk before its message's row and the receipts keep the order the audit reads ties
in. On a target with acks a receipt whose message waits for its ack holds back only the
other receipts of its read (same time), which are then written after later reads, whole:
a message whose ack never comes (lost with a connection) does not hold the rest of the run. A receipt of an
id that was not sent before it arrived (a payload corrupted in flight) is not that
message's receipt: it gets its ``deliveries`` row and counts for nothing else.

At the end (``finish``) everything left is written: messages received but not acked (a
receipt's time, no ``seq_no``), and messages never received (``lost``, or ``pending`` when
the run was interrupted), and, for a run not interrupted, the messages the schedule
intended before the run's end that the generator never sent (``unsent``: it stops at the
run's end rather than send late), in msg_id order. The rows are those the end-of-run write
made before; only their order differs: ``messages`` in the order rows became final (msg_id
order within one flush), ``deliveries`` in receipt order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.history.schema import STATUSES
from msgstorm.history.writer import HistoryWriter
from msgstorm.live.receipts import Acks, Receipts, in_time_order
from msgstorm.scenario.schema import MESSAGE_KINDS
from msgstorm.traffic.generate import MessageBatch

__all__ = ["FAR", "PUBLISHER", "Intake", "LiveRecorder"]

PUBLISHER = "publisher"
# A time after every other: a horizon with nothing left to come.
FAR = np.iinfo(np.int64).max
# Rows handed to the writer at a time: each append turns its columns into Arrow on this
# thread, holding the GIL, and the generator must not wait long for it.
_ROWS_PER_APPEND = 32_768
# Receipts (and acks) the last intake takes at a time (see ``_receipts``).
_FINAL_SLICE = 1 << 18
# Statuses a live message row takes, as dictionary codes.
# Status codes: indices into the history's STATUSES (history/schema.py), the one list of them.
_COMMITTED, _LOST, _PENDING, _UNSENT = (STATUSES.index(status) for status in ("committed", "lost", "pending", "unsent"))

@dataclass
class Intake:
    """What the run brought since the last one, handed from the event loop's thread.

    ``windows``: traffic windows made since, each with its send times (the target's own
    array, -1 until sent; the sender goes on filling the newest). ``horizon``: every
    receipt before this time (this run's clock) is in ``receipts`` or an earlier intake.
    ``shares_through``: for generator process k (share k, from 1), every send it stamped
    before this time is in ``sent_elsewhere`` or an earlier intake (``FAR`` once it ended).
    """

    windows: list[tuple[MessageBatch, np.ndarray]] = field(default_factory=list)
    receipts: Receipts = field(default_factory=Receipts)
    acks: Acks = field(default_factory=Acks)
    sent_elsewhere: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    horizon: int = FAR
    shares_through: list[int] = field(default_factory=list)


class _Grown:
    """A column per message, indexed by msg_id minus the first id, grown as windows come."""

    def __init__(self, dtype: Any, fill: Any) -> None:
        self.values = np.full(1 << 12, fill, dtype=dtype)
        self.fill = fill

    def reserve(self, size: int, used: int) -> None:
        """Room for ``size`` values, the first ``used`` kept. The rest is uninitialised: its
        pages are not in memory until a window's values are written there (``clear``)."""
        if size > self.values.size:
            # By a quarter, not double: the columns are a run's largest arrays, and a ramp
            # brings most of its messages at the end (doubling could leave half unused).
            grown = np.empty(max(size, self.values.size + self.values.size // 4), dtype=self.values.dtype)
            grown[:used] = self.values[:used]
            self.values = grown

    def clear(self, start: int, end: int) -> None:
        self.values[start:end] = self.fill


# The schedule's columns of a message row, as a window (``MessageBatch``) holds them.
_SCHEDULE = (("t_intended", np.int64, 0), ("agent", np.int32, 0), ("kind", np.int8, 0), ("key", np.int64, 0),
             ("size", np.int32, 0), ("fee", np.float64, 0.0))


class LiveRecorder:
    """Lifecycle: ``flush(intake)`` (``[live] record_every``, with ``hold_schedule``) or
    ``take_windows`` (without it) any number of times, from one thread at a time, then
    ``finish(intake, interrupted)`` once; every row is then in the writer.

    Per message the recorder holds what the run measured: its send time and whether its
    row is written (9 bytes; 10 with generator processes, whose shares it tells apart).
    What the schedule said (intended time, agent, kind, key, size, fee: 33 bytes more) is a
    pure function of the scenario and the seed, so the last intake makes the windows again
    (``remake``: the same windows, in the same order, as the run was given) and writes
    their rows one window at a time. Only ``hold_schedule`` (rows written while the run
    goes, any message's row at any intake) copies the schedule's columns too."""

    def __init__(self, writer: HistoryWriter, agents: list[str], consumers: list[str], acks: bool,
                 shares: int = 1, *, remake: Callable[[], Iterable[MessageBatch]], hold_schedule: bool = False) -> None:
        self.writer = writer
        self.acks = acks
        self.shares = shares
        self._remake = remake
        self._agents = pa.array(agents, type=pa.string())
        self._kinds = pa.array(MESSAGE_KINDS, type=pa.string())
        self._consumers = pa.array(consumers, type=pa.string())
        self._publisher = pa.array([PUBLISHER], type=pa.string())
        self._statuses = pa.array(STATUSES, type=pa.string())
        self._first_id: int | None = None
        self._count = 0  # messages in the windows so far
        self._schedule = [name for name, _, _ in _SCHEDULE] if hold_schedule else []
        self._columns = {name: _Grown(dtype, fill) for name, dtype, fill in (
            *(column for column in _SCHEDULE if hold_schedule), ("t_sent", np.int64, -1), ("written", np.bool_, False),
            *((("share", np.int8, 0),) if shares > 1 else ()))}
        # (first position, the target's send times) of the newest window, which may still get sends
        self._windows: list[tuple[int, np.ndarray]] = []
        self._ahead: list[tuple[np.ndarray, np.ndarray]] = []  # sends reported for windows not here yet
        empty = np.zeros(0, dtype=np.int64)
        self._pending = (empty, empty, empty)  # receipts not written yet, in time order
        self._next_seq = 0
        self.messages_written = 0
        self.deliveries_written = 0

    # --- taking an intake in ---------------------------------------------------------------

    def _take_windows(self, windows: list[tuple[MessageBatch, np.ndarray]]) -> None:
        # Room for every window at once: at the end of a run that wrote nothing while it went,
        # that is every message, and growing by doubling would hold up to three times the
        # columns while they are copied.
        ends = [int(batch.msg_id[-1]) + 1 for batch, _ in windows if len(batch)]
        if ends:
            first = self._first_id if self._first_id is not None else int(next(
                batch.msg_id[0] for batch, _ in windows if len(batch)))
            for column in self._columns.values():
                column.reserve(max(ends) - first, self._count)
        for batch, sent in windows:
            if not len(batch):
                continue
            if self._first_id is None:
                self._first_id = int(batch.msg_id[0])
            start = int(batch.msg_id[0]) - self._first_id
            end = start + len(batch)
            for column in self._columns.values():
                column.reserve(end, self._count)
            for name in ("t_sent", "written"):
                self._columns[name].clear(start, end)
            for name in self._schedule:
                self._columns[name].values[start:end] = getattr(batch, name)
            if self.shares > 1:
                self._columns["share"].values[start:end] = batch.key % self.shares
            self._count = max(self._count, end)
            self._windows.append((start, sent))
        # The target's own sends, as far as they have come: a window before the newest is
        # sent in full (the sender moves on in order), the newest may still be going, and
        # may take a stamp back (a publish interrupted before the driver took it, the
        # messages staged when the sender stopped behind): its share of the window is
        # copied as it is now each time. The other shares' sends are generator processes'.
        t_sent = self._columns["t_sent"].values
        for start, sent in self._windows:
            end = start + sent.size
            if self.shares == 1:
                t_sent[start:end] = sent
            else:
                np.copyto(t_sent[start:end], sent, where=self._columns["share"].values[start:end] == 0)
        del self._windows[:-1]  # copied in full: only the newest's send times are read again

    def _take_sent_elsewhere(self, sent_elsewhere: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Sends generator processes reported (ids, times); those of windows not here yet wait."""
        waiting, self._ahead = self._ahead + sent_elsewhere, []
        t_sent = self._columns["t_sent"].values
        for ids, times in waiting:
            at = ids - (self._first_id or 0)
            inside = (at >= 0) & (at < self._count)
            t_sent[at[inside]] = times[inside]
            if not inside.all():
                self._ahead.append((ids[~inside], times[~inside]))

    def _take_all_ahead(self) -> None:
        """The last intake: sends generator processes reported for windows never taken here
        (this process stopped before making them) get positions too, so their receipts
        and acks are theirs; the schedule of those messages comes with the windows made
        again (``_write_last_rows``)."""
        top = self.top_ahead
        if top < 0:
            return
        if self._first_id is None:
            self._first_id = 0  # traffic's ids count from 0
        end = top - self._first_id + 1
        if end > self._count:
            for column in self._columns.values():
                column.reserve(end, self._count)
            for name in ("t_sent", "written"):
                self._columns[name].clear(self._count, end)
            self._count = end
        self._take_sent_elsewhere([])

    @property
    def top_ahead(self) -> int:
        """The highest id a generator process reported sending in a window not here (-1: none)."""
        return max((int(ids.max()) for ids, _ in self._ahead if ids.size), default=-1)

    # --- flushing ----------------------------------------------------------------------------

    def take_windows(self, windows: list[tuple[MessageBatch, np.ndarray]],
                     sent_elsewhere: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Copy ``windows`` (and the sends generator processes reported) into the message
        columns, writing no row: the target can then let go of the windows sent in full."""
        self._take_windows(windows)
        windows.clear()
        self._take_sent_elsewhere(sent_elsewhere)

    def flush(self, intake: Intake) -> None:
        """Write the rows that ``intake`` (with what came before) makes final."""
        self._take(intake, final=False)

    def finish(self, intake: Intake, interrupted: bool, unsent_before: int | None = None) -> None:
        """Write every row left: ``intake`` is the last, nothing more will come. With
        ``unsent_before`` (the run's duration, a run not interrupted), each message the
        schedule intended before it that was never sent gets a row with status ``unsent``:
        the generator's shortfall, which stopped at the run's end instead of sending late."""
        self._take(intake, final=True, interrupted=interrupted, unsent_before=unsent_before)

    def _take(self, intake: Intake, final: bool, interrupted: bool = False, unsent_before: int | None = None) -> None:
        self._take_windows(intake.windows)
        intake.windows = []  # copied: the windows' arrays go before the receipts are worked on
        self._take_sent_elsewhere(intake.sent_elsewhere)
        if final:
            self._take_last(intake, interrupted, unsent_before)
            return
        rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (positions, first time, seq_no)
        if self.acks:
            rows.append(self._acked(intake.acks))
        receipts, received = self._receipts(intake, final)
        rows.append(received)
        del received  # ``_write_messages`` lets the rows' arrays go once joined
        self._write_messages(rows, _LOST)
        self._write_deliveries(*receipts)
        self.writer.flush()

    def _take_last(self, intake: Intake, interrupted: bool, unsent_before: int | None) -> None:
        """The last intake: every message not written yet gets its row now, in msg_id order
        (a message never sent among them, ``unsent``, when ``unsent_before`` is given). Their
        first time and seq_no are placed in two message columns as the acks and receipts
        are taken (12 bytes a message without acks, 16 with), the receipts a slice at a time, then the rows are
        written window by window from the windows made again."""
        self._take_all_ahead()
        count = self._count
        first_t = np.full(count, -1, dtype=np.int64)
        # Without acks a seq_no counts first receipts, so it is below the count of messages:
        # 4 bytes each while they wait (20 MB less at 4.9M messages), widened as each window's
        # rows are made. An ack's order is the broker's (a Redis entry id's), any int64.
        narrow = not self.acks and count < 2**31
        seq_no = np.full(count, -1, dtype=np.int32 if narrow else np.int64)
        if self.acks:
            # A slice of acks at a time, in arrival order, which finds the same first acks as
            # the whole at once (``written`` marks those found) with a slice's temporaries:
            # the whole run's at once held about 100 bytes an ack at the end of a run.
            for msg, order, t in intake.acks.slices(_FINAL_SLICE):
                positions, t, order = self._acked_of(msg, order, t)
                first_t[positions], seq_no[positions] = t, order
                del positions, t, order, msg
        receipts = self._last_receipts(intake.receipts)
        intake.receipts = Receipts()  # held by ``receipts`` alone: let go once written
        # Taken a slice of receipts at a time, in time order, which finds the same rows as the
        # whole at once (a receipt's message is final at its first receipt, and seq_no counts
        # on across slices) with a slice's temporaries, not the run's.
        for consumer, msg, t in receipts():
            positions, times, seq = self._receipts_of(consumer, msg, t, intake, True)[1]
            first_t[positions], seq_no[positions] = times, seq
        self._pending = (self._pending[0][:0], self._pending[1][:0], self._pending[2][:0])
        self._write_last_rows(first_t, seq_no, _PENDING if interrupted else _LOST, unsent_before)
        del first_t, seq_no
        # Cut now: a part of deliveries must not reach the disk before the rows of its messages.
        self.writer.flush()
        for consumer, msg, t in receipts():  # every receipt of the last intake, in this order
            self._write_deliveries(consumer, msg, t)
        self.writer.flush()

    def _last_receipts(self, taken: Receipts) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """The last intake's receipts (after those held back before) in time order, as a
        walk over slices of about ``_FINAL_SLICE`` that can be taken twice: the reads'
        arrays as they are when they came in time order, else joined and sorted once."""
        if not self._pending[2].size and taken.in_arrival_order_is_time_order():
            return lambda: taken.slices(_FINAL_SLICE)
        if self._pending[2].size:
            consumer, msg, t = (np.concatenate(pair) for pair in zip(self._pending, taken.columns()))
        else:  # nothing held back: no copy
            consumer, msg, t = taken.columns()
        consumer, msg, t = in_time_order(consumer, msg, t)  # held back before, or stamped late elsewhere

        def whole() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for at in range(0, t.size, _FINAL_SLICE):
                yield consumer[at:at + _FINAL_SLICE], msg[at:at + _FINAL_SLICE], t[at:at + _FINAL_SLICE]
        return whole

    def _write_last_rows(self, first_t: np.ndarray, seq_no: np.ndarray, unreceived: int,
                         unsent_before: int | None) -> None:
        """The rows of the messages not written yet, window by window from the windows made
        again: those sent, and with ``unsent_before`` those intended before it and never
        sent (this process stopped behind, or never made their windows)."""
        count = self._count
        if count == 0 and unsent_before is None:
            return
        first = self._first_id or 0
        t_sent, written = self._columns["t_sent"].values, self._columns["written"].values
        for batch in self._remake():
            if not len(batch):
                continue
            if int(batch.msg_id[0]) - first >= count and unsent_before is None:
                break  # the rest was never sent, and gets no row
            at = batch.msg_id - first
            known = (at >= 0) & (at < count)
            at = np.where(known, at, 0)
            sent = known & (t_sent[at] >= 0)
            # Not written before this intake: its acks and receipts mark what they find written.
            fresh = ~known | ~written[at] | (first_t[at] >= 0)
            rows = np.flatnonzero(fresh & (sent if unsent_before is None else sent | (batch.t_intended < unsent_before)))
            for part in range(0, rows.size, _ROWS_PER_APPEND):
                chosen = rows[part:part + _ROWS_PER_APPEND]
                held, positions = sent[chosen], at[chosen]
                self._append_messages(batch.msg_id[chosen], {name: getattr(batch, name)[chosen] for name, _, _ in _SCHEDULE},
                                      np.where(held, t_sent[positions], -1), np.where(held, first_t[positions], -1),
                                      np.where(held, seq_no[positions].astype(np.int64), -1), unreceived)
            self.messages_written += rows.size

    def _acked(self, acks: Acks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Messages whose first ack is in ``acks``: (positions, the ack's time, its order)."""
        return self._acked_of(*acks.columns())

    def _acked_of(self, msg: np.ndarray, order: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``_acked`` of acks (msg_id, order, time) in arrival order, after those taken before."""
        at = msg - (self._first_id or 0)
        inside = (at >= 0) & (at < self._count)
        at_inside = np.where(inside, at, 0)
        new = np.flatnonzero(inside & (self._columns["t_sent"].values[at_inside] >= 0)
                             & ~self._columns["written"].values[at_inside])
        positions, first = np.unique(at[new], return_index=True)
        self._columns["written"].values[positions] = True
        return positions, t[new[first]], order[new[first]]

    def _receipts(self, intake: Intake, final: bool
                  ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The receipts that can be written now, in time order (a prefix of those before the
        horizon), and the messages whose first receipt they hold: (positions, that receipt's
        time, seq_no; -1 on a target with acks, whose order is the broker's)."""
        if self._pending[2].size:
            consumer, msg, t = (np.concatenate(pair) for pair in zip(self._pending, intake.receipts.columns()))
        else:  # nothing held back: no copy
            consumer, msg, t = intake.receipts.columns()
        consumer, msg, t = in_time_order(consumer, msg, t)  # held back before, or stamped late elsewhere
        return self._receipts_of(consumer, msg, t, intake, final)

    def _receipts_of(self, consumer: np.ndarray, msg: np.ndarray, t: np.ndarray, intake: Intake,
                     final: bool) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray],
                                           tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``_receipts`` of receipts in time order (with the receipts held back before)."""
        end = t.size if final else int(np.searchsorted(t, intake.horizon, side="left"))
        at = msg[:end] - (self._first_id or 0)
        inside = (at >= 0) & (at < self._count)
        at = np.where(inside, at, 0)
        t_sent = np.where(inside, self._columns["t_sent"].values[at], -1)
        genuine = (t_sent >= 0) & (t_sent <= t[:end])  # sent before it came
        written = self._columns["written"].values
        take = np.ones(end, dtype=np.bool_)  # written now
        if not final:
            held = np.zeros(end, dtype=np.bool_)
            if self.acks:
                held |= genuine & ~written[at]  # its row waits for the ack
            if self.shares > 1:
                # Its send may be a generator process's not reported yet: wait for the report.
                through = np.asarray([FAR, *intake.shares_through], dtype=np.int64)
                share = np.where(inside, self._columns["share"].values[at], -1)
                reported = np.where(share >= 0, through[share], through.min())
                held |= (t_sent < 0) & (t[:end] > reported)
                # A generator process sent it (reported) in a window this process has not made
                # yet (it fell behind): its row waits for the window, or it would count as a
                # stray receipt and its message as lost.
                beyond = msg[:end] - (self._first_id or 0) >= self._count
                held |= beyond & (msg[:end] <= self.top_ahead)
            if self.acks:
                # The broker orders the messages: a receipt whose message waits for its ack
                # holds back only the receipts of its own read (same time: their order within
                # the read is kept), not later ones (a message whose ack never comes, lost
                # with a connection, would hold every later receipt to the end of the run).
                take = ~np.isin(t[:end], t[:end][held])
            elif held.any():
                # seq_no counts first receipts in time order: only a prefix can be written.
                take[int(np.argmax(held)):] = False
        first = np.flatnonzero(take & genuine & ~written[at])
        positions, once = np.unique(at[first], return_index=True)
        in_order = np.argsort(once, kind="stable")
        positions, first = positions[in_order], first[once[in_order]]
        written[positions] = True
        if self.acks:
            seq_no = np.full(positions.size, -1, dtype=np.int64)
        else:
            seq_no = np.arange(self._next_seq, self._next_seq + positions.size, dtype=np.int64)
            self._next_seq += positions.size
        received = (positions, t[first], seq_no)
        if end == t.size and bool(take.all()):  # every receipt written (the last intake): no copies
            self._pending = (consumer[:0], msg[:0], t[:0])
            return (consumer, msg, t), received
        chosen = np.flatnonzero(take)
        rest = np.concatenate([np.flatnonzero(~take), np.arange(end, t.size)])
        self._pending = (consumer[rest], msg[rest], t[rest])
        return (consumer[chosen], msg[chosen], t[chosen]), received

    # --- rows ----------------------------------------------------------------------------------

    def _write_messages(self, rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], unreceived: int) -> None:
        positions, first_t, seq_no = (np.concatenate(part) for part in zip(*rows))
        rows.clear()  # joined: the parts go (the last intake's can be a row for every message)
        if positions.size == 0:
            return
        if not bool((positions[1:] >= positions[:-1]).all()):
            order = np.argsort(positions, kind="stable")
            # One at a time: each sorted copy replaces its column before the next is made.
            positions = positions[order]
            first_t = first_t[order]
            seq_no = seq_no[order]
            del order
        assert self._schedule, "rows written while the run goes need the schedule held (hold_schedule)"
        first = self._first_id or 0
        t_sent = self._columns["t_sent"].values
        for at in range(0, positions.size, _ROWS_PER_APPEND):
            part = positions[at:at + _ROWS_PER_APPEND]
            self._append_messages(part + first, {name: self._columns[name].values[part] for name in self._schedule},
                                  t_sent[part], first_t[at:at + _ROWS_PER_APPEND], seq_no[at:at + _ROWS_PER_APPEND],
                                  unreceived)
        self.messages_written += positions.size
        # Cut now: a part of deliveries must not reach the disk before the rows of its messages.
        self.writer.flush()

    def _append_messages(self, msg_id: np.ndarray, schedule: dict[str, np.ndarray], t_sent: np.ndarray,
                         first_t: np.ndarray, seq_no: np.ndarray, unreceived: int) -> None:
        """Rows: ``schedule`` the window's columns of these messages, ``t_sent`` -1 where
        never sent (``unsent``), ``first_t`` -1 where neither acked nor received."""
        n = msg_id.size
        status = np.where(first_t >= 0, _COMMITTED, np.where(t_sent >= 0, unreceived, _UNSENT)).astype(np.int8)
        self.writer.append("messages", {
            "msg_id": msg_id,
            "kind": pa.DictionaryArray.from_arrays(schedule["kind"], self._kinds),
            "agent": pa.DictionaryArray.from_arrays(schedule["agent"], self._agents),
            "node": pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int8), self._publisher),
            "key": schedule["key"], "size": schedule["size"], "fee": schedule["fee"],
            "t_intended": schedule["t_intended"], "t_sent": nullable(t_sent),  # null: unsent
            "t_received": pa.nulls(n, pa.int64()) if self.acks else nullable(first_t),
            "t_dequeued": pa.nulls(n, pa.int64()),
            "t_sequenced": nullable(np.where(seq_no >= 0, first_t, -1)), "seq_no": nullable(seq_no),
            "t_committed": nullable(first_t), "block": pa.nulls(n, pa.int64()),
            "status": pa.DictionaryArray.from_arrays(status, self._statuses),
        })

    def _write_deliveries(self, consumer: np.ndarray, msg: np.ndarray, t: np.ndarray) -> None:
        for at in range(0, msg.size, _ROWS_PER_APPEND):
            part = slice(at, at + _ROWS_PER_APPEND)
            self.writer.append("deliveries", {
                "msg_id": msg[part], "node": pa.DictionaryArray.from_arrays(consumer[part].astype(np.int32),
                                                                          self._consumers),
                "t_delivered": t[part], "hops": np.ones(msg[part].size, dtype=np.int32)})
        self.deliveries_written += msg.size


def nullable(values: np.ndarray) -> pa.Array:
    """int64 values, null where negative (no copy of the values)."""
    valid = values >= 0
    nulls = values.size - int(np.count_nonzero(valid))
    if nulls == 0:
        return pa.array(values)
    bitmap = np.packbits(valid, bitorder="little")
    return pa.Array.from_buffers(pa.int64(), values.size, [pa.py_buffer(bitmap), pa.py_buffer(values)], nulls)
