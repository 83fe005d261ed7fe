"""The report's market section: what delay cost, drawn from the history's market tables.

Place in the pipeline: part of report.html (``html.render_run_report``), for a run with
``[market]``. Three plots and a table: each instrument's true price against the price on
chain (the newest committed oracle message), with the liquidations executed; bad debt
accumulating over time beside the sequencer's queue depth and base fee; the liquidation
delay's distribution and the split of its mean into the oracle's, the keepers' and the
messaging layer's part. Every number comes from ``analysis/market.py`` (the delays and
their split from ``liquidation_delays``, the horizon from ``judged_until_ns``), and every
formula from ``market/accounts.py`` (an account's equity at a price).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm.analysis.market import (
    Delays,
    Executed,
    MarketTables,
    executed_liquidations,
    liquidation_delays,
    market_tables,
    onchain_prices,
)
from msgstorm.history.reader import History
from msgstorm.report import figures
from msgstorm.report.collateral import market_bad_debt_label
from msgstorm.report.page import esc, table
from msgstorm.report.plotspec import Figure, figure
from msgstorm.report.series import thin_lowest_highest
from msgstorm.report.terminal import published_figures
from msgstorm.report.text import duration_ms, number
from msgstorm.rules.market import equity

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


def _bad_debt_over_time(tables: MarketTables, done: Executed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, realised, realised + underwater) at up to 200 of the price steps: the bad debt
    of the liquidations executed by then, and with it what the accounts not yet liquidated
    would owe at the true price then (what a liquidation still has to save)."""
    t_exec = np.full(tables.side.size, np.iinfo(np.int64).max, dtype=np.int64)
    t_exec[done.account] = done.t
    bad_of = np.zeros(tables.side.size)
    bad_of[done.account] = done.bad_debt
    points = 200 if tables.side.size <= 200_000 else 50
    steps = np.unique(np.linspace(0, tables.times.size - 1, min(points, tables.times.size)).astype(np.int64))
    realised, total = np.zeros(steps.size), np.zeros(steps.size)
    for n, k in enumerate(steps.tolist()):
        t = tables.times[k]
        settled = t_exec <= t
        price = tables.prices[tables.account_instrument, k]
        now = equity(tables.side, tables.size, tables.entry, tables.collateral, price)
        realised[n] = bad_of[settled].sum()
        total[n] = realised[n] + np.maximum(-now[~settled], 0.0).sum()
    return tables.times[steps] / NS_PER_S, realised, total


def _bad_debt_figure(tables: MarketTables, done: Executed, depth: tuple[list[float], list[float]],
                     base_fee: list[dict[str, Any]]) -> Figure:
    times, realised, total = _bad_debt_over_time(tables, done)
    data: list[dict[str, Any]] = [
        {"type": "scatter", "x": times.tolist(), "y": total.tolist(), "mode": "lines",
         "name": "bad debt, with the accounts not yet liquidated marked to market", "line": {"color": "#d62728"}},
        {"type": "scatter", "x": times.tolist(), "y": realised.tolist(), "mode": "lines",
         "name": "bad debt of the liquidations executed", "line": {"color": "#ff9896", "dash": "dot"}}]
    more: dict[str, Any] = {"yaxis2": {"title": {"text": "queue depth"}, "overlaying": "y", "side": "right",
                                       "rangemode": "tozero", "showgrid": False}}
    data.append({"type": "scatter", "x": depth[0], "y": depth[1], "name": "queue depth (peak)", "mode": "lines",
                 "yaxis": "y2", "line": {"color": "#1f77b4", "shape": "hv", "width": 1}})
    if base_fee:
        data.append({"type": "scatter", "x": [e["t_ns"] / NS_PER_S for e in base_fee],
                     "y": [e["base_fee"] for e in base_fee], "name": "base fee", "mode": "lines", "yaxis": "y2",
                     "line": {"color": "#8c564b", "shape": "hv", "width": 1}})
    layout = figures._layout("Bad debt over time, beside the queue and the base fee", "time (s)", "bad debt",
                             yaxis={"rangemode": "tozero"}, **more)
    # The base fee (ones) beside the queue depth (thousands) would be a flat line on its axis.
    return figures.own_axis(figure(data, layout), "base fee", "base fee")


# The delay chart's unit: the largest that keeps its longest delay at 2 or more (a day-long
# auction's 81 minutes read as "81 min", never as "4,860,000 ms").
_DELAY_UNITS: tuple[tuple[str, float], ...] = (("h", 3_600_000.0), ("min", 60_000.0), ("s", 1_000.0), ("ms", 1.0))


def delay_unit(longest_ms: float) -> tuple[str, float]:
    """The unit a chart of delays up to ``longest_ms`` is drawn in, and its size in ms."""
    return next((unit for unit in _DELAY_UNITS if longest_ms >= 2 * unit[1]), _DELAY_UNITS[-1])


