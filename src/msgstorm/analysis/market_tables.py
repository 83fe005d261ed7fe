"""The market tables of a history as numpy columns: the price grid, the accounts with their
lines and crossings, and the executed liquidations.

Place in the pipeline: the first step of the market analysis; ``analysis/market.py`` (delays,
bad debt, staleness), ``analysis/market_venue.py`` (the venue's books), ``analysis/probes.py``,
``analysis/collateral.py`` and ``analysis/bad_debt.py`` read what it builds. Every run is
judged over the market's horizon (``judged_until_ns``; ``analysis/market.py`` says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import run_t_end_ns, scenario_section
from msgstorm.history.outcomes import TOOK_PART, Outcome
from msgstorm.history.reader import History
from msgstorm.rules.market import horizon_ns

__all__ = ["Executed", "MarketTables", "executed_liquidations", "instrument_codes",
           "judged_until_ns", "market_tables"]


@dataclass(frozen=True)
class MarketTables:
    """The market tables as numpy columns, with what the analysis derives per account."""

    instruments: list[str]
    times: np.ndarray  # int64 [steps]: the price grid, every step at or before ``until_ns``
    prices: np.ndarray  # float64 [instruments, steps]
    account_instrument: np.ndarray  # int64 index into instruments
    side: np.ndarray
    size: np.ndarray
    entry: np.ndarray
    collateral: np.ndarray  # with what top-ups added
    liquidation: np.ndarray  # the line at the start
    bankruptcy: np.ndarray
    t_topup: np.ndarray  # int64: when a top-up moved the line (-1: never)
    line_after: np.ndarray  # the line from ``t_topup`` on (the first line when none)
    t_cross: np.ndarray  # int64: the first step's time past the line (-1: never, within the horizon)
    t_bankrupt: np.ndarray  # int64: the first step's time past bankruptcy (-1: never)
    until_ns: int  # the horizon the run is judged over (``judged_until_ns``)

    def line_at(self, account: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The liquidation line in effect for ``account`` at ``t`` (the top-up's from its time on)."""
        moved = (self.t_topup[account] >= 0) & (t >= self.t_topup[account])
        lines: np.ndarray = np.where(moved, self.line_after[account], self.liquidation[account])
        return lines


def judged_until_ns(history: History) -> int:
    """The horizon a run is judged over: ``market.prices.horizon_ns`` of the scenario's
    ``run.duration``, the same for every run of a scenario. A run that was cut off or
    interrupted saw nothing after its last observed time, so it is judged up to that time
    (at most the horizon)."""
    horizon = horizon_ns(int(scenario_section(history, "run")["duration"]))
    if history.cut_off or history.run_info.get("interrupted"):
        return min(horizon, run_t_end_ns(history))
    return horizon


def instrument_codes(table: pa.Table, column: str, names: list[str]) -> np.ndarray:
    """``column``'s names as their indices in ``names`` (int64)."""
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[value] for value in table.column(column).to_pylist()], dtype=np.int64)


def _first_past(path: np.ndarray, lines: np.ndarray, long: np.ndarray) -> np.ndarray:
    """The first step at which ``path`` is at or past each line (longs: at or below; shorts:
    at or above); ``len(path)`` when never."""
    lowest = np.minimum.accumulate(path)  # non-increasing
    highest = np.maximum.accumulate(path)  # non-decreasing
    down = np.searchsorted(-lowest, -lines, side="left")
    up = np.searchsorted(highest, lines, side="left")
    return np.where(long, down, up)


