"""Liquidation mechanisms and the venue's books, worked by hand, and the books balancing.

``market/liquidation.py`` (what a call closes) and ``market/venue.py`` (the insurance fund,
deleveraging, socialised loss), with the formulas of ``rules/liquidation.py``; the cases
are worked on paper in the comments.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import shared_run
from hypothesis import given, settings
from hypothesis import strategies as st

from msgstorm import read_history, run
from msgstorm.analysis import market_venue
from msgstorm.analysis.market import held_after_venue, venue_spans, venue_table
from msgstorm.history.reader import History
from msgstorm.market import reactor as reactor_module
from msgstorm.market.flip import EnglishAuctions, flip_call
from msgstorm.market.funding import Funding
from msgstorm.market.liquidation import Call, call, mechanism_of
from msgstorm.market.reactor import MarketReactor
from msgstorm.market.venue import Entry, Moves, Venue
from msgstorm.rules.liquidation import auction_price, decay, decay_age_ns, flip_tab
from msgstorm.rules.market import equity, execute, notional, pnl
from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.scenario.market import (
    FundingSpec,
    InstrumentSpec,
    LiquidationSpec,
    LiquiditySpec,
    MarketSpec,
)


def _market(maintenance: float, penalty: float, slippage_bps: float = 0.0, depth: float = 1e6,
            **liquidation: object) -> MarketSpec:
    return MarketSpec(instruments=[InstrumentSpec(name="X")], maintenance_margin=maintenance,
                      liquidation_penalty=penalty, slippage_bps=slippage_bps, depth=depth,
                      liquidation=LiquidationSpec.model_validate(liquidation))


def test_partial_closes_what_the_margin_formula_says() -> None:
    # Long 10 at 100 with 100 of collateral; maintenance 5%, penalty 1%, no slippage. At 94:
    # E = 100 + 10 x (94 - 100) = 40, N = 940, 5% of N = 47 > 40: past the line.
    # 40 - 0.01 x = 0.05 (940 - x)  =>  x = (47 - 40) / (0.05 - 0.01) = 175 of notional,
    # 175 / 94 units; after it E = 40 - 1.75 = 38.25 = 5% x (940 - 175).
    rule = mechanism_of(_market(0.05, 0.01, mechanism="partial"))
    done = call(rule, 1, 10.0, 100.0, 100.0, 94.0)
    assert not done.whole
    assert done.closed == pytest.approx(175.0 / 94.0, rel=1e-12)
    assert done.penalty == pytest.approx(1.75, rel=1e-12)
    assert done.pnl == pytest.approx(-6.0 * 175.0 / 94.0, rel=1e-12)
    assert done.size_after == pytest.approx(10.0 - 175.0 / 94.0, rel=1e-12)
    after = equity(1, done.size_after, 100.0, done.collateral_after, 94.0)
    assert after == pytest.approx(38.25, rel=1e-12)
    assert after == pytest.approx(0.05 * notional(done.size_after, 94.0), rel=1e-12)


def test_partial_to_initial_margin_and_with_slippage() -> None:
    # The same account restored to an initial margin of 10%: 40 - 0.01 x = 0.1 (940 - x)
    # => x = (94 - 40) / 0.09 = 600 of notional.
    rule = mechanism_of(_market(0.05, 0.01, mechanism="partial", restore_to="initial", initial_margin=0.1))
    assert call(rule, 1, 10.0, 100.0, 100.0, 94.0).closed * 94.0 == pytest.approx(600.0, rel=1e-12)
    # With slippage k = 10 / (10,000 x 10,000) = 1e-7 per unit of notional: the root of
    # 1e-7 x^2 - 0.04 x + 7 = 0, x = 14 / (0.04 + sqrt(0.0016 - 2.8e-6)) = 175.0766...
    rule = mechanism_of(_market(0.05, 0.01, slippage_bps=10.0, depth=10_000.0, mechanism="partial"))
    done = call(rule, 1, 10.0, 100.0, 100.0, 94.0)
    assert done.closed * 94.0 == pytest.approx(14.0 / (0.04 + math.sqrt(0.0016 - 2.8e-6)), rel=1e-12)
    assert done.slippage == pytest.approx(1e-7 * (done.closed * 94.0) ** 2, rel=1e-9)
    # A penalty at or above the target margin can never restore it: closed whole.
    rule = mechanism_of(_market(0.05, 0.05, mechanism="partial"))
    assert call(rule, 1, 10.0, 100.0, 100.0, 94.0).whole


def test_a_close_factor_sequence_of_three_calls() -> None:
    # Long 10 at 100 with 300; maintenance 25%, bonus 5%, close factor 50%, at 78:
    # E = 80, N = 780, health 80 / 195 < 1, debt N - E = 700.
    # 1: x = 350, bonus 17.5: E = 62.5, N = 430, health 62.5 / 107.5 = 0.581, debt 367.5;
    # 2: x = 183.75, bonus 9.1875: E = 53.3125, N = 246.25, health 0.866, debt 192.9375;
    # 3: x = 96.46875, bonus 4.8234375: E = 48.4890625, N = 149.78125, health 1.295: done.
    rule = mechanism_of(_market(0.25, 0.05, mechanism="close_factor"))
    size, collateral, price = 10.0, 300.0, 78.0
    expected = [(350.0, 62.5, 430.0), (183.75, 53.3125, 246.25), (96.46875, 48.4890625, 149.78125)]
    for closed_notional, held, left in expected:
        assert equity(1, size, 100.0, collateral, price) < 0.25 * notional(size, price)  # health below 1
        done = call(rule, 1, size, 100.0, collateral, price)
        assert not done.whole
        assert done.closed * price == pytest.approx(closed_notional, rel=1e-12)
        assert done.penalty == pytest.approx(0.05 * closed_notional, rel=1e-12)
        size, collateral = done.size_after, done.collateral_after
        assert equity(1, size, 100.0, collateral, price) == pytest.approx(held, rel=1e-12)
        assert notional(size, price) == pytest.approx(left, rel=1e-12)
    assert equity(1, size, 100.0, collateral, price) / (0.25 * notional(size, price)) == pytest.approx(
        48.4890625 / (0.25 * 149.78125), rel=1e-12)
    assert equity(1, size, 100.0, collateral, price) >= 0.25 * notional(size, price)
    # A bankrupt account is closed whole.
    assert call(rule, 1, 10.0, 100.0, 300.0, 69.0).whole


def test_whole_is_todays_rule() -> None:
    market = _market(0.05, 0.05, slippage_bps=10.0, depth=100_000.0)
    done = call(mechanism_of(market), -1, 3.0, 100.0, 20.0, 107.0)
    today = execute(-1, 3.0, 100.0, 20.0, 107.0, 0.05, 10.0, 100_000.0)
    assert done.whole and done.size_after == 0.0
    assert (done.pnl, done.penalty, done.slippage, done.slippage_bps, done.collateral_after) == (
        today.pnl, today.penalty, today.slippage, today.slippage_bps, today.collateral_after)


def _venue(spec: LiquidationSpec, book: list[tuple[int, float, float, float]]) -> Venue:
    return Venue(spec, [b[0] for b in book], np.array([b[1] for b in book], dtype=np.float64), [b[2] for b in book],
                 np.array([b[3] for b in book], dtype=np.float64), [0] * len(book), np.zeros(len(book), dtype=bool))


def test_adl_order_and_amounts_on_a_three_account_book() -> None:
    # A: long 10 at 100 with 50, bankrupt at 90 (no penalty, no slippage): collateral after
    # 50 - 100 = -50. The fund holds 20: 30 left, 3 per closed unit.
    # B: short 4 at 100 with 20: profit 40, equity 60, leverage 360 / 60 = 6, score 240.
    # C: short 10 at 95 with 400: profit 50, equity 450, leverage 900 / 450 = 2, score 100.
    # B first (more profit x leverage though less profit): 4 units, pays min(12, 40) = 12;
    # C then: the 6 units left, pays min(18, 50 x 6 / 10) = 18. Nothing left.
    spec = LiquidationSpec(mechanism="whole", insurance_fund=20.0, on_empty="adl")
    market = _market(0.05, 0.0, insurance_fund=20.0, on_empty="adl")
    venue = _venue(spec, [(1, 10.0, 100.0, 50.0), (-1, 4.0, 100.0, 20.0), (-1, 10.0, 95.0, 400.0)])
    done = call(mechanism_of(market), 1, 10.0, 100.0, 50.0, 90.0)
    entries, bad_debt = venue.apply(0, done)
    moves = [(e.kind, e.account, e.amount) for e in entries if e.amount]
    assert moves == [("insurance_used", 0, 20.0), ("deleveraged", 1, pytest.approx(12.0)),
                     ("deleveraged", 2, pytest.approx(18.0))]
    assert bad_debt == pytest.approx(0.0, abs=1e-12)
    assert venue.fund == 0.0
    assert (venue.size[1], venue.collateral[1]) == (0.0, pytest.approx(20.0 + 40.0 - 12.0))
    assert (venue.size[2], venue.collateral[2]) == (4.0, pytest.approx(400.0 + 30.0 - 18.0))
    assert venue.closed.tolist() == [True, True, False]


def test_socialised_loss_and_bad_debt() -> None:
    # The same bankrupt A (shortfall 50), no fund; B and C share it pro rata to profit
    # (40 and 50 of 90): 22.22... and 27.77...; with only B (profit 40): 40 socialised, 10 bad debt.
    spec = LiquidationSpec(on_empty="socialise")
    market = _market(0.05, 0.0)
    done = call(mechanism_of(market), 1, 10.0, 100.0, 50.0, 90.0)
    venue = _venue(spec, [(1, 10.0, 100.0, 50.0), (-1, 4.0, 100.0, 20.0), (-1, 10.0, 95.0, 400.0)])
    entries, bad_debt = venue.apply(0, done)
    shares = {e.account: e.amount for e in entries if e.kind == "socialised"}
    assert shares == {1: pytest.approx(50.0 * 40 / 90), 2: pytest.approx(50.0 * 50 / 90)}
    assert bad_debt == pytest.approx(0.0, abs=1e-12)
    venue = _venue(spec, [(1, 10.0, 100.0, 50.0), (-1, 4.0, 100.0, 20.0)])
    entries, bad_debt = venue.apply(0, done)
    assert [(e.kind, e.amount) for e in entries if e.kind in ("socialised", "bad_debt")] == [
        ("socialised", pytest.approx(40.0)), ("bad_debt", pytest.approx(10.0))]
    assert venue.collateral.tolist() == [0.0, pytest.approx(-20.0)]


def test_the_accounts_in_profit_at_the_bankrupt_price() -> None:
    # Price 100. Longs make a profit below it, shorts above it: long 1 at 90 (profit 10 x 2),
    # long 2 at 99 (profit 1 x 1), long 3 at 100 (none: entry at the price), long 4 at 120
    # (a loss), short 5 at 130 (profit 30 x 1), short 6 at 100 (none), short 7 at 80 (a
    # loss); long 8 at 50 is closed, long 9 at 60 holds nothing, long 10 at 70 is of another
    # instrument, account 0 (long at 40) is the bankrupt one. In account order, with their
    # profit and size; on the other side of a long (deleveraging) only the short 5.
    book = [(1, 1.0, 40.0), (1, 2.0, 90.0), (1, 1.0, 99.0), (1, 3.0, 100.0), (1, 1.0, 120.0), (-1, 1.0, 130.0),
            (-1, 2.0, 100.0), (-1, 1.0, 80.0), (1, 1.0, 50.0), (1, 0.0, 60.0), (1, 1.0, 70.0)]
    closed = np.zeros(len(book), dtype=bool)
    closed[8] = True
    venue = Venue(LiquidationSpec(on_empty="socialise"), [b[0] for b in book],
                  np.array([b[1] for b in book], dtype=np.float64), [b[2] for b in book],
                  np.full(len(book), 10.0), [0] * 10 + [1], closed)
    found, made, size = venue._profitable(0, 100.0, other_side=False)
    assert (found.tolist(), made.tolist(), size.tolist()) == ([1, 2, 5], [20.0, 1.0, 30.0], [2.0, 1.0, 1.0])
    found, made, _ = venue._profitable(0, 100.0, other_side=True)
    assert (found.tolist(), made.tolist()) == ([5], [30.0])
    found, made, _ = venue._profitable(5, 100.0, other_side=True)  # the other side of a short: the longs
    assert (found.tolist(), made.tolist()) == ([0, 1, 2], [60.0, 20.0, 1.0])
    # A partial close moves a size, a whole close the closed flags: read at each call.
    venue.size[1] = 0.5
    venue.closed[2] = True
    found, made, _ = venue._profitable(0, 100.0, other_side=False)
    assert (found.tolist(), made.tolist()) == ([1, 5], [5.0, 30.0])


@settings(max_examples=100, deadline=None)
@given(book=st.lists(st.tuples(st.sampled_from([1, -1]), st.sampled_from([0.0, 0.5, 3.0]),
                               st.sampled_from([90.0, 99.5, 100.0, 100.5, 110.0]), st.sampled_from([0, 1]),
                               st.booleans()), min_size=2, max_size=30),
       price=st.sampled_from([95.0, 99.5, 100.0, 100.25, 105.0]), other_side=st.booleans())
def test_the_accounts_in_profit_for_every_account_of_a_drawn_book(
        book: list[tuple[int, float, float, int, bool]], price: float, other_side: bool) -> None:
    """The venue (its masks per instrument and side kept from call to call) finds the
    accounts, profits and sizes, in account order, that the test written out finds for each
    account in turn: of its instrument, open, size above 0, profit above 0 (ties of entry and
    price included), not itself, on the other side with ``other_side``."""
    side = np.array([b[0] for b in book], dtype=np.float64)
    size = np.array([b[1] for b in book], dtype=np.float64)
    entry = np.array([b[2] for b in book], dtype=np.float64)
    instrument = np.array([b[3] for b in book])
    closed = np.array([b[4] for b in book], dtype=bool)
    venue = Venue(LiquidationSpec(on_empty="socialise"), side.astype(int).tolist(), size.copy(), entry.tolist(),
                  np.full(len(book), 10.0), instrument.tolist(), closed)
    made = pnl(side, size, entry, np.full_like(size, price))
    for account in range(len(book)):
        eligible = (instrument == instrument[account]) & ~closed & (size > 0) & (made > 0)
        if other_side:
            eligible &= side != side[account]
        eligible[account] = False
        expected = np.flatnonzero(eligible)
        found, profits, sizes = venue._profitable(account, price, other_side)
        assert found.tolist() == expected.tolist()
        assert profits.tolist() == made[expected].tolist() and sizes.tolist() == size[expected].tolist()


def test_the_fund_takes_its_share_of_the_penalty() -> None:
    spec = LiquidationSpec(mechanism="partial", keeper_share=0.25, insurance_fund=5.0)
    market = _market(0.05, 0.01).model_copy(update={"liquidation": spec})
    done = call(mechanism_of(market), 1, 10.0, 100.0, 100.0, 94.0)
    assert (done.keeper_fee, done.fund_fee) == (pytest.approx(0.4375), pytest.approx(1.3125))  # 1.75 split 1:3
    venue = _venue(spec, [(1, 10.0, 100.0, 100.0)])
    entries, _ = venue.apply(0, done)
    assert venue.fund == pytest.approx(6.3125)
    assert [e.kind for e in entries] == ["keeper_fee", "insurance_fee", "partial"]


def test_each_venue_row_s_fund_after_is_the_fund_once_that_row_is_in() -> None:
    # The call above with a fund of 5: the keeper's 0.4375 leaves the fund at 5; the insurance
    # fee's own row brings it to 5 + 1.3125 = 6.3125; the partial row leaves it there.
    spec = LiquidationSpec(mechanism="partial", keeper_share=0.25, insurance_fund=5.0)
    market = _market(0.05, 0.01).model_copy(update={"liquidation": spec})
    done = call(mechanism_of(market), 1, 10.0, 100.0, 100.0, 94.0)
    entries, _ = _venue(spec, [(1, 10.0, 100.0, 100.0)]).apply(0, done)
    assert [(e.kind, e.fund_after) for e in entries] == [
        ("keeper_fee", 5.0), ("insurance_fee", pytest.approx(6.3125)), ("partial", pytest.approx(6.3125))]


def test_a_call_that_would_close_less_than_a_millionth_of_the_position_closes_nothing() -> None:
    # Long 10 at 100 with 100 of collateral, maintenance 5%, penalty 1%: E = 100 + 10 (p - 100)
    # meets 5% of 10 p at the line p* = 900 / 9.5 = 94.7368...; an ε below it the call closes
    # x = (0.05 N - E) / (0.05 - 0.01) = 9.5 ε / 0.04 of notional N = 10 p, a share of
    # 9.5 ε / (0.04 x 10 p) = 0.2507 ε of the position. ε = 1e-8: 2.5e-9 of it, nothing
    # material (MATERIAL_SHARE 1e-6), so no call; ε = 1e-4: 2.5e-5 of it, a partial call.
    rule = mechanism_of(_market(0.05, 0.01, mechanism="partial"))
    line = 900.0 / 9.5
    dust = call(rule, 1, 10.0, 100.0, 100.0, line - 1e-8)
    assert (dust.closed, dust.whole, dust.penalty, dust.size_after) == (0.0, False, 0.0, 10.0)
    assert dust.collateral_after == 100.0
    small = call(rule, 1, 10.0, 100.0, 100.0, line - 1e-4)
    assert not small.whole
    assert small.closed / 10.0 == pytest.approx(9.5e-4 / (0.04 * 10.0 * (line - 1e-4)), rel=1e-6)


def test_two_keepers_in_one_block_make_one_partial_call_not_a_dust_close(tmp_path: Path) -> None:
    # Two keepers at one node with one reaction send the same liquidations into the same
    # blocks: the first restores the account to its maintenance margin, and the second finds
    # only float leftovers (about 1e-16 of the position) to close. That one is a no-op
    # (recovered), not a partial call: every partial row closes at least a millionth.
    history, summary = _run(tmp_path, "venue-partial", ["market.accounts.0.count=200", "market.keepers.0.count=2"])
    executions, venue = history.table("executions"), history.table("venue")
    price = dict(zip(_column(executions, "msg_id"), _column(executions, "price"), strict=True))
    shares = [amount / price[msg_id] / (amount / price[msg_id] + size_after) for msg_id, kind, amount, size_after
              in zip(*(_column(venue, c) for c in ("msg_id", "kind", "amount", "size_after")), strict=True)
              if kind == "partial"]
    outcomes = _column(executions, "outcome")
    assert shares and min(shares) >= 1e-6
    assert outcomes.count("recovered") > 0  # the second keeper's calls
    assert summary["market"]["venue"]["partial_calls"] == outcomes.count("partial") == len(shares)


def test_the_fund_after_each_venue_row_of_a_run_follows_from_the_rows_before(tmp_path: Path) -> None:
    # Starting from insurance_fund, an insurance_fee row adds its amount and an insurance_used
    # row takes it; every row's fund_after is the fund with its own row in, never the next's.
    history, _ = _run(tmp_path, "venue-partial", ["market.accounts.0.count=300"])
    fund = 1_000.0  # examples/venue-partial.toml
    rows = zip(*(_column(history.table("venue"), c) for c in ("kind", "amount", "fund_after")), strict=True)
    seen = set()
    for kind, amount, fund_after in rows:
        fund += amount if kind == "insurance_fee" else -amount if kind == "insurance_used" else 0.0
        assert fund_after == pytest.approx(fund, rel=1e-9, abs=1e-9), kind
        seen.add(kind)
    assert {"keeper_fee", "insurance_fee", "insurance_used"} <= seen


# --- the books balance, over drawn markets, for every mechanism -----------------------------

_book = st.lists(st.tuples(st.sampled_from([1, -1]), st.floats(0.5, 20.0), st.floats(50.0, 150.0),
                           st.floats(1.2, 15.0)), min_size=2, max_size=12)


@settings(max_examples=150, deadline=None)
@given(book=_book, moves=st.lists(st.floats(-0.4, 0.4), min_size=1, max_size=8),
       mechanism=st.sampled_from(["whole", "partial", "close_factor", "dutch_auction", "english_auction"]),
       on_empty=st.sampled_from(["none", "adl", "socialise"]), fund=st.floats(0.0, 500.0),
       keeper_share=st.floats(0.0, 1.0), penalty=st.floats(0.0, 0.06), slippage_bps=st.floats(0.0, 50.0),
       restore_to=st.sampled_from(["maintenance", "initial"]),
       funding_rate=st.sampled_from(["fixed", "premium"]), fixed_rate=st.floats(-0.01, 0.01),
       curve=st.sampled_from(["linear", "sqrt", "power"]), flip_bid=st.floats(0.0, 1.0),
       flip_lot=st.floats(0.05, 1.0))
def test_the_books_balance(book: list[tuple[int, float, float, float]], moves: list[float], mechanism: str,
                           on_empty: str, fund: float, keeper_share: float, penalty: float, slippage_bps: float,
                           restore_to: str, funding_rate: str, fixed_rate: float, curve: str, flip_bid: float,
                           flip_lot: float) -> None:
    """Over the accounts: collateral change - realised PnL - funding received + penalties +
    slippage + what they paid to deleveraging and socialised loss = insurance fund used +
    deleveraged + socialised + bad debt; the fund's change = its share of the penalties -
    what it paid; penalties = keepers' fees + the fund's; and funding sums to zero. Realised
    PnL is recomputed here from the units each movement closed, not read from the calls;
    funding is paid at each price before its liquidations; the book is linear, square-root or a
    power law. An English auction (longs only) closes at a bid of ``2 flip_bid`` x the tab
    (tend; from 1: the tab, with ``flip_lot`` of the units taken: dent)."""
    spec = LiquidationSpec(mechanism=mechanism, on_empty=on_empty, insurance_fund=fund, keeper_share=keeper_share,
                           restore_to=restore_to, initial_margin=0.12)
    market = _market(0.05, penalty, slippage_bps=slippage_bps, depth=10_000.0).model_copy(
        update={"liquidation": spec, "liquidity": LiquiditySpec(curve=curve, exponent=1.5)})
    rule = mechanism_of(market)
    english = mechanism == "english_auction"
    accounts = [(1 if english else side, size, entry, size * entry / leverage) for side, size, entry, leverage in book]
    venue = _venue(spec, accounts)
    funding = Funding(FundingSpec(rate=funding_rate, fixed_rate=fixed_rate, clamp=0.005), market, venue.side,
                      venue.size, venue.collateral, venue.instrument, venue.closed)
    start = list(venue.collateral)
    realised = penalties = slippage = keeper = fund_in = funded = funding_moved = 0.0
    covers = {"insurance_used": 0.0, "deleveraged": 0.0, "socialised": 0.0, "bad_debt": 0.0}
    for move in moves:
        price = 100.0 * (1.0 + move)
        for payment in funding.pay([price]):
            funded += payment.amount
            funding_moved += abs(payment.amount)
        for _ in range(40):  # each account called until it meets its line at this price (or is closed)
            due = [a for a in range(len(accounts)) if not venue.closed[a] and venue.size[a] > 0
                   and equity(venue.side[a], venue.size[a], venue.entry[a], venue.collateral[a], price)
                   < 0.05 * notional(venue.size[a], price)]
            if not due:
                break
            for account in due:
                if venue.closed[account]:
                    continue
                before = {a: venue.size[a] for a in range(len(accounts))}
                size, entry, held = venue.size[account], venue.entry[account], venue.collateral[account]
                if english:
                    share = min(1.0, 2.0 * flip_bid)
                    done: Call = flip_call(rule, size, entry, held, share * flip_tab(size * entry - held, penalty),
                                           size * flip_lot if share == 1.0 else size, price)
                else:
                    done = call(rule, venue.side[account], size, entry, held, price)
                if done.closed <= 0:
                    continue
                realised += venue.side[account] * done.closed * (done.price - entry)
                penalties += done.penalty
                slippage += done.slippage
                entries: list[Entry] = venue.apply(account, done)[0]
                for entry in entries:
                    keeper += entry.amount if entry.kind == "keeper_fee" else 0.0
                    fund_in += entry.amount if entry.kind == "insurance_fee" else 0.0
                    if entry.kind in covers:
                        covers[entry.kind] += entry.amount
                    if entry.kind == "deleveraged":  # the counterparty closed units at the call's price
                        closed = before[entry.account] - entry.size_after
                        realised += venue.side[entry.account] * closed * (done.price - venue.entry[entry.account])
    change = sum(venue.collateral) - sum(start)
    paid = covers["deleveraged"] + covers["socialised"]
    scale = 1.0 + sum(abs(c) for c in start) + abs(realised)
    assert funded == pytest.approx(0.0, abs=1e-12 * (1.0 + funding_moved))
    assert change - realised - funded + penalties + slippage + paid == pytest.approx(sum(covers.values()),
                                                                                  abs=1e-9 * scale)
    assert venue.fund - fund == pytest.approx(fund_in - covers["insurance_used"], abs=1e-9 * scale)
    assert penalties == pytest.approx(keeper + fund_in, abs=1e-9 * scale)
    assert all(value >= -1e-12 for value in covers.values())
    assert all(venue.collateral[a] >= -1e-9 * scale or not venue.closed[a] for a in range(len(accounts)))


# --- through the network: the reactor, the history, the summary ---------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
def _run(tmp_path: Path, example: str, overrides: list[str]) -> tuple[History, dict[str, Any]]:
    result = run(load_scenario(str(EXAMPLES / f"{example}.toml"), overrides), tmp_path / "run")
    return read_history(result.run_dir), result.summary


def _shared_run(example: str, overrides: list[str]) -> tuple[History, dict[str, Any]]:
    """``_run`` made once a session (``shared_run``), for a test that changes nothing the run
    takes: the tour's tests (tests/test_docs.py) read the examples' runs, and two tests here
    the same close-factor run."""
    result = shared_run(load_scenario(str(EXAMPLES / f"{example}.toml"), overrides))
    return result.history, result.summary


def _column(table: pa.Table, name: str) -> list[Any]:
    values: list[Any] = table.column(name).to_pylist()
    return values


@pytest.mark.parametrize(("example", "overrides", "moved"), [
    ("venue-partial", [], "deleveraged"),
    ("venue-close-factor", ["market.accounts.0.count=600"], "socialised"),
    ("venue-dutch", [], "insurance_used"),
    ("venue-dutch", ['market.liquidation.mechanism="english_auction"', "market.accounts.0.long_share=1",
                     'market.liquidation.ttl="500ms"', 'market.liquidation.tau="3s"', 'market.keepers.0.discount="3%"'],
     "insurance_used"),
    ("venue-partial", ['market.liquidation.mechanism="whole"', "market.liquidation.insurance_fund=0",
                       "market.liquidation.keeper_share=1"], "deleveraged"),
    ("venue-partial", ['market.funding={interval="1s", rate="premium", fixed_rate=0.0001}'], "funding"),
    # The day replayed, as shipped: the penalties, the fund they feed, the collateral returned and the deficit.
    pytest.param("black-thursday-2020", [], "insurance_used", marks=pytest.mark.slow),
])
def test_the_books_balance_in_a_run_read_from_its_history(tmp_path: Path, example: str, overrides: list[str],
                                                         moved: str) -> None:
    history, summary = _shared_run(example, overrides)
    # A socialised loss is recorded once (``socialised_losses``); ``venue_table`` replays its rows.
    accounts, executions, venue = history.table("accounts"), history.table("executions"), venue_table(history)
    side, entry = _column(accounts, "side"), _column(accounts, "entry")
    size, collateral = _column(accounts, "size"), _column(accounts, "collateral")
    start = sum(collateral)
    price_of = dict(zip(_column(executions, "msg_id"), _column(executions, "price"), strict=True))
    called = [outcome in ("executed", "partial") for outcome in _column(executions, "outcome")]
    realised = sum(v for v, c in zip(_column(executions, "pnl"), called, strict=True) if c)
    penalties = sum(v for v, c in zip(_column(executions, "penalty"), called, strict=True) if c)
    slippage = sum(v for v, c in zip(_column(executions, "slippage"), called, strict=True) if c)
    sums: dict[str, float] = {}
    for msg_id, account, kind, amount, size_after, collateral_after in zip(
            *(_column(venue, name) for name in ("msg_id", "account", "kind", "amount", "size_after",
                                                 "collateral_after")), strict=True):
        sums[kind] = sums.get(kind, 0.0) + amount
        if kind == "deleveraged":  # the counterparty closed units at the execution's price
            realised += side[account] * (size[account] - size_after) * (price_of[msg_id] - entry[account])
        size[account], collateral[account] = size_after, collateral_after
    # A lot cut with a ``lump`` leaves what its bid raised above the debt (the units given back)
    # to the owner outside the vault, whose rows keep what the bite left it.
    to_owner = sums.get("to_owner", 0.0)
    paid = sums.get("deleveraged", 0.0) + sums.get("socialised", 0.0)
    cover = paid + sums.get("insurance_used", 0.0) + sums.get("bad_debt", 0.0)
    funded = sums.get("funding", 0.0)  # zero-sum: received less paid
    assert funded == pytest.approx(0.0, abs=1e-6 * start)
    assert sum(collateral) + to_owner - start - realised - funded + penalties + slippage + paid == pytest.approx(
        cover, abs=1e-6 * start)
    if moved == "funding":  # it moved money: what the payers paid
        assert -sum(a for a, k in zip(_column(venue, "amount"), _column(venue, "kind"), strict=True)
                    if k == "funding" and a < 0) > 0
        return
    assert sums[moved] > 0  # the cover this case is about did move money
    if moved == "socialised":  # recorded once a loss: what each shared is what its replayed rows add to
        losses = history.table("socialised_losses")
        assert "socialised" not in _column(history.table("venue"), "kind")
        assert losses.num_rows > 0 and sum(_column(losses, "accounts")) == _column(venue, "kind").count("socialised")
        assert sum(_column(losses, "charged")) == pytest.approx(sums["socialised"], rel=1e-9)
    fund = summary["market"]["venue"]["insurance_fund"]
    assert fund["end"] - fund["start"] == pytest.approx(sums["insurance_fee"] - sums.get("insurance_used", 0.0),
                                                        abs=0.02)
    assert summary["market"]["venue"]["liquidation_fee"] == pytest.approx(penalties, abs=0.01)
    shown = summary["market"]["venue"]
    assert (shown["insurance_fund"]["used"] if moved == "insurance_used" else shown[moved]) == pytest.approx(
        sums[moved], abs=0.01)


def _recording_books(monkeypatch: pytest.MonkeyPatch) -> list[Entry]:
    """The ``socialised`` entries the venue's books make during a run, in order."""
    made: list[Entry] = []
    book = Venue.book

    def recorded(self: Venue, account: int, done: Call) -> tuple[Moves, float]:
        moves, bad_debt = book(self, account, done)
        made.extend(entry for entry in moves.entries() if entry.kind == "socialised")
        return moves, bad_debt

    monkeypatch.setattr(Venue, "book", recorded)
    return made


