"""RabbitMQ (the OS package ``rabbitmq-server``): quorum, classic or stream queues, with
publisher confirms; consumers on aiormq (the AMQP 0-9-1 client under aio-pika), the publisher
msgstorm's own (``rabbitmq_wire.py``) or aiormq's.

Place in the pipeline: a live driver (``drivers/base.py``). Without ``live.url`` it starts one
node on a free loopback port (``RabbitServer``): its own node name (``msgstorm-<port>@localhost``),
AMQP port, Erlang distribution port, database, logs and configuration file under
``RUN_DIR/servers/rabbitmq/``, and ``HOME`` there too, so the node and ``rabbitmqctl`` use a
fresh ``.erlang.cookie`` of their own; a system service the package may have started is never
touched. The script ``exec``s the Erlang VM (``node_env``), so the process msgstorm started
is the node itself and dies with msgstorm (``PR_SET_PDEATHSIG``). The Erlang port mapper
(``epmd``) is the run's own (``start_epmd``): on a free port, started before the node, stopped
after it, and dying with msgstorm too; the machine's ``epmd`` (port 4369), which other
Erlang programs share, is neither started nor used. The node is stopped on every way out
(SIGTERM: the VM stops the node cleanly; SIGKILL to its process group after a grace).

With ``nodes`` above 1 it starts a cluster instead (``rabbitmq_cluster.py``): servers
``rabbit-<i>``, joined with ``rabbitmqctl`` when the clients connect (the fault proxy's routes
between them are up by then), ``cluster_partition_handling`` as set, classic queues mirrored on
every node with ``mirrored``; the publisher connects to ``rabbit-0``, consumer ``i`` to
``rabbit-<(i + 1) mod nodes>``, the read-back to the first node that answers.

``[live.rabbitmq]``: the publisher publishes to the fanout exchange ``<queue>.x`` on a channel
in confirm mode, persistent messages (delivery mode 2), at most ``max_inflight`` awaiting their
confirm (the publisher waits when the window is full). A confirm is the ack (``acks`` True); its
order is the publish's delivery tag less one (the channel numbers its publishes, and RabbitMQ
confirms them in that order). Consumers share the queue ``<queue>`` (each message to one), or,
with ``fanout = true``, each consumes a queue of its own (``<queue>.<i>``) bound to the exchange.
Consumers ack each message (manual acks, ``prefetch`` unacked at most). A stream
(``queue_type = "stream"``) is read whole by every consumer, each from its own offset.

Accounting: after the run the broker's own copy is read back. A quorum or classic queue is
emptied by its consumers, so the exchange also routes every message into an audit queue of the
same type, ``<queue>.audit``, that nobody consumes during the run: ``read_back`` reads it whole
(the ids it holds, in its order) without acking any, so the queue keeps them. A stream keeps what it took: ``read_back`` reads it from the
first offset. The delivery check then says of every confirmed message whether the broker has it
once, twice, or not at all (``acked_missing``: a confirmed message lost).

Connections lost (a node restart, a crash): each client reports ``disconnected`` and connects
again every ``RECONNECT_INTERVAL_S`` until the run ends, declaring its queues again (durable:
they and their persistent messages survive a restart). Publishes awaiting their confirm at the
loss are ``unacked_publishes`` (they may have reached the queue); publishes made while the
publisher is down are dropped (``lost_publishes``, counted in one ``client_error`` event at
the end). A stream consumer resumes after the last offset it got.

Publisher: with ``client = "wire"`` (the default) it is msgstorm's own (``rabbitmq_wire.py``:
the publishes due at once framed together and written at once, staged bursts of up to ``BURST``,
confirms read in bulk and mapped to the publishes by delivery tag); with ``"aiormq"``, aiormq's
``basic_publish`` in a task per message. The window, confirms, refusals and losses are as said
above either way.

History mapping: ``t_sent`` the publish was handed to the client; ``t_sequenced`` =
``t_committed`` its confirm arrived, ``seq_no`` the order of the confirms; ``t_received``,
``t_dequeued`` and ``block`` null. Consumer receipts are ``deliveries`` rows (``consumer-<i>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

import aiormq
import numpy as np
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import Callbacks, DriverState, OnEvent, OnReceipt
from msgstorm.live.drivers.capabilities import Capabilities, Checks, Sending, Servers
from msgstorm.live.drivers.rabbitmq_cluster import (
    NET_TICKTIME_S,
    cluster_config,
    dist_map,
    join,
    mirror,
    plan_nodes,
)
from msgstorm.live.drivers.rabbitmq_read import read_queue
from msgstorm.live.drivers.rabbitmq_wire import WirePublisher, declarations
from msgstorm.live.payload import HEADER, StoredCopy
from msgstorm.live.payload import payload as message_payload
from msgstorm.live.read_back import read_with_retries
from msgstorm.live.servers import ManagedServer, ServerError, check_user_url, free_port
from msgstorm.processes import usable_cpus
from msgstorm.scenario.live import LiveSpec, OwnNames
from msgstorm.scenario.registry import LIVE_DRIVERS
from msgstorm.scenario.schema import Scenario

__all__ = ["RabbitMqDriver", "RabbitServer", "rabbitmq_config"]

PUBLISHER = "msgstorm-publisher"
SERVER = "rabbitmq"
INSTALL = "apt-get install rabbitmq-server"
# An Erlang node boots in 3-10 s on a quiet machine and several times that on a loaded one:
# its start waits at least this long (seconds), whatever live.start_timeout says (as Kafka's
# JVM brokers do); a cluster's nodes start together and then join, so they wait longer.
NODE_START_S = 60.0
CLUSTER_START_S = 90.0
RECONNECT_INTERVAL_S = 0.1
FLUSH_TIMEOUT_S = 5.0
# The wire publisher's staged bursts: messages due at once that leave in one write, at most.
BURST = 1024
# The VM's flags the script would add when it runs the VM as its child (``node_env``): SIGINT
# ignored; and no port mapper of the VM's own (the run's is up before the node starts).
START_ARGS = "+B i -start_epmd false"
_CONNECTION_ERRORS = (OSError, aiormq.exceptions.AMQPError, asyncio.CancelledError, TimeoutError, RuntimeError)
_PERSISTENT = spec.Basic.Properties(delivery_mode=2)
# aiormq logs every lost connection and failed attempt with a traceback; the driver reports
# them as events (``Outages``), once an outage.
logging.getLogger("aiormq").addHandler(logging.NullHandler())
logging.getLogger("aiormq").propagate = False


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


async def _close_quietly(connection: aiormq.abc.AbstractConnection) -> None:
    with contextlib.suppress(*_CONNECTION_ERRORS, Exception):  # closing what may be gone
        await asyncio.wait_for(connection.close(), 2.0)


def rabbitmq_config(port: int) -> str:
    """The node's configuration (``rabbitmq.conf``): AMQP on 127.0.0.1 only; the guest user
    may connect (it is refused off loopback by default, and this node listens on loopback only);
    no disk or memory alarm at this machine's sizes (a run's load must not block publishers on
    a threshold set for a production host)."""
    return "\n".join([
        f"listeners.tcp.default = 127.0.0.1:{port}", "loopback_users = none",
        "disk_free_limit.absolute = 50MB", "vm_memory_high_watermark.relative = 0.8",
        "log.console = false", "log.file.level = info", ""])


def node_env(directory: Path, node: str, port: int, dist_port: int, epmd_port: int, erl_args: str,
             name: str | None = None) -> dict[str, str]:
    """The environment of the node ``node`` (``name@localhost``): its AMQP and distribution
    ports on loopback, the run's port mapper (``epmd_port``), its database, logs and
    configuration under ``directory`` (a cluster node's files named after its server
    ``name``; a single node's ``mnesia``, ``log`` and ``rabbitmq.conf``), and ``HOME`` there
    for a ``.erlang.cookie`` of the run's.

    ``RUNNING_UNDER_SYSTEMD``: Debian's ``rabbitmq-server`` reads it in one place only, to
    ``exec`` the VM (``erl``, itself an ``exec`` of ``erlexec``, which ``exec``s ``beam.smp``)
    instead of running it as a child and forwarding SIGTERM and SIGINT to it. Without it the
    process msgstorm starts is a shell: its parent-death signal kills the shell, and the node
    it started runs on. With it the pid msgstorm holds is the VM's, whose parent-death signal
    survives the ``exec``s. What the shell did is then the VM's own: it stops cleanly on
    SIGTERM (RabbitMQ's signal handler), and ``START_ARGS`` (``+B i``) has it ignore SIGINT as
    the script had it do; ``-start_epmd false``: the VM starts no ``epmd`` of its own."""
    prefix = f"{name}-" if name is not None else ""
    return {"HOME": str(directory), "RABBITMQ_NODENAME": node, "RUNNING_UNDER_SYSTEMD": "true",
            "RABBITMQ_SERVER_START_ARGS": START_ARGS, "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist_port), "RABBITMQ_MNESIA_BASE": str(directory / f"{prefix}mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / f"{prefix}log"),
            "RABBITMQ_CONFIG_FILE": str(directory / (name if name is not None else "rabbitmq")),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": erl_args}


def erlang_args(cpus: int) -> str:
    """The node's Erlang VM flags: ``cpus`` schedulers (one core is left to the generator, as
    for a Go server), and no busy-waiting of idle schedulers (by default an idle scheduler
    spins before it sleeps: on a small machine that spinning takes the generator's core and
    shows as its send lag, not as the broker's latency)."""
    return f"+S {cpus}:{cpus} +sbwt none +sbwtdcpu none +sbwtdio none"


def start_epmd(directory: Path, timeout_s: float) -> ManagedServer:
    """The run's Erlang port mapper: ``epmd`` in the foreground (not ``-daemon``, which would
    detach it from msgstorm) on a free port, listening on loopback, its log in ``directory``.
    Every node of the run and ``rabbitmqctl`` find it through ``ERL_EPMD_PORT``; it dies with
    msgstorm as any server it starts, and is stopped after the nodes."""
    binary = ManagedServer.program("epmd", "/usr/lib/erlang/bin/epmd", install=INSTALL)
    port = free_port()
    server = ManagedServer("epmd", [binary, "-port", str(port), "-address", "127.0.0.1"], port, directory, timeout_s)
    server.start()
    return server


class RabbitServer(ManagedServer):
    """A node started from ``rabbitmq-server``, which ``exec``s the Erlang VM (``node_env``):
    the process is the VM, in a process group of its own with the helpers it starts
    (``erl_child_setup`` and its port programs). A crash (SIGKILL) and a pause (SIGSTOP) go to
    the whole group, and whatever of it outlives a stop is killed."""

    def _signal_group(self, sig: int) -> None:
        process = self.process
        if process is None:
            return
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout_s: float = 15.0) -> None:
        # SIGTERM to the VM, which stops the node cleanly and exits; then whatever of the
        # group is left, killed.
        super().stop(timeout_s)
        self._signal_group(signal.SIGKILL)

    def kill(self) -> float:
        """SIGKILL to the whole group (the node with the script): a crash, never held (no
        ``whole``)."""
        process = self.process
        if process is None or process.poll() is not None:
            return 0.0
        self.stopped_by_fault = True
        self._signal_group(signal.SIGKILL)
        process.wait()
        self.returncode = None  # not stopped by ``stop``: the run's end still stops what runs then
        self.paused = False
        return 0.0

    def terminate(self, timeout_s: float = 15.0) -> None:
        """A graceful stop (SIGTERM: the VM stops the node); what of the group is left, killed."""
        super().terminate(timeout_s)
        self._signal_group(signal.SIGKILL)

    def pause(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self._signal_group(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self._signal_group(signal.SIGCONT)
        self.paused = False


def url_address(url: str) -> str:
    """The aiormq URL of ``amqp://host:port`` (guest credentials unless the URL names some);
    ValueError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "rabbitmq") or not parts.hostname:
        raise ValueError(f"{url}: not an amqp://host:port URL")
    user = parts.username or "guest"
    password = parts.password or "guest"
    port = parts.port or 5672
    return f"amqp://{user}:{password}@{parts.hostname}:{port}/"


@LIVE_DRIVERS.register("rabbitmq")
class RabbitMqDriver:
    capabilities = Capabilities(sending=Sending(bursts=True, bulk_acks=True),
                                servers=Servers(route_links=True), accounting=True,
                                checks=Checks(scenario=True))
    # ``--target SCHEME://host:port`` picks this driver (a RabbitMQ node, its client
    # speaking AMQP): the scheme -> the scheme its client connects with.
    url_schemes: ClassVar[dict[str, str]] = {"rabbitmq": "amqp", "amqp": "amqp"}

    @staticmethod
    def generator_names(live: LiveSpec, index: int) -> OwnNames:
        """Generator ``index`` of a distributed run (``live/distributed.py``): the queue
        ``live.rabbitmq.queue`` + ``.gK`` (its exchange ``<queue>.x``, its consumers' and audit
        queues follow from it)."""
        return {"rabbitmq": {"queue": f"{live.rabbitmq.queue}.g{index}"}}

    @staticmethod
    def problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
        """A cluster with generators spread over a Ray cluster: each generator's clients would
        reach one node of it only."""
        live = scenario.live
        if live.generators > 1 and live.rabbitmq.nodes > 1:
            said = (f"a RabbitMQ cluster with live.generators = {live.generators}: its generators' "
                    "clients would each reach one node of it only; set nodes = 1 or live.generators = 1")
            return [(("live", "rabbitmq", "nodes"), said)]
        return []

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        self.spec = spec
        # A cluster's routes through the fault proxy (a partition): set before ``start_servers``,
        # which then names each route's proxy listener in ``route_links`` ({route-i-j: (its
        # port, node j's distribution port)}).
        self.proxy_routes = False
        self.route_links: dict[str, tuple[int, int]] = {}
        self.node_urls: list[str] = []  # each node's AMQP URL, rabbit-0 first (a cluster)
        self._erlang_nodes: list[str] = []  # their Erlang node names, to join them
        self._ctl_env: dict[str, str] = {}
        self.epmd: ManagedServer | None = None  # the run's port mapper (``start_epmd``)
        self.settings = spec.rabbitmq  # [live.rabbitmq]
        self.stream = self.settings.queue_type == "stream"
        self.fanout = self.settings.fanout or self.stream
        self.acks = True
        self.run_dir = run_dir
        self.on_event = on_event
        self.url = spec.url
        self.servers: list[ManagedServer] = []
        self.state = DriverState(on_event)  # counts, outages, callbacks
        self.exchange = f"{self.settings.queue}.x"
        self._window = asyncio.Semaphore(self.settings.max_inflight)
        self._inflight: set[asyncio.Task[None]] = set()
        self._written_off: set[asyncio.Task[None]] = set()  # cancelled at a connection's loss
        self._acked = 0
        self._dropped = 0
        self._closing = False
        self._connected = False
        self._publisher: aiormq.abc.AbstractChannel | None = None
        self._connections: list[aiormq.abc.AbstractConnection] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.wire = self.settings.client == "wire"
        self.burst = BURST if self.wire else 1  # aiormq: one publish at a time
        self.wire_publisher: WirePublisher | None = None
        self._staged: list[tuple[int, bytes]] = []  # aiormq: staged publishes, sent one at a time

    # --- the server -----------------------------------------------------------------------

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        if spec.url is not None:
            return []
        return [SERVER] if spec.rabbitmq.nodes == 1 else [f"rabbit-{i}" for i in range(spec.rabbitmq.nodes)]

    @staticmethod
    def has_routes(spec: LiveSpec) -> bool:
        """A cluster msgstorm starts: its nodes' routes can go through the fault proxy."""
        return spec.url is None and spec.rabbitmq.nodes > 1

    def server_url(self, server: ManagedServer) -> str:
        return f"amqp://127.0.0.1:{server.port}"

    def start_servers(self) -> list[dict[str, Any]]:
        if self.url is not None:
            if self.settings.nodes > 1:
                raise ServerError(f"live.rabbitmq.nodes = {self.settings.nodes} starts a cluster of msgstorm's; "
                                  f"with live.url ({self.url}) the broker is yours: leave nodes out")
            check_user_url(self.url, url_address, "rabbitmq", "amqp://127.0.0.1:5672", self.spec.allow_remote)
            return []
        if self.settings.nodes > 1:
            return self._start_cluster()
        # Debian's script itself, not /usr/sbin's wrapper, which run as root drops to the user
        # rabbitmq, who cannot write under the run directory.
        binary = ManagedServer.program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install=INSTALL)
        port, dist_port = free_port(), free_port()
        cpus = max(1, usable_cpus() - 1)
        directory = self.run_dir / "servers" / "rabbitmq"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "rabbitmq.conf").write_text(rabbitmq_config(port), encoding="utf-8")
        (directory / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        self.epmd = start_epmd(directory, self.spec.start_timeout / 1e9)
        env = node_env(directory, f"msgstorm-{port}@localhost", port, dist_port, self.epmd.port, erlang_args(cpus))
        server = RabbitServer(SERVER, [binary], port, directory, max(self.spec.start_timeout / 1e9, NODE_START_S),
                              env=env, cpus=cpus)
        self.servers.append(server)
        server.start()
        self.url = self.server_url(server)
        return [{"name": server.name, "pid": server.pid, "url": self.url, "cpus": server.cpus}]

    def _start_cluster(self) -> list[dict[str, Any]]:
        """``nodes`` nodes (``rabbitmq_cluster.py``), spawned at once, each waited for; they
        are joined when the clients connect (``connect``: the route proxy is up by then)."""
        binary = ManagedServer.program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install=INSTALL)
        count = self.settings.nodes
        directory = self.run_dir / "servers" / "rabbitmq"
        amqp, dist, names, routes = plan_nodes(count, directory, self.proxy_routes)
        (directory / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        cpus = 1  # nodes share the machine with each other and the generator
        self.epmd = start_epmd(directory, self.spec.start_timeout / 1e9)
        for i in range(count):
            name = f"rabbit-{i}"
            (directory / f"{name}.conf").write_text(
                rabbitmq_config(amqp[i]) + cluster_config(self.settings.handling), encoding="utf-8")
            erl = (f"{erlang_args(cpus)} -pa {directory} -epmd_module msgstorm_epmd "
                   f"-msgstorm_dist {dist_map(i, names, dist, routes)} -kernel net_ticktime {NET_TICKTIME_S} "
                   "-kernel inet_dist_use_interface {127,0,0,1}")
            env = node_env(directory, f"{names[i]}@localhost", amqp[i], dist[i], self.epmd.port, erl, name)
            self.servers.append(RabbitServer(name, [binary], amqp[i], directory, max(self.spec.start_timeout / 1e9,
                                                                                       CLUSTER_START_S), env=env, cpus=cpus))
        self.route_links = {f"route-{i}-{j}": (port, dist[j]) for (i, j), port in routes.items()}
        self._erlang_nodes = [f"{name}@localhost" for name in names]
        self._ctl_env = {**os.environ, "HOME": str(directory), "ERL_EPMD_PORT": str(self.epmd.port),
                         "RABBITMQ_CTL_ERL_ARGS": f"-kernel net_ticktime {NET_TICKTIME_S}"}
        for server in self.servers:
            server.spawn()
        for server in self.servers:
            server.wait_listening()
        self.node_urls = [self.server_url(server) for server in self.servers]
        self.url = self.node_urls[0]
        return [{"name": server.name, "pid": server.pid, "url": self.server_url(server), "cpus": server.cpus,
                 "node": node} for server, node in zip(self.servers, self._erlang_nodes, strict=True)]

    def stop_servers(self) -> None:
        if len(self.servers) == 1:
            self.servers[0].stop()
        elif self.servers:
            # A cluster's nodes stop at once, each on a thread of its own (a node's graceful
            # stop takes seconds; one after another they would add up).
            with ThreadPoolExecutor(max_workers=len(self.servers)) as pool:
                list(pool.map(lambda server: server.stop(), self.servers))
        if self.epmd is not None:  # after the nodes, which unregister from it as they stop
            self.epmd.stop()

    # --- connecting -----------------------------------------------------------------------

    def _queue_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": self.settings.queue_type}

    def consumer_queue(self, index: int) -> str:
        return f"{self.settings.queue}.{index}" if self.settings.fanout and not self.stream else self.settings.queue

    @property
    def audit_queue(self) -> str | None:
        """The queue the read-back reads: the stream itself, else ``<queue>.audit``."""
        return self.settings.queue if self.stream else f"{self.settings.queue}.audit"

    def _queues(self) -> list[str]:
        names = {self.consumer_queue(i) for i in range(self.spec.consumers)}
        if self.audit_queue is not None:
            names.add(self.audit_queue)
        return sorted(names)

    def consumer_url(self, index: int) -> str | None:
        """Consumer ``index``'s node: ``rabbit-<(index + 1) mod nodes>`` of a cluster, else the one URL."""
        return self.node_urls[(index + 1) % len(self.node_urls)] if self.node_urls else self.url

    async def _connect(self, timeout_ns: int | None = None, url: str | None = None) -> aiormq.abc.AbstractConnection:
        url = url or self.url
        assert url is not None
        timeout = (timeout_ns if timeout_ns is not None else self.spec.start_timeout) / 1e9
        connection = await asyncio.wait_for(aiormq.connect(url_address(url)), timeout)
        self._connections.append(connection)
        return connection

    async def _declare(self, channel: aiormq.abc.AbstractChannel) -> None:
        await channel.exchange_declare(self.exchange, exchange_type="fanout", durable=True)
        for name in self._queues():
            await channel.queue_declare(name, durable=True, arguments=self._queue_arguments())
            await channel.queue_bind(name, self.exchange)

    async def connect(self, callbacks: Callbacks) -> None:
        self.state.callbacks = callbacks
        if len(self._erlang_nodes) > 1:
            ctl = str(Path(self.servers[0].argv[0]).with_name("rabbitmqctl"))
            await join(ctl, self._ctl_env, self._erlang_nodes)
            if self.settings.mirrored:
                await mirror(ctl, self._ctl_env, self._erlang_nodes[0], self.settings.queue)
        if self.wire:
            assert self.url is not None
            self.wire_publisher = WirePublisher(
                url_address(self.url), self.exchange, declarations(self.exchange, self._queues(), self._queue_arguments()),
                self.settings.max_inflight, self.spec.start_timeout / 1e9, self.state, PUBLISHER,
                RECONNECT_INTERVAL_S)
            await self.wire_publisher.open()
        else:
            publisher = await self._connect()
            self._publisher = await publisher.channel(publisher_confirms=True)
            await self._declare(self._publisher)
        offsets: list[int | None] = [None] * self.spec.consumers
        for index in range(self.spec.consumers):
            await self._subscribe(index, callbacks.on_receipt, offsets)
        self._connected = True
        if not self.wire:
            self._tasks.append(asyncio.create_task(self._watch_publisher(publisher)))

    async def _subscribe(self, index: int, on_receipt: OnReceipt, offsets: list[int | None]) -> None:
        """Connect consumer ``index`` and start its consumption (a stream from where it left)."""
        connection = await self._connect(url=self.consumer_url(index))
        channel = await connection.channel(publisher_confirms=False)
        await channel.basic_qos(prefetch_count=self.settings.prefetch)

        async def deliver(message: DeliveredMessage) -> None:
            on_receipts = self.state.callbacks.on_receipts
            if on_receipts is None:
                on_receipt(index, message.body)
            elif len(message.body) >= HEADER.size:
                on_receipts(index, np.array(HEADER.unpack_from(message.body)[:1], dtype=np.int64), 0)
            else:
                on_receipts(index, np.empty(0, dtype=np.int64), 1)
            if self.stream:
                headers = message.header.properties.headers or {}
                offset = headers.get("x-stream-offset")
                if isinstance(offset, int):
                    offsets[index] = offset
            await channel.basic_ack(message.delivery_tag or 0, wait=False)

        arguments: dict[str, Any] = {}
        if self.stream:
            last = offsets[index]
            arguments["x-stream-offset"] = "first" if last is None else last + 1
        await channel.basic_consume(self.consumer_queue(index), deliver, arguments=arguments)
        self._tasks.append(asyncio.create_task(self._watch_consumer(index, connection, on_receipt, offsets)))

    # --- losing a connection --------------------------------------------------------------

    async def _watch_publisher(self, connection: aiormq.abc.AbstractConnection) -> None:
        while not self._closing:
            try:
                await connection.closing
            except BaseException as error:  # noqa: BLE001 - how it closed is the event's detail
                reason: BaseException = error
            else:
                reason = ConnectionError("connection closed")
            if self._closing:
                return
            self._connected = False
            self.state.outages.down(PUBLISHER, {"error": _describe(reason)})
            # Publishes awaiting their confirm: it will not come (they may be in the queue).
            for task in list(self._inflight):
                self._written_off.add(task)
                task.cancel()
            self.state.unacked_publishes += len(self._written_off)
            self._written_off.clear()
            while not self._closing:
                await asyncio.sleep(RECONNECT_INTERVAL_S)
                try:
                    connection = await self._connect()
                    channel = await connection.channel(publisher_confirms=True)
                    await self._declare(channel)
                except _CONNECTION_ERRORS as attempt:
                    if isinstance(attempt, asyncio.CancelledError) and self._closing:
                        return
                    self.state.outages.error(PUBLISHER, _describe(attempt))
                    continue
                self._publisher = channel
                self._connected = True
                self.state.outages.up(PUBLISHER)
                break

    async def _watch_consumer(self, index: int, connection: aiormq.abc.AbstractConnection, on_receipt: OnReceipt,
                              offsets: list[int | None]) -> None:
        name = f"msgstorm-consumer-{index}"
        try:
            await connection.closing
        except BaseException as error:  # noqa: BLE001 - how it closed is the event's detail
            reason: BaseException = error
        else:
            reason = ConnectionError("connection closed")
        if self._closing:
            return
        self.state.outages.down(name, {"error": _describe(reason)})
        while not self._closing:
            await asyncio.sleep(RECONNECT_INTERVAL_S)
            try:
                await self._subscribe(index, on_receipt, offsets)
            except _CONNECTION_ERRORS as attempt:
                if isinstance(attempt, asyncio.CancelledError) and self._closing:
                    return
                self.state.outages.error(name, _describe(attempt))
                continue
            self.state.outages.up(name)
            return

    # --- publishing -----------------------------------------------------------------------

    async def publish(self, msg_id: int, payload: bytes) -> None:
        if self.wire_publisher is not None:
            await self.wire_publisher.publish(msg_id, payload)
            return
        await self._window.acquire()
        self.state.handed_over += 1
        channel = self._publisher
        if not self._connected or channel is None or self._closing:
            self._window.release()
            self._dropped += 1
            self.state.lost_publishes += 1
            return
        task = asyncio.create_task(self._publish(channel, msg_id, payload))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _publish(self, channel: aiormq.abc.AbstractChannel, msg_id: int, payload: bytes) -> None:
        try:
            # Not waiting for the socket to drain (aiormq's Channel has ``wait``; its abstract
            # class does not say so).
            confirm = await cast(aiormq.Channel, channel).basic_publish(
                payload, exchange=self.exchange, properties=_PERSISTENT, wait=False)
        except _CONNECTION_ERRORS:
            task = asyncio.current_task()
            if not self._closing and task not in self._written_off and task in self._inflight:
                self.state.unacked_publishes += 1  # it may have reached the queue: its confirm will not come
            return
        except aiormq.exceptions.PublishError:
            self.state.lost_publishes += 1  # refused (a nack)
            return
        finally:
            self._window.release()
        if isinstance(confirm, spec.Basic.Ack):
            order = self._acked
            self._acked += 1
            callbacks = self.state.callbacks
            if callbacks.on_acks is not None:
                callbacks.on_acks(np.array([msg_id], dtype=np.int64), np.array([order], dtype=np.int64))
            else:
                callbacks.on_ack(msg_id, order)
        else:
            self.state.lost_publishes += 1

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Messages to publish next (``Sending.bursts``); the wire publisher lays them out now."""
        if self.wire_publisher is not None:
            self.wire_publisher.stage(msg_ids, keys, sizes)
            return
        self._staged += [(msg_id, message_payload(msg_id, key, size))
                         for msg_id, key, size in zip(msg_ids.tolist(), keys.tolist(), sizes.tolist())]

    async def publish_staged(self, count: int) -> int | None:
        if self.wire_publisher is not None:
            return await self.wire_publisher.publish_staged(count)
        taken, self._staged = self._staged[:count], self._staged[count:]
        for msg_id, data in taken:
            await self.publish(msg_id, data)  # each waits for the window on its own
        return None

    async def flush(self) -> None:
        if self.wire_publisher is not None:
            await self.wire_publisher.flush(FLUSH_TIMEOUT_S)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_TIMEOUT_S
        while self._inflight and loop.time() < deadline:
            await asyncio.sleep(0.001)

    # --- after the run --------------------------------------------------------------------

    async def read_back(self) -> StoredCopy | None:
        """The audit queue (or the stream) read whole, on a connection of its own, read again
        from the start on a new one when it drops (``live/read_back.py``); None when no node
        takes one (a node dead for good) or every attempt's connection is lost while it reads,
        said as a ``client_error`` of client ``read_back``."""
        name = self.audit_queue
        if name is None or self.url is None:
            return None
        try:
            return await read_with_retries(lambda: self._read_whole(name), _CONNECTION_ERRORS)
        except _CONNECTION_ERRORS as error:
            task = asyncio.current_task()
            if isinstance(error, asyncio.CancelledError) and task is not None and task.cancelling():
                raise  # this run itself was cancelled (a signal), not the connection lost
            self.on_event(EventKind.CLIENT_ERROR, {"client": "read_back", "error": _describe(error)})
            return None

    async def _read_whole(self, name: str) -> StoredCopy:
        connection = await self._read_back_connection()
        try:
            return await read_queue(connection, name, self.stream)
        finally:  # what it took unacked goes back to the queue, for the next attempt too
            await _close_quietly(connection)

    async def _read_back_connection(self) -> aiormq.abc.AbstractConnection:
        """A connection to the first node that takes one (a cluster's node may still be
        starting its app again after a partition healed), within ``read_back_timeout``."""
        assert self.url is not None
        urls = self.node_urls or [self.url]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.read_back_timeout / 1e9
        while True:
            for url in urls:
                try:
                    return await self._connect(self.spec.read_back_timeout, url=url)
                except _CONNECTION_ERRORS:
                    if loop.time() > deadline or len(urls) == 1:
                        raise
            await asyncio.sleep(RECONNECT_INTERVAL_S)

    async def close(self) -> None:
        self._closing = True
        for task in [*self._tasks, *self._inflight]:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):  # a client bug, kept in the history
                self.on_event(EventKind.CLIENT_ERROR, {"client": "task", "error": _describe(result)})
        if self.wire_publisher is not None:
            await self.wire_publisher.close(self.on_event)
        self.state.outages.close()
        if self._dropped:
            self.on_event(EventKind.CLIENT_ERROR, {"client": PUBLISHER, "dropped": self._dropped,
                                                   "error": "publishes dropped while disconnected"})
            self._dropped = 0
        for connection in self._connections:
            await _close_quietly(connection)
        self._connections.clear()