def market_tables(history: History) -> MarketTables | None:
    if history.scenario.get("market") is None:
        return None
    prices = history.table("prices")
    accounts = history.table("accounts")
    until = judged_until_ns(history)
    names = list(dict.fromkeys(prices.column("instrument").to_pylist()))
    instrument = instrument_codes(prices, "instrument", names)
    t = prices.column("t").to_numpy()
    grid = np.unique(t)
    grid = grid[grid <= until]
    path = np.empty((len(names), grid.size), dtype=np.float64)
    for i in range(len(names)):
        mine = instrument == i
        order = np.argsort(t[mine], kind="stable")
        values, times = prices.column("price").to_numpy()[mine][order], t[mine][order]
        path[i] = values[np.searchsorted(times, grid)]
    account_instrument = (instrument_codes(accounts, "instrument", names) if accounts.num_rows
                          else np.empty(0, dtype=np.int64))
    side = accounts.column("side").to_numpy().astype(np.int64)
    columns = {name: accounts.column(name).to_numpy().astype(np.float64)
               for name in ("size", "entry", "collateral", "liquidation_price", "bankruptcy_price")}
    t_cross = np.full(accounts.num_rows, -1, dtype=np.int64)
    t_bankrupt = np.full(accounts.num_rows, -1, dtype=np.int64)
    for i in range(len(names)):
        mine = np.flatnonzero(account_instrument == i)
        if mine.size == 0 or grid.size == 0:
            continue
        long = side[mine] > 0
        for lines, out in ((columns["liquidation_price"], t_cross), (columns["bankruptcy_price"], t_bankrupt)):
            step = _first_past(path[i], lines[mine], long)
            crossed = step < grid.size
            out[mine[crossed]] = grid[step[crossed]]
    collateral = columns["collateral"].copy()
    t_topup = np.full(accounts.num_rows, -1, dtype=np.int64)
    line_after = columns["liquidation_price"].copy()
    _apply_topups(history.table("topups"), grid, path, account_instrument, side, collateral, t_cross, t_bankrupt,
                  t_topup, line_after)
    return MarketTables(names, grid, path, account_instrument, side, columns["size"], columns["entry"],
                        collateral, columns["liquidation_price"], columns["bankruptcy_price"], t_topup, line_after,
                        t_cross, t_bankrupt, until)


def _apply_topups(topups: pa.Table, grid: np.ndarray, path: np.ndarray, instrument: np.ndarray, side: np.ndarray,
                  collateral: np.ndarray, t_cross: np.ndarray, t_bankrupt: np.ndarray, t_topup: np.ndarray,
                  line_after: np.ndarray) -> None:
    """Accounts that topped up: their collateral from then on, the line they moved to, and
    their lines crossed with the line in effect (the first before the top-up, the new one
    after it). A top-up after the horizon changes nothing judged."""
    if topups.num_rows == 0 or grid.size == 0:
        return
    for t, account, after, line, bankrupt in zip(
            topups.column("t").to_pylist(), topups.column("account").to_pylist(),
            topups.column("collateral_after").to_pylist(), topups.column("liquidation_price").to_pylist(),
            topups.column("bankruptcy_price").to_pylist(), strict=True):
        collateral[account] = after
        t_topup[account] = t
        line_after[account] = line
        since = int(np.searchsorted(grid, t, side="left"))  # the first step at or after the top-up
        prices = path[instrument[account], since:]
        long = np.array([side[account] > 0])
        for new, out in ((line, t_cross), (bankrupt, t_bankrupt)):
            if 0 <= out[account] < t:
                continue  # crossed before the top-up
            step = int(_first_past(prices, np.array([new]), long)[0])
            out[account] = int(grid[since + step]) if step < prices.size else -1


@dataclass(frozen=True)
class Executed:
    """The executed liquidations (an ``executions`` row each with outcome ``executed``), as
    columns; ``no_ops`` counts the rows that committed without executing (``recovered``,
    ``already_liquidated``), not those a chain lost (``reverted``: the commit is no more)."""

    t: np.ndarray
    msg_id: np.ndarray
    account: np.ndarray
    price: np.ndarray
    bad_debt: np.ndarray
    slippage_bps: np.ndarray
    no_ops: int


def executed_liquidations(history: History) -> Executed:
    executions = history.table("executions")
    outcomes = executions.column("outcome").to_pylist()
    executed = np.array([outcome == Outcome.EXECUTED for outcome in outcomes], dtype=bool)
    no_ops = sum(1 for outcome in outcomes if outcome not in TOOK_PART)

    def column(name: str) -> np.ndarray:
        values: np.ndarray = executions.column(name).to_numpy()[executed]
        return values

    return Executed(column("t"), column("msg_id"), column("account"), column("price"), column("bad_debt"),
                    column("slippage_bps"), no_ops)
