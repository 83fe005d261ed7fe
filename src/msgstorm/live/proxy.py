"""The fault proxy: a TCP proxy between msgstorm's clients and a broker, with toxics.

Place in the pipeline: under the live target. The nemesis (``live/nemesis.py``) starts it (a
process of its own, ``live/proxy_process.py``) when the scenario has ``toxic`` faults, routes the driver's
clients through it (each role, publisher or consumers, through a listener of its own) and
switches toxics on and off as the fault schedule comes due, while traffic flows. The proxy
stamps each switch with the host's monotonic clock (the clock of the run) and says when it
happened, so every applied toxic window is an event in the history at the time it took
effect.

Toxics act on one direction of a link (``upstream``: client to server; ``downstream``:
server to client) or both, each with a ``probability``: the share of reads (chunks) a data
toxic acts on, or of connections a connection toxic acts on. The kinds are the classes
registered in ``TOXICS`` (``live/toxics.py``); the proxy calls them on its pipes (``pipe``)
and connections (``meet``). The window a toxic is active is where the link changed: each
piece waiting in a pipe keeps the delay each toxic added, so when a toxic ends what it held
back goes at once (unless another toxic still delays it), and what is read next does not
queue behind it; its timers and held closes end with it. A toxic draws from a random stream
of its own on each link, seeded from the run's seed and its fault's id (``toxic_rng``).

Written by hand: neither Toxiproxy nor the kernel's netem is available on the machines
msgstorm runs on, and a proxy inside the run must share its clock. asyncio Protocols carry
the data (no task or coroutine per chunk): with no toxic active a chunk is written to the
other side as it is read, so the proxy costs one copy through the kernel each way
(``benchmarks/fault_proxy.py`` measures it).

Run as ``python -m msgstorm.live.proxy name=HOST:PORT[@LISTEN_PORT] ...``: it listens on a
loopback port for each name (a free one unless given), says ``{"ready": {name: port}}`` on stdout, then reads commands, one
JSON object a line, on stdin (``{"op": "set", "id", "link", "toxic", "seed"}``, ``{"op": "clear",
"id"}``, ``{"op": "quit"}``; with ``"at_ns"`` a command is applied at that monotonic time,
so the nemesis sends it ahead and the switch lands on time) and answers each on stdout, in
the order of the commands, with the monotonic time it took effect (``t_ns``) and the time it
read the command (``received_ns``). Commands are applied one after another: the nemesis
writes each ahead without waiting for the answers before it (two toxics due at once both
wait here, ready), so the switch is late only by what the machine takes to run this process
at its time (``docs/live.md`` gives the bound measured). It dies with its parent (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import ipaddress
import json
import random
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from msgstorm.live.toxics import (
    DIRECTIONS,
    Toxic,
    ToxicState,
    ToxicStats,
    from_wire,
    toxic_rng,
)
from msgstorm.processes import die_with_parent

__all__ = ["DIRECTIONS", "FaultProxy", "Link", "Toxic", "main", "require_loopback", "sleep_until"]

# A direction stops reading its source while this much waits in it (latency, bandwidth),
# and reads again below the low mark.
_QUEUE_HIGH_BYTES = 16 * 1024 * 1024
_QUEUE_LOW_BYTES = 4 * 1024 * 1024
# A chunk due within this much of now is written now (asyncio's timers are that coarse).
_DUE_SLACK_NS = 100_000
# A command sent ahead waits on a timer until this long before its time, then yields.
_SPIN_NS = 2_000_000


def _set_linger_zero(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@dataclass(slots=True)
class _Queued:
    """A piece of data waiting in a pipe: read at ``read_ns``, held ``delays_ns`` by the
    toxics that delayed it (by toxic id), released at ``release_ns`` (after every piece read
    before it: one TCP stream)."""

    release_ns: int
    read_ns: int
    delays_ns: dict[int, int]
    chunk: bytes


class _Pipe:
    """One direction of one proxied connection: what is read from ``source`` goes to
    ``sink``, through the toxics active on that direction of the link. Each piece keeps the
    delay each toxic added, so a toxic that ends takes its delays with it (``forget``)."""

    def __init__(self, connection: _Connection, direction: str) -> None:
        self.connection = connection
        self.direction = direction
        self.source: _End | None = None
        self.sink: _End | None = None
        self.queue: collections.deque[_Queued] = collections.deque()
        self.queued_bytes = 0
        self.last_release_ns = 0
        self.states: dict[int, ToxicState] = {}  # by toxic id, while it is active
        self.timer: asyncio.TimerHandle | None = None
        self.holders: set[int] = set()  # ``timeout`` toxics holding everything until they end
        self.sink_paused = False
        self.source_closed = False

    def state(self, toxic_id: int) -> ToxicState:
        state = self.states.get(toxic_id)
        if state is None:
            link = self.connection.link
            state = self.states[toxic_id] = ToxicState(link.rngs[toxic_id], link.stats[toxic_id])
        return state

    def feed(self, data: bytes) -> None:
        toxics = self.connection.link.toxics_on(self.direction)
        sink = self.sink
        if not toxics and not self.queue and not self.holders and sink is not None and sink.transport is not None:
            sink.transport.write(data)  # the fast path: no toxic, nothing waiting
            return
        now = time.monotonic_ns()
        # Each data toxic turns each piece into pieces, each with the delay it adds.
        pieces: list[tuple[dict[int, int], bytes]] = [({}, data)]
        for toxic_id, toxic in toxics:
            if toxic.on_connections:
                continue
            state = self.state(toxic_id)
            acted: list[tuple[dict[int, int], bytes]] = []
            for delays, chunk in pieces:
                if toxic.probability < 1.0 and not toxic.per_message and state.rng.random() >= toxic.probability:
                    acted.append((delays, chunk))
                    continue
                state.stats.chunks += 1
                state.stats.bytes += len(chunk)
                for delay_ns, piece in toxic.pipe(now + sum(delays.values()), chunk, state):
                    acted.append(({**delays, toxic_id: delay_ns} if delay_ns else delays, piece))
            pieces = acted
        for delays, piece in pieces:
            t = max(now + sum(delays.values()), self.last_release_ns)  # in order: one TCP stream
            self.last_release_ns = t
            self.queue.append(_Queued(t, now, dict(delays), piece))
            self.queued_bytes += len(piece)
        self._flow()
        self.release()

    def forget(self, toxic_id: int) -> None:
        """A toxic ended: what it held back is re-timed as the link without it carries it
        (at once, unless another toxic still delays it), and what is read next no longer
        queues behind its delays."""
        self.states.pop(toxic_id, None)
        held = toxic_id in self.holders
        self.holders.discard(toxic_id)
        if not held and not any(toxic_id in queued.delays_ns for queued in self.queue):
            return
        release_ns = 0
        for queued in self.queue:
            queued.delays_ns.pop(toxic_id, None)
            release_ns = max(queued.read_ns + sum(queued.delays_ns.values()), release_ns)
            queued.release_ns = release_ns
        self.last_release_ns = release_ns
        self.release()

    def release(self) -> None:
        """Write every piece that is due; wake again for the next one."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        sink = self.sink
        if self.holders or sink is None or sink.transport is None:
            return
        now = time.monotonic_ns()
        while self.queue and self.queue[0].release_ns <= now + _DUE_SLACK_NS:
            chunk = self.queue.popleft().chunk
            self.queued_bytes -= len(chunk)
            if not sink.transport.is_closing():
                sink.transport.write(chunk)
        if self.queue:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_at(self.queue[0].release_ns / 1e9, self.release)
        self._flow()
        if not self.queue and self.source_closed:
            self.connection.source_done(self)

    def _flow(self) -> None:
        source = self.source
        if source is None or source.transport is None:
            return
        if self.sink_paused or self.queued_bytes > _QUEUE_HIGH_BYTES:
            source.pause()
        elif self.queued_bytes < _QUEUE_LOW_BYTES:
            source.resume()


