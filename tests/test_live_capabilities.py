"""Driver capabilities: what a driver class declares is what its instances are, and the
nemesis acts through capabilities (never a target's name or port): it applies faults to a
driver it has never heard of that declares them, and refuses, saying why, a fault its driver
cannot do."""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from msgstorm.errors import TargetError
from msgstorm.live.drivers.base import CAPABILITIES, HasServers, OnAck, OnEvent, OnReceipt, declares
from msgstorm.live.nemesis import Nemesis
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.scenario import ScenarioError, parse_scenario
from msgstorm.scenario.live import LiveSpec
from msgstorm.scenario.registry import LIVE_DRIVERS

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

# The capabilities each built-in driver declares (a change here is a change of what it can do).
DECLARED = {
    "nats": {"HasServers", "RoutesClients", "AnnouncesMaxPayload", "HasConsumerProcesses", "RunsInProcesses",
             "FeedsGeneratorProcesses"},
    "jetstream": {"HasServers", "LeadsStream", "HasRouteLinks", "ReadsNodes", "RoutesClients", "AnnouncesMaxPayload"},
    "redis": {"HasServers"},
    "zmq": set(),
    "kafka": {"HasServers", "LeadsStream"},
}


def _scenario(target: str, faults: str = "", live: str = "") -> Any:
    return parse_scenario(SCENARIO.format(target=target, live=live) + faults, source="capabilities.toml")


@pytest.mark.parametrize("target", sorted(DECLARED))
def test_what_a_driver_declares_is_what_its_instances_are(tmp_path: Path, target: str) -> None:
    driver_class = LIVE_DRIVERS[target]
    driver = driver_class(_scenario(target).live, tmp_path, lambda kind, detail: None)
    declared = {capability.__name__ for capability in CAPABILITIES if declares(driver_class, capability)}
    assert declared == DECLARED[target]
    for capability in CAPABILITIES:
        assert isinstance(driver, capability) == declares(driver_class, capability), capability.__name__
        if not declares(driver_class, capability):
            continue
        # Every method and static method the capability names is the driver's own, not the
        # Protocol's empty body that declaring it inherits.
        for name, member in vars(capability).items():
            if callable(member) or isinstance(member, staticmethod | property):
                if name.startswith("_"):
                    continue
                assert inspect.getattr_static(driver_class, name) is not member, f"{target}: {capability.__name__}.{name}"


def test_declaring_is_asked_of_capabilities_only() -> None:
    with pytest.raises(ValueError, match="LiveSpec is not a driver capability"):
        declares(LIVE_DRIVERS["nats"], LiveSpec)


class _HttpServerDriver(HasServers):
    """A driver msgstorm does not ship: one server of its own (Python's http.server), which it
    declares through ``HasServers`` alone. Only what the nemesis asks of it is here."""

    fanout = True
    acks = False

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        port = free_port()
        self.servers = [ManagedServer("web-0", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                      port, run_dir, 30.0)]

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        return ["web-0"]

    def server_url(self, server: ManagedServer) -> str:
        return f"http://127.0.0.1:{server.port}"

    async def connect(self, on_receipt: OnReceipt, on_ack: OnAck) -> None:
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
     "fault needs (its driver does not declare RoutesClients)"),
    ('kind = "crash"\nnode = "nats-server"\nat = "1s"', None),
])
def test_the_nemesis_refuses_a_fault_its_driver_cannot_do_naming_the_capability(
        tmp_path: Path, fault: str, said: str | None) -> None:
    scenario = _scenario("nats", "\n[[faults]]\n" + fault + "\n")
    driver = _HttpServerDriver(scenario.live, tmp_path, lambda kind, detail: None)
    if said is None:  # a crash needs HasServers only, which it declares
        Nemesis(scenario, driver, tmp_path, lambda *event: None)
        return
    with pytest.raises(TargetError) as raised:
        Nemesis(scenario, driver, tmp_path, lambda *event: None)
    assert str(raised.value) == said


@pytest.mark.parametrize(("target", "fault", "said"), [
    ("redis", 'kind = "toxic"\ntoxic = "latency"\nlatency = "1ms"\nat = "1s"',
     "target 'redis' cannot route its clients through the fault proxy, which a toxic fault needs "
     "(its driver does not declare RoutesClients)"),
    ("zmq", 'kind = "pause"\nnode = "zmq"\nat = "1s"\nduration = "1s"',
     "target 'zmq' cannot act on server processes of its own, which a pause fault needs "
     "(its driver does not declare HasServers)"),
    ("redis", 'kind = "partition"\nat = "1s"\ngroups = [["redis-server"]]',
     "target 'redis' cannot cut the routes of a cluster through the fault proxy, which a partition fault needs "
     "(its driver does not declare HasRouteLinks)"),
    ("nats", 'kind = "crash"\nnode = "leader"\nat = "1s"', "'leader' (the leader) names a server"),
    ("nats", 'kind = "pause"\nnode = "followers"\nat = "1s"\nduration = "1s"', "'followers' (the followers) names a server"),
    ("nats", 'kind = "pause"\nnode = "leader"\nat = "1s"\nduration = "1s"', "'leader' (the leader) names a server"),
])
def test_validation_refuses_a_fault_the_targets_driver_does_not_declare(target: str, fault: str, said: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        _scenario(target, "\n[[faults]]\n" + fault + "\n")
    messages = [str(issue) for issue in raised.value.issues]
    assert any("faults[0]" in m and said in m for m in messages), messages
