"""The venue's mark price: what the market reactor judges liquidations on with
``[market.mark]``, while they settle on the index (the on-chain oracle price).

Place in the pipeline: a part of the market reactor (``market/reactor.py``). A keeper that
sees an index price judges the accounts past their lines at the mark it makes, and a
liquidation that commits is judged at the mark of the on-chain index then; both read the
open interest of the reactor's own account state (shared, changed in place, as
``market/venue.py`` does), so the mark moves as positions close. The formula is
``rules/mark.py``'s. Each committed liquidation's index and mark are a ``marks`` row, so the
analysis reads what the venue judged on from the history alone.
"""

from __future__ import annotations

import numpy as np

from msgstorm.rules.mark import mark_price
from msgstorm.rules.market import notional
from msgstorm.scenario.market import MarketSpec, MarkSpec, impact_exponent

__all__ = ["Mark"]


class Mark:
    """The mark of each instrument over the reactor's account sizes and ``liquidated`` flags."""

    def __init__(self, spec: MarkSpec, market: MarketSpec, side: list[int], size: np.ndarray,
                 instrument: list[int], closed: np.ndarray) -> None:
        self.spec, self.market = spec, market
        self.size, self.closed = size, closed
        self._side = np.asarray(side, dtype=np.float64)
        self._instrument = np.asarray(instrument, dtype=np.int64)

    def price(self, instrument: int, index_price: float) -> float:
        """The mark of ``instrument`` at ``index_price``, from its open interest now."""
        size = self.size
        held = ~self.closed & (size > 0) & (self._instrument == instrument)
        value: np.ndarray = notional(size, np.full(size.size, index_price))
        long_notional = float(value[held & (self._side > 0)].sum())
        short_notional = float(value[held & (self._side < 0)].sum())
        market = self.market
        return mark_price(index_price, long_notional, short_notional, market.slippage_bps, market.depth,
                          self.spec.premium_cap, impact_exponent(market))
