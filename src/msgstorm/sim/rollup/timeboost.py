"""Timeboost's express lane (``[rollup.timeboost]``): everyone but the round's winner waits.

Place in the pipeline: inside the simulator, in front of the sequencer's intake (its
``divert`` hook, which a sequencer outage's ``via_l1`` chains in front of this one). Time is
cut into rounds of ``round``; round ``k``'s express lane belongs to agent ``express[k mod
n]``. A message of that agent reaching the sequencer in that round is taken at once; any
other waits ``delay`` and is then taken as if it arrived then (Arbitrum's Timeboost: 60 s
rounds, a 200 ms delay). ``t_received`` stays when it reached the sequencer, so the delay is
part of its queue wait. The auction that sells each round is not modelled: ``express`` is its
outcome.
"""

from __future__ import annotations

from msgstorm.scenario.rollup import TimeboostSpec
from msgstorm.sim.context import SimContext
from msgstorm.sim.sequencer import Sequencer
from msgstorm.sim.state import AGENT, IN_FLIGHT, T_RECEIVED, WHERE

__all__ = ["ExpressLane"]


class ExpressLane:
    """The delay in front of the sequencer for all but each round's express agent."""

    def __init__(self, ctx: SimContext, sequencer: Sequencer, spec: TimeboostSpec) -> None:
        self.ctx = ctx
        self.sequencer = sequencer
        names = ctx.msgs.agent_names
        self.express = [names.index(name) if name in names else -1 for name in spec.express]
        self.round = spec.round
        self.delay = spec.delay
        self.delayed: set[int] = set()  # messages waiting out the delay, or past it and let in

    def install(self) -> None:
        self.sequencer.divert_with(self.divert)

    def divert(self, t: int, m: int, _kind: int) -> bool:
        if m in self.delayed:
            self.delayed.discard(m)
            return False  # its delay is over: the sequencer takes it now
        record = self.ctx.msgs.live[m]
        if self.delay == 0 or record[AGENT] == self.express[(t // self.round) % len(self.express)]:
            return False
        self.delayed.add(m)
        self.ctx.events.push(t + self.delay, self._after_delay, m, record[T_RECEIVED])
        return True

    def _after_delay(self, t: int, m: int, received: int, _c: int, _d: int) -> None:
        record = self.ctx.msgs.live.get(m)
        if record is None or record[WHERE] != IN_FLIGHT:
            self.delayed.discard(m)
            return
        self.sequencer.intake(t, m)
        record[T_RECEIVED] = received  # reached the sequencer then; the delay is queue wait
