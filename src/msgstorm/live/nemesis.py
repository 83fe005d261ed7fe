"""The live nemesis: the scenario's ``[[faults]]`` applied to real servers and links, in wall time.

Place in the pipeline: inside the live target (``live/target.py``), beside the generator.
``faults/schedule.py`` turns the faults into start and end operations, the same ones the
simulator applies in virtual time; here each is applied when its time comes on the run's
clock, and written to the history as a ``fault_start`` / ``fault_end`` event at the time it
took effect (the fault proxy's own stamp for a toxic), with the fault's spec, ``fault_id``
and what was done (the server's pid, the connections a toxic met, the bytes it dropped).

Each kind is a ``LiveFaultKind`` registered in ``LIVE_FAULT_KINDS`` (``scenario/registry.py``);
it names the driver capabilities it needs (``needs``: Protocols of ``live/drivers/base.py``),
checks an entry against the target at validation (``problems``) and applies its start and
end. What a driver can do is asked of its capabilities, never of its name or its ports: at
validation of the driver's class (``declares``), at run time of the driver itself
(``isinstance``); a ``Nemesis`` refuses a fault its driver cannot do before anything starts.
``toxic`` acts on the links between msgstorm's clients and the broker through the fault proxy
(``live/proxy.py``, a process of its own); ``pause``, ``crash`` and ``restart`` act on the
servers msgstorm started (``live/servers.py``).

Cleanup on every way out (``close``): toxics cleared, paused servers resumed, the proxy closed;
``cleanup_report`` then says whether any process or listening port msgstorm started remains.
The proxy dies with msgstorm if msgstorm is SIGKILLed (``PR_SET_PDEATHSIG``), as servers do.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from msgstorm.errors import TargetError
from msgstorm.faults.schedule import FaultOp, fault_entries, fault_schedule
from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import (
    CAPABILITIES,
    HasRouteLinks,
    HasServers,
    LeadsStream,
    ReadsNodes,
    RoutesClients,
    declares,
)
from msgstorm.live.payload import HEADER
from msgstorm.live.proxy import sleep_until
from msgstorm.live.servers import ManagedServer
from msgstorm.live.toxics import TOXICS, Blackhole, Toxic
from msgstorm.processes import die_with_parent
from msgstorm.scenario.distributions import Constant, Pareto, Uniform
from msgstorm.scenario.registry import LIVE_DRIVERS, LIVE_FAULT_KINDS
from msgstorm.scenario.schema import (
    BridgeFault,
    CrashFault,
    PartitionFault,
    PauseFault,
    RestartFault,
    Scenario,
    ToxicFault,
)

__all__ = ["LEADER_NAMES", "LiveFaultKind", "Nemesis", "ProxyProcess", "RoutesClients", "alive", "cannot",
           "cleanup_report", "listening", "toxic_of"]

Problem = tuple[tuple[str | int, ...], str]
# (t_ns on the run's clock, event kind, node, detail)
Record = Callable[[int, str, "str | None", dict[str, Any]], None]
ROLES = ("publisher", "consumers")
# A crash's ``node`` that names the stream's leader when the fault starts (``LeadsStream``).
LEADER_NAMES = ("sequencer", "leader")
# A toxic's command is sent to the proxy this long before its time (it waits there).
_PROXY_LEAD_NS = 30_000_000


def toxic_of(spec: ToxicFault) -> Toxic:
    """The proxy's toxic for a scenario entry (its kind's class in ``TOXICS``; units: ns and bytes/s)."""
    toxic: Toxic = TOXICS[spec.toxic].from_spec(spec)
    return toxic


class ProxyProcess:
    """The fault proxy in a process of its own (``python -m msgstorm.live.proxy``), so its
    forwarding does not take the generator's thread; commands and answers are JSON lines
    on its stdin and stdout."""

    def __init__(self, upstreams: dict[str, tuple[str, int]], directory: Path, listen: dict[str, int] | None = None,
                 name: str = "msgstorm-proxy") -> None:
        self.upstreams = upstreams
        self.listen = listen or {}  # a link's port, when it must be that one (routes planned ahead)
        self.directory = directory
        self.name = name
        self.process: asyncio.subprocess.Process | None = None
        self.ports: dict[str, int] = {}
        self._lock = asyncio.Lock()  # the commands written in order
        self._reading = asyncio.Lock()  # the answers read in order, each to its command
        self._waiting: collections.deque[asyncio.Future[dict[str, Any]]] = collections.deque()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, timeout_s: float) -> dict[str, int]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"{self.name}.log", "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "msgstorm.live.proxy",
                *(f"{name}={host}:{port}" + (f"@{self.listen[name]}" if name in self.listen else "")
                  for name, (host, port) in self.upstreams.items()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                preexec_fn=die_with_parent, process_group=0)
        answer = await asyncio.wait_for(self._read(), timeout_s)
        self.ports = {name: int(port) for name, port in answer["ready"].items()}
        return self.ports

    async def _read(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fault proxy exited (code {await self.process.wait()}); "
                               f"see {self.directory / (self.name + '.log')}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def command(self, **command: Any) -> dict[str, Any]:
        """Send one command and read its answer. Shielded: a caller cancelled meanwhile (the
        sending ended) leaves the exchange to finish, so the next command never reads this
        one's answer."""
        return await asyncio.shield(self._exchange(command))

    async def _exchange(self, command: dict[str, Any]) -> dict[str, Any]:
        """Write ``command`` without waiting for the answers to those before it (pipelined:
        a command sent ahead of its time waits in the proxy, and the next one, due at the
        same moment, must be there too); the proxy answers in order, so answers go to the
        waiting commands first in, first out."""
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        async with self._lock:
            assert self.process is not None and self.process.stdin is not None
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            self._waiting.append(answer)
            await self.process.stdin.drain()
        async with self._reading:
            while not answer.done():
                try:
                    read = await asyncio.wait_for(self._read(), 10)
                except BaseException as error:
                    while self._waiting:  # no answer will come in order any more
                        waiting = self._waiting.popleft()
                        if not waiting.done():
                            waiting.set_exception(error if isinstance(error, Exception) else RuntimeError(str(error)))
                    raise
                self._waiting.popleft().set_result(read)
        return answer.result()

    async def close(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        try:
            await self.command(op="quit")
            await asyncio.wait_for(process.wait(), 5)
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - closing on every way out
            self.kill()
            raise
        finally:
            if process.returncode is None:
                self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass


class LiveFaultKind(Protocol):
    """One kind of fault on a live target: ``needs`` the driver capabilities it acts
    through; ``problems`` checks an entry against the target at validation ((field path,
    message) pairs); ``start`` and ``end`` apply it and return what the event's detail adds."""

    needs: ClassVar[tuple[type, ...]]

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]: ...

    @staticmethod
    async def start(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]: ...

    @staticmethod
    async def end(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]: ...


