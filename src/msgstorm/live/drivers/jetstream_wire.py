"""JetStream's data path on msgstorm's wire client: publishes, their acks, consumers' reads.

Place in the pipeline: under ``drivers/jetstream.py``, which keeps nats-py for the rare
control-plane requests (stream, consumers, read-back) and uses this module for
``[live.jetstream] client = "wire"`` (the default). Why by hand: nats-py makes a ``Msg``,
a callback and a future for every publish, ack and receipt, which caps a JetStream run in
one Python thread below a plain nats-py publish loop. Here, as for core NATS
(``nats_wire.py``), a slice of publishes is framed in one compiled pass (each PUB with the
reply subject ``<inbox>.<msg_id>``), a read of acks is parsed in one compiled pass
(``read_acks``: the message id from the subject's last token, the stream sequence from the
JSON payload) and handed to the target as arrays, and a consumer's read is handed over as
an array of message ids, its acks (with ``ack = "explicit"``) answered in one write.

``AckWindow`` is the publisher's window of unanswered publishes, on either client: a flag
per message id and the sends in order, a burst at a time, so that no Python object is
made per message.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

import numpy as np

from msgstorm.jit import nb
from msgstorm.live.drivers.base import DriverState, OnReceipt, OnReceipts
from msgstorm.live.drivers.nats_wire import (
    HEADER_LENGTH,
    PAYLOAD_LENGTH,
    PAYLOAD_START,
    REPLY_LENGTH,
    REPLY_START,
    SUBJECT_LENGTH,
    SUBJECT_START,
    FrameConnection,
    WireError,
    decimal,
    frame_table,
    pack_replies,
    pack_request_pubs,
    payloads,
    reply_frames,
    request_frames,
    scan_frames,
)
from msgstorm.live.payload import pack_payloads, read_ids

__all__ = ["AckWindow", "PublishTrouble", "WireConsumer", "WirePublisher", "read_acks", "warm_up"]

_QUOTE, _BACKSLASH, _COLON, _COMMA, _DOT = b'"\\:,.'
_OPEN_OBJECT, _CLOSE_OBJECT, _OPEN_ARRAY, _CLOSE_ARRAY = b"{}[]"
_SPACE, _TAB, _CR, _LF, _ZERO, _NINE = b" \t\r\n09"
_SEQ = np.frombuffer(b"seq", dtype=np.uint8)
_ERROR = np.frombuffer(b"error", dtype=np.uint8)
# A message id's state in the window: never sent, sent and unanswered, answered or given up.
_UNSENT, _PENDING, _DONE = range(3)


@nb.njit(cache=True)
def _is_space(byte: int) -> bool:
    return byte == _SPACE or byte == _TAB or byte == _CR or byte == _LF


@nb.njit(cache=True)
def _skip_spaces(data: np.ndarray, k: int, last: int) -> int:
    while k < last and _is_space(data[k]):
        k += 1
    return k


@nb.njit(cache=True)
def _same(data: np.ndarray, first: int, last: int, word: np.ndarray) -> bool:
    if last - first != word.size:
        return False
    for k in range(word.size):
        if data[first + k] != word[k]:
            return False
    return True


@nb.njit(cache=True)
def _ack_seq(data: np.ndarray, first: int, last: int) -> int:
    """The stream sequence a publish ack's JSON payload (``data[first:last]``) gives: the
    whole number under the top-level key ``"seq"`` (``{"stream":"S","seq":7}``, also with
    ``"duplicate":true``); -1 when it is not an ack: a top-level ``"error"``, no ``"seq"``,
    a value that is not a whole number, not an object. Strings are skipped whole (a
    description may hold ``"seq":``); keys are matched as written (the server escapes none)."""
    k = _skip_spaces(data, first, last)
    if k >= last or data[k] != _OPEN_OBJECT:
        return -1
    depth = 0
    seq = -1
    while k < last:
        byte = data[k]
        if byte == _QUOTE:
            end = k + 1
            while end < last and data[end] != _QUOTE:
                end += 2 if data[end] == _BACKSLASH else 1
            if end >= last:
                return -1  # a string that does not end
            key_first, key_last = k + 1, end
            k = _skip_spaces(data, end + 1, last)
            if depth != 1 or k >= last or data[k] != _COLON:
                continue  # a value, or a key inside a nested object
            k = _skip_spaces(data, k + 1, last)
            if _same(data, key_first, key_last, _ERROR):
                return -1
            if _same(data, key_first, key_last, _SEQ):
                digits = k
                while k < last and _ZERO <= data[k] <= _NINE:
                    k += 1
                after = _skip_spaces(data, k, last)
                if after >= last or (data[after] != _COMMA and data[after] != _CLOSE_OBJECT):
                    return -1  # not a whole number (a fraction, a string, null, ...)
                seq = decimal(data, digits, k)
                if seq < 0:
                    return -1
            continue
        if byte == _OPEN_OBJECT or byte == _OPEN_ARRAY:
            depth += 1
        elif byte == _CLOSE_OBJECT or byte == _CLOSE_ARRAY:
            depth -= 1
        k += 1
    return seq


@nb.njit(cache=True)
def read_acks(data: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each frame of a read on the ack inbox (a frame table, ``nats_wire.scan_frames``):
    the message id its subject's last token carries (-1: none, not msgstorm's) and the
    stream sequence its ack gives (-1: a refusal: an error payload, or a frame with
    headers, such as the 503 status of a stream with no responders)."""
    count = frames.shape[1]
    msg_ids = np.empty(count, dtype=np.int64)
    seqs = np.empty(count, dtype=np.int64)
    for i in range(count):
        subject_first = frames[SUBJECT_START, i]
        subject_last = subject_first + frames[SUBJECT_LENGTH, i]
        token = subject_last
        while token > subject_first and data[token - 1] != _DOT:
            token -= 1
        msg_ids[i] = decimal(data, token, subject_last)
        if frames[HEADER_LENGTH, i] > 0:
            seqs[i] = -1
        else:
            start = frames[PAYLOAD_START, i]
            seqs[i] = _ack_seq(data, start, start + frames[PAYLOAD_LENGTH, i])
    return msg_ids, seqs


