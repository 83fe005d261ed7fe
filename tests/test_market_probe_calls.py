"""A probe book's calls made many at once: the same numbers as one call after another.

Checked: ``calls`` against ``call`` position by position, bit for bit, for each mechanism the
probe books carry (positions drawn about their lines, bankrupt and nearly met ones among
them); and a run's whole ``probe_executions`` table with a block's calls made many at once
against the same run with them made one by one, on drawn venues with a fund, deleveraging, a
socialised loss or nothing behind it, one keeper or two racing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_market_probes import _GRID, EXAMPLES, _drawn_market, _table

from msgstorm import load_scenario, run
from msgstorm.market.liquidation import Call, call, calls, mechanism_of
from msgstorm.market.probes import ProbeBook
from msgstorm.rules.liquidation import partial_close_notional, partial_close_notionals
from msgstorm.scenario.market import InstrumentSpec, LiquidationSpec, LiquiditySpec, MarketSpec

_SETTINGS = {  # mechanism: its settings, each a case
    "whole": [{}],
    "partial": [{"restore_to": "maintenance"}, {"restore_to": "initial", "initial_margin": 0.08},
                {"restore_to": "maintenance", "liquidity": "sqrt"}],
    "close_factor": [{"close_factor": 0.5}],
}


def _same(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Equal bit for bit as floats go (NaN beside NaN counts as equal; -0.0 and 0.0 do not)."""
    left, right = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    return ((left == right) & (np.signbit(left) == np.signbit(right))) | (np.isnan(left) & np.isnan(right))


def _positions(rng: np.random.Generator, count: int) -> tuple[np.ndarray, ...]:
    """Positions at a price near their line: leverage 1-30, the price moved up to 10% either
    way from entry, so some meet the margin, some are past it, some are bankrupt."""
    side = rng.choice(np.array([-1, 1], dtype=np.int8), count)
    entry = rng.uniform(50.0, 3000.0, count)
    collateral = rng.lognormal(8.0, 1.0, count)
    size = rng.uniform(1.0, 30.0, count) * collateral / entry
    price = entry * (1.0 + rng.uniform(-0.1, 0.1, count))
    return side, size, entry, collateral, price


@pytest.mark.parametrize(("mechanism", "case"), [(name, at) for name, cases in _SETTINGS.items()
                                                 for at in range(len(cases))])
def test_calls_are_call_position_by_position_bit_for_bit(mechanism: str, case: int) -> None:
    settings = dict(_SETTINGS[mechanism][case])
    liquidity = LiquiditySpec(curve=settings.pop("liquidity")) if "liquidity" in settings else None
    market = MarketSpec(instruments=[InstrumentSpec(name="X")], maintenance_margin=0.05, liquidation_penalty=0.01,
                        slippage_bps=20.0, depth=1_000_000.0, liquidity=liquidity,
                        liquidation=LiquidationSpec(mechanism=mechanism, keeper_share=0.7, **settings))
    rule = mechanism_of(market)
    side, size, entry, collateral, price = _positions(np.random.default_rng([case, len(mechanism)]), 2_000)
    many = calls(rule, side, size, entry, collateral, price)
    ones = [call(rule, int(s), float(z), float(e), float(c), float(p))
            for s, z, e, c, p in zip(side, size, entry, collateral, price, strict=True)]
    for field in Call._fields:
        expected = np.array([getattr(one, field) for one in ones])
        same = _same(getattr(many, field), expected)
        assert same.all(), (field, int(np.flatnonzero(~same)[0]))
    # The draw reaches every branch: whole closes, partial ones, nothing material (partial).
    assert many.whole.any() and (~many.whole & (many.closed > 0)).any() == (mechanism != "whole")
    assert (many.closed == 0).any() == (mechanism == "partial")  # a close factor always repays a share


def test_partial_close_notionals_are_the_rule_account_by_account() -> None:
    rng = np.random.default_rng(7)
    notional = rng.uniform(100.0, 1e6, 5_000)
    equity = notional * rng.uniform(-0.05, 0.12, 5_000)
    for target, fee, k in ((0.05, 0.01, 2e-9), (0.08, 0.01, 1e-5), (0.05, 0.06, 2e-9), (0.05, 0.0, 0.0)):
        many = partial_close_notionals(equity, notional, target, fee, k)
        ones = [partial_close_notional(e, n, target, fee, k) for e, n in zip(equity.tolist(), notional.tolist(),
                                                                              strict=True)]
        expected = np.array([np.nan if one is None else one for one in ones])
        assert _same(many, expected).all(), (target, fee, k)


def _probe_rows(sets: list[str], out: Path) -> list[dict[str, object]]:
    run(load_scenario(EXAMPLES / "venue-partial.toml", sets), out)
    return _table(out, "probe_executions")


@pytest.mark.parametrize("draw", [0, 1, 2, 3])
def test_a_blocks_calls_made_at_once_write_the_rows_of_one_call_after_another(
        tmp_path: Path, draw: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Partial closes on a drawn venue (400 accounts, so a block carries many calls; on_empty
    deleveraging, a socialised loss and nothing in turn; two racing keepers in every other
    case, whose calls on one probe meet in a block), probes carried by the accounts'
    liquidations: the table is the same, row for row and bit for bit."""
    sets = [*_drawn_market("partial", draw), "market.accounts.0.count=400", f"market.probes.leverages={_GRID}",
            f"run.seed={20 + draw}"]
    at_once = _probe_rows(sets, tmp_path / "at-once")
    monkeypatch.setattr(ProbeBook, "batched", False)
    one_by_one = _probe_rows(sets, tmp_path / "one-by-one")
    assert len(at_once) == len(one_by_one) > 400
    for index, (left, right) in enumerate(zip(at_once, one_by_one, strict=True)):
        assert left.keys() == right.keys()
        for key, value in left.items():
            other = right[key]
            if isinstance(value, float):
                assert _same(np.array([value]), np.array([other])).all(), (index, key, value, other)
            else:
                assert value == other, (index, key, value, other)
    # A shortfall each draw: the fund reached (draws 1 and 3 past it: a socialised loss, deleveraging).
    assert any(row["collateral_after"] < 0 for row in at_once), "no shortfall: the fund was never reached"
    assert any(row["keeper"] == "" for row in at_once) == (draw in (1, 3)), "a cover moved other probes"
