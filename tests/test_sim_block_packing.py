"""Block packing (sim/block_packing.py): one rule for the sequencer, a lane's share, the
producers and the compiled loop; a block stops at the first message that does not fit."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace
from typing import Any

import numpy as np

from msgstorm.sim.block_packing import NO_GAS_LIMIT, BlockFill, fits, fits_compiled
from msgstorm.sim.forks import ForkChain
from msgstorm.sim.lane import fill_block
from msgstorm.sim.state import AGENT, KIND, SIZE

SMALL, BIG = 0, 1  # kind indices
GAS_OF = [21_000, 50_000]


def _record(kind: int, size_bytes: int) -> list[Any]:
    record: list[Any] = [0] * 16
    record[KIND] = kind
    record[SIZE] = size_bytes
    record[AGENT] = 0
    return record


# Mempool order: small, big, small. Gas limit 70,000: small (21,000) fits, small + big
# (71,000) does not: the block stops there, with one message of 21,000 gas and
# 100 (header) + 10 bytes. Reaching past the big one would take the second small one too.
RECORDS = {1: _record(SMALL, 10), 2: _record(BIG, 20), 3: _record(SMALL, 30)}


def test_the_rule_by_hand() -> None:
    assert fits(0, 0, 50_000, 1, 50_000)
    assert not fits(0, 0, 50_001, 1, 50_000)
    assert not fits(1, 0, 0, 1, NO_GAS_LIMIT)  # the message limit
    assert fits(5, 10**12, 10**12, 6, NO_GAS_LIMIT)  # no gas limit
    rng = np.random.default_rng(7)
    for _ in range(200):
        taken, max_messages = (int(x) for x in rng.integers(0, 5, 2))
        gas_used, gas, max_gas = (int(x) for x in rng.integers(-1, 100, 3))
        assert fits_compiled(taken, gas_used, gas, max_messages, max_gas) == fits(taken, gas_used, gas, max_messages,
                                                                                    max_gas)


def test_the_sequencer_stops_at_a_message_that_does_not_fit() -> None:
    waiting = deque([1, 2, 3])
    block = BlockFill(100)
    fill_block(waiting, RECORDS, block, 10, 70_000, GAS_OF)
    assert (block.messages, block.gas, block.size_bytes) == ([1], 21_000, 110)
    assert list(waiting) == [2, 3]  # the rest wait for the next block, in order


def _producer(max_messages: int, max_gas: int | None, censored: set[int] = frozenset()) -> Any:
    censoring = {0: np.zeros((len(GAS_OF), 1), dtype=bool)}
    for kind in censored:
        censoring[0][kind, 0] = True
    return SimpleNamespace(ctx=SimpleNamespace(msgs=SimpleNamespace(live=RECORDS)), pool=None,
                           mempool={0: [1, 2, 3]}, _on_branch=lambda m, parent: False, censoring=censoring,
                           header_size=100, gas_of=GAS_OF, max_messages=max_messages, max_gas=max_gas)


def test_a_producer_stops_at_a_message_that_does_not_fit() -> None:
    """Before: the producer skipped the big message and took the second small one
    ([1, 3], 42,000 gas), so a big message could wait while later small ones went by."""
    take, gas, size, left_out = ForkChain._fill(_producer(10, 70_000), 0, 0, 0)
    assert (take, gas, size, left_out) == ([1], 21_000, 110, [])
    take, gas, size, _ = ForkChain._fill(_producer(10, None), 0, 0, 0)
    assert (take, gas, size) == ([1, 2, 3], 92_000, 160)


def test_a_censored_message_is_not_offered_and_a_full_block_leaves_none_out() -> None:
    # Big ones censored: the block takes both small ones; the big one is left out.
    take, gas, _, left_out = ForkChain._fill(_producer(10, 70_000, {BIG}), 0, 0, 0)
    assert (take, gas, left_out) == ([1, 3], 42_000, [2])
    # A block of one message is full before the big one: it was not left out by censoring.
    take, _, _, left_out = ForkChain._fill(_producer(1, None, {BIG}), 0, 0, 0)
    assert (take, left_out) == ([1], [])
