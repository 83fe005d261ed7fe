"""Bad debt at every leverage of the probe books (``[market.probes]``, ``market/probes.py``).

Place in the pipeline: one analysis step beside the market's (``analysis/market.py``),
reading only the history (the accounts, the prices, ``probe_executions``) and the run's
scenario (the grid of leverages), so ``msgstorm report`` gives the same curve as the run.
``probe_summary`` is summary.json's ``market.probes``: one point per leverage L of the grid,
the book of every account at L (its collateral at the start: probes never top up) judged as
the accounts are (``market.book_bad_debt``): what the probes closed whole could not pay, plus
the rest marked to market at the true price at the horizon, each with its size and collateral
after its last call (a partial close) or its own; ``pct_of_open_interest`` against the book's
open interest, every probe's notional at entry (L x the accounts' collateral).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm.analysis._common import rounded, scenario_section
from msgstorm.analysis.market import MarketTables, book_bad_debt, market_tables
from msgstorm.history.reader import History
from msgstorm.rules.market import notional

__all__ = ["probe_leverages", "probe_summary"]


def probe_leverages(history: History) -> list[float]:
    """The run's grid of probe leverages (none without ``[market.probes]``)."""
    probes = scenario_section(history, "market").get("probes")
    return [float(value) for value in probes["leverages"]] if isinstance(probes, dict) else []


def probe_summary(history: History, tables: MarketTables | None = None) -> list[dict[str, Any]] | None:
    """Per leverage of the grid: ``{leverage, bad_debt, pct_of_open_interest, accounts,
    executed}``; None for a run without probes."""
    leverages = probe_leverages(history)
    if not leverages:
        return None
    tables = market_tables(history) if tables is None else tables
    if tables is None:
        return None
    count = len(tables.side)
    collateral = history.table("accounts").column("collateral").to_numpy().astype(np.float64)  # before top-ups
    done = history.table("probe_executions")

    def column(name: str) -> np.ndarray:
        values: np.ndarray = done.column(name).to_numpy() if done.num_rows else np.empty(0)
        return values

    probe, bad = column("probe").astype(np.int64), column("bad_debt")
    size_after, collateral_after = column("size_after"), column("collateral_after")
    whole = size_after <= 0
    points = []
    for book, leverage in enumerate(leverages):
        mine = (probe // count) == book if count else np.zeros(len(probe), dtype=bool)
        executed = np.zeros(count, dtype=bool)
        executed[probe[mine & whole] % count] = True
        size, held = leverage * collateral / tables.entry, collateral.copy()
        open_interest = float(notional(size, tables.entry).sum())
        # Rows in commit order: a probe's last partial call holds.
        last = np.full(count, -1, dtype=np.int64)
        partial = np.flatnonzero(mine & ~whole)
        np.maximum.at(last, probe[partial] % count, partial)
        moved = np.flatnonzero(last >= 0)
        size[moved], held[moved] = size_after[last[moved]], collateral_after[last[moved]]
        absolute, accounts = book_bad_debt(tables, size, held, executed, bad[mine & whole])
        points.append({"leverage": leverage, "bad_debt": rounded(absolute, 2),
                       "pct_of_open_interest": rounded(100.0 * absolute / open_interest, 6) if open_interest else None,
                       "accounts": accounts, "executed": int(np.count_nonzero(mine & whole))})
    return points
