"""The accounts' line index (``market/accounts.py``): a cursor returns each account once, at
the first price it is asked about that reaches the account's line."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from msgstorm.market.accounts import LineIndex


class _Drawn(SimpleNamespace):
    """What ``LineIndex`` reads of the drawn accounts."""

    def __len__(self) -> int:
        return len(self.side)


@pytest.mark.parametrize("seed", range(5))
def test_a_cursor_returns_what_each_price_newly_reaches(seed: int) -> None:
    """Prices that wander down and up, each asked twice: at each one the cursor returns, in
    any order, exactly the accounts whose line the price reaches (longs at or below it,
    shorts at or above it) that no earlier price did. Lines and prices are rounded to a
    tenth, so prices fall on lines and lines tie."""
    rng = np.random.default_rng(seed)
    instrument = rng.integers(0, 2, 300)
    side = rng.choice([-1, 1], 300)
    line = np.round(rng.uniform(80.0, 120.0, 300), 1)
    drawn: Any = _Drawn(instrument=instrument, side=side, liquidation=line)
    cursor = LineIndex(drawn, 2).cursor()
    returned = np.zeros(line.size, dtype=bool)
    prices = np.repeat(np.round(100.0 + np.cumsum(rng.normal(0.0, 2.0, 200)), 1), 2)
    for price, of in zip(prices.tolist(), rng.integers(0, 2, prices.size).tolist(), strict=True):
        reached = (instrument == of) & np.where(side > 0, price <= line, price >= line)
        expected = np.flatnonzero(reached & ~returned)
        as_list = rng.random() < 0.5
        found = cursor.past(of, price) if as_list else cursor.past_array(of, price).tolist()
        assert sorted(found) == expected.tolist()
        returned[expected] = True
