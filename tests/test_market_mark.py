"""The mark price (``rules/mark.py``, ``market/mark.py``): liquidations judged on the index
plus the book's bounded premium, settled on the index; worked by hand and read back from a
run's history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msgstorm import read_history, run
from msgstorm.market.accounts import past_line
from msgstorm.market.mark import Mark
from msgstorm.rules.mark import mark_price
from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.scenario.market import InstrumentSpec, MarketSpec, MarkSpec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_mark_is_the_index_moved_by_the_bounded_premium() -> None:
    # L = 3,000,000, S = 1,000,000, 10 bps per 1,000,000: premium 0.002, the mark 100.2;
    # capped at 0.1%: 100.1; the shorts outweighing by as much: 99.9.
    assert mark_price(100.0, 3e6, 1e6, 10.0, 1e6, 0.01) == pytest.approx(100.2)
    assert mark_price(100.0, 3e6, 1e6, 10.0, 1e6, 0.001) == pytest.approx(100.1)
    assert mark_price(100.0, 1e6, 3e6, 10.0, 1e6, 0.001) == pytest.approx(99.9)
    assert mark_price(100.0, 2e6, 2e6, 10.0, 1e6, 0.001) == 100.0


def test_the_mark_reads_the_open_interest_of_the_open_positions() -> None:
    # Longs of 2 and 1 units, a short of 1, on X; a long of 5 on Y. At index 100: L = 300,
    # S = 100, 10 bps per 1,000: premium 10 x 200 / 1,000 / 10,000 = 0.0002, mark 100.02.
    market = MarketSpec(instruments=[InstrumentSpec(name="X"), InstrumentSpec(name="Y")], slippage_bps=10.0,
                        depth=1_000.0)
    closed = np.zeros(4, dtype=bool)
    mark = Mark(MarkSpec(premium_cap=0.01), market, [1, 1, -1, 1], np.array([2.0, 1.0, 1.0, 5.0]), [0, 0, 0, 1],
                closed)
    assert mark.price(0, 100.0) == pytest.approx(100.02)
    closed[0] = True  # the long of 2 liquidated: L = S = 100, no premium
    assert mark.price(0, 100.0) == pytest.approx(100.0)
    assert mark.price(1, 100.0) == pytest.approx(100.05)  # 10 x 500 / 1,000 = 5 bps = 0.0005


def test_a_run_judges_on_the_mark_and_settles_on_the_index(tmp_path: Path) -> None:
    # Whole liquidations without a fund: each account's line stays the accounts table's, so
    # every committed liquidation's outcome is past_line at the mark the ``marks`` row gives.
    overrides = ['market.liquidation.mechanism="whole"', "market.liquidation.insurance_fund=0",
                 "market.liquidation.keeper_share=1", "market.liquidation.on_empty=\"none\"",
                 'market.mark={premium_cap="0.5%"}']
    result = run(load_scenario(str(EXAMPLES / "venue-partial.toml"), overrides), tmp_path / "run")
    history = read_history(result.run_dir)
    accounts, executions, marks = history.table("accounts"), history.table("executions"), history.table("marks")
    side, line = accounts.column("side").to_pylist(), accounts.column("liquidation_price").to_pylist()
    judged = {m: (a, i, k) for m, a, i, k in zip(*(marks.column(c).to_pylist()
                                                    for c in ("msg_id", "account", "index", "mark")), strict=True)}
    differs = 0
    assert marks.num_rows > 0
    for msg_id, outcome, price in zip(*(executions.column(c).to_pylist() for c in ("msg_id", "outcome", "price")),
                                      strict=True):
        if outcome == "already_liquidated":
            continue
        account, index, mark = judged[msg_id]
        assert price == index  # settled on the index
        assert abs(mark / index - 1.0) <= 0.005 + 1e-12
        assert (outcome == "executed") == past_line(side[account], line[account], mark)
        differs += past_line(side[account], line[account], mark) != past_line(side[account], line[account], index)
    assert differs > 0  # the mark decided some calls the index would have decided otherwise


def test_without_a_mark_section_no_marks_are_written(tmp_path: Path) -> None:
    result = run(load_scenario(str(EXAMPLES / "venue-partial.toml"), ["market.accounts.0.count=200"]),
                 tmp_path / "run")
    assert read_history(result.run_dir).table("marks").num_rows == 0


@pytest.mark.parametrize(("override", "expected"), [
    ('market.mark={premium_cap="150%"}', "market.mark.premium_cap"),
    ('market.mark={}\nmarket.probes={leverages=[2.0, 4.0]}', "probes: the probe books judge on the index"),
])
def test_bad_mark_input_names_the_field(override: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(EXAMPLES / "venue-partial.toml"), override.split("\n"))
    assert expected in str(error.value), str(error.value)
