"""The driver Protocol: what the live target asks of a messaging system.

Place in the pipeline: between ``live/target.py`` (the open-loop generator and the
history) and a broker. A driver starts its server when the scenario names no URL
(``servers.ManagedServer``), connects one publisher and ``live.consumers`` consumers,
publishes payloads in the order given, calls ``on_receipt(consumer, payload)`` for every
message a consumer gets, ``on_ack(msg_id, order)`` when the broker acknowledges a publish
(drivers with ``acks``; ``order`` is the broker's serialization order: a stream sequence, an
entry id's rank), and reports connection trouble through ``on_event``. Times are taken by
the target, on one monotonic clock, not by the driver.

``fanout`` says how consumers share the messages: True when every consumer gets every
message (subscriptions, PUB/SUB), False when each message goes to one consumer of a group
(consumer groups, PUSH/PULL). A driver that can read the stored stream back after the run
(``read_back``) lets the delivery check compare what the broker kept with what it acked.

Optional capabilities: ``CountsLostPublishes`` (a driver that knows some publishes will
never arrive says how many, so the target's drain does not wait for them),
``CountsHandedOver`` (a driver that counts the messages it has taken, so that an
interrupted run keeps no send time on a message it never sent) and
``TimedReceiptsDriver`` (consumers that stamp their receipts elsewhere, in processes of
their own, and say up to when they have handed them all over).

What the nemesis (``live/nemesis.py``) and the target may do with a driver are capabilities
too, each a Protocol a driver class declares by subclassing it (``class
JetStreamDriver(HasServers, LeadsStream, ...)``): ``HasServers`` (servers of its own, which
process faults pause, kill and start again), ``LeadsStream`` (a replicated stream whose
leader a crash may name), ``HasRouteLinks`` (a cluster whose routes go through the fault
proxy: partitions, bridges), ``ReadsNodes`` (each server's own copy read back),
``RoutesClients`` (clients through the fault proxy: toxics), ``AnnouncesMaxPayload``,
``HasConsumerProcesses``, ``RunsInProcesses`` and ``FeedsGeneratorProcesses``. A scenario is
checked against the class before anything starts (``declares``: no instance needed, its
static methods say what a run with a given ``LiveSpec`` has); at run time the nemesis and
the target check the instance with ``isinstance``, never a target's name or a port. A
test ties the two: what a built-in driver declares is what its instances satisfy. The
target looks them all up once a run into ``DriverCapabilities``, named typed fields it reads
instead of probing the driver again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.live.payload import StoredCopy
from msgstorm.live.servers import ManagedServer
from msgstorm.scenario.live import LiveSpec

__all__ = [
    "CAPABILITIES", "STOP_GRACE_NS", "AnnouncesMaxPayload", "BulkAckDriver", "BurstDriver", "ChildProcess",
    "CountsLostPublishes", "Driver", "DriverCapabilities", "FeedsGeneratorProcesses", "HasConsumerProcesses",
    "HasRouteLinks", "HasServers", "HoldsValidatorKeys",
    "LeadsStream", "OnAck", "OnAcks", "OnEvent", "OnReceipt", "OnReceipts", "OnTimedReceipts", "Outages", "ReadsNodes",
    "RoutesClients", "RunsInProcesses", "SignsMessages", "TimedReceiptsDriver", "declares"]

# A message due before ``run.duration`` still leaves up to this long after it (a wake-up a
# few ms late at the end is no backlog); a generator further behind stops there, and what
# it has not sent is ``unsent``: a backlog is never sent late.
STOP_GRACE_NS = 10_000_000

OnReceipt = Callable[[int, bytes], None]  # (consumer index, payload)
# (consumer index, the ids of the messages one read brought (int64), payloads in it too
# short to carry an id)
OnReceipts = Callable[[int, np.ndarray, int], None]
OnAck = Callable[[int, int], None]  # (msg_id, the broker's order for it)
# (msg_ids, the broker's order for each): the acks one read brought, int64 arrays
OnAcks = Callable[[np.ndarray, np.ndarray], None]
# (EventKind value, detail); the event happened now, or at ``detail["at_wall_ns"]`` (time.time_ns
# scale) when the detail has it: something learned later, such as a line of a server's log.
OnEvent = Callable[[str, dict[str, Any]], None]
# (consumer index, msg ids (int64), each read's time (int64, CLOCK_MONOTONIC ns), how many of
# the ids each read brought (int64), payloads too short to carry an id)
OnTimedReceipts = Callable[[int, np.ndarray, np.ndarray, np.ndarray, int], None]


class Driver(Protocol):
    """One messaging system. ``__init__(spec, run_dir, on_event)`` does no I/O."""

    fanout: bool  # every consumer gets every message (else consumers share them)
    acks: bool  # publishes are acknowledged with an order (``on_ack`` is called)

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None: ...

    def start_servers(self) -> list[dict[str, Any]]:
        """Start what the run needs when ``spec.url`` is None; describe each server
        started ({"name", "pid", "url"}). Blocking; called before the event loop runs."""
        ...

    def stop_servers(self) -> None:
        """Stop every server started (safe to call twice, and after a failed start)."""
        ...

    async def connect(self, on_receipt: OnReceipt, on_ack: OnAck) -> None:
        """Connect the publisher and the consumers; consumers are subscribed on return."""
        ...

    async def publish(self, msg_id: int, payload: bytes) -> None:
        """Hand one message to the client (it may buffer: ``flush`` sends what is buffered).
        Must not wait for the broker's ack: acks arrive through ``on_ack``."""
        ...

    async def flush(self) -> None:
        """Send what is buffered and wait for the acks outstanding (bounded by the driver)."""
        ...

    async def read_back(self) -> StoredCopy | None:
        """After the run: the ids of the payloads the broker stored, in its order (taken a
        page at a time: ``StoredCopy``); None when the target keeps nothing to read (core
        NATS, ZeroMQ)."""
        ...

    async def close(self) -> None:
        """Close every connection (what was received before is kept)."""
        ...


