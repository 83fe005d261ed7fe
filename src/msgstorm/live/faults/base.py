"""What every live fault kind shares: its interface, and the checks of what a target can do.

Place in the pipeline: under the live nemesis (``live/nemesis.py``), which schedules the
faults; each kind is one class in a module of its own beside this one, registered in
``LIVE_FAULT_KINDS`` (``scenario/registry.py``), as toxics are in ``TOXICS``. A kind names
the driver capabilities it needs (``needs``: Protocols of ``live/drivers/base.py``), checks an
entry against the target at validation (``problems``) and applies its start and end. What a
driver can do is asked of its capabilities, never of its name or its ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from msgstorm.faults.schedule import FaultOp
from msgstorm.live.drivers.base import CAPABILITIES, HasRouteLinks, HasServers, declares
from msgstorm.scenario.registry import LIVE_DRIVERS, LIVE_FAULT_KINDS
from msgstorm.scenario.schema import Scenario, ToxicFault

if TYPE_CHECKING:
    from msgstorm.live.nemesis import Nemesis

__all__ = ["LiveFaultKind", "Problem", "ServerFault", "cannot", "driver_of", "needs_of", "server_names_of",
           "server_problems"]

Problem = tuple[tuple[str | int, ...], str]


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


def needs_of(spec: Any) -> tuple[type, ...]:
    """What a driver must declare to apply ``spec``: its kind's ``needs``; a toxic on a
    cluster's routes needs the routes, not the clients'."""
    if isinstance(spec, ToxicFault) and spec.link == "routes":
        return (HasServers, HasRouteLinks)
    needs: tuple[type, ...] = LIVE_FAULT_KINDS[spec.kind].needs
    return needs


def driver_of(scenario: Scenario) -> type:
    driver: type = LIVE_DRIVERS[scenario.target]
    return driver


def server_names_of(scenario: Scenario) -> list[str]:
    """The servers a run of ``scenario`` starts (none for a driver without ``HasServers``)."""
    driver = driver_of(scenario)
    return list(driver.server_names(scenario.live)) if declares(driver, HasServers) else []  # type: ignore[attr-defined]


def server_problems(scenario: Scenario, node: str, kind: str) -> list[Problem]:
    said = cannot(driver_of(scenario), f"target {scenario.target!r}", kind, (HasServers,))
    if said:
        return [(("kind",), said[0])]
    if scenario.live.url is not None:
        return [(("node",), f"a process fault acts on a server msgstorm starts; with live.url ({scenario.live.url}) "
                           "it starts none: drop live.url or the fault")]
    names = server_names_of(scenario)
    if node not in names:
        return [(("node",), f"unknown server {node!r}; target {scenario.target!r} starts {names}")]
    return []


class ServerFault:
    needs: ClassVar[tuple[type, ...]] = (HasServers,)

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        return server_problems(scenario, spec.node, spec.kind)