@nb.njit(cache=True)
def _settle(state: np.ndarray, msg_ids: np.ndarray) -> int:
    """Mark the unanswered ones of ``msg_ids`` answered; how many there were (an id never
    sent, out of range, or answered before counts nothing)."""
    settled = 0
    for msg_id in msg_ids:
        if 0 <= msg_id < state.size and state[msg_id] == _PENDING:
            state[msg_id] = _DONE
            settled += 1
    return settled


@nb.njit(cache=True)
def _mark_sent(state: np.ndarray, msg_ids: np.ndarray) -> int:
    """Mark ``msg_ids`` unanswered; 0, or (nothing marked) the size ``state`` must grow to."""
    top = -1
    for msg_id in msg_ids:
        top = max(top, msg_id)
    if top >= state.size:
        return top + 1
    for msg_id in msg_ids:
        state[msg_id] = _PENDING
    return 0


class AckWindow:
    """Publishes sent and not answered yet, at most ``limit``. A publish leaves the window
    when its ack (or a refusal) arrives, or ``timeout_s`` after it was sent (``timed_out``
    counts those; an ack that comes later is still recorded by the driver). Kept as one
    state byte per message id (a run's ids are consecutive from 0, ``traffic/generate.py``)
    and the sends in order, one entry per burst with the time its acks are given up."""

    def __init__(self, limit: int, timeout_s: float) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self.unanswered = 0
        self.timed_out = 0
        self._state = np.zeros(1 << 16, dtype=np.uint8)
        self._sends: collections.deque[tuple[np.ndarray, float]] = collections.deque()
        self._room = asyncio.Event()  # something left the window

    def room(self) -> int:
        """Publishes that may be sent now."""
        return self.limit - self.unanswered

    def sent(self, msg_ids: np.ndarray, now: float) -> None:
        """``msg_ids`` (int64, not negative) were sent at ``now`` (the event loop's time, s)."""
        needed = _mark_sent(self._state, msg_ids)
        if needed:
            grown = np.zeros(max(2 * self._state.size, needed), dtype=np.uint8)
            grown[:self._state.size] = self._state
            self._state = grown
            _mark_sent(self._state, msg_ids)
        self.unanswered += msg_ids.size
        self._sends.append((msg_ids, now + self.timeout_s))

    def answered(self, msg_ids: np.ndarray) -> None:
        """Acks (or refusals) arrived for ``msg_ids``; so did, in effect, a send that failed."""
        settled = _settle(self._state, msg_ids)
        if settled:
            self.unanswered -= settled
            self._room.set()

    def expire(self, now: float) -> None:
        """Give up the acks overdue at ``now`` (the oldest sends are first)."""
        sends = self._sends
        while sends and sends[0][1] <= now:
            given_up = _settle(self._state, sends.popleft()[0])
            self.unanswered -= given_up
            self.timed_out += given_up

    def give_up(self) -> None:
        """The publisher's connection was lost: no pending ack is owed on it any more (one that
        still comes is recorded all the same), and a burst waiting for room goes on."""
        self.expire(float("inf"))
        self._room.set()

    async def wait_for_room(self) -> None:
        """Return once the window is not full: an ack arrived, or the oldest ack is overdue."""
        loop = asyncio.get_running_loop()
        self.expire(loop.time())
        while self.unanswered >= self.limit:
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), self._sends[0][1] - loop.time())
            except TimeoutError:
                pass
            self.expire(loop.time())


