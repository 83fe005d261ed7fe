"""Funding between longs and shorts, written once: the rate of an interval and what each
open position pays or receives.

Place in the pipeline: beside ``rules/market.py`` (whose ``impact_bps`` gives the book's
premium), below the venue's funding clock (``market/funding.py``) that applies it every
``[market.funding] interval`` and the tests that work it by hand. Imports nothing but numpy
and ``rules/market.py``. docs/model.md ("Funding") states each formula.

Notation, one instrument at its index price ``p`` (the on-chain oracle price: funding
settles on the index): each open position's notional ``N_i = size_i x p``; the longs'
open interest ``L = sum of the longs' N_i``, the shorts' ``S``.
"""

from __future__ import annotations

import math

import numpy as np

from msgstorm.rules.market import impact_bps

__all__ = ["book_premium", "funding_payments", "funding_rate"]


def book_premium(long_notional: float, short_notional: float, slippage_bps: float, depth: float,
                 exponent: float = 1.0) -> float:
    """The premium the book puts on the perpetual over the index, as a fraction: the move an
    order of the open-interest imbalance ``L - S`` makes in the book (``impact_bps / 10,000``
    on the market's depth curve, of ``|L - S|``), positive when the longs outweigh the shorts."""
    imbalance = long_notional - short_notional
    return math.copysign(float(impact_bps(abs(imbalance), slippage_bps, depth, exponent)) / 1e4, imbalance)


def funding_rate(rule: str, fixed_rate: float, clamp: float, long_notional: float, short_notional: float,
                 slippage_bps: float, depth: float, exponent: float = 1.0) -> float:
    """An interval's funding rate (positive: the longs pay the shorts): ``fixed``, the
    ``fixed_rate``; ``premium``, ``fixed_rate + book_premium`` bounded to
    ``[-clamp, clamp]``."""
    if rule == "fixed":
        return fixed_rate
    premium = fixed_rate + book_premium(long_notional, short_notional, slippage_bps, depth, exponent)
    return min(max(premium, -clamp), clamp)


def funding_payments(side: np.ndarray, notional_value: np.ndarray, rate: float) -> np.ndarray:
    """What each open position receives in an interval (negative: pays), zero-sum: the
    paying side (the longs at a positive rate, the shorts at a negative one) pays
    ``|rate| x N_i`` each; the other side shares the total pro rata to notional. With equal
    open interest each receiver gets ``|rate| x N_j``; with none on the receiving side no one
    pays (there is no one to pay)."""
    received = np.zeros(notional_value.size, dtype=np.float64)
    if rate == 0.0 or notional_value.size == 0:
        return received
    paying = side > 0 if rate > 0 else side < 0
    receiving = ~paying
    pool = float(notional_value[receiving].sum())
    if pool <= 0.0:
        return received
    paid = abs(rate) * notional_value[paying]
    received[paying] = -paid
    received[receiving] = float(paid.sum()) * notional_value[receiving] / pool
    return received
