"""Cross-margin accounts: one collateral behind positions on several instruments.

Place in the pipeline: beside ``market/accounts.py`` (isolated accounts, one position each)
and ``market/venue.py`` (their books). An isolated account has a liquidation *price*; a
cross account has none, since its margin depends on every instrument it holds, so it is
judged on all their prices at once (docs/model.md, "Cross margin"):

- equity ``E = collateral + sum_i side_i x size_i x (p_i - entry_i)`` (``rules.market.pnl``);
- maintenance requirement ``R = sum_i maintenance x size_i x p_i`` (per-position, summed);
- liquidatable when ``E < R``. A long on one instrument and a short on a correlated one hedge
  each other: a fall of both moves their PnL in opposite directions.

A liquidation closes positions at their prices, each priced with the market's one rule
(``rules.market.liquidation_costs``: realised PnL, penalty and slippage on the closed
notional), by the scenario's mechanism (``market/liquidation.py``'s registry):

- ``whole``: every position;
- ``partial``: positions whole, the largest maintenance requirement first (ties: the order
  held), until the equity of what stays open is at least its requirement at the target
  margin (``restore_to``: maintenance, or ``initial_margin``); all of them when none does, or
  when the equity is at most 0.

Other mechanisms (close factor, auctions) price one position's close and are refused here.
The penalty is split keeper / insurance fund (``rules.liquidation.split_fee``). When every
position is closed and the collateral is negative, the fund covers what it can and the rest
is bad debt (collateral set to 0), as ``market/venue.py`` does for an isolated account. The
books balance (``tests/test_market_cross.py``): collateral change - realised PnL +
penalties + slippage = insurance used + bad debt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from msgstorm.market.liquidation import Mechanism
from msgstorm.market.venue import Entry
from msgstorm.rules.liquidation import split_fee
from msgstorm.rules.market import liquidation_costs, notional, pnl
from msgstorm.scenario.market import impact_exponent
from msgstorm.scenario.registry import LIQUIDATION_MECHANISMS

__all__ = ["CrossAccount", "CrossBooks", "CrossCall", "closing_order", "cross_equity",
           "liquidatable", "requirement"]



@dataclass
class CrossAccount:
    """One cross-margin account: its collateral and, per position, the instrument (an index
    into the market's instruments), side (+1 long, -1 short), size and entry. A closed
    position keeps its row with size 0."""

    collateral: float
    instrument: list[int]
    side: list[int]
    size: list[float]
    entry: list[float]

    def open_positions(self) -> list[int]:
        return [k for k, size in enumerate(self.size) if size > 0]


def cross_equity(account: CrossAccount, prices: list[float]) -> float:
    """``collateral + sum`` of the open positions' unrealised PnL at ``prices`` (per instrument)."""
    return account.collateral + math.fsum(
        pnl(float(account.side[k]), account.size[k], account.entry[k], prices[account.instrument[k]])
        for k in account.open_positions())


def requirement(account: CrossAccount, prices: list[float], margin: float) -> float:
    """``sum`` of the open positions' ``margin x notional`` at ``prices``."""
    return math.fsum(margin * notional(account.size[k], prices[account.instrument[k]])
                     for k in account.open_positions())


def liquidatable(account: CrossAccount, prices: list[float], maintenance: float) -> bool:
    """Open positions, and equity below the maintenance requirement."""
    return bool(account.open_positions()) and cross_equity(account, prices) < requirement(account, prices,
                                                                                          maintenance)


def closing_order(account: CrossAccount, prices: list[float], maintenance: float) -> list[int]:
    """The open positions, the largest maintenance requirement first (ties: the order held)."""
    return sorted(account.open_positions(),
                  key=lambda k: (-maintenance * notional(account.size[k], prices[account.instrument[k]]), k))


@dataclass(frozen=True)
class CrossCall:
    """One liquidation of a cross account: the positions it closed (in order), their
    realised PnL, penalties and slippage, and the collateral after (negative: a shortfall,
    when every position closed)."""

    closed: list[int]
    price: list[float]
    pnl: list[float]
    penalty: list[float]
    slippage: list[float]
    whole: bool
    collateral_after: float


@dataclass
class CrossBooks:
    """The books of cross accounts under one mechanism: liquidation calls, the insurance
    fund, the entries each movement leaves (``market/venue.py``'s kinds) and the bad debt."""

    rule: Mechanism
    accounts: list[CrossAccount]
    fund: float = 0.0
    entries: list[Entry] = field(default_factory=list)
    bad_debt: float = 0.0
    insurance_used: float = 0.0

    def __post_init__(self) -> None:
        if not self.rule.cross:
            able = [name for name, mechanism in LIQUIDATION_MECHANISMS.items() if mechanism.cross]
            raise ValueError(f"cross-margin accounts are liquidated by one of {able}, not {self.rule.name!r}")
        self.fund = self.rule.spec.insurance_fund

    def liquidatable(self, index: int, prices: list[float]) -> bool:
        return liquidatable(self.accounts[index], prices, self.rule.market.maintenance_margin)

    def call(self, index: int, prices: list[float], depths: list[float] | None = None) -> CrossCall:
        """What a liquidation of account ``index`` at ``prices`` closes and costs (the
        account is not changed: ``apply`` does that)."""
        account, market, spec = self.accounts[index], self.rule.market, self.rule.spec
        maintenance = market.maintenance_margin
        target = maintenance if spec.restore_to == "maintenance" or self.rule.closes_whole else spec.initial_margin
        collateral = account.collateral
        left = account.open_positions()
        order = closing_order(account, prices, maintenance)
        bankrupt = cross_equity(account, prices) <= 0
        closed: list[int] = []
        closed_at: list[float] = []
        pnls: list[float] = []
        penalties: list[float] = []
        slippages: list[float] = []
        for k in order:
            instrument = account.instrument[k]
            price = prices[instrument]
            depth = market.depth if depths is None else depths[instrument]
            penalty, slippage, _, after = liquidation_costs(float(account.side[k]), account.size[k], account.entry[k],
                                                            collateral, price, market.liquidation_penalty,
                                                            market.slippage_bps, depth, impact_exponent(market))
            closed.append(k)
            closed_at.append(price)
            pnls.append(pnl(float(account.side[k]), account.size[k], account.entry[k], price))
            penalties.append(penalty)
            slippages.append(slippage)
            collateral = after
            left.remove(k)
            if self.rule.closes_whole or bankrupt or not left:
                continue
            rest = CrossAccount(collateral, account.instrument, account.side,
                                [account.size[j] if j in left else 0.0 for j in range(len(account.size))],
                                account.entry)
            if cross_equity(rest, prices) >= requirement(rest, prices, target):
                break
        return CrossCall(closed, closed_at, pnls, penalties, slippages, not left, collateral)

    def apply(self, index: int, done: CrossCall) -> float:
        """Apply ``done`` to account ``index``: its books' entries; the bad debt left."""
        account = self.accounts[index]
        closed_notional = math.fsum(notional(account.size[k], price) for k, price in zip(done.closed, done.price,
                                                                                          strict=True))
        for k, penalty in zip(done.closed, done.penalty, strict=True):
            account.size[k] = 0.0
            keeper_fee, fund_fee = split_fee(penalty, self.rule.spec.keeper_share)
            account.collateral = done.collateral_after  # the entries show the state after the call
            self._entry("keeper_fee", index, keeper_fee)
            self.fund += fund_fee  # after the keeper's row: each row's fund_after is its own
            self._entry("insurance_fee", index, fund_fee)
        if not done.whole:
            self._entry("partial", index, closed_notional)
            return 0.0
        shortfall = max(0.0, -done.collateral_after)
        used = min(self.fund, shortfall)
        self.fund -= used
        self.insurance_used += used
        account.collateral = 0.0 if shortfall > 0 else done.collateral_after
        if shortfall > 0:
            self._entry("insurance_used", index, used)
            self._entry("bad_debt", index, shortfall - used)
        self.bad_debt += shortfall - used
        return shortfall - used

    def _entry(self, kind: str, index: int, amount: float) -> None:
        account = self.accounts[index]
        self.entries.append(Entry(kind, index, amount, math.fsum(account.size), account.collateral, self.fund))
