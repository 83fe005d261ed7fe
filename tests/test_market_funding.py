"""Funding between longs and shorts (``rules/funding.py``, ``market/funding.py``), worked by
hand, and read back from a run's history and summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msgstorm import read_history, run
from msgstorm.market.funding import Funding
from msgstorm.report.terminal import _market_rows
from msgstorm.rules.funding import book_premium, funding_payments, funding_rate
from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.scenario.market import FundingSpec, InstrumentSpec, MarketSpec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _clock(spec: FundingSpec, book: list[tuple[int, float, float]], slippage_bps: float = 10.0,
           depth: float = 1e6) -> Funding:
    market = MarketSpec(instruments=[InstrumentSpec(name="X")], slippage_bps=slippage_bps, depth=depth)
    return Funding(spec, market, [b[0] for b in book], np.array([b[1] for b in book], dtype=np.float64),
                   np.array([b[2] for b in book], dtype=np.float64), [0] * len(book),
                   np.zeros(len(book), dtype=bool))


def test_a_long_and_a_short_of_equal_size_pay_and_receive_equal_amounts_each_interval() -> None:
    # Long 2 and short 2, 50 of collateral each; index 110: N = 220 each. Fixed 0.1% an
    # interval: the long pays 0.22, the short receives 0.22, three times.
    clock = _clock(FundingSpec(rate="fixed", fixed_rate=0.001), [(1, 2.0, 50.0), (-1, 2.0, 50.0)])
    for interval in range(1, 4):
        paid = clock.pay([110.0])
        assert [(p.account, p.amount) for p in paid] == [(0, pytest.approx(-0.22)), (1, pytest.approx(0.22))]
        assert clock.collateral.tolist() == [pytest.approx(50.0 - 0.22 * interval), pytest.approx(50.0 + 0.22 * interval)]
    # The book's premium of equal open interest is 0: ``premium`` pays the fixed rate alone.
    clock = _clock(FundingSpec(rate="premium", fixed_rate=-0.001, clamp=0.01), [(1, 2.0, 50.0), (-1, 2.0, 50.0)])
    paid = clock.pay([110.0])
    assert [p.amount for p in paid] == [pytest.approx(0.22), pytest.approx(-0.22)]  # the shorts pay
    assert all(p.rate == pytest.approx(-0.001) for p in paid)


def test_the_premium_rate_from_the_book_and_its_clamp() -> None:
    # L = 3,000,000, S = 1,000,000, 10 bps per 1,000,000: the imbalance moves the book
    # 10 x 2,000,000 / 1,000,000 = 20 bps = 0.002; with 0.0001 fixed, 0.0021.
    assert book_premium(3e6, 1e6, 10.0, 1e6) == pytest.approx(0.002)
    assert funding_rate("premium", 0.0001, 0.01, 3e6, 1e6, 10.0, 1e6) == pytest.approx(0.0021)
    assert funding_rate("premium", 0.0001, 0.001, 3e6, 1e6, 10.0, 1e6) == pytest.approx(0.001)  # clamped
    assert funding_rate("premium", 0.0, 0.001, 1e6, 3e6, 10.0, 1e6) == pytest.approx(-0.001)  # shorts outweigh
    assert funding_rate("fixed", 0.0003, 0.001, 3e6, 1e6, 10.0, 1e6) == 0.0003  # the book ignored


def test_the_receiving_side_shares_what_the_paying_side_pays_pro_rata() -> None:
    # Longs of 100 and 300, a short of 200, rate 1%: the longs pay 1 and 3, the short gets 4.
    received = funding_payments(np.array([1.0, 1.0, -1.0]), np.array([100.0, 300.0, 200.0]), 0.01)
    assert received.tolist() == pytest.approx([-1.0, -3.0, 4.0])
    # Two shorts of 100 and 300 receive 2 x 1% of a 200 long pro rata: 0.5 and 1.5.
    received = funding_payments(np.array([-1.0, -1.0, 1.0]), np.array([100.0, 300.0, 200.0]), 0.01)
    assert received.tolist() == pytest.approx([0.5, 1.5, -2.0])
    # No one on the receiving side: no one pays.
    assert funding_payments(np.array([1.0, 1.0]), np.array([100.0, 300.0]), 0.01).tolist() == [0.0, 0.0]


def test_closed_accounts_pay_no_funding() -> None:
    clock = _clock(FundingSpec(rate="fixed", fixed_rate=0.01), [(1, 1.0, 10.0), (1, 1.0, 10.0), (-1, 2.0, 10.0)])
    clock.closed[1] = True
    paid = clock.pay([100.0])
    assert [(p.account, p.amount) for p in paid] == [(0, pytest.approx(-1.0)), (2, pytest.approx(1.0))]


def test_a_run_pays_funding_each_interval_and_zero_sum(tmp_path: Path) -> None:
    # venue-partial runs 8 s: funding every 1 s pays at 1 s, 2 s, ..., 8 s (the horizon).
    result = run(load_scenario(str(EXAMPLES / "venue-partial.toml"),
                               ['market.funding={interval="1s", rate="fixed", fixed_rate=0.0001}']), tmp_path / "run")
    venue = read_history(result.run_dir).table("venue")
    kinds = venue.column("kind").to_pylist()
    t = [v for v, k in zip(venue.column("t").to_pylist(), kinds, strict=True) if k == "funding"]
    amounts = [v for v, k in zip(venue.column("amount").to_pylist(), kinds, strict=True) if k == "funding"]
    assert sorted(set(t)) == [second * 1_000_000_000 for second in range(1, 9)]
    for when in set(t):
        moved = [a for a, at in zip(amounts, t, strict=True) if at == when]
        assert sum(moved) == pytest.approx(0.0, abs=1e-9 * sum(abs(a) for a in moved))
    shown = result.summary["market"]["venue"]["funding"]
    assert shown["intervals"] == 8 and shown["payments"] == len(amounts)
    assert shown["paid"] == pytest.approx(-sum(a for a in amounts if a < 0), abs=0.01)
    assert shown["received"] == pytest.approx(shown["paid"], abs=0.02)
    assert result.analysis.result.market is not None
    rows = dict(_market_rows(result.analysis.result.market))
    assert rows["funding paid"] == f"{shown['paid']:,} in {len(amounts):,} payments over 8 intervals"
    # 70% long at a positive fixed rate: the longs pay (the accounts table says who is long).
    side = read_history(result.run_dir).table("accounts").column("side").to_pylist()
    accounts = [a for a, k in zip(venue.column("account").to_pylist(), kinds, strict=True) if k == "funding"]
    assert all((amount < 0) == (side[account] > 0) for account, amount in zip(accounts, amounts, strict=True))


@pytest.mark.parametrize(("override", "expected"), [
    ('market.funding={rate="skew"}', "market.funding.rate"),
    ("market.funding={interval=0}", "market.funding.interval"),
    ('market.funding={clamp="150%"}', "market.funding.clamp"),
    ('market.funding={rate="fixed"}\nmarket.probes={leverages=[2.0, 4.0]}', "probes: the probe books pay no funding"),
])
def test_bad_funding_input_names_the_field(override: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(EXAMPLES / "venue-partial.toml"), override.split("\n"))
    assert expected in str(error.value), str(error.value)


def test_funding_is_refused_with_positions_on_another_chain() -> None:
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(EXAMPLES / "cross-chain-collateral.toml"), ['market.funding={rate="fixed"}'])
    assert "market.funding: funding moves the source's collateral" in str(error.value), str(error.value)
