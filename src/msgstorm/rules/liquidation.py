"""The liquidation mechanisms' formulas, written once: how much a call closes, the health
factor, and the venue's cover of a shortfall (insurance fund, deleveraging, socialised loss).

Place in the pipeline: beside ``rules/market.py`` (whose ``liquidation_costs`` prices every
close: realised PnL, penalty, slippage), below the mechanisms (``market/liquidation.py``)
and the venue's books (``market/venue.py``) that apply them, and the tests that work them
by hand. Imports nothing but numpy and ``rules/market.py``. docs/model.md states each one.

Notation, one account at on-chain price ``p``: equity ``E`` (``rules.market.equity``),
notional ``N = size x p``, maintenance margin ``m``, penalty (fee or bonus) rate ``f``,
slippage coefficient ``k = slippage_bps / (depth x 10,000)`` (a close of notional ``x``
pays ``k x^2``: ``rules.market.impact_bps``).
"""

from __future__ import annotations

import math

import numpy as np

from msgstorm.rules.market import Number

__all__ = ["adl_price_per_unit", "auction_price", "close_factor_notional", "debt", "decay", "health_factor",
           "decay_age_ns", "flip_close", "flip_tab", "partial_close_notional", "partial_close_notionals",
           "slippage_coefficient", "split_fee"]


def slippage_coefficient(slippage_bps: float, depth: float, exponent: float = 1.0) -> float:
    """``k``: a close of notional ``x`` pays ``k x^(1 + exponent)`` of slippage on the
    book's depth curve (``rules.market.impact_bps``; ``k x^2`` in the linear depth model)."""
    if exponent == 1.0:
        return slippage_bps / (depth * 1e4)
    return slippage_bps / (math.pow(depth, exponent) * 1e4)


def health_factor(equity_value: float, notional_value: float, maintenance: float) -> float:
    """``E / (m x N)``: below 1 exactly when the account is past its maintenance line
    (infinite for an empty position or no maintenance margin)."""
    bound = maintenance * notional_value
    return math.inf if bound <= 0 else equity_value / bound


def partial_close_notional(equity_value: float, notional_value: float, target: float, fee_rate: float,
                           slippage_k: float, exponent: float = 1.0) -> float | None:
    """The least notional ``x`` a partial liquidation closes so that, after its penalty and
    slippage, the equity is at least ``target`` x the remaining notional:

        E - f x - k x^2 >= t (N - x)   <=>   k x^2 + (f - t) x + (t N - E) <= 0,

    whose smallest root is ``x = 2 (t N - E) / ((t - f) + sqrt((t - f)^2 - 4 k (t N - E)))``
    (the stable form, valid for ``k = 0``). 0 when the account already meets the target;
    None when no ``x`` within ``[0, N]`` does (a penalty at or above the target margin, a
    bankrupt account, or slippage too steep): the mechanism then closes it whole."""
    need = target * notional_value - equity_value
    if need <= 0:
        return 0.0
    if equity_value <= 0:
        return None
    if exponent != 1.0:
        return _partial_on_a_curve(need, notional_value, target - fee_rate, slippage_k, exponent)
    gain = target - fee_rate
    discriminant = gain * gain - 4.0 * slippage_k * need
    if gain <= 0 or discriminant < 0:
        return None
    closed = 2.0 * need / (gain + math.sqrt(discriminant))
    return closed if closed < notional_value else None


def partial_close_notionals(equity_value: np.ndarray, notional_value: np.ndarray, target: float,
                            fee_rate: float, slippage_k: float) -> np.ndarray:
    """``partial_close_notional`` of many accounts on the linear depth curve (the probe books'
    calls of a block): the same operations in the same order, so the same numbers, with NaN
    where it gives None (``tests/test_market_probe_calls.py`` draws accounts and compares)."""
    need = target * notional_value - equity_value
    gain = target - fee_rate
    discriminant = gain * gain - 4.0 * slippage_k * need
    none = (equity_value <= 0) | (discriminant < 0) if gain > 0 else np.ones(len(need), dtype=bool)
    closed = 2.0 * need / (gain + np.sqrt(np.where(none, 0.0, discriminant)))
    closed = np.where(none | (closed >= notional_value), np.nan, closed)
    return np.where(need <= 0, 0.0, closed)


def _partial_on_a_curve(need: float, notional_value: float, gain: float, slippage_k: float,
                        exponent: float) -> float | None:
    """``partial_close_notional`` on a depth curve of another ``exponent`` e: the least root
    of ``g(x) = (t - f) x - k x^(1 + e) - (t N - E)``, concave, largest at
    ``x* = ((t - f) / (k (1 + e)))^(1 / e)``; found by bisection on ``[0, min(x*, N)]`` (no
    closed form); None when ``g`` stays below 0 there."""
    if gain <= 0:
        return None
    peak = notional_value
    if slippage_k > 0:
        ratio = gain / (slippage_k * (1.0 + exponent))
        # x* past N (a slippage so small that x* is past what a double holds, too) leaves N the end.
        if math.log(ratio) / exponent < math.log(notional_value):
            peak = math.pow(ratio, 1.0 / exponent)

    def g(x: float) -> float:
        return gain * x - slippage_k * math.pow(x, 1.0 + exponent) - need

    if g(peak) < 0:
        return None
    low, high = 0.0, peak
    for _ in range(200):  # to the last bit of a double
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if g(middle) >= 0:
            high = middle
        else:
            low = middle
    return high if high < notional_value else None


