"""Bad debt over time: summary.json's ``market.bad_debt`` at each price step of the horizon.

Place in the pipeline: read by the report's market section (``report/market.py``) for its
"Bad debt over time" chart; the definition is ``analysis/market.py``'s (``book_bad_debt``),
applied to the books as they stood at each time:

- an account whose liquidation executed (an ``executed`` row of ``executions``) by ``t``
  counts the shortfall that row recorded (after the insurance fund, deleveraging and a
  socialised loss covered what they could);
- every other account is marked to market at the true price at ``t`` with the size and
  collateral the venue's books had left it by ``t``: the accounts' own at the start, each
  ``venue`` row committed by ``t`` (a partial close, deleveraging, a socialised charge,
  funding; ``venue_table``) and each top-up committed by ``t`` (a top-up at the time of the
  account's last ``venue`` row before it, as ``held_after_venue`` reads it).

The series ends with one more point, at the later of the horizon and the last liquidation
committed in the drain: every execution counted, the books at their end
(``held_after_venue``), the price the horizon's last: the summary's number itself
(``bad_debt_at_end``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msgstorm.analysis.market import (
    Executed,
    MarketTables,
    bad_debt_at_end,
    book_bad_debt,
    venue_table,
)
from msgstorm.history.reader import History

__all__ = ["BadDebtSeries", "bad_debt_over_time"]


@dataclass(frozen=True)
class BadDebtSeries:
    """``t_ns[i]``: a time; ``realised[i]``: the shortfall of the liquidations executed by
    then; ``total[i]``: that plus the accounts not liquidated by then, marked to market
    (summary.json's ``market.bad_debt.absolute`` at the last point)."""

    t_ns: np.ndarray  # int64
    realised: np.ndarray
    total: np.ndarray


class _Books:
    """Each account's size and collateral as the history's rows move them, in time order."""

    def __init__(self, history: History) -> None:
        accounts = history.table("accounts")
        self.size = accounts.column("size").to_numpy().astype(np.float64)
        self.collateral = accounts.column("collateral").to_numpy().astype(np.float64)
        self.moved = np.zeros(self.size.size, dtype=bool)  # a ``venue`` row moved it
        # In time order, rows of one time in the order written (a sim writes them in time order already).
        venue = venue_table(history)
        order = np.argsort(venue.column("t").to_numpy(), kind="stable")
        self._venue = {name: venue.column(name).to_numpy()[order] for name in ("t", "account", "size_after",
                                                                                  "collateral_after")}
        topups = history.table("topups")
        rows = zip(*(topups.column(name).to_pylist() for name in ("t", "account", "amount", "collateral_after")),
                   strict=True)
        self._topups = sorted(rows, key=lambda row: row[0])
        self._row = self._topup = 0  # the rows applied so far

    def advance(self, t_ns: int) -> None:
        """Apply every row committed at or before ``t_ns``: at one time, the top-ups first
        (``held_after_venue`` adds a top-up only after the last ``venue`` row's time)."""
        while self._topup < len(self._topups) and self._topups[self._topup][0] <= t_ns:
            when, account, amount, after = self._topups[self._topup]
            last = int(np.searchsorted(self._venue["t"], when, side="left"))  # the rows before it
            self._through(last)
            if self.moved[account]:
                self.collateral[account] += amount
            else:
                self.collateral[account] = after
            self._topup += 1
        self._through(int(np.searchsorted(self._venue["t"], t_ns, side="right")))

    def _through(self, end: int) -> None:
        if end <= self._row:
            return
        rows = slice(self._row, end)
        account = self._venue["account"][rows]
        # Each account's last row of the span is its state (a socialised loss writes many at once).
        last = np.full(self.size.size, -1, dtype=np.int64)
        np.maximum.at(last, account, np.arange(self._row, end, dtype=np.int64))
        moved = np.flatnonzero(last >= 0)
        self.size[moved] = self._venue["size_after"][last[moved]]
        self.collateral[moved] = self._venue["collateral_after"][last[moved]]
        self.moved[moved] = True
        self._row = end


def bad_debt_over_time(history: History, tables: MarketTables, done: Executed, points: int = 200) -> BadDebtSeries:
    """The bad debt at up to ``points`` of the horizon's price steps, and at the run's end
    (the module docstring)."""
    accounts = tables.side.size
    ends = [int(tables.times[-1])] if tables.times.size else [0]
    end_ns = max(ends + ([int(done.t.max())] if done.t.size else []))
    steps = np.unique(np.linspace(0, tables.times.size - 1, min(points, tables.times.size)).astype(np.int64))
    if tables.times.size and int(tables.times[steps[-1]]) == end_ns:
        steps = steps[:-1]  # the end's point stands at that time
    books = _Books(history)
    t_ns, realised, total = [], [], []
    for k in steps.tolist():
        t = int(tables.times[k])
        books.advance(t)
        settled = done.t <= t
        executed = np.zeros(accounts, dtype=bool)
        executed[done.account[settled]] = True
        absolute, _ = book_bad_debt(tables, books.size, books.collateral, executed, done.bad_debt[settled], step=k)
        t_ns.append(t)
        realised.append(float(done.bad_debt[settled].sum()))
        total.append(absolute)
    absolute, _ = bad_debt_at_end(history, tables, done)
    t_ns.append(end_ns)
    realised.append(float(done.bad_debt.sum()))
    total.append(absolute)
    return BadDebtSeries(np.array(t_ns, dtype=np.int64), np.array(realised), np.array(total))
