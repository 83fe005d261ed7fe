"""The live target's bookkeeping: receipts kept in arrival order whichever way they come,
and each message's first arrival found as the per-receipt loop the target first had
found it, on random receipts."""

from __future__ import annotations

import numpy as np
import pytest

from msgstorm.live.target import Receipts, first_arrivals


def _first_arrivals_by_loop(ids: list[int], arrived: list[int]) -> tuple[list[int], list[int]]:
    row_of = {m: r for r, m in enumerate(ids)}
    rows: list[int] = []
    at: list[int] = []
    seen: set[int] = set()
    for position, m in enumerate(arrived):
        row = row_of.get(m)
        if row is not None and row not in seen:
            seen.add(row)
            rows.append(row)
            at.append(position)
    return rows, at


@pytest.mark.parametrize("seed", range(8))
def test_first_arrivals_are_the_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(1000, dtype=np.int64) * 3)[: rng.integers(0, 500)]
    # Receipts of sent messages (some twice), of messages never sent, in any order.
    arrived = np.concatenate([rng.choice(ids, size=rng.integers(0, 800)) if ids.size else np.zeros(0, np.int64),
                              rng.integers(-5, 4000, size=50)]).astype(np.int64)
    rng.shuffle(arrived)
    rows, at = first_arrivals(ids, arrived)
    assert (rows.tolist(), at.tolist()) == _first_arrivals_by_loop(ids.tolist(), arrived.tolist())


def test_first_arrivals_of_nothing() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert [a.tolist() for a in first_arrivals(empty, np.arange(3))] == [[], []]
    assert [a.tolist() for a in first_arrivals(np.arange(3), empty)] == [[], []]


def test_receipts_keep_arrival_order_across_single_and_bulk_receipts() -> None:
    receipts = Receipts()
    receipts.add(1, 10, 100)
    receipts.add(0, 11, 101)
    receipts.add_read(0, np.array([12, 13], dtype=np.int64), 102)
    receipts.add(1, 14, 103)
    receipts.add_read(1, np.zeros(0, dtype=np.int64), 104)
    receipts.add_read(2, np.array([15], dtype=np.int64), 105)
    receipts.add(0, 16, 106)
    assert receipts.count == 7
    consumer, msg, t = receipts.columns()
    assert consumer.tolist() == [1, 0, 0, 0, 1, 2, 0]
    assert msg.tolist() == [10, 11, 12, 13, 14, 15, 16]
    assert t.tolist() == [100, 101, 102, 102, 103, 105, 106]
    assert [c.dtype for c in (consumer, msg, t)] == [np.int64] * 3
    assert [c.size for c in Receipts().columns()] == [0, 0, 0]