@pytest.mark.parametrize("flush_rows", [None, 64])
def test_a_socialised_loss_is_recorded_once_and_its_rows_replay_exactly(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         flush_rows: int | None) -> None:
    """Each loss is one ``socialised_losses`` row; the rows ``venue_table`` replays from it are
    the books' own, account for account and digit for digit (``==``, not approximately), and
    the summary's socialised total is their sum; also when the reactor writes its rows in
    many parts (``flush_rows``: a loss's place counts the rows written before)."""
    made = _recording_books(monkeypatch)
    if flush_rows is not None:
        monkeypatch.setattr(reactor_module, "_FLUSH_ROWS", flush_rows)
    history, summary = _run(tmp_path, "venue-close-factor", ["market.accounts.0.count=600"])
    losses = history.table("socialised_losses")
    assert 0 < losses.num_rows < len(made)
    assert sum(_column(losses, "accounts")) == len(made)
    assert set(_column(losses, "instrument")) == {"ETH"}
    venue = venue_table(history)
    rows = [(a, amount, size, collateral, fund) for a, k, amount, size, collateral, fund in zip(
        *(_column(venue, c) for c in ("account", "kind", "amount", "size_after", "collateral_after", "fund_after")),
        strict=True) if k == "socialised"]
    assert rows == [(e.account, e.amount, e.size_after, e.collateral_after, e.fund_after) for e in made]
    assert venue.num_rows == history.table("venue").num_rows + len(made)
    assert summary["market"]["venue"]["socialised"] == round(sum(e.amount for e in made), 2)
    # The spans the bad debt over time reads, joined, are the table's columns, bit for bit.
    spans = venue_spans(history)
    assert any(span.distinct for span in spans) and any(not span.distinct for span in spans)
    for k, name in enumerate(("t", "account", "size_after", "collateral_after")):
        joined = np.concatenate([span[k] for span in spans])
        assert np.array_equal(joined, venue.column(name).to_numpy())
    assert all(np.unique(span.account).size == span.account.size for span in spans if span.distinct)
    # The books' end is each account's last row of the replayed table, read in order.
    accounts = history.table("accounts")
    size, collateral = _column(accounts, "size"), _column(accounts, "collateral")
    for account, size_after, collateral_after in zip(
            *(_column(venue, c) for c in ("account", "size_after", "collateral_after")), strict=True):
        size[account], collateral[account] = size_after, collateral_after
    held = held_after_venue(history, SimpleNamespace())  # type: ignore[arg-type]  # the replay needs no tables
    assert (held[0].tolist(), held[1].tolist()) == (size, collateral)
    # The replay with the compiled pass (a run's own summary: numba loaded) and with numpy (a
    # report of the history) are the same, bit for bit.
    compiled, plain = (market_venue._replayed(history, history.table("venue"), losses, compiled=flag)
                       for flag in (True, False))
    assert len(compiled.blocks) == len(plain.blocks) == losses.num_rows
    for one, other in zip(compiled.blocks, plain.blocks, strict=True):
        assert one[:4] == other[:4] and all(np.array_equal(a, b) for a, b in zip(one[4:], other[4:], strict=True))
    assert np.array_equal(compiled.shares, plain.shares) and np.array_equal(compiled.size, plain.size)
    assert np.array_equal(compiled.collateral, plain.collateral)
    # A loss whose recorded total the history's accounts do not give is refused, naming its
    # row, either way.
    altered = losses.set_column(losses.schema.get_field_index("total"), "total",
                                pa.array([v * (1 + 1e-9) for v in _column(losses, "total")], pa.float64()))
    fresh = read_history(tmp_path / "run")
    fresh._tables["socialised_losses"] = altered
    with pytest.raises(ValueError, match=r"socialised_losses row 0 .*the run recorded"):
        venue_table(fresh)
    for flag in (True, False):
        with pytest.raises(ValueError, match=r"socialised_losses row 0 .*the run recorded"):
            market_venue._replayed(fresh, fresh.table("venue"), altered, compiled=flag)


