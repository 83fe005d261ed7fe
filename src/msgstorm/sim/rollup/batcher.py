"""The batcher: L2 blocks, in order, into batches posted to L1.

Place in the pipeline: ``sim/rollup``, between the L2 blocks (``stage``) and the L1
(``l1``). The rule is ``rules/batcher.py``'s, which the live rollup steps too; here it is
stepped over every L2 block of the run (about 350,000 a day at 4 blocks a second, a fraction
of a second).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msgstorm.rules.batcher import BatchRule, Closed
from msgstorm.scenario.rollup import BatcherSpec

__all__ = ["Batches", "make_batches"]


@dataclass(frozen=True)
class Batches:
    """Batches in posting order. ``of_block[i]``: the batch of L2 block ``i`` (of the blocks
    given, in their order); per batch its open and close times, its L2 blocks, messages, raw
    and compressed bytes, and whether it closed full (else by its delay)."""

    of_block: np.ndarray
    t_opened: list[int]
    t_closed: list[int]
    blocks: list[int]
    messages: list[int]
    raw_bytes: list[int]
    compressed_bytes: list[int]
    full: list[bool]


def make_batches(block_t: np.ndarray, block_bytes: np.ndarray, block_messages: np.ndarray,
                 spec: BatcherSpec) -> Batches:
    """Batches of L2 blocks with times ``block_t`` (ascending), message bytes ``block_bytes``
    and message counts ``block_messages``."""
    n = int(block_t.size)
    of_block = np.empty(n, dtype=np.int64)
    out = Batches(of_block, [], [], [], [], [], [], [])
    rule = BatchRule(spec.max_delay, spec.max_size, spec.compression_ratio)
    placed = 0  # blocks given a batch so far

    def record(closed: list[Closed]) -> None:
        nonlocal placed
        for batch in closed:
            of_block[placed:placed + batch.blocks] = len(out.t_opened)
            placed += batch.blocks
            out.t_opened.append(batch.t_opened)
            out.t_closed.append(batch.t_closed)
            out.blocks.append(batch.blocks)
            out.messages.append(batch.messages)
            out.raw_bytes.append(batch.raw_bytes)
            out.compressed_bytes.append(batch.compressed_bytes)
            out.full.append(batch.full)

    for t, size, count in zip(block_t.tolist(), block_bytes.tolist(), block_messages.tolist(), strict=True):
        record(rule.add(t, size, count))
    record(rule.close())
    return out