@dataclass
class PublishTrouble:
    """What went wrong with publishes, reported in one ``client_error`` event at close."""

    refused: int = 0  # acks that were errors
    dropped: int = 0  # publishes the client could not send
    first_error: str | None = None

    def note(self, error: str) -> None:
        if self.first_error is None:
            self.first_error = error


class _Staged:
    """Publishes staged and not all sent yet: their ids and PUB frames, message k's frame
    from ``frame_ends[k]`` to ``frame_ends[k + 1]``; ``taken`` of them sent."""

    __slots__ = ("frame_ends", "frames", "msg_ids", "taken")

    def __init__(self, msg_ids: np.ndarray, frames: memoryview, frame_ends: list[int]) -> None:
        self.msg_ids = msg_ids
        self.frames = frames
        self.frame_ends = frame_ends
        self.taken = 0


class WirePublisher:
    """The publisher's connection: it sends the staged PUBs (each with its reply subject
    ``reply_prefix`` + msg_id) while the window has room, and reads the acks on the same
    connection (subscribed to ``reply_prefix`` + ``*``), handing them to the driver's
    callbacks, ``on_acks`` as arrays (``on_ack`` one by one when that is None), and counting
    what it took and lost in the driver's ``state``."""

    def __init__(self, subject: str, reply_prefix: str, window: AckWindow, trouble: PublishTrouble,
                 state: DriverState) -> None:
        self.subject = subject
        self.reply_prefix = reply_prefix
        self.window = window
        self.trouble = trouble
        self.state = state
        self.connection: FrameConnection | None = None
        self._head = np.frombuffer(f"PUB {subject} ".encode(), dtype=np.uint8).copy()
        self._reply_head = np.frombuffer(reply_prefix.encode(), dtype=np.uint8).copy()
        self._staged: collections.deque[_Staged] = collections.deque()

    def on_table(self, data: np.ndarray, frames: np.ndarray) -> None:
        """One read of acks: out of the window, then to the target (refusals counted)."""
        msg_ids, seqs = read_acks(data, frames)
        self.window.answered(msg_ids)
        acked = (seqs >= 0) & (msg_ids >= 0)
        if not acked.all():
            refused = np.flatnonzero((seqs < 0) & (msg_ids >= 0))
            self.trouble.refused += refused.size
            self.state.lost_publishes += refused.size
            if refused.size and self.trouble.first_error is None:
                i = int(refused[0])
                start = int(frames[PAYLOAD_START, i] - frames[HEADER_LENGTH, i])
                end = int(frames[PAYLOAD_START, i] + frames[PAYLOAD_LENGTH, i])
                self.trouble.note(data[start:end].tobytes().decode(errors="replace").strip())
            msg_ids, seqs = msg_ids[acked], seqs[acked]
        callbacks = self.state.callbacks
        if callbacks.on_acks is not None:
            callbacks.on_acks(msg_ids, seqs)
        else:
            for msg_id, seq in zip(msg_ids.tolist(), seqs.tolist()):
                callbacks.on_ack(msg_id, seq)

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        frames, ends = pack_request_pubs(self._head, self._reply_head, msg_ids, *pack_payloads(msg_ids, keys, sizes))
        self._staged.append(_Staged(msg_ids, frames.data, [0, *ends.tolist()]))

    async def publish_staged(self, count: int) -> int | None:
        """Send the next ``count`` staged publishes, as many at once as the window has room
        for. When the window is full or the socket must drain first, it waits, then returns
        how many it published before: the target hands the rest over again."""
        window = self.window
        loop = asyncio.get_running_loop()
        window.expire(loop.time())
        done = 0
        while count > 0:
            connection = self.connection
            if window.room() <= 0:
                await window.wait_for_room()
                return done
            if connection is not None and not connection.writable:
                await connection.drained()
                return done
            room = window.room()
            staged = self._staged[0]
            first = staged.taken
            last = staged.taken = min(staged.msg_ids.size, first + count, first + room)
            count -= last - first
            if last == staged.msg_ids.size:
                self._staged.popleft()
            ends = staged.frame_ends
            self.state.handed_over += last - first  # the socket is writable: no wait before they are taken
            await self._send(staged.msg_ids[first:last], staged.frames[ends[first]:ends[last]], loop.time())
            done += last - first
        return None

    async def publish_one(self, msg_id: int, payload: bytes) -> None:
        """Send one publish (``request_frames``), once the window has room."""
        loop = asyncio.get_running_loop()
        self.window.expire(loop.time())
        if self.window.room() <= 0:
            await self.window.wait_for_room()
        frames = request_frames(self.subject, self.reply_prefix, [msg_id], [payload])
        self.state.handed_over += 1
        await self._send(np.array([msg_id], dtype=np.int64), frames, loop.time())

    async def _send(self, msg_ids: np.ndarray, frames: bytes | memoryview, now: float) -> None:
        self.window.sent(msg_ids, now)  # before the write: the acks come after it
        connection = self.connection
        if connection is None or not await connection.publish_frames(frames):
            self.window.answered(msg_ids)  # never sent: no ack will come
            self.trouble.dropped += msg_ids.size
            self.state.lost_publishes += msg_ids.size
            self.trouble.note("publishes dropped while disconnected")

    async def flush(self, timeout_s: float) -> None:
        """Send what is buffered, then wait (at most ``timeout_s``) for the acks outstanding."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        connection = self.connection
        if connection is not None and not connection.lost:
            try:
                await connection.ping(timeout_s)
            except (TimeoutError, ConnectionError, OSError, WireError):  # WireError: a reset
                pass  # unacked publishes show as such; the drain waits on
        while self.window.unanswered and loop.time() < deadline:
            self.window.expire(loop.time())
            await asyncio.sleep(0.001)


class WireConsumer:
    """One consumer's connection, subscribed to its push consumer's deliver subject. Each
    read's message ids go to ``on_receipts`` as one array (``on_receipt`` with each payload
    when that is None); with explicit acks, an empty PUB answers each message's reply
    subject (``$JS.ACK...``), all those of one read in one write."""

    def __init__(self, index: int, deliver_subject: str, explicit: bool, on_receipts: OnReceipts | None,
                 on_receipt: OnReceipt) -> None:
        self.index = index
        self.deliver_subject = deliver_subject
        self.explicit = explicit
        self.on_receipts = on_receipts
        self.on_receipt = on_receipt
        self.connection: FrameConnection | None = None
        self.statuses = 0  # status frames the server sent (flow control, heartbeats)

    def on_table(self, data: np.ndarray, frames: np.ndarray) -> None:
        if frames[HEADER_LENGTH].any():
            frames = self._answer_statuses(data, frames)
        starts, lengths = frames[PAYLOAD_START], frames[PAYLOAD_LENGTH]
        if self.on_receipts is not None:
            ids = read_ids(data, starts, lengths)
            self.on_receipts(self.index, ids, starts.size - ids.size)
        else:
            for received in payloads(data, starts, lengths):
                self.on_receipt(self.index, received)
        if self.explicit and self.connection is not None and frames.shape[1]:
            self.connection.write_now(pack_replies(data, frames[REPLY_START], frames[REPLY_LENGTH]).data)

    def _answer_statuses(self, data: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """The frames that are messages, the server's status frames taken out: a status
        (headers ``NATS/1.0 <code> ...``: an idle heartbeat, a flow-control request) is not
        a message; flow control, and a heartbeat saying the consumer stalled on it
        (``Nats-Consumer-Stalled: <subject>``), want an empty reply. The consumers msgstorm
        creates ask for neither (no flow control, no heartbeats): this is for a server that
        sends them anyway. Rare: in Python."""
        keep = []
        answers: list[bytes] = []
        for i in range(frames.shape[1]):
            header_length = int(frames[HEADER_LENGTH, i])
            start = int(frames[PAYLOAD_START, i])
            lines = data[start - header_length:start].tobytes().split(b"\r\n")
            if not header_length or len(lines[0].split()) < 2:
                keep.append(i)  # a message (headers without a status: not msgstorm's, still a receipt)
                continue
            self.statuses += 1
            reply = data[frames[REPLY_START, i]:frames[REPLY_START, i] + frames[REPLY_LENGTH, i]].tobytes()
            stalled = [line.split(b":", 1)[1].strip() for line in lines[1:]
                       if line.lower().startswith(b"nats-consumer-stalled:")]
            answers += [reply, *stalled]
        if answers and self.connection is not None:
            self.connection.write_now(reply_frames(answers))
        return frames[:, keep]


def warm_up() -> None:
    """Compile (or load from numba's cache) the ack parser and the window's passes for the
    array types a run passes them: a connection hands over a view of its frame table's
    first columns (a non-contiguous array), or the whole table when a read fills it."""
    ack = b'{"stream":"S","seq":1}'
    received = np.frombuffer(b"MSG _INBOX.a.0 1 %d\r\n%s\r\n" % (len(ack), ack) * 2, dtype=np.uint8).copy()
    table = frame_table(2)
    assert scan_frames(received, 0, table)[0] == 2
    read_acks(received, table)
    msg_ids, seqs = read_acks(received, table[:, :1])
    state = np.zeros(1, dtype=np.uint8)
    assert _mark_sent(state, msg_ids) == 0 and _settle(state, msg_ids) == 1 and seqs.tolist() == [1]
