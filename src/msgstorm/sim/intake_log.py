"""The leader's intake read from the gossip kernel's log, merged with service completions.

Place in the pipeline: inside the simulator, between the gossip kernel (``sim/kernel.py``)
and the ``Sequencer``. Without it the kernel returns to Python at every message the leader
validates (``Sequencer.intake``), and stops before every service completion (a Python
event); a run spends most of its calls there. With it, the kernel logs the leader's
validations as it logs a standby's (``kernel.WATCH_LOG``) and runs on to the next Python
event that is not a service completion; Python then takes the log and replays, in exact
time order, the intakes and the service completions due in that slice of virtual time.

Why the replay is exact: in that slice, the only Python work is the sequencer's own
(intake, service completions and the services they start), and none of it touches the
kernel, so the kernel's receipts and the sequencer's work commute; they meet only at the
leader's validations, which the log gives in the kernel's order. The merge keeps the order
the one-heap loop has: a service completion due at or before a validation's time runs
first (Python events go before receipts at equal times), and completions keep their
``eid`` order among themselves and with the other Python events (one counter numbers
both heaps). It holds while nothing the sequencer does can reach the kernel or end the
run, which ``LoggedIntake.fits`` and ``ShadowNetwork`` check:

- the queue policy has no hooks (a batch auction, commit-reveal or fair ordering calls
  back into the network); backpressure never suspends senders (a suspended sender's
  messages are sent again from the sequencer); blocks come from the one sequencer (a fork
  chain's producers keep no such queue); every node has peers (a lone node validates in
  Python);
- the run cannot end inside the slice (the end is checked only after the traffic, so the
  log is used only while traffic is still due or the slice ends before it does; then the
  network hands everything back as before, ``stop``).

A standby's logged validations go to its mempool in the same pass, in order. Python
counts each service completion as a Python event, as the one-heap loop does, so the end
checks fall on the same events. ``ShadowNetwork(kernel_intake=False)`` keeps every
validation handed back (the reference; ``tests/test_sim_kernel_intake.py`` compares both).
"""

from __future__ import annotations

from heapq import heapify, heappop
from typing import Any

from msgstorm.sim.chain import Chain
from msgstorm.sim.context import SimContext
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.kernel import LOG_ITEM, LOG_NODE, LOG_T
from msgstorm.sim.sequencer import Sequencer

__all__ = ["LoggedIntake"]


class LoggedIntake:
    """Service completions on a heap of their own, and the leader's intake from the log.

    Lifecycle: built when ``fits`` says the run's rules allow it; from then on the
    sequencer's completions go to ``heap`` and the kernel logs the leader's validations;
    ``stop`` (once, when the run may end) puts the completions back with the other
    Python events and has the leader hand back every validation again."""

    def __init__(self, ctx: SimContext, sequencer: Sequencer, chain: Chain, gossip: GossipState) -> None:
        self.ctx = ctx
        self.sequencer = sequencer
        self.chain = chain
        self.gossip = gossip
        self.heap: list[tuple[Any, ...]] = []
        sequencer.service_heap = self.heap
        gossip.log_leader = True
        gossip.set_watched([ctx.cluster.leader], ctx.watched, logged=ctx.cluster.standby)
        self.now = 0  # the last replayed time

    @staticmethod
    def fits(sequencer: Sequencer, chain: object, kernel_sends: bool) -> bool:
        """Whether nothing the sequencer does can reach the gossip kernel (see the module)."""
        ordering = sequencer.ordering
        hooks = (ordering.attach, ordering.ready, ordering.sequenced, ordering.received)
        return (kernel_sends and isinstance(chain, Chain) and all(hook is None for hook in hooks)
                and not sequencer.backpressure.holds_senders)

    def replay(self, t_limit: int, inclusive: bool) -> int:
        """The log's validations (the leader's intake, a standby's mempool) merged with
        the service completions due before them, then the completions due before
        ``t_limit`` (or at it, with ``inclusive``). Returns how many completions ran."""
        heap = self.heap
        ran = 0
        leader = self.ctx.cluster.leader
        sequencer = self.sequencer
        rows = self.gossip.drain_mempool_log()
        for node, item, t in zip(rows[LOG_NODE].tolist(), rows[LOG_ITEM].tolist(), rows[LOG_T].tolist(),
                                 strict=True):
            while heap and heap[0][0] <= t:  # Python events first at equal times
                event = heappop(heap)
                event[2](event[0], event[3], event[4], event[5], event[6])
                ran += 1
            if node == leader:
                sequencer.intake(t, item)
            else:
                self.chain.into_mempool(node, item)
            self.now = t
        while heap and (heap[0][0] < t_limit or (inclusive and heap[0][0] == t_limit)):
            event = heappop(heap)
            self.now = event[0]
            event[2](event[0], event[3], event[4], event[5], event[6])
            ran += 1
        return ran

    def before(self, event: tuple[Any, ...]) -> int:
        """The completions due before the Python event ``event`` (by time, then ``eid``)."""
        heap = self.heap
        ran = 0
        while heap and heap[0][:2] < event[:2]:
            completion = heappop(heap)
            self.now = completion[0]
            completion[2](completion[0], completion[3], completion[4], completion[5], completion[6])
            ran += 1
        return ran

    def stop(self, events: list[tuple[Any, ...]]) -> None:
        """From now on as without the log: completions back on ``events`` (the other Python
        events' heap), the leader handing back every validation."""
        events.extend(self.heap)
        heapify(events)
        self.heap.clear()
        self.sequencer.service_heap = events
        self.gossip.hand_back_leader(self.ctx.cluster.leader)
