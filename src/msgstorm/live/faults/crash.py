"""The live ``crash`` fault: SIGKILL a server (or whichever leads the stream), start it again after.

Place in the pipeline: a ``LiveFaultKind`` (``live/faults/base.py``) the nemesis applies.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from msgstorm.errors import TargetError
from msgstorm.faults.schedule import FaultOp
from msgstorm.live.drivers.capabilities import elects_leader
from msgstorm.live.faults.base import Problem, ServerFault, driver_of, server_problems
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import CrashFault, Scenario

if TYPE_CHECKING:
    from msgstorm.live.faults.handle import FaultHandle

__all__ = ["FOLLOWER_NAMES", "LEADER_NAMES", "Crash", "leader_problems"]

# A crash's or a pause's ``node`` that names the stream's leader when the fault starts
# (``Servers.leader``); a pause's may name its followers too (``FOLLOWER_NAMES``).
LEADER_NAMES = ("sequencer", "leader")
FOLLOWER_NAMES = ("followers",)


def leader_problems(scenario: Scenario, node: str, kind: str) -> list[Problem]:
    """``node`` names the stream's leader (or followers): the target must keep a replicated
    stream on servers msgstorm starts (``Servers.leader``)."""
    if elects_leader(driver_of(scenario), scenario.live):
        return []  # the servers holding the stream when the fault starts
    role = "the followers" if node in FOLLOWER_NAMES else "the leader"
    return [(("node",), f"{node!r} ({role}) names a server of a replicated stream msgstorm starts (a JetStream cluster: "
                        "live.jetstream.replicas = 3 or 5; Kafka: live.kafka.replication above 1), not of "
                        f"target {scenario.target!r} as set; otherwise name a server")]


@LIVE_FAULT_KINDS.register("crash")
class Crash(ServerFault):
    """SIGKILL a server; with ``restart_after``, start it again on its port and data directory."""

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        if spec.node in LEADER_NAMES:
            return leader_problems(scenario, spec.node, spec.kind)
        return server_problems(scenario, spec.node, spec.kind)

    @staticmethod
    async def start(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, CrashFault)
        name = op.spec.node
        if name in LEADER_NAMES:  # whichever server leads the stream now
            if handle.can.leader is None:
                raise TargetError(f"crash of {name!r}: the driver keeps no replicated stream (Servers.leader)")
            name = await handle.can.leader.stream_leader()
        handle.victims[op.fault_id] = name
        server = handle.server(name)
        pid = server.pid
        held_s = await asyncio.get_running_loop().run_in_executor(None, server.kill)
        handle.paused.discard(server.name)
        # held while a file it writes in place was half written
        held = {"held_for_whole_ms": round(held_s * 1e3, 3)} if server.whole is not None else {}
        return {"pid": pid, "signal": "SIGKILL", "server": name, **held}

    @staticmethod
    async def end(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, CrashFault)
        return await handle.start_again(handle.server(handle.victims.get(op.fault_id, op.spec.node)))