def cannot(driver: type, who: str, kind: str, needs: tuple[type, ...]) -> list[str]:
    """Why ``driver`` (a class; ``who`` names it: "target 'zmq'") cannot apply a ``kind``
    fault: each capability it needs and does not declare, with what that would let it do."""
    return [f"{who} cannot {CAPABILITIES[capability]}, which a {kind} fault needs (its driver does not declare "
            f"{capability.__name__})" for capability in needs if not declares(driver, capability)]


def _needs(spec: Any) -> tuple[type, ...]:
    """What a driver must declare to apply ``spec``: its kind's ``needs``; a toxic on a
    cluster's routes needs the routes, not the clients'."""
    if isinstance(spec, ToxicFault) and spec.link == "routes":
        return (HasServers, HasRouteLinks)
    needs: tuple[type, ...] = LIVE_FAULT_KINDS[spec.kind].needs
    return needs


def _driver(scenario: Scenario) -> type:
    driver: type = LIVE_DRIVERS[scenario.target]
    return driver


def _server_names(scenario: Scenario) -> list[str]:
    """The servers a run of ``scenario`` starts (none for a driver without ``HasServers``)."""
    driver = _driver(scenario)
    return list(driver.server_names(scenario.live)) if declares(driver, HasServers) else []  # type: ignore[attr-defined]


def _server_problems(scenario: Scenario, node: str, kind: str) -> list[Problem]:
    said = cannot(_driver(scenario), f"target {scenario.target!r}", kind, (HasServers,))
    if said:
        return [(("kind",), said[0])]
    if scenario.live.url is not None:
        return [(("node",), f"a process fault acts on a server msgstorm starts; with live.url ({scenario.live.url}) "
                           "it starts none: drop live.url or the fault")]
    names = _server_names(scenario)
    if node not in names:
        return [(("node",), f"unknown server {node!r}; target {scenario.target!r} starts {names}")]
    return []


