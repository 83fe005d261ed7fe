"""The venue's books at the end of a run: each account's holdings after the venue moved them,
socialised losses recorded once replayed into their rows, and summary.json's
``market.venue``.

Place in the pipeline: part of the market analysis (``analysis/market.py`` reads
``held_after_venue`` for the bad debt at the end and ``venue_summary`` for its section;
``analysis/bad_debt.py`` reads ``venue_table``), from the history's ``venue``,
``socialised_losses``, ``topups`` and ``executions`` tables.
"""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import rounded
from msgstorm.analysis.market_tables import MarketTables, instrument_codes
from msgstorm.analysis.summary_model import VenueLosses
from msgstorm.history.outcomes import CLOSING, Outcome
from msgstorm.history.reader import History
from msgstorm.history.schema import VENUE

__all__ = ["VenueSpan", "held_after_venue", "venue_spans", "venue_summary", "venue_table"]


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
    instrument = instrument_codes(accounts, "instrument", names)
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


_VENUE_KINDS = ("keeper_fee", "insurance_fee", "insurance_used", "deleveraged", "socialised", "auctioned",
                "returned")


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
    """An ``english_auction`` venue's lots, each auction closed (its ``executed`` row, keyed
    by the winning bid's message as its ``auctioned`` and ``returned`` venue rows are): how
    many, how many at a zero bid (an effective price of 0: nothing paid, nothing given back),
    their units (a ``lot`` venue row's with a ``lump``, else the vault's) and their value (at
    the on-chain price at each close), the share of the zero-bid units the keeper that won
    most of them took, and the share of the auctioned collateral's value given back to its
    owners (the ``auctioned`` and ``returned`` venue rows), over every lot and over the lots
    won at a bid above zero."""
    executions = history.table("executions")
    accounts = executions.column("account").to_numpy()[executed]
    msg_ids = executions.column("msg_id").to_numpy()[executed].tolist()
    winners = np.asarray(executions.column("keeper").to_pylist(), dtype=object)[executed]
    zero = executions.column("price").to_numpy()[executed] == 0.0
    venue = history.table("venue")
    kinds = venue.column("kind").to_numpy(zero_copy_only=False)
    rows_msg = venue.column("msg_id").to_numpy()
    amounts = venue.column("amount").to_numpy()

    def of_lot(kind: str) -> dict[int, float]:  # the winning bid's msg_id -> its lot's ``kind`` row
        chosen = kinds == kind
        return dict(zip(rows_msg[chosen].tolist(), amounts[chosen].tolist(), strict=True))

    auctioned_of, returned_of, units_of = of_lot("auctioned"), of_lot("returned"), of_lot("lot")
    size = history.table("accounts").column("size").to_numpy()
    units = np.array([units_of.get(msg, float(size[account]))
                      for msg, account in zip(msg_ids, accounts.tolist(), strict=True)])
    auctioned = np.array([auctioned_of.get(msg, 0.0) for msg in msg_ids])
    returned = np.array([returned_of.get(msg, 0.0) for msg in msg_ids])
    won_value = math.fsum(auctioned[~zero].tolist())
    zero_units = math.fsum(units[zero].tolist())
    by_winner: dict[str, float] = {}
    for winner, taken in zip(winners[zero].tolist(), units[zero].tolist(), strict=True):
        by_winner[winner] = by_winner.get(winner, 0.0) + taken
    top = max(by_winner.values()) / zero_units if zero_units > 0 else None
    published = (history.scenario["market"]["liquidation"] or {}).get("published")
    instruments = history.scenario["market"]["instruments"]
    return {"unit": instruments[0]["name"] if len(instruments) == 1 else None,
            "lots": int(accounts.size), "zero_bid_lots": int(zero.sum()),
            "zero_bid_units": rounded(zero_units, 2),
            "zero_bid_value": rounded(math.fsum(auctioned[zero].tolist()), 2),
            "top_zero_bidder_share": rounded(top, 4) if top is not None else None,
            "units": rounded(math.fsum(units.tolist()), 2),
            "returned_share": rounded(sums["returned"] / sums["auctioned"], 4),
            "returned_share_won": (rounded(math.fsum(returned[~zero].tolist()) / won_value, 4)
                                   if won_value > 0 else None),
            **({"published": published} if published else {})}
