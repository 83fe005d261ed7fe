"""A sequencer outage on the live rollup (``sequencer_outage`` with ``target = "anvil"`` and ``[rollup]``).

Place in the pipeline: a ``LiveFaultKind`` (``live/faults/base.py``) the live nemesis
(``live/nemesis.py``) applies on its schedule, through the target's declared ``Sequencer``
capability (``live/drivers/capabilities.py``), never its class. Its start turns the
sequencer front down (``forced.py``: no message reaches the L2 node, those of the
kinds ``via_l1`` go through the L1 anvil and are forced in after ``window``); its end turns it
up and sends the backlog, whose size the ``fault_end`` event's detail gives (``backlog``), as
the simulator's does. The L1 anvil and the batcher run on through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from msgstorm.errors import TargetError
from msgstorm.faults.schedule import FaultOp
from msgstorm.live.drivers.capabilities import SEQUENCER, Part, SequencerGate
from msgstorm.live.faults.base import Problem, cannot, driver_of
from msgstorm.scenario.faults import SequencerOutageFault
from msgstorm.scenario.registry import LIVE_FAULT_KINDS
from msgstorm.scenario.schema import Scenario

if TYPE_CHECKING:
    from msgstorm.live.faults.handle import FaultHandle

__all__ = ["LiveSequencerOutage"]


def _front(handle: FaultHandle) -> SequencerGate:
    front = handle.can.sequencer.sequencer_front() if handle.can.sequencer is not None else None
    if front is None:
        raise TargetError("a sequencer outage needs a rollup's sequencer in front of the node ([rollup])")
    return front


@LIVE_FAULT_KINDS.register("sequencer_outage")
class LiveSequencerOutage:
    """The live rollup's sequencer down for ``duration``, forced inclusion through L1."""

    needs: ClassVar[tuple[Part, ...]] = (SEQUENCER,)

    @staticmethod
    def problems(scenario: Scenario, spec: Any) -> list[Problem]:
        said_cannot = cannot(driver_of(scenario), f"target {scenario.target!r}", spec.kind, LiveSequencerOutage.needs)
        if said_cannot or scenario.rollup is None:
            why = said_cannot[0] if said_cannot else f"target {scenario.target!r} without [rollup] has no sequencer"
            return [(("kind",), f"a live sequencer outage is the live rollup's ({why}): give [rollup] on a target "
                                "with a rollup's sequencer, or --target sim")]
        said: list[Problem] = []
        if spec.lose_unposted:
            said.append((("lose_unposted",), "the live rollup keeps its backlog in order: losing what is not "
                                             "on L1 is simulated only (drop lose_unposted, or --target sim)"))
        if scenario.market is not None:
            said.append((("kind",), "a live sequencer outage does not hold the market's transactions yet: drop "
                                    "[market] or the fault, or --target sim"))
        return said

    @staticmethod
    async def start(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        assert isinstance(op.spec, SequencerOutageFault)
        _front(handle).go_down(op.spec, op.spec.window_ns(handle.rollup))
        return {}

    @staticmethod
    async def end(handle: FaultHandle, op: FaultOp) -> dict[str, Any]:
        t, backlog = await _front(handle).up()
        return {"backlog": backlog, "t_ns": handle.t0_ns + t}  # stamped when the backlog was sent