class _ServerFault:
    needs: ClassVar[tuple[type, ...]] = (HasServers,)

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        return _server_problems(scenario, spec.node, spec.kind)


def _smallest_size_bytes(size: Any) -> float:
    """The smallest payload size a size distribution can draw (0 when it is not bounded below)."""
    if isinstance(size, Constant):
        return size.value
    if isinstance(size, Uniform):
        return min(size.low, size.high)
    if isinstance(size, Pareto):
        return size.scale
    return 0.0


def _corrupt_problems(scenario: Scenario) -> list[Problem]:
    """A ``corrupt`` toxic is only seen when every payload carries its check byte
    (``live/payload.py``): a payload of ``HEADER.size`` bytes or less has none, so a changed
    byte would read as another message's id."""
    problems: list[Problem] = []
    for index, agent in enumerate(scenario.agents):
        smallest = _smallest_size_bytes(agent.size)
        if smallest < HEADER.size + 1:
            problems.append((("toxic",), f"a corrupt toxic is detected by the check byte a payload of more than "
                                         f"{HEADER.size} bytes carries; agents[{index}].size ({agent.name!r}) can be "
                                         f"{smallest:g} bytes: give it a size of at least {HEADER.size + 1} bytes"))
    return problems


@LIVE_FAULT_KINDS.register("pause")
class Pause(_ServerFault):
    """SIGSTOP a server; SIGCONT at the end."""

    @staticmethod
    async def start(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, PauseFault)
        server = nemesis.server(op.spec.node)
        server.pause()
        nemesis.paused.add(server.name)
        return {"pid": server.pid}

    @staticmethod
    async def end(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, PauseFault)
        server = nemesis.server(op.spec.node)
        server.resume()
        nemesis.paused.discard(server.name)
        return {"pid": server.pid}


@LIVE_FAULT_KINDS.register("crash")
class Crash(_ServerFault):
    """SIGKILL a server; with ``restart_after``, start it again on its port and data directory."""

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        if spec.node in LEADER_NAMES:
            driver = _driver(scenario)
            if declares(driver, LeadsStream) and driver.elects_leader(scenario.live):  # type: ignore[attr-defined]
                return []  # the server leading the stream when the fault starts
            return [(("node",), f"{spec.node!r} (the leader) names a server on a JetStream cluster msgstorm starts "
                                "(live.jetstream.replicas = 3 or 5); otherwise name a server")]
        return _server_problems(scenario, spec.node, spec.kind)

    @staticmethod
    async def start(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, CrashFault)
        name = op.spec.node
        if name in LEADER_NAMES:  # whichever server leads the stream now
            if not isinstance(nemesis.driver, LeadsStream):
                raise TargetError(f"crash of {name!r}: the driver keeps no replicated stream (LeadsStream)")
            name = await nemesis.driver.stream_leader()
        nemesis.victims[op.fault_id] = name
        server = nemesis.server(name)
        pid = server.pid
        await asyncio.get_running_loop().run_in_executor(None, server.kill)
        nemesis.paused.discard(server.name)
        return {"pid": pid, "signal": "SIGKILL", "server": name}

    @staticmethod
    async def end(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, CrashFault)
        return await nemesis.start_again(nemesis.server(nemesis.victims.get(op.fault_id, op.spec.node)))


@LIVE_FAULT_KINDS.register("restart")
class Restart(_ServerFault):
    """SIGTERM a server (a graceful stop); start it again ``down`` later, same port and data."""

    @staticmethod
    async def start(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, RestartFault)
        server = nemesis.server(op.spec.node)
        pid = server.pid
        await asyncio.get_running_loop().run_in_executor(None, server.terminate)
        nemesis.paused.discard(server.name)
        return {"pid": pid, "signal": "SIGTERM"}

    @staticmethod
    async def end(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, RestartFault)
        return await nemesis.start_again(nemesis.server(op.spec.node))


