"""What a live run receives, held until its rows are made: the consumers' receipts and the
broker's acks, folded into arrays as they come.

Place in the pipeline: under the live recorder (``live/recorder.py``), which takes them from
the target each second (``Intake``) and, at the end, a slice at a time. The target's event
loop adds a consumer's read or a publisher's acks as they arrive; what is held loose (a
tuple and an array a read) is folded into one chunk of arrays every ``_LOOSE`` reads, so a
run held to its end costs about 24 bytes a read, not a read's Python objects.
``Received`` counts the distinct receipts apart (one bit a message), which is what the
target's drain waits for: a copy received twice (a replay, a redelivery) is not a message
still to come.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from msgstorm.jit import nb

__all__ = ["Acks", "Receipts", "Received", "first_arrivals", "in_time_order", "warm_up"]

# Reads (or acks, or receipts one at a time) held loose before they are folded into one
# chunk of arrays: a read held loose costs a tuple's worth of Python objects and an array of
# its own (about 250 bytes; a view into a traffic window's ids even keeps that window's ids),
# folded 24 bytes (its consumer, time and count). Without ``record_every`` the receipts and
# acks are held to the run's end: a read of 40 messages loose would cost 6 bytes a message.
_LOOSE = 1024
_LOOSE_SINGLES = 1 << 16

# ``Received``: ids tracked before any has been received, and how far beyond the largest id
# received so far an id may be and still be tracked (ids are consecutive from 0 in send
# order; one far beyond is a damaged or foreign payload's, whose bits would only cost memory).
_FIRST_IDS = 1 << 24
_REACH = 4

_Times = np.ndarray | int | tuple[np.ndarray, np.ndarray]
_Consumers = np.ndarray | int | tuple[np.ndarray, np.ndarray]


class _Packed:
    """A folded chunk's ids (or a broker's orders) held narrower than int64: as a run of
    consecutive values (nothing held: ids in send order, how a publisher's acks and most
    reads come) or as int32 offsets from the first value. ``unpacked`` gives the int64
    values back."""

    __slots__ = ("base", "offsets", "size")

    def __init__(self, base: int, offsets: np.ndarray | None, size: int) -> None:
        self.base, self.offsets, self.size = base, offsets, size

    def unpacked(self) -> np.ndarray:
        if self.offsets is None:
            return np.arange(self.base, self.base + self.size, dtype=np.int64)
        values = self.offsets.astype(np.int64)
        values += self.base
        return values


_Ids = np.ndarray | _Packed
_INT32 = np.iinfo(np.int32)


def _packed(values: np.ndarray) -> _Ids:
    """``values`` (int64) as held in a folded chunk: consecutive, int32 offsets from the
    first, or as they are when their span does not fit in 32 bits."""
    if values.size < 2:
        return values
    base = int(values[0])
    offsets = values - base
    if int(offsets[-1]) == values.size - 1 and bool((offsets == np.arange(values.size)).all()):
        return _Packed(base, None, values.size)
    if _INT32.min <= int(offsets.min()) and int(offsets.max()) <= _INT32.max:
        return _Packed(base, offsets.astype(np.int32), values.size)
    return values


class Receipts:
    """Receipts in arrival order: (consumer, msg_id, time). One at a time (``add``), or the
    ids one read brought as one array, with one consumer and one time (``add_read``):
    nothing is made per message on the bulk path. Receipts a consumer process stamped
    itself (``add_timed``) arrive later than they happened, interleaved with other
    consumers': ``columns`` puts them in time order. ``take`` hands over what is held
    (``count`` goes on counting every receipt ever added). Every ``_LOOSE`` reads (or
    ``_LOOSE_SINGLES`` receipts one at a time) are folded into one chunk of arrays, so a
    run's receipts held to its end cost about 8 bytes each, not a Python object per read."""

    def __init__(self) -> None:
        self.count = 0
        self._timed = False
        # (consumer, ids, time): the consumer and the time each one int (a read), an array
        # (an id each) or (each read's value, each read's count of ids).
        self._chunks: list[tuple[_Consumers, _Ids, _Times]] = []
        self._consumer: list[int] = []
        self._msg: list[int] = []
        self._t: list[int] = []
        # Reads not folded yet: (consumer, ids, time) each.
        self._reads: list[tuple[int, np.ndarray, int]] = []

    def add(self, consumer: int, msg_id: int, t: int) -> None:
        if self._reads:
            self._close_reads()
        self._consumer.append(consumer)
        self._msg.append(msg_id)
        self._t.append(t)
        self.count += 1
        if len(self._msg) >= _LOOSE_SINGLES:
            self._close_singles()

    def add_read(self, consumer: int, msg_ids: np.ndarray, t: int) -> None:
        self._close_singles()
        self._reads.append((consumer, msg_ids, t))
        self.count += msg_ids.size
        if len(self._reads) >= _LOOSE:
            self._close_reads()

    def _close_reads(self) -> None:
        """The reads held loose, as one chunk: their ids joined (a copy: no window's array
        is kept through a view), each read's consumer, time and count of ids."""
        if self._reads:
            reads, self._reads = self._reads, []
            counts = np.array([ids.size for _, ids, _ in reads], dtype=np.int64)
            self._chunks.append(((np.array([c for c, _, _ in reads], dtype=np.int64), counts),
                                 _packed(_joined([ids for _, ids, _ in reads], copy=True)),
                                 (np.array([t for _, _, t in reads], dtype=np.int64), counts)))

    def add_timed(self, consumer: int, msg_ids: np.ndarray, read_times: np.ndarray, read_counts: np.ndarray) -> None:
        """Receipts of several reads, in the order they happened: read k brought
        ``read_counts[k]`` of the ids, at ``read_times[k]`` (int64, this run's clock)."""
        self._close_loose()
        self._chunks.append((consumer, msg_ids, (read_times, read_counts)))
        self.count += msg_ids.size
        self._timed = True

    def _close_loose(self) -> None:
        """What is held loose (receipts one at a time, or reads: never both) as a chunk."""
        self._close_reads()
        self._close_singles()

    def _close_singles(self) -> None:
        if self._msg:
            self._chunks.append((np.asarray(self._consumer, dtype=np.int64),
                                 _packed(np.asarray(self._msg, dtype=np.int64)), np.asarray(self._t, dtype=np.int64)))
            self._consumer, self._msg, self._t = [], [], []

    def take(self) -> Receipts:
        """What is held, as a Receipts of its own; this one keeps counting, empty (cheap:
        on the event loop's thread, the work is left to whoever calls ``columns``)."""
        self._close_loose()
        taken = Receipts()
        taken._chunks, taken._timed, taken.count = self._chunks, self._timed, self.count
        self._chunks, self._timed = [], False
        return taken

    def in_arrival_order_is_time_order(self) -> bool:
        """Whether the receipts held came in time order (all stamped by the target as they
        came, the usual case; not receipts stamped by consumer processes), so that
        ``slices`` gives them in time order without joining them."""
        self._close_loose()
        if self._timed:
            return False
        last = np.iinfo(np.int64).min
        for _, _, t in self._chunks:
            if isinstance(t, _SCALARS):
                first, end = int(t), int(t)
            else:
                if isinstance(t, tuple):  # reads folded: each read's time
                    t = t[0]
                assert isinstance(t, np.ndarray)
                if t.size == 0:
                    continue
                if t.size > 1 and bool((t[1:] < t[:-1]).any()):
                    return False
                first, end = int(t[0]), int(t[-1])
            if first < last:
                return False
            last = end
        return True

    def slices(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(consumer, msg_id, t) of consecutive receipts in arrival order, about ``size``
        at a time (a read's receipts are not split), int64 each, made from the reads' arrays
        as they are asked for: the receipts held are not joined into columns of their own
        (24 bytes a receipt beside the 8 of the reads'). The receipts stay held; each call
        walks them again."""
        self._close_loose()
        group: list[tuple[_Consumers, _Ids, _Times]] = []
        held = 0
        for chunk in [*self._chunks, None]:
            if chunk is not None:
                group.append(chunk)
                held += chunk[1].size
            if group and (held >= size or chunk is None):
                yield (_spread([c for c, _, _ in group], group), _joined([m for _, m, _ in group]),
                       _spread([t for _, _, t in group], group))
                group, held = [], 0

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(consumer, msg_id, t), int64 each, in time order (ties in arrival order)."""
        self._close_loose()
        chunks, self._chunks = self._chunks, []  # handed over once: the reads' arrays go as soon as joined
        consumer, msg, t = (_spread([c for c, _, _ in chunks], chunks), _joined([m for _, m, _ in chunks]),
                            _spread([t for _, _, t in chunks], chunks))
        del chunks
        if self._timed:
            consumer, msg, t = in_time_order(consumer, msg, t)
        return consumer, msg, t


@nb.njit(cache=True)
def _mark(bits: np.ndarray, msg_ids: np.ndarray, limit: int) -> tuple[int, int, int]:
    """Set the bit of each id below ``limit`` that ``bits`` covers (bit ``id % 8`` of byte
    ``id // 8``): (how many were not set before, the largest id set, the largest id below
    ``limit`` that ``bits`` does not cover yet; -1 for none)."""
    covered = bits.size * 8
    new, top, beyond = 0, -1, -1
    for i in range(msg_ids.size):
        msg_id = msg_ids[i]
        if msg_id < 0 or msg_id >= limit:
            continue
        if msg_id >= covered:
            beyond = max(beyond, msg_id)
            continue
        mask = np.uint8(1 << (msg_id & 7))
        if bits[msg_id >> 3] & mask == 0:
            bits[msg_id >> 3] |= mask
            new += 1
        top = max(top, msg_id)
    return new, top, beyond


class Received:
    """Which messages have been received: one bit a message, for each consumer on a fan-out
    target (``by_consumer``: every consumer gets every message) or for all together
    otherwise. ``count`` is the distinct receipts, (consumer, message) pairs or messages,
    which a copy received again (a replay toxic's, a broker's redelivery) does not raise,
    as it raises ``Receipts.count``. An id more than ``_REACH`` times the largest received
    so far (and beyond ``_FIRST_IDS``) is no message of the schedule and is not counted."""

    def __init__(self, by_consumer: bool) -> None:
        self.by_consumer = by_consumer
        self.count = 0
        self._bits: list[np.ndarray] = []  # per consumer (or one for all): bit i is message i
        self._top = -1  # the largest id received by any consumer

    def add_one(self, consumer: int, msg_id: int) -> None:
        """One id a receipt of ``consumer`` brought: its bit set here when the bits cover it
        (a driver that hands receipts over one at a time pays no array and no compiled call
        a message), else as ``add``."""
        index = consumer if self.by_consumer else 0
        if index < len(self._bits) and 0 <= msg_id < self._bits[index].size * 8:
            bits = self._bits[index]
            byte, mask = msg_id >> 3, 1 << (msg_id & 7)
            held = int(bits[byte])
            if not held & mask:
                bits[byte] = held | mask
                self.count += 1
                if msg_id > self._top:
                    self._top = msg_id
            return
        self.add(consumer, np.full(1, msg_id, dtype=np.int64))

    def add(self, consumer: int, msg_ids: np.ndarray) -> None:
        """The ids (int64) a read of ``consumer`` brought."""
        index = consumer if self.by_consumer else 0
        while len(self._bits) <= index:
            self._bits.append(np.zeros(0, dtype=np.uint8))
        limit = max(_FIRST_IDS, _REACH * (self._top + 1))
        new, top, beyond = _mark(self._bits[index], msg_ids, limit)
        if beyond >= 0:  # grown to cover it, doubling: a run's growths copy about its bits once
            bits = self._bits[index]
            grown = np.zeros(max(2 * bits.size, beyond // 8 + 1, 4096), dtype=np.uint8)
            grown[:bits.size] = bits
            self._bits[index] = grown
            more, top, _ = _mark(grown, msg_ids, limit)  # those marked before are not new again
            new += more
        self.count += new
        self._top = max(self._top, top)


def warm_up() -> None:
    """Compile (or load from numba's cache) ``Received``'s marking, so that the first read
    of a run does not wait for the compiler."""
    Received(by_consumer=True).add(0, np.arange(2, dtype=np.int64))


# Arrays joined by one np.concatenate at most: it holds the GIL while it walks its list, and a
# run's second of receipts can be tens of thousands of reads (the generator would wait).
_JOIN = 256


_SCALARS = (int, np.integer)


def _joined(held: list[_Ids], copy: bool = False) -> np.ndarray:
    """``held`` end to end (int64), a few at a time; with ``copy`` a new array even of one."""
    arrays = [ids.unpacked() if isinstance(ids, _Packed) else ids for ids in held]
    while len(arrays) > 1:
        arrays = [np.concatenate(arrays[i:i + _JOIN]) for i in range(0, len(arrays), _JOIN)]
        copy = False
    if not arrays:
        return np.zeros(0, dtype=np.int64)
    return np.array(arrays[0], dtype=np.int64) if copy else np.asarray(arrays[0], dtype=np.int64)


def _spread(values: list[Any], chunks: list[tuple[Any, _Ids, Any]]) -> np.ndarray:
    """One value per id of each chunk: a chunk's value an int (every id), an array (one per
    id) or (each read's value, each read's count of ids)."""
    # Lists first: np.fromiter would hold the GIL while it runs a generator to its end.
    sizes = np.array([m.size for _, m, _ in chunks], dtype=np.int64)
    scalar = np.array([v if isinstance(v, _SCALARS) else 0 for v in values], dtype=np.int64)
    out = np.repeat(scalar, sizes)
    ends = np.cumsum(sizes)
    for k, value in enumerate(values):
        if not isinstance(value, _SCALARS):
            out[ends[k] - sizes[k]:ends[k]] = np.repeat(value[0], value[1]) if isinstance(value, tuple) else value
    return out


def in_time_order(*columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows (the last column their times) stably sorted by time: equal times keep their order."""
    t = columns[-1]
    if t.size > 1 and bool((t[1:] < t[:-1]).any()):
        order = np.argsort(t, kind="stable")
        return tuple(column[order] for column in columns)
    return columns


class Acks:
    """Publish acks in arrival order: (msg_id, the broker's order, time), one at a time
    (``add``) or the acks one read brought, with one time (``add_read``); folded into
    chunks of arrays as ``Receipts`` are (16 bytes an ack held, and 24 a read)."""

    def __init__(self) -> None:
        self.count = 0
        self._chunks: list[tuple[_Ids, _Ids, _Times]] = []
        self._msg: list[int] = []
        self._order: list[int] = []
        self._t: list[int] = []
        self._reads: list[tuple[np.ndarray, np.ndarray, int]] = []  # not folded yet

    def add(self, msg_id: int, order: int, t: int) -> None:
        if self._reads:
            self._close_reads()
        self._msg.append(msg_id)
        self._order.append(order)
        self._t.append(t)
        self.count += 1
        if len(self._msg) >= _LOOSE_SINGLES:
            self._close_singles()

    def add_read(self, msg_ids: np.ndarray, orders: np.ndarray, t: int) -> None:
        self._close_singles()
        self._reads.append((msg_ids, orders, t))
        self.count += msg_ids.size
        if len(self._reads) >= _LOOSE:
            self._close_reads()

    def _close_reads(self) -> None:
        """The reads held loose, as one chunk (copies: the publisher's ids are often views
        into a traffic window's, which would keep the whole window's ids)."""
        if self._reads:
            reads, self._reads = self._reads, []
            counts = np.array([ids.size for ids, _, _ in reads], dtype=np.int64)
            self._chunks.append((_packed(_joined([ids for ids, _, _ in reads], copy=True)),
                                 _packed(_joined([orders for _, orders, _ in reads], copy=True)),
                                 (np.array([t for _, _, t in reads], dtype=np.int64), counts)))

    def _close_loose(self) -> None:
        self._close_reads()
        self._close_singles()

    def _close_singles(self) -> None:
        if self._msg:
            self._chunks.append((_packed(np.asarray(self._msg, dtype=np.int64)),
                                 _packed(np.asarray(self._order, dtype=np.int64)), np.asarray(self._t, dtype=np.int64)))
            self._msg, self._order, self._t = [], [], []

    def take(self) -> Acks:
        """What is held, as an Acks of its own (see ``Receipts.take``)."""
        self._close_loose()
        taken = Acks()
        taken._chunks, taken.count = self._chunks, self.count
        self._chunks = []
        return taken

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(msg_id, order, t), int64 each, in arrival order."""
        self._close_loose()
        chunks = [(None, m, t) for m, _, t in self._chunks]
        return (_joined([m for m, _, _ in self._chunks]), _joined([o for _, o, _ in self._chunks]),
                _spread([t for _, _, t in chunks], chunks))

    def slices(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(msg_id, order, t) of consecutive acks in arrival order, about ``size`` at a
        time, handed over as they are walked: what is held goes a slice at a time, and
        none of the run's acks is joined into columns of its own (``count`` stays)."""
        self._close_loose()
        chunks, self._chunks = self._chunks, []
        chunks.reverse()  # popped from the end: each slice's chunks go once it is made
        while chunks:
            group: list[tuple[None, _Ids, _Times]] = []
            orders: list[_Ids] = []
            held = 0
            while chunks and (held < size or not group):
                msg, order, t = chunks.pop()
                group.append((None, msg, t))
                orders.append(order)
                held += msg.size
            sliced = (_joined([m for _, m, _ in group]), _joined(orders), _spread([t for _, _, t in group], group))
            del group, orders
            yield sliced


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