def test_with_top_ups_a_socialised_loss_keeps_a_row_per_charged_account(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Top-ups change collateral between the ``venue`` rows without a place in their order,
    so such a run writes every charged account's row, as the books made it."""
    made = _recording_books(monkeypatch)
    history, _ = _run(tmp_path, "venue-close-factor", ["market.accounts.0.count=600",
                                                       'market.topups={probability="50%", near="5%"}'])
    assert history.table("socialised_losses").num_rows == 0
    venue = history.table("venue")
    assert venue_table(history).equals(venue)
    kinds = _column(venue, "kind")
    assert kinds.count("socialised") == len(made) > 0
    amounts = [a for a, k in zip(_column(venue, "amount"), kinds, strict=True) if k == "socialised"]
    assert amounts == [e.amount for e in made]


def test_a_close_factor_keeper_calls_again_at_the_same_price(tmp_path: Path) -> None:
    history, summary = _shared_run("venue-close-factor", ["market.accounts.0.count=600"])
    executions = history.table("executions")
    calls: dict[tuple[int, float], list[str]] = {}
    for account, price, outcome in zip(*(_column(executions, name) for name in ("account", "price", "outcome")),
                                       strict=True):
        calls.setdefault((account, price), []).append(outcome)
    again = [outcomes for outcomes in calls.values() if outcomes.count("partial") >= 2]
    assert again, "no account took two close-factor calls at one on-chain price"
    assert summary["market"]["venue"]["partial_calls"] == sum(outcomes.count("partial") for outcomes in calls.values())


def test_an_explicit_whole_section_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    plain = run(load_scenario(str(EXAMPLES / "leverage-latency.toml")), tmp_path / "plain")
    whole = run(load_scenario(str(EXAMPLES / "leverage-latency.toml"), ['market.liquidation={mechanism="whole"}']),
                tmp_path / "whole")
    assert read_history(whole.run_dir).table("executions").equals(read_history(plain.run_dir).table("executions"))
    venue = whole.summary["market"].pop("venue")
    assert whole.summary["market"] == plain.summary["market"]
    assert "venue" not in plain.summary["market"]
    executed = read_history(plain.run_dir).table("executions")
    assert venue["liquidation_fee"] == pytest.approx(sum(_column(executed, "penalty")), abs=0.01)
    assert venue["keeper_fee"] == venue["liquidation_fee"] and venue["insurance_fund"]["used"] == 0.0


@pytest.mark.parametrize(("override", "expected"), [
    ('market.liquidation.mechanism="dutch"', "market.liquidation.mechanism: unknown liquidation mechanism 'dutch'; "
                                             "one of ['close_factor', 'dutch_auction', 'english_auction', 'partial', "
                                             "'whole']"),
    ("market.liquidation.close_factor=0", "market.liquidation.close_factor: a call repays a share of the debt above 0"),
    ('market.liquidation.restore_to="initial"', "initial_margin: 0.1 must be above maintenance_margin 0.1"),
    ('market.liquidation.mechanism="english_auction"', "accounts[0].long_share: 0.7, but an english_auction sells "
                                                       "a long's collateral"),
])
def test_bad_liquidation_input_names_the_field(override: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(EXAMPLES / "venue-partial.toml"), ['market.maintenance_margin="10%"', override])
    assert expected in str(error.value), str(error.value)


def test_probe_books_ride_a_venue_with_a_fund_and_refuse_an_auction_naming_it() -> None:
    """Each probe book keeps its own venue's books (``market/probes.py``): a fund with
    deleveraging is carried; an auction, taken by keepers every account shares, is refused."""
    probes = "market.probes={leverages=[2.0, 4.0]}"
    assert load_scenario(str(EXAMPLES / "venue-partial.toml"), [probes]).market is not None
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(EXAMPLES / "venue-dutch.toml"), [probes])
    assert "probes: the probe books cannot answer for liquidation.mechanism 'dutch_auction'" in str(error.value)


