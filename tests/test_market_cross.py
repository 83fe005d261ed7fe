"""Cross-margin accounts (``market/cross.py``): equity and requirement by hand, whole and
partial liquidation by hand, a hedge on correlated paths, and the books balancing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgstorm import analyse, read_history, run
from msgstorm.market.cross import (
    CrossAccount,
    CrossBooks,
    closing_order,
    cross_equity,
    liquidatable,
    requirement,
)
from msgstorm.market.liquidation import mechanism_of
from msgstorm.market.prices import price_paths
from msgstorm.rules.market import equity, notional, pnl
from msgstorm.scenario import ScenarioError, load_scenario, parse_scenario
from msgstorm.scenario.market import InstrumentSpec, LiquidationSpec, MarketSpec

ETH, BTC = 0, 1


def _market(penalty: float = 0.05, slippage_bps: float = 0.0, correlation: list[list[float]] | None = None,
            volatility: str = "0%/s", **liquidation: object) -> MarketSpec:
    return MarketSpec(instruments=[InstrumentSpec.model_validate({"name": "ETH", "price": 100.0,
                                                                  "volatility": volatility}),
                                   InstrumentSpec.model_validate({"name": "BTC", "price": 1000.0,
                                                                  "volatility": volatility})],
                      correlation=correlation, maintenance_margin=0.05, liquidation_penalty=penalty,
                      slippage_bps=slippage_bps, depth=10_000.0,
                      liquidation=LiquidationSpec.model_validate(liquidation))


def _books(accounts: list[CrossAccount], **market: object) -> CrossBooks:
    return CrossBooks(mechanism_of(_market(**market)), accounts)  # type: ignore[arg-type]


def test_equity_and_requirement_by_hand() -> None:
    # Long 10 ETH at 100, short 1 BTC at 1000, collateral 1000; at ETH 90, BTC 950:
    # PnL -100 and +50, equity 950; requirement 5% x (900 + 950) = 92.5.
    account = CrossAccount(1000.0, [ETH, BTC], [1, -1], [10.0, 1.0], [100.0, 1000.0])
    assert cross_equity(account, [90.0, 950.0]) == pytest.approx(950.0)
    assert requirement(account, [90.0, 950.0], 0.05) == pytest.approx(92.5)
    assert not liquidatable(account, [90.0, 950.0], 0.05)
    # ETH at 10 and BTC at 1800: PnL -900 and -800, equity -700.
    assert cross_equity(account, [10.0, 1800.0]) == pytest.approx(-700.0)
    assert liquidatable(account, [10.0, 1800.0], 0.05)


def test_a_hedged_account_survives_the_fall_that_liquidates_the_isolated_long() -> None:
    # Isolated: long 10 ETH at 100 on 100 of collateral (leverage 10). At ETH 90 its
    # equity is 0, under 5% x 900 = 45: past its line (94.74).
    assert equity(1, 10.0, 100.0, 100.0, 90.0) < 0.05 * notional(10.0, 90.0)
    # Cross: the same long and a short of 1 BTC at 1000 on 200; BTC falls 10% with it (corr 1):
    # PnL -100 + 100, equity 200, requirement 5% x (900 + 900) = 90.
    hedged = CrossAccount(200.0, [ETH, BTC], [1, -1], [10.0, 1.0], [100.0, 1000.0])
    assert cross_equity(hedged, [90.0, 900.0]) == pytest.approx(200.0)
    assert not liquidatable(hedged, [90.0, 900.0], 0.05)


def _first_liquidation(account: CrossAccount, prices: np.ndarray) -> int | None:
    for step in range(prices.shape[1]):
        if liquidatable(account, prices[:, step].tolist(), 0.05):
            return step
    return None


def test_correlation_decides_whether_the_hedged_account_is_liquidated() -> None:
    """On correlation 1 the hedge is exact: ETH and BTC keep the ratio 1:10, so the PnL of
    long 10 ETH and short 1 BTC is 10 (p - 100) - (10 p - 1000) = 0, the equity stays 200
    and the requirement is 5% x 20 p = p: liquidated only if ETH passed 200. On correlation 0
    the same shocks drawn independently leave it open to each leg's moves."""
    horizon_ns = 600 * 1_000_000_000
    hedged = CrossAccount(200.0, [ETH, BTC], [1, -1], [10.0, 1.0], [100.0, 1000.0])
    together = price_paths(_market(correlation=[[1.0, 1.0], [1.0, 1.0]], volatility="3%/s"), horizon_ns,
                           np.random.SeedSequence(1)).prices
    apart = price_paths(_market(correlation=[[1.0, 0.0], [0.0, 1.0]], volatility="3%/s"), horizon_ns,
                        np.random.SeedSequence(1)).prices
    assert np.array_equal(together[ETH], apart[ETH])  # the first instrument's shocks are its own either way
    equities = [cross_equity(hedged, together[:, k].tolist()) for k in range(together.shape[1])]
    assert max(abs(value - 200.0) for value in equities) < 1e-9
    assert together[ETH].max() < 200.0  # so never liquidated, by the formula above
    assert _first_liquidation(hedged, together) is None
    step = _first_liquidation(hedged, apart)
    assert step is not None
    eth, btc = apart[:, step]
    assert 200.0 + 10.0 * (eth - 100.0) - (btc - 1000.0) < 0.05 * (10.0 * eth + btc)
    # The isolated long on the same path is liquidated too: its line is 94.74.
    assert apart[ETH].min() < (1000.0 - 100.0) / (10.0 * 0.95)