class _End(asyncio.Protocol):
    """One socket of a proxied connection (the client's, or the upstream one)."""

    def __init__(self, connection: _Connection, inbound: _Pipe, outbound: _Pipe) -> None:
        self.connection = connection
        self.inbound = inbound  # what this socket reads goes here
        self.outbound = outbound  # what this socket writes comes from here
        self.transport: asyncio.Transport | None = None
        self._paused = False
        self._want_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._want_paused:
            self.pause()

    def data_received(self, data: bytes) -> None:
        self.inbound.feed(data)

    def eof_received(self) -> bool:
        return False  # close: the other side is closed once what was read has gone out

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.inbound.source_closed = True
        if not self.inbound.queue:
            self.connection.source_done(self.inbound)
        self.connection.end_lost(self)

    def pause_writing(self) -> None:
        self.outbound.sink_paused = True
        self.outbound._flow()

    def resume_writing(self) -> None:
        self.outbound.sink_paused = False
        self.outbound._flow()

    def pause(self) -> None:
        self._want_paused = True
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        self._want_paused = False
        if self.transport is not None and self._paused and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()


class _Connection:
    """A client's connection through the proxy: its socket, the upstream one, two pipes.
    What a connection toxic does to it goes through ``later``, ``hold`` and ``hold_close``
    (``toxics.ToxicTarget``) and ends with the toxic (``toxic_ended``)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.upstream = _Pipe(self, "upstream")
        self.downstream = _Pipe(self, "downstream")
        self.client = _End(self, self.upstream, self.downstream)
        self.server = _End(self, self.downstream, self.upstream)
        self.upstream.source, self.upstream.sink = self.client, self.server
        self.downstream.source, self.downstream.sink = self.server, self.client
        self.closed = False
        # Timers by the toxic that set them (cancelled when it ends: a toxic acts only while
        # it is active).
        self.timers: dict[int, list[asyncio.TimerHandle]] = {}
        self.slow_closing: dict[int, int] = {}  # slow_close toxic id -> the close delay it holds here
        self.close_held_by: set[int] = set()  # the toxics holding this connection's close now

    def later(self, toxic_id: int, delay_ns: int, action: Callable[[], None]) -> None:
        """``action`` in ``delay_ns``, unless the toxic ``toxic_id`` ends (or the connection) first."""
        timer = asyncio.get_running_loop().call_later(delay_ns / 1e9, action)
        self.timers.setdefault(toxic_id, []).append(timer)

    def hold(self, toxic_id: int, directions: tuple[str, ...]) -> None:
        for pipe in (self.upstream, self.downstream):
            if pipe.direction in directions:
                pipe.holders.add(toxic_id)

    def hold_close(self, toxic_id: int, delay_ns: int) -> None:
        self.slow_closing[toxic_id] = delay_ns

    def toxic_ended(self, toxic_id: int) -> None:
        """A toxic ended: what it had scheduled on this connection will not happen, and what
        it held back goes now (data, a close)."""
        for timer in self.timers.pop(toxic_id, []):
            timer.cancel()
        self.slow_closing.pop(toxic_id, None)
        for pipe in (self.upstream, self.downstream):
            pipe.forget(toxic_id)
        if toxic_id in self.close_held_by:
            self.close_held_by.discard(toxic_id)
            self.close()

    def source_done(self, pipe: _Pipe) -> None:
        """``pipe``'s source closed and all it read has gone out: close its sink too
        (after a slow close's delay, while that toxic lasts)."""
        held = max(((delay_ns, i) for i, _ in self.link.toxics_on(pipe.direction)
                    if (delay_ns := self.slow_closing.get(i))), default=None)
        sink = pipe.sink
        if sink is None or sink.transport is None:
            return
        if held is not None:
            delay_ns, toxic_id = held
            self.close_held_by.add(toxic_id)
            self.later(toxic_id, delay_ns, self.close)
        else:
            sink.transport.close()

    def end_lost(self, end: _End) -> None:
        if self.client.transport is None and self.server.transport is None:
            self.closed = True
            for timers in self.timers.values():
                for timer in timers:
                    timer.cancel()
            self.timers = {}
            self.link.connections.discard(self)

    def close(self) -> None:
        for end in (self.client, self.server):
            if end.transport is not None:
                end.transport.close()

    def reset(self) -> None:
        for end in (self.client, self.server):
            if end.transport is not None:
                _set_linger_zero(end.transport)
                end.transport.abort()


@dataclass
class Link:
    """One listener: where its clients' connections go, and the toxics active on it (each
    with its own random stream and what it did)."""

    name: str
    upstream_host: str
    upstream_port: int
    port: int = 0
    toxics: dict[int, Toxic] = field(default_factory=dict)
    stats: dict[int, ToxicStats] = field(default_factory=dict)
    rngs: dict[int, random.Random] = field(default_factory=dict)
    connections: set[_Connection] = field(default_factory=set)
    server: asyncio.base_events.Server | None = None
    _by_direction: dict[str, list[tuple[int, Toxic]]] = field(default_factory=dict)

    def toxics_on(self, direction: str) -> list[tuple[int, Toxic]]:
        return self._by_direction.get(direction, [])

    def _refresh(self) -> None:
        self._by_direction = {d: [(i, t) for i, t in sorted(self.toxics.items()) if t.acts_on(d)] for d in DIRECTIONS}


class FaultProxy:
    """Every link's listener, in the running event loop: ``listen`` each, then ``set`` and
    ``clear`` toxics while traffic flows, ``close`` at the end."""

    def __init__(self) -> None:
        self.links: dict[str, Link] = {}

    async def listen(self, name: str, upstream_host: str, upstream_port: int, port: int = 0) -> int:
        """A listener on loopback ``port`` (0: a free one) whose connections go to the upstream
        address, which must be on this machine too (a ValueError otherwise)."""
        require_loopback(upstream_host)
        link = Link(name, upstream_host, upstream_port)
        loop = asyncio.get_running_loop()

        def accepted() -> _End:
            connection = _Connection(link)
            link.connections.add(connection)
            connection.client.pause()  # until the upstream socket is open
            loop.create_task(self._open_upstream(connection))
            return connection.client

        try:
            link.server = await loop.create_server(accepted, "127.0.0.1", port)
        except OSError as error:  # a port planned ahead (a cluster's route) that another process took
            why = ("in use (another process listens on it)" if error.errno == errno.EADDRINUSE
                   else str(error.strerror or error))
            raise OSError(error.errno, f"cannot listen on 127.0.0.1:{port} for {name}: {why}") from error
        link.port = int(link.server.sockets[0].getsockname()[1])
        self.links[name] = link
        return link.port

    async def _open_upstream(self, connection: _Connection) -> None:
        link = connection.link
        try:
            await asyncio.get_running_loop().create_connection(lambda: connection.server, link.upstream_host,
                                                               link.upstream_port)
        except OSError:
            connection.reset()  # the client sees what it would have seen: a refused connection
            return
        connection.client.resume()
        # What the client sent before the upstream socket opened goes now: the pause in
        # ``accepted`` comes before the transport starts reading, which some Python versions
        # (3.11.2) undo, so bytes may already wait in the pipe.
        connection.upstream.release()
        for toxic_id, toxic in sorted(link.toxics.items()):
            self._connection_toxic(link, connection, toxic_id, toxic)

    @staticmethod
    def _connection_toxic(link: Link, connection: _Connection, toxic_id: int, toxic: Toxic) -> None:
        if not toxic.on_connections:
            return
        if toxic.probability < 1.0 and link.rngs[toxic_id].random() >= toxic.probability:
            return
        link.stats[toxic_id].connections += 1
        toxic.meet(connection, toxic_id)

    def set(self, toxic_id: int, link_name: str, toxic: Toxic, seed: int) -> dict[str, Any]:
        """Start ``toxic`` on a link, its draws seeded from the run's ``seed`` and its id
        (``toxics.toxic_rng``); returns when it took effect (monotonic ns) and on how many
        open connections."""
        link = self.links[link_name]
        link.toxics[toxic_id] = toxic
        link.stats[toxic_id] = ToxicStats()
        link.rngs[toxic_id] = toxic_rng(seed, toxic_id, link_name)
        link._refresh()
        for connection in list(link.connections):
            self._connection_toxic(link, connection, toxic_id, toxic)
        return {"t_ns": time.monotonic_ns(), "open_connections": len(link.connections)}

    def clear(self, toxic_id: int, reset: bool = False) -> dict[str, Any]:
        """End a toxic wherever it is active; returns when (monotonic ns) and what it did
        (summed over its links). What it held back goes at once (``_Connection.toxic_ended``).
        ``reset``: the connections of its links are reset as it ends (a partition healed:
        the peers connect again rather than resume a stream that lost bytes)."""
        stats = ToxicStats()
        ended: list[Link] = []
        for link in self.links.values():
            if link.toxics.pop(toxic_id, None) is None:
                continue
            ended.append(link)
            link.rngs.pop(toxic_id)
            done = link.stats.pop(toxic_id)
            for key, value in asdict(done).items():
                setattr(stats, key, getattr(stats, key) + value)
            if reset:
                for connection in list(link.connections):
                    connection.reset()
                    stats.connections += 1
            link._refresh()
        t_ns = time.monotonic_ns()  # the links changed; what the toxic held back goes from now
        for link in ended:
            for connection in list(link.connections):
                connection.toxic_ended(toxic_id)
        return {"t_ns": t_ns, "stats": asdict(stats)}

    async def close(self) -> None:
        for link in self.links.values():
            if link.server is not None:
                link.server.close()
            for connection in list(link.connections):
                connection.close()
        for link in self.links.values():
            if link.server is not None:
                await link.server.wait_closed()


def require_loopback(host: str) -> None:
    """Fault traffic goes only to this machine (127.0.0.0/8, ::1): a ValueError otherwise."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"upstream host {host!r} is not a loopback address: the fault proxy forwards only to "
                         "127.0.0.0/8 or ::1")


def _upstreams(targets: list[str]) -> list[tuple[str, str, int, int]]:
    """``name=HOST:PORT[@LISTEN_PORT]`` arguments: (name, host, port, listen port), each host
    on this machine (checked before anything listens)."""
    upstreams = []
    for target in targets:
        name, _, address = target.partition("=")
        address, _, listen = address.partition("@")
        host, _, port = address.rpartition(":")
        require_loopback(host)
        upstreams.append((name, host, int(port), int(listen or 0)))
    return upstreams


async def _serve(targets: list[str]) -> None:
    proxy = FaultProxy()
    ports = {}
    for name, host, port, listen in _upstreams(targets):
        ports[name] = await proxy.listen(name, host, port, listen)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(answer: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

    async def apply(command: dict[str, Any], received_ns: int, before: asyncio.Future[None] | None) -> None:
        """One command: ready at once (its toxic parsed), switched at its time, after the
        command before it (the answers keep the commands' order)."""
        op = command["op"]
        links = command.get("link") or []  # one name or a list of them
        links = links if isinstance(links, list) else [links]
        toxic = from_wire(command["toxic"]) if op == "set" else None
        if "at_ns" in command:  # sent ahead: applied at that time (monotonic ns), not when it came
            await sleep_until(int(command["at_ns"]))
        if before is not None:
            await before
        if toxic is not None:
            answers = [proxy.set(int(command["id"]), link, toxic, int(command["seed"])) for link in links]
            say({"id": command["id"], "t_ns": answers[0]["t_ns"], "received_ns": received_ns,
                 "open_connections": sum(a["open_connections"] for a in answers)})
        elif op == "clear":
            say({"id": command["id"], "received_ns": received_ns,
                 **proxy.clear(int(command["id"]), bool(command.get("reset")))})

    say({"ready": ports})
    last: asyncio.Future[None] | None = None  # the newest command's, each waits for the one before
    try:
        # Each command is read as it comes, while those before it wait for their time.
        while line := await reader.readline():
            received_ns = time.monotonic_ns()
            command = json.loads(line)
            if command["op"] == "quit":
                break
            last = asyncio.ensure_future(apply(command, received_ns, last))
    finally:
        if last is not None and not last.done():
            last.cancel()
        await proxy.close()
        say({"closed": True})


async def sleep_until(t_ns: int, clock: Callable[[], int] = time.monotonic_ns) -> None:
    """Wait until ``clock()`` reaches ``t_ns`` to within tens of microseconds: asyncio's
    timers wake up to a millisecond late, so the last ``_SPIN_NS`` yields to the loop (which
    keeps forwarding) until the time has come. Shared by the proxy (a command sent ahead)
    and the nemesis (a process fault, on the run's clock)."""
    wait_ns = t_ns - clock()
    if wait_ns > _SPIN_NS:
        await asyncio.sleep((wait_ns - _SPIN_NS) / 1e9)
    while clock() < t_ns:
        await asyncio.sleep(0)


def main(argv: list[str] | None = None) -> None:
    """``python -m msgstorm.live.proxy name=HOST:PORT ...`` (see the module docstring)."""
    die_with_parent()
    targets = list(sys.argv[1:] if argv is None else argv)
    try:
        _upstreams(targets)
    except ValueError as error:
        sys.exit(f"msgstorm.live.proxy: {error}")
    try:
        asyncio.run(_serve(targets))
    except OSError as error:  # a listener that could not bind: one line, the last of the log
        sys.exit(f"msgstorm.live.proxy: {error.strerror or error}")


if __name__ == "__main__":
    main()