@LIVE_FAULT_KINDS.register("toxic")
class ToxicKind:
    """A toxic on the client links, through the fault proxy."""

    needs: ClassVar[tuple[type, ...]] = (RoutesClients,)

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        if spec.link == "routes":
            return ToxicKind.route_problems(scenario, spec)
        driver = _driver(scenario)
        said = cannot(driver, f"target {scenario.target!r}", "toxic", ToxicKind.needs)
        if said:
            return [(("kind",), said[0])]
        routes: type[RoutesClients] = driver  # declared: ``cannot`` said nothing
        routing = routes.client_routing_problem(scenario.live)
        if routing is not None:
            return [(("kind",), routing)]
        if TOXICS[spec.toxic].changes_bytes:
            return _corrupt_problems(scenario)
        return []

    @staticmethod
    def route_problems(scenario: Scenario, spec: Any) -> list[Problem]:
        """A toxic on a cluster's routes: a cluster msgstorm starts, servers it has, bytes kept."""
        driver = _driver(scenario)
        if not (declares(driver, HasRouteLinks) and driver.has_routes(scenario.live)):  # type: ignore[attr-defined]
            return [(("link",), f'a toxic on link = "routes" acts on the links between the servers of a cluster '
                                f'msgstorm starts: target "cometbft", or "jetstream" with replicas 3 or 5 '
                                f"(target {scenario.target!r} starts none)")]
        problems: list[Problem] = []
        if TOXICS[spec.toxic].changes_bytes:
            problems.append((("toxic",), f"a {spec.toxic!r} toxic changes bytes on the servers' encrypted links, "
                                         "which only drops them: use a toxic that delays, slows or cuts"))
        names = _server_names(scenario)
        for g, group in enumerate(spec.between or []):
            for name in group:
                if name not in names:
                    problems.append((("between", g), f"unknown server {name!r}; the cluster is {names}"))
        return problems

    @staticmethod
    def route_links(nemesis: Nemesis, spec: Any) -> list[str]:
        """The routes a toxic on link = "routes" acts on: every one, or those between its two groups."""
        names = nemesis.server_names()
        if spec.between is None:
            return [f"route-{i}-{j}" for i in range(len(names)) for j in range(len(names)) if i != j]
        side = {name: g for g, group in enumerate(spec.between) for name in group}
        return [f"route-{i}-{j}" for i, a in enumerate(names) for j, b in enumerate(names)
                if i != j and a in side and b in side and side[a] != side[b]]

    @staticmethod
    async def start(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, ToxicFault)
        toxic = toxic_of(op.spec)
        if op.spec.link == "routes":
            assert nemesis.route_proxy is not None
            proxy, links = nemesis.route_proxy, ToxicKind.route_links(nemesis, op.spec)
        else:
            assert nemesis.proxy is not None
            roles = ROLES if op.spec.link == "clients" else (op.spec.link,)
            proxy, links = nemesis.proxy, [link for role in roles for link in nemesis.links[role]]
        # One command for every link: the proxy switches them all at the same moment.
        answer = await proxy.command(op="set", id=op.fault_id, link=links, toxic=toxic.wire(),
                                     seed=nemesis.scenario.run.seed, at_ns=nemesis.t0_ns + op.t_ns)
        return {"t_ns": answer["t_ns"], "received_ns": answer["received_ns"],
                "open_connections": answer["open_connections"],
                **({"routes": links} if op.spec.link == "routes" else {})}

    @staticmethod
    async def end(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, ToxicFault)
        proxy = nemesis.route_proxy if op.spec.link == "routes" else nemesis.proxy
        assert proxy is not None
        on_time = {} if nemesis.healing else {"at_ns": nemesis.t0_ns + op.t_ns}  # a heal is now
        answer = await proxy.command(op="clear", id=op.fault_id, **on_time)
        return {"t_ns": answer["t_ns"], "received_ns": answer["received_ns"], **answer["stats"]}