def test_whole_closes_every_position_and_the_fund_covers_first() -> None:
    # Collateral 100, long 10 ETH at 100, long 1 BTC at 1000; at ETH 90, BTC 950: PnL -100 and
    # -50; penalties 5% x 900 = 45 and 5% x 950 = 47.5; collateral 100 - 150 - 92.5 = -142.5.
    # The fund holds 50 + its share of the penalties (keeper_share 0.4: 0.6 x 92.5 = 55.5),
    # 105.5, and pays all of it; bad debt 142.5 - 105.5 = 37.
    account = CrossAccount(100.0, [ETH, BTC], [1, 1], [10.0, 1.0], [100.0, 1000.0])
    books = _books([account], insurance_fund=50.0, keeper_share=0.4)
    done = books.call(0, [90.0, 950.0])
    assert done.whole and done.closed == [1, 0]  # BTC's requirement (47.5) before ETH's (45)
    assert done.pnl == pytest.approx([-50.0, -100.0])
    assert done.penalty == pytest.approx([47.5, 45.0])
    assert done.collateral_after == pytest.approx(-142.5)
    bad_debt = books.apply(0, done)
    assert bad_debt == pytest.approx(37.0)
    assert books.fund == pytest.approx(0.0)
    assert account.collateral == 0.0 and account.size == [0.0, 0.0]
    kinds = [entry.kind for entry in books.entries]
    assert kinds == ["keeper_fee", "insurance_fee", "keeper_fee", "insurance_fee", "insurance_used", "bad_debt"]


def test_partial_closes_the_largest_requirement_until_the_margin_is_back() -> None:
    # Collateral 300, long 10 ETH at 100, long 0.5 BTC at 1000; at ETH 75, BTC 1000: PnL -250
    # and 0, equity 50 < 5% x (750 + 500) = 62.5. ETH's requirement (37.5) is the larger:
    # closed first, penalty 1% x 750 = 7.5, collateral 300 - 250 - 7.5 = 42.5; BTC stays, equity
    # 42.5 >= 5% x 500 = 25: done.
    account = CrossAccount(300.0, [ETH, BTC], [1, 1], [10.0, 0.5], [100.0, 1000.0])
    books = _books([account], penalty=0.01, mechanism="partial")
    assert books.liquidatable(0, [75.0, 1000.0])
    done = books.call(0, [75.0, 1000.0])
    assert done.closed == [0] and not done.whole
    assert done.collateral_after == pytest.approx(42.5)
    assert books.apply(0, done) == 0.0
    assert account.size == [0.0, 0.5] and account.collateral == pytest.approx(42.5)
    assert [entry.kind for entry in books.entries][-1] == "partial"
    assert books.entries[-1].amount == pytest.approx(750.0)
    assert not books.liquidatable(0, [75.0, 1000.0])


def test_partial_to_the_initial_margin_closes_more() -> None:
    # As above, but restoring 10%: after ETH, 42.5 < 10% x 500 = 50, so BTC goes too:
    # penalty 5, collateral 37.5, every position closed (whole, no shortfall).
    account = CrossAccount(300.0, [ETH, BTC], [1, 1], [10.0, 0.5], [100.0, 1000.0])
    books = _books([account], penalty=0.01, mechanism="partial", restore_to="initial", initial_margin=0.1)
    done = books.call(0, [75.0, 1000.0])
    assert done.closed == [0, 1] and done.whole
    assert done.collateral_after == pytest.approx(37.5)
    assert books.apply(0, done) == 0.0
    assert account.collateral == pytest.approx(37.5)


