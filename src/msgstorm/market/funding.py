"""The venue's funding clock: every ``[market.funding] interval``, the open positions of each
instrument pay or receive funding at its index price.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), built with
``[market.funding]``; the reactor calls ``pay`` at each interval up to the market's horizon
(none in the drain: the oracle publishes no index there). It reads and changes the reactor's
own account state (shared, changed in place, as ``market/venue.py`` does): the index is the
instrument's on-chain oracle price (funding settles on the index), the rate and each
position's payment are ``rules/funding.py``'s. Each payment is a ``venue`` row of kind
``funding`` (``amount``: received, negative when paid; the account's size and collateral
after it), so the analysis marks the accounts with the collateral funding left them, from
the history alone; the payments of an instrument's interval sum to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msgstorm.rules.funding import funding_payments, funding_rate
from msgstorm.rules.market import notional
from msgstorm.scenario.market import FundingSpec, MarketSpec, impact_exponent

__all__ = ["Funding", "Payment"]


@dataclass(frozen=True)
class Payment:
    """One position's funding in one interval."""

    account: int
    instrument: int
    rate: float
    amount: float  # received (negative: paid)
    size_after: float
    collateral_after: float


class Funding:
    """The funding clock over the reactor's account state (``size`` and ``collateral``: float64
    arrays, changed in place) and its ``liquidated`` flags."""

    def __init__(self, spec: FundingSpec, market: MarketSpec, side: list[int], size: np.ndarray,
                 collateral: np.ndarray, instrument: list[int], closed: np.ndarray) -> None:
        self.spec, self.market = spec, market
        self.side, self.size, self.collateral, self.instrument, self.closed = side, size, collateral, instrument, closed
        self._instrument = np.asarray(instrument, dtype=np.int64)
        self._side = np.asarray(side, dtype=np.float64)

    def pay(self, index_price: list[float]) -> list[Payment]:
        """One interval: each instrument's open positions pay or receive at its index price
        ``index_price[instrument]``; their collateral moves by it."""
        size = self.size
        open_now = ~self.closed & (size > 0)
        market, spec = self.market, self.spec
        payments: list[Payment] = []
        for instrument, price in enumerate(index_price):
            accounts = np.flatnonzero(open_now & (self._instrument == instrument))
            if accounts.size == 0:
                continue
            side = self._side[accounts]
            held: np.ndarray = notional(size[accounts], np.full(accounts.size, price))
            rate = funding_rate(spec.rate, spec.fixed_rate, spec.clamp, float(held[side > 0].sum()),
                                float(held[side < 0].sum()), market.slippage_bps, market.depth,
                                impact_exponent(market))
            received = funding_payments(side, held, rate)
            for account, amount in zip(accounts.tolist(), received.tolist(), strict=True):
                if amount == 0.0:
                    continue
                self.collateral[account] = after = float(self.collateral[account]) + amount
                payments.append(Payment(account, instrument, rate, amount, float(self.size[account]), after))
        return payments
