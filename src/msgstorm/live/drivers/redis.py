"""Redis Streams (XADD, then XREADGROUP or XREAD) through redis-py's asyncio client.

Place in the pipeline: a live driver (``drivers/base.py``). Without ``live.url`` it starts
``redis-server`` (the OS package) on a free loopback port with ``--save "" --appendonly
no``: the stream lives in the server's memory only, so an ack means "in Redis's memory"
(no disk in the measured path, and a fresh empty server every run); its log is
``RUN_DIR/servers/redis-server.log``, its working directory ``RUN_DIR/servers/redis-data``.
With ``live.url`` (a ``redis://`` URL) the run refuses to start when the stream key
(``live.redis.stream``) already exists, rather than mix its entries with older ones or
delete a user's data; the stream is left in that server after the run.

One connection publishes: ``publish`` only buffers, and one task sends the buffer as
pipelined XADDs (at most ``live.redis.pipeline`` per round trip, one round trip in flight,
so the stream's order is the send order); the publisher waits once
``live.redis.max_pending`` XADDs are buffered or unanswered. Each consumer has its own
connection. ``mode = "group"``: one consumer group, each consumer XREADGROUPs and XACKs, so
each entry goes to one consumer; after a reconnection a consumer first acks what it had read
(an XACK the lost connection swallowed), then re-reads what it was given but never read, so
a killed connection costs no duplicate (the audit would count one).
``mode = "fanout"``: every consumer XREADs the whole stream from its start. No client
retries (a retried pipeline could XADD twice): a lost connection is reported as
``disconnected``, publishes made while it is down are dropped (they show as lost, and the
count is in the ``reconnected`` or ``client_error`` event), and every client reconnects
every ``RECONNECT_INTERVAL_S`` until the run ends.

Staged bursts (``[live.redis] burst`` above 1, the default, on a plain ``redis://`` URL):
the target stages the messages it sends next as columns, their XADD commands are laid out
in one compiled pass, and the publisher's task writes up to ``pipeline`` of them at a time
on a connection of its own and parses the replies with hiredis (``drivers/redis_wire.py``),
acking them in bulk; the rules above (one round trip in flight, ``max_pending``, drops while
disconnected, no retries) are the same. Each consumer then reads on a connection of its own
too (hiredis parses the replies into lists), and sends the XACK of what it read in the same
write as its next read (after a reconnection it re-reads its unacked entries, as above).

History mapping (what each column means on this target): ``t_sent`` the XADD was queued in
the client; ``t_sequenced`` = ``t_committed`` the XADD reply (the entry id) arrived, read
with the rest of its pipelined batch; ``seq_no`` the entry id's order (``entry_order``);
``t_received``, ``t_dequeued`` and ``block`` null (Redis shows no queue before the
append). An XADD whose reply died with its connection has no ack, but a consumer that reads
its entry reads its id: the entry is acked then (``drivers/redis_orphans.py``; ``t_sequenced`` =
``t_committed`` that read, ``seq_no`` its entry id's order), so a message a consumer received
is a sequenced one, as every other committed message. Consumer receipts are ``deliveries``
rows (``consumer-<i>``); after the run the
whole stream is read back (XRANGE, in pages) as ``deliveries`` rows with node ``stream``,
except with ``maxlen``, where trimming drops acked entries by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

# Absolute imports: this module is msgstorm.live.drivers.redis, the client is redis-py.
import hiredis
import numpy as np
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import Callbacks, DriverState, OnAck, OnEvent, OnReceipt
from msgstorm.live.drivers.capabilities import Capabilities, Sending, Servers
from msgstorm.live.drivers.redis_orphans import Orphans
from msgstorm.live.drivers.redis_wire import (
    SEQ_BITS,
    RespPublisher,
    command,
    entry_orders,
    wire_supported,
    xadd_frames,
    xadd_head,
)
from msgstorm.live.payload import HEADER, StoredCopy, pack_payloads
from msgstorm.live.payload import warm_up as warm_up_payloads
from msgstorm.live.read_back import read_with_retries
from msgstorm.live.servers import ManagedServer, ServerError, free_port, require_loopback
from msgstorm.scenario.live import LiveSpec, OwnNames
from msgstorm.scenario.registry import LIVE_DRIVERS

__all__ = ["SEQ_BITS", "RedisDriver", "entry_order"]

FIELD = b"p"  # each entry holds one field: the payload
PUBLISHER = "msgstorm-publisher"
# Short enough that a consumer notices ``close`` promptly, long enough not to spin.
BLOCK_MS = 100
# A reply slower than this is a dead connection (a paused server shows as latency until then).
READ_TIMEOUT_S = 10.0
RECONNECT_INTERVAL_S = 0.1
# ``flush`` waits at most this for the last replies; the target's drain waits on after it.
FLUSH_TIMEOUT_S = 5.0
READ_BACK_PAGE = 10_000
# ``close`` asks the tasks to stop and waits this long, then cancels them; it does not rely
# on cancelling alone: redis-py can swallow a cancellation (redis/redis-py#2028).
CLOSE_TIMEOUT_S = 2.0
# What a lost connection raises: redis-py's own errors, or a socket error it did not wrap.
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


def entry_order(entry_id: bytes) -> int:
    """An entry id ``b"<ms>-<seq>"`` as one integer that increases with it."""
    ms, _, seq = entry_id.partition(b"-")
    return (int(ms) << SEQ_BITS) + int(seq)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# (entry id, fields); fields are None for an entry trimmed after it was delivered.
Entry = tuple[bytes, dict[bytes, bytes] | None]


def _entries(reply: Any) -> list[Entry]:
    """The entries of a one-stream XREAD / XREADGROUP reply (RESP2: ``[[key, entries]]``)."""
    return list(reply[0][1]) if reply else []


def _range(reply: Any) -> list[Entry]:
    """The entries of an XRANGE reply (redis-py types replies loosely; RESP2 bytes here)."""
    return list(reply or [])


@dataclass
class _Staged:
    """Staged messages: XADD i is ``frames[ends[i]:ends[i + 1]]``, of message ``msg_ids[i]``."""

    msg_ids: np.ndarray
    frames: memoryview
    ends: list[int]
    taken: int = 0


@LIVE_DRIVERS.register("redis")
class RedisDriver:
    capabilities = Capabilities(sending=Sending(bursts=True, bulk_acks=True), servers=Servers(), accounting=True)
    # ``--target SCHEME://host:port`` picks this driver (plain or TLS): the scheme
    # -> the scheme its client connects with.
    url_schemes: ClassVar[dict[str, str]] = {"redis": "redis", "rediss": "rediss"}

    @staticmethod
    def generator_names(live: LiveSpec, index: int) -> OwnNames:
        """Generator ``index`` of a distributed run (``live/distributed.py``): the stream key
        ``live.redis.stream`` + ``.gK``; its consumer group is the key's own, so the group's
        name stays."""
        return {"redis": {"stream": f"{live.redis.stream}.g{index}"}}

    acks = True

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        self.spec = spec
        self.settings = spec.redis  # [live.redis]
        self.fanout = spec.redis.mode == "fanout"
        self.run_dir = run_dir
        self.on_event = on_event
        self.url = spec.url
        self.servers: list[ManagedServer] = []
        self.publisher: redis.asyncio.Redis | None = None
        self.consumers: list[redis.asyncio.Redis] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._buffer: deque[tuple[int, bytes]] = deque()
        self._in_flight = 0  # XADDs sent, reply not back
        self._work = asyncio.Event()  # the buffer has something
        self._room = asyncio.Event()  # the publisher may buffer again
        self._connected = True  # the publisher's connection is up and its task runs
        self._dropped = 0  # publishes dropped while disconnected, not yet reported
        # ``Accounting``: every publish dropped or refused; every XADD whose reply was
        # lost with its connection (it may be in the stream, its entry id will not come).
        self._closing = False  # every task's loop ends when this is set
        self.state = DriverState(on_event)  # counts, outages, callbacks
        # Staged bursts (``Sending.bursts``): XADDs laid out ahead, handed to the publisher's task
        # as (ids, frames) slices; ``burst`` 1 publishes through redis-py one message at a time.
        wire = self.url is None or wire_supported(self.url)
        self.burst = spec.redis.burst if wire else 1
        self._head = xadd_head(spec.redis.stream.encode(), FIELD, spec.redis.maxlen)
        self._staged: deque[_Staged] = deque()
        self._chunks: deque[tuple[_Staged, int, int]] = deque()  # due, not yet written: [first, last) of one
        self._chunked = 0  # messages in ``_chunks``
        self._wire: RespPublisher | None = None
        self._orphans = Orphans()  # XADDs whose replies died, acked by the reads that find them

    # --- the server -----------------------------------------------------------------------

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        """The servers a run starts (none with ``url``): what a process fault may name."""
        return [] if spec.url is not None else ["redis-server"]

    def server_url(self, server: ManagedServer) -> str:
        return f"redis://127.0.0.1:{server.port}"

    def start_servers(self) -> list[dict[str, Any]]:
        if self.url is not None:
            require_loopback(self.url, self.spec.allow_remote)
            self._refuse_existing_stream(self.url)
            return []
        binary = ManagedServer.program("redis-server", install="apt-get install redis-server")
        port = free_port()
        directory = self.run_dir / "servers"
        data = directory / "redis-data"
        data.mkdir(parents=True, exist_ok=True)
        server = ManagedServer("redis-server", [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data), "--save", "",
            "--appendonly", "no", "--logfile", str(directory / "redis-server.log")],
            port, directory, self.spec.start_timeout / 1e9,
            cpus=1)  # commands run on one thread (io-threads 1, the default)
        self.servers.append(server)
        server.start()
        self.url = f"redis://127.0.0.1:{port}"
        return [{"name": server.name, "pid": server.pid, "url": self.url, "cpus": server.cpus}]

    def _refuse_existing_stream(self, url: str) -> None:
        timeout_s = self.spec.start_timeout / 1e9
        key = self.settings.stream
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                          retry=Retry(NoBackoff(), 0))
            try:
                kind = client.type(key)
            finally:
                client.close()
        except (RedisError, ValueError, OSError) as error:
            raise ServerError(f"{url}: cannot connect: {_describe(error)}") from error
        if kind not in (b"none", "none"):
            raise ServerError(
                f"{url}: key {key!r} already exists (type {kind!r}); a run starts from an empty stream: "
                f"delete it (redis-cli -u {url} DEL {key}) or set live.redis.stream to another key")

    def stop_servers(self) -> None:
        for server in self.servers:
            server.stop()

    # --- connecting -----------------------------------------------------------------------

    def _client(self, name: str) -> redis.asyncio.Redis:
        assert self.url is not None
        return redis.asyncio.Redis.from_url(
            self.url, client_name=name, protocol=2, socket_connect_timeout=self.spec.start_timeout / 1e9,
            socket_timeout=READ_TIMEOUT_S, retry=AsyncRetry(NoBackoff(), 0))

    async def _ensure_group(self, client: redis.asyncio.Redis) -> None:
        """Create the consumer group (and the empty stream) unless it exists."""
        try:
            await client.xgroup_create(self.settings.stream, self.settings.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def connect(self, callbacks: Callbacks) -> None:
        self.state.callbacks = callbacks
        timeout_s = self.spec.start_timeout / 1e9
        self.publisher = self._client(PUBLISHER)
        await asyncio.wait_for(self.publisher.ping(), timeout_s)
        if not self.fanout:
            await self._ensure_group(self.publisher)
        for index in range(self.spec.consumers):
            client = self._client(f"msgstorm-consumer-{index}")
            self.consumers.append(client)
            await asyncio.wait_for(client.ping(), timeout_s)
        # The group exists (or a fan-out consumer reads from the stream's start): nothing
        # sent from now on can be missed, so the consumers are subscribed on return.
        readers: list[RespPublisher | None] = [None] * len(self.consumers)
        if self.burst > 1:  # each consumer's own connection, opened now: a refusal is said before the run
            assert self.url is not None
            readers = [RespPublisher(self.url, f"msgstorm-consumer-{index}", READ_TIMEOUT_S)
                       for index in range(len(self.consumers))]
            try:
                for reader in readers:
                    assert reader is not None
                    await asyncio.wait_for(reader.open(), timeout_s)
            except BaseException:
                for reader in readers:
                    if reader is not None:
                        reader.close()
                raise
        self._tasks = [asyncio.create_task(self._consume(index, client, callbacks.on_receipt, reader))
                       for index, (client, reader) in enumerate(zip(self.consumers, readers))]
        # The compiled code of the framing, the consumers' reads and the acks, loaded (or
        # compiled) now rather than in the run's first burst or ack, on a worker thread as
        # the NATS client's (a signal meanwhile stops the run as at any other time).
        await asyncio.get_running_loop().run_in_executor(None, self._warm_up)
        if self.burst > 1:
            assert self.url is not None
            self._wire = RespPublisher(self.url, PUBLISHER, READ_TIMEOUT_S)
            await asyncio.wait_for(self._wire.open(), timeout_s)
            self._tasks.append(asyncio.create_task(self._send_staged(callbacks.on_ack)))
        else:
            self._tasks.append(asyncio.create_task(self._send(callbacks.on_ack)))

    def _warm_up(self) -> None:
        warm_up_payloads()
        one = np.zeros(1, dtype=np.int64)
        xadd_frames(self._head, *pack_payloads(one, one, np.ones(1, dtype=np.int32)))
        entry_orders([b"0-1"])

    async def _reconnect(self, client: redis.asyncio.Redis, name: str, error: BaseException) -> None:
        """Report the failure, then retry every RECONNECT_INTERVAL_S until the client answers
        (and the group exists: a restarted server may have come back empty)."""
        lost = isinstance(error, _CONNECTION_ERRORS)
        if lost:
            self.state.outages.down(name, {"error": _describe(error)})
        else:
            self.on_event(EventKind.CLIENT_ERROR, {"client": name, "error": _describe(error)})
        while not self._closing:
            await asyncio.sleep(RECONNECT_INTERVAL_S)
            try:
                await client.ping()
                if not self.fanout:
                    await self._ensure_group(client)
            except (RedisError, OSError) as failed:
                if lost:
                    self.state.outages.error(name, _describe(failed))
                continue
            if lost:
                detail: dict[str, Any] = {}
                if name == PUBLISHER:
                    detail["dropped"], self._dropped = self._dropped, 0
                self.state.outages.up(name, detail)
            return

    # --- publishing -----------------------------------------------------------------------

    async def publish(self, msg_id: int, payload: bytes) -> None:
        while self._connected and len(self._buffer) + self._in_flight >= self.settings.max_pending:
            self._room.clear()
            await self._room.wait()
        self.state.handed_over += 1
        if not self._connected:
            self._dropped += 1  # never reaches the server: it shows as lost
            self.state.lost_publishes += 1
            return
        self._buffer.append((msg_id, payload))
        self._work.set()

    async def _send(self, on_ack: OnAck) -> None:
        """The publisher's task: send what is buffered as pipelined XADDs, one round trip at
        a time, and ack each message with its entry id's order."""
        client = self.publisher
        assert client is not None
        stream, maxlen, size = self.settings.stream, self.settings.maxlen, self.settings.pipeline
        try:
            while not self._closing:
                if not self._buffer:
                    self._work.clear()
                    await self._work.wait()
                    continue
                batch = [self._buffer.popleft() for _ in range(min(size, len(self._buffer)))]
                self._in_flight = len(batch)
                self._orphans.send(np.array([msg_id for msg_id, _ in batch], dtype=np.int64))
                pipe = client.pipeline(transaction=False)
                for _, payload in batch:
                    pipe.xadd(stream, {FIELD: payload}, maxlen=maxlen, approximate=True)
                try:
                    replies = await pipe.execute(raise_on_error=False)
                except (RedisError, OSError) as error:
                    self._publisher_lost(len(self._buffer))
                    self._buffer.clear()
                    await self._reconnect(client, PUBLISHER, error)
                    self._connected = True
                    continue
                self._in_flight = 0
                self._orphans.answered()
                self._room.set()
                self._ack(np.fromiter((msg_id for msg_id, _ in batch), dtype=np.int64, count=len(batch)),
                          replies, on_ack)
        finally:
            # Cancelled at close, or failed: publish must not wait for a task that is gone.
            self._connected = False
            self._room.set()

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Messages to publish next (``Sending.bursts``): their XADD commands are laid out now."""
        frames, ends = xadd_frames(self._head, *pack_payloads(msg_ids, keys, sizes))
        self._staged.append(_Staged(msg_ids, memoryview(frames.data), [0, *ends.tolist()]))

    async def publish_staged(self, count: int) -> int | None:
        """Hand the next ``count`` staged messages to the publisher's task (as ``publish``
        each: it waits while ``max_pending`` are outstanding; dropped while disconnected).
        After a wait for room it returns 0, handing over nothing: the target stamps them anew;
        with room for fewer than ``count`` it hands over those and returns how many."""
        requested = count
        if self._connected and self._chunked + self._in_flight >= self.settings.max_pending:
            while self._connected and self._chunked + self._in_flight >= self.settings.max_pending:
                self._room.clear()
                await self._room.wait()
            return 0
        room = self.settings.max_pending - self._chunked - self._in_flight
        taken = min(count, room) if self._connected else count  # none waits once disconnected: dropped
        count = taken
        self.state.handed_over += taken
        while count > 0:
            staged = self._staged[0]
            first = staged.taken
            last = staged.taken = min(len(staged.msg_ids), first + count)
            count -= last - first
            if last == len(staged.msg_ids):
                self._staged.popleft()
            if not self._connected:
                self._dropped += last - first  # never reaches the server: they show as lost
                self.state.lost_publishes += last - first
                continue
            self._chunks.append((staged, first, last))
            self._chunked += last - first
        self._work.set()
        return None if taken == requested else taken

    async def _send_staged(self, on_ack: OnAck) -> None:
        """The publisher's task for staged bursts: up to ``pipeline`` XADDs written at once on
        its own connection, one round trip in flight, the replies' entry ids acked in bulk."""
        wire, client = self._wire, self.publisher
        assert wire is not None and client is not None
        size = self.settings.pipeline
        try:
            while not self._closing:
                if not self._chunks:
                    self._work.clear()
                    await self._work.wait()
                    continue
                ids, frames = self._take(size)
                self._in_flight = ids.size
                self._orphans.send(ids)
                try:
                    replies = await wire.round_trip(frames, ids.size)
                except (ConnectionError, OSError, TimeoutError) as error:
                    self._publisher_lost(self._chunked)
                    self._chunks.clear()
                    self._chunked = 0
                    await self._reconnect(client, PUBLISHER, RedisConnectionError(_describe(error)))
                    while not self._closing:
                        try:
                            await wire.open()
                            break
                        except (ConnectionError, OSError, TimeoutError):
                            await asyncio.sleep(RECONNECT_INTERVAL_S)
                    self._connected = True
                    continue
                self._in_flight = 0
                self._orphans.answered()
                self._room.set()
                self._ack(ids, replies, on_ack)
        finally:
            # Cancelled at close, or failed: publish must not wait for a task that is gone.
            self._connected = False
            self._room.set()
            wire.close()

    def _publisher_lost(self, buffered: int) -> None:
        """The publisher's connection failed with its round trip's XADDs unanswered and
        ``buffered`` not yet sent (they are dropped; the caller empties its buffer). Of those
        in flight, the ones a consumer has read are acked now with their entries' orders;
        whether the server appended the others is unknown (``drivers/redis_orphans.py``)."""
        self._in_flight = 0
        self._connected = False
        done, orders, unread = self._orphans.lost()
        self._acked(done, orders, self.state.callbacks.on_ack)
        self.state.unacked_publishes += unread
        self.state.lost_publishes += buffered
        self._dropped += buffered
        self._room.set()

    def _take(self, size: int) -> tuple[np.ndarray, bytes | memoryview]:
        """Up to ``size`` messages from the front of ``_chunks``: their ids and their XADDs."""
        ids: list[np.ndarray] = []
        frames: list[memoryview] = []
        taken = 0
        while self._chunks and taken < size:
            staged, first, last = self._chunks[0]
            cut = min(last, first + size - taken)
            if cut == last:
                self._chunks.popleft()
            else:  # the rest stays in front
                self._chunks[0] = (staged, cut, last)
            ids.append(staged.msg_ids[first:cut])
            frames.append(staged.frames[staged.ends[first]:staged.ends[cut]])
            taken += cut - first
        self._chunked -= taken
        return (ids[0] if len(ids) == 1 else np.concatenate(ids),
                frames[0] if len(frames) == 1 else b"".join(frames))

    def _ack(self, ids: np.ndarray, replies: list[Any], on_ack: OnAck) -> None:
        """Ack each appended message with its entry id's order; count the refusals."""
        refused = [reply for reply in replies if not isinstance(reply, bytes)]
        if refused:
            self.state.lost_publishes += len(refused)
            self.on_event(EventKind.CLIENT_ERROR, {"client": PUBLISHER, "refused": len(refused),
                                                   "error": str(refused[0])})
            acked = np.fromiter((isinstance(reply, bytes) for reply in replies), dtype=np.bool_, count=len(replies))
            ids = ids[acked]
            replies = [reply for reply in replies if isinstance(reply, bytes)]
        order = entry_orders(replies)
        if (order < 0).any():  # a reply that is not an entry id Redis makes: not an ack
            unknown = order < 0
            self.state.lost_publishes += int(unknown.sum())
            self.on_event(EventKind.CLIENT_ERROR, {"client": PUBLISHER, "refused": int(unknown.sum()),
                                                   "error": f"not an entry id: {replies[int(np.argmax(unknown))]!r}"})
            ids, order = ids[~unknown], order[~unknown]
        self._acked(ids, order, on_ack)

    def _ack_orphans(self, ids: list[int], entries: list[tuple[bytes, bytes | None]]) -> None:
        """Ack the orphans among one read's entries, whose messages are ``ids`` (entries
        without a payload or too short to carry an id have none; ``Orphans.read``)."""
        named = [entry_id for entry_id, payload in entries
                 if payload is not None and len(payload) >= HEADER.size]
        read_ids, orders = self._orphans.read(np.array(ids, dtype=np.int64), named)
        self.state.unacked_publishes -= read_ids.size  # their acks came after all
        self._acked(read_ids, orders, self.state.callbacks.on_ack)

    def _acked(self, ids: np.ndarray, orders: np.ndarray, on_ack: OnAck) -> None:
        """Ack messages ``ids`` with their entries' orders (in bulk where the target takes it)."""
        if not ids.size:
            return
        if self.state.callbacks.on_acks is not None:
            self.state.callbacks.on_acks(ids, orders)
        else:
            for msg_id, order in zip(ids.tolist(), orders.tolist()):
                on_ack(msg_id, order)

    async def flush(self) -> None:
        deadline = asyncio.get_running_loop().time() + FLUSH_TIMEOUT_S
        while ((self._buffer or self._chunks or self._in_flight) and self._connected
               and asyncio.get_running_loop().time() < deadline):
            await asyncio.sleep(0.001)

    # --- consuming ------------------------------------------------------------------------

    async def _consume(  # noqa: C901
        self, index: int, client: redis.asyncio.Redis, on_receipt: OnReceipt,
        wire: RespPublisher | None) -> None:
        name = f"msgstorm-consumer-{index}"
        stream, group, count = self.settings.stream, self.settings.group, self.settings.read_count
        # Fan-out: the last entry id read. Group: ">" (entries never delivered) or "0" (this
        # consumer's own unacked entries, re-read after a reconnection).
        cursor: bytes | str = b"0-0" if self.fanout else ">"
        read = HEADER.unpack_from
        # With staged bursts the consumer reads on a connection of its own too (hiredis parses
        # the replies into lists; redis-py would make a dict per entry, about 5 us a message),
        # and acks what it read in the same round trip as its next read.
        unacked: list[bytes] = []
        try:
            while not self._closing:
                try:
                    if wire is not None:
                        if not wire.is_open:
                            await wire.open()
                        entries = await self._read_wire(wire, name, cursor, unacked)
                        unacked = []
                    else:
                        if unacked:  # read before a reconnection, its XACK lost: acked before "0" re-reads them
                            await client.xack(stream, group, *unacked)
                            unacked = []
                        reply = (await client.xread({stream: cursor}, count=count, block=BLOCK_MS) if self.fanout else
                                 await client.xreadgroup(group, name, {stream: cursor}, count=count, block=BLOCK_MS))
                        # (entry id, payload); None: trimmed since delivered
                        entries = [(entry_id, fields.get(FIELD) if fields else None)
                                   for entry_id, fields in _entries(reply)]
                    on_receipts = self.state.callbacks.on_receipts
                    if on_receipts is None and entries and self._orphans.watched:  # acked first
                        self._ack_orphans([read(p)[0] for _, p in entries
                                           if p is not None and len(p) >= HEADER.size], entries)
                    if on_receipts is None:
                        for _, payload in entries:
                            if payload is not None:
                                on_receipt(index, payload)
                    elif entries:
                        payloads = [payload for _, payload in entries if payload is not None]
                        ids = [read(p)[0] for p in payloads if len(p) >= HEADER.size]
                        if self._orphans.watched:  # acked before the receipts
                            self._ack_orphans(ids, entries)
                        on_receipts(index, np.array(ids, dtype=np.int64), len(payloads) - len(ids))
                    if self.fanout:
                        if entries:
                            cursor = entries[-1][0]
                    elif entries:
                        unacked = [entry_id for entry_id, _ in entries]
                        if wire is None:  # (on the wire connection they are acked with the next read)
                            await client.xack(stream, group, *unacked)
                            unacked = []
                    elif cursor != ">":
                        cursor = ">"  # its unacked entries are all re-read: back to new ones
                except (RedisError, OSError) as error:
                    # ``unacked`` is kept: its XACK (perhaps never sent) goes before or with the
                    # first read after the reconnection, so those entries are not read again from "0".
                    await self._reconnect(client, name, error)
                    if not self.fanout:
                        cursor = "0"
            if wire is not None and unacked and wire.is_open:
                with contextlib.suppress(OSError):
                    await wire.round_trip(command(b"XACK", stream.encode(), group.encode(), *unacked), 1)
        finally:
            if wire is not None:
                wire.close()

    async def _read_wire(self, wire: RespPublisher, name: str, cursor: bytes | str,
                         unacked: list[bytes]) -> list[tuple[bytes, bytes | None]]:
        """One XREADGROUP (XREAD in fan-out) on the consumer's own connection, after an XACK
        of ``unacked`` in the same write: the entries read, as (entry id, payload or None)."""
        stream, group = self.settings.stream.encode(), self.settings.group.encode()
        position = cursor if isinstance(cursor, bytes) else cursor.encode()
        head = [b"COUNT", b"%d" % self.settings.read_count, b"BLOCK", b"%d" % BLOCK_MS, b"STREAMS", stream, position]
        frames = (command(b"XREAD", *head) if self.fanout else
                  command(b"XREADGROUP", b"GROUP", group, name.encode(), *head))
        if unacked:
            frames = command(b"XACK", stream, group, *unacked) + frames
        replies = await wire.round_trip(frames, 2 if unacked else 1)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise ResponseError(str(reply))  # NOGROUP after a restart: the reconnection makes it
        reply = replies[-1]
        if not reply:
            return []  # nil: nothing within BLOCK_MS
        # RESP2: [[stream, [[id, [field, value, ...] or nil], ...]]]
        found: list[tuple[bytes, bytes | None]] = []
        for entry_id, fields in reply[0][1]:
            payload = None
            if fields:
                for k in range(0, len(fields) - 1, 2):
                    if fields[k] == FIELD:
                        payload = fields[k + 1]
                        break
            found.append((entry_id, payload))
        return found

    # --- after the run --------------------------------------------------------------------

    async def read_back(self) -> StoredCopy | None:
        """The stream read whole (XRANGE, a page at a time); a page whose connection drops is
        asked again on a new one (``live/read_back.py``)."""
        if self.settings.maxlen is not None or self.publisher is None:
            return None  # trimmed by design: what is left would accuse acked entries of loss
        publisher = self.publisher
        payloads = StoredCopy()
        start: bytes | str = "-"
        try:
            while True:
                page = _range(await read_with_retries(
                    functools.partial(publisher.xrange, self.settings.stream, min=start, max="+",
                                      count=READ_BACK_PAGE),
                    _CONNECTION_ERRORS))
                payloads.add((fields or {}).get(FIELD, b"") for _, fields in page)
                if len(page) < READ_BACK_PAGE:
                    return payloads
                ms, _, seq = page[-1][0].partition(b"-")
                start = b"%s-%d" % (ms, int(seq) + 1)  # the next id ("(" needs Redis 6.2)
        except (RedisError, OSError) as error:
            self.on_event(EventKind.CLIENT_ERROR, {"client": "read_back", "error": _describe(error)})
            return None

    async def close(self) -> None:
        self._closing = True
        self._work.set()
        if self._tasks:
            _, running = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S)
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running, timeout=CLOSE_TIMEOUT_S)
        for task in self._tasks:
            error = task.exception() if task.done() and not task.cancelled() else None
            if error is not None:  # a client bug, kept in the history
                self.on_event(EventKind.CLIENT_ERROR, {"client": "task", "error": _describe(error)})
        self.state.outages.close()
        if self._dropped:
            self.on_event(EventKind.CLIENT_ERROR, {"client": PUBLISHER, "dropped": self._dropped,
                                                   "error": "publishes dropped while disconnected"})
            self._dropped = 0
        for client in [*([self.publisher] if self.publisher else []), *self.consumers]:
            try:
                await client.aclose()
            except Exception as error:  # noqa: BLE001 - closing must not lose what was received
                self.on_event(EventKind.CLIENT_ERROR, {"client": "close", "error": _describe(error)})
