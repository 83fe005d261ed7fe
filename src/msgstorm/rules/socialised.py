"""A socialised loss's pass over the accounts, compiled: the accounts in profit, each one's
share, their collateral; and the lines of the accounts it charged.

Place in the pipeline: at the bottom with the other shared formulas (it imports only
``jit``). The venue's books (``market/venue.py``, ``Venue._socialise``) charge a bankrupt
account's shortfall to the open accounts of its instrument in profit, pro rata to their
profit, and the market reactor (``market/reactor.py``, ``MarketReactor._reline``) relines the
accounts charged; the analysis replays each loss a run recorded once (``analysis/market.py``,
``venue_table``) with the same pass when the process has numba loaded already (a run's own
summary), and with numpy otherwise (a report of a history loads no numba,
``tests/test_startup.py``). Written with numpy, each loss was some forty array calls over the
instrument's accounts, and a crash of 2,000 accounts with 1,370 losses spent most of its
extra time on the calls' own cost, not on the elements. Here each is one loop.

The numbers are the numpy code's: each profit ``side x size x (price - entry)``
(``rules.market.pnl``), their total summed in account order from 0 (Python's ``sum`` of the
list), the charge ``min(left, total)``, each share ``charged x profit / total``, each
collateral less its share, and the lines ``accounts.line_prices``' formulas, each operation
in the same order on float64 (numba compiles without fast-math: no reassociation or fused
multiply-add). ``tests/test_market_socialised.py`` holds them against the numpy code
bit for bit.
"""

from __future__ import annotations

import numpy as np

from msgstorm.jit import borrowing

__all__ = ["reline", "socialise"]


@borrowing(error_model="numpy")
def socialise(side: np.ndarray, size: np.ndarray, entry: np.ndarray, collateral: np.ndarray, closed: np.ndarray,
              of: np.ndarray, account: int, price: float, left: float, found: np.ndarray, shares: np.ndarray,
              sizes: np.ndarray, after: np.ndarray) -> tuple[int, float, float]:
    """Charge ``left`` to the accounts of ``of`` (a mask) but ``account``, open (not
    ``closed``, size above 0) and in profit at ``price``, pro rata to their profit.

    Returns ``(count, total, charged)``: how many are in profit (written, by account, to the
    first ``count`` places of ``found``, ``shares``, ``sizes`` and ``after``: the account,
    its share, its size, its collateral after), the profit they hold, and what they pay,
    ``min(left, total)``; with a total of 0 or less nobody pays (``charged`` 0, collateral
    untouched). The shares are taken from ``collateral`` in place; ``account``'s collateral
    is the caller's to credit."""
    count = 0
    total = 0.0
    for i in range(side.size):
        if not of[i] or closed[i] or i == account or not size[i] > 0:
            continue
        made = side[i] * size[i] * (price - entry[i])
        if made > 0:
            found[count] = i
            shares[count] = made  # the profit for now; its share below
            count += 1
            total += made
    if total <= 0:
        return count, total, 0.0
    charged = total if total < left else left
    for j in range(count):
        i = found[j]
        share = charged * shares[j] / total
        shares[j] = share
        sizes[j] = size[i]
        paid = collateral[i] - share
        after[j] = paid
        collateral[i] = paid
    return count, total, charged


@borrowing(error_model="numpy")
def reline(side: np.ndarray, size: np.ndarray, entry: np.ndarray, collateral: np.ndarray, maintenance: float,
           index: np.ndarray, line: np.ndarray, bankruptcy: np.ndarray) -> None:
    """``accounts.line_prices`` of the accounts in ``index``, written to ``line`` and
    ``bankruptcy`` in place (each the formula of its side, as ``np.where`` picks it)."""
    below = 1.0 - maintenance
    above = 1.0 + maintenance
    for j in range(index.size):
        i = index[j]
        notional = size[i] * entry[i]
        if side[i] > 0:
            line[i] = (notional - collateral[i]) / (size[i] * below)
            bankruptcy[i] = entry[i] - collateral[i] / size[i]
        else:
            line[i] = (notional + collateral[i]) / (size[i] * above)
            bankruptcy[i] = entry[i] + collateral[i] / size[i]
