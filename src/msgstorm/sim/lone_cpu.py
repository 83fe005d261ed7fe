"""CPU of the nodes without gossip peers: validation queues the kernel never sees.

Place in the pipeline: inside the simulator, one role of ``ShadowNetwork``. A node with no
peers (a one-node network, as in queueing experiments) receives nothing from others, so
its CPU is a FIFO accounted here, in Python, instead of a kernel round trip per message:
validating a message or its own block holds the CPU for a drawn processing time. Every
other node's CPU lives in the gossip kernel (``sim/kernel.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from msgstorm.sampling import Sampler
from msgstorm.sim.context import SimContext
from msgstorm.sim.kernel import ITEM_MSG

__all__ = ["LoneCpu"]

Validated = Callable[[int, int, int, int, int, int], None]


class LoneCpu:
    def __init__(self, ctx: SimContext, processing: Sampler, delivery_stride: int, on_validated: Validated) -> None:
        """``on_validated(t, node, item, kind, sender, hops)`` is the network's dispatch,
        as the kernel reports a watched validation."""
        self.ctx = ctx
        self.processing = processing
        self.on_validated = on_validated
        n = ctx.cluster.size
        self.cpu_free = [0] * n
        self.written: set[int] = set()  # the nodes whose ``cpu_free`` was ever set (few: see ``cpu_queues``)
        self.delivery_stride = delivery_stride
        self.delivery_budget = ctx.scenario.history.max_deliveries if any(ctx.cluster.isolated) else 0
        self.deliveries: list[tuple[int, int, int, int]] = []  # (msg, node, t, hops)
        self._blocks: list[np.ndarray] = []  # earlier rows, int64[4, n], in the order logged
        self.validating: set[int] = set()  # messages waiting for an isolated node's CPU

    def validate(self, t: int, node: int, m: int) -> None:
        """``node`` validates its own message ``m``; nothing spreads."""
        start = self.cpu_free[node]
        if start < t:
            start = t
        processing = self.processing
        done = start + (processing.constant if processing.constant is not None else processing())
        self.cpu_free[node] = done
        self.written.add(node)
        stride = self.delivery_stride
        if stride and m % stride == 0 and self.delivery_budget > 0:
            self.delivery_budget -= 1
            self.deliveries.append((m, node, done, 0))
        if done == t:
            self.on_validated(t, node, m, ITEM_MSG, -1, 0)
        else:
            self.validating.add(m)
            self.ctx.events.push(done, self._validated, node, m)

    def _validated(self, t: int, node: int, m: int, _c: int, _d: int) -> None:
        self.validating.discard(m)
        if self.ctx.cluster.up[node]:
            self.on_validated(t, node, m, ITEM_MSG, -1, 0)

    def validate_block(self, t: int, node: int) -> None:
        """The leader validates its own block: nobody to gossip to, but it costs CPU."""
        start = max(t, self.cpu_free[node])
        self.cpu_free[node] = start + self.processing()
        self.written.add(node)

    def restarted(self, t: int, node: int) -> None:
        self.cpu_free[node] = t
        self.written.add(node)

    def cpu_queues(self) -> dict[int, int]:
        """When each node's CPU here is next free, for the nodes it ever held (every other
        node's is 0): a sample of the validation backlog reads these, not a list of every node."""
        return {node: self.cpu_free[node] for node in self.written}

    def _pending_block(self) -> None:
        if self.deliveries:
            self._blocks.append(np.asarray(self.deliveries, dtype=np.int64).T)
            self.deliveries = []

    def add_deliveries(self, rows: np.ndarray) -> None:
        """Delivery rows logged elsewhere (the one-node loop), int64[4, n], after those so far."""
        self._pending_block()
        self._blocks.append(rows)

    @property
    def delivery_rows(self) -> int:
        """Delivery rows logged and not yet taken."""
        return len(self.deliveries) + sum(int(block.shape[1]) for block in self._blocks)

    def take_deliveries(self) -> np.ndarray:
        """Every delivery row logged since the last call, int64[4, n] (msg, node, t, hops)."""
        self._pending_block()
        blocks, self._blocks = self._blocks, []
        if not blocks:
            return np.zeros((4, 0), dtype=np.int64)
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
