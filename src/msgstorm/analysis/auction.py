"""The batch auction: what its batches cleared, and how far from the true price.

Place in the pipeline: one analysis step, reading the history's ``auctions`` and
``auction_orders`` tables (written by the market's book, ``market/auction_book.py``), so
``msgstorm report`` gives the same numbers as the run. ``auction_summary`` is summary.json's
``auction``: absent for a run without them (no ``[market.orders]`` or another queue policy
than ``batch_auction``), so such runs' summaries are unchanged.

- ``batches``: batches in which at least one order took effect; ``batches_cleared``: those
  in which orders crossed (a clearing price);
- ``orders``: limit orders drawn for the order flow; ``orders_in_batches``: those that took
  effect; ``quantity``: their total quantity; ``cleared_volume``: what the batches traded
  (each unit counted once, on one side);
- ``fill_rate``: the filled share of the quantity that took effect (both sides count:
  2 x ``cleared_volume`` / ``quantity``);
- ``mean_clearing_price``, ``last_clearing_price``: over the batches that cleared;
- ``price_deviation_bps``: each clearing price against the instrument's true price at the
  batch's close, in basis points: the mean (signed), the mean absolute and the root mean
  square deviation (the dispersion of the uniform price around the true one).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from msgstorm.analysis._common import rounded
from msgstorm.history.reader import History

__all__ = ["auction_summary"]


def auction_summary(history: History) -> dict[str, Any] | None:
    orders = history.table("auction_orders")
    if orders.num_rows == 0:
        return None
    auctions = history.table("auctions")
    batch = orders["batch"].to_numpy()
    took_effect = batch >= 0
    quantity = float(math.fsum(orders["quantity"].to_numpy()[took_effect].tolist()))
    filled = float(math.fsum(orders["fill"].to_numpy()[took_effect].tolist()))
    price = auctions["price"].to_numpy()
    true_price = auctions["true_price"].to_numpy()
    cleared = ~np.isnan(price)
    deviation_bps = (price[cleared] - true_price[cleared]) / true_price[cleared] * 1e4
    volume = float(math.fsum(auctions["volume"].to_numpy().tolist()))
    return {
        "batches": auctions.num_rows,
        "batches_cleared": int(np.count_nonzero(cleared)),
        "orders": orders.num_rows,
        "orders_in_batches": int(np.count_nonzero(took_effect)),
        "quantity": rounded(quantity, 6),
        "cleared_volume": rounded(volume, 6),
        "fill_rate": rounded(filled / quantity, 6) if quantity > 0 else None,
        "mean_clearing_price": rounded(float(np.mean(price[cleared])), 6) if cleared.any() else None,
        "last_clearing_price": rounded(float(price[cleared][-1]), 6) if cleared.any() else None,
        "price_deviation_bps": {
            "mean": rounded(float(np.mean(deviation_bps)), 3) if cleared.any() else None,
            "mean_abs": rounded(float(np.mean(np.abs(deviation_bps))), 3) if cleared.any() else None,
            "rms": rounded(float(np.sqrt(np.mean(deviation_bps ** 2))), 3) if cleared.any() else None,
        },
    }
