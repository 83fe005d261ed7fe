"""The live ``toxic`` fault: a toxic of the fault proxy on the clients' links or a cluster's routes.

Place in the pipeline: a ``LiveFaultKind`` (``live/faults/base.py``) the nemesis applies
through the proxy it started (``live/proxy_process.py``); the toxics themselves are
``live/toxics.py``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from msgstorm.faults.schedule import FaultOp
from msgstorm.live.drivers.capabilities import (
    CLIENT_ROUTES,
    Part,
    client_routing_problem,
    has_routes,
)
from msgstorm.live.faults.base import Problem, cannot, driver_of, server_names_of
from msgstorm.live.payload import HEADER
from msgstorm.live.toxics import TOXICS, Toxic
from msgstorm.scenario.distributions import Constant, Pareto, Uniform
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import Scenario, ToxicFault

if TYPE_CHECKING:
    from msgstorm.live.faults.handle import FaultHandle

__all__ = ["ROLES", "ToxicKind", "toxic_of"]

# The client roles whose links a toxic on link = "clients" acts on.
ROLES = ("publisher", "consumers")

def toxic_of(spec: ToxicFault) -> Toxic:
    """The proxy's toxic for a scenario entry (its kind's class in ``TOXICS``; units: ns and bytes/s)."""
    toxic: Toxic = TOXICS[spec.toxic].from_spec(spec)
    return toxic


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


@LIVE_FAULT_KINDS.register("toxic")
class ToxicKind:
    """A toxic on the client links, through the fault proxy."""

    needs: ClassVar[tuple[Part, ...]] = (CLIENT_ROUTES,)

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        if spec.link == "routes":
            return ToxicKind.route_problems(scenario, spec)
        driver = driver_of(scenario)
        said = cannot(driver, f"target {scenario.target!r}", "toxic", ToxicKind.needs)
        if said:
            return [(("kind",), said[0])]
        routing = client_routing_problem(driver, scenario.live)
        if routing is not None:
            return [(("kind",), routing)]
        if TOXICS[spec.toxic].changes_bytes:
            return _corrupt_problems(scenario)
        return []

    @staticmethod
    def route_problems(scenario: Scenario, spec: Any) -> list[Problem]:
        """A toxic on a cluster's routes: a cluster msgstorm starts, servers it has, bytes kept."""
        driver = driver_of(scenario)
        if not has_routes(driver, scenario.live):
            return [(("link",), f'a toxic on link = "routes" acts on the links between the servers of a cluster '
                                f'msgstorm starts: target "cometbft", or "jetstream" with replicas 3 or 5 '
                                f"(target {scenario.target!r} starts none)")]
        problems: list[Problem] = []
        if TOXICS[spec.toxic].changes_bytes:
            problems.append((("toxic",), f"a {spec.toxic!r} toxic changes bytes on the servers' encrypted links, "
                                         "which only drops them: use a toxic that delays, slows or cuts"))
        names = server_names_of(scenario)
        for g, group in enumerate(spec.between or []):
            for name in group:
                if name not in names:
                    problems.append((("between", g), f"unknown server {name!r}; the cluster is {names}"))
        return problems

    @staticmethod
    def route_links(handle: FaultHandle, spec: Any) -> list[str]:
        """The routes a toxic on link = "routes" acts on: every one, or those between its two groups."""
        names = handle.server_names()
        if spec.between is None:
            return [f"route-{i}-{j}" for i in range(len(names)) for j in range(len(names)) if i != j]
        side = {name: g for g, group in enumerate(spec.between) for name in group}
        return [f"route-{i}-{j}" for i, a in enumerate(names) for j, b in enumerate(names)
                if i != j and a in side and b in side and side[a] != side[b]]

    @staticmethod
    async def start(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, ToxicFault)
        toxic = toxic_of(op.spec)
        if op.spec.link == "routes":
            assert handle.route_proxy is not None
            proxy, links = handle.route_proxy, ToxicKind.route_links(handle, op.spec)
        else:
            assert handle.proxy is not None
            roles = ROLES if op.spec.link == "clients" else (op.spec.link,)
            proxy, links = handle.proxy, [link for role in roles for link in handle.links[role]]
        # One command for every link: the proxy switches them all at the same moment.
        answer = await proxy.command(op="set", id=op.fault_id, link=links, toxic=toxic.wire(),
                                     seed=handle.seed, at_ns=handle.t0_ns + op.t_ns)
        return {"t_ns": answer["t_ns"], "received_ns": answer["received_ns"],
                "open_connections": answer["open_connections"],
                **({"routes": links} if op.spec.link == "routes" else {})}

    @staticmethod
    async def end(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, ToxicFault)
        proxy = handle.route_proxy if op.spec.link == "routes" else handle.proxy
        assert proxy is not None
        on_time = {} if handle.healing else {"at_ns": handle.t0_ns + op.t_ns}  # a heal is now
        answer = await proxy.command(op="clear", id=op.fault_id, **on_time)
        return {"t_ns": answer["t_ns"], "received_ns": answer["received_ns"], **answer["stats"]}
