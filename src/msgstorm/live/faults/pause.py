"""The live ``pause`` fault: SIGSTOP a server msgstorm started (or the stream's leader, or
its followers), SIGCONT at its end.

Place in the pipeline: a ``LiveFaultKind`` (``live/faults/base.py``) the nemesis applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgstorm.errors import TargetError
from msgstorm.faults.schedule import FaultOp
from msgstorm.live.faults.base import Problem, ServerFault, server_problems
from msgstorm.live.faults.crash import FOLLOWER_NAMES, LEADER_NAMES, leader_problems
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import PauseFault, Scenario

if TYPE_CHECKING:
    from msgstorm.live.faults.handle import FaultHandle

__all__ = ["Pause"]


async def _named(handle: FaultHandle, node: str) -> list[str]:
    """The servers ``node`` names when the fault starts: itself, or the stream's leader or
    followers then (``Servers.leader``)."""
    if node not in LEADER_NAMES + FOLLOWER_NAMES:
        return [node]
    leader = handle.can.leader
    if leader is None:
        raise TargetError(f"pause of {node!r}: the driver keeps no replicated stream (Servers.leader)")
    if node in LEADER_NAMES:
        return [await leader.stream_leader()]
    followers = await leader.stream_followers()
    if not followers:
        raise TargetError(f"pause of {node!r}: the stream has no followers now")
    return followers


@LIVE_FAULT_KINDS.register("pause")
class Pause(ServerFault):
    """SIGSTOP a server, or every server ``node`` names (``"leader"``, ``"followers"``);
    SIGCONT the same ones at the end."""

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        if spec.node in LEADER_NAMES + FOLLOWER_NAMES:
            return leader_problems(scenario, spec.node, spec.kind)
        return server_problems(scenario, spec.node, spec.kind)

    @staticmethod
    async def start(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, PauseFault)
        names = await _named(handle, op.spec.node)
        servers = [handle.server(name) for name in names]
        handle.paused_by[op.fault_id] = names  # the servers it named then, resumed at the end
        if names != [op.spec.node]:
            handle.victims[op.fault_id] = ",".join(names)  # the events' node: what it stopped
        for server in servers:
            server.pause()
            handle.paused.add(server.name)
        return {"pid": servers[0].pid} if len(servers) == 1 else {"servers": {s.name: s.pid for s in servers}}

    @staticmethod
    async def end(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, PauseFault)
        servers = [handle.server(name) for name in handle.paused_by.get(op.fault_id, [op.spec.node])]
        for server in servers:
            server.resume()
            handle.paused.discard(server.name)
        return {"pid": servers[0].pid} if len(servers) == 1 else {"servers": {s.name: s.pid for s in servers}}

