"""The live ``bridge`` fault: two sides of a cluster that reach each other only through one server.

Place in the pipeline: a ``LiveFaultKind`` (``live/faults/base.py``): a ``partition`` whose
cut spares the bridge's routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgstorm.live.drivers.capabilities import has_routes
from msgstorm.live.faults.base import Problem, driver_of, server_names_of
from msgstorm.live.faults.partition import Partition
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import Scenario

if TYPE_CHECKING:
    from msgstorm.live.faults.handle import FaultHandle

__all__ = ["Bridge"]

@LIVE_FAULT_KINDS.register("bridge")
class Bridge(Partition):
    """Two sides of a cluster that reach each other only through the ``bridge`` server: the
    routes between the sides are cut, the bridge's routes to both stay."""

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        problems = Partition.problems(scenario, spec)
        names = server_names_of(scenario) if has_routes(driver_of(scenario), scenario.live) else []
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
    def cut_links(handle: FaultHandle, spec: Any) -> list[str]:
        names = handle.server_names()
        side = {name: g for g, group in enumerate(spec.groups) for name in group}
        return [f"route-{i}-{j}" for i, a in enumerate(names) for j, b in enumerate(names)
                if i != j and a in side and b in side and side[a] != side[b]]
