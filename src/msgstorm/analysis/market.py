"""What delay cost: liquidations, their delay and its parts, bad debt, price staleness.

Place in the pipeline: one analysis step, reading only the history's market tables
(``prices``, ``oracle``, ``accounts``, ``triggers``, ``executions``, ``topups``, ``venue``) and the
messages' commit times, so ``msgstorm report`` gives the same numbers as the run. ``market_summary``
is summary.json's ``market`` (null for a run without ``[market]``):

Every run is judged over the market's horizon, ``run.duration`` (``market.prices.horizon_ns``:
the span the oracle publishes over), whenever the run happened to settle: the price steps at
or before it are the ones that count (a run that was cut off or interrupted is judged up to
its last observed time, if earlier). Two runs of one sweep are judged over the same price
path. Liquidations that commit in the drain count; a price after the horizon, which no
oracle published, judges nothing.

- ``liquidations``: ``eligible`` (accounts the true price took past their maintenance line
  within the horizon), ``triggered`` (of those, a keeper sent a liquidation for),
  ``executed``, ``late`` (executed after the true price had first crossed the account's
  bankruptcy price), ``no_op`` (liquidation messages that committed and did nothing: the
  account recovered at the on-chain price, or was already liquidated), ``not_attempted``
  (eligible, never triggered), ``messages`` (liquidation messages sent).
- ``liquidation_delay_ms``: per executed account, from the crossing its liquidation
  answered to the execution committed: {p50, p99, max, mean, split}. The crossing answered
  is the start of the true price's spell past the line (consecutive steps past the line in
  effect) that holds the price the executing keeper acted on: the first crossing, unless
  the price went back over the line in between (then the account was not liquidatable for
  a while, and that time is no delay). ``split`` divides the mean, on that attempt, into
  ``oracle`` (the crossing -> the oracle's first publication at or after it: every price
  of the spell is past the line, so that is the first price that showed the crossing),
  ``keeper`` (the price the executing keeper acted on reached it -> it sent the
  liquidation) and ``messaging`` (the rest: from that first publication until the price
  the keeper acted on reached it, and the liquidation's way from the keeper to commit; an
  earlier attempt that came to nothing, say a liquidation committed before the price it
  acted on, shows here, as the wait for the price of the attempt that executed). Per
  account the three add up to the delay exactly, so their means add up to the mean.
- ``bad_debt``: {absolute, pct_of_open_interest, accounts}: the negative part of what each
  executed account kept, plus each account never liquidated marked to market at the true
  price at the horizon (with the collateral its top-ups added); open interest is every
  position's notional at entry. An account that topped up is past its line where the line
  in effect at that time was crossed.
- ``price_staleness_ms``: at every price step within the horizon, per instrument, the
  time since the true price behind the on-chain price (the newest committed oracle
  message; the first price at the start): {p50, p99, max}.
- ``slippage_bps``: {p50, p99} of the executed liquidations.
- ``venue`` (with ``[market.liquidation]``; ``venue_summary``): the liquidation fee and its
  split, the insurance fund's start, end and use, deleveraged, socialised, bad debt left and
  the partial calls. With a mechanism other than ``whole`` an account may take several calls
  (``executions`` rows ``partial``, then one ``executed`` if it is closed whole; under
  ``dutch_auction`` the liquidations that start or join an auction are ``auction`` rows and
  the take that closes it the ``executed`` one, a stale auction's take ``reset``: none of
  these is a no-op); an account
  left open is marked to market with the size and collateral the venue's books left it
  (``held_after_venue``).

"Late" and "ended in bad debt" differ: the liquidation penalty costs equity, so an account
liquidated before its bankruptcy price, but within ``penalty`` of it, still ends in bad
debt, and a late one executed after the price came back may end without any.
"""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import (
    message_rows,
    ms,
    percentiles,
    rounded,
    run_t_end_ns,
    scenario_section,
)
from msgstorm.analysis.summary_model import Market, VenueLosses
from msgstorm.history.outcomes import CLOSING, TOOK_PART, Outcome
from msgstorm.history.reader import History
from msgstorm.history.schema import VENUE
from msgstorm.rules.market import equity, horizon_ns, notional

__all__ = ["Delays", "Executed", "MarketTables", "bad_debt_at_end", "book_bad_debt",
           "executed_liquidations", "held_after_venue", "venue_table", "VenueSpan", "venue_spans",
           "judged_until_ns", "liquidation_delays", "market_summary", "market_tables",
           "onchain_prices", "venue_summary"]


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


