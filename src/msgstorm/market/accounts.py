"""Accounts and their margin: positions, the two prices that matter, and execution.

Place in the pipeline: drawn before the run (``draw_accounts``) from the run's seed and
written to the history's ``accounts`` table; the simulator's market reactor asks which
accounts a price crosses (``LineIndex``) and executes liquidations (``execute``); the
analysis marks the rest to market (``equity``). The formulas (PnL, equity, notional, price
impact) are written once, in ``rules/market.py``, which the reactor, the front-runners, the
analysis and the report import (``tests/test_market_analysis.py`` mutates each and checks
every consumer's numbers move); this module applies them to accounts.

An account holds ``size`` units of one instrument, long (side +1) or short (-1), opened at
``entry`` with ``collateral``. At price p its equity is ``collateral + side x size x (p -
entry)`` and its notional ``size x p``. It may be liquidated when equity < maintenance x
notional, i.e. past its *liquidation price*; its equity is 0 at its *bankruptcy price*:

- long:  liquidation = (size x entry - collateral) / (size x (1 - maintenance)),
  bankruptcy = entry - collateral / size;
- short: liquidation = (size x entry + collateral) / (size x (1 + maintenance)),
  bankruptcy = entry + collateral / size.

An order of notional N moves the price by ``slippage_bps x N / depth`` basis points (the
linear depth model, ``impact_bps``); a front-runner's won race earns on it too.

A liquidation at on-chain price P closes the position: realised PnL ``side x size x (P -
entry)``, a penalty ``penalty x size x P`` and slippage ``size x P x impact_bps(size x P) /
1e4`` (its own price impact); the account keeps ``collateral + pnl - penalty - slippage``
(its equity at P less the two costs) and its negative part is bad debt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from msgstorm import draws
from msgstorm.errors import DataFileError
from msgstorm.rules.market import Execution, equity, execute, impact_bps, notional, pnl
from msgstorm.rules.socialised import reline
from msgstorm.sampling import sample_array
from msgstorm.scenario.file_cache import kept_per_file
from msgstorm.scenario.market import AccountsSpec, MarketSpec

__all__ = ["Accounts", "Execution", "LineCursor", "LineIndex", "draw_accounts", "drawn_leverage",
           "relined", "equity", "execute",
           "impact_bps", "line_price_pair", "line_prices", "notional", "past_line", "past_lines", "pnl"]


@dataclass(frozen=True)
class Accounts:
    instrument: np.ndarray  # int32
    side: np.ndarray  # int8: +1 long, -1 short
    size: np.ndarray  # float64 units
    entry: np.ndarray  # float64
    collateral: np.ndarray  # float64
    liquidation: np.ndarray  # float64: the maintenance line
    bankruptcy: np.ndarray  # float64: where equity is 0

    def __len__(self) -> int:
        return len(self.side)

    def columns(self) -> dict[str, np.ndarray | list[str]]:
        return {"account": np.arange(len(self), dtype=np.int64), "instrument": self.instrument,
                "side": self.side, "size": self.size, "entry": self.entry, "collateral": self.collateral,
                "liquidation_price": self.liquidation, "bankruptcy_price": self.bankruptcy}


def line_prices(side: np.ndarray, size: np.ndarray, entry: np.ndarray, collateral: np.ndarray,
                maintenance: float) -> tuple[np.ndarray, np.ndarray]:
    """(liquidation, bankruptcy) prices of each account (see the module's formulas)."""
    long = side > 0
    notional = size * entry
    liquidation = np.where(long, (notional - collateral) / (size * (1.0 - maintenance)),
                           (notional + collateral) / (size * (1.0 + maintenance)))
    bankruptcy = np.where(long, entry - collateral / size, entry + collateral / size)
    return liquidation, bankruptcy


def line_price_pair(side: int, size: float, entry: float, collateral: float, maintenance: float) -> tuple[float, float]:
    """``line_prices`` of one account, in plain floats (the same operations in the same
    order, so the same numbers): the reactor relines an account after each partial close,
    where numpy's cost on one element outweighs the arithmetic."""
    if size <= 0:  # numpy's inf or nan for an empty position, not a ZeroDivisionError
        lines, bankrupt = line_prices(np.array([side]), np.array([size]), np.array([entry]), np.array([collateral]),
                                      maintenance)
        return float(lines[0]), float(bankrupt[0])
    notional = size * entry
    if side > 0:
        return (notional - collateral) / (size * (1.0 - maintenance)), entry - collateral / size
    return (notional + collateral) / (size * (1.0 + maintenance)), entry + collateral / size


def relined(side: Sequence[int] | np.ndarray, size: np.ndarray, entry: Sequence[float] | np.ndarray,
            collateral: np.ndarray,
            maintenance: float, accounts: list[int] | np.ndarray, line: np.ndarray,
            bankruptcy: np.ndarray) -> None:
    """``accounts``' lines from their size and collateral now, written to ``line`` and
    ``bankruptcy`` in place (the reactor's accounts after a call's books moved them, and a
    probe book's): one account (a partial close) in plain floats, which cost less than numpy's;
    many (a socialised loss moves every account in profit) at once, compiled
    (``rules.socialised.reline``: the same formulas, so the same numbers)."""
    if len(accounts) > 16:
        reline(np.asarray(side, dtype=np.float64), size, np.asarray(entry, dtype=np.float64),
               collateral, maintenance, np.asarray(accounts, dtype=np.int64), line, bankruptcy)
        return
    for account in accounts:
        line[account], bankruptcy[account] = line_price_pair(
            int(side[account]), float(size[account]), float(entry[account]),
            float(collateral[account]), maintenance)


def draw_accounts(market: MarketSpec, initial_prices: list[float], seed: np.random.SeedSequence) -> Accounts:
    """Every group's accounts in order, each group from its own child of ``seed``."""
    names = [instrument.name for instrument in market.instruments]
    parts: list[tuple[np.ndarray, ...]] = []
    for group, child in zip(market.accounts, seed.spawn(len(market.accounts)), strict=True):
        if group.margin == "cross":
            continue  # drawn from the same child by market/cross_margin.py
        which = 0 if group.instrument is None else names.index(group.instrument)
        if group.file is not None:
            side, size, entry, collateral = _loaded(group.file)
            _refuse_past_the_line(group.file, size, entry, collateral, market.maintenance_margin)
        else:
            side, size, entry, collateral = _drawn(group, initial_prices[which], np.random.default_rng(child))
        parts.append((np.full(len(side), which, dtype=np.int32), side, size, entry, collateral))
    if not parts:
        empty = np.empty(0, dtype=np.float64)
        return Accounts(np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int8), empty, empty, empty, empty, empty)
    instrument, side, size, entry, collateral = (np.concatenate(column) for column in zip(*parts, strict=True))
    liquidation, bankruptcy = line_prices(side, size, entry, collateral, market.maintenance_margin)
    return Accounts(instrument, side, size, entry, collateral, liquidation, bankruptcy)


