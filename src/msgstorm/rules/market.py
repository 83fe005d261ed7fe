"""The market's rules written once: PnL, equity, notional, price impact, a liquidation's
execution and the horizon.

Place in the pipeline: below everything that reads or makes the market (``rules/``, beside
the base-fee rule). The reactor (execution, top-ups), the front-runners, the probe books,
the analysis (marking to market, judging over the horizon) and the report import these
rather than writing them again; the module imports nothing but numpy, so the analysis and
the report load no market layer, no simulator, no scenario schema and no compiled code to
use them (``tests/test_layers.py``, ``tests/test_startup.py``). ``market/accounts.py`` says
what the formulas mean for an account's margin; ``tests/test_market_analysis.py`` mutates
each and checks every consumer's numbers move.
"""

from __future__ import annotations

import math
from typing import NamedTuple, TypeVar

import numpy as np

# A scalar (one account, in the reactor's handlers) or an array (every account, in the analysis).
Number = TypeVar("Number", float, np.ndarray)

__all__ = ["Execution", "Number", "equity", "execute", "horizon_ns", "impact_bps", "liquidation_costs", "notional", "pnl",
           "realised_volatility", "thinned_depth"]


def pnl(side: Number, size: Number, entry: Number, price: Number) -> Number:
    """What a position has made at ``price``: ``side x size x (price - entry)``."""
    made: Number = side * size * (price - entry)
    return made


def equity(side: Number, size: Number, entry: Number, collateral: Number, price: Number) -> Number:
    """An account's equity at ``price``: its collateral plus its PnL there."""
    held: Number = collateral + pnl(side, size, entry, price)
    return held


def notional(size: Number, price: Number) -> Number:
    """A position's notional at ``price``."""
    value: Number = size * price
    return value


def impact_bps(notional_value: Number, slippage_bps: float, depth: float, exponent: float = 1.0) -> Number:
    """How far an order of ``notional_value`` moves the price, in basis points: the book's
    depth curve, ``slippage_bps x (notional / depth)^exponent`` (``exponent`` 1: the linear
    depth model, ``slippage_bps`` per ``depth`` of notional; 0.5: the square-root impact law;
    another: a power law). The linear case is written as before, so its numbers are the same
    to the last bit."""
    if exponent == 1.0:
        bps: Number = slippage_bps * notional_value / depth
        return bps
    curved: Number = slippage_bps * (notional_value / depth) ** exponent
    return curved


def thinned_depth(depth: float, volatility: float, sensitivity: float) -> float:
    """The book's depth under stress: ``depth / (1 + sensitivity x volatility)``, with
    ``volatility`` the realised volatility (per square root of a second) of the recent
    on-chain price (``realised_volatility``); ``depth`` itself at ``sensitivity`` 0."""
    return depth / (1.0 + sensitivity * volatility)


def realised_volatility(times_ns: list[int], log_returns: list[float], t_ns: int, window_ns: int) -> float:
    """The realised volatility per square root of a second at ``t_ns`` over the last
    ``window_ns``: ``sqrt(sum of r_i^2 / window)`` over the log returns ``r_i`` of the
    on-chain price whose changes came in ``(t - window, t]`` (in seconds; 0 without one)."""
    total = math.fsum(r * r for when, r in zip(times_ns, log_returns, strict=True) if t_ns - window_ns < when <= t_ns)
    return math.sqrt(total / (window_ns / 1e9))


class Execution(NamedTuple):  # a tuple: built on every liquidation, and a frozen dataclass builds slowly
    """One liquidation's account: what the position realised and what is left."""

    price: float  # the on-chain price it executed at
    pnl: float
    penalty: float
    slippage: float  # its cost
    slippage_bps: float
    collateral_after: float  # may be negative
    bad_debt: float


def liquidation_costs(side: Number, size: Number, entry: Number, collateral: Number, price: Number,
                      penalty_rate: float, slippage_bps: float, depth: float,
                      exponent: float = 1.0) -> tuple[Number, Number, Number, Number]:
    """A liquidation at on-chain ``price``, for one account or many at once: ``(penalty,
    slippage, slippage_bps, collateral_after)``, the last its equity there less both costs
    (negative: bad debt); the slippage on the book's depth curve (``impact_bps``, ``depth``
    thinned by the caller under stress: ``thinned_depth``). ``execute`` applies it to one
    account; the probe books (``market/probes.py``) to every probe a block carries."""
    closed = notional(size, price)
    bps = impact_bps(closed, slippage_bps, depth, exponent)
    penalty = penalty_rate * closed
    slippage = closed * bps / 1e4
    after = equity(side, size, entry, collateral, price) - penalty - slippage
    return penalty, slippage, bps, after


def execute(side: int, size: float, entry: float, collateral: float, price: float, penalty_rate: float,
            slippage_bps: float, depth: float, exponent: float = 1.0) -> Execution:
    """A liquidation at on-chain ``price`` (``market/accounts.py`` says what each part is):
    the reactor executes with it when a liquidation commits, and the analysis of positions
    on another chain (``analysis/collateral.py``) when the relayed one commits there."""
    penalty, slippage, bps, after = liquidation_costs(side, size, entry, collateral, price, penalty_rate,
                                                      slippage_bps, depth, exponent)
    return Execution(price, pnl(side, size, entry, price), penalty, slippage, bps, after, max(0.0, -after))


def horizon_ns(duration_ns: int) -> int:
    """The market's horizon: ``run.duration``, the span the oracle publishes over.

    The reactor ends the oracle's schedule there (``oracle_updates``) and the analysis
    judges every run of a scenario over ``[0, horizon]`` (eligibility, marking to market,
    staleness), whenever the run happened to settle, so two points of a sweep are judged
    over the same price path. The drain is not in it: no price is published in it, so no
    keeper could answer a crossing there, and judging one would charge the messaging layer
    for an oracle that had stopped (a 10 s drain under a 2%/s price did so for every point
    of a safe-leverage sweep, whatever its latency). Liquidations sent in time still commit
    and count during the drain. The paths themselves are drawn over the whole run
    (duration + drain), for what reads true prices then (the batch auction's book)."""
    return int(duration_ns)
