"""The live ``pause`` fault: SIGSTOP a server msgstorm started, SIGCONT at its end.

Place in the pipeline: a ``LiveFaultKind`` (``live/faults/base.py``) the nemesis applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgstorm.faults.schedule import FaultOp
from msgstorm.live.faults.base import ServerFault
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import PauseFault

if TYPE_CHECKING:
    from msgstorm.live.nemesis import Nemesis

__all__ = ["Pause"]

@LIVE_FAULT_KINDS.register("pause")
class Pause(ServerFault):
    """SIGSTOP a server; SIGCONT at the end."""

    @staticmethod
    async def start(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, PauseFault)
        server = nemesis.server(op.spec.node)
        server.pause()
        nemesis.paused.add(server.name)
        return {"pid": server.pid}

    @staticmethod
    async def end(nemesis: Nemesis, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, PauseFault)
        server = nemesis.server(op.spec.node)
        server.resume()
        nemesis.paused.discard(server.name)
        return {"pid": server.pid}