def _codes(table: pa.Table, column: str, names: list[str]) -> np.ndarray:
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
    instrument = _codes(prices, "instrument", names)
    t = prices.column("t").to_numpy()
    grid = np.unique(t)
    grid = grid[grid <= until]
    path = np.empty((len(names), grid.size), dtype=np.float64)
    for i in range(len(names)):
        mine = instrument == i
        order = np.argsort(t[mine], kind="stable")
        values, times = prices.column("price").to_numpy()[mine][order], t[mine][order]
        path[i] = values[np.searchsorted(times, grid)]
    account_instrument = _codes(accounts, "instrument", names) if accounts.num_rows else np.empty(0, dtype=np.int64)
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


@dataclass(frozen=True)
class Delays:
    """Per executed liquidation (in ``Executed`` order): the crossing it answered and its
    delay, and the delay's three parts (None when a trigger or its price is missing from the
    history, a run cut off: then the crossing is the first one). ``oracle + keeper +
    messaging == delay`` exactly, per liquidation."""

    crossing: np.ndarray  # int64 ns
    delay: np.ndarray  # int64 ns: execution committed - crossing
    oracle: np.ndarray | None
    keeper: np.ndarray | None
    messaging: np.ndarray | None


def _spell_start(tables: MarketTables, account: int, step: int) -> int:
    """The first step of the spell of consecutive steps, ending at ``step``, on which the true
    price is past the account's line in effect; ``step`` itself when it is not past it (a
    price its keeper judged with a line a top-up moved at the same instant)."""
    crossed = int(tables.t_cross[account])  # the spell starts at or after the first crossing
    first = step if crossed < 0 else min(int(np.searchsorted(tables.times, crossed, side="left")), step)
    times = tables.times[first:step + 1]
    prices = tables.prices[tables.account_instrument[account], first:step + 1]
    lines = tables.line_at(np.full(times.size, account), times)
    past = np.where(tables.side[account] > 0, prices <= lines, prices >= lines)
    if not past[-1]:
        return step
    back = np.flatnonzero(~past)
    return first + (int(back[-1]) + 1 if back.size else 0)


def _byzantine(oracle: pa.Table) -> bool:
    """Whether some oracle message carried another price, or went at another time, than the
    true price behind it (an ``oracle`` fault)."""
    if "published" not in oracle.column_names or oracle.num_rows == 0 or oracle.column("published").null_count:
        return False  # a history written before the columns: its oracle was honest
    published = oracle.column("published").to_numpy(zero_copy_only=False)
    t_published = oracle.column("t_published").to_numpy(zero_copy_only=False)
    price = oracle.column("price").to_numpy()
    t_price = oracle.column("t_price").to_numpy()
    return bool(np.any(published != price) or np.any(t_published != t_price))


def _first_shown_by_a_byzantine_oracle(tables: MarketTables, oracle: pa.Table, instrument: np.ndarray,
                                       account: np.ndarray, crossing: np.ndarray, acted_row: np.ndarray) -> np.ndarray:
    """Per executed liquidation: when the oracle first published, at or after the crossing,
    a price that *showed* the account past its line (what it published, not the true price;
    at latest the message the keeper acted on). An honest oracle's first publication after
    the crossing shows it; a lying or late one's may not, and the wait is the oracle's."""
    published = oracle.column("published").to_numpy(zero_copy_only=False).astype(np.float64)
    t_published = oracle.column("t_published").to_numpy(zero_copy_only=False).astype(np.int64)
    shown: np.ndarray = t_published[acted_row].copy()
    by_instrument: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(len(tables.instruments)):
        rows = np.flatnonzero(instrument == i)
        order = rows[np.argsort(t_published[rows], kind="stable")]
        by_instrument[i] = (t_published[order], published[order])
    for k, (who, t_cross) in enumerate(zip(account.tolist(), crossing.tolist(), strict=True)):
        times, prices = by_instrument[int(tables.account_instrument[who])]
        start = int(np.searchsorted(times, t_cross, side="left"))
        lines = tables.line_at(np.full(times.size - start, who), times[start:])
        past = prices[start:] <= lines if tables.side[who] > 0 else prices[start:] >= lines
        hits = np.flatnonzero(past)
        if hits.size:
            shown[k] = min(int(shown[k]), int(times[start + int(hits[0])]))
    return shown


