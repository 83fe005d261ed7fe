"""The live ``restart`` fault: SIGTERM a server (a graceful stop), start it again ``down`` later.

Place in the pipeline: a ``LiveFaultKind`` (``live/faults/base.py``) the nemesis applies.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from msgstorm.faults.schedule import FaultOp
from msgstorm.live.faults.base import ServerFault
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import RestartFault

if TYPE_CHECKING:
    from msgstorm.live.faults.handle import FaultHandle

__all__ = ["Restart"]

@LIVE_FAULT_KINDS.register("restart")
class Restart(ServerFault):
    """SIGTERM a server (a graceful stop); start it again ``down`` later, same port and data."""

    @staticmethod
    async def start(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, RestartFault)
        server = handle.server(op.spec.node)
        pid = server.pid
        await asyncio.get_running_loop().run_in_executor(None, server.terminate)
        handle.paused.discard(server.name)
        return {"pid": pid, "signal": "SIGTERM"}

    @staticmethod
    async def end(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, RestartFault)
        return await handle.start_again(handle.server(op.spec.node))
