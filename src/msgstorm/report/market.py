"""The report's market section: what delay cost, drawn from the history's market tables.

Place in the pipeline: part of report.html (``html.render_run_report``), for a run with
``[market]``. Three plots and a table: each instrument's true price against the price on
chain (the newest committed oracle message), with the liquidations executed; bad debt
over time beside the sequencer's queue depth and base fee; the liquidation delay's
distribution and the split of its mean into the oracle's, the keepers' and the messaging
layer's part. Every number comes from the analysis: the delays and their split from
``analysis/market.py`` (``liquidation_delays``), bad debt over time from
``analysis/bad_debt.py`` (the summary's bad debt at each time, ending at the summary's).
"""

from __future__ import annotations

from typing import Any

from msgstorm.analysis.bad_debt import bad_debt_over_time
from msgstorm.analysis.market import (
    Delays,
    Executed,
    MarketTables,
    executed_liquidations,
    liquidation_delays,
    market_tables,
    onchain_prices,
)
from msgstorm.analysis.summary_model import Market, Summary
from msgstorm.history.reader import History
from msgstorm.report import figures
from msgstorm.report.against import AGAINST_COLUMNS, against_cells, market_against_rows
from msgstorm.report.collateral import market_bad_debt_label
from msgstorm.report.page import esc, table
from msgstorm.report.plotspec import Figure, figure
from msgstorm.report.series import thin_lowest_highest
from msgstorm.report.terminal import published_figures
from msgstorm.report.text import amount, duration_ms, duration_unit, number

__all__ = ["market_plots", "market_section"]

NS_PER_S = 1e9


def _prices_figure(history: History, tables: MarketTables, done: Executed) -> Figure:
    data: list[dict[str, Any]] = []
    exec_t, exec_price = done.t / NS_PER_S, done.price
    for index, (name, (times, price, _)) in enumerate(zip(tables.instruments, onchain_prices(history, tables),
                                                            strict=True)):
        keep = thin_lowest_highest(tables.prices[index])
        data.append({"type": "scatter", "x": (tables.times[keep] / NS_PER_S).tolist(),
                     "y": tables.prices[index][keep].tolist(), "name": f"{name}: true price", "mode": "lines"})
        data.append({"type": "scatter", "x": (times / NS_PER_S).tolist(), "y": price.tolist(),
                     "name": f"{name}: on chain", "mode": "lines", "line": {"shape": "hv", "dash": "dot"}})
    if exec_t.size:
        keep = thin_lowest_highest(exec_price)
        data.append({"type": "scatter", "x": exec_t[keep].tolist(), "y": exec_price[keep].tolist(),
                     "name": "liquidations executed", "mode": "markers", "marker": {"size": 4, "opacity": 0.5}})
    return figure(data, figures._layout("True price and the price on chain", "time (s)", "price"))


def _bad_debt_figure(history: History, tables: MarketTables, done: Executed, depth: tuple[list[float], list[float]],
                     base_fee: list[dict[str, Any]], fee_unit: str, currency: str | None) -> Figure:
    series = bad_debt_over_time(history, tables, done, 200 if tables.side.size <= 200_000 else 50)
    times, realised, total = series.t_ns / NS_PER_S, series.realised, series.total
    data: list[dict[str, Any]] = [
        {"type": "scatter", "x": times.tolist(), "y": total.tolist(), "mode": "lines",
         "name": "bad debt, with the accounts not yet liquidated marked to market", "line": {"color": "#d62728"}},
        {"type": "scatter", "x": times.tolist(), "y": realised.tolist(), "mode": "lines",
         "name": "bad debt of the liquidations executed", "line": {"color": "#ff9896", "dash": "dot"}}]
    more: dict[str, Any] = {"yaxis2": {"title": {"text": "queue depth"}, "overlaying": "y", "side": "right",
                                       "rangemode": "tozero", "showgrid": False}}
    data.append({"type": "scatter", "x": depth[0], "y": depth[1], "name": figures.QUEUE_DEPTH_NAME, "mode": "lines",
                 "yaxis": "y2", "line": {"color": "#1f77b4", "shape": "hv", "width": 1}})
    if base_fee:
        data.append({"type": "scatter", "x": [e["t_ns"] / NS_PER_S for e in base_fee],
                     "y": [e["base_fee"] for e in base_fee], "name": "base fee", "mode": "lines", "yaxis": "y2",
                     "line": {"color": "#8c564b", "shape": "hv", "width": 1}})
    layout = figures._layout("Bad debt over time, beside the queue and the base fee", "time (s)",
                             f"bad debt ({currency})" if currency else "bad debt", yaxis={"rangemode": "tozero"},
                             **more)
    # The base fee (ones) beside the queue depth (thousands) would be a flat line on its axis.
    return figures.own_axis(figure(data, layout), "base fee", figures.fee_title(fee_unit))


