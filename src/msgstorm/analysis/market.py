"""What delay cost: liquidations, their delay and its parts, bad debt, price staleness.

Place in the pipeline: one analysis step, reading only the history's market tables
(``prices``, ``oracle``, ``accounts``, ``triggers``, ``executions``, ``topups``, ``venue``) and the
messages' commit times, so ``msgstorm report`` gives the same numbers as the run. ``market_summary``
is summary.json's ``market`` (null for a run without ``[market]``). The tables as columns are
built by ``analysis/market_tables.py`` and the venue's books by ``analysis/market_venue.py``;
their public names are importable from here too.

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

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import (
    message_rows,
    ms,
    percentiles,
    rounded,
)
from msgstorm.analysis.market_tables import (
    Executed,
    MarketTables,
    executed_liquidations,
    instrument_codes,
    judged_until_ns,
    market_tables,
)
from msgstorm.analysis.market_venue import (
    VenueSpan,
    held_after_venue,
    venue_spans,
    venue_summary,
    venue_table,
)
from msgstorm.analysis.summary_model import Market
from msgstorm.history.reader import History
from msgstorm.rules.market import equity, notional

__all__ = ["Delays", "Executed", "MarketTables", "VenueSpan", "bad_debt_at_end", "book_bad_debt",
           "executed_liquidations", "held_after_venue", "judged_until_ns", "liquidation_delays", "market_summary",
           "market_tables", "onchain_prices", "venue_spans", "venue_summary", "venue_table"]


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


def _spell_starts(tables: MarketTables, account: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Per (account, step): the first step of the spell of consecutive steps, ending at
    ``step``, on which the true price is past the account's line in effect; ``step`` itself
    when it is not past it (a price its keeper judged with a line a top-up moved at the same
    instant). Every window, from the account's first crossing (the spell starts at or after
    it) to its step, is laid end to end in one array: one pass for every liquidation."""
    if account.size == 0:
        return step
    crossed = tables.t_cross[account]
    first = np.where(crossed < 0, step, np.minimum(np.searchsorted(tables.times, crossed, side="left"), step))
    length = step - first + 1
    owner = np.repeat(np.arange(account.size), length)
    ends = np.cumsum(length)
    at = np.arange(owner.size) + np.repeat(first - (ends - length), length)  # the steps of each window
    who = account[owner]
    prices = tables.prices[tables.account_instrument[who], at]
    lines = tables.line_at(who, tables.times[at])
    past = np.where(tables.side[who] > 0, prices <= lines, prices >= lines)
    # The step after the last one not past the line in each window; the window's first when none.
    after_last_not_past = np.where(past, first[owner], at + 1)
    start = np.maximum.reduceat(after_last_not_past, ends - length)
    spell_start: np.ndarray = np.where(past[ends - 1], start, step)
    return spell_start


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
    crossing = tables.times[_spell_starts(tables, done.account, step)].astype(np.int64)
    # The oracle's first publication of the instrument at or after the crossing: every price
    # of the spell is past the line, so it is the first that showed it (the one acted on at latest).
    instrument = instrument_codes(oracle, "instrument", tables.instruments)
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
    instrument = (instrument_codes(oracle, "instrument", tables.instruments) if oracle.num_rows
                  else np.empty(0, dtype=np.int64))
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