def liquidation_delays(history: History, tables: MarketTables, done: Executed) -> Delays:
    """Each executed liquidation's delay and its split (see the module's docstring)."""
    first_crossing = tables.t_cross[done.account]
    triggers = history.table("triggers")
    oracle = history.table("oracle")
    trigger_row, known = message_rows(triggers.column("msg_id").to_numpy(), done.msg_id)
    publish_row, published = message_rows(oracle.column("msg_id").to_numpy(),
                                          triggers.column("price_msg_id").to_numpy()[trigger_row])
    if done.account.size == 0 or not (bool(np.all(known)) and bool(np.all(published))):
        return Delays(first_crossing, done.t - first_crossing, None, None, None)
    t_seen = triggers.column("t").to_numpy()[trigger_row]
    t_sent = triggers.column("t_sent").to_numpy()[trigger_row]
    t_price = oracle.column("t_price").to_numpy()
    acted_on = t_price[publish_row]  # the time of the true price the executing keeper acted on
    step = np.maximum(np.searchsorted(tables.times, acted_on, side="right") - 1, 0)
    crossing = np.array([tables.times[_spell_start(tables, account, k)]
                         for account, k in zip(done.account.tolist(), step.tolist(), strict=True)], dtype=np.int64)
    # The oracle's first publication of the instrument at or after the crossing: every price
    # of the spell is past the line, so it is the first that showed it (the one acted on at latest).
    instrument = _codes(oracle, "instrument", tables.instruments)
    first_shown = acted_on.copy()
    for i in range(len(tables.instruments)):
        rows = np.flatnonzero(tables.account_instrument[done.account] == i)
        published_times = np.sort(t_price[instrument == i])
        if rows.size == 0 or published_times.size == 0:
            continue
        at = np.minimum(np.searchsorted(published_times, crossing[rows], side="left"), published_times.size - 1)
        first_shown[rows] = np.minimum(published_times[at], acted_on[rows])
    if _byzantine(oracle):
        first_shown = _first_shown_by_a_byzantine_oracle(tables, oracle, instrument, done.account, crossing,
                                                         publish_row)
    delay = done.t - crossing
    oracle_part = first_shown - crossing
    keeper_part = t_sent - t_seen
    return Delays(crossing, delay, oracle_part, keeper_part, delay - oracle_part - keeper_part)


def _ms_stats(values_ns: np.ndarray, keys: tuple[str, ...] = ("p50", "p99", "max")) -> dict[str, float | None]:
    if values_ns.size == 0:
        return dict.fromkeys(keys)
    qs = {"p50": 50.0, "p99": 99.0, "max": 100.0}
    found = percentiles(values_ns.astype(np.float64), [qs[key] for key in keys])
    return {key: ms(value) for key, value in zip(keys, found, strict=True)}


def book_bad_debt(tables: MarketTables, size: np.ndarray, collateral: np.ndarray, executed: np.ndarray,
                  executed_bad: np.ndarray, step: int = -1) -> tuple[float, int]:
    """(bad debt, accounts with some) of a book of ``tables``' accounts (their sides, entries
    and instruments) with ``size`` and ``collateral``: the shortfall of the executed ones
    (``executed_bad``, one per executed account), and the rest marked to market at the true
    price of price step ``step`` (the horizon's last by default). The accounts' own book,
    every probe book (``analysis/probes.py``) and the book at each time
    (``analysis/bad_debt.py``)."""
    never = ~executed
    at_step = tables.prices[tables.account_instrument[never], step] if tables.prices.shape[1] else np.empty(0)
    marked = equity(tables.side[never], size[never], tables.entry[never], collateral[never], at_step)
    marked_bad = np.maximum(-marked, 0.0)
    absolute = float(executed_bad.sum()) + float(marked_bad.sum())
    return absolute, int(np.count_nonzero(executed_bad > 0)) + int(np.count_nonzero(marked_bad > 0))


def bad_debt_at_end(history: History, tables: MarketTables, done: Executed) -> tuple[float, int]:
    """(bad debt, accounts with some): summary.json's ``market.bad_debt``: every executed
    account's shortfall, and the rest marked to market at the horizon with the books' end
    (``held_after_venue``). ``analysis/bad_debt.py`` draws the same at each time."""
    executed = np.zeros(tables.side.size, dtype=bool)
    executed[done.account] = True
    size, collateral = held_after_venue(history, tables)
    return book_bad_debt(tables, size, collateral, executed, done.bad_debt)


