"""The live ``double_sign`` fault: a second node signs with a validator's key beside it.

Place in the pipeline: a ``LiveFaultKind`` (``live/faults/base.py``) the nemesis applies, on
a driver that holds its validators' keys (``Servers.validator_keys``: the ``cometbft`` target,
``live/chain/cometbft.py``, which says how the second signer comes to double-sign). The
evidence the other validators commit is written by the target as ``evidence`` events.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from msgstorm.errors import TargetError
from msgstorm.faults.schedule import FaultOp
from msgstorm.live.drivers.capabilities import VALIDATOR_KEYS, Part, ValidatorKeys, validator_names
from msgstorm.live.faults.base import Problem, cannot, driver_of
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import DoubleSignFault, Scenario

if TYPE_CHECKING:
    from msgstorm.live.faults.handle import FaultHandle

__all__ = ["DoubleSign"]


def _network(handle: FaultHandle) -> ValidatorKeys:
    if handle.can.validator_keys is None:
        raise TargetError("a double_sign fault needs a validator network whose keys msgstorm holds")
    return handle.can.validator_keys


@LIVE_FAULT_KINDS.register("double_sign")
class DoubleSign:
    """Start a second signer of validator ``node`` at the start; kill it at the end."""

    needs: ClassVar[tuple[Part, ...]] = (VALIDATOR_KEYS,)

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        driver = driver_of(scenario)
        said = cannot(driver, f"target {scenario.target!r}", spec.kind, DoubleSign.needs)
        if said:
            return [(("kind",), said[0])]
        names = validator_names(driver, scenario.live)
        if spec.node not in names:
            return [(("node",), f"unknown validator {spec.node!r}; target {scenario.target!r} starts {names}")]
        return []

    @staticmethod
    async def start(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, DoubleSignFault)
        network = _network(handle)
        name = op.spec.node
        # Its home is written on a worker thread; it is spawned on this one (``spawn_listening``).
        server = await asyncio.get_running_loop().run_in_executor(None, network.second_signer, name)
        await handle.spawn_listening(server)
        return {"validator": name, "signer": server.name, "pid": server.pid}

    @staticmethod
    async def end(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, DoubleSignFault)
        network = _network(handle)
        server = await asyncio.get_running_loop().run_in_executor(None, network.stop_second_signer, op.spec.node)
        return {"validator": op.spec.node, "signer": server.name if server else None,
                "pid": server.pid if server else None}