def _delay_figure(delays: Delays, market: Market) -> Figure:
    delay_ms = delays.delay / 1e6
    split = market.liquidation_delay_ms.split
    means = () if split is None else (("oracle", split.oracle, "#9467bd"), ("keeper", split.keeper, "#ff7f0e"),
                                      ("messaging", split.messaging, "#2ca02c"))
    parts = [(part, mean_ms, colour) for part, mean_ms, colour in means if mean_ms is not None]
    longest = max([float(delay_ms.max()) if delay_ms.size else 0.0] + [float(mean_ms) for _, mean_ms, _ in parts])
    unit, size = duration_unit(longest)  # a day-long auction's 81 minutes in min, not 4,860,000 ms
    data: list[dict[str, Any]] = [{"type": "histogram", "x": (delay_ms / size).tolist(), "name": "liquidation delay",
                                   "nbinsx": 60}]
    for part, mean_ms, colour in parts:
        data.append({"type": "bar", "x": [mean_ms / size], "y": ["mean"], "orientation": "h",
                     "name": f"{part} (mean)", "xaxis": "x2", "yaxis": "y2", "marker": {"color": colour}})
    layout = figures._layout("Liquidation delay (line crossed to executed) and the split of its mean",
                             f"delay ({unit})", "liquidations", barmode="stack",
                             xaxis2={"anchor": "y2", "domain": [0.0, 1.0], "title": {"text": f"mean split ({unit})"}},
                             yaxis2={"domain": [0.85, 1.0], "anchor": "x2"})
    layout["yaxis"] = {**layout.get("yaxis", {}), "domain": [0.0, 0.7]}
    return figure(data, layout)


def market_plots(history: History, market: Market, depth: tuple[list[float], list[float]],
                 base_fee: list[dict[str, Any]], fee_unit: str = "") -> dict[str, Figure] | None:
    tables = market_tables(history)
    if tables is None:
        return None
    done = executed_liquidations(history)
    return {"market-prices": _prices_figure(history, tables, done),
            "market-bad-debt": _bad_debt_figure(history, tables, done, depth, base_fee, fee_unit, market.currency),
            "market-delay": _delay_figure(liquidation_delays(history, tables, done), market)}


def market_section(summary: Summary) -> str:
    """The numbers of the summary's typed ``market`` section as a table (empty without one)."""
    market = summary.market
    if market is None:
        return ""
    liquidations, delay, bad = market.liquidations, market.liquidation_delay_ms, market.bad_debt
    stale, slip = market.price_staleness_ms, market.slippage_bps
    counted = (("eligible", liquidations.eligible), ("triggered", liquidations.triggered),
               ("executed", liquidations.executed), ("executed past the bankruptcy price", liquidations.late),
               ("no op", liquidations.no_op),
               ("not attempted", liquidations.not_attempted), ("messages", liquidations.messages))
    currency = market.currency
    rows = [["accounts / open interest", f"{number(market.accounts)} / {amount(market.open_interest, currency)}"],
            *[[f"liquidations {label}", number(count)] for label, count in counted],
            ["liquidation delay p50 / p99 / max", " / ".join(duration_ms(v) for v in (delay.p50, delay.p99, delay.max))],
            [market_bad_debt_label(summary), f"{amount(bad.absolute, currency)} ({number(bad.pct_of_open_interest, '%')} of open "
                         f"interest), {number(bad.accounts)} accounts"],
            ["price staleness p50 / p99 / max", " / ".join(duration_ms(v) for v in (stale.p50, stale.p99, stale.max))],
            ["slippage p50 / p99", f"{number(slip.p50)} / {number(slip.p99)} bps"]]
    venue = market.venue
    if venue is not None:
        fund = venue.insurance_fund
        rows += [["liquidation fee (keepers / insurance fund)", f"{amount(venue.liquidation_fee, currency)} "
                  f"({amount(venue.keeper_fee, currency)} / {amount(venue.insurance_fee, currency)})"],
                 ["insurance fund start / end / used", f"{amount(fund.start, currency)} / "
                  f"{amount(fund.end, currency)} / {amount(fund.used, currency)}"],
                 ["deleveraged / socialised / bad debt left", f"{amount(venue.deleveraged, currency)} / "
                  f"{amount(venue.socialised, currency)} / {amount(venue.bad_debt, currency)}"],
                 ["partial liquidation calls", number(venue.partial_calls)]]
        funding = venue.funding
        if funding is not None:  # [market.funding]: zero-sum, so what was paid was received
            rows.append(["funding paid (payments / intervals)", f"{amount(funding.paid, currency)} "
                         f"({number(funding.payments)} / {number(funding.intervals)})"])
        lots = venue.auctions
        if lots is not None:
            rows += [["english auctions: lots / at a zero bid", f"{number(lots.lots)} / "
                      f"{number(lots.zero_bid_lots)} ({number(lots.zero_bid_units)} of "
                      f"{amount(lots.units, lots.unit or 'units')})"],
                     ["collateral returned to owners", number(100 * lots.returned_share, "%")]]
            if lots.published is not None:
                rows += [["published for the day", published_figures(lots.published, lots.unit, currency)]]
    page = table(["", ""], [[esc(a), esc(b)] for a, b in rows], attrs='id="market-table"')
    against = market_against_rows([market])  # the day's published figures beside the run's, by role
    if against and venue is not None:
        lots = venue.auctions
        cells = against_cells(against, lots.unit if lots else None, currency)
        page += "<h3>against the day</h3>" + table(list(AGAINST_COLUMNS), [[esc(cell) for cell in row] for row in cells],
                                                    attrs='id="against-table"')
    return page
