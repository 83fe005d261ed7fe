"""The live ``partition`` fault: a cluster's routes between groups of servers cut both ways.

Place in the pipeline: a ``LiveFaultKind`` (``live/faults/base.py``) the nemesis applies
through the route proxy it started (``live/proxy_process.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from msgstorm.faults.schedule import FaultOp
from msgstorm.live.drivers.capabilities import ROUTE_LINKS, SERVERS, Part, has_routes
from msgstorm.live.faults.base import Problem, cannot, driver_of, server_names_of
from msgstorm.live.toxics import Blackhole
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import Scenario

if TYPE_CHECKING:
    from msgstorm.live.faults.handle import FaultHandle

__all__ = ["Partition"]

@LIVE_FAULT_KINDS.register("partition")
class Partition:
    """Cut the cluster's routes between groups of servers (unnamed servers form one more
    group): every route between two groups is blackholed both ways through the fault proxy;
    at the end the routes are reset and the servers connect again (a healed partition)."""

    needs: ClassVar[tuple[Part, ...]] = (SERVERS, ROUTE_LINKS)

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        driver = driver_of(scenario)
        missing = cannot(driver, f"target {scenario.target!r}", spec.kind, Partition.needs)
        if missing or not has_routes(driver, scenario.live):
            why = missing[0] if missing else f"target {scenario.target!r} starts no cluster with this [live] section"
            return [(("kind",), f"a {spec.kind} on a live target cuts the routes of a cluster msgstorm starts: "
                                f'target "jetstream" with live.jetstream.replicas = 3 or 5 and no live.url, or target '
                                f'"cometbft", or target "rabbitmq" with live.rabbitmq.nodes of 2 or more and no live.url ({why})')]
        names = server_names_of(scenario)
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
    def cut_links(handle: FaultHandle, spec: Any) -> list[str]:
        names = handle.server_names()
        group_of = {name: g for g, group in enumerate(spec.groups) for name in group}
        side = [group_of.get(name, -1) for name in names]
        return [f"route-{i}-{j}" for i in range(len(names)) for j in range(len(names)) if i != j and side[i] != side[j]]

    @staticmethod
    async def start(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert handle.route_proxy is not None
        links = LIVE_FAULT_KINDS[op.spec.kind].cut_links(handle, op.spec)
        answer = await handle.route_proxy.command(op="set", id=op.fault_id, link=links,
                                                   toxic=Blackhole("both").wire(), seed=handle.seed,
                                                   at_ns=handle.t0_ns + op.t_ns)
        return {"t_ns": answer["t_ns"], "received_ns": answer["received_ns"], "routes_cut": links,
                "open_connections": answer["open_connections"]}

    @staticmethod
    async def end(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert handle.route_proxy is not None
        on_time = {} if handle.healing else {"at_ns": handle.t0_ns + op.t_ns}
        answer = await handle.route_proxy.command(op="clear", id=op.fault_id, reset=True, **on_time)
        return {"t_ns": answer["t_ns"], "received_ns": answer["received_ns"], **answer["stats"]}