def test_the_closing_order_is_by_requirement_then_as_held() -> None:
    account = CrossAccount(1.0, [ETH, BTC, ETH], [1, -1, -1], [2.0, 0.1, 1.0], [100.0, 1000.0, 100.0])
    # Notional at ETH 100, BTC 2000: 200, 200, 100.
    assert closing_order(account, [100.0, 2000.0], 0.05) == [0, 1, 2]
    assert closing_order(account, [100.0, 3000.0], 0.05) == [1, 0, 2]


def test_a_mechanism_for_one_position_is_refused() -> None:
    with pytest.raises(ValueError, match="cross-margin accounts are liquidated by one of"):
        _books([], mechanism="close_factor")


_position = st.tuples(st.sampled_from([ETH, BTC]), st.sampled_from([1, -1]), st.floats(0.1, 20.0),
                      st.floats(50.0, 150.0))


@settings(max_examples=200, deadline=None)
@given(accounts=st.lists(st.tuples(st.floats(10.0, 2000.0), st.lists(_position, min_size=1, max_size=4)),
                         min_size=1, max_size=6),
       moves=st.lists(st.tuples(st.floats(-0.5, 0.5), st.floats(-0.5, 0.5)), min_size=1, max_size=6),
       mechanism=st.sampled_from(["whole", "partial"]), fund=st.floats(0.0, 500.0),
       keeper_share=st.floats(0.0, 1.0), penalty=st.floats(0.0, 0.06), slippage_bps=st.floats(0.0, 50.0),
       restore_to=st.sampled_from(["maintenance", "initial"]))
def test_the_cross_books_balance(accounts: list[tuple[float, list[tuple[int, int, float, float]]]],
                                 moves: list[tuple[float, float]], mechanism: str, fund: float, keeper_share: float,
                                 penalty: float, slippage_bps: float, restore_to: str) -> None:
    """Over the accounts: collateral change - realised PnL + penalties + slippage = insurance
    used + bad debt; the fund's change = its share of the penalties - what it paid; keepers'
    fees + the fund's = penalties. Realised PnL and the costs are recomputed here from the
    positions each call closed, not read from the calls."""
    held = [CrossAccount(collateral, [p[0] for p in positions], [p[1] for p in positions],
                         [p[2] for p in positions], [p[3] * (10.0 if p[0] == BTC else 1.0) for p in positions])
            for collateral, positions in accounts]
    books = _books(held, penalty=penalty, slippage_bps=slippage_bps, mechanism=mechanism, insurance_fund=fund,
                   keeper_share=keeper_share, restore_to=restore_to, initial_margin=0.12)
    start = [account.collateral for account in held]
    realised = costs = penalties = 0.0
    for eth_move, btc_move in moves:
        prices = [100.0 * (1.0 + eth_move), 1000.0 * (1.0 + btc_move)]
        for index, account in enumerate(held):
            for _ in range(len(account.size) + 1):  # a partial call may leave it due again only if it closed one
                if not books.liquidatable(index, prices):
                    break
                sizes = list(account.size)
                done = books.call(index, prices)
                books.apply(index, done)
                for k in done.closed:
                    price = prices[account.instrument[k]]
                    realised += pnl(float(account.side[k]), sizes[k], account.entry[k], price)
                    closed = notional(sizes[k], price)
                    penalties += penalty * closed
                    costs += penalty * closed + closed * (slippage_bps * closed / 10_000.0) / 1e4
            assert not books.liquidatable(index, prices)
    entries = books.entries
    total = {kind: math.fsum(e.amount for e in entries if e.kind == kind)
             for kind in ("keeper_fee", "insurance_fee", "insurance_used", "bad_debt")}
    change = math.fsum(account.collateral for account in held) - math.fsum(start)
    scale = 1.0 + math.fsum(start) + abs(realised) + costs
    assert change - realised + costs == pytest.approx(total["insurance_used"] + total["bad_debt"], abs=1e-9 * scale)
    assert books.fund - fund == pytest.approx(total["insurance_fee"] - total["insurance_used"], abs=1e-9 * scale)
    assert total["keeper_fee"] + total["insurance_fee"] == pytest.approx(penalties, abs=1e-9 * scale)
    assert books.bad_debt == pytest.approx(total["bad_debt"], abs=1e-9 * scale)
    assert all(account.collateral >= 0.0 or any(size > 0 for size in account.size) for account in held)


