"""What a live fault kind acts through: the handle the nemesis gives each start and end.

Place in the pipeline: between the live nemesis (``live/nemesis.py``), which schedules the
faults and owns the proxies and the books of what is in force, and each fault kind (a
module beside this one), which applies one start or end. As Jepsen's nemesis acts on a
system through a client, a kind sees only this record: the driver's declared capabilities,
the servers msgstorm started, the proxies and their links, the books the kinds share (the
server a crash took, those a pause stopped), the run's seed and clock origin, the rollup's
settings, and whether the end is a heal. Never the nemesis, a target or a driver's class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from msgstorm.live.drivers.capabilities import DriverCapabilities
from msgstorm.live.proxy_process import ProxyProcess
from msgstorm.live.servers import ManagedServer
from msgstorm.scenario.rollup import RollupSpec

__all__ = ["FaultHandle", "server_names_started"]


def server_names_started(can: DriverCapabilities) -> list[str]:
    """The servers the driver started, in its order (none: it declares no ``Servers``)."""
    return [server.name for server in can.servers.servers] if can.servers is not None else []


@dataclass(frozen=True)
class FaultHandle:
    """One start or end's view of the run. The books (``paused``, ``paused_by``,
    ``victims``) are the nemesis's own sets and maps, shared by every kind: a kind writes
    what it did there, and a later end, a heal or the cleanup reads it."""

    can: DriverCapabilities
    proxy: ProxyProcess | None  # the clients' links (a toxic on them)
    route_proxy: ProxyProcess | None  # a cluster's routes (partitions, bridges, toxics on routes)
    links: dict[str, list[str]]  # role -> the proxy's link names, one per server
    paused: set[str]
    paused_by: dict[int, list[str]]  # fault id -> the servers a pause stopped (named then)
    victims: dict[int, str]  # fault id -> the server a crash took down (named then)
    seed: int  # the run's: a toxic's draws
    t0_ns: int  # the run clock's zero (monotonic ns): when an operation is due
    healing: bool  # an end applied now, ahead of its time
    rollup: RollupSpec | None
    start_again: Callable[[ManagedServer], Awaitable[dict[str, Any]]]
    spawn_listening: Callable[[ManagedServer], Awaitable[None]]

    def server_names(self) -> list[str]:
        return server_names_started(self.can)

    def server(self, name: str) -> ManagedServer:
        for server in self.can.servers.servers if self.can.servers is not None else []:
            if server.name == name:
                return server
        raise KeyError(f"no server {name!r} was started")
