"""The batch auction's clearing rule against hand computations; no time priority."""

from __future__ import annotations

import itertools

import pytest

from msgstorm.market.auction import BUY, SELL, LimitOrder, clear

# Demand and supply at each limit price (worked on paper):
#   price   98  99  100  101  102
#   demand  20  20   15   10    0      (buys: 10 @ 101, 5 @ 100, 5 @ 99)
#   supply   8   8   14   14   24      (sells: 8 @ 98, 6 @ 100, 10 @ 102)
#   volume   8   8   14   10    0  -> 100 clears 14; buys are long by 1.
# Buys fill by price: 10 @ 101 in full, then 4 of the 5 @ 100; 5 @ 99 is below the price.
BOOK = [LimitOrder(BUY, 101.0, 10.0), LimitOrder(BUY, 100.0, 5.0), LimitOrder(BUY, 99.0, 5.0),
        LimitOrder(SELL, 98.0, 8.0), LimitOrder(SELL, 100.0, 6.0), LimitOrder(SELL, 102.0, 10.0)]
FILLS = [10.0, 4.0, 0.0, 8.0, 6.0, 0.0]


def test_clearing_price_and_fills_by_hand() -> None:
    result = clear(BOOK)
    assert result.price == 100.0
    assert result.volume == 14.0
    assert result.fills == FILLS


def test_equal_volumes_clear_at_the_midpoint() -> None:
    # 10 @ 101 against 10 @ 99: every price from 99 to 101 trades 10 with no imbalance.
    result = clear([LimitOrder(BUY, 101.0, 10.0), LimitOrder(SELL, 99.0, 10.0)])
    assert (result.price, result.volume, result.fills) == (100.0, 10.0, [10.0, 10.0])


def test_the_marginal_level_shares_pro_rata() -> None:
    # 9 sold at 100 to two buys of 6 @ 100 (and one of 3 @ 100 arriving last): 9 x 6/15, 9 x 3/15.
    result = clear([LimitOrder(BUY, 100.0, 6.0), LimitOrder(SELL, 100.0, 9.0), LimitOrder(BUY, 100.0, 6.0),
                    LimitOrder(BUY, 100.0, 3.0)])
    assert result.price == 100.0
    assert result.fills == pytest.approx([3.6, 9.0, 3.6, 1.8], abs=1e-12)


def test_no_cross_trades_nothing() -> None:
    result = clear([LimitOrder(BUY, 99.0, 5.0), LimitOrder(SELL, 100.0, 5.0)])
    assert result.price is None and result.fills == [0.0, 0.0]


def test_arrival_order_changes_no_fill() -> None:
    # Every permutation of the hand-built batch: the same price, each order the same fill.
    book = [*BOOK, LimitOrder(BUY, 100.0, 0.3)]  # a second order at the marginal level
    reference = clear(book)
    for order in itertools.permutations(range(len(book))):
        result = clear([book[i] for i in order])
        assert result.price == reference.price
        assert [result.fills[order.index(i)] for i in range(len(book))] == reference.fills


def test_not_an_order_is_refused() -> None:
    with pytest.raises(ValueError, match="not a limit order"):
        clear([LimitOrder(0, 100.0, 1.0)])