RUN = """
[run]
name = "cross"
seed = 3
duration = "2s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = { dist = "constant", value = "0s" }

[sequencer]
service = { dist = "constant", value = "1us" }

[blocks]
interval = "1ms"

[[agents]]
name = "traders"
arrival = { process = "constant", rate = "10/s" }

[market]
resolution = "100ms"
maintenance_margin = "10%%"
liquidation_penalty = "1%%"
slippage_bps = 0.0
%(liquidation)s

[[market.instruments]]
name = "ETH"
price = 100.0

[[market.instruments]]
name = "BTC"
price = 1000.0
shocks = [{ at = "1s", fall = "10%%" }]

[market.oracle]
deviation = "0%%"

[[market.accounts]]
count = %(isolated)d
instrument = "ETH"
leverage_median = 4.0
leverage_sigma = 0.3
leverage_cap = 9.0

%(cross)s

[[market.keepers]]
reaction = "0s"
"""

CROSS = """[[market.accounts]]
count = 1
margin = "cross"
instruments = ["ETH", "BTC"]
leverage_median = 8.0
leverage_sigma = 0.0
"""


def _run(tmp_path: Path, liquidation: str = "", cross: str = CROSS, isolated: int = 1) -> Any:
    text = RUN % {"liquidation": liquidation, "cross": cross, "isolated": isolated}
    return run(parse_scenario(text, source="cross.toml"), tmp_path / "run")


def _rows(run_dir: Path, name: str) -> list[dict[str, Any]]:
    directory = run_dir / "history" / name
    return [row for part in sorted(directory.glob("part-*.parquet")) for row in pq.read_table(part).to_pylist()]


def test_a_cross_account_in_a_run_is_drawn_and_liquidated_whole_by_hand(tmp_path: Path) -> None:
    """Collateral 10,000 at leverage 8 on two positions: 8 x 10,000 / (2 x 100) = 400 ETH and
    8 x 10,000 / (2 x 1000) = 40 BTC, both long. BTC gaps 10% to 900 at 1 s: PnL -4,000,
    equity 6,000 < 10% x (40,000 + 36,000) = 7,600. Whole: both closed, penalty 1% x 76,000 =
    760, collateral 10,000 - 4,000 - 760 = 5,240, no bad debt. A keeper at the oracle's node
    reacting at once: the call commits in the next 1 ms block."""
    result = _run(tmp_path)
    positions = _rows(result.run_dir, "cross_accounts")
    assert [(row["account"], row["instrument"], row["side"]) for row in positions] == [(1, "ETH", 1), (1, "BTC", 1)]
    assert [row["size"] for row in positions] == pytest.approx([400.0, 40.0])
    calls = _rows(result.run_dir, "cross_executions")
    assert [call["outcome"] for call in calls] == ["executed"]
    call = calls[0]
    assert call["account"] == 1 and call["positions_closed"] == 2
    assert call["pnl"] == pytest.approx(-4000.0) and call["penalty"] == pytest.approx(760.0)
    assert call["collateral_after"] == pytest.approx(5240.0) and call["bad_debt"] == 0.0
    assert call["t_seen"] == 1_000_000_000 and call["t"] - call["t_seen"] <= 1_000_000
    cross = result.summary["cross"]
    assert cross["accounts"] == 1 and cross["positions"] == 2 and cross["hedged"] == 0
    assert cross["eligible"] == 1 and cross["executed"] == 1 and cross["partial_calls"] == 0
    assert cross["penalties"] == pytest.approx(760.0) and cross["bad_debt"] == 0.0
    assert analyse(read_history(result.run_dir)).summary["cross"] == cross
    page = (result.run_dir / "report.html").read_text()
    shown = page[page.index('id="cross-table"'):]
    shown = shown[:shown.index("</table>")]
    assert "1 (0 hedged): eligible 1 (0 hedged), executed 1, partial calls 0, no-op 0" in shown
    assert "penalties 760.00, fund used 0.00, bad debt 0.00 (0 accounts)" in shown