@runtime_checkable
class BurstDriver(Driver, Protocol):
    """A driver that also takes many messages at once, and hands receipts over in bulk.

    The target ``stage``s the messages it will send next, a few thousand at a time, as
    columns: the driver lays out their payloads (``live/payload.py``) and whatever it
    sends them in once, ahead of time. When the generator wakes it publishes every staged
    message due in one ``publish_staged`` (at most ``burst``; a driver with ``burst`` 1 is
    driven one message at a time, through ``publish``): no Python object is made per
    message. Before ``connect`` the target sets ``on_receipts``, which the driver then calls
    instead of ``on_receipt`` with the ids of all the messages one read brought (one
    receipt time for them); a driver whose ``on_receipts`` is set back to None calls
    ``on_receipt`` with each payload.
    """

    burst: int
    on_receipts: OnReceipts | None

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Messages to publish after those staged before, in order: ``payload(msg_ids[i],
        keys[i], sizes[i])`` each (columns int64, int64, int32). Nothing is sent yet."""
        ...

    async def publish_staged(self, count: int) -> int | None:
        """Publish the next ``count`` staged messages (as ``publish`` each). None when it
        published them all; else how many it published (fewer, perhaps 0): it had to wait
        (for room in a window or a queue, for its socket to drain) and returned after the
        wait, and the target stamps the rest with the time it hands them over again, so the
        wait shows as their send lag (a send time stamped before it would put it in the
        transport, and a receipt could come before a later-stamped send)."""
        ...


@runtime_checkable
class BulkAckDriver(Protocol):
    """A driver with acks that can hand them over in bulk: before ``connect`` the target
    sets ``on_acks``, which the driver then calls instead of ``on_ack`` with the acks one
    read brought (one ack time for them); left None, the driver calls ``on_ack``."""

    on_acks: OnAcks | None


@runtime_checkable
class CountsHandedOver(Protocol):
    """A driver that counts the messages it has taken so far, through ``publish`` and
    ``publish_staged``: sent, buffered to be sent, or dropped. When an interruption cancels
    a publish in a wait (for room in a window or queue, for a socket to drain), the target
    keeps a send time only on the messages the driver took: the rest were never sent. A
    driver without the count keeps every send time the target stamped (a message waited on
    then shows as lost, or pending). Every built-in driver counts."""

    handed_over: int


@runtime_checkable
class CountsLostPublishes(Protocol):
    """A driver that counts the publishes it knows will never arrive, so the target's drain
    stops waiting for them. ``lost_publishes``: never reached the broker (dropped while a
    connection was down, at a high-water mark) or refused by it (an error ack): neither an
    ack nor a receipt will come. ``unacked_publishes``: may have reached the broker, but
    their acks will not come (the connection they were due on failed with them unanswered).
    Both only grow during a run."""

    lost_publishes: int
    unacked_publishes: int


@runtime_checkable
class TimedReceiptsDriver(Protocol):
    """A driver whose consumers may stamp their receipts themselves, elsewhere (consumer
    processes): before ``connect`` the target sets ``on_timed_receipts``; receipts then
    arrive later than they happened. ``receipts_through`` says how far they have all come:
    every receipt stamped before that time (CLOCK_MONOTONIC ns) has been handed over, so the
    target may write the receipts before it in their final order. None: no such consumer."""

    on_timed_receipts: OnTimedReceipts | None

    def receipts_through(self) -> int | None: ...


# --- what the nemesis and the target may do with a driver ------------------------------------


@runtime_checkable
class HasServers(Protocol):
    """A driver that starts servers of its own (``ManagedServer``) when ``live.url`` is not
    set: the process faults (pause, crash, restart) act on them, and start them again on their
    port and data. ``server_names(spec)``: the servers a run with ``spec`` starts (none with
    ``url``), known before any starts; ``servers``: those started; ``server_url(server)``: where
    a client reaches one (what its ``server_start`` event says)."""

    servers: list[ManagedServer]

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]: ...

    def server_url(self, server: ManagedServer) -> str: ...


@runtime_checkable
class LeadsStream(Protocol):
    """A replicated stream with a leader, which a crash or a pause may name (``node =
    "leader"``), and followers a pause may name (``node = "followers"``): ``elects_leader(spec)``
    whether a run with ``spec`` has one on servers msgstorm starts; ``stream_leader()`` the
    name of the server leading it now, ``stream_followers()`` those holding its other replicas."""

    @staticmethod
    def elects_leader(spec: LiveSpec) -> bool: ...

    async def stream_leader(self) -> str: ...

    async def stream_followers(self) -> list[str]: ...


@runtime_checkable
class HasRouteLinks(Protocol):
    """A cluster whose servers reach each other through the fault proxy, so a partition or a
    bridge can cut their routes: ``proxy_routes`` is set before ``start_servers``, which then
    names each route's proxy listener in ``route_links`` ({link: (its port, the cluster port
    it leads to)}). ``has_routes(spec)``: a run with ``spec`` starts such a cluster."""

    proxy_routes: bool
    route_links: dict[str, tuple[int, int]]

    @staticmethod
    def has_routes(spec: LiveSpec) -> bool: ...


@runtime_checkable
class HoldsValidatorKeys(Protocol):
    """A validator network whose validators' keys msgstorm made: ``second_signer(name)``
    makes a second node to sign with validator ``name``'s key (a double signer), for the
    caller to spawn; ``stop_second_signer(name)`` kills it. ``validator_names(spec)``: the
    validators a run with ``spec`` starts."""

    @staticmethod
    def validator_names(spec: LiveSpec) -> list[str]: ...

    def second_signer(self, name: str) -> ManagedServer: ...

    def stop_second_signer(self, name: str) -> ManagedServer | None: ...


@runtime_checkable
class ReadsNodes(Protocol):
    """A cluster each of whose servers' own copy of the stream can be read after the run
    (``read_nodes`` set before ``connect``; ``read_back_nodes``: {server: payloads}, None
    when it reads none): per-node divergence under faults."""

    read_nodes: bool

    async def read_back_nodes(self) -> dict[str, StoredCopy] | None: ...


@runtime_checkable
class RoutesClients(Protocol):
    """A driver whose clients can go through the fault proxy (toxics): ``client_routes`` gives
    the server URLs (with host and port) each role's clients connect to ("publisher",
    "consumers"), and ``route_clients`` has them connect to these instead (called before
    ``connect``). ``client_routing_problem(spec)``: why a run with ``spec`` cannot (a client
    library the proxy does not see), None when it can."""

    @staticmethod
    def client_routing_problem(spec: LiveSpec) -> str | None: ...

    def client_routes(self) -> dict[str, list[str]]: ...

    def route_clients(self, routes: dict[str, list[str]]) -> None: ...


@runtime_checkable
class SignsMessages(Protocol):
    """A driver whose publisher signs every message and whose consumers verify each one
    (``[security]``, ``live/signing.py``): the target calls ``authenticate`` before
    ``connect``. ``signing_problem(spec)``: why a run with ``spec`` cannot sign (a client or
    process layout the signing does not cover), or None. ``refused()``: per consumer, the
    payloads it refused so far, ``(tampered, replayed)``."""

    @staticmethod
    def signing_problem(spec: LiveSpec) -> str | None: ...

    def authenticate(self, scheme: str, chain_id: int, seed: int) -> None: ...

    def refused(self) -> list[tuple[int, int]]: ...


@runtime_checkable
class AnnouncesMaxPayload(Protocol):
    """A server that says the largest message it takes (NATS's INFO ``max_payload``; None
    before connecting): the target refuses a larger agent size before anything is sent."""

    @property
    def max_payload(self) -> int | None: ...


class ChildProcess(Protocol):
    """A process msgstorm started beside itself (a consumer or generator process)."""

    name: str

    @property
    def process(self) -> subprocess.Popen[bytes] | None: ...


@runtime_checkable
class HasConsumerProcesses(Protocol):
    """Consumers in processes of their own, which the target samples and checks are gone."""

    consumer_processes: Sequence[ChildProcess]


@runtime_checkable
class RunsInProcesses(Protocol):
    """How many processes the driver's clients run in (the generator's and its consumers')."""

    @property
    def processes(self) -> int: ...


