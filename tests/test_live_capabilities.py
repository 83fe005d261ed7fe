"""Driver capabilities (``live/drivers/capabilities.py``): which built-in driver declares
which capability and part, what a driver class declares is what its instances are, the
declaration is the only thing asked (a class that has the members but declares nothing has
nothing), a driver gets its callbacks through ``connect`` alone (the bulk ones only where it
declares the part that takes them), and the nemesis acts through the declaration (never a target's name or port): it
applies faults to a driver it has never heard of that declares them, and refuses, naming the
capability, a fault its driver cannot do."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from msgstorm.errors import TargetError
from msgstorm.live.drivers.base import Callbacks, DriverState, OnEvent
from msgstorm.live.drivers.capabilities import (
    PARTS,
    SERVERS,
    Capabilities,
    Checks,
    DriverCapabilities,
    OwnServers,
    Part,
    Sending,
    Servers,
    callbacks_for,
    capabilities_of,
    declares,
)
from msgstorm.live.nemesis import Nemesis
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.runner import run
from msgstorm.scenario import ScenarioError, parse_scenario
from msgstorm.scenario.live import LiveSpec
from msgstorm.scenario.registry import LIVE_DRIVERS, TARGETS
from msgstorm.targets.live import LiveRun

SCENARIO = """
target = "{target}"

[run]
name = "capabilities"
duration = "2s"