def test_a_partial_call_in_a_run_closes_the_larger_requirement_and_stops(tmp_path: Path) -> None:
    """As above, partial: ETH's requirement (10% x 40,000) is above BTC's (3,600): ETH closed,
    penalty 400, collateral 9,600; BTC left: equity 9,600 - 4,000 = 5,600 >= 3,600. Done."""
    result = _run(tmp_path, liquidation='[market.liquidation]\nmechanism = "partial"')
    calls = _rows(result.run_dir, "cross_executions")
    assert [call["outcome"] for call in calls] == ["partial"]
    assert calls[0]["positions_closed"] == 1 and calls[0]["pnl"] == pytest.approx(0.0)
    assert calls[0]["penalty"] == pytest.approx(400.0) and calls[0]["collateral_after"] == pytest.approx(9600.0)
    assert result.summary["cross"]["partial_calls"] == 1 and result.summary["cross"]["executed"] == 0


def test_cross_accounts_leave_the_isolated_accounts_as_they_were(tmp_path: Path) -> None:
    with_cross = _run(tmp_path / "with", isolated=40)
    without = _run(tmp_path / "without", cross="", isolated=40)
    for table in ("accounts", "executions", "triggers", "prices"):
        assert _rows(with_cross.run_dir, table) == _rows(without.run_dir, table), table
    assert with_cross.summary["market"] == without.summary["market"]
    assert "cross" not in without.summary


@pytest.mark.parametrize(("old", "new", "at", "expected"), [
    ('count = 1\ninstrument = "ETH"', 'count = 1\ninstrument = "ETH"\ninstruments = ["ETH"]', 'instruments = ["ETH"]',
     "market.accounts[0].instruments: only a cross-margin group holds several instruments"),
    ('instruments = ["ETH", "BTC"]', 'instruments = ["ETH", "SOL"]', 'instruments = ["ETH", "SOL"]',
     "market.accounts[1].instruments: expected distinct names among ['ETH', 'BTC']"),
    ('slippage_bps = 0.0', 'slippage_bps = 0.0\nliquidation = { mechanism = "close_factor" }', 'margin = "cross"',
     "market.accounts[1].margin: a cross-margin account is liquidated whole or partially"),
    ('slippage_bps = 0.0', 'slippage_bps = 0.0\nfunding = { interval = "1s" }', 'margin = "cross"',
     "market.accounts[1].margin: cross-margin accounts cannot be combined with [market.funding]"),
])
def test_bad_cross_input_names_file_line_and_field(tmp_path: Path, old: str, new: str, at: str,
                                                   expected: str) -> None:
    text = RUN % {"liquidation": "", "cross": CROSS, "isolated": 1}
    assert old in text
    text = text.replace(old, new, 1)
    path = tmp_path / "cross.toml"
    path.write_text(text)
    line = text.splitlines().index(at) + 1  # the line of the key the message names
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(path))
    assert f"cross.toml:{line}: {expected}" in str(error.value), str(error.value)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("overrides", [[], ['market.liquidation.mechanism="whole"']])
def test_the_cross_books_balance_in_a_run_read_from_its_history(tmp_path: Path, overrides: list[str]) -> None:
    """The example's cross accounts, from cross_accounts and cross_executions alone: collateral
    change - realised PnL + penalties + slippage = insurance used + bad debt, and the fund ends
    at its start + the fund's share of the penalties - what it paid."""
    scenario = load_scenario(str(EXAMPLES / "venue-cross.toml"), ["market.accounts.0.count=50", *overrides])
    result = run(scenario, tmp_path / "run")
    start = {row["account"]: row["collateral"] for row in _rows(result.run_dir, "cross_accounts")}
    calls = [row for row in _rows(result.run_dir, "cross_executions") if row["outcome"] in ("executed", "partial")]
    assert calls and any(row["bad_debt"] > 0 or row["insurance_used"] > 0 for row in calls)
    end = dict(start)
    for row in calls:
        end[row["account"]] = row["collateral_after"]
    change = math.fsum(end.values()) - math.fsum(start.values())
    realised, penalties, slippage = (math.fsum(row[name] for row in calls) for name in ("pnl", "penalty", "slippage"))
    used, bad_debt = math.fsum(row["insurance_used"] for row in calls), math.fsum(row["bad_debt"] for row in calls)
    assert change - realised + penalties + slippage == pytest.approx(used + bad_debt, abs=1e-6 * math.fsum(start.values()))
    spec = scenario.market.liquidation  # type: ignore[union-attr]
    assert spec is not None
    assert calls[-1]["fund_after"] == pytest.approx(spec.insurance_fund + penalties * (1.0 - spec.keeper_share) - used)
    assert result.summary["cross"]["bad_debt"] == pytest.approx(bad_debt)