def market_summary(history: History) -> Market | None:
    """summary.json's ``market``, as its typed section (``summary_model.Market``); None
    without ``[market]``."""
    tables = market_tables(history)
    if tables is None:
        return None
    triggers = history.table("triggers")
    done = executed_liquidations(history)
    exec_account, exec_t, exec_bps = done.account, done.t, done.slippage_bps
    eligible = tables.t_cross >= 0
    triggered = np.zeros(eligible.size, dtype=bool)
    triggered[triggers.column("account").to_numpy()] = True
    executed = np.zeros(eligible.size, dtype=bool)
    executed[exec_account] = True
    late = int(np.count_nonzero((tables.t_bankrupt[exec_account] >= 0) & (tables.t_bankrupt[exec_account] < exec_t)))

    delays = liquidation_delays(history, tables, done)
    delay = delays.delay
    split = None
    if delay.size and delays.oracle is not None and delays.keeper is not None and delays.messaging is not None:
        split = {"oracle": ms(float(delays.oracle.mean())), "keeper": ms(float(delays.keeper.mean())),
                 "messaging": ms(float(delays.messaging.mean()))}
    delay_ms: dict[str, Any] = {**_ms_stats(delay), "mean": ms(float(delay.mean())) if delay.size else None,
                                "split": split}

    absolute, accounts_bad = bad_debt_at_end(history, tables, done)
    open_interest = float(notional(tables.size, tables.entry).sum())

    summary: dict[str, Any] = {
        "currency": history.scenario["market"].get("currency"),
        "accounts": int(eligible.size),
        "open_interest": rounded(open_interest, 2),
        "liquidations": {
            "eligible": int(eligible.sum()), "triggered": int((triggered & eligible).sum()),
            "executed": int(executed.sum()), "late": late, "no_op": done.no_ops,
            "not_attempted": int((eligible & ~triggered).sum()), "messages": int(triggers.num_rows)},
        "liquidation_delay_ms": delay_ms,
        "bad_debt": {"absolute": rounded(absolute, 2),
                     "pct_of_open_interest": rounded(100.0 * absolute / open_interest, 4) if open_interest else None,
                     "accounts": accounts_bad},
        "price_staleness_ms": _staleness(history, tables),
        "slippage_bps": {key: value for key, value in zip(
            ("p50", "p99"), (rounded(v, 3) for v in percentiles(exec_bps.astype(np.float64), [50.0, 99.0]))
            if exec_bps.size else (None, None), strict=True)},
    }
    if history.scenario["market"].get("liquidation") is not None or history.scenario["market"].get("funding"):
        summary["venue"] = venue_summary(history)
    return Market.model_validate(summary)


def held_after_venue(history: History, tables: MarketTables) -> tuple[np.ndarray, np.ndarray]:
    """Each account's (size, collateral) at the end: the accounts' own (with their top-ups)
    where the venue's books never moved them, else the books' last row (``venue``: a partial
    close, deleveraging, a socialised charge) plus the top-ups committed after it. A run that
    recorded its socialised losses once (no top-ups) ends where their replay ends
    (``venue_table``): the same rows applied in the same order."""
    replay = _replay(history)
    if replay is not None:
        return replay.size.copy(), replay.collateral.copy()
    size, collateral = tables.size.copy(), tables.collateral.copy()
    venue = history.table("venue")
    if venue.num_rows == 0:
        return size, collateral
    t, account = venue.column("t").to_numpy(), venue.column("account").to_numpy()
    size_after, collateral_after = venue.column("size_after").to_numpy(), venue.column("collateral_after").to_numpy()
    last_t = np.full(size.size, -1, dtype=np.int64)
    # In commit order: the last row of an account is its state (a socialised loss writes a
    # row for every account in profit, so the rows are read at once: each account's highest
    # row number, without a sort).
    last_row = np.full(size.size, -1, dtype=np.int64)
    np.maximum.at(last_row, account, np.arange(venue.num_rows, dtype=np.int64))
    moved = np.flatnonzero(last_row >= 0)
    last = last_row[moved]
    size[moved], collateral[moved], last_t[moved] = size_after[last], collateral_after[last], t[last]
    topups = history.table("topups")
    if topups.num_rows:
        for when, who, amount in zip(topups.column("t").to_pylist(), topups.column("account").to_pylist(),
                                     topups.column("amount").to_pylist(), strict=True):
            if 0 <= last_t[who] < when:
                collateral[who] += amount
    return size, collateral


