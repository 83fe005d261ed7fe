"""The live nemesis: the scenario's ``[[faults]]`` applied to real servers and links, in wall time.

Place in the pipeline: inside the live target (``live/target.py``), beside the generator.
``faults/schedule.py`` turns the faults into start and end operations, the same ones the
simulator applies in virtual time; here each is applied when its time comes on the run's
clock, and written to the history as a ``fault_start`` / ``fault_end`` event at the time it
took effect (the fault proxy's own stamp for a toxic), with the fault's spec, ``fault_id``
and what was done (the server's pid, the connections a toxic met, the bytes it dropped).

The nemesis only schedules. Each kind is a ``LiveFaultKind`` in a module of its own under
``live/faults/`` (``base.py``: the interface), registered in ``LIVE_FAULT_KINDS``
(``scenario/registry.py``), as toxics are: it names the driver capabilities it needs, checks
an entry against the target at validation and applies its start and end. A ``Nemesis``
refuses a fault its driver cannot do before anything starts. ``toxic`` acts on the links
between msgstorm's clients and the broker through the fault proxy (a process of its own,
``live/proxy_process.py``); ``pause``, ``crash`` and ``restart`` act on the servers msgstorm
started (``live/servers.py``).

Cleanup on every way out (``close``): toxics cleared, paused servers resumed, the proxy closed;
``cleanup_report`` then says whether any process or listening port msgstorm started remains.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from msgstorm.errors import TargetError
from msgstorm.faults.schedule import FaultOp, fault_entries, fault_schedule
from msgstorm.history.events import EventKind
from msgstorm.live.drivers.capabilities import DriverCapabilities
from msgstorm.live.faults.base import LiveFaultKind, cannot, needs_of
from msgstorm.live.faults.handle import FaultHandle
from msgstorm.live.faults.toxic import ROLES
from msgstorm.live.proxy import sleep_until
from msgstorm.live.proxy_process import ProxyProcess
from msgstorm.live.servers import ManagedServer
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import (
    BridgeFault,
    CrashFault,
    PartitionFault,
    PauseFault,
    RestartFault,
    Scenario,
    ToxicFault,
)

__all__ = ["Nemesis", "alive", "cleanup_report", "listening"]

# (t_ns on the run's clock, event kind, node, detail)
Record = Callable[[int, str, "str | None", dict[str, Any]], None]
# A toxic's command is sent to the proxy this long before its time (it waits there).
_PROXY_LEAD_NS = 30_000_000


def _host_port(url: str) -> tuple[str, int]:
    """Where a client route leads (``ClientRoutes.client_routes`` gives host and port)."""
    parts = urlsplit(url)
    if parts.port is None:
        raise TargetError(f"{url}: a client route names its port (scheme://host:port); the driver gave none")
    return parts.hostname or "127.0.0.1", int(parts.port)


class Nemesis:
    """Applies the scenario's fault schedule to a running live target. ``prepare`` (before
    the clients connect) starts the fault proxy when a toxic needs it and routes the
    driver's clients through it; ``run(t0_ns)`` applies each operation when it comes due on
    the run's clock (``t0_ns`` its zero, monotonic ns); ``close`` undoes what is still in
    force, on every way out."""

    def __init__(self, scenario: Scenario, driver: Any, run_dir: Path, record: Record) -> None:
        self.scenario = scenario
        self.driver = driver
        self.run_dir = run_dir
        self.record = record
        self.ops = fault_schedule(scenario)
        self.can = DriverCapabilities.of(driver)  # what the driver's class declares: all a fault acts through
        who = f"driver {type(driver).__name__} (target {scenario.target!r})"
        refused = [said for _, spec in fault_entries(scenario)
                   for said in cannot(type(driver), who, spec.kind, needs_of(spec))]
        if refused:
            raise TargetError("; ".join(dict.fromkeys(refused)))
        self.proxy: ProxyProcess | None = None  # the clients' links
        self.route_proxy: ProxyProcess | None = None  # a cluster's routes (partitions)
        if self.can.route_links is not None and any(
                isinstance(spec, PartitionFault | BridgeFault) or (isinstance(spec, ToxicFault) and spec.link == "routes")
                for _, spec in fault_entries(scenario)):
            self.can.route_links.proxy_routes = True  # before its servers start: their routes go through the proxy
        if scenario.faults and self.can.node_copies is not None:
            self.can.node_copies.read_nodes = True  # a cluster under faults: each node's copy is read back after
        self.links: dict[str, list[str]] = {}  # role -> the proxy's link names, one per server
        self.paused: set[str] = set()
        self.resumed: set[str] = set()  # servers a heal or the cleanup found paused and resumed
        self.started: set[int] = set()  # faults whose start was begun
        self.ended: set[int] = set()  # faults whose end was begun
        # Operations being applied: each finishes (and is recorded) even when the run that
        # began it is cancelled meanwhile; ``heal`` waits for them.
        self.applying: set[asyncio.Task[None]] = set()
        self.victims: dict[int, str] = {}  # fault id -> the server a crash took down (the leader, named then)
        self.paused_by: dict[int, list[str]] = {}  # fault id -> the servers a pause stopped (named then)
        self.active: set[int] = set()
        self.t0_ns = 0
        self.closed = False
        self.healing = False  # ending what is in force now, ahead of its time
        self.now: Callable[[], int] = lambda: 0  # the run's clock, once it runs

    @property
    def needs_proxy(self) -> bool:
        """A toxic on the clients' links (one on a cluster's routes uses the route proxy)."""
        return any(isinstance(spec, ToxicFault) and spec.link != "routes" for _, spec in fault_entries(self.scenario))

    def handle(self) -> FaultHandle:
        """All a fault kind's start or end sees of the run, now (``live/faults/handle.py``)."""
        return FaultHandle(can=self.can, proxy=self.proxy, route_proxy=self.route_proxy, links=self.links,
                           paused=self.paused, paused_by=self.paused_by, victims=self.victims,
                           seed=self.scenario.run.seed, t0_ns=self.t0_ns, healing=self.healing,
                           rollup=self.scenario.rollup, start_again=self.start_again,
                           spawn_listening=self.spawn_listening)

    async def prepare(self) -> None:
        route_links = self.can.route_links.route_links if self.can.route_links is not None else {}
        if route_links:
            self.route_proxy = ProxyProcess({name: ("127.0.0.1", upstream) for name, (_, upstream) in route_links.items()},
                                            self.run_dir / "servers", {name: port for name, (port, _) in route_links.items()},
                                            name="msgstorm-route-proxy")
            ports = await self.route_proxy.start(self.scenario.live.start_timeout / 1e9)
            self.record(0, EventKind.SERVER_START, None, {"name": self.route_proxy.name, "pid": self.route_proxy.pid,
                                                          "proxy": ports})
        if not self.needs_proxy:
            return
        clients = self.can.client_routes
        assert clients is not None  # a toxic needs it (refused in __init__ otherwise)
        routes = clients.client_routes()
        upstreams: dict[str, tuple[str, int]] = {}
        for role in ROLES:
            self.links[role] = []
            for index, url in enumerate(routes[role]):
                name = f"{role}-{index}"
                upstreams[name] = _host_port(url)
                self.links[role].append(name)
        self.proxy = ProxyProcess(upstreams, self.run_dir / "servers")
        ports = await self.proxy.start(self.scenario.live.start_timeout / 1e9)
        clients.route_clients({
            role: [urlsplit(url)._replace(netloc=f"127.0.0.1:{ports[name]}").geturl()
                   for name, url in zip(self.links[role], routes[role])]
            for role in ROLES})
        self.record(0, EventKind.SERVER_START, None, {"name": self.proxy.name, "pid": self.proxy.pid,
                                                      "proxy": {name: ports[name] for name in upstreams}})

    @staticmethod
    async def spawn_listening(server: ManagedServer) -> None:
        """Spawn ``server`` on this (the main) thread, then wait until it listens. The
        kernel kills a child whose forking thread ends (its parent-death signal), which an
        executor's thread does, so a fault never spawns from one."""
        server.spawn()
        deadline = asyncio.get_running_loop().time() + server.start_timeout_s
        while not await server.accepts_now():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{server.name} did not listen within {server.start_timeout_s:g} s")
            await asyncio.sleep(0.02)

    async def start_again(self, server: ManagedServer) -> dict[str, Any]:
        """Start a stopped server again on its port and data; the end of its fault is when it
        listens. Spawned on this (the main) thread: the kernel kills a child whose forking
        thread ends (its parent-death signal), which an executor's thread does. One still
        running (its stop never happened) is left as it is."""
        if server.process is not None and server.process.poll() is None:
            return {"pid": server.pid, "already_running": True}
        await self.spawn_listening(server)
        url = self.can.servers.server_url(server) if self.can.servers is not None else None
        self.record(self.now(), EventKind.SERVER_START, None, {"name": server.name, "pid": server.pid, "url": url,
                                                               "restarted": True})
        return {"pid": server.pid}

    async def run(self, t0_ns: int, now: Callable[[], int]) -> None:
        """Each operation at its time; a fault that fails to apply is a ``client_error``
        event (the run goes on)."""
        self.t0_ns = t0_ns
        self.now = now
        for op in self.ops:
            # A toxic's command goes to the proxy ahead of time and is applied there on time
            # (``sleep_until`` in the proxy), the next operation's not waiting for its answer;
            # a process fault is applied here, on time.
            if isinstance(op.spec, ToxicFault):
                wait_ns = op.t_ns - _PROXY_LEAD_NS - now()
                if wait_ns > 0:
                    await asyncio.sleep(wait_ns / 1e9)
                self._begin(op, now)
                await asyncio.sleep(0)  # its command written before the next operation's
            else:
                await sleep_until(op.t_ns, now)
                await self.apply(op, now)

    async def apply(self, op: FaultOp, now: Callable[[], int]) -> None:
        """Apply ``op`` and record it. Shielded: cancelled meanwhile (the sending ended), the
        operation still finishes and its event is written (``heal`` waits for it), so no
        ``fault_start`` is left without its ``fault_end``."""
        await asyncio.shield(self._begin(op, now))

    def _begin(self, op: FaultOp, now: Callable[[], int]) -> asyncio.Future[None]:
        """``op`` begun (its task in ``applying``): a heal ends it (after it has finished),
        and does not begin it a second time."""
        (self.started if op.action == "start" else self.ended).add(op.fault_id)
        applying = asyncio.ensure_future(self._apply(op, now))
        self.applying.add(applying)
        applying.add_done_callback(self.applying.discard)
        return applying

    async def _apply(self, op: FaultOp, now: Callable[[], int]) -> None:
        kind: LiveFaultKind = LIVE_FAULT_KINDS[op.spec.kind]
        detail: dict[str, Any] = {"fault_id": op.fault_id, **op.spec.model_dump(mode="json"),
                                  **({"from_entry": op.source} if op.source is not None else {})}
        try:
            said = await (kind.start if op.action == "start" else kind.end)(self.handle(), op)
        except Exception as error:  # noqa: BLE001 - a fault that cannot be applied must not end the run
            self.record(now(), EventKind.CLIENT_ERROR, None,
                        {"client": "nemesis", "fault_id": op.fault_id, "error": f"{type(error).__name__}: {error}"})
            return
        t = now()
        if "t_ns" in said:  # stamped where it took effect (the proxy's monotonic clock)
            t = int(said.pop("t_ns")) - self.t0_ns
        if not self.healing:  # on its schedule: when it was due, and how late it took effect
            detail["intended_t_ns"] = op.t_ns
            detail["late_ms"] = round((t - op.t_ns) / 1e6, 3)
        if "received_ns" in said:  # how far ahead of its time the proxy had its command
            detail["command_ahead_ms"] = round((self.t0_ns + op.t_ns - int(said.pop("received_ns"))) / 1e6, 3)
        if op.action == "start":
            self.active.add(op.fault_id)
        else:
            self.active.discard(op.fault_id)
        named = op.spec.node if isinstance(op.spec, PauseFault | CrashFault | RestartFault) else None
        node = self.victims.get(op.fault_id, named)
        self.record(t, EventKind.FAULT_START if op.action == "start" else EventKind.FAULT_END, node,
                    {**detail, **said})

    async def heal(self, now: Callable[[], int]) -> None:
        """End the faults still in force (each ``fault_end`` written): toxics cleared, paused
        servers resumed, servers stopped for a restart started again. A crash without
        ``restart_after`` stays. Safe to call twice."""
        self.healing = True
        try:
            while self.applying:  # begun before the heal: finished (and recorded) first
                await asyncio.wait(list(self.applying))
            for op in self.ops:
                if op.action == "end" and op.fault_id in self.started and op.fault_id not in self.ended:
                    if isinstance(op.spec, PauseFault):
                        # ahead of its time: the sending ended, or the run was stopped
                        self.resumed.update(self.paused_by.get(op.fault_id, [op.spec.node]))
                    await self.apply(op, now)
        finally:
            for name in list(self.paused):
                self.handle().server(name).resume()
                self.resumed.add(name)
            self.paused.clear()

    async def close(self, now: Callable[[], int]) -> None:
        """``heal``, then close the fault proxy (after the clients that go through it).
        Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.heal(now)
        finally:
            for proxy in (self.proxy, self.route_proxy):
                if proxy is None:
                    continue
                try:
                    await proxy.close()
                finally:
                    returncode = proxy.process.returncode if proxy.process is not None else None
                    self.record(now(), EventKind.SERVER_STOP, None, {"name": proxy.name, "returncode": returncode})

    def kill(self) -> None:
        """The last resort (an event loop that is gone): resume and kill without waiting."""
        for name in list(self.paused):
            self.handle().server(name).resume()
            self.resumed.add(name)
        self.paused.clear()
        for proxy in (self.proxy, self.route_proxy):
            if proxy is not None:
                proxy.kill()


def cleanup_report(servers: list[ManagedServer], nemesis: Nemesis | None,
                   children: list[tuple[str, int]]) -> dict[str, Any]:
    """After everything was stopped: what msgstorm started that still runs or listens
    (``left``, empty when the cleanup is verified), and what was stopped, closed, resumed.
    ``children``: (name, pid) of its consumer and generator processes."""
    left: list[str] = []
    for server in servers:
        left += [f"{server.name} (pid {pid})" for pid in server.pids if alive(pid)]
        if server.pids and listening(server.port):
            left.append(f"{server.name} port {server.port}")
    proxies = [p for p in ((nemesis.proxy, nemesis.route_proxy) if nemesis is not None else ()) if p is not None]
    for proxy in proxies:
        if proxy.pid is not None and alive(proxy.pid):
            left.append(f"{proxy.name} (pid {proxy.pid})")
        left += [f"{proxy.name} port {port}" for port in proxy.ports.values() if listening(port)]
    left += [f"{name} (pid {pid})" for name, pid in children if alive(pid)]
    return {"servers_stopped": sum(1 for server in servers if server.pids),
            "proxies_closed": sum(1 for proxy in proxies if proxy.pid is not None),
            "resumed": sorted(nemesis.resumed) if nemesis is not None else [], "left": left}


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, exited and not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
