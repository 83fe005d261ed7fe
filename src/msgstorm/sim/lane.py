"""The sequencer's worker pools, and the liquidation priority lane.

Place in the pipeline: inside the simulator, parts the ``Sequencer`` (``sim/sequencer.py``)
is built from. Every sequencer has the shared ``Workers``; its ``Lane`` is the do-nothing
lane (no kinds, no workers, no block share) unless the scenario sets ``sequencer.lane``,
so one sequencer, with one service loop, serves every run.

The lane: ``lane.workers`` of the sequencer's workers are reserved for ``lane.kinds``
(liquidations and oracle prices). A lane message skips backpressure and the shared queue
policy: it waits in the lane's own first-come-first-served queue (``Workers.own``) for a
lane worker. With ``lane.lend`` an idle lane worker takes the next message of the shared
queue, as a shared worker does, so an unused share goes to the rest (a lane message
arriving then waits for that service to end: the lane does not pre-empt). Without it the
lane is a queue of its own with ``lane.workers`` servers, whatever the rest of the traffic
does: M/M/c (M/M/1 for one worker) for Poisson arrivals and exponential service.

A block share: ``lane.block_share`` of each block's messages (and gas) is offered first to
the lane's kinds that are sequenced and waiting (they wait apart from the rest, in
``Lane.sequenced``); the rest fill the block after them, and the lane takes any room they
leave. Within a block messages stay in sequence-number order; across blocks a lane message
may commit before a rest message sequenced earlier. So when a crash or a failover gives the
numbers of uncommitted messages again, it starts above the highest number ever taken into a
block (``taken_top``): with a block share, committed sequence numbers are unique but may
have gaps.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from msgstorm.scenario.control import LaneSpec
from msgstorm.scenario.schema import MESSAGE_KINDS
from msgstorm.sim.block_packing import BlockFill
from msgstorm.sim.state import SEQ_NO

__all__ = ["LANE", "SHARED", "Lane", "Workers", "fill_block"]

# Pool indices: a service completion event carries its pool's index.
SHARED, LANE = 0, 1


class Workers:
    """A pool of the sequencer's workers: ``slots`` of them, ``busy`` serving. ``own`` is
    the pool's own first-come-first-served queue (a lane's; the shared workers' queue is
    the queue policy); ``shares``: it takes from the shared queue policy (the shared
    workers always, a lane's when it lends)."""

    __slots__ = ("busy", "index", "own", "shares", "slots")

    def __init__(self, index: int, slots: int, shares: bool) -> None:
        self.index = index
        self.slots = slots
        self.busy = 0
        self.own: deque[int] = deque()
        self.shares = shares


class Lane:
    """The lane's part of a sequencer: the kinds its workers take, its workers, its block
    share and the sequenced messages waiting for it. ``Lane(None, ...)`` is the do-nothing
    lane of a sequencer without one."""

    def __init__(self, spec: LaneSpec | None) -> None:
        kinds = frozenset(MESSAGE_KINDS.index(kind) for kind in spec.kinds) if spec is not None else frozenset[int]()
        slots = spec.workers if spec is not None else 0
        self.kinds = kinds if slots else frozenset[int]()  # kinds the lane's workers take
        self.workers = Workers(LANE, slots, shares=bool(slots) and spec is not None and spec.lend)
        self.block_share = spec.block_share if spec is not None else 0.0
        self.block_kinds = kinds if self.block_share else frozenset[int]()  # kinds with a share of each block
        self.sequenced: deque[int] = deque()  # sequenced block-share kinds waiting for a block
        self.taken_top = -1  # the highest sequence number taken into a block (with a block share)

    def take_block(self, rest: deque[int], live: dict[int, list[Any]], max_messages: int, max_gas: int | None,
                   gas_of: list[int], header_size: int) -> tuple[list[int], int, int]:
        """The lane's sequenced messages first, up to its share of the block's messages and
        gas; then the rest in what is left (the lane's unused share included); then the lane
        again in whatever room the rest left. Sorted by sequence number."""
        block = BlockFill(header_size)
        share_gas = None if max_gas is None else math.floor(self.block_share * max_gas)
        fill_block(self.sequenced, live, block, math.ceil(self.block_share * max_messages), share_gas, gas_of)
        fill_block(rest, live, block, max_messages, max_gas, gas_of)
        fill_block(self.sequenced, live, block, max_messages, max_gas, gas_of)
        take = block.messages
        take.sort(key=lambda m: live[m][SEQ_NO])
        if take:
            self.taken_top = max(self.taken_top, live[take[-1]][SEQ_NO])
        return take, block.gas, block.size_bytes

    def reset(self) -> list[int]:
        """The leader crashed: the lane's queue and its waiting sequenced messages (in that
        order), which go back in flight."""
        orphans = [*self.workers.own, *self.sequenced]
        self.workers.own.clear()
        self.sequenced.clear()
        self.workers.busy = 0
        return orphans

    def idle(self) -> bool:
        return not (self.workers.own or self.workers.busy or self.sequenced)


def fill_block(waiting: deque[int], live: dict[int, list[Any]], block: BlockFill, most_messages: int,
               most_gas: int | None, gas_of: list[int]) -> None:
    """Move sequenced messages from the front of ``waiting`` into ``block`` until one does not
    fit its ``most_messages`` and ``most_gas`` (``sim/block_packing.py``)."""
    taken = block.take_in_order(waiting, live, gas_of, most_messages, most_gas)
    if taken == len(waiting):  # all of them (a block not full): no pop each
        waiting.clear()
        return
    for _ in range(taken):
        waiting.popleft()