class _Replay(NamedTuple):
    """The socialised losses of a run that recorded each once, replayed (``venue_table``):
    each loss's rows (before: the ``venue`` rows before them; t, msg_id, fund_after, and the
    accounts charged, their shares, sizes and collateral after), every share in order, and
    every account's size and collateral after the last ``venue`` row."""

    blocks: list[tuple[int, int, int, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    shares: np.ndarray
    size: np.ndarray
    collateral: np.ndarray


# One replay per history: the books' end (``held_after_venue``) and ``venue_summary`` both read it.
_REPLAYS: weakref.WeakKeyDictionary[History, _Replay | None] = weakref.WeakKeyDictionary()


def venue_table(history: History) -> pa.Table:
    """The ``venue`` table with a row for every account each socialised loss charged, as the
    run's books made them: a run without top-ups records a socialised loss once
    (``socialised_losses``), and its rows are replayed here in order (``market/venue.py``):
    each account's size and collateral from the accounts at the start and every ``venue`` row
    before the loss; the accounts charged, the open accounts of the bankrupt account's
    instrument in profit at the loss's price but it; each one's share
    ``charged x profit / total``, its collateral after it its collateral less the share. The
    same operations in the same order as the run's, so the same numbers; the profit they
    sum to, and how many they are, must be what the run recorded."""
    replay = _replay(history)
    venue = history.table("venue")
    return venue if replay is None else _with_blocks(venue, replay.blocks)


class VenueSpan(NamedTuple):
    """A run of ``venue_table``'s rows, in its order: each row's time, account, size and
    collateral after; ``distinct``: a socialised loss's rows (one time, no account twice)."""

    t: np.ndarray  # int64 ns
    account: np.ndarray  # int64
    size_after: np.ndarray
    collateral_after: np.ndarray
    distinct: bool


def venue_spans(history: History) -> list[VenueSpan]:
    """``venue_table``'s rows as spans, without building the table (a socialised loss
    replays a row for every account in profit: hundreds of thousands in a crash): the
    recorded rows between the losses, and each loss's replayed rows. Joined, the spans are
    the table's columns ``t``, ``account``, ``size_after`` and ``collateral_after``."""
    venue = history.table("venue")
    t, account, size_after, collateral_after = (venue.column(name).to_numpy() for name in (
        "t", "account", "size_after", "collateral_after"))
    replay = _replay(history)
    blocks = replay.blocks if replay is not None else []
    counts = [block[4].size for block in blocks]
    # Each loss's rows' time, for every loss at once.
    times = np.repeat(np.array([block[1] for block in blocks], dtype=np.int64), counts)
    spans = []
    start = at = 0
    for (before, _, _, _, charged, _, sizes, after), count in zip(blocks, counts, strict=True):
        if before > start:
            spans.append(VenueSpan(t[start:before], account[start:before], size_after[start:before],
                                   collateral_after[start:before], False))
        spans.append(VenueSpan(times[at:at + count], charged, sizes, after, True))
        start, at = max(start, before), at + count
    if venue.num_rows > start:
        rest = slice(start, None)
        spans.append(VenueSpan(t[rest], account[rest], size_after[rest], collateral_after[rest],
                               False))
    return spans


def _replay(history: History) -> _Replay | None:
    if history not in _REPLAYS:
        losses = history.table("socialised_losses")
        _REPLAYS[history] = _replayed(history, history.table("venue"), losses) if losses.num_rows else None
    return _REPLAYS[history]


def _replayed(history: History, venue: pa.Table, losses: pa.Table, compiled: bool | None = None) -> _Replay:
    """``venue_table``'s replay. No closed flag is read: an account the books closed holds
    nothing (a whole close leaves size 0, deleveraging closes what it takes to 0), and an
    account that holds nothing is never charged. Each loss is the venue's compiled pass
    (``rules/socialised.py``) when ``compiled`` (by default: when the process has numba
    loaded already, as a run that writes its own summary has), else the same numbers with
    numpy (a report of a history loads no numba)."""
    if compiled is None:
        compiled = "numba" in sys.modules
    socialise: Callable[..., tuple[int, float, float]] | None = None
    if compiled:
        from msgstorm.rules.socialised import socialise as compiled_pass

        socialise = compiled_pass
    accounts = history.table("accounts")
    names: list[str] = sorted(set(accounts.column("instrument").to_pylist()))
    instrument = _codes(accounts, "instrument", names)
    side = accounts.column("side").to_numpy().astype(np.float64)
    entry = accounts.column("entry").to_numpy().astype(np.float64)
    size = accounts.column("size").to_numpy().astype(np.float64)  # copies: the replay's state
    collateral = accounts.column("collateral").to_numpy().astype(np.float64)
    row_account = venue.column("account").to_pylist()
    row_size, row_collateral = venue.column("size_after").to_pylist(), venue.column("collateral_after").to_pylist()
    done = 0  # the ``venue`` rows the state holds
    of: dict[str, np.ndarray] = {}  # instrument -> its accounts, as a mask
    n = size.size
    nothing_closed = np.zeros(n, dtype=bool)
    buffers = (np.empty(n, dtype=np.int64), np.empty(n), np.empty(n), np.empty(n))
    blocks: list[tuple[int, int, int, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for at, (t, msg_id, bankrupt, name, price, charged, total, count, fund, before) in enumerate(zip(
            *(losses.column(c).to_pylist() for c in ("t", "msg_id", "account", "instrument", "price", "charged",
                                                      "total", "accounts", "fund_after", "venue_row")), strict=True)):
        for row in range(done, before):  # the rows since the last loss, in order
            size[row_account[row]], collateral[row_account[row]] = row_size[row], row_collateral[row]
        done = max(done, before)
        mine = of.get(name)
        if mine is None:
            mine = of[name] = instrument == names.index(name)
        if socialise is not None:  # one compiled pass: the accounts in profit, the shares, the collateral
            found_at, shares_at, sizes_at, after_at = buffers
            paid, replayed, _ = socialise(side, size, entry, collateral, nothing_closed, mine, bankrupt, float(price),
                                          float(charged), found_at, shares_at, sizes_at, after_at)
            if replayed != total or paid != count:
                raise ValueError(_unreplayed(at, t, bankrupt, paid, replayed, count, total))
            found, shares = found_at[:paid].copy(), shares_at[:paid].copy()
            sizes, after = sizes_at[:paid].copy(), after_at[:paid].copy()
        else:
            made = side * size * (price - entry)  # ``pnl``, the price a scalar: the same numbers
            eligible = made > 0
            eligible &= size > 0
            eligible &= mine
            eligible[bankrupt] = False
            found = np.flatnonzero(eligible)
            profits = made[found]
            replayed = sum(profits.tolist())  # in account order, as the run's denominator
            if replayed != total or found.size != count:
                raise ValueError(_unreplayed(at, t, bankrupt, found.size, replayed, count, total))
            shares = charged * profits / total
            after = collateral[found] - shares
            collateral[found] = after
            sizes = size[found]
        collateral[bankrupt] += charged
        blocks.append((before, t, msg_id, fund, found.astype(np.int64), shares, sizes, after))
    for row in range(done, len(row_account)):
        size[row_account[row]], collateral[row_account[row]] = row_size[row], row_collateral[row]
    return _Replay(blocks, np.concatenate([block[5] for block in blocks]), size, collateral)


def _unreplayed(at: int, t: int, bankrupt: int, replayed_count: int, replayed: float, count: int,
                total: float) -> str:
    return (f"history: socialised_losses row {at} (t {t}, account {bankrupt}): the accounts in profit replay to "
            f"{replayed_count} with a profit of {replayed!r}, the run recorded {count} and {total!r}")


def _with_blocks(venue: pa.Table, blocks: list[tuple[int, int, int, float, np.ndarray, np.ndarray, np.ndarray,
                                                           np.ndarray]]) -> pa.Table:
    """``venue`` with each block's rows (kind ``socialised``) placed before its row."""
    import pyarrow.compute as pc

    kinds = pc.dictionary_encode(venue.column("kind").combine_chunks())
    names: list[str] = kinds.dictionary.to_pylist()
    if "socialised" not in names:
        names.append("socialised")
    social = names.index("socialised")
    codes = kinds.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    plain = {name: venue.column(name).to_numpy() for name in ("t", "msg_id", "account", "amount", "size_after",
                                                               "collateral_after", "fund_after")}
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in (*plain, "kind")}
    start = 0
    for before, t, msg_id, fund, account, amount, size_after, collateral_after in blocks:
        for name, column in plain.items():
            pieces[name].append(column[start:before])
        pieces["kind"].append(codes[start:before])
        n = account.size
        for name, column in (("t", np.full(n, t, dtype=np.int64)), ("msg_id", np.full(n, msg_id, dtype=np.int64)),
                             ("account", account), ("amount", amount), ("size_after", size_after),
                             ("collateral_after", collateral_after), ("fund_after", np.full(n, fund))):
            pieces[name].append(column)
        pieces["kind"].append(np.full(n, social, dtype=np.int32))
        start = before
    for name, column in plain.items():
        pieces[name].append(column[start:])
    pieces["kind"].append(codes[start:])
    kind = pa.DictionaryArray.from_arrays(pa.array(np.concatenate(pieces["kind"])), pa.array(names, pa.string()))
    columns = {name: np.concatenate(pieces[name]) for name in plain}
    return pa.table({"t": columns["t"], "msg_id": columns["msg_id"], "account": columns["account"],
                     "kind": kind.cast(pa.string()), "amount": columns["amount"], "size_after": columns["size_after"],
                     "collateral_after": columns["collateral_after"], "fund_after": columns["fund_after"]},
                    schema=VENUE)


_VENUE_KINDS = ("keeper_fee", "insurance_fee", "insurance_used", "deleveraged", "socialised", "auctioned", "returned")


def venue_summary(history: History) -> VenueLosses:
    """summary.json's ``market.venue`` (with ``[market.liquidation]``): what the venue's
    rules did with the money (``market/venue.py``): ``liquidation_fee`` (the penalties of
    every call, whole or partial) and its split, ``insurance_fund`` (start, end, used),
    ``deleveraged``, ``socialised``, ``bad_debt`` (what no one covered: the executed
    accounts' shortfall left after the fund and the cover), ``partial_calls``, with
    ``[market.funding]`` ``funding``: the payments (``venue`` rows of kind ``funding``), the
    intervals that paid, what the payers paid and the receivers received (equal: zero-sum),
    and under ``english_auction`` ``auctions`` (``_english_lots``)."""
    executions = history.table("executions")
    outcomes = executions.column("outcome").to_pylist()
    called = np.array([outcome in CLOSING for outcome in outcomes], dtype=bool)
    executed = np.array([outcome == Outcome.EXECUTED for outcome in outcomes], dtype=bool)
    penalty = executions.column("penalty").to_numpy()
    bad_debt = executions.column("bad_debt").to_numpy()
    fee = float(penalty[called].sum()) if called.size else 0.0
    venue = history.table("venue")
    replay = _replay(history)  # socialised losses recorded once: their shares, replayed
    sums = dict.fromkeys(_VENUE_KINDS, 0.0)
    start = float((history.scenario["market"].get("liquidation") or {}).get("insurance_fund", 0.0))
    end = start
    kinds = venue.column("kind") if venue.num_rows else pa.chunked_array([], pa.string())

    # Here: a run without a venue loads no Arrow compute (tests/test_startup.py).
    import pyarrow.compute as pc

    # The kinds as codes once (hundreds of thousands of rows with a socialised loss).
    encoded = pc.dictionary_encode(kinds.combine_chunks())
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names: list[str] = encoded.dictionary.to_pylist()

    def of_kind(kind: str) -> np.ndarray:  # the rows of ``kind``
        rows: np.ndarray = codes == names.index(kind) if kind in names else np.zeros(len(codes), dtype=bool)
        return rows

    funding = of_kind("funding")
    amounts = venue.column("amount").to_numpy() if venue.num_rows else np.zeros(0)
    if not funding.all():
        for kind in _VENUE_KINDS:
            sums[kind] = float(amounts[of_kind(kind)].sum())
        end = float(venue.column("fund_after").to_numpy()[-1])
        if replay is not None:  # every share in the rows' order: the sum the rows would give
            sums["socialised"] = float(replay.shares.sum())
            if replay.blocks[-1][0] == venue.num_rows:  # a loss after the last row
                end = replay.blocks[-1][3]
    else:
        sums["keeper_fee"] = fee  # no books (funding's rows at most): the keeper takes the whole penalty
    paid = amounts[funding]
    funding_summary = None
    if history.scenario["market"].get("funding"):
        funding_summary = {"payments": int(funding.sum()), "paid": rounded(float(-paid[paid < 0].sum()), 2),
                           "received": rounded(float(paid[paid > 0].sum()), 2),
                           "intervals": len(set(venue.column("t").to_numpy()[funding].tolist()))}
    return VenueLosses.model_validate({
        "liquidation_fee": rounded(fee, 2), "keeper_fee": rounded(sums["keeper_fee"], 2),
        "insurance_fee": rounded(sums["insurance_fee"], 2),
        "insurance_fund": {"start": rounded(start, 2), "end": rounded(end, 2), "used": rounded(sums["insurance_used"], 2)},
        "deleveraged": rounded(sums["deleveraged"], 2), "socialised": rounded(sums["socialised"], 2),
        "bad_debt": rounded(float(bad_debt[executed].sum()) if executed.size else 0.0, 2),
        "partial_calls": int(sum(1 for outcome in outcomes if outcome == Outcome.PARTIAL)),
        "funding": funding_summary,
        **({"auctions": _english_lots(history, executed, sums)} if sums["auctioned"] > 0 else {}),
    })


def _english_lots(history: History, executed: np.ndarray, sums: dict[str, float]) -> dict[str, Any]:
    """An ``english_auction`` venue's lots: how many closed, how many at a zero bid (an
    effective price of 0: nothing paid, nothing given back), their units and their value (at
    the on-chain price at each close), and the share of the auctioned collateral's value
    given back to its owners (the ``auctioned`` and ``returned`` venue rows), over every lot
    and over the lots won at a bid above zero."""
    executions = history.table("executions")
    accounts = executions.column("account").to_numpy()[executed]
    zero = executions.column("price").to_numpy()[executed] == 0.0
    size = history.table("accounts").column("size").to_numpy()
    venue = history.table("venue")
    kinds = venue.column("kind").to_numpy(zero_copy_only=False)
    rows_of = venue.column("account").to_numpy()
    amounts = venue.column("amount").to_numpy()
    auctioned = np.zeros(size.size)
    returned = np.zeros(size.size)
    np.add.at(auctioned, rows_of[kinds == "auctioned"], amounts[kinds == "auctioned"])
    np.add.at(returned, rows_of[kinds == "returned"], amounts[kinds == "returned"])
    won = accounts[~zero]
    won_value = math.fsum(auctioned[won].tolist())
    published = (history.scenario["market"]["liquidation"] or {}).get("published")
    instruments = history.scenario["market"]["instruments"]
    return {"unit": instruments[0]["name"] if len(instruments) == 1 else None,
            "lots": int(accounts.size), "zero_bid_lots": int(zero.sum()),
            "zero_bid_units": rounded(float(size[accounts[zero]].sum()), 2),
            "zero_bid_value": rounded(math.fsum(auctioned[accounts[zero]].tolist()), 2),
            "units": rounded(float(size[accounts].sum()), 2),
            "returned_share": rounded(sums["returned"] / sums["auctioned"], 4),
            "returned_share_won": rounded(math.fsum(returned[won].tolist()) / won_value, 4) if won_value > 0 else None,
            **({"published": published} if published else {})}


def onchain_prices(history: History, tables: MarketTables) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per instrument: (commit times, price then on chain, time of the true price behind it),
    one entry per committed oracle message that made the on-chain price newer, after the
    start (time 0: the first price)."""
    oracle = history.table("oracle")
    messages = history.columns("messages", ["msg_id", "t_committed"])
    ids = messages.column("msg_id").to_numpy()
    committed = messages.column("t_committed").to_numpy(zero_copy_only=False)
    row, known = message_rows(ids, oracle.column("msg_id").to_numpy())
    t_commit = np.where(known, committed[row], np.nan)
    instrument = _codes(oracle, "instrument", tables.instruments) if oracle.num_rows else np.empty(0, dtype=np.int64)
    out = []
    for i in range(len(tables.instruments)):
        mine = (instrument == i) & ~np.isnan(t_commit)
        order = np.lexsort((oracle.column("t_price").to_numpy()[mine], t_commit[mine]))
        times = t_commit[mine][order].astype(np.int64)
        t_price = oracle.column("t_price").to_numpy()[mine][order]
        price = oracle.column("price").to_numpy()[mine][order]
        newest = np.maximum.accumulate(t_price) if t_price.size else t_price
        newer = t_price >= newest  # only an oracle message newer than the chain's moves it
        first = tables.prices[i, 0] if tables.prices.shape[1] else np.nan
        out.append((np.concatenate([[0], times[newer]]), np.concatenate([[first], price[newer]]),
                    np.concatenate([[0], t_price[newer]])))
    return out


def _staleness(history: History, tables: MarketTables) -> dict[str, float | None]:
    samples = []
    for times, _, t_price in onchain_prices(history, tables):
        at = np.searchsorted(times, tables.times, side="right") - 1
        samples.append(tables.times - t_price[at])
    return _ms_stats(np.concatenate(samples) if samples else np.empty(0, dtype=np.int64))
