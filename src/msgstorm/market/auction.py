"""A frequent batch auction's clearing rule: one uniform price for every order of a batch.

Place in the pipeline: the market layer, beside ``accounts`` (what an execution costs). The
``batch_auction`` queue policy (``sim/policies_batch.py``) decides which orders form a batch;
this module decides what a batch of limit orders trades and at which price; the book
(``market/auction_book.py``) applies it to each batch of a run.

The rule (Budish, Cramton and Shim's frequent batch auction, with a simple book of the
batch's own limit orders):

- the clearing price maximises the volume traded, min(demand at p, supply at p), over the
  orders' limit prices; among those, the prices with the least imbalance |demand - supply|;
  among those, the midpoint of the lowest and the highest (so a batch with a range of equal
  prices clears in its middle);
- every buy at or above it and every sell at or below it may trade; the short side fills in
  full; the long side fills by price priority, level by level, and the orders of the level
  where the volume runs out share what is left pro rata to their quantities.

No time priority anywhere: permuting the orders of a batch permutes their fills and changes
none of them. Sums go through ``math.fsum`` (exactly rounded, so independent of the order
of the terms) so that this holds to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BUY", "SELL", "Clearing", "LimitOrder", "clear"]

BUY, SELL = 1, -1


@dataclass(frozen=True)
class LimitOrder:
    side: int  # BUY (+1) or SELL (-1)
    limit_price: float
    quantity: float


@dataclass(frozen=True)
class Clearing:
    price: float | None  # None: nothing trades
    volume: float
    fills: list[float]  # per order, in the order given
    imbalance: float = 0.0  # demand - supply at the price (positive: buyers were left over)


def _demand(orders: Sequence[LimitOrder], price: float) -> float:
    return math.fsum(o.quantity for o in orders if o.side == BUY and o.limit_price >= price)


def _supply(orders: Sequence[LimitOrder], price: float) -> float:
    return math.fsum(o.quantity for o in orders if o.side == SELL and o.limit_price <= price)


def clear(orders: Sequence[LimitOrder]) -> Clearing:
    """The batch's uniform clearing price and each order's fill (see the module docstring)."""
    for order in orders:
        if order.side not in (BUY, SELL) or order.quantity < 0 or not math.isfinite(order.limit_price):
            raise ValueError(f"not a limit order: {order}")
    prices = sorted({o.limit_price for o in orders})
    best: tuple[float, float] = (0.0, 0.0)  # (volume, -imbalance)
    chosen: list[float] = []
    for price in prices:
        demand, supply = _demand(orders, price), _supply(orders, price)
        key = (min(demand, supply), -abs(demand - supply))
        if key > best:
            best, chosen = key, [price]
        elif key == best and chosen:
            chosen.append(price)
    volume = best[0]
    if volume <= 0.0:
        return Clearing(None, 0.0, [0.0] * len(orders))
    price = (chosen[0] + chosen[-1]) / 2.0
    buys = [i for i, o in enumerate(orders) if o.side == BUY and o.limit_price >= price]
    sells = [i for i, o in enumerate(orders) if o.side == SELL and o.limit_price <= price]
    fills = [0.0] * len(orders)
    for side, members in ((BUY, buys), (SELL, sells)):
        _fill_side(orders, members, side, volume, fills)
    return Clearing(price, volume, fills, math.fsum([_demand(orders, price), -_supply(orders, price)]))


def _fill_side(orders: Sequence[LimitOrder], members: list[int], side: int, volume: float,
               fills: list[float]) -> None:
    """Fill ``volume`` from one side: best-priced levels first, pro rata within the last."""
    levels = sorted({orders[i].limit_price for i in members}, reverse=side == BUY)
    left = volume
    for level in levels:
        at = [i for i in members if orders[i].limit_price == level]
        total = math.fsum(orders[i].quantity for i in at)
        if total <= left:
            for i in at:
                fills[i] = orders[i].quantity
            left = math.fsum([left, -total])
            continue
        for i in at:
            fills[i] = left * orders[i].quantity / total
        return
