"""Liquidation mechanisms: what one liquidation call closes, one small class each,
registered by name in ``LIQUIDATION_MECHANISMS``.

Place in the pipeline: the market reactor (``market/reactor.py``) asks the scenario's
mechanism (``[market.liquidation] mechanism``) what a committed liquidation closes at the
on-chain price (``Mechanism.closed_size``); ``call`` prices that close with the market's
one rule (``rules.market.liquidation_costs``, on the units closed) and splits its penalty
between the keeper and the insurance fund (``rules.liquidation.split_fee``); the venue's
books (``market/venue.py``) then cover a bankrupt account's shortfall. The formulas are in
``rules/liquidation.py`` and docs/model.md. The probe books (``market/probes.py``) make the
same ``call`` for a mechanism whose call reads the account and the price alone (``alone``),
each book with its own venue's books.

A new mechanism is one class registered with ``@mechanism(name)`` (here, or in an extension
module, ``scenario/registry.py``), with its settings in ``LiquidationSpec``. Its class
flags (``repeats``, ``auction``, ``english``, ``closes_whole``, ``cross``, ``alone``) are what the
scenario's checks, the cross-margin book and the sweeps read through the registry: no one
compares a mechanism's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple, TypeVar

import numpy as np

from msgstorm.rules.liquidation import (
    close_factor_notional,
    partial_close_notional,
    partial_close_notionals,
    slippage_coefficient,
    split_fee,
)
from msgstorm.rules.market import equity, liquidation_costs, notional, pnl
from msgstorm.scenario.market import LiquidationSpec, MarketSpec, impact_exponent
from msgstorm.scenario.registry import LIQUIDATION_MECHANISMS

__all__ = ["MATERIAL_SHARE", "Call", "Calls", "CloseFactor", "DutchAuction", "EnglishAuction",
           "Mechanism", "Partial", "Whole", "call", "calls",
           "mechanism", "mechanism_of"]

# A close within this share of the whole position closes it whole (no dust left open).
_DUST = 1e-12
# A close below this share of the position closes nothing: the account meets the rule to
# within float rounding (a second keeper's call in the block where the first one's partial
# close brought the account back to its line leaves ~1e-16 of it to close).
MATERIAL_SHARE = 1e-6


class Mechanism:
    """One liquidation mechanism: ``closed_size`` says how many units a call closes at
    ``price`` (the position's ``size``: whole; 0: nothing, the account meets the rule)."""

    name: ClassVar[str]
    # A keeper calls again at the same price while the account is past its line (a lending
    # market's close factor); otherwise it waits for a new price.
    repeats: ClassVar[bool] = False
    # A liquidation starts an auction that keepers take later (``market/dutch.py``): the
    # close is priced at the auction's price, without the book's slippage.
    auction: ClassVar[bool] = False
    # The auction is English (bids, ``market/flip.py``), not Dutch (``market/dutch.py``).
    english: ClassVar[bool] = False
    # Every call closes the whole position (the market's rule before mechanisms; the probe
    # books liquidate so).
    closes_whole: ClassVar[bool] = False
    # A cross-margin account may be liquidated by it (``market/cross.py``: positions closed,
    # largest requirement first); the others price one position's close.
    cross: ClassVar[bool] = False
    # What a call closes reads the account and the on-chain price alone (no auction the
    # keepers share): the probe books carry it (``market/probes.py``).
    alone: ClassVar[bool] = True

    def __init__(self, spec: LiquidationSpec, market: MarketSpec) -> None:
        self.spec = spec
        self.market = market
        self.exponent = impact_exponent(market)  # the depth curve's, once (a call reads it)
        # What every call reads, once: the penalty rate, the book's slippage (none for an
        # auction's taker) and depth, the keeper's share of the penalty.
        self.penalty_rate = market.liquidation_penalty
        self.slippage_bps = 0.0 if self.auction else market.slippage_bps
        self.depth = market.depth
        self.keeper_share = spec.keeper_share

    def closed_size(self, side: int, size: float, entry: float, collateral: float, price: float) -> float:
        return size

    def closed_sizes(self, side: np.ndarray, size: np.ndarray, entry: np.ndarray,
                     collateral: np.ndarray, price: np.ndarray) -> np.ndarray:
        """``closed_size`` of many positions (``calls``): the rule itself, position by position
        (a mechanism whose close is the whole position says so at once)."""
        if self.closes_whole:
            return np.array(size, dtype=np.float64)
        columns = (side.tolist(), size.tolist(), entry.tolist(), collateral.tolist(), price.tolist())
        closed = [self.closed_size(*one) for one in zip(*columns, strict=True)]
        return np.array(closed, dtype=np.float64)


T = TypeVar("T", bound=type[Mechanism])


def mechanism(name: str) -> Callable[[T], T]:
    """Class decorator: register a mechanism under ``name`` (``market.liquidation.mechanism``)."""

    def add(cls: T) -> T:
        cls.name = name
        LIQUIDATION_MECHANISMS.register(name)(cls)
        return cls

    return add


@mechanism("whole")
class Whole(Mechanism):
    """The position closed whole at the on-chain price (the market's rule before mechanisms)."""

    closes_whole = True
    cross = True


@mechanism("partial")
class Partial(Mechanism):
    """A perp engine's partial liquidation: the least notional whose close (after its penalty
    and slippage) brings the equity back to the maintenance margin, or the initial margin
    (``restore_to``), of what stays open (``rules.liquidation.partial_close_notional``);
    the whole position when none does."""

    cross = True

    def __init__(self, spec: LiquidationSpec, market: MarketSpec) -> None:
        super().__init__(spec, market)
        self.target = market.maintenance_margin if spec.restore_to == "maintenance" else spec.initial_margin
        # Sized on the calm book (docs/model.md, "Liquidity").
        self.slippage_k = slippage_coefficient(market.slippage_bps, market.depth, self.exponent)

    def closed_size(self, side: int, size: float, entry: float, collateral: float, price: float) -> float:
        closed = partial_close_notional(equity(side, size, entry, collateral, price), notional(size, price),
                                        self.target, self.market.liquidation_penalty, self.slippage_k, self.exponent)
        return size if closed is None else closed / price

    def closed_sizes(self, side: np.ndarray, size: np.ndarray, entry: np.ndarray,
                     collateral: np.ndarray, price: np.ndarray) -> np.ndarray:
        if self.exponent != 1.0:  # a bisection each: position by position
            return super().closed_sizes(side, size, entry, collateral, price)
        signed = side.astype(np.float64)
        held = equity(signed, size, entry, collateral, price)
        with np.errstate(divide="ignore", invalid="ignore"):
            closed = partial_close_notionals(held, notional(size, price), self.target,
                                             self.market.liquidation_penalty, self.slippage_k)
        return np.where(np.isnan(closed), size, closed / price)


@mechanism("close_factor")
class CloseFactor(Mechanism):
    """A lending market's call: it repays at most ``close_factor`` of the debt
    (``rules.liquidation.close_factor_notional``) for the penalty as a bonus; keepers call
    again while the health factor stays below 1. A bankrupt account (equity at most 0) is
    closed whole."""

    repeats = True

    def closed_size(self, side: int, size: float, entry: float, collateral: float, price: float) -> float:
        held = equity(side, size, entry, collateral, price)
        if held <= 0:
            return size
        return close_factor_notional(side, held, notional(size, price), self.spec.close_factor) / price


@mechanism("dutch_auction")
class DutchAuction(Mechanism):
    """Maker's clip: a liquidation starts an auction of the whole position whose price
    starts at the on-chain price x ``buffer`` and decays (``rules.liquidation.decay``);
    the first keeper's take to commit at an acceptable price closes it there
    (``market/dutch.py``)."""

    auction = True
    alone = False


@mechanism("english_auction")
class EnglishAuction(Mechanism):
    """Maker's flip: a liquidation starts an auction of the whole position (of a long: a
    vault's collateral) in which keepers' bids raise the quote paid up to the debt with its
    penalty (tend), then lower the units taken (dent); the standing bid wins when no other
    beats it within ``ttl``, or at ``tau`` (``market/flip.py``)."""

    auction = True
    english = True
    alone = False


def mechanism_of(market: MarketSpec) -> Mechanism:
    """The scenario's mechanism (``whole`` without ``[market.liquidation]``)."""
    spec = market.liquidation if market.liquidation is not None else LiquidationSpec()
    built: Mechanism = LIQUIDATION_MECHANISMS[spec.mechanism](spec, market)
    return built


class Call(NamedTuple):  # a tuple: built on every call, and a frozen dataclass builds slowly
    """One liquidation call's account: the units it closed, at what price, what the closed
    part realised, its penalty (split keeper / insurance fund) and slippage, and what the
    position holds after (collateral may be negative: a shortfall, when closed whole)."""

    price: float
    closed: float
    whole: bool
    pnl: float
    penalty: float
    keeper_fee: float
    fund_fee: float
    slippage: float
    slippage_bps: float
    size_after: float
    collateral_after: float


def call(rule: Mechanism, side: int, size: float, entry: float, collateral: float, price: float,
         depth: float | None = None) -> Call:
    """A liquidation call at ``price`` (on chain; an auction's for an auction mechanism):
    ``rule`` says what it closes, the market's one rule prices it (``liquidation_costs`` on
    the closed units, on the book's depth curve at ``depth``, the market's unless the book
    has thinned: the collateral absorbs their realised PnL less both costs; an auction's
    taker pays no slippage). A close below ``MATERIAL_SHARE`` of the position closes nothing
    (``closed`` 0)."""
    closed = rule.closed_size(side, size, entry, collateral, price)
    if 0.0 > closed:  # ``min(max(closed, 0.0), size)`` written out (a call's cost is per message)
        closed = 0.0
    if size < closed:
        closed = size
    if closed < size * MATERIAL_SHARE:
        closed = 0.0  # nothing material: the reactor's no-op (``recovered``), not a partial call
    whole = closed >= size * (1.0 - _DUST)
    if whole:
        closed = size
    penalty, slippage, bps, after = liquidation_costs(float(side), closed, entry, collateral, price,
                                                      rule.penalty_rate, rule.slippage_bps,
                                                      rule.depth if depth is None else depth, rule.exponent)
    keeper_fee, fund_fee = split_fee(penalty, rule.keeper_share)
    return Call(price, closed, whole, pnl(float(side), closed, entry, price), penalty, keeper_fee, fund_fee, slippage,
                bps, 0.0 if whole else size - closed, after)


class Calls(NamedTuple):
    """``Call`` of many positions at once, field by field as float64 arrays (``whole`` as
    booleans)."""

    price: np.ndarray
    closed: np.ndarray
    whole: np.ndarray
    pnl: np.ndarray
    penalty: np.ndarray
    keeper_fee: np.ndarray
    fund_fee: np.ndarray
    slippage: np.ndarray
    slippage_bps: np.ndarray
    size_after: np.ndarray
    collateral_after: np.ndarray


def calls(rule: Mechanism, side: np.ndarray, size: np.ndarray, entry: np.ndarray,
          collateral: np.ndarray, price: np.ndarray) -> Calls:
    """``call`` of many positions at once, each on the market's depth (the probe books' calls
    of a block, ``market/probes.py``): the same steps on arrays, so the same numbers, bit for
    bit (``tests/test_market_probe_calls.py`` draws positions and compares them with ``call``)."""
    closed = rule.closed_sizes(side, size, entry, collateral, price)
    closed = np.where(0.0 > closed, 0.0, closed)
    closed = np.where(size < closed, size, closed)
    closed = np.where(closed < size * MATERIAL_SHARE, 0.0, closed)
    whole = closed >= size * (1.0 - _DUST)
    closed = np.where(whole, size, closed)
    signed = side.astype(np.float64)
    penalty, slippage, bps, after = liquidation_costs(signed, closed, entry, collateral, price,
                                                      rule.penalty_rate, rule.slippage_bps,
                                                      rule.depth, rule.exponent)
    keeper_fee, fund_fee = split_fee(penalty, rule.keeper_share)
    return Calls(price, closed, whole, pnl(signed, closed, entry, price), penalty, keeper_fee,
                 fund_fee, slippage, bps, np.where(whole, 0.0, size - closed), after)
