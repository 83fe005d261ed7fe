"""The mark price as a venue computes it, written once: the index from the oracle and a
bounded premium from the book.

Place in the pipeline: beside ``rules/funding.py`` (whose ``book_premium`` is the premium),
below the venue's mark (``market/mark.py``) that the market reactor judges liquidations on,
and the tests that work it by hand. Imports nothing but ``rules/funding.py``. docs/model.md
("Mark price") states the formula.
"""

from __future__ import annotations

from msgstorm.rules.funding import book_premium

__all__ = ["mark_price"]


def mark_price(index_price: float, long_notional: float, short_notional: float, slippage_bps: float, depth: float,
               premium_cap: float, exponent: float = 1.0) -> float:
    """``index x (1 + clamp(premium, -cap, cap))``: the index (the on-chain oracle price)
    moved by the book's premium (``book_premium``: the open-interest imbalance's price
    impact), bounded to ``premium_cap`` either way."""
    premium = book_premium(long_notional, short_notional, slippage_bps, depth, exponent)
    return index_price * (1.0 + min(max(premium, -premium_cap), premium_cap))
