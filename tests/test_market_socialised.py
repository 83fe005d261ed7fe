"""A socialised loss's compiled pass (rules/socialised.py): a hand-worked loss, and the same
numbers, bit for bit, as the numpy code it replaced (``pnl``, Python's ``sum`` in account
order, ``charged x profit / total``; ``accounts.line_prices``)."""

from __future__ import annotations

import numpy as np
import pytest

from msgstorm.market.accounts import line_prices
from msgstorm.rules.market import pnl
from msgstorm.rules.socialised import reline, socialise


def _buffers(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(n, dtype=np.int64), np.empty(n), np.empty(n), np.empty(n)


def test_a_hand_worked_loss_is_shared_pro_rata_to_profit() -> None:
    # Two longs from 100 (sizes 2 and 1), a short from 120 and the bankrupt short from 90, at
    # 110: profits 2 x 10 = 20, 1 x 10 = 10, 1 x (120 - 110) = 10; the bankrupt is not charged.
    side = np.array([1.0, 1.0, -1.0, -1.0])
    size = np.array([2.0, 1.0, 1.0, 3.0])
    entry = np.array([100.0, 100.0, 120.0, 90.0])
    collateral = np.full(4, 50.0)
    closed = np.zeros(4, dtype=bool)
    of = np.ones(4, dtype=bool)
    found, shares, sizes, after = _buffers(4)
    count, total, charged = socialise(side, size, entry, collateral, closed, of, 3, 110.0, 15.0, found, shares, sizes,
                                      after)
    # 15 of a total profit of 40: 15 x 20 / 40 = 7.5, then 3.75 and 3.75.
    assert (count, total, charged) == (3, 40.0, 15.0)
    assert found[:3].tolist() == [0, 1, 2] and shares[:3].tolist() == [7.5, 3.75, 3.75]
    assert sizes[:3].tolist() == [2.0, 1.0, 1.0] and after[:3].tolist() == [42.5, 46.25, 46.25]
    assert collateral.tolist() == [42.5, 46.25, 46.25, 50.0]  # the bankrupt's is the caller's to credit
    # More than they made: they pay all of it (40), each its whole profit.
    count, total, charged = socialise(side, size, entry, collateral, closed, of, 3, 110.0, 100.0, found, shares, sizes,
                                      after)
    assert (count, total, charged) == (3, 40.0, 40.0) and shares[:3].tolist() == [20.0, 10.0, 10.0]
    assert collateral.tolist() == [22.5, 36.25, 36.25, 50.0]
    # A closed account, one of another instrument or side mask, and nobody in profit.
    closed[0] = True
    of[2] = False
    count, total, charged = socialise(side, size, entry, collateral, closed, of, 3, 110.0, 5.0, found, shares, sizes,
                                      after)
    assert (count, total, charged) == (1, 10.0, 5.0) and found[0] == 1 and collateral[1] == 31.25
    count, total, charged = socialise(side, size, entry, collateral, closed, of, 3, 90.0, 5.0, found, shares, sizes,
                                      after)
    assert (count, total, charged) == (0, 0.0, 0.0) and collateral[1] == 31.25


def test_the_pass_gives_the_numpy_codes_numbers_bit_for_bit() -> None:
    rng = np.random.default_rng(45)
    n = 2_000
    side = np.where(rng.random(n) < 0.7, 1.0, -1.0)
    entry = 2000.0 * np.exp(rng.normal(0.0, 0.01, n))
    size = np.where(rng.random(n) < 0.1, 0.0, rng.lognormal(0.0, 1.0, n))
    collateral = size * entry / rng.uniform(2.0, 15.0, n)
    closed = rng.random(n) < 0.2
    of = rng.random(n) < 0.9
    found, shares, sizes, after = _buffers(n)
    for price, left in ((1400.0, 1e5), (1990.0, 1e9), (2100.0, 333.3)):
        account = int(rng.integers(n))
        # The numpy code (Venue._profitable and _socialise before the pass).
        made = pnl(side, size, entry, np.full_like(size, price))
        eligible = (made > 0) & (size > 0) & of & ~closed
        eligible[account] = False
        expected = np.flatnonzero(eligible)
        profits = made[expected]
        expected_total = sum(profits.tolist())
        expected_charged = min(left, expected_total)
        expected_shares = expected_charged * profits / expected_total
        expected_after = collateral[expected] - expected_shares
        mine = collateral.copy()
        count, total, charged = socialise(side, size, entry, mine, closed, of, account, price, left, found, shares,
                                          sizes, after)
        assert count == expected.size > 0
        assert total == expected_total and charged == expected_charged
        assert np.array_equal(found[:count], expected)
        assert np.array_equal(shares[:count], expected_shares) and np.array_equal(after[:count], expected_after)
        assert np.array_equal(sizes[:count], size[expected])
        untouched = np.ones(n, dtype=bool)
        untouched[expected] = False
        assert np.array_equal(mine[expected], expected_after) and np.array_equal(mine[untouched], collateral[untouched])
        # The lines of the accounts charged, as ``line_prices`` gives them.
        line, bankruptcy = np.full(n, np.nan), np.full(n, np.nan)
        reline(side, size, entry, mine, 0.05, found[:count].copy(), line, bankruptcy)
        want_line, want_bankruptcy = line_prices(side[expected], size[expected], entry[expected], mine[expected], 0.05)
        assert np.array_equal(line[expected], want_line) and np.array_equal(bankruptcy[expected], want_bankruptcy)
        assert np.isnan(line[untouched]).all()


def test_a_reline_by_hand() -> None:
    # A long of 2 from 100 with 42.5: notional 200, line (200 - 42.5) / (2 x 0.95), bankrupt at
    # 100 - 42.5 / 2; a short of 1 from 120 with 46.25: (120 + 46.25) / (1 x 1.05), 120 + 46.25.
    line, bankruptcy = np.zeros(2), np.zeros(2)
    reline(np.array([1.0, -1.0]), np.array([2.0, 1.0]), np.array([100.0, 120.0]), np.array([42.5, 46.25]), 0.05,
           np.array([0, 1], dtype=np.int64), line, bankruptcy)
    assert line.tolist() == pytest.approx([157.5 / 1.9, 166.25 / 1.05], rel=1e-15)
    assert bankruptcy.tolist() == [78.75, 166.25]