@runtime_checkable
class FeedsGeneratorProcesses(Protocol):
    """A broker that generator processes publish to beside this one (``live/generator_process.py``):
    ``generator_processes(spec)`` how many processes send (1: this one alone), ``url`` where
    they connect once the servers are up."""

    url: str | None

    @staticmethod
    def generator_processes(spec: LiveSpec) -> int: ...


@dataclass(frozen=True)
class DriverCapabilities:
    """What the live target may ask of one driver beyond ``Driver``, looked up once a run
    (``of``) into named, typed fields, each None where the driver lacks it: the target
    reads a field where it would otherwise probe the driver with ``isinstance``. Three
    groups, one a concern:

    - the data path, how messages and what comes back go in bulk: ``burst``
      (``BurstDriver``), ``bulk_acks`` (``BulkAckDriver``), ``timed_receipts``
      (``TimedReceiptsDriver``), ``handed_over`` (``CountsHandedOver``), ``lost``
      (``CountsLostPublishes``);
    - the processes it starts: ``servers`` (``HasServers``), ``consumer_processes``
      (``HasConsumerProcesses``), ``processes`` (``RunsInProcesses``), ``generators``
      (``FeedsGeneratorProcesses``);
    - what its clients and servers say or do: ``signs`` (``SignsMessages``),
      ``max_payload`` (``AnnouncesMaxPayload``), ``reads_nodes`` (``ReadsNodes``).

    What faults act through (``LeadsStream``, ``HasRouteLinks``, ``RoutesClients``, and
    ``HasServers``) the nemesis asks of its driver itself, declared per class
    (``declares``), since a scenario is checked against them before any driver exists."""

    burst: BurstDriver | None
    bulk_acks: BulkAckDriver | None
    timed_receipts: TimedReceiptsDriver | None
    handed_over: CountsHandedOver | None
    lost: CountsLostPublishes | None
    servers: HasServers | None
    consumer_processes: HasConsumerProcesses | None
    processes: RunsInProcesses | None
    generators: FeedsGeneratorProcesses | None
    signs: SignsMessages | None
    max_payload: AnnouncesMaxPayload | None
    reads_nodes: ReadsNodes | None

    @classmethod
    def of(cls, driver: object) -> DriverCapabilities:
        return cls(
            burst=driver if isinstance(driver, BurstDriver) else None,
            bulk_acks=driver if isinstance(driver, BulkAckDriver) else None,
            timed_receipts=driver if isinstance(driver, TimedReceiptsDriver) else None,
            handed_over=driver if isinstance(driver, CountsHandedOver) else None,
            lost=driver if isinstance(driver, CountsLostPublishes) else None,
            servers=driver if isinstance(driver, HasServers) else None,
            consumer_processes=driver if isinstance(driver, HasConsumerProcesses) else None,
            processes=driver if isinstance(driver, RunsInProcesses) else None,
            generators=driver if isinstance(driver, FeedsGeneratorProcesses) else None,
            signs=driver if isinstance(driver, SignsMessages) else None,
            max_payload=driver if isinstance(driver, AnnouncesMaxPayload) else None,
            reads_nodes=driver if isinstance(driver, ReadsNodes) else None)