def debt(side: int, equity_value: float, notional_value: float) -> float:
    """What the account owes, read as a loan: a long borrowed ``N - E`` of the quote to hold
    its units; a short borrowed the units, worth ``N``."""
    return notional_value - equity_value if side > 0 else notional_value


def close_factor_notional(side: int, equity_value: float, notional_value: float, close_factor: float) -> float:
    """One close-factor call: it repays ``close_factor`` x the debt by closing that notional
    (``min(c x debt, N)``); the caller takes its bonus on it."""
    return min(close_factor * debt(side, equity_value, notional_value), notional_value)


def split_fee(fee: Number, keeper_share: float) -> tuple[Number, Number]:
    """A liquidation's penalty split ``(keeper, insurance fund)``: ``keeper_share`` to the
    keeper, the rest to the fund."""
    keeper: Number = fee * keeper_share
    fund: Number = fee - keeper
    return keeper, fund


def adl_price_per_unit(shortfall: float, closed_size: float) -> float:
    """Auto-deleveraging closes counterparties at the bankrupt position's price: the
    bankrupt account's close moved to where its collateral is exactly spent, so each unit a
    counterparty closes gives up ``shortfall / closed_size`` of what it would realise at
    ``p``."""
    return shortfall / closed_size if closed_size > 0 else 0.0


def decay(kind: str, age_ns: int, tau_ns: int, step_ns: int, cut: float) -> float:
    """A Dutch auction's price multiplier ``age_ns`` after its start (Maker's clip abaci):
    ``linear`` 1 - age / tau (0 from tau on); ``stair_step`` cut^floor(age / step);
    ``exponential`` cut^(age / step)."""
    if kind == "linear":
        return max(0.0, 1.0 - age_ns / tau_ns)
    if kind == "stair_step":
        return float(cut ** (age_ns // step_ns))
    return float(cut ** (age_ns / step_ns))


def auction_price(side: int, start_price: float, multiplier: float) -> float:
    """The price of a Dutch auction closing a position of ``side``: a long's units are sold,
    the price falling from ``start_price`` (``start_price x multiplier``); a short's are
    bought back, the price rising from it (``start_price / multiplier``, infinite at 0)."""
    if side > 0:
        return start_price * multiplier
    return math.inf if multiplier <= 0 else start_price / multiplier


def decay_age_ns(kind: str, at_most: float, tau_ns: int, step_ns: int, cut: float) -> int | None:
    """The least age at which ``decay`` is at most ``at_most`` (None: never): 0 for
    ``at_most`` >= 1; linear tau (1 - at_most); stair-step step x ceil(ln at_most / ln cut);
    exponential step x ln at_most / ln cut (rounded up to the nanosecond)."""
    if at_most >= 1.0:
        return 0
    if kind == "linear":
        return math.ceil(tau_ns * (1.0 - max(at_most, 0.0)))
    if at_most <= 0:
        return None
    steps = math.log(at_most) / math.log(cut)
    if kind == "stair_step":
        return int(step_ns * math.ceil(steps - 1e-12))
    return math.ceil(step_ns * steps)


def flip_tab(debt_value: float, penalty_rate: float) -> float:
    """An English auction's ``tab`` (Maker's flip): the debt with its penalty, ``D (1 + f)``,
    the most the tend phase raises."""
    return max(debt_value, 0.0) * (1.0 + penalty_rate)


def flip_close(size: float, entry: float, collateral: float, bid: float, lot: float, price: float,
               penalty_rate: float) -> tuple[float, float, float]:
    """An English auction's close of a long (a vault: ``size`` units of collateral owing
    ``D = size x entry - collateral``): the winner paid ``bid`` for ``lot`` units, the owner
    gets the other ``size - lot`` back, valued at ``price``. ``(effective price, penalty,
    collateral after)``: the whole position closes at ``P* = (bid + (size - lot) price) / size``,
    the penalty is what the bid raised above the debt, at most ``f D``, and the account keeps
    ``bid - D + (size - lot) price - penalty`` (negative: the debt the bid did not cover)."""
    owed = size * entry - collateral
    penalty = min(max(bid - owed, 0.0), penalty_rate * max(owed, 0.0))
    returned = size - lot
    effective = (bid + returned * price) / size
    after = collateral + size * (effective - entry) - penalty
    return effective, penalty, after