@LIVE_FAULT_KINDS.register("partition")
class Partition:
    """Cut the cluster's routes between groups of servers (unnamed servers form one more
    group): every route between two groups is blackholed both ways through the fault proxy;
    at the end the routes are reset and the servers connect again (a healed partition)."""

    needs: ClassVar[tuple[type, ...]] = (HasServers, HasRouteLinks)

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        driver = _driver(scenario)
        missing = cannot(driver, f"target {scenario.target!r}", spec.kind, Partition.needs)
        if missing or not driver.has_routes(scenario.live):  # type: ignore[attr-defined]
            why = missing[0] if missing else f"target {scenario.target!r} starts no cluster with this [live] section"
            return [(("kind",), f"a {spec.kind} on a live target cuts the routes of a cluster msgstorm starts: "
                                f'target "jetstream" with live.jetstream.replicas = 3 or 5 and no live.url, or target '
                                f'"cometbft" ({why})')]
        names = _server_names(scenario)
        problems: list[Problem] = []
        seen: set[str] = set()
        for g, group in enumerate(spec.groups):
            for name in group:
                if name not in names:
                    problems.append((("groups", g), f"unknown server {name!r}; the cluster is {names}"))
                elif name in seen:
                    problems.append((("groups", g), f"{name!r} is in two groups"))
                seen.add(name)
        return problems

    @staticmethod
    def cut_links(nemesis: Nemesis, spec: Any) -> list[str]:
        names = nemesis.server_names()
        group_of = {name: g for g, group in enumerate(spec.groups) for name in group}
        side = [group_of.get(name, -1) for name in names]
        return [f"route-{i}-{j}" for i in range(len(names)) for j in range(len(names)) if i != j and side[i] != side[j]]

    @staticmethod
    async def start(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert nemesis.route_proxy is not None
        links = (Bridge if op.spec.kind == "bridge" else Partition).cut_links(nemesis, op.spec)
        answer = await nemesis.route_proxy.command(op="set", id=op.fault_id, link=links,
                                                   toxic=Blackhole("both").wire(), seed=nemesis.scenario.run.seed,
                                                   at_ns=nemesis.t0_ns + op.t_ns)
        return {"t_ns": answer["t_ns"], "received_ns": answer["received_ns"], "routes_cut": links,
                "open_connections": answer["open_connections"]}

    @staticmethod
    async def end(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert nemesis.route_proxy is not None
        on_time = {} if nemesis.healing else {"at_ns": nemesis.t0_ns + op.t_ns}
        answer = await nemesis.route_proxy.command(op="clear", id=op.fault_id, reset=True, **on_time)
        return {"t_ns": answer["t_ns"], "received_ns": answer["received_ns"], **answer["stats"]}


@LIVE_FAULT_KINDS.register("bridge")
class Bridge(Partition):
    """Two sides of a cluster that reach each other only through the ``bridge`` server: the
    routes between the sides are cut, the bridge's routes to both stay."""

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        problems = Partition.problems(scenario, spec)
        driver = _driver(scenario)
        cluster = declares(driver, HasRouteLinks) and driver.has_routes(scenario.live)  # type: ignore[attr-defined]
        names = _server_names(scenario) if cluster else []
        if names and spec.bridge not in names:
            problems.append((("bridge",), f"unknown server {spec.bridge!r}; the cluster is {names}"))
        if any(spec.bridge in group for group in spec.groups):
            problems.append((("bridge",), f"the bridge {spec.bridge!r} is in neither side: leave it out of 'groups'"))
        # Unlike a partition (where unnamed servers form one more group), a bridge has two
        # sides only: a server in neither would keep every route, so each must be named.
        left_out = [name for name in names if name != spec.bridge and not any(name in group for group in spec.groups)]
        if left_out:
            problems.append((("groups",), f"{left_out} in neither side nor the bridge: the two sides and the bridge "
                                          f"cover the whole cluster {names}"))
        return problems

    @staticmethod
    def cut_links(nemesis: Nemesis, spec: Any) -> list[str]:
        names = nemesis.server_names()
        side = {name: g for g, group in enumerate(spec.groups) for name in group}
        return [f"route-{i}-{j}" for i, a in enumerate(names) for j, b in enumerate(names)
                if i != j and a in side and b in side and side[a] != side[b]]


def _host_port(url: str) -> tuple[str, int]:
    """Where a client route leads (``RoutesClients.client_routes`` gives host and port)."""
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
        who = f"driver {type(driver).__name__} (target {scenario.target!r})"
        refused = [said for _, spec in fault_entries(scenario)
                   for said in cannot(type(driver), who, spec.kind, _needs(spec))]
        if refused:
            raise TargetError("; ".join(dict.fromkeys(refused)))
        self.proxy: ProxyProcess | None = None  # the clients' links
        self.route_proxy: ProxyProcess | None = None  # a cluster's routes (partitions)
        if isinstance(driver, HasRouteLinks) and any(
                isinstance(spec, PartitionFault | BridgeFault) or (isinstance(spec, ToxicFault) and spec.link == "routes")
                for _, spec in fault_entries(scenario)):
            driver.proxy_routes = True  # before its servers start: their routes go through the proxy
        if scenario.faults and isinstance(driver, ReadsNodes):
            driver.read_nodes = True  # a cluster under faults: each node's copy is read back after
        self.links: dict[str, list[str]] = {}  # role -> the proxy's link names, one per server
        self.paused: set[str] = set()
        self.resumed: set[str] = set()  # servers a heal or the cleanup found paused and resumed
        self.started: set[int] = set()  # faults whose start was begun
        self.ended: set[int] = set()  # faults whose end was begun
        # Operations being applied: each finishes (and is recorded) even when the run that
        # began it is cancelled meanwhile; ``heal`` waits for them.
        self.applying: set[asyncio.Task[None]] = set()
        self.victims: dict[int, str] = {}  # fault id -> the server a crash took down (the leader, named then)
        self.active: set[int] = set()
        self.t0_ns = 0
        self.closed = False
        self.healing = False  # ending what is in force now, ahead of its time
        self.now: Callable[[], int] = lambda: 0  # the run's clock, once it runs

    @property
    def needs_proxy(self) -> bool:
        """A toxic on the clients' links (one on a cluster's routes uses the route proxy)."""
        return any(isinstance(spec, ToxicFault) and spec.link != "routes" for _, spec in fault_entries(self.scenario))

    def server_names(self) -> list[str]:
        """The servers the driver started, in its order."""
        return [server.name for server in self.driver.servers] if isinstance(self.driver, HasServers) else []

    def server(self, name: str) -> ManagedServer:
        for server in self.driver.servers if isinstance(self.driver, HasServers) else []:
            if server.name == name:
                return server
        raise KeyError(f"no server {name!r} was started")

    async def prepare(self) -> None:
        route_links = self.driver.route_links if isinstance(self.driver, HasRouteLinks) else {}
        if route_links:
            self.route_proxy = ProxyProcess({name: ("127.0.0.1", upstream) for name, (_, upstream) in route_links.items()},
                                            self.run_dir / "servers", {name: port for name, (port, _) in route_links.items()},
                                            name="msgstorm-route-proxy")
            ports = await self.route_proxy.start(self.scenario.live.start_timeout / 1e9)
            self.record(0, EventKind.SERVER_START, None, {"name": self.route_proxy.name, "pid": self.route_proxy.pid,
                                                          "proxy": ports})
        if not self.needs_proxy:
            return
        assert isinstance(self.driver, RoutesClients)  # a toxic needs it (refused in __init__ otherwise)
        routes = self.driver.client_routes()
        upstreams: dict[str, tuple[str, int]] = {}
        for role in ROLES:
            self.links[role] = []
            for index, url in enumerate(routes[role]):
                name = f"{role}-{index}"
                upstreams[name] = _host_port(url)
                self.links[role].append(name)
        self.proxy = ProxyProcess(upstreams, self.run_dir / "servers")
        ports = await self.proxy.start(self.scenario.live.start_timeout / 1e9)
        self.driver.route_clients({
            role: [urlsplit(url)._replace(netloc=f"127.0.0.1:{ports[name]}").geturl()
                   for name, url in zip(self.links[role], routes[role])]
            for role in ROLES})
        self.record(0, EventKind.SERVER_START, None, {"name": self.proxy.name, "pid": self.proxy.pid,
                                                      "proxy": {name: ports[name] for name in upstreams}})

    async def start_again(self, server: ManagedServer) -> dict[str, Any]:
        """Start a stopped server again on its port and data; the end of its fault is when it
        listens. Spawned on this (the main) thread: the kernel kills a child whose forking
        thread ends (its parent-death signal), which an executor's thread does. One still
        running (its stop never happened) is left as it is."""
        if server.process is not None and server.process.poll() is None:
            return {"pid": server.pid, "already_running": True}
        server.spawn()
        deadline = asyncio.get_running_loop().time() + server.start_timeout_s
        while not await server.accepts_now():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{server.name} did not listen again within {server.start_timeout_s:g} s")
            await asyncio.sleep(0.02)
        url = self.driver.server_url(server) if isinstance(self.driver, HasServers) else None
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
            said = await (kind.start if op.action == "start" else kind.end)(self, op)
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
                        self.resumed.add(op.spec.node)  # ahead of its time: the sending ended, or the run was stopped
                    await self.apply(op, now)
        finally:
            for name in list(self.paused):
                self.server(name).resume()
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
            self.server(name).resume()
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
