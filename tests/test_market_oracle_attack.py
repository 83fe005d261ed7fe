"""Attacks on the market: a byzantine oracle (market/oracle_attack.py) and a censoring
producer (sim/integrity.py), against the same seed without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from msgstorm.market.oracle import OracleUpdates
from msgstorm.market.oracle_attack import attacked_updates
from msgstorm.market.prices import PricePaths
from msgstorm.scenario.schema import OracleFault

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "oracle-attack.toml"
S = 1_000_000_000


def _paths() -> PricePaths:
    # Two instruments, 10 steps of 1 s: A falls 1 a step from 100, B rises 1 a step from 50.
    prices = np.array([[100.0 - k for k in range(11)], [50.0 + k for k in range(11)]])
    return PricePaths(names=["A", "B"], resolution_ns=S, prices=prices)


def _honest() -> OracleUpdates:
    steps = np.repeat(np.arange(1, 11, dtype=np.int64), 2)
    instruments = np.tile(np.array([0, 1], dtype=np.int32), 10)
    return OracleUpdates(steps * S, instruments, _paths().prices[instruments, steps], steps)


def _fault(**settings: object) -> OracleFault:
    return OracleFault.model_validate({"kind": "oracle", "at": "3s", "duration": "3s", **settings})


def test_stale_publishes_nothing_in_the_window_then_the_price_at_its_end() -> None:
    out = attacked_updates(_honest(), _paths(), [_fault(mode="stale", instrument="A")])
    a = out.instrument == 0
    assert out.t[a].tolist() == [1 * S, 2 * S, 6 * S, 6 * S, 7 * S, 8 * S, 9 * S, 10 * S]
    # The one at the window's end (step 6) carries the price then; the honest step-6 update stays.
    assert out.price[a].tolist() == [99.0, 98.0, 94.0, 94.0, 93.0, 92.0, 91.0, 90.0]
    assert np.array_equal(out.t[~a], _honest().t[_honest().instrument == 1])  # B untouched
    assert np.all(np.diff(out.t) >= 0)


def test_delay_sends_each_late_with_the_price_it_was_due_with() -> None:
    honest = _honest()
    out = attacked_updates(honest, _paths(), [_fault(mode="delay", delay="2500ms")])
    moved = (honest.t >= 3 * S) & (honest.t < 6 * S)
    assert len(out) == len(honest)
    pairs = sorted(zip(out.step.tolist(), out.instrument.tolist(), out.t.tolist(), out.price.tolist()))
    for (step, instrument, t, price), late in zip(pairs, sorted(zip(honest.step.tolist(), honest.instrument.tolist(),
                                                                     moved.tolist()))):
        assert t == step * S + (2_500_000_000 if late[2] else 0)
        assert price == _paths().prices[instrument, step]
    assert np.all(np.diff(out.t) >= 0)


@pytest.mark.parametrize(("bias", "factor"), [("up", 1.05), ("down", 0.95)])
def test_manipulate_moves_every_price_in_the_window_by_the_band(bias: str, factor: float) -> None:
    honest = _honest()
    out = attacked_updates(honest, _paths(), [_fault(mode="manipulate", band="5%", bias=bias)])
    inside = (honest.t >= 3 * S) & (honest.t < 6 * S)
    assert np.array_equal(out.t, honest.t) and np.array_equal(out.step, honest.step)
    assert np.allclose(out.price[inside], honest.price[inside] * factor)
    assert np.array_equal(out.price[~inside], honest.price[~inside])


def test_a_mode_refuses_the_others_setting() -> None:
    with pytest.raises(ValueError, match="'band'"):
        _fault(mode="delay", delay="1s", band="5%")
    with pytest.raises(ValueError, match="'delay'"):
        _fault(mode="stale", delay="1s")


def _run(scenario_from, run_scenario, faults: str):  # type: ignore[no-untyped-def]
    text = EXAMPLE.read_text().split("[[faults]]")[0] + faults
    return run_scenario(scenario_from(text))


ORACLE_UP = '\n[[faults]]\nkind = "oracle"\nmode = "manipulate"\nat = "10s"\nduration = "8s"\nband = "6%"\nbias = "up"\n'
CENSOR = '\n[[faults]]\nkind = "censor"\nat = "18s"\nduration = "6s"\nmode = "{mode}"\n'


@pytest.mark.slow
def test_a_lying_oracle_costs_bad_debt_the_honest_one_does_not(scenario_from, run_scenario) -> None:
    honest = _run(scenario_from, run_scenario, "")
    lying = _run(scenario_from, run_scenario, ORACLE_UP)
    assert honest.summary["market"]["bad_debt"]["absolute"] == 0
    assert lying.summary["market"]["bad_debt"]["absolute"] > 10_000
    assert lying.summary["market"]["liquidation_delay_ms"]["p99"] > honest.summary["market"]["liquidation_delay_ms"]["p99"]
    # The oracle table keeps the true price behind each message: the prices table's at t_price.
    oracle = lying.history.table("oracle")
    prices = lying.history.table("prices")
    true = dict(zip(prices["t"].to_pylist(), prices["price"].to_pylist(), strict=True))
    assert all(true[t] == price for t, price in zip(oracle["t_price"].to_pylist(), oracle["price"].to_pylist(),
                                                     strict=True))
    # Without the attack the market is the run without faults: same seed, same history.
    again = _run(scenario_from, run_scenario, "")
    assert again.history.messages.equals(honest.history.messages)


@pytest.mark.parametrize("mode", ["delay", "drop"])
def test_a_censoring_producer_keeps_every_liquidation_of_its_window_out(scenario_from, run_scenario, mode) -> None:
    result = _run(scenario_from, run_scenario, CENSOR.format(mode=mode))
    messages = result.history.messages
    liquidations = messages.filter(pc.equal(messages["kind"], "liquidation")).to_pylist()
    inside = [m for m in liquidations if m["t_received"] is not None and 18 * S <= m["t_received"] < 24 * S]
    assert len(inside) > 100
    integrity = result.summary["integrity"]
    assert integrity["censored"] == len(inside)
    if mode == "delay":
        assert all(m["t_sequenced"] >= 24 * S and m["status"] == "committed" for m in inside)
        assert all(m["t_dequeued"] - m["t_received"] >= 24 * S - m["t_received"] for m in inside)  # queue wait
    else:
        assert all(m["status"] == "dropped" for m in inside)
        assert result.summary["messages"]["dropped"] == len(inside)
    # Nothing else is held: every other kind is sequenced in the window as it comes.
    others = messages.filter(pc.not_equal(messages["kind"], "liquidation")).to_pylist()
    assert all(m["t_sequenced"] - m["t_received"] < S for m in others if m["t_received"] is not None
               and 18 * S <= m["t_received"] < 24 * S)


@pytest.mark.slow
def test_the_delay_split_puts_the_lie_on_the_oracle_and_the_censoring_on_messaging(scenario_from,
                                                                                    run_scenario) -> None:
    honest = _run(scenario_from, run_scenario, "").summary["market"]["liquidation_delay_ms"]["split"]
    lying = _run(scenario_from, run_scenario, ORACLE_UP).summary["market"]["liquidation_delay_ms"]["split"]
    censored = _run(scenario_from, run_scenario,
                    CENSOR.format(mode="delay")).summary["market"]["liquidation_delay_ms"]["split"]
    assert lying["oracle"] > honest["oracle"] + 1_000  # the 6% lie held the crossing back about a second
    assert abs(lying["messaging"] - honest["messaging"]) < 50
    assert censored["oracle"] == honest["oracle"]
    assert censored["messaging"] > honest["messaging"] + 500
    assert lying["keeper"] == censored["keeper"] == honest["keeper"]