# Each capability, what it lets msgstorm do (said when a driver lacks one a fault needs).
CAPABILITIES: dict[type, str] = {
    HasServers: "act on server processes of its own",
    LeadsStream: "name the leader and the followers of a replicated stream",
    HasRouteLinks: "cut the routes of a cluster through the fault proxy",
    HoldsValidatorKeys: "run a second signer with a validator's key",
    ReadsNodes: "read each server's own copy of the stream",
    RoutesClients: "route its clients through the fault proxy",
    AnnouncesMaxPayload: "say the largest message its server takes",
    HasConsumerProcesses: "run consumers in processes of their own",
    RunsInProcesses: "say how many processes its clients run in",
    FeedsGeneratorProcesses: "take publishes from generator processes",
}


def declares(driver: type, capability: type) -> bool:
    """Whether a driver class declares ``capability`` (one of ``CAPABILITIES``: it subclasses
    it). Asked of a class, before any instance exists (a scenario's validation)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"{capability.__name__} is not a driver capability; capabilities are "
                         f"{[c.__name__ for c in CAPABILITIES]}")
    return capability in driver.__mro__


class Outages:
    """One ``disconnected`` and one ``reconnected`` event an outage, however long it lasts.

    A client library that retries every 100 ms reports each failed attempt as an error: a
    68 s outage would be 600 ``client_error`` events. Here the attempts while a client is
    down are counted into its outage: ``reconnected`` carries ``attempts`` and the last
    error; an outage still open when the run closes ends in one ``client_error`` saying so
    (with the same detail). An error of a client that is connected is reported as it comes.
    """

    def __init__(self, on_event: OnEvent) -> None:
        self.on_event = on_event
        self._open: dict[str, list[Any]] = {}  # client -> [attempts, last error]

    def down(self, client: str, detail: dict[str, Any] | None = None) -> None:
        if client not in self._open:
            self._open[client] = [0, None]
            self.on_event(EventKind.DISCONNECTED, {**(detail or {}), "client": client})

    def error(self, client: str, error: str) -> None:
        outage = self._open.get(client)
        if outage is None:
            self.on_event(EventKind.CLIENT_ERROR, {"client": client, "error": error})
        else:
            outage[0] += 1
            outage[1] = error

    def _said(self, client: str) -> dict[str, Any]:
        attempts, last = self._open.pop(client)
        return {"client": client, "attempts": attempts, **({"last_error": last} if last is not None else {})}

    def up(self, client: str, detail: dict[str, Any] | None = None) -> None:
        if client in self._open:
            self.on_event(EventKind.RECONNECTED, {**self._said(client), **(detail or {})})

    def close(self) -> None:
        """Report the outages the run's end found open."""
        for client in list(self._open):
            self.on_event(EventKind.CLIENT_ERROR, {**self._said(client), "error": "still disconnected at the run's end"})
