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
from typing import Literal

import numpy as np

from msgstorm.analysis.market import (
    Executed,
    MarketTables,
    VenueSpan,
    bad_debt_at_end,
    book_bad_debt,
    venue_spans,
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
    """Each account's size and collateral as the history's rows move them, in time order.

    The ``venue`` rows are read as ``venue_spans``: a socialised loss's replayed rows (one
    per account in profit) are applied from the replay's own arrays, never gathered into one
    table; each span in turn, so every account ends at its last row, as in the table."""

    def __init__(self, history: History) -> None:
        accounts = history.table("accounts")
        self.size = accounts.column("size").to_numpy().astype(np.float64)
        self.collateral = accounts.column("collateral").to_numpy().astype(np.float64)
        self.moved = np.zeros(self.size.size, dtype=bool)  # a ``venue`` row moved it
        spans = venue_spans(history)
        if not _in_time_order(spans):  # in time order, rows of one time in the order written
            t, account, size_after, collateral_after = (
                np.concatenate([span[k] for span in spans]) for k in range(4))
            order = np.argsort(t, kind="stable")
            spans = [VenueSpan(t[order], account[order], size_after[order], collateral_after[order],
                               False)]
        self._spans = spans
        topups = history.table("topups")
        rows = zip(*(topups.column(name).to_pylist() for name in ("t", "account", "amount", "collateral_after")),
                   strict=True)
        self._topups = sorted(rows, key=lambda row: row[0])
        self._span = self._row = 0  # the span being applied, and its rows applied so far
        self._topup = 0  # the top-ups applied so far

    def advance(self, t_ns: int) -> None:
        """Apply every row committed at or before ``t_ns``: at one time, the top-ups first
        (``held_after_venue`` adds a top-up only after the last ``venue`` row's time)."""
        while self._topup < len(self._topups) and self._topups[self._topup][0] <= t_ns:
            when, account, amount, after = self._topups[self._topup]
            self._through(when, "left")  # the rows before it
            if self.moved[account]:
                self.collateral[account] += amount
            else:
                self.collateral[account] = after
            self._topup += 1
        self._through(t_ns, "right")

    def _through(self, t_ns: int, side: Literal["left", "right"]) -> None:
        """Apply the rows before ``t_ns`` (``side`` left) or at or before it (right)."""
        while self._span < len(self._spans):
            span = self._spans[self._span]
            last = int(span.t[-1]) if span.t.size else t_ns
            if last < t_ns or (last == t_ns and side == "right"):  # all of it (a loss's, always)
                end = span.t.size
            else:
                end = int(np.searchsorted(span.t, t_ns, side=side))
            if end > self._row:
                self._apply(span, self._row, end)
                self._row = end
            if end < span.t.size:
                return
            self._span += 1
            self._row = 0

    def _apply(self, span: VenueSpan, start: int, end: int) -> None:
        if span.distinct:  # a loss's rows, of one time: all of them at once
            self.size[span.account] = span.size_after
            self.collateral[span.account] = span.collateral_after
            self.moved[span.account] = True
            return
        account = span.account[start:end]
        if end - start <= 16:  # a call's few rows: one by one, in order, cost less than numpy's
            size, collateral, moved = self.size, self.collateral, self.moved
            for row, who in enumerate(account.tolist(), start):
                size[who], collateral[who] = span.size_after[row], span.collateral_after[row]
                moved[who] = True
        else:  # each account's last row of the span is its state
            last = np.full(self.size.size, -1, dtype=np.int64)
            np.maximum.at(last, account, np.arange(start, end, dtype=np.int64))
            moved_now = np.flatnonzero(last >= 0)
            self.size[moved_now] = span.size_after[last[moved_now]]
            self.collateral[moved_now] = span.collateral_after[last[moved_now]]
            self.moved[moved_now] = True


def _in_time_order(spans: list[VenueSpan]) -> bool:
    """Whether the spans' rows, joined, are in time order (a sim writes them so)."""
    recorded = [span.t for span in spans if not span.distinct]  # a loss's rows share one time
    if recorded and not bool(np.all(np.diff(np.concatenate(recorded)) >= 0)):
        return False
    bounds = [(int(span.t[0]), int(span.t[-1])) for span in spans if span.t.size]
    return all(last <= first for (_, last), (first, _) in zip(bounds, bounds[1:]))


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
