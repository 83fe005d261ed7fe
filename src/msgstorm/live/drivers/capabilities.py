"""What a live driver can do beyond ``Driver``: six named capabilities, declared in one place.

Place in the pipeline: beside ``live/drivers/base.py`` (the ``Driver`` interface). A driver
class says what it has once, in its ``capabilities`` class attribute (a ``Capabilities``);
everything else reads that record: the scenario's checks before anything starts (the class
is enough: ``capabilities_of``, ``declares``), the live target (``live/sending.py``,
``live/target.py``) and the nemesis with its fault kinds (``live/faults/``) at run time,
through ``DriverCapabilities.of``, a typed view of the driver looked up once a run. Nothing
probes a driver with ``isinstance`` or ``getattr``; a test ties each declaration to what the
driver's instances are (``tests/test_live_capabilities.py``).

The capabilities, one a role (``docs/live.md`` has the table of which driver has which):

- ``Sending``: how the generator hands messages over and learns their fate. Its parts:
  ``bursts`` (many messages at once, receipts in bulk: ``Bursts``), ``bulk_acks``
  (``BulkAcks``), ``timed_receipts`` (receipts stamped in consumer processes:
  ``TimedReceipts``), ``signing`` (``Signing``), ``max_payload`` (``MaxPayload``).
- ``Servers``: the servers msgstorm starts and the links to them, what faults act on
  (``OwnServers``: pause, crash, restart). Its parts: ``leader`` (a replicated stream's
  leader and followers: ``StreamLeader``), ``route_links`` (a cluster's routes through the
  fault proxy: ``RouteLinks``), ``node_copies`` (each server's copy read back:
  ``NodeCopies``), ``client_routes`` (clients through the fault proxy, for toxics:
  ``ClientRoutes``), ``validator_keys`` (a second signer with a validator's key:
  ``ValidatorKeys``).
- ``Processes``: clients in processes of their own (consumer and generator processes).
- ``Accounting``: counts of the messages taken and of the publishes that will never arrive.
- ``Checks``: the target class's own checks of a scenario (``scenario/refs.py``'s
  ``ChecksScenario`` and ``RunsMarket``: ``scenario``, ``market``).
- ``Sequencer``: a rollup's sequencer in front of the node, which a sequencer outage turns
  down and up (``FrontedSequencer``: the live rollup's, ``live/chain/forced.py``).

Beside the record, two declarations of where a target is and how its runs spread, read from
the class as the record is (``url_schemes_of``, ``generator_names_of``; none when it declares
none): ``url_schemes``, the schemes of a server's URL that pick it on the command line
(``--target nats://...``, the scenario layer's ``target_option.py``), each with the scheme
its client connects with; ``generator_names(live, index)``, the ``[live]`` fields generator
``index`` of a run spread over a Ray cluster names on its own (``scenario/generators.py``; a
target without it is not spread).

A fault kind names the parts it needs (``Part``: ``SERVERS``, ``LEADER``, ``ROUTE_LINKS``,
``CLIENT_ROUTES``, ``VALIDATOR_KEYS``, ``SEQUENCER``); one its driver does not declare is refused before
anything starts, naming the capability and the part.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import numpy as np

from msgstorm.live.drivers.base import Callbacks, DriverState
from msgstorm.live.payload import StoredCopy
from msgstorm.live.servers import ManagedServer
from msgstorm.scenario.faults import SequencerOutageFault
from msgstorm.scenario.live import LiveSpec, OwnNames
from msgstorm.scenario.refs import ChecksScenario, RunsMarket

__all__ = [
    "CLIENT_ROUTES", "LEADER", "PARTS", "ROUTE_LINKS", "SERVERS", "VALIDATOR_KEYS", "Accounting", "BulkAcks",
    "Bursts", "Capabilities", "Checks", "FrontedSequencer", "SEQUENCER", "SequencerGate", "ChildProcess", "ClientRoutes", "DriverCapabilities", "MaxPayload",
    "NodeCopies", "OwnServers", "Part", "Processes", "RouteLinks", "Sending", "Servers", "Signing", "StreamLeader",
    "GeneratorNames", "TimedReceipts", "ValidatorKeys", "callbacks_for", "capabilities_of",
    "client_routing_problem", "declares", "elects_leader", "generator_names_of", "url_schemes_of",
    "has_routes", "server_names", "validator_names"]


# --- Sending: how the generator hands messages over and learns their fate -----------------------


@runtime_checkable
class Bursts(Protocol):
    """Many messages at once, and receipts handed over in bulk.

    The target ``stage``s the messages it will send next, a few thousand at a time, as
    columns: the driver lays out their payloads (``live/payload.py``) and whatever it
    sends them in once, ahead of time. When the generator wakes it publishes every staged
    message due in one ``publish_staged`` (at most ``burst``; a driver with ``burst`` 1 is
    driven one message at a time, through ``publish``): no Python object is made per
    message. ``connect`` gives it ``Callbacks.on_receipts``, which it calls instead of
    ``on_receipt`` with the ids of all the messages one read brought (one receipt time for
    them); given None, it calls ``on_receipt`` with each payload.
    """

    burst: int

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
class BulkAcks(Protocol):
    """Acks handed over in bulk: ``connect`` gives the driver ``Callbacks.on_acks``, which it
    calls instead of ``on_ack`` with the acks one read brought (one ack time for them); given
    None, it calls ``on_ack``. Nothing beside ``Driver`` to have: what it takes is given."""


@runtime_checkable
class TimedReceipts(Protocol):
    """Consumers that may stamp their receipts themselves, elsewhere (consumer processes):
    ``connect`` gives the driver ``Callbacks.on_timed_receipts``, which those hand them to;
    receipts then arrive later than they happened. ``receipts_through`` says how far they have all come: every receipt
    stamped before that time (CLOCK_MONOTONIC ns) has been handed over, so the target may
    write the receipts before it in their final order. None: no such consumer."""

    def receipts_through(self) -> int | None: ...


@runtime_checkable
class Signing(Protocol):
    """A publisher that signs every message and consumers that verify each one
    (``[security]``, ``live/signing.py``): the target calls ``authenticate`` before
    ``connect``. ``signing_problem(spec)``: why a run with ``spec`` cannot sign (a client or
    process layout the signing does not cover), or None. ``refused()``: per consumer, the
    payloads it refused so far, ``(tampered, replayed)``."""

    @staticmethod
    def signing_problem(spec: LiveSpec) -> str | None: ...

    def authenticate(self, scheme: str, chain_id: int, seed: int) -> None: ...

    def refused(self) -> list[tuple[int, int]]: ...


@runtime_checkable
class MaxPayload(Protocol):
    """A server that says the largest message it takes (NATS's INFO ``max_payload``; None
    before connecting): the target refuses a larger agent size before anything is sent."""

    @property
    def max_payload(self) -> int | None: ...


@dataclass(frozen=True)
class Sending:
    """How the generator hands messages over and learns their fate: the parts a driver has."""

    bursts: bool = False  # ``Bursts``
    bulk_acks: bool = False  # ``BulkAcks``
    timed_receipts: bool = False  # ``TimedReceipts``
    signing: bool = False  # ``Signing``
    max_payload: bool = False  # ``MaxPayload``


# --- Servers: what msgstorm starts, and what faults act on --------------------------------------


@runtime_checkable
class OwnServers(Protocol):
    """Servers of its own (``ManagedServer``), started when ``live.url`` is not set: the
    process faults (pause, crash, restart) act on them, and start them again on their port
    and data. ``server_names(spec)``: the servers a run with ``spec`` starts (none with
    ``url``), known before any starts; ``servers``: those started; ``server_url(server)``:
    where a client reaches one (what its ``server_start`` event says)."""

    @property
    def servers(self) -> list[ManagedServer]: ...

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]: ...

    def server_url(self, server: ManagedServer) -> str: ...


@runtime_checkable
class StreamLeader(Protocol):
    """A replicated stream with a leader, which a crash or a pause may name (``node =
    "leader"``), and followers a pause may name (``node = "followers"``): ``elects_leader(spec)``
    whether a run with ``spec`` has one on servers msgstorm starts; ``stream_leader()`` the
    name of the server leading it now, ``stream_followers()`` those holding its other replicas."""

    @staticmethod
    def elects_leader(spec: LiveSpec) -> bool: ...

    async def stream_leader(self) -> str: ...

    async def stream_followers(self) -> list[str]: ...


@runtime_checkable
class RouteLinks(Protocol):
    """A cluster whose servers reach each other through the fault proxy, so a partition or a
    bridge can cut their routes: ``proxy_routes`` is set before ``start_servers``, which then
    names each route's proxy listener in ``route_links`` ({link: (its port, the cluster port
    it leads to)}). ``has_routes(spec)``: a run with ``spec`` starts such a cluster."""

    proxy_routes: bool
    route_links: dict[str, tuple[int, int]]

    @staticmethod
    def has_routes(spec: LiveSpec) -> bool: ...


@runtime_checkable
class NodeCopies(Protocol):
    """A cluster each of whose servers' own copy of the stream can be read after the run
    (``read_nodes`` set before ``connect``; ``read_back_nodes``: {server: payloads}, None
    when it reads none): per-node divergence under faults."""

    read_nodes: bool

    async def read_back_nodes(self) -> dict[str, StoredCopy] | None: ...


@runtime_checkable
class ClientRoutes(Protocol):
    """Clients that can go through the fault proxy (toxics): ``client_routes`` gives the
    server URLs (with host and port) each role's clients connect to ("publisher",
    "consumers"), and ``route_clients`` has them connect to these instead (called before
    ``connect``). ``client_routing_problem(spec)``: why a run with ``spec`` cannot (a client
    library the proxy does not see), None when it can."""

    @staticmethod
    def client_routing_problem(spec: LiveSpec) -> str | None: ...

    def client_routes(self) -> dict[str, list[str]]: ...

    def route_clients(self, routes: dict[str, list[str]]) -> None: ...


@runtime_checkable
class ValidatorKeys(Protocol):
    """A validator network whose validators' keys msgstorm made: ``second_signer(name)``
    makes a second node to sign with validator ``name``'s key (a double signer), for the
    caller to spawn; ``stop_second_signer(name)`` kills it. ``validator_names(spec)``: the
    validators a run with ``spec`` starts."""

    @staticmethod
    def validator_names(spec: LiveSpec) -> list[str]: ...

    def second_signer(self, name: str) -> ManagedServer: ...

    def stop_second_signer(self, name: str) -> ManagedServer | None: ...


@dataclass(frozen=True)
class Servers:
    """Servers msgstorm starts (``OwnServers``), and which of these parts the driver has
    beside them."""

    leader: bool = False  # ``StreamLeader``
    route_links: bool = False  # ``RouteLinks``
    node_copies: bool = False  # ``NodeCopies``
    client_routes: bool = False  # ``ClientRoutes``
    validator_keys: bool = False  # ``ValidatorKeys``


# --- Sequencer: a rollup's sequencer in front of the node --------------------------------------


class SequencerGate(Protocol):
    """The sequencer in front of the node: ``go_down`` stops it (the messages of the outage's
    ``via_l1`` kinds go through L1, forced in after ``window_ns``), ``up`` starts it again and
    sends its backlog: (the time it returned, on the run's clock; how many it sent)."""

    def go_down(self, spec: SequencerOutageFault, window_ns: int) -> None: ...

    async def up(self) -> tuple[int, int]: ...


@runtime_checkable
class FrontedSequencer(Protocol):
    """A target whose node sits behind a rollup's sequencer: ``sequencer_front()`` is that
    sequencer during a run that has one (``[rollup]``), else None."""

    def sequencer_front(self) -> SequencerGate | None: ...


# --- Processes and Accounting -------------------------------------------------------------------


@runtime_checkable
class ChildProcess(Protocol):
    """A process msgstorm started beside itself (a consumer or generator process)."""

    name: str

    @property
    def process(self) -> subprocess.Popen[bytes] | None: ...


@runtime_checkable
class Processes(Protocol):
    """Clients in processes of their own: ``consumer_processes`` (which the target samples and
    checks are gone), ``processes`` (how many the generator's and the consumers' clients run
    in), and generator processes publishing beside this one (``live/generator_process.py``):
    ``generator_processes(spec)`` how many processes send (1: this one alone), ``url`` where
    they connect once the servers are up."""

    consumer_processes: Sequence[ChildProcess]
    url: str | None

    @property
    def processes(self) -> int: ...

    @staticmethod
    def generator_processes(spec: LiveSpec) -> int: ...


@runtime_checkable
class Accounting(Protocol):
    """What the driver knows of the messages it was given, counted in its ``state`` (the
    ``DriverState`` every broker driver keeps). ``handed_over``: those it has taken
    so far, through ``publish`` and ``publish_staged`` (sent, buffered, or dropped): when an
    interruption cancels a publish in a wait, the target keeps a send time only on those (a
    driver without the count keeps every send time the target stamped). ``lost_publishes``:
    never reached the broker (dropped while a connection was down, at a high-water mark) or
    refused by it (an error ack): neither an ack nor a receipt will come, so the drain stops
    waiting for them. ``unacked_publishes``: may have reached the broker, but their acks will
    not come (the connection they were due on failed). The counts only grow during a run."""

    state: DriverState


@dataclass(frozen=True)
class Checks:
    """The target class's own checks of a scenario, run at validation (``scenario/refs.py``)."""

    scenario: bool = False  # ``ChecksScenario``: what of a scenario it cannot do
    market: bool = False  # ``RunsMarket``: it runs ``[market]``'s agents (others refuse the section)


@dataclass(frozen=True)
class Capabilities:
    """What a driver class can do beyond ``Driver``: its ``capabilities`` class attribute,
    the one place it is said. A capability it lacks is None (``servers``) or False."""

    sending: Sending = Sending()
    servers: Servers | None = None
    processes: bool = False  # ``Processes``
    accounting: bool = False  # ``Accounting``
    checks: Checks = Checks()
    sequencer: bool = False  # ``FrontedSequencer``


_NOTHING = Capabilities()


def capabilities_of(driver: type) -> Capabilities:
    """What the driver class ``driver`` declares (nothing when it declares no ``capabilities``:
    a driver written for ``Driver`` alone)."""
    declared = next((vars(klass)["capabilities"] for klass in driver.__mro__ if "capabilities" in vars(klass)),
                    _NOTHING)
    if not isinstance(declared, Capabilities):
        raise TypeError(f"{driver.__name__}.capabilities is a {type(declared).__name__}; a driver declares what it "
                        "can do with a Capabilities (live/drivers/capabilities.py)")
    return declared


# Generator ``index``'s own ``[live]`` fields in a distributed run (a driver's section: the
# fields of it that change).
GeneratorNames = Callable[[LiveSpec, int], OwnNames]


def _declared(driver: type, name: str) -> object:
    """What the class ``driver`` (or a base) declares as ``name``, looked up as
    ``capabilities_of`` looks up the record; None when none does."""
    value = next((vars(klass)[name] for klass in driver.__mro__ if name in vars(klass)), None)
    return value.__func__ if isinstance(value, staticmethod) else value


def url_schemes_of(driver: type) -> dict[str, str]:
    """The URL schemes the target class ``driver`` declares (``url_schemes``: scheme -> the
    scheme its client connects with); none when it declares none."""
    declared = _declared(driver, "url_schemes")
    return dict(cast("Mapping[str, str]", declared)) if declared is not None else {}


def generator_names_of(driver: type) -> GeneratorNames | None:
    """The target class ``driver``'s ``generator_names`` (its own names in a distributed
    run); None when it declares none: its runs are not spread over generators."""
    return cast("GeneratorNames | None", _declared(driver, "generator_names"))


@dataclass(frozen=True)
class Part:
    """One thing a capability lets msgstorm do, which a fault kind may need: capability
    ``capability`` (a field of ``Capabilities``), and ``part`` of it (a field of its record;
    None: the capability itself). ``does`` is what it lets msgstorm do (said when a driver
    lacks it)."""

    capability: str
    part: str | None
    does: str

    def __str__(self) -> str:
        return self.capability.capitalize() + (f".{self.part}" if self.part is not None else "")

    def held_in(self, declared: Capabilities) -> bool:
        role = getattr(declared, self.capability)  # a field of Capabilities, named at the Part's making
        if self.part is None:
            return bool(role)
        return role is not None and bool(getattr(role, self.part))


SERVERS = Part("servers", None, "act on server processes of its own")
LEADER = Part("servers", "leader", "name the leader and the followers of a replicated stream")
ROUTE_LINKS = Part("servers", "route_links", "cut the routes of a cluster through the fault proxy")
CLIENT_ROUTES = Part("servers", "client_routes", "route its clients through the fault proxy")
VALIDATOR_KEYS = Part("servers", "validator_keys", "run a second signer with a validator's key")
SEQUENCER = Part("sequencer", None, "turn a rollup's sequencer down and up")

# Every part a driver may declare, with the Protocol an instance of a driver declaring it
# satisfies (what a test checks of each built-in driver).
PARTS: dict[Part, type] = {
    Part("sending", "bursts", "take many messages at once"): Bursts,
    Part("sending", "bulk_acks", "hand acks over in bulk"): BulkAcks,
    Part("sending", "timed_receipts", "take receipts stamped in consumer processes"): TimedReceipts,
    Part("sending", "signing", "sign and verify every message"): Signing,
    Part("sending", "max_payload", "say the largest message its server takes"): MaxPayload,
    SERVERS: OwnServers,
    LEADER: StreamLeader,
    ROUTE_LINKS: RouteLinks,
    Part("servers", "node_copies", "read each server's own copy of the stream"): NodeCopies,
    CLIENT_ROUTES: ClientRoutes,
    VALIDATOR_KEYS: ValidatorKeys,
    Part("processes", None, "run its clients in processes of their own"): Processes,
    Part("accounting", None, "count what it took and what will never arrive"): Accounting,
    Part("checks", "scenario", "check a scenario itself"): ChecksScenario,
    Part("checks", "market", "run [market]'s agents"): RunsMarket,
    SEQUENCER: FrontedSequencer,
}


def callbacks_for(driver: type, callbacks: Callbacks) -> Callbacks:
    """``callbacks`` as the driver class ``driver`` is given them at ``connect``: each bulk
    one only where it declares the part that takes it (``Sending``), else None."""
    sending = capabilities_of(driver).sending
    return Callbacks(callbacks.on_receipt, callbacks.on_ack,
                     on_receipts=callbacks.on_receipts if sending.bursts else None,
                     on_acks=callbacks.on_acks if sending.bulk_acks else None,
                     on_timed_receipts=callbacks.on_timed_receipts if sending.timed_receipts else None)


def declares(driver: type, part: Part) -> bool:
    """Whether the driver class ``driver`` declares ``part``. Asked of a class, before any
    instance exists (a scenario's validation)."""
    if part not in PARTS:
        raise ValueError(f"{part!r} is not a part of a driver capability; the parts are {[str(p) for p in PARTS]}")
    return part.held_in(capabilities_of(driver))


# --- what a driver class says of a run before anything starts (a scenario's validation) --------
# Each asks the class only when it declares the part: what one not declaring it would say.


def server_names(driver: type, spec: LiveSpec) -> list[str]:
    """The servers a run with ``spec`` starts (``Servers``; none without it)."""
    return list(cast(type[OwnServers], driver).server_names(spec)) if declares(driver, SERVERS) else []


def elects_leader(driver: type, spec: LiveSpec) -> bool:
    """Whether a run with ``spec`` keeps a replicated stream with a leader (``Servers.leader``)."""
    return declares(driver, LEADER) and cast(type[StreamLeader], driver).elects_leader(spec)


def has_routes(driver: type, spec: LiveSpec) -> bool:
    """Whether a run with ``spec`` starts a cluster whose routes go through the fault proxy
    (``Servers.route_links``)."""
    return declares(driver, ROUTE_LINKS) and cast(type[RouteLinks], driver).has_routes(spec)


def validator_names(driver: type, spec: LiveSpec) -> list[str]:
    """The validators a run with ``spec`` starts (``Servers.validator_keys``; none without it)."""
    return list(cast(type[ValidatorKeys], driver).validator_names(spec)) if declares(driver, VALIDATOR_KEYS) else []


def client_routing_problem(driver: type, spec: LiveSpec) -> str | None:
    """Why a run with ``spec`` cannot route its clients through the fault proxy, or None
    (``Servers.client_routes``; a driver without it: it has no such clients)."""
    if not declares(driver, CLIENT_ROUTES):
        return f"{driver.__name__} does not declare {CLIENT_ROUTES}"
    return cast(type[ClientRoutes], driver).client_routing_problem(spec)


@dataclass(frozen=True)
class DriverCapabilities:
    """A driver instance seen through what its class declares (``of``, once a run): one typed
    field a part, the driver itself where it declares the part, else None. The live target
    and the nemesis read these fields; the declaration is the only thing asked."""

    bursts: Bursts | None
    bulk_acks: BulkAcks | None
    timed_receipts: TimedReceipts | None
    signing: Signing | None
    max_payload: MaxPayload | None
    servers: OwnServers | None
    leader: StreamLeader | None
    route_links: RouteLinks | None
    node_copies: NodeCopies | None
    client_routes: ClientRoutes | None
    validator_keys: ValidatorKeys | None
    processes: Processes | None
    accounting: Accounting | None
    sequencer: FrontedSequencer | None

    @classmethod
    def of(cls, driver: object) -> DriverCapabilities:
        declared = capabilities_of(type(driver))
        sending, servers = declared.sending, declared.servers or Servers()
        own = declared.servers is not None
        return cls(
            bursts=cast(Bursts, driver) if sending.bursts else None,
            bulk_acks=driver if sending.bulk_acks else None,  # (nothing to cast: it takes what it is given)
            timed_receipts=cast(TimedReceipts, driver) if sending.timed_receipts else None,
            signing=cast(Signing, driver) if sending.signing else None,
            max_payload=cast(MaxPayload, driver) if sending.max_payload else None,
            servers=cast(OwnServers, driver) if own else None,
            leader=cast(StreamLeader, driver) if own and servers.leader else None,
            route_links=cast(RouteLinks, driver) if own and servers.route_links else None,
            node_copies=cast(NodeCopies, driver) if own and servers.node_copies else None,
            client_routes=cast(ClientRoutes, driver) if own and servers.client_routes else None,
            validator_keys=cast(ValidatorKeys, driver) if own and servers.validator_keys else None,
            processes=cast(Processes, driver) if declared.processes else None,
            accounting=cast(Accounting, driver) if declared.accounting else None,
            sequencer=cast(FrontedSequencer, driver) if declared.sequencer else None)
