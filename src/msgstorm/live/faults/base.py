"""What every live fault kind shares: its interface, and the checks of what a target can do.

Place in the pipeline: under the live nemesis (``live/nemesis.py``), which schedules the
faults; each kind is one class in a module of its own beside this one, registered in
``LIVE_FAULT_KINDS`` (``scenario/registry.py``), as toxics are in ``TOXICS``. A kind names
the driver capabilities it needs (``needs``: ``Part``s of ``live/drivers/capabilities.py``),
checks an entry against the target at validation (``problems``: the driver class's declared
``capabilities``) and applies its start and end through the ``FaultHandle`` the nemesis
gives it (``live/faults/handle.py``: the driver seen through that declaration, the servers,
the proxies). What a driver can do is asked of its declaration, never of its name or its
ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from msgstorm.faults.schedule import FaultOp
from msgstorm.live.drivers.capabilities import ROUTE_LINKS, SERVERS, Part, declares, server_names
from msgstorm.scenario.registry import LIVE_FAULT_KINDS, TARGETS
from msgstorm.scenario.schema import FaultSpec, Scenario, ToxicFault

if TYPE_CHECKING:
    from msgstorm.live.faults.handle import FaultHandle

__all__ = ["LiveFaultKind", "Problem", "ServerFault", "cannot", "driver_of", "needs_of", "server_names_of",
           "server_problems"]

Problem = tuple[tuple[str | int, ...], str]


class LiveFaultKind(Protocol):
    """One kind of fault on a live target: ``needs`` the driver capabilities it acts
    through; ``problems`` checks an entry against the target at validation ((field path,
    message) pairs); ``start`` and ``end`` apply it and return what the event's detail adds."""

    needs: ClassVar[tuple[Part, ...]]

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]: ...

    @staticmethod
    async def start(handle: FaultHandle, op: FaultOp) -> dict[str, Any]: ...

    @staticmethod
    async def end(handle: FaultHandle, op: FaultOp) -> dict[str, Any]: ...


def cannot(driver: type, who: str, kind: str, needs: tuple[Part, ...]) -> list[str]:
    """Why ``driver`` (a class; ``who`` names it: "target 'zmq'") cannot apply a ``kind``
    fault: each capability part it needs and does not declare, with what that would let it do."""
    return [f"{who} cannot {part.does}, which a {kind} fault needs (its driver does not declare {part})"
            for part in needs if not declares(driver, part)]


def needs_of(spec: FaultSpec) -> tuple[Part, ...]:
    """What a driver must declare to apply ``spec``: its kind's ``needs``; a toxic on a
    cluster's routes needs the routes, not the clients'."""
    if isinstance(spec, ToxicFault) and spec.link == "routes":
        return (SERVERS, ROUTE_LINKS)
    needs: tuple[Part, ...] = LIVE_FAULT_KINDS[spec.kind].needs
    return needs


def driver_of(scenario: Scenario) -> type:
    """The class whose ``capabilities`` say what the scenario's live target can do
    (``LiveRun.driver``: a broker's driver, the EVM node's, the validators')."""
    driver = TARGETS[scenario.target].driver()
    if driver is None:
        raise TypeError(f"target {scenario.target!r} drives no live system")
    return driver


def server_names_of(scenario: Scenario) -> list[str]:
    """The servers a run of ``scenario`` starts (none for a driver without ``Servers``)."""
    return server_names(driver_of(scenario), scenario.live)


def server_problems(scenario: Scenario, node: str, kind: str) -> list[Problem]:
    said = cannot(driver_of(scenario), f"target {scenario.target!r}", kind, (SERVERS,))
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
    needs: ClassVar[tuple[Part, ...]] = (SERVERS,)

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        return server_problems(scenario, spec.node, spec.kind)
