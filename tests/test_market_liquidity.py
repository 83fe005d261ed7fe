"""Liquidity that thins under stress (``rules.market.impact_bps``, ``thinned_depth``,
``realised_volatility``): the book's depth curve and its depth falling with the on-chain
price's realised volatility, worked by hand, and read back from a run's history."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from msgstorm import read_history, run
from msgstorm.analysis.market import market_tables, onchain_prices
from msgstorm.market.liquidation import call, mechanism_of
from msgstorm.rules.liquidation import partial_close_notional, slippage_coefficient
from msgstorm.rules.market import impact_bps, liquidation_costs, realised_volatility, thinned_depth
from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.scenario.market import InstrumentSpec, LiquidationSpec, LiquiditySpec, MarketSpec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_depth_curve_linear_square_root_and_power() -> None:
    # 250,000 of notional on a book of 10 bps per 1,000,000: x / depth = 0.25.
    assert impact_bps(250_000.0, 10.0, 1e6) == pytest.approx(2.5)  # linear: 10 x 0.25
    assert impact_bps(250_000.0, 10.0, 1e6, 0.5) == pytest.approx(5.0)  # sqrt: 10 x 0.5
    assert impact_bps(250_000.0, 10.0, 1e6, 1.5) == pytest.approx(1.25)  # power 1.5: 10 x 0.125
    # A long of 100 at 2,500 closed whole on the square-root book: slippage 250,000 x 5 bps = 125.
    penalty, slippage, bps, after = liquidation_costs(1.0, 100.0, 2_600.0, 15_000.0, 2_500.0, 0.01, 10.0, 1e6, 0.5)
    assert (penalty, slippage, bps) == (pytest.approx(2_500.0), pytest.approx(125.0), pytest.approx(5.0))
    assert after == pytest.approx(15_000.0 - 10_000.0 - 2_500.0 - 125.0)
    # The scenario's curve reaches the mechanisms' one rule.
    market = MarketSpec(instruments=[InstrumentSpec(name="X")], slippage_bps=10.0, depth=1e6, liquidation_penalty=0.01,
                        liquidity=LiquiditySpec(curve="sqrt"))
    done = call(mechanism_of(market), 1, 100.0, 2_600.0, 15_000.0, 2_500.0)
    assert done.slippage == pytest.approx(125.0)


def test_a_liquidation_in_the_crash_pays_more_slippage_than_the_same_one_in_calm() -> None:
    # A window of 10 s, sensitivity 100, looked at t = 5 s.
    # Calm: 100 -> 100.5 -> 100 at 1 s and 2 s: r = +-0.0049875, sum r^2 = 4.97509e-5,
    # sigma = sqrt(4.97509e-5 / 10) = 0.00223049, depth 1,000,000 / 1.223049 = 817,629.
    # Crash: 100 -> 90 -> 80: r = -0.1053605, -0.1177830, sum r^2 = 0.0249736,
    # sigma = 0.0499736, depth 1,000,000 / 5.99736 = 166,740.
    calm = realised_volatility([1_000_000_000, 2_000_000_000], [math.log(1.005), math.log(100 / 100.5)],
                               5_000_000_000, 10_000_000_000)
    crash = realised_volatility([1_000_000_000, 2_000_000_000], [math.log(0.9), math.log(80 / 90)],
                                5_000_000_000, 10_000_000_000)
    assert calm == pytest.approx(0.00223049, rel=1e-5)
    assert crash == pytest.approx(0.0499736, rel=1e-5)
    calm_depth, crash_depth = thinned_depth(1e6, calm, 100.0), thinned_depth(1e6, crash, 100.0)
    assert calm_depth == pytest.approx(817_629.0, rel=1e-5)
    assert crash_depth == pytest.approx(166_740.0, rel=1e-5)
    # The same whole close of 250,000 (a long of 100 at 2,500), 10 bps per depth, linear:
    # calm 10 x 250,000 / 817,629 = 3.05763 bps, 76.44; crash 14.9934 bps, 374.83.
    _, calm_cost, calm_bps, _ = liquidation_costs(1.0, 100.0, 2_600.0, 15_000.0, 2_500.0, 0.0, 10.0, calm_depth)
    _, crash_cost, crash_bps, _ = liquidation_costs(1.0, 100.0, 2_600.0, 15_000.0, 2_500.0, 0.0, 10.0, crash_depth)
    assert (calm_bps, calm_cost) == (pytest.approx(3.05763, rel=1e-5), pytest.approx(76.4408, rel=1e-5))
    assert (crash_bps, crash_cost) == (pytest.approx(14.9934, rel=1e-5), pytest.approx(374.835, rel=1e-5))
    # And on the square-root book: sqrt(250,000 / depth) x 10 bps.
    _, calm_sqrt, _, _ = liquidation_costs(1.0, 100.0, 2_600.0, 1e4, 2_500.0, 0.0, 10.0, calm_depth, 0.5)
    _, crash_sqrt, _, _ = liquidation_costs(1.0, 100.0, 2_600.0, 1e4, 2_500.0, 0.0, 10.0, crash_depth, 0.5)
    assert calm_sqrt == pytest.approx(250_000.0 * 10.0 * math.sqrt(250_000.0 / 817_629.0) / 1e4, rel=1e-5)
    assert crash_sqrt == pytest.approx(250_000.0 * 10.0 * math.sqrt(250_000.0 / 166_740.0) / 1e4, rel=1e-5)
    assert crash_sqrt > 2.0 * calm_sqrt


def test_the_window_keeps_only_the_recent_moves() -> None:
    # Moves at 1 s, 6 s, 10 s; at t = 10 s over 5 s: (5 s, 10 s] holds 6 s and 10 s.
    times, returns = [1_000_000_000, 6_000_000_000, 10_000_000_000], [0.3, 0.02, -0.01]
    assert realised_volatility(times, returns, 10_000_000_000, 5_000_000_000) == pytest.approx(
        math.sqrt((0.02 ** 2 + 0.01 ** 2) / 5.0))
    assert realised_volatility(times, returns, 10_999_999_999, 5_000_000_000) == pytest.approx(
        math.sqrt((0.02 ** 2 + 0.01 ** 2) / 5.0))
    assert realised_volatility(times, returns, 11_000_000_000, 5_000_000_000) == pytest.approx(0.01 / math.sqrt(5.0))
    assert realised_volatility([], [], 1, 5_000_000_000) == 0.0
    assert thinned_depth(1e6, 0.3, 0.0) == 1e6  # no sensitivity: the calm book


def test_a_partial_close_on_the_square_root_book() -> None:
    # Long 10 at 100 with 100, m 5%, f 1%, at 94: E = 40, N = 940. On a square-root book of
    # 10 bps per 10,000, k = 10 / (sqrt(10,000) x 10,000) = 1e-5 and a close of x pays
    # k x^1.5: 0.04 x - 1e-5 x^1.5 = 7, whose least root is x = 175.5817 (by iteration
    # x = (7 + 1e-5 x^1.5) / 0.04 from 175).
    k = slippage_coefficient(10.0, 10_000.0, 0.5)
    assert k == pytest.approx(1e-5)
    x = partial_close_notional(40.0, 940.0, 0.05, 0.01, k, 0.5)
    assert x is not None and x == pytest.approx(175.5817, rel=1e-6)
    assert 40.0 - 0.01 * x - k * x ** 1.5 == pytest.approx(0.05 * (940.0 - x), rel=1e-12)
    # Close to the linear curve the bisection meets the linear closed form.
    linear = partial_close_notional(40.0, 940.0, 0.05, 0.01, 1e-7)
    near = partial_close_notional(40.0, 940.0, 0.05, 0.01, 1e-7, 1.0 + 1e-12)
    assert linear is not None and near == pytest.approx(linear, rel=1e-9)
    # Too steep a book: no close restores the margin (closed whole).
    assert partial_close_notional(40.0, 940.0, 0.05, 0.01, 0.01, 0.5) is None
    # Through the mechanism: the partial rule sizes its close on the scenario's curve.
    market = MarketSpec(instruments=[InstrumentSpec(name="X")], maintenance_margin=0.05, liquidation_penalty=0.01,
                        slippage_bps=10.0, depth=10_000.0, liquidity=LiquiditySpec(curve="sqrt"),
                        liquidation=LiquidationSpec(mechanism="partial"))
    assert call(mechanism_of(market), 1, 10.0, 100.0, 100.0, 94.0).closed * 94.0 == pytest.approx(x, rel=1e-12)


def test_a_run_thins_the_book_by_the_on_chain_price_s_realised_volatility(tmp_path: Path) -> None:
    # Whole liquidations without a fund: each executed row's slippage_bps against the calm
    # book's (20 bps x notional / 1,000,000) gives 1 + sensitivity x sigma, sigma recomputed
    # here from the history's on-chain prices over the window before the execution (a price
    # committed in the same block may come before or after it in the block: either is taken).
    overrides = ['market.liquidation.mechanism="whole"', "market.liquidation.insurance_fund=0",
                 "market.liquidation.keeper_share=1", 'market.liquidation.on_empty="none"',
                 'market.liquidity={window="2s", sensitivity=50.0}']
    result = run(load_scenario(str(EXAMPLES / "venue-partial.toml"), overrides), tmp_path / "run")
    history = read_history(result.run_dir)
    tables = market_tables(history)
    assert tables is not None
    times, prices, _ = onchain_prices(history, tables)[0]
    returns = np.diff(np.log(prices))
    moved = times[1:]
    executions, accounts = history.table("executions"), history.table("accounts")
    size = accounts.column("size").to_numpy()
    factors = []
    for t, account, outcome, price, bps in zip(*(executions.column(c).to_pylist() for c in (
            "t", "account", "outcome", "price", "slippage_bps")), strict=True):
        if outcome != "executed":
            continue
        factor = bps / (20.0 * size[account] * price / 1e6)
        window = (moved > t - 2_000_000_000) & (moved < t)
        same = (moved > t - 2_000_000_000) & (moved <= t)
        before = 1.0 + 50.0 * math.sqrt(float(np.sum(returns[window] ** 2)) / 2.0)
        with_same = 1.0 + 50.0 * math.sqrt(float(np.sum(returns[same] ** 2)) / 2.0)
        assert factor == pytest.approx(before, rel=1e-9) or factor == pytest.approx(with_same, rel=1e-9)
        factors.append(factor)
    assert factors and max(factors) > 2.0  # in the crash the book held less than half its calm depth


@pytest.mark.parametrize(("override", "expected"), [
    ('market.liquidity={curve="cubic"}', "market.liquidity.curve"),
    ("market.liquidity={sensitivity=-1}", "market.liquidity.sensitivity"),
    ('market.liquidity={sensitivity=5.0}\nmarket.probes={leverages=[2.0, 4.0]}',
     "probes: the probe books trade on the calm book"),
])
def test_bad_liquidity_input_names_the_field(override: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(EXAMPLES / "venue-partial.toml"), override.split("\n"))
    assert expected in str(error.value), str(error.value)
