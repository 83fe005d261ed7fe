"""MQTT 3.1.1 on mosquitto (the OS package), at QoS 0, 1 or 2, on msgstorm's own client.

Place in the pipeline: a live driver (``drivers/base.py``). Without ``live.url`` it starts
``mosquitto`` on a free loopback port from a configuration file it writes under
``RUN_DIR/servers/`` (``mosquitto.conf``): anonymous clients on 127.0.0.1 only, persistence
on in ``RUN_DIR/servers/mosquitto-data`` (a persistent session's plain subscriptions and
queued messages survive a restart: mosquitto saves them when it is stopped with SIGTERM, not a
shared subscription, which a consumer makes again when it reconnects; a SIGKILL loses what it
had not saved), no limit on the messages in flight or queued per client
(``max_inflight_messages 0``, ``max_queued_messages 0``: mosquitto's defaults, 20 and 1000,
would drop QoS 1 and 2 messages of a consumer that falls behind, and the run would measure
the setting), and its log at ``RUN_DIR/servers/mosquitto.log``. With ``live.url`` (an
``mqtt://host:port`` URL) the clients first connect with a clean session, so a run never
takes over a session an earlier one left.

``[live.mqtt]``: one publisher connection publishes to ``topic`` at ``qos``; each of
``live.consumers`` consumers subscribes to it at the same QoS, each on its own connection,
and gets every message, or, with ``share_group``, all of them subscribe to
``$share/<group>/<topic>`` and mosquitto gives each message to one of them. QoS 1 publishes
are acked by PUBACK, QoS 2 by PUBCOMP (the end of PUBREC, PUBREL, PUBCOMP: mosquitto hands a
QoS 2 message to subscribers at the PUBREL); at most ``max_inflight`` are awaiting theirs
(a packet id each) and the publisher waits when the window is full. QoS 0 has no ack
(``acks`` False): a message is committed by its first receipt. A consumer acks each message
as the QoS says, and at QoS 2 hands a message over once per packet id until its PUBREL (a
PUBLISH sent again with the DUP flag after a reconnection is not a second receipt).

Connections lost (a broker restart, a crash): each client reports ``disconnected`` and
reconnects every ``RECONNECT_INTERVAL_S`` until the run ends. With ``clean_session = false``
(persistent sessions) the broker keeps each consumer's subscription (a shared one not across
its restart: every consumer subscribes again on each reconnection) and the QoS 1 and 2
messages published while it is away, and the publisher sends every unacknowledged publish
again (DUP set; a QoS 2 publish already PUBRECed gets its PUBREL again), and keeps taking
QoS 1 and 2 publishes while it is down, up to ``max_inflight`` (then waits: the wait shows
as send lag). With ``clean_session = true`` the publishes unacknowledged at the loss are
``unacked_publishes`` (they may have reached the broker) and QoS 1 and 2 publishes made
while down are dropped; QoS 0 publishes made while down are dropped either way (lost, and
counted in the ``client_error`` event at the end).

Accounting: mosquitto keeps no log of the messages it took or delivered, and nothing can
be read back after the run (``read_back`` returns None): every message is accounted from the
receipts (``analysis/audit.py``): acked (or, at QoS 0, sent) but never received is lost, a
second receipt of one message (on one consumer; over the group when shared) is a duplicate,
a receipt after a later-sent message of the same key is reordered.

History mapping (what each column means on this target): ``t_sent`` the PUBLISH was handed
to the socket; at QoS 1 and 2 ``t_sequenced`` = ``t_committed`` the PUBACK / PUBCOMP arrived,
``seq_no`` the order of the acks; at QoS 0 both are the first consumer's receipt and
``seq_no`` the order of first receipts; ``t_received``, ``t_dequeued`` and ``block`` null.
Consumer receipts are ``deliveries`` rows (``consumer-<i>``).

Bursts: the target stages the messages it sends next as columns; their payloads are laid out
in one compiled pass (``live/payload.py``) and every message due when the generator wakes is
framed as PUBLISH packets and written at once (``mqtt_wire.py`` says why the client is
msgstorm's own). Publisher and consumers share one event loop.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import struct
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import Callbacks, DriverState, OnAck, OnEvent, OnReceipt
from msgstorm.live.drivers.capabilities import Capabilities, Sending, Servers
from msgstorm.live.drivers.mqtt_wire import (
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    MqttError,
    MqttStream,
    ack_packet,
    remaining_length,
    url_address,
)
from msgstorm.live.payload import HEADER, Staged, StoredCopy, pack_payloads
from msgstorm.live.payload import warm_up as warm_up_payloads
from msgstorm.live.servers import ManagedServer, check_user_url, free_port
from msgstorm.scenario.live import LiveSpec, OwnNames
from msgstorm.scenario.registry import LIVE_DRIVERS

__all__ = ["MqttDriver", "mosquitto_config"]

PUBLISHER = "msgstorm-publisher"
SERVER = "mosquitto"
RECONNECT_INTERVAL_S = 0.1
# ``flush`` waits at most this for the last acks; the target's drain waits on after it.
FLUSH_TIMEOUT_S = 5.0
# The publisher waits for the kernel to take its writes once this much is buffered.
_WRITE_HIGH_BYTES = 4 << 20
_U16 = struct.Struct(">H")
# What a lost connection raises.
_CONNECTION_ERRORS = (OSError, MqttError, EOFError, asyncio.IncompleteReadError, TimeoutError)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def mosquitto_config(port: int, data: Path, log: Path) -> str:
    """The configuration of a mosquitto msgstorm starts (the module docstring says why each
    line). ``user``: the user msgstorm runs as; mosquitto started as root otherwise drops to
    the user ``mosquitto``, who cannot write its log or its persistence under the run directory."""
    return "\n".join([
        f"user {pwd.getpwuid(os.getuid()).pw_name}", f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence true",
        f"persistence_location {data}/", f"log_dest file {log}", "log_type error", "log_type warning",
        "log_type notice", "log_type information", "connection_messages true", "max_inflight_messages 0",
        "max_queued_messages 0", "set_tcp_nodelay true", ""])


@LIVE_DRIVERS.register("mqtt")
class MqttDriver:
    capabilities = Capabilities(sending=Sending(bursts=True, bulk_acks=True), servers=Servers(), accounting=True)
    # ``--target SCHEME://host:port`` picks this driver (a broker, mosquitto or another): the scheme
    # -> the scheme its client connects with.
    url_schemes: ClassVar[dict[str, str]] = {"mqtt": "mqtt"}

    @staticmethod
    def generator_names(live: LiveSpec, index: int) -> OwnNames:
        """Generator ``index`` of a distributed run (``live/distributed.py``): the topic
        ``live.mqtt.topic`` + ``/gK`` (MQTT's level separator), and every client's id + ``-gK``
        (``live.mqtt.client_id_suffix``): a second connection with a client's id takes its
        session over, so the generators' clients need ids of their own."""
        mqtt = live.mqtt
        suffix = f"{mqtt.client_id_suffix}-g{index}"
        return {"mqtt": {"topic": f"{mqtt.topic}/g{index}", "client_id_suffix": suffix}}

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        self.spec = spec
        self.settings = spec.mqtt  # [live.mqtt]
        self.qos = spec.mqtt.qos
        self.acks = self.qos > 0
        self.fanout = spec.mqtt.share_group is None
        self.run_dir = run_dir
        self.on_event = on_event
        self.url = spec.url
        self.servers: list[ManagedServer] = []
        self.burst = spec.mqtt.burst
        self.state = DriverState(on_event)  # counts, outages, callbacks
        self._topic = spec.mqtt.topic.encode()
        self._heads: dict[int, bytes] = {}  # payload length -> PUBLISH fixed header and topic
        self._staged: deque[Staged] = deque()
        # QoS 1 and 2: packet id -> [msg_id, payload, PUBREC seen, written once], in the order taken.
        self._inflight: dict[int, list[Any]] = {}
        self._free_ids: deque[int] = deque(range(1, spec.mqtt.max_inflight + 1))
        self._room = asyncio.Event()
        self._acked = 0  # acks so far: the next ack's order
        self._dropped = 0  # publishes dropped while disconnected
        self._connected = False
        self._closing = False
        self._publisher: MqttStream | None = None
        self._consumers: list[MqttStream] = []
        self._tasks: list[asyncio.Task[None]] = []

    # --- the server -----------------------------------------------------------------------

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        return [] if spec.url is not None else [SERVER]

    def server_url(self, server: ManagedServer) -> str:
        return f"mqtt://127.0.0.1:{server.port}"

    def start_servers(self) -> list[dict[str, Any]]:
        if self.url is not None:
            check_user_url(self.url, url_address, "mqtt", "mqtt://127.0.0.1:1883", self.spec.allow_remote)
            return []
        # Debian installs it in /usr/sbin, often not on a user's PATH.
        binary = ManagedServer.program(SERVER, "/usr/sbin/mosquitto", install="apt-get install mosquitto")
        port = free_port()
        directory = self.run_dir / "servers"
        data = directory / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        config = directory / "mosquitto.conf"
        config.write_text(mosquitto_config(port, data, directory / "mosquitto.log"), encoding="utf-8")
        server = ManagedServer(SERVER, [binary, "-c", str(config)], port, directory, self.spec.start_timeout / 1e9,
                               cpus=1)  # one thread serves every client
        self.servers.append(server)
        server.start()
        self.url = self.server_url(server)
        return [{"name": server.name, "pid": server.pid, "url": self.url, "cpus": server.cpus}]

    def stop_servers(self) -> None:
        for server in self.servers:
            server.stop()

    # --- connecting -----------------------------------------------------------------------

    def _stream(self, client_id: str) -> MqttStream:
        assert self.url is not None
        return MqttStream(self.url, client_id + self.settings.client_id_suffix, self.settings.clean_session,
                          self.spec.start_timeout / 1e9)

    async def _open(self, stream: MqttStream) -> None:
        """The first connection of a client: on a server msgstorm did not start, a clean
        session first, so no session an earlier run left is taken over."""
        if not self.settings.clean_session and not self.servers:
            await stream.open(clean_session=True)
            await stream.disconnect()
        await stream.open()

    @property
    def topic_filter(self) -> str:
        group = self.settings.share_group
        return self.settings.topic if group is None else f"$share/{group}/{self.settings.topic}"

    async def connect(self, callbacks: Callbacks) -> None:
        self.state.callbacks = callbacks
        if self.burst > 1:
            await asyncio.get_running_loop().run_in_executor(None, warm_up_payloads)
        for index in range(self.spec.consumers):
            stream = self._stream(f"msgstorm-consumer-{index}")
            self._consumers.append(stream)
            await self._open(stream)
            await stream.subscribe(self.topic_filter, self.qos)
        self._tasks = [asyncio.create_task(self._consume(index, stream, callbacks.on_receipt))
                       for index, stream in enumerate(self._consumers)]
        self._publisher = self._stream(PUBLISHER)
        await self._open(self._publisher)
        self._connected = True
        self._tasks.append(asyncio.create_task(self._read_acks(callbacks.on_ack)))

    # --- publishing -----------------------------------------------------------------------

    def _head(self, length: int) -> bytes:
        """The PUBLISH fixed header and topic of a payload of ``length`` bytes."""
        head = self._heads.get(length)
        if head is None:
            rest = 2 + len(self._topic) + (2 if self.qos else 0) + length
            head = self._heads[length] = (bytes((PUBLISH << 4 | self.qos << 1,)) + remaining_length(rest)
                                          + _U16.pack(len(self._topic)) + self._topic)
        return head

    def _holds(self) -> bool:
        """Whether a QoS 1 or 2 publish is kept now (sent, or held until a reconnection)."""
        return self._connected or not self.settings.clean_session

    async def _wait_for_room(self) -> None:
        while not self._free_ids and self._holds() and not self._closing:
            self._room.clear()
            await self._room.wait()

    async def publish(self, msg_id: int, payload: bytes) -> None:
        if self.qos and not self._free_ids and self._holds():
            await self._wait_for_room()
            if not self._free_ids and self._holds():
                return  # closing: nothing taken
        await self._send([msg_id], memoryview(payload), [0, len(payload)], 0, 1)

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Messages to publish next (``Sending.bursts``): their payloads are laid out now."""
        data, ends = pack_payloads(msg_ids, keys, sizes)
        self._staged.append(Staged(msg_ids.tolist(), memoryview(data.data), [0, *ends.tolist()]))

    async def publish_staged(self, count: int) -> int | None:
        """Publish the next ``count`` staged messages in one write. At QoS 1 and 2 with the
        window full it waits for room and returns 0 (the target stamps them anew); with room
        for fewer it publishes those and returns how many."""
        if self.qos and not self._free_ids and self._holds():
            await self._wait_for_room()
            return 0
        requested = count
        done = 0
        while count > 0:
            staged = self._staged[0]
            first = staged.taken
            last = min(len(staged.msg_ids), first + count)
            if self.qos and self._holds():
                last = min(last, first + len(self._free_ids))
            if last == first:
                break
            await self._send(staged.msg_ids, staged.data, staged.ends, first, last)
            staged.taken = last
            if last == len(staged.msg_ids):
                self._staged.popleft()
            done += last - first
            count -= last - first
        return None if done == requested else done

    async def _send(self, msg_ids: list[int], data: memoryview, ends: list[int], first: int, last: int) -> None:
        """Messages ``first`` to ``last`` (exclusive) as PUBLISH packets in one write; each
        QoS 1 and 2 message takes a packet id and is kept until its ack."""
        self.state.handed_over += last - first
        stream = self._publisher
        if not self._holds() or (self.qos == 0 and not self._connected):
            self._dropped += last - first  # never reach the broker: they show as lost
            self.state.lost_publishes += last - first
            return
        parts: list[bytes | memoryview] = []
        head = self._head
        if self.qos:
            free, inflight, pack, written = self._free_ids, self._inflight, _U16.pack, self._connected
            for k in range(first, last):
                payload = data[ends[k]:ends[k + 1]]
                packet_id = free.popleft()
                inflight[packet_id] = [msg_ids[k], payload, False, written]
                parts += (head(len(payload)), pack(packet_id), payload)
        else:
            for k in range(first, last):
                payload = data[ends[k]:ends[k + 1]]
                parts += (head(len(payload)), payload)
        if not self._connected or stream is None:
            return  # held in the window: sent on the reconnection
        stream.write(b"".join(parts))
        if stream.buffered() > _WRITE_HIGH_BYTES:
            try:
                await stream.drain()
            except _CONNECTION_ERRORS:
                pass  # the ack reader sees the loss and reconnects

    async def _read_acks(self, on_ack: OnAck) -> None:
        """The publisher's reader: PUBACK / PUBCOMP ack a message (PUBREC is answered with
        PUBREL); a lost connection is reconnected here."""
        stream = self._publisher
        assert stream is not None
        final = PUBACK if self.qos == 1 else PUBCOMP
        while not self._closing:
            try:
                found = await stream.read()
            except _CONNECTION_ERRORS as error:
                if self._closing:
                    return
                await self._publisher_lost(stream, error)
                continue
            acked: list[int] = []
            replies = bytearray()
            for first_byte, body in found:
                kind = first_byte >> 4
                if len(body) < 2:
                    continue
                packet_id = body[0] << 8 | body[1]
                if kind == final:
                    entry = self._inflight.pop(packet_id, None)
                    if entry is not None:
                        acked.append(entry[0])
                        self._free_ids.append(packet_id)
                elif kind == PUBREC:
                    entry = self._inflight.get(packet_id)
                    if entry is not None:
                        entry[2] = True
                    replies += ack_packet(PUBREL, packet_id)
            if replies:
                stream.write(replies)
            if acked:
                self._ack(acked, on_ack)
                self._room.set()

    def _ack(self, acked: list[int], on_ack: OnAck) -> None:
        order = self._acked
        self._acked += len(acked)
        if self.state.callbacks.on_acks is not None:
            self.state.callbacks.on_acks(np.array(acked, dtype=np.int64), np.arange(order, order + len(acked), dtype=np.int64))
        else:
            for k, msg_id in enumerate(acked):
                on_ack(msg_id, order + k)

    async def _publisher_lost(self, stream: MqttStream, error: BaseException) -> None:
        """Reconnect the publisher; with a persistent session send what is unacked again."""
        self._connected = False
        stream.close()
        self.state.outages.down(PUBLISHER, {"error": _describe(error)})
        if self.settings.clean_session:  # the session goes with the connection
            self.state.unacked_publishes += len(self._inflight)
            self._free_ids.extend(self._inflight)
            self._inflight.clear()
        self._room.set()
        while not self._closing:
            await asyncio.sleep(RECONNECT_INTERVAL_S)
            try:
                await stream.open()
            except _CONNECTION_ERRORS as attempt:
                self.state.outages.error(PUBLISHER, _describe(attempt))
                continue
            again: list[bytes | memoryview] = []
            for packet_id, entry in self._inflight.items():
                _, payload, released, written = entry
                if released:
                    again.append(ack_packet(PUBREL, packet_id))
                else:
                    head = bytearray(self._head(len(payload)))
                    if written:
                        head[0] |= 0x08  # DUP: sent before (held while down: a first attempt)
                    again += (bytes(head), _U16.pack(packet_id), payload)
                    entry[3] = True
            if again:
                stream.write(b"".join(again))
            self._connected = True
            self.state.outages.up(PUBLISHER, {"sent_again": len(self._inflight)})
            self._room.set()
            return

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_TIMEOUT_S
        stream = self._publisher
        while self._connected and loop.time() < deadline:
            if stream is not None and stream.buffered() == 0 and not self._inflight:
                return
            await asyncio.sleep(0.001)

    # --- consuming ------------------------------------------------------------------------

    async def _consume(self, index: int, stream: MqttStream, on_receipt: OnReceipt) -> None:
        name = f"msgstorm-consumer-{index}"
        read = HEADER.unpack_from
        # QoS 2: packet ids handed over and awaiting their PUBREL (the session's state: a
        # PUBLISH of one of them again is the same message, not a second receipt).
        released_wait: set[int] = set()
        while not self._closing:
            try:
                found = await stream.read()
            except _CONNECTION_ERRORS as error:
                if self._closing:
                    return
                await self._consumer_lost(stream, name, error, released_wait)
                continue
            replies = bytearray()
            payloads: list[bytes] = []
            for first_byte, body in found:
                kind = first_byte >> 4
                if kind == PUBLISH:
                    qos = first_byte >> 1 & 3
                    at = 2 + (body[0] << 8 | body[1])
                    if qos:
                        packet_id = body[at] << 8 | body[at + 1]
                        at += 2
                        if qos == 2:
                            replies += ack_packet(PUBREC, packet_id)
                            if packet_id in released_wait:
                                continue  # sent again before our PUBREC reached the broker
                            released_wait.add(packet_id)
                        else:
                            replies += ack_packet(PUBACK, packet_id)
                    payloads.append(body[at:])
                elif kind == PUBREL and len(body) >= 2:
                    packet_id = body[0] << 8 | body[1]
                    released_wait.discard(packet_id)
                    replies += ack_packet(PUBCOMP, packet_id)
            if replies:
                stream.write(replies)
            on_receipts = self.state.callbacks.on_receipts
            if on_receipts is None:
                for payload in payloads:
                    on_receipt(index, payload)
            elif payloads:
                ids = [read(p)[0] for p in payloads if len(p) >= HEADER.size]
                on_receipts(index, np.array(ids, dtype=np.int64), len(payloads) - len(ids))

    async def _consumer_lost(self, stream: MqttStream, name: str, error: BaseException,
                             released_wait: set[int]) -> None:
        stream.close()
        self.state.outages.down(name, {"error": _describe(error)})
        while not self._closing:
            await asyncio.sleep(RECONNECT_INTERVAL_S)
            try:
                if not await stream.open():
                    released_wait.clear()  # a new session: its packet ids start afresh
                await stream.subscribe(self.topic_filter, self.qos)
            except _CONNECTION_ERRORS as attempt:
                self.state.outages.error(name, _describe(attempt))
                continue
            self.state.outages.up(name)
            return

    # --- after the run --------------------------------------------------------------------

    async def read_back(self) -> StoredCopy | None:
        return None  # mosquitto keeps no log of its messages to read back

    async def close(self) -> None:
        self._closing = True
        self._room.set()
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):  # a client bug, kept in the history
                self.on_event(EventKind.CLIENT_ERROR, {"client": "task", "error": _describe(result)})
        self.state.outages.close()
        if self._dropped:
            self.on_event(EventKind.CLIENT_ERROR, {"client": PUBLISHER, "dropped": self._dropped,
                                                   "error": "publishes dropped while disconnected"})
            self._dropped = 0
        for stream in [*self._consumers, *([self._publisher] if self._publisher else [])]:
            await stream.disconnect()