def _delay_figure(delays: Delays, summary: dict[str, Any]) -> Figure:
    delay_ms = delays.delay / 1e6
    split = ((summary.get("market") or {}).get("liquidation_delay_ms") or {}).get("split") or {}
    parts = [(part, colour) for part, colour in (("oracle", "#9467bd"), ("keeper", "#ff7f0e"),
                                                 ("messaging", "#2ca02c")) if split.get(part) is not None]
    longest = max([float(delay_ms.max()) if delay_ms.size else 0.0] + [float(split[part]) for part, _ in parts])
    unit, size = delay_unit(longest)
    data: list[dict[str, Any]] = [{"type": "histogram", "x": (delay_ms / size).tolist(), "name": "liquidation delay",
                                   "nbinsx": 60}]
    for part, colour in parts:
        data.append({"type": "bar", "x": [split[part] / size], "y": ["mean"], "orientation": "h",
                     "name": f"{part} (mean)", "xaxis": "x2", "yaxis": "y2", "marker": {"color": colour}})
    layout = figures._layout("Liquidation delay (line crossed to executed) and the split of its mean",
                             f"delay ({unit})", "liquidations", barmode="stack",
                             xaxis2={"anchor": "y2", "domain": [0.0, 1.0], "title": {"text": f"mean split ({unit})"}},
                             yaxis2={"domain": [0.85, 1.0], "anchor": "x2"})
    layout["yaxis"] = {**layout.get("yaxis", {}), "domain": [0.0, 0.7]}
    return figure(data, layout)


def market_plots(history: History, summary: dict[str, Any], depth: tuple[list[float], list[float]],
                 base_fee: list[dict[str, Any]]) -> dict[str, Figure] | None:
    tables = market_tables(history)
    if tables is None:
        return None
    done = executed_liquidations(history)
    return {"market-prices": _prices_figure(history, tables, done),
            "market-bad-debt": _bad_debt_figure(tables, done, depth, base_fee),
            "market-delay": _delay_figure(liquidation_delays(history, tables, done), summary)}


def market_section(summary: dict[str, Any]) -> str:
    """The numbers of summary ``market`` as a table."""
    market = summary.get("market") or {}
    liquidations = market.get("liquidations") or {}
    delay = market.get("liquidation_delay_ms") or {}
    bad = market.get("bad_debt") or {}
    stale = market.get("price_staleness_ms") or {}
    slip = market.get("slippage_bps") or {}

    rows = [["accounts / open interest", f"{number(market.get('accounts'))} / {number(market.get('open_interest'))}"],
            *[[f"liquidations {key.replace('_', ' ')}", number(liquidations.get(key))]
              for key in ("eligible", "triggered", "executed", "late", "no_op", "not_attempted", "messages")],
            ["liquidation delay p50 / p99 / max", " / ".join(duration_ms(delay.get(k)) for k in ("p50", "p99", "max"))],
            [market_bad_debt_label(summary), f"{number(bad.get('absolute'))} ({number(bad.get('pct_of_open_interest'), '%')} of open "
                         f"interest), {number(bad.get('accounts'))} accounts"],
            ["price staleness p50 / p99 / max", " / ".join(duration_ms(stale.get(k)) for k in ("p50", "p99", "max"))],
            ["slippage p50 / p99", f"{number(slip.get('p50'))} / {number(slip.get('p99'))} bps"]]
    venue = market.get("venue")
    if venue:
        fund = venue.get("insurance_fund") or {}
        rows += [["liquidation fee (keepers / insurance fund)", f"{number(venue.get('liquidation_fee'))} "
                  f"({number(venue.get('keeper_fee'))} / {number(venue.get('insurance_fee'))})"],
                 ["insurance fund start / end / used", f"{number(fund.get('start'))} / {number(fund.get('end'))} / "
                  f"{number(fund.get('used'))}"],
                 ["deleveraged / socialised / bad debt left", f"{number(venue.get('deleveraged'))} / "
                  f"{number(venue.get('socialised'))} / {number(venue.get('bad_debt'))}"],
                 ["partial liquidation calls", number(venue.get("partial_calls"))]]
        funding = venue.get("funding")
        if funding:  # [market.funding]: zero-sum, so what was paid was received
            rows.append(["funding paid (payments / intervals)", f"{number(funding.get('paid'))} "
                         f"({number(funding.get('payments'))} / {number(funding.get('intervals'))})"])
        lots = venue.get("auctions")
        if lots:
            rows += [["english auctions: lots / at a zero bid", f"{number(lots.get('lots'))} / "
                      f"{number(lots.get('zero_bid_lots'))} ({number(lots.get('zero_bid_units'))} of "
                      f"{number(lots.get('units'))} units)"],
                     ["collateral returned to owners", number(100 * lots.get("returned_share", 0.0), "%")]]
            day = lots.get("published")
            if day:
                rows += [["published for the day", published_figures(day)]]
    return table(["", ""], [[esc(a), esc(b)] for a, b in rows], attrs='id="market-table"')
