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
- the run cannot end inside the slice. The end is looked for only after the traffic, after
  every 64th Python event, and a service completion that runs in a replay is one whose
  look nobody takes. After a completion that gives a sequence number that look finds the
  run going on (the message waits for a block: the sequencer is not idle), so the log goes
  on after the traffic while no completion from before a crash is pending (``keeps_on``);
  otherwise the network hands everything back as before (``stop``).

An event that only sends (``ReactorHost.schedule_send``: a keeper's liquidation) reads
nothing the sequencer's work changes and changes nothing it reads (its own state, what
commits changed, the base fee, which moves only at blocks; it numbers no event), so it
commutes with the slice too: until the traffic ends (the end is not looked for meanwhile),
and but at a step the progress is streamed at, such events run without the replay before
them, and the next other event, notice or send pays what is owed (``behind``) in one call.

A standby's logged validations go to its mempool in the same pass, in order. Python
counts each service completion as a Python event, as the one-heap loop does, so the end
checks fall on the same events. ``ShadowNetwork(reference=True)`` keeps every
validation handed back (``tests/test_sim_kernel_intake.py`` compares both).

Where the sequencer's rules allow it, a slice is replayed by one compiled call instead of
one Python call per message (``sim/block_step.py``); a run too small to be worth compiling
for, or a call made while a gate is set, keeps the per-message replay.
"""

from __future__ import annotations

from heapq import heapify, heappop

import numpy as np

from msgstorm.sim import block_step_loop
from msgstorm.sim.block_step import BlockStep
from msgstorm.sim.chain import Chain
from msgstorm.sim.context import Event, SimContext
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

    def __init__(self, ctx: SimContext, sequencer: Sequencer, chain: Chain, gossip: GossipState,
                 block_step: bool = True) -> None:
        self.ctx = ctx
        self.sequencer = sequencer
        self.chain = chain
        self.gossip = gossip
        self.heap: list[Event] = []
        sequencer.service_heap = self.heap
        gossip.log_leader = True
        gossip.set_watched([ctx.cluster.leader], ctx.watched, logged=ctx.cluster.standby)
        self.now = 0  # the last replayed time
        self.epoch: int | None = None  # the epoch when the traffic ended (``keeps_on``)
        self.step = BlockStep.make(ctx, sequencer) if block_step else None
        # Events that only send (``ReactorHost.schedule_send``) may run before the replay due
        # ahead of them (``after_run``, ``before_event``): ``behind`` is the point, ``(t, eid)``,
        # the replay then owed reaches; a replay to or past it pays it.
        self.ahead = ctx.events.ahead
        self.behind: tuple[int, int] | None = None

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
        rows = self.gossip.drain_mempool_log()
        step = self.step
        limit = (t_limit, 1 << 62) if inclusive else (t_limit, 0)  # at it (any eid), or before it
        if self.behind is not None and self.behind <= limit:
            self.behind = None
        if step is not None:
            if step.usable():
                mode = block_step_loop.AT_OR_BEFORE if inclusive else block_step_loop.BEFORE
                return self._step(step, rows, mode, limit)
            step.export(heap)  # this slice in Python
        ran = 0
        leader = self.ctx.cluster.leader
        sequencer = self.sequencer
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

    def _step(self, step: BlockStep, rows: np.ndarray, mode: int, limit: tuple[int, int]) -> int:
        """``replay`` or ``catch_up`` by the block step: the rows, then the completions
        before ``limit``, ``(t, eid)``, as ``mode`` reads it (``block_step_loop``'s modes)."""
        if not rows.shape[1] and not step.due(self.heap, limit):
            return 0
        ran, self.now = step.replay(self.heap, rows, self.now, mode, *limit)
        self._standby_intake(rows)
        return ran

    def _standby_intake(self, rows: np.ndarray) -> None:
        """A standby's validations among the log's ``rows``, into its mempool in order."""
        if self.ctx.cluster.standby:
            self.chain.into_mempools(rows[LOG_NODE], rows[LOG_ITEM])

    def after_run(self, until: int, found: tuple[int, ...] | None, events: list[Event],
                  ahead: bool) -> int:
        """After the kernel ran to ``until`` (``found``: the notice it stopped at): ``replay``
        to it, unless ``ahead`` allows and the next Python event only sends; then the replay
        waits (``behind``). Returns how many completions ran."""
        if (found is None and ahead and events and events[0][0] == until
                and events[0][2] in self.ahead):
            if self.behind is None or self.behind < (until, 0):
                self.behind = (until, 0)
            return 0
        return self.replay(until if found is None else found[0], found is not None)

    def before_event(self, event: Event, ahead: bool) -> int:
        """``before`` the Python event ``event``, or nothing if ``ahead`` allows and it only
        sends (the replay then waits for the next other one: ``behind``)."""
        if ahead and event[2] in self.ahead:
            self.behind = event[:2]
            return 0
        if self.behind is None:
            return self.before(event)
        return self.catch_up(event[0], event[1])

    def caught_up(self) -> int:
        """The replay owed, if any (``behind``); how many completions ran."""
        behind = self.behind
        return 0 if behind is None else self.catch_up(*behind)

    def catch_up(self, t: int, eid: int) -> int:
        """``replay`` and ``before`` in one, for a slice whose replay the loop put off while
        it ran events that only send (``ReactorHost.schedule_send``: they read nothing the
        sequencer's work changes, and it reads nothing they change, so the two commute):
        the log's validations merged with the completions due before them, then the
        completions before the Python event ``(t, eid)``. Returns how many completions ran."""
        step = self.step
        self.behind = None
        if step is not None and step.usable():
            rows = self.gossip.drain_mempool_log()
            return self._step(step, rows, block_step_loop.BEFORE_EVENT, (t, eid))
        return self.replay(t, False) + self.before((t, eid))

    def before(self, event: Event) -> int:
        """The completions due before the Python event ``event`` (by time, then ``eid``)."""
        heap = self.heap
        step = self.step
        if step is not None:
            if step.usable():
                if not step.due(heap, event[:2]):
                    return 0
                mode = block_step_loop.BEFORE_EVENT
                ran, self.now = step.replay(heap, step.no_rows, self.now, mode, event[0], event[1])
                return ran
            step.export(heap)  # this slice in Python
        ran = 0
        while heap and heap[0][:2] < event[:2]:
            completion = heappop(heap)
            self.now = completion[0]
            completion[2](completion[0], completion[3], completion[4], completion[5], completion[6])
            ran += 1
        return ran

    def quiet_before(self, t: int) -> bool:
        """Whether the log holds nothing that happens before ``t``: no replay owed
        (``behind``), no service completion due (the loop may pass samples before ``t``:
        ``ShadowNetwork._next_sample``)."""
        if self.behind is not None:
            return False
        if self.step is not None:
            return not self.step.due(self.heap, (t, 0))
        return not self.heap or self.heap[0][0] >= t

    def keeps_on(self, events: list[Event], never: int) -> bool:
        """Whether the log may go on now that the run may end (after the traffic): the end
        is looked for after every 64th Python event, a service completion among them, and
        with the log a completion runs in a replay, where no one looks. That look would
        find the run going on after any completion that gives a sequence number (the
        message is then waiting for a block: the sequencer is not idle), so the log goes on
        while every completion does: while no completion is left from before a crash (none
        when the traffic ends, and the epoch the same since). It stops too once no Python
        event is due before the end (the loop ends on an empty heap)."""
        epoch = self.ctx.cluster.epoch
        if self.epoch is None:
            pending = self.heap if self.step is None else self.step.pending(self.heap)
            if any(completion[4] != epoch for completion in pending):
                return False
            self.epoch = epoch
        return self.epoch == epoch and bool(events) and events[0][0] < never

    def stop(self, events: list[Event]) -> None:
        """From now on as without the log: completions back on ``events`` (the other Python
        events' heap), the leader handing back every validation."""
        if self.step is not None:
            self.step.stop(self.heap)
            self.step = None
        events.extend(self.heap)
        heapify(events)
        self.heap.clear()
        self.sequencer.service_heap = events
        self.gossip.hand_back_leader(self.ctx.cluster.leader)
