"""The "against the day" table: a replay's figures beside the published ones, in the terminal.

Place in the pipeline: report, from ``analysis/against.py``'s rows; printed after a run's
summary (``report/terminal.py``, one run) and by ``msgstorm against`` (several runs: the
mean and the range over them). Each row says whether the figure was fitted (shown, never
called agreement) or checked (within its band or not).
"""

from __future__ import annotations

import math

from msgstorm.analysis.against import FIGURE_LABELS, AgainstRow, against_rows, measured_figures
from msgstorm.analysis.summary_model import Market
from msgstorm.report.cells import KeptTable
from msgstorm.report.text import amount

__all__ = ["AGAINST_COLUMNS", "against_cells", "against_table", "market_against_rows"]

_SHARES = frozenset({"zero_bid_share", "top_zero_bidder_share", "returned_share",
                     "returned_share_won"})


def market_against_rows(markets: list[Market]) -> list[AgainstRow]:
    """The rows of runs of one scenario (none: no English auction lots, or nothing published)."""
    lots = [market.venue.auctions for market in markets if market.venue is not None and market.venue.auctions]
    if not lots or len(lots) != len(markets) or lots[0].published is None:
        return []
    runs = [measured_figures(one, market.venue.bad_debt)
            for one, market in zip(lots, markets, strict=True) if market.venue is not None]
    return against_rows(lots[0].published, runs)


def _value(figure: str, value: float, unit: str | None, currency: str | None) -> str:
    if figure in _SHARES:
        return f"{100 * value:.1f}%"
    if figure == "zero_bid_units":
        return amount(round(value), unit)
    if figure == "zero_bid_lots":
        return f"{value:,.0f}"
    return amount(round(value), currency)


def against_cells(rows: list[AgainstRow], unit: str | None, currency: str | None) -> list[list[str]]:
    """Each row's cells: figure, measured (mean; range over the runs when several), published
    with its source, band, within (checked figures only), fitted or predicted."""
    cells = []
    for row in rows:
        measured = _value(row.figure, row.mean, unit, currency)
        if len(row.measured) > 1:
            measured += (f" ({_value(row.figure, row.low, unit, currency)} to "
                         f"{_value(row.figure, row.high, unit, currency)})")
        band = "—"
        if row.band is not None:
            low, high = (_value(row.figure, bound, unit, currency) for bound in row.band)
            band = f"{low} or more" if math.isinf(row.band[1]) else f"{low} to {high}"
        within = {None: "— (fitted)" if row.role == "fitted" else "—", True: "yes", False: "no"}[row.within]
        cells.append([FIGURE_LABELS[row.figure], measured,
                      f"{_value(row.figure, row.published, unit, currency)} ({row.source})", band, within,
                      "predicted" if row.role == "checked" else row.role])
    return cells


AGAINST_COLUMNS = ("figure", "measured", "published", "band", "within", "role")


def against_table(rows: list[AgainstRow], unit: str | None, currency: str | None) -> KeptTable:
    """The rows as a terminal table, titled with the number of runs when several."""
    runs = len(rows[0].measured) if rows else 0
    title = "against the day" + (f" (mean and range over {runs} runs)" if runs > 1 else "")
    table = KeptTable(title=title, header_style="bold")
    for column in AGAINST_COLUMNS:
        # fold, not ellipsis: a source's words are read, not cut
        table.add_column(column, justify="right" if column in ("measured", "band") else "left", overflow="fold")
    for cells in against_cells(rows, unit, currency):
        table.add_row(*cells)
    return table