def test_an_english_auction_refuses_funding_naming_the_field() -> None:
    """An english_auction market holds longs only, so [market.funding] has no one to pay:
    refused, naming ``funding``, rather than run paying nothing."""
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(EXAMPLES / "venue-partial.toml"),
                      ['market.liquidation.mechanism="english_auction"', "market.accounts.0.long_share=1",
                       'market.funding={interval="1s", rate="fixed", fixed_rate=0.001}'])
    assert "funding: an english_auction market holds longs only" in str(error.value), str(error.value)


# --- Dutch auctions ------------------------------------------------------------------------------


def test_the_auction_decays_as_maker_s_abaci() -> None:
    # Linear over tau 60 s: 15 s in, 1 - 15/60 = 0.75; 0 from 60 s on. Stair-step, 1% off
    # each whole second: 2.5 s in, 0.99^2 = 0.9801. Exponential: 0.99^2.5.
    s = 1_000_000_000
    assert decay("linear", 15 * s, 60 * s, s, 0.99) == pytest.approx(0.75, rel=1e-15)
    assert decay("linear", 90 * s, 60 * s, s, 0.99) == 0.0
    assert decay("stair_step", 2 * s + s // 2, 60 * s, s, 0.99) == pytest.approx(0.9801, rel=1e-15)
    assert decay("exponential", 2 * s + s // 2, 60 * s, s, 0.99) == pytest.approx(0.99 ** 2.5, rel=1e-15)
    # A long's lot sells from 110 down; a short's is bought back from 100 / 1.1 up.
    assert auction_price(1, 110.0, 0.5) == 55.0 and auction_price(-1, 100.0, 0.5) == 200.0
    # When a keeper accepting 100 takes a lot started at 110 (at most 1 / 1.1 of the start):
    # exponential, 100 ms steps: ln(1/1.1) / ln(0.99) = 9.483 steps, 948.3... ms;
    # stair-step: the 10th step, 1 s; linear over 60 s: 60 x (1 - 1/1.1) = 5.4545... s.
    ms = 1_000_000
    assert decay_age_ns("exponential", 1 / 1.1, 60 * s, 100 * ms, 0.99) == math.ceil(
        100 * ms * math.log(1 / 1.1) / math.log(0.99))
    assert decay_age_ns("stair_step", 1 / 1.1, 60 * s, 100 * ms, 0.99) == s
    assert decay_age_ns("linear", 1 / 1.1, 60 * s, 100 * ms, 0.99) == math.ceil(60 * s * (1 - 1 / 1.1))
    for kind in ("exponential", "stair_step", "linear"):
        age = decay_age_ns(kind, 1 / 1.1, 60 * s, 100 * ms, 0.99)
        assert age is not None
        assert decay(kind, age, 60 * s, 100 * ms, 0.99) <= 1 / 1.1 < decay(kind, age - 1, 60 * s, 100 * ms, 0.99)


def test_a_take_through_a_constant_delay_pays_start_times_the_decay_at_that_delay(tmp_path: Path) -> None:
    """A keeper at ap-northeast-0 takes at once (``take_at`` = ``buffer``): its take travels
    the way its liquidation did, a delay d constant on this network but for the wait for a
    10 ms block (processing 0, service 10 us), so it pays start x 0.99^(d / 100 ms): the
    closed form, within a block, with d the liquidations' own way from send to commit."""
    overrides = ['market.liquidation={mechanism="dutch_auction", buffer=1.1, take_at=1.1, decay="exponential", '
                 'step="100ms", cut=0.99}', 'market.instruments.0.shocks=[{at="2s", fall="20%", over="2s"}]',
                 "market.accounts.0.leverage_sigma=0.3", "market.accounts.0.leverage_cap=15",
                 "market.accounts.0.count=40"]
    result = run(load_scenario(str(EXAMPLES / "leverage-latency.toml"), overrides), tmp_path / "run")
    history = read_history(result.run_dir)
    executions, triggers = history.table("executions"), history.table("triggers")
    sent = dict(zip(_column(triggers, "msg_id"), _column(triggers, "t_sent"), strict=True))
    started: dict[int, tuple[int, float]] = {}
    ways, taken = [], []
    for t, msg_id, account, outcome, price in zip(*(_column(executions, name) for name in (
            "t", "msg_id", "account", "outcome", "price")), strict=True):
        if outcome == "auction" and account not in started:
            started[account] = (t, price * 1.1)  # the on-chain price at the start x buffer
            ways.append(t - sent[msg_id])
        elif outcome == "executed":
            t_start, start = started[account]
            taken.append((t - t_start, price / start))
    d_ns = float(np.median(ways))
    assert max(ways) - min(ways) <= 10_000_000  # constant but for the block
    assert len(taken) == 40
    for age_ns, ratio in taken:
        assert abs(age_ns - d_ns) <= 10_000_000
        assert ratio == pytest.approx(0.99 ** (age_ns / 100_000_000), rel=1e-12)
        assert 0.99 ** ((d_ns + 10_000_000) / 100_000_000) <= ratio <= 0.99 ** ((d_ns - 10_000_000) / 100_000_000)
    assert "reset" not in _column(executions, "outcome")


def test_a_take_that_finds_its_auction_too_old_resets_it(tmp_path: Path) -> None:
    # The keepers accept the price the auction started from: at 1% off every 100 ms from 1.1x
    # that is 948 ms in, and the take's way to commit adds more; with a tail of 500 ms every
    # take finds its auction too old and restarts it from the on-chain price then (Maker's
    # redo), so none is ever taken.
    overrides = ['market.liquidation={mechanism="dutch_auction", buffer=1.1, take_at=1.0, decay="exponential", '
                 'step="100ms", cut=0.99, tail="500ms"}', 'market.instruments.0.shocks=[{at="2s", fall="20%", over="2s"}]',
                 "market.accounts.0.count=10"]
    result = run(load_scenario(str(EXAMPLES / "leverage-latency.toml"), overrides), tmp_path / "run")
    executions = read_history(result.run_dir).table("executions")
    outcomes = _column(executions, "outcome")
    assert "executed" not in outcomes and outcomes.count("reset") >= 10
    started: dict[int, int] = {}
    wait_ns = math.ceil(100_000_000 * math.log(1 / 1.1) / math.log(0.99))  # 948.3 ms
    for t, account, outcome in zip(*(_column(executions, name) for name in ("t", "account", "outcome")),
                                   strict=True):
        if outcome == "reset":
            assert t - started[account] >= wait_ns > 500_000_000  # sent no earlier than acceptable: past the tail
        if account not in started or outcome == "reset":
            started[account] = t


# --- English auctions (Maker's flip) --------------------------------------------------------------

S = 1_000_000_000


def test_two_bidders_tend_then_dent() -> None:
    # A vault of 10 units at entry 150 with 500: debt D = 1,500 - 500 = 1,000; penalty 13%:
    # tab = 1,130; beg 3%, ttl 600 s, tau 6 h. A (100 a unit) tends 1,000; B (130) tends to
    # the tab (1,300 > 1,130); A at 100 cannot dent (1,130 / 100 = 11.3 units > 10); the
    # market rises, A (125) dents to 1,130 / 125 = 9.04 units (9.04 x 1.03 = 9.3112 <= 10);
    # B dents to 1,130 / 130 = 8.6923 (x 1.03 = 8.953 <= 9.04); A at 125 cannot answer
    # (9.04 > 8.6923 / 1.03 = 8.439). It closes 600 s after B's last bid.
    spec = LiquidationSpec(mechanism="english_auction", ttl="600s", tau="6h", beg="3%", keeper_share=0.0)
    auctions = EnglishAuctions(spec, 0.13)
    _, flip = auctions.kick(7, 0, 10.0, 1000.0)
    assert flip.tab == pytest.approx(1130.0, rel=1e-15) and flip.end == 6 * 3600 * S
    assert auctions.proposal(flip, 100.0) == (1000.0, 10.0)
    assert auctions.place(flip, 0, 101, 1000.0, 10.0, 10 * S) and flip.tic == 610 * S
    assert not auctions.place(flip, 1, 102, 1020.0, 10.0, 11 * S)  # below 1,000 x 1.03 = 1,030
    assert auctions.proposal(flip, 130.0) == (flip.tab, 10.0)
    assert auctions.place(flip, 1, 103, flip.tab, 10.0, 20 * S) and flip.guy == 1
    assert auctions.proposal(flip, 100.0) is None
    bid, lot = auctions.proposal(flip, 125.0) or (0.0, 0.0)
    assert (bid, lot) == (flip.tab, pytest.approx(9.04, rel=1e-12))
    assert auctions.place(flip, 0, 104, bid, lot, 30 * S)
    assert not auctions.place(flip, 1, 105, 1100.0, 10.0, 31 * S)  # a tend that travelled too long
    bid, lot = auctions.proposal(flip, 130.0) or (0.0, 0.0)
    assert lot == pytest.approx(8.692307692307692, rel=1e-12)
    assert auctions.place(flip, 1, 106, bid, lot, 40 * S)
    assert auctions.proposal(flip, 125.0) is None
    assert auctions.closes_at(flip) == 640 * S and not auctions.live(flip, 640 * S)
    # Closed at an on-chain price of 125: the owner gets 10 - 8.6923 = 1.3077 units back,
    # worth 163.4615; the bid covers the debt and the whole penalty (1,130 - 1,000 = 130 =
    # 13% of 1,000); effective price (1,130 + 163.4615) / 10 = 129.3462.
    market = _market(1 / 3, 0.13).model_copy(update={"liquidation": spec})
    done = flip_call(mechanism_of(market), 10.0, 150.0, 500.0, flip.bid, flip.lot, 125.0)
    assert done.price == pytest.approx(129.34615384615384, rel=1e-12)
    assert done.penalty == pytest.approx(130.0, rel=1e-12) and done.fund_fee == done.penalty
    assert done.collateral_after == pytest.approx(163.46153846153845, rel=1e-12)
    assert done.pnl == pytest.approx(-206.53846153846155, rel=1e-12) and done.whole


def test_one_bidder_at_zero_wins_the_lot() -> None:
    # No competing bid: a zero tend stands and wins after ttl; the owner keeps nothing and
    # the whole debt, 1,000, is short (the penalty is what the bid raised above the debt: 0).
    spec = LiquidationSpec(mechanism="english_auction", ttl="600s", tau="6h")
    auctions = EnglishAuctions(spec, 0.13)
    _, flip = auctions.kick(0, 0, 10.0, 1000.0)
    assert auctions.proposal(flip, 0.0) == (0.0, 10.0)
    assert auctions.place(flip, 0, 1, 0.0, 10.0, 5 * S) and auctions.closes_at(flip) == 605 * S
    done = flip_call(mechanism_of(_market(1 / 3, 0.13).model_copy(update={"liquidation": spec})), 10.0, 150.0, 500.0, flip.bid,
                     flip.lot, 80.0)
    assert (done.price, done.penalty, done.collateral_after) == (0.0, 0.0, -1000.0)


_ENGLISH = ['market.liquidation={mechanism="english_auction", ttl="1s", tau="5s", beg="3%", keeper_share=0}',
            'market.instruments.0.shocks=[{at="2s", fall="20%", over="2s"}]']


def test_a_single_zero_bidder_through_the_network(tmp_path: Path) -> None:
    """One keeper who bids nothing (discount 100%): each of the 10 accounts (collateral
    10,000 at leverage 10 at 100: 1,000 units, debt 90,000) is auctioned, its one bid of 0
    stands, and the lot closes exactly ttl = 1 s after it committed, at 0: the whole debt,
    90,000, is bad debt (no fund)."""
    history, summary = _run(tmp_path, "leverage-latency", [*_ENGLISH, "market.keepers.0.discount=1",
                                                           'market.currency="DAI"'])
    executions = history.table("executions")
    rows = list(zip(*(_column(executions, name) for name in ("t", "msg_id", "account", "outcome", "price",
                                                              "collateral_after", "bad_debt")), strict=True))
    bids = {msg_id: t for t, msg_id, _, outcome, price, _, _ in rows if outcome == "bid" and price == 0.0}
    executed = [row for row in rows if row[3] == "executed"]
    assert len(executed) == 10 and len(bids) == 10
    assert [row[3] for row in rows].count("auction") == 10
    for t, msg_id, _, _, price, after, bad_debt in executed:
        assert t == bids[msg_id] + S
        assert (price, after, bad_debt) == (0.0, -90_000.0, 90_000.0)
    assert summary["market"]["venue"]["bad_debt"] == pytest.approx(900_000.0, abs=0.01)
    # 10 lots of 1,000 units of the one instrument, every one at a zero bid, nothing given back;
    # the debt in the market's currency.
    # Their value: each lot's 1,000 units at the on-chain price at its close (the venue's
    # ``auctioned`` rows); no lot was won above 0, so no share returned among such lots.
    venue = history.table("venue")
    worth = {account: amount for account, kind, amount in zip(_column(venue, "account"), _column(venue, "kind"),
                                                              _column(venue, "amount"), strict=True)
             if kind == "auctioned"}
    assert len(worth) == 10 and all(70_000.0 < amount < 110_000.0 for amount in worth.values())
    auctions = summary["market"]["venue"]["auctions"]
    assert auctions.pop("zero_bid_value") == pytest.approx(sum(worth.values()), abs=0.01)
    assert auctions == {"unit": "ETH", "lots": 10, "zero_bid_lots": 10, "zero_bid_units": 10_000.0,
                        "top_zero_bidder_share": 1.0, "units": 10_000.0, "returned_share": 0.0,
                        "returned_share_won": None}
    assert summary["market"]["currency"] == "DAI"


def test_two_keepers_through_the_network_tend_then_dent(tmp_path: Path) -> None:
    """A keeper at the sequencer's node bidding 1% below the market and one across the ocean
    bidding the market, a fall of 8% over 1 s, no penalty (tab = debt = 90,000), beg 0.5%:
    the near keeper's first bid reaches the tab (0.99 x the market x 1,000 units > 90,000),
    the far one's dents (lot = 90,000 / its price); the near one cannot answer (its price is
    below the far one's / 1.005). The last bid stands 1 s and wins; the owner gets back the
    units not taken, valued at the on-chain price then (the true price at ``t_price``)."""
    keepers = ('market.keepers=[{name="near", node="us-east-0", reaction="50ms", discount="1%"}, '
               '{name="far", node="ap-northeast-0", reaction="50ms", discount="0%"}]')
    overrides = ['market.liquidation={mechanism="english_auction", ttl="1s", tau="5s", beg="0.5%", keeper_share=0}',
                 'market.instruments.0.shocks=[{at="2s", fall="8%", over="1s"}]', "market.liquidation_penalty=0",
                 keepers]
    history, summary = _run(tmp_path, "leverage-latency", overrides)
    lots = summary["market"]["venue"]["auctions"]  # every lot won above 0: the two shares are one
    assert (lots["zero_bid_lots"], lots["zero_bid_value"]) == (0, 0.0)
    assert lots["returned_share_won"] == lots["returned_share"] > 0
    executions, prices = history.table("executions"), history.table("prices")
    price_at = dict(zip(_column(prices, "t"), _column(prices, "price"), strict=True))
    bids: dict[int, list[tuple[int, int, str, float]]] = {}
    closed = 0
    names = ("t", "msg_id", "account", "keeper", "outcome", "price", "t_price", "collateral_after", "bad_debt")
    for t, msg_id, account, keeper, outcome, price, t_price, after, bad_debt in zip(
            *(_column(executions, name) for name in names), strict=True):
        if outcome == "bid":
            bids.setdefault(account, []).append((t, msg_id, keeper, price))
        if outcome != "executed":
            continue
        (_, _, first, tend), (t_dent, msg_dent, second, unit) = bids[account]
        assert (first, tend, second) == ("near-0", 90.0, "far-0")  # tend to the tab: 90,000 for 1,000 units
        assert 90_000.0 / unit * 1.005 <= 1000.0  # the dent took at least beg fewer units
        assert (t, msg_id, keeper) == (t_dent + S, msg_dent, "far-0")
        returned = 1000.0 - 90_000.0 / unit
        assert after == pytest.approx(returned * price_at[t_price], rel=1e-12) and bad_debt == 0.0
        assert price == pytest.approx((90_000.0 + after) / 1000.0, rel=1e-12)  # the effective price
        closed += 1
    assert closed == 10


# --- keepers' budgets (market/keepers_budget.py) ---------------------------------------------------


def test_a_keeper_out_of_gas_stops(tmp_path: Path) -> None:
    """The zero bidder with fees of 1 and a gas budget of 5: the 10 accounts (one leverage,
    one line) cross at one price, so its 10 liquidations are due at once; it pays for 5,
    which start 5 auctions, and cannot pay for a single bid: no lot closes, every auction
    restarts at its end, and it sent exactly 5 messages."""
    history, _ = _run(tmp_path, "leverage-latency", [*_ENGLISH, "market.keepers.0.discount=1",
                                                     "market.keepers.0.gas_budget=5"])
    outcomes = _column(history.table("executions"), "outcome")
    assert outcomes.count("auction") == 5 and "bid" not in outcomes and "executed" not in outcomes
    assert history.table("triggers").num_rows == 5
    messages = history.messages
    keeper = messages.filter(pa.compute.equal(messages["kind"], "liquidation"))
    assert keeper.num_rows == 5 and sum(keeper["fee"].to_pylist()) == 5.0


def test_a_keeper_out_of_capital_stops_bidding(tmp_path: Path) -> None:
    """The tend-then-dent race above with the far keeper holding 270,000: each dent locks
    the tab, 90,000, so it dents 3 lots and wins them; it cannot lock a fourth, and the near
    keeper's tends to the tab win the other 7 lots whole (no units back)."""
    keepers = ('market.keepers=[{name="near", node="us-east-0", reaction="50ms", discount="1%"}, '
               '{name="far", node="ap-northeast-0", reaction="50ms", discount="0%", capital=270000}]')
    overrides = ['market.liquidation={mechanism="english_auction", ttl="1s", tau="5s", beg="0.5%", keeper_share=0}',
                 'market.instruments.0.shocks=[{at="2s", fall="8%", over="1s"}]', "market.liquidation_penalty=0",
                 keepers]
    history, _ = _run(tmp_path, "leverage-latency", overrides)
    executions = history.table("executions")
    won: dict[str, list[float]] = {}
    bids: dict[str, int] = {}
    for keeper, outcome, after in zip(*(_column(executions, name) for name in ("keeper", "outcome",
                                                                                 "collateral_after")), strict=True):
        if outcome == "executed":
            won.setdefault(keeper, []).append(after)
        if outcome == "bid":
            bids[keeper] = bids.get(keeper, 0) + 1
    assert len(won["far-0"]) == 3 and bids["far-0"] == 3 and all(after > 0 for after in won["far-0"])
    assert won["near-0"] == [0.0] * 7 and bids["near-0"] == 10


def test_an_english_close_on_a_thinning_curved_book_and_a_mark(tmp_path: Path) -> None:
    """The zero bidder's run again on a square-root book that thins with volatility, judged
    on a mark: the auctions' closes go through ``liquidation_costs`` on the thinned curve with
    no slippage (the bids price the lot), so each close is the run's without the section
    (the same book of 10 bps per 1,000,000, linear):
    price 0, the whole debt, 90,000, a shortfall, no slippage; every committed liquidation of
    an open account has its ``marks`` row, the mark above the index (longs only: the premium
    is the longs', capped at 0.5%)."""
    base = [*_ENGLISH, "market.keepers.0.discount=1", "market.slippage_bps=10"]  # a book with an impact
    plain, _ = _run(tmp_path / "plain", "leverage-latency", base)
    history, summary = _run(tmp_path / "curved", "leverage-latency", [
        *base, 'market.liquidity={curve="sqrt", sensitivity=100, window="2s"}', "market.mark={premium_cap=0.005}"])
    names = ("outcome", "price", "slippage", "collateral_after", "bad_debt")
    closes = [row for row in zip(*(_column(history.table("executions"), n) for n in names), strict=True)
              if row[0] == "executed"]
    assert len(closes) == 10 and all(row[1:] == (0.0, 0.0, -90_000.0, 90_000.0) for row in closes)
    plain_closes = [row for row in zip(*(_column(plain.table("executions"), n) for n in names), strict=True)
                    if row[0] == "executed"]
    assert closes == plain_closes
    marks = history.table("marks")
    assert marks.num_rows >= 10
    for index, mark in zip(_column(marks, "index"), _column(marks, "mark"), strict=True):
        assert index < mark <= index * 1.005 * (1 + 1e-12)
    assert summary["market"]["venue"]["auctions"]["zero_bid_lots"] == 10


def test_a_partial_close_on_a_curve_with_next_to_no_slippage_ends_at_the_notional() -> None:
    """A square-root curve (e = 0.5) with k = 1e-297: x* = ((t - f) / (k (1 + e)))^(1/e) is past
    what a double holds, so the search ends at N; the close is then the linear one,
    (t N - E) / (t - f) = (0.1 x 100 - 4) / 0.1 = 60."""
    from msgstorm.rules.liquidation import partial_close_notional

    closed = partial_close_notional(4.0, 100.0, 0.1, 0.0, 1e-297, 0.5)
    assert closed == pytest.approx(60.0)


def test_the_reactors_venue_rows_and_socialised_blocks_come_out_in_the_order_they_were_made() -> None:
    # Rows r0; a block of two after one row; rows r1, r2; two blocks of one after three rows;
    # and a block before any row is impossible to tell from one after none: it goes first.
    def row(n: int, kind: str) -> tuple[Any, ...]:
        return (n, 100 + n, n, kind, float(n), 1.0, 10.0 * n, 5.0)

    def block(before: int, t: int, accounts: list[int]) -> tuple[Any, ...]:
        charged = np.array(accounts, dtype=np.int64)
        return (before, t, 200 + t, 7.0, charged, charged * 0.5, np.ones(len(accounts)), charged * -1.0)

    host = SimpleNamespace(_venue_rows=[row(0, "keeper_fee"), row(1, "bad_debt"), row(2, "funding")],
                           _venue_blocks=[block(0, 9, [40]), block(1, 7, [11, 12]), block(3, 8, [21]),
                                          block(3, 8, [22])])
    columns = MarketReactor._venue_columns(host)  # type: ignore[arg-type]
    assert columns["kind"].to_pylist() == ["socialised", "keeper_fee", "socialised", "socialised", "bad_debt",
                                           "funding", "socialised", "socialised"]
    assert columns["account"].tolist() == [40, 0, 11, 12, 1, 2, 21, 22]
    assert columns["t"].tolist() == [9, 0, 7, 7, 1, 2, 8, 8]
    assert columns["msg_id"].tolist() == [209, 100, 207, 207, 101, 102, 208, 208]
    assert columns["amount"].tolist() == [20.0, 0.0, 5.5, 6.0, 1.0, 2.0, 10.5, 11.0]
    assert columns["collateral_after"].tolist() == [-40.0, 0.0, -11.0, -12.0, 10.0, 20.0, -21.0, -22.0]
    assert columns["fund_after"].tolist() == [7.0, 5.0, 7.0, 7.0, 5.0, 5.0, 7.0, 7.0]
    assert host._venue_rows == [] and host._venue_blocks == []  # handed over once
    assert len(MarketReactor._venue_columns(host)["kind"]) == 0  # type: ignore[arg-type]


def _lots(history: History) -> dict[int, list[tuple[float, float]]]:
    """Per account, its lots' (units, debt) in the order they closed (``lot`` and ``lot_debt`` rows)."""
    venue = history.table("venue")
    units: dict[int, float] = {}
    lots: dict[int, list[tuple[float, float]]] = {}
    for msg_id, account, kind, amount in zip(*(_column(venue, name) for name in ("msg_id", "account", "kind",
                                                                                 "amount")), strict=True):
        if kind == "lot":
            units[msg_id] = amount
        elif kind == "lot_debt":
            lots.setdefault(account, []).append((units.pop(msg_id), amount))
    return lots


def test_a_vault_larger_than_lump_is_bitten_in_lots(tmp_path: Path) -> None:
    """Lump 300 ETH: each of the 10 vaults (1,000 ETH owing 90,000, as above) is bitten in
    lots of 300, 300, 300 and the rest, 100 (its debt 27,000 a lot of 300, 9,000 the last:
    90,000 in all), each bite leaving the vault as unsafe as before (its ``bitten`` rows: 700,
    400, 100 units left, and 7,000, 4,000, 1,000 of its 10,000 collateral); every lot closes
    at the zero bid, so the whole 900,000 is bad debt, lot by lot."""
    history, summary = _run(tmp_path, "leverage-latency", [*_ENGLISH, "market.keepers.0.discount=1",
                                                           "market.liquidation.lump={ETH=300}"])
    lots = _lots(history)
    assert sorted(lots) == list(range(10))
    for account, taken in lots.items():
        assert sorted(units for units, _ in taken) == [100.0, 300.0, 300.0, 300.0], account
        assert sum(units for units, _ in taken) == 1000.0
        assert sorted(debt for _, debt in taken) == pytest.approx([9_000.0, 27_000.0, 27_000.0, 27_000.0], rel=1e-12)
    venue = history.table("venue")
    bitten = [(account, size, collateral) for account, kind, size, collateral in zip(
        *(_column(venue, name) for name in ("account", "kind", "size_after", "collateral_after")), strict=True)
              if kind == "bitten"]
    for account in range(10):
        left = [(size, collateral) for who, size, collateral in bitten if who == account]
        assert [size for size, _ in left] == [700.0, 400.0, 100.0]
        assert [collateral for _, collateral in left] == pytest.approx([7_000.0, 4_000.0, 1_000.0], rel=1e-12)
    auctions = summary["market"]["venue"]["auctions"]
    assert (auctions["lots"], auctions["zero_bid_lots"], auctions["units"]) == (40, 40, 10_000.0)
    assert summary["market"]["venue"]["bad_debt"] == pytest.approx(900_000.0, rel=1e-12)
    assert summary["market"]["liquidations"]["executed"] == 10


def test_a_vault_under_lump_is_one_lot_as_without_it(tmp_path: Path) -> None:
    """Lump 1,000 ETH (each vault holds 1,000): one lot a vault, and the run is the run
    without a lump, row for row, but for each lot's ``lot`` and ``lot_debt`` rows."""
    overrides = [*_ENGLISH, "market.keepers.0.discount=1"]
    without, _ = _run(tmp_path / "without", "leverage-latency", overrides)
    within, _ = _run(tmp_path / "within", "leverage-latency", [*overrides, "market.liquidation.lump={ETH=1000}"])
    assert {account: [units for units, _ in taken] for account, taken in _lots(within).items()} == {
        account: [1000.0] for account in range(10)}
    for table in ("executions", "triggers", "messages"):
        assert within.table(table).equals(without.table(table)), table
    venue = within.table("venue")
    kept = [i for i, kind in enumerate(_column(venue, "kind")) if kind not in ("lot", "lot_debt")]
    assert venue.take(kept).equals(without.table("venue"))


def assert_lots_balance(history: History, summary: dict[str, Any], penalty_rate: float) -> int:
    """The money of an ``english_auction`` run with a ``lump``, read from its history alone,
    to the DAI: each lot's bid (its effective price x units, less what went back) raised its
    penalty (what it raised above the lot's debt, at most the rate x the debt) and left a
    shortfall (debt + penalty - bid - returned, when above 0) that the fund (fed by the
    penalties, from 0) and the bad debt cover between them; the fund ends at the penalties
    less what it covered; the deficit is the bad debt; a vault closed in full was cut into
    lots whose units and debts add up to its own; the collateral returned is the returned
    rows'. The number of lots."""
    executions, venue = history.table("executions"), history.table("venue")
    by_msg: dict[int, dict[str, float]] = {}
    fund_in = fund_out = 0.0
    for msg_id, kind, amount, size_after in zip(*(_column(venue, name) for name in ("msg_id", "kind", "amount",
                                                                                    "size_after")), strict=True):
        lot = by_msg.setdefault(msg_id, {})
        lot[kind] = lot.get(kind, 0.0) + amount
        if kind == "auctioned":
            lot["vault_size_after"] = size_after
        fund_in += amount if kind == "insurance_fee" else 0.0
        fund_out += amount if kind == "insurance_used" else 0.0
        assert kind != "keeper_fee" or amount == 0.0  # the penalty goes to the system
    assert _column(venue, "fund_after")[-1] == pytest.approx(fund_in - fund_out, abs=0.01)
    accounts = history.table("accounts")
    size0 = _column(accounts, "size")
    debt0 = [size * entry - held for size, entry, held in zip(size0, _column(accounts, "entry"),
                                                              _column(accounts, "collateral"), strict=True)]
    units_of: dict[int, float] = {}
    debt_of: dict[int, float] = {}
    closed: set[int] = set()
    lots = 0
    penalties = bad_total = 0.0
    for msg_id, account, outcome, price, penalty, bad_debt in zip(*(_column(executions, name) for name in (
            "msg_id", "account", "outcome", "price", "penalty", "bad_debt")), strict=True):
        if outcome != "executed":
            continue
        lot = by_msg[msg_id]
        units, debt, returned = lot["lot"], lot["lot_debt"], lot["returned"]
        bid = price * units - returned
        assert -0.01 <= bid <= debt * (1 + penalty_rate) + 0.01
        assert penalty == pytest.approx(min(max(bid - debt, 0.0), penalty_rate * debt), abs=0.01)
        shortfall = max(0.0, debt + penalty - bid - returned)
        assert lot.get("insurance_used", 0.0) + lot.get("bad_debt", 0.0) == pytest.approx(shortfall, abs=0.01)
        assert bad_debt == pytest.approx(lot.get("bad_debt", 0.0), abs=0.01)
        units_of[account] = units_of.get(account, 0.0) + units
        debt_of[account] = debt_of.get(account, 0.0) + debt
        if lot["vault_size_after"] == 0.0:
            closed.add(account)
        penalties += penalty
        bad_total += bad_debt
        lots += 1
    assert penalties == pytest.approx(fund_in, abs=0.01)
    assert summary["market"]["venue"]["bad_debt"] == pytest.approx(bad_total, abs=0.01)
    for account in closed:
        assert units_of[account] == pytest.approx(size0[account], rel=1e-12)
        assert debt_of[account] == pytest.approx(debt0[account], abs=0.01)
    auctions = summary["market"]["venue"]["auctions"]
    assert auctions["lots"] == lots and auctions["units"] == pytest.approx(sum(units_of.values()), abs=0.01)
    return lots


def test_the_lots_money_adds_up_to_the_dai(tmp_path: Path) -> None:
    """Lump 300 over vaults of 1,000 ETH, a keeper bidding the market less 3% (200,000 DAI on
    hand: a few lots) and a zero
    bidder, a 13% penalty to the system and a fund from 0: lots won at zero and above it, and
    every identity of ``assert_lots_balance`` holds (the replay's, with lots won in dent too,
    in tests/test_against.py)."""
    keepers = ('market.keepers=[{name="bidder", node="us-east-0", reaction="50ms", discount="3%", capital=200000}, '
               '{name="zero", node="us-east-0", reaction="50ms", discount="100%"}]')
    history, summary = _run(tmp_path, "leverage-latency", [
        'market.liquidation={mechanism="english_auction", ttl="1s", tau="5s", beg="3%", keeper_share=0, '
        'lump={ETH=300}}', 'market.instruments.0.shocks=[{at="2s", fall="20%", over="2s"}]',
        "market.liquidation_penalty=0.13", keepers])
    assert assert_lots_balance(history, summary, 0.13) == 40
    auctions = summary["market"]["venue"]["auctions"]
    assert 0 < auctions["zero_bid_lots"] < 40  # won at zero and won above it (in tend: the tab is above its price)


@pytest.mark.parametrize(("overrides", "expected"), [
    (["market.liquidation.lump={ETH=50}"], "liquidation.lump: Maker's flip lot size; mechanism 'whole' has no lots"),
    (['market.liquidation.mechanism="english_auction"', "market.accounts.0.long_share=1",
      "market.liquidation.lump={BTC=50}"], "liquidation.lump: 'BTC' is not an instrument; one of ETH"),
    (['market.liquidation.mechanism="english_auction"', "market.accounts.0.long_share=1",
      "market.liquidation.lump={ETH=0}"], "market.liquidation.lump.ETH"),
])
def test_a_bad_lump_names_the_field(overrides: list[str], expected: str) -> None:
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(EXAMPLES / "venue-partial.toml"), ['market.maintenance_margin="10%"',
                                                              'market.liquidation.mechanism="whole"',
                                                              "market.liquidation.insurance_fund=0", *overrides])
    assert expected in str(error.value), str(error.value)