def drawn_leverage(group: AccountsSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` leverages: lognormal, at most ``leverage_cap``, at least ``leverage_floor`` (if any)."""
    leverage: np.ndarray = np.minimum(draws.lognormal(rng, group.leverage_median, group.leverage_sigma, n),
                                      group.leverage_cap)
    if group.leverage_floor is not None:
        leverage = np.maximum(leverage, group.leverage_floor)
    return leverage


def _drawn(group: AccountsSpec, price: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    n = group.count
    leverage = drawn_leverage(group, rng, n)
    collateral = sample_array(group.collateral, rng, n)
    collateral = np.maximum(collateral, 1e-9)  # a truncated normal may give 0: no position is free
    side = np.where(rng.random(n) < group.long_share, 1, -1).astype(np.int8)
    entry = np.full(n, price, dtype=np.float64)
    size = leverage * collateral / entry
    return side, size, entry, collateral


@kept_per_file  # a sweep's runs of one accounts file parse it once per process
def _loaded(path: str) -> tuple[np.ndarray, ...]:
    from msgstorm.scenario.replay import read_column  # pyarrow's CSV reader: only with a file

    side_raw = read_column(path, "side").to_pylist()
    sides = []
    for row, value in enumerate(side_raw, start=2):
        text = str(value).strip().lower()
        if text in ("1", "+1", "long", "1.0"):
            sides.append(1)
        elif text in ("-1", "short", "-1.0"):
            sides.append(-1)
        else:
            raise DataFileError(f"accounts file {path}: row {row}: side must be long, short, 1 or -1, got {value!r}")
    columns = [np.asarray(read_column(path, name).to_numpy(zero_copy_only=False), dtype=np.float64)
               for name in ("size", "entry", "collateral")]
    for name, values in zip(("size", "entry", "collateral"), columns, strict=True):
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if bad.size:
            raise DataFileError(f"accounts file {path}: row {int(bad[0]) + 2}: {name} must be a number above 0, "
                             f"got {values[bad[0]]}")
    loaded: tuple[np.ndarray, ...] = (np.asarray(sides, dtype=np.int8), *columns)
    for column in loaded:
        column.setflags(write=False)  # shared by every run that loads the file
    return loaded


def _refuse_past_the_line(path: str, size: np.ndarray, entry: np.ndarray, collateral: np.ndarray,
                          maintenance: float) -> None:
    """An account opened at leverage 1 / maintenance or above is on or past its liquidation
    line from the start (its equity is within maintenance x notional): the drawn groups are
    refused so at validation (``leverage_cap``), a file's rows here, naming the first."""
    leverage = size * entry / collateral
    past = np.flatnonzero(leverage >= 1.0 / maintenance)
    if past.size:
        row = int(past[0])
        raise DataFileError(f"accounts file {path}: row {row + 2}: leverage {leverage[row]:g} (size x entry / "
                         f"collateral) is at or above 1 / maintenance_margin = {1.0 / maintenance:g}: the account "
                         f"would open on or past its liquidation line ({past.size} such row(s))")


class LineIndex:
    """Accounts by liquidation price, per instrument and side (sorted once), so that a new
    price finds the accounts it puts past their line in time proportional to how many they
    are. Each watcher (a keeper) walks it with a ``LineCursor`` of its own."""

    def __init__(self, accounts: Accounts, instruments: int) -> None:
        self.instruments = instruments
        self.longs: list[np.ndarray] = []  # account ids by liquidation price, descending
        self.long_keys: list[np.ndarray] = []  # their negated lines, ascending
        self.shorts: list[np.ndarray] = []  # by liquidation price, ascending
        self.short_keys: list[np.ndarray] = []
        ids = np.arange(len(accounts), dtype=np.int64)
        for instrument in range(instruments):
            mine = accounts.instrument == instrument
            for side, ids_out, keys_out, sign in ((1, self.longs, self.long_keys, -1.0),
                                                  (-1, self.shorts, self.short_keys, 1.0)):
                chosen = ids[mine & (accounts.side == side)]
                keys = sign * accounts.liquidation[chosen]
                order = np.argsort(keys, kind="stable")
                ids_out.append(chosen[order])
                keys_out.append(keys[order])

    def cursor(self) -> LineCursor:
        return LineCursor(self)


class LineCursor:
    """One watcher's walk over a ``LineIndex``: ``past(instrument, price)`` returns the
    accounts whose line ``price`` has reached (longs with line >= price, shorts with line
    <= price) that no earlier call of this cursor returned."""

    def __init__(self, index: LineIndex) -> None:
        self.index = index
        self.long_done = [0] * index.instruments
        self.short_done = [0] * index.instruments
        # The lowest and highest price walked: a price between them reaches no line they did
        # not (a lending market's keeper looks again at the same price after every call).
        self.lowest = [math.inf] * index.instruments
        self.highest = [-math.inf] * index.instruments

    def past(self, instrument: int, price: float) -> list[int]:
        if self.lowest[instrument] <= price <= self.highest[instrument]:
            return []
        found: list[int] = self.past_array(instrument, price).tolist()
        return found

    def past_array(self, instrument: int, price: float) -> np.ndarray:
        """``past`` as an array (the probe books walk hundreds of thousands of lines)."""
        if self.lowest[instrument] <= price <= self.highest[instrument]:
            return np.empty(0, dtype=np.int64)
        self.lowest[instrument] = min(self.lowest[instrument], price)
        self.highest[instrument] = max(self.highest[instrument], price)
        index = self.index
        found: list[np.ndarray] = []
        reach = int(np.searchsorted(index.long_keys[instrument], -price, side="right"))
        done = self.long_done[instrument]
        if reach > done:
            found.append(index.longs[instrument][done:reach])
            self.long_done[instrument] = reach
        reach = int(np.searchsorted(index.short_keys[instrument], price, side="right"))
        done = self.short_done[instrument]
        if reach > done:
            found.append(index.shorts[instrument][done:reach])
            self.short_done[instrument] = reach
        if not found:
            return np.empty(0, dtype=np.int64)
        return found[0] if len(found) == 1 else np.concatenate(found)


def past_line(side: int, line: float, price: float) -> bool:
    """Whether an account of ``side`` with liquidation price ``line`` may be liquidated at ``price``."""
    return price <= line if side > 0 else price >= line


def past_lines(side: np.ndarray, line: np.ndarray, price: np.ndarray | float) -> np.ndarray:
    """``past_line`` of many accounts at once (the probe books)."""
    past: np.ndarray = np.where(side > 0, price <= line, price >= line)
    return past