[live]
consumers = 1
{live}

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "100/s" }}
size = "64B"
"""

# The capabilities each built-in driver declares, by capability and part (a change here is a
# change of what it can do; docs/live.md has the same table).
DECLARED = {
    "nats": {"Sending.bursts", "Sending.timed_receipts", "Sending.signing", "Sending.max_payload", "Servers",
             "Servers.client_routes", "Processes", "Accounting"},
    "jetstream": {"Sending.bursts", "Sending.bulk_acks", "Sending.max_payload", "Servers", "Servers.leader",
                  "Servers.route_links", "Servers.node_copies", "Servers.client_routes", "Accounting"},
    "redis": {"Sending.bursts", "Sending.bulk_acks", "Servers", "Accounting"},
    "mqtt": {"Sending.bursts", "Sending.bulk_acks", "Servers", "Accounting"},
    "kafka": {"Sending.bursts", "Sending.bulk_acks", "Servers", "Servers.leader", "Accounting"},
    "rabbitmq": {"Sending.bursts", "Sending.bulk_acks", "Servers", "Servers.route_links", "Accounting",
                 "Checks.scenario"},
    "zmq": {"Sending.bursts", "Accounting"},
    "anvil": {"Servers", "Servers.client_routes", "Checks.scenario", "Checks.market", "Sequencer"},
    "cometbft": {"Servers", "Servers.route_links", "Servers.validator_keys", "Checks.scenario"},
}
# The chain targets' nodes are made from the whole scenario (the brokers' drivers from [live]).
_CHAIN = ("anvil", "cometbft")


def _has_members(instance: object, protocol: type) -> bool:
    """Whether ``instance`` has every member ``protocol`` names (read without running a
    property: an anvil node's ``url`` asks for a node not started)."""
    return all(inspect.getattr_static(instance, name, _MISSING) is not _MISSING for name in _members(protocol))


def _members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")} | set(protocol.__annotations__)


_MISSING = object()


def _scenario(target: str, faults: str = "", live: str = "") -> Any:
    return parse_scenario(SCENARIO.format(target=target, live=live) + faults, source="capabilities.toml")


def test_every_registered_driver_has_its_declaration_pinned() -> None:
    # msgstorm's own drivers: a test may register a driver of its own (test_live_audit's nats-cut).
    own = [name for name in TARGETS.names() if isinstance(TARGETS[name], LiveRun)
           and TARGETS[name].driver().__module__.startswith("msgstorm.")]
    assert sorted(DECLARED) == sorted(own)


def test_the_driver_registry_holds_the_brokers_drivers_only() -> None:
    # The EVM node and the validators are targets of their own, each naming the class it drives.
    own = [name for name in LIVE_DRIVERS.names() if LIVE_DRIVERS[name].__module__.startswith("msgstorm.")]
    assert sorted(own) == sorted(set(DECLARED) - set(_CHAIN))
    assert [TARGETS[name].driver().__name__ for name in _CHAIN] == ["AnvilNode", "CometNetwork"]
    assert not set(_CHAIN) & set(LIVE_DRIVERS.names())


@pytest.mark.parametrize("target", sorted(DECLARED))
def test_what_a_driver_declares_is_what_its_instances_are(tmp_path: Path, target: str) -> None:
    driver_class = TARGETS[target].driver()
    scenario = _scenario(target)
    driver = (driver_class(scenario, tmp_path) if target in _CHAIN
              else driver_class(scenario.live, tmp_path, lambda kind, detail: None))
    declared = {str(part) for part in PARTS if declares(driver_class, part)}
    assert declared == DECLARED[target]
    can = DriverCapabilities.of(driver)
    for part, protocol in PARTS.items():
        if _members(protocol):  # (``BulkAcks`` has none: it takes what ``connect`` gives it)
            assert _has_members(driver, protocol) == declares(driver_class, part), f"{target}: {part}"
        if part.capability != "checks":  # the view holds the driver exactly where it declares the part
            assert (getattr(can, part.part or part.capability) is driver) == declares(driver_class, part)
        if not declares(driver_class, part):
            continue
        # Every method and static method the part names is the driver's own, not the
        # Protocol's empty body.
        for name, member in vars(protocol).items():
            if callable(member) or isinstance(member, staticmethod | property):
                if name.startswith("_"):
                    continue
                # (None: an attribute each instance sets, such as ``servers``)
                assert inspect.getattr_static(driver_class, name, None) is not member, f"{target}: {part}.{name}"


def test_every_field_of_a_capability_record_is_a_part_a_driver_can_declare() -> None:
    assert sorted(str(part) for part in PARTS) == sorted([
        "Sending.bursts", "Sending.bulk_acks", "Sending.timed_receipts", "Sending.signing", "Sending.max_payload",
        "Servers", "Servers.leader", "Servers.route_links", "Servers.node_copies", "Servers.client_routes",
        "Servers.validator_keys", "Processes", "Accounting", "Checks.scenario", "Checks.market", "Sequencer"])
    records = {"sending": Sending, "servers": Servers, "checks": Checks}
    assert sorted(field.name for field in fields(Capabilities)) == sorted(
        [*records, "processes", "accounting", "sequencer"])
    for capability, record in records.items():
        assert {part.part for part in PARTS if part.capability == capability} - {None} == \
            {field.name for field in fields(record)}
    # Each part is held exactly when its flag is set: one record a part, that part alone.
    for part in PARTS:
        alone = Capabilities(**{part.capability: records[part.capability](**{part.part: True})}
                             if part.part is not None else {part.capability: Servers() if part is SERVERS else True})
        assert [other for other in PARTS if other.held_in(alone)] == (
            [part] if part.part is None or part.capability != "servers" else [SERVERS, part]), str(part)


def test_the_declaration_is_the_only_thing_asked() -> None:
    # A class with every member of Servers but no declaration has none of it: nothing is
    # probed for structurally.
    class Undeclared:
        servers: list[ManagedServer] = []  # noqa: RUF012 - a class attribute is all it needs here

        @staticmethod
        def server_names(spec: LiveSpec) -> list[str]:
            return []

        def server_url(self, server: ManagedServer) -> str:
            return ""

    assert _has_members(Undeclared(), OwnServers)
    assert capabilities_of(Undeclared) == Capabilities()
    assert not declares(Undeclared, SERVERS)
    assert DriverCapabilities.of(Undeclared()).servers is None
    # The record is read from the class and from its bases (a subclass inherits what it declares).
    assert capabilities_of(type("Sub", (_HttpServerDriver,), {})) == Capabilities(servers=Servers())


def test_declaring_is_asked_of_capability_parts_only() -> None:
    with pytest.raises(ValueError, match="is not a part of a driver capability"):
        declares(LIVE_DRIVERS["nats"], Part("servers", "leaders", "lead"))

    class Misdeclared:
        capabilities = {"servers"}

    with pytest.raises(TypeError, match="Misdeclared.capabilities is a set; a driver declares what it can do "
                                        "with a Capabilities"):
        capabilities_of(Misdeclared)


class _LoopbackDriver:
    """A driver msgstorm does not ship, written against ``Driver`` alone: every message
    published is received at once by each consumer and acked, in memory. Its ``__slots__``
    hold what it sets itself, so nothing can be set on it from outside: the callbacks it
    uses are those ``connect`` gave it (kept in its ``DriverState``). At ``close`` it writes
    what it was given to ``RUN_DIR/given.json`` (the run records in a process of its own)."""

    __slots__ = ("consumers", "given", "run_dir", "state")
    fanout = True
    acks = True
    capabilities = Capabilities(accounting=True)

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        self.state = DriverState(on_event)
        self.given: list[Callbacks] = []
        self.consumers = spec.consumers
        self.run_dir = run_dir

    def start_servers(self) -> list[dict[str, Any]]:
        return []

    def stop_servers(self) -> None:
        return None

    async def connect(self, callbacks: Callbacks) -> None:
        self.given.append(callbacks)
        self.state.callbacks = callbacks

    async def publish(self, msg_id: int, payload: bytes) -> None:
        self.state.handed_over += 1
        for consumer in range(self.consumers):
            self.state.callbacks.on_receipt(consumer, payload)
        self.state.callbacks.on_ack(msg_id, msg_id)

    async def flush(self) -> None:
        return None

    async def read_back(self) -> None:
        return None

    async def close(self) -> None:
        self.state.outages.close()
        given = [{name: getattr(callbacks, name) is not None for name in ("on_receipts", "on_acks", "on_timed_receipts")}
                 for callbacks in self.given]
        (self.run_dir / "given.json").write_text(json.dumps({"given": given, "handed_over": self.state.handed_over}))


class _LoopbackBursts(_LoopbackDriver):
    """The same, declaring bursts and bulk acks: it hands receipts and acks over in bulk
    through the callbacks ``connect`` gives it for them."""

    __slots__ = ("_staged",)
    burst = 64
    capabilities = Capabilities(sending=Sending(bursts=True, bulk_acks=True), accounting=True)

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        super().__init__(spec, run_dir, on_event)
        self._staged: list[int] = []

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        self._staged.extend(msg_ids.tolist())

    async def publish_staged(self, count: int) -> int | None:
        ids = np.array(self._staged[:count], dtype=np.int64)
        del self._staged[:count]
        self.state.handed_over += ids.size
        callbacks = self.state.callbacks
        assert callbacks.on_receipts is not None and callbacks.on_acks is not None
        for consumer in range(self.consumers):
            callbacks.on_receipts(consumer, ids, 0)
        callbacks.on_acks(ids, ids)
        return None


for _name, _driver in (("loopback", _LoopbackDriver), ("loopback-bursts", _LoopbackBursts)):
    LIVE_DRIVERS.register(_name)(_driver)
    TARGETS.register(_name)(LiveRun(_name))


@pytest.mark.parametrize("target", ["loopback", "loopback-bursts"])
def test_a_driver_gets_its_callbacks_through_connect_alone(tmp_path: Path, target: str) -> None:
    # A run of the live target against a driver it has never heard of: every message arrives
    # at both consumers and is acked, though nothing is set on the driver after it is made
    # (its slots would refuse it); the bulk callbacks come only with the parts declared.
    scenario = _scenario(target)
    scenario = scenario.model_copy(update={"live": scenario.live.model_copy(update={"consumers": 2})})
    result = run(scenario, tmp_path / "run")
    said = json.loads((result.run_dir / "given.json").read_text())
    bulk = target == "loopback-bursts"  # Sending.timed_receipts is declared by neither
    assert said["given"] == [{"on_receipts": bulk, "on_acks": bulk, "on_timed_receipts": False}]
    # A generator behind on a loaded machine leaves the schedule's last few unsent (never
    # sent late): every check is of what was sent.
    statuses = result.history.messages["status"].to_pylist()
    sent = sum(status != "unsent" for status in statuses)
    assert len(statuses) == 200 and sent >= 100 and said["handed_over"] == sent
    driver = LIVE_DRIVERS[target](scenario.live, tmp_path, lambda kind, detail: None)
    with pytest.raises(AttributeError):  # what the target could set on it, it cannot
        driver.on_receipts = None
    assert [status for status in statuses if status != "unsent"] == ["committed"] * sent
    assert result.history.deliveries.num_rows == 2 * sent


def test_the_bulk_callbacks_are_given_only_for_the_parts_declared() -> None:
    def one(consumer: int, payload: bytes) -> None: ...
    def many(consumer: int, msg_ids: np.ndarray, unreadable: int) -> None: ...
    def ack(msg_id: int, order: int) -> None: ...
    def acks(msg_ids: np.ndarray, orders: np.ndarray) -> None: ...
    def timed(consumer: int, ids: np.ndarray, times: np.ndarray, counts: np.ndarray, unreadable: int) -> None: ...

    every = Callbacks(one, ack, many, acks, timed)
    assert callbacks_for(_LoopbackDriver, every) == Callbacks(one, ack)
    assert callbacks_for(_LoopbackBursts, every) == Callbacks(one, ack, on_receipts=many, on_acks=acks)
    assert callbacks_for(LIVE_DRIVERS["nats"], every) == Callbacks(one, ack, on_receipts=many, on_timed_receipts=timed)
    assert callbacks_for(LIVE_DRIVERS["zmq"], every) == Callbacks(one, ack, on_receipts=many)


class _HttpServerDriver:
    """A driver msgstorm does not ship: one server of its own (Python's http.server), which it
    declares through ``Servers`` alone. Only what the nemesis asks of it is here."""

    fanout = True
    acks = False
    capabilities = Capabilities(servers=Servers())

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        port = free_port()
        self.servers = [ManagedServer("web-0", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                      port, run_dir, 30.0)]

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        return ["web-0"]

    def server_url(self, server: ManagedServer) -> str:
        return f"http://127.0.0.1:{server.port}"

    async def connect(self, callbacks: Callbacks) -> None:
        return None


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_the_nemesis_pauses_and_restarts_the_servers_of_a_driver_declaring_them(tmp_path: Path) -> None:
    # Validated against nats (one server, "nats-server"); applied to the other driver's server.
    scenario = _scenario("nats", """
[[faults]]
kind = "pause"
node = "nats-server"
at = "100ms"
duration = "400ms"

[[faults]]
kind = "restart"
node = "nats-server"
at = "700ms"
down = "200ms"
""")
    scenario = scenario.model_copy(update={"faults": [fault.model_copy(update={"node": "web-0"})
                                                      for fault in scenario.faults]})
    driver = _HttpServerDriver(scenario.live, tmp_path, lambda kind, detail: None)
    events: list[tuple[int, str, str | None, dict[str, Any]]] = []
    server = driver.servers[0]
    server.start()
    try:
        first_pid = server.pid
        assert first_pid is not None
        nemesis = Nemesis(scenario, driver, tmp_path, lambda t, kind, node, detail: events.append((t, kind, node, detail)))
        states: list[str] = []

        async def run() -> None:
            t0 = time.monotonic_ns()
            now = lambda: time.monotonic_ns() - t0  # noqa: E731 - the run's clock
            faulting = asyncio.ensure_future(nemesis.run(t0, now))
            await asyncio.sleep(0.3)
            states.append(_state(first_pid))  # in the pause
            await faulting
            await nemesis.close(now)

        asyncio.run(run())
        assert states == ["T"]
        kinds = [(kind, node) for _, kind, node, _ in events]
        assert kinds == [("fault_start", "web-0"), ("fault_end", "web-0"), ("fault_start", "web-0"),
                         ("server_start", None), ("fault_end", "web-0")]
        restarted = events[3][3]
        assert restarted["url"] == f"http://127.0.0.1:{server.port}" and restarted["pid"] == server.pid != first_pid
        assert events[0][3]["pid"] == first_pid and events[4][3]["pid"] == server.pid
        assert _state(server.pid) in "SR"  # running again, not paused
    finally:
        server.stop()


@pytest.mark.parametrize(("fault", "said"), [
    ('kind = "toxic"\ntoxic = "latency"\nlatency = "1ms"\nat = "1s"',
     "driver _HttpServerDriver (target 'nats') cannot route its clients through the fault proxy, which a toxic "
     "fault needs (its driver does not declare Servers.client_routes)"),
    ('kind = "crash"\nnode = "nats-server"\nat = "1s"', None),
])
def test_the_nemesis_refuses_a_fault_its_driver_cannot_do_naming_the_capability(
        tmp_path: Path, fault: str, said: str | None) -> None:
    scenario = _scenario("nats", "\n[[faults]]\n" + fault + "\n")
    driver = _HttpServerDriver(scenario.live, tmp_path, lambda kind, detail: None)
    if said is None:  # a crash needs Servers only, which it declares
        Nemesis(scenario, driver, tmp_path, lambda *event: None)
        return
    with pytest.raises(TargetError) as raised:
        Nemesis(scenario, driver, tmp_path, lambda *event: None)
    assert str(raised.value) == said


@pytest.mark.parametrize(("target", "fault", "said"), [
    ("redis", 'kind = "toxic"\ntoxic = "latency"\nlatency = "1ms"\nat = "1s"',
     "target 'redis' cannot route its clients through the fault proxy, which a toxic fault needs "
     "(its driver does not declare Servers.client_routes)"),
    ("rabbitmq", 'kind = "toxic"\ntoxic = "latency"\nlatency = "1ms"\nat = "1s"',
     "target 'rabbitmq' cannot route its clients through the fault proxy, which a toxic fault needs "
     "(its driver does not declare Servers.client_routes)"),
    ("zmq", 'kind = "pause"\nnode = "zmq"\nat = "1s"\nduration = "1s"',
     "target 'zmq' cannot act on server processes of its own, which a pause fault needs "
     "(its driver does not declare Servers)"),
    ("redis", 'kind = "partition"\nat = "1s"\ngroups = [["redis-server"]]',
     "target 'redis' cannot cut the routes of a cluster through the fault proxy, which a partition fault needs "
     "(its driver does not declare Servers.route_links)"),
    ("kafka", 'kind = "partition"\nat = "1s"\ngroups = [["kafka-0"]]',
     "target 'kafka' cannot cut the routes of a cluster through the fault proxy, which a partition fault needs "
     "(its driver does not declare Servers.route_links)"),
    ("nats", 'kind = "double_sign"\nnode = "nats-server"\nat = "1s"',
     "target 'nats' cannot run a second signer with a validator's key, which a double_sign fault needs "
     "(its driver does not declare Servers.validator_keys)"),
    ("zmq", 'kind = "double_sign"\nnode = "zmq"\nat = "1s"',
     "target 'zmq' cannot run a second signer with a validator's key, which a double_sign fault needs "
     "(its driver does not declare Servers.validator_keys)"),
    ("nats", 'kind = "crash"\nnode = "leader"\nat = "1s"', "'leader' (the leader) names a server"),
    ("nats", 'kind = "pause"\nnode = "followers"\nat = "1s"\nduration = "1s"', "'followers' (the followers) names a server"),
    ("nats", 'kind = "pause"\nnode = "leader"\nat = "1s"\nduration = "1s"', "'leader' (the leader) names a server"),
])
def test_validation_refuses_a_fault_the_targets_driver_does_not_declare(target: str, fault: str, said: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        _scenario(target, "\n[[faults]]\n" + fault + "\n")
    messages = [str(issue) for issue in raised.value.issues]
    assert any("faults[0]" in m and said in m for m in messages), messages
