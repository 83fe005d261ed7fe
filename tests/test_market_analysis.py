"""The market's numbers: the horizon every run is judged over, the liquidation delay and its
split on hand-built histories worked out on paper, and each formula in one place.

Hand-built histories use one instrument on a 100 ms grid, ``run.duration`` 3 s and
``run.drain`` 1 s: the horizon is 3 s (the oracle's span), whenever the run settled. Accounts are longs of size
1 entered at 100; maintenance 10%, penalty 5%: collateral 20 has its line at 80 / 0.9 =
88.89 and its bankruptcy at 80, collateral 12 at 97.78 and 88, collateral 50 at 55.56 and 50.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_analysis_history import MS, S, message, scenario_dict, write_history
from test_market import ACCOUNTS, GAP, KEEPER

from msgstorm import analyse, run
from msgstorm.analysis import market as analysis_market
from msgstorm.analysis.market import market_summary, market_tables
from msgstorm.history.reader import History
from msgstorm.market import accounts, frontrun
from msgstorm.market import topups as market_topups
from msgstorm.market.accounts import execute, line_prices
from msgstorm.market.prices import horizon_ns
from msgstorm.report import market as report_market
from msgstorm.rules import market as rules
from msgstorm.scenario import parse_scenario

SCENARIO = """
[run]
name = "market-by-hand"
duration = "3s"
drain = "1s"

[[agents]]
name = "traders"
arrival = { process = "constant", rate = "10/s" }

[market]
resolution = "100ms"
maintenance_margin = "10%"
liquidation_penalty = "5%"

[[market.instruments]]
name = "X"
price = 100.0

[[market.keepers]]
reaction = "0s"
"""
STEP = 100 * MS


def _prices(path: dict[int, float]) -> list[dict[str, Any]]:
    """The ``prices`` rows of instrument X over 0 .. 4 s (the run and its drain): ``path``
    maps a step (of 100 ms) to the price from that step on."""
    rows, price = [], 100.0
    for k in range(41):
        price = path.get(k, price)
        rows.append({"t": k * STEP, "instrument": "X", "price": price})
    return rows


def _account(account: int, collateral: float) -> dict[str, Any]:
    (line,), (bankrupt,) = line_prices(np.array([1]), np.array([1.0]), np.array([100.0]), np.array([collateral]), 0.1)
    return {"account": account, "instrument": "X", "side": 1, "size": 1.0, "entry": 100.0, "collateral": collateral,
            "liquidation_price": float(line), "bankruptcy_price": float(bankrupt)}


def _history(run_dir: Path, tables: dict[str, list[dict[str, Any]]], t_end: int,
             messages: list[dict[str, Any]] | None = None) -> History:
    return write_history(run_dir, messages or [], scenario=scenario_dict(SCENARIO), t_end=t_end, tables=tables)


# --- the horizon ------------------------------------------------------------------------------


def _late_crash(run_dir: Path, t_end: int) -> History:
    """A run that settled at ``t_end``; at 2.5 s the price falls to 45 and at 3.0 s (the
    horizon) to 40; at 3.5 s, in the drain, to 20. The collateral-50 long (line 55.56)
    crosses at 2.5 s. No oracle message, no keeper: the chain keeps the first price."""
    prices = _prices({25: 45.0, 30: 40.0, 35: 20.0})
    return _history(run_dir, {"prices": prices, "accounts": [_account(0, 50.0)]}, t_end)


def test_an_account_crossing_after_the_run_settled_but_within_the_horizon_is_judged(tmp_path: Path) -> None:
    """Settled at 2.2 s (its traffic ended early): the crossing at 2.5 s is within the 3 s
    horizon, so the account is eligible (never attempted) and marked at the price at the
    horizon, 40 (not at the drain's 20): equity 50 + 40 - 100 = -10, bad debt 10 of an open
    interest of 100. Staleness runs to the horizon: the
    chain's price is the one of time 0 at every step, so its max is 3,000 ms and its p50 the
    16th of the 31 steps' 0 .. 3,000 ms, 1,500 ms."""
    market = market_summary(_late_crash(tmp_path / "early", 2_200 * MS))
    assert market is not None
    assert market.liquidations.eligible == 1 and market.liquidations.not_attempted == 1
    assert market.bad_debt.model_dump() == {"absolute": 10.0, "pct_of_open_interest": 10.0, "accounts": 1}
    assert market.price_staleness_ms.model_dump() == {"p50": 1500.0, "p99": 3000.0, "max": 3000.0}


def test_runs_settling_at_different_times_are_judged_over_the_same_horizon(tmp_path: Path) -> None:
    early = _late_crash(tmp_path / "early", 2_200 * MS)
    late = _late_crash(tmp_path / "late", 3_900 * MS)  # after the drain's fall
    assert market_summary(early) == market_summary(late)
    for history in (early, late):
        tables = market_tables(history)
        assert tables is not None and tables.until_ns == 3 * S == horizon_ns(3 * S)
        assert tables.times[-1] == 3 * S


def test_a_cut_off_run_is_judged_up_to_what_it_saw(tmp_path: Path) -> None:
    """Interrupted at 2.2 s: the crash after it was never seen; nothing is eligible."""
    history = write_history(tmp_path, [], scenario=scenario_dict(SCENARIO), t_end=2_200 * MS, interrupted=True,
                            tables={"prices": _prices({25: 45.0, 30: 40.0, 35: 20.0}),
                                    "accounts": [_account(0, 50.0)]})
    market = market_summary(history)
    assert market is not None and market.liquidations.eligible == 0 and market.bad_debt.absolute == 0.0


DRAIN_CRASH = ('shocks = [{ at = "500ms", fall = "8%" }, { at = "1s", fall = "30%" }]',
               'shocks = [{ at = "500ms", fall = "8%" }, { at = "1s", fall = "30%" }, { at = "2500ms", fall = "30%" }]')


def _drain_crash_run(tmp_path: Path, block_interval: str):  # type: ignore[no-untyped-def]
    """The gap scenario of ``test_market``, with a third fall in the drain (at 2.5 s: 64.4
    -> 45.08), after the oracle's last price (it publishes until ``run.duration``, 2 s)."""
    csv = tmp_path / "accounts.csv"
    csv.write_text(ACCOUNTS)
    text = GAP.format(accounts=csv, keepers=KEEPER).replace(*DRAIN_CRASH).replace(
        'interval = "1ms"', f'interval = "{block_interval}"')
    return run(parse_scenario(text, source="gap.toml"), tmp_path / block_interval)


def test_two_points_of_a_sweep_settling_at_different_times_are_judged_alike(tmp_path: Path) -> None:
    """1 ms blocks settle the run just after 2 s, 900 ms blocks at 2.7 s (after the fall at
    2.5 s). Both are judged to the horizon, 2 s: the fall in the drain, which no oracle
    published and no keeper could answer, judges neither; the collateral-50 long is marked
    at 64.4 (it keeps 14.4) in both, and the two others are eligible in both."""
    fast, slow = _drain_crash_run(tmp_path, "1ms"), _drain_crash_run(tmp_path, "900ms")
    assert fast.history.run_info["t_end"] < 2_500 * MS < slow.history.run_info["t_end"]
    for result in (fast, slow):
        tables = market_tables(result.history)
        assert tables is not None and tables.times[-1] == 2 * S
        assert tables.t_cross[0] == -1
        liquidations = result.summary["market"]["liquidations"]
        assert liquidations["eligible"] == 2 and liquidations["not_attempted"] == 0, liquidations
    # The fast run executes the two at once (bad debt 0.6 and 18.82, see test_market).
    assert fast.summary["market"]["bad_debt"] == {"absolute": pytest.approx(19.42), "accounts": 2,
                                                  "pct_of_open_interest": pytest.approx(4.855)}


# --- the delay and its split --------------------------------------------------------------------


def _recovered_history(run_dir: Path, reverted: bool = False) -> History:
    """Two longs: collateral 20 (account 0: line 88.89, bankruptcy 80) and 12 (account 1:
    line 97.78, bankruptcy 88). The true price: 100; 85 at 0.5 s; 95 at 0.6 s (account 0
    recovers, account 1 does not); 86 at 1.0 s; 84 from 1.2 s.

    The oracle publishes m1 (0.5 s, 85), m2 (0.6 s, 95), m3 (1.1 s, 86), m4 (1.2 s, 84);
    committed at 0.58, 0.65, 1.26 (after m4: it does not move the chain) and 1.25 s.

    - account 0: a keeper sees m1 at 0.52 s, sends L1 at 0.55 s; L1 commits at 0.70 s, when
      the chain has 95: recovered. It sees m4 at 1.23 s (m3 reaches it later), sends L2 at
      1.30 s, which executes at 1.45 s at 84: equity 4, penalty 4.2, bad debt 0.2. It was
      never late (the price never reached 80), and ends in bad debt all the same;
    - account 1: a keeper sees m1 at 0.52 s, sends L3 at 0.55 s, which executes at 0.60 s at
      85: equity -3, penalty 4.25, bad debt 7.25; late (85 is past its bankruptcy, 88).

    ``reverted``: besides, an execution of account 0 at 0.58 s at 60 (bad debt 23) that a
    chain lost (a restarted node's older state): its row says ``reverted``.
    """
    oracle = [(1, 500, 85.0, 580), (2, 600, 95.0, 650), (3, 1100, 86.0, 1260), (4, 1200, 84.0, 1250)]
    liquidations = [(5, 550, 700), (6, 1300, 1450), (7, 550, 600)]
    messages = [message(m, t * MS, latency_ns=(c - t) * MS, kind="price", agent="oracle") for m, t, _, c in oracle]
    messages += [message(m, t * MS, latency_ns=(c - t) * MS, kind="liquidation", agent="keepers")
                 for m, t, c in liquidations]

    def trigger(t_ms: int, sent_ms: int, account: int, msg_id: int, price_msg_id: int, price: float) -> dict[str, Any]:
        return {"t": t_ms * MS, "t_sent": sent_ms * MS, "keeper": "keepers-0", "node": "n0", "account": account,
                "msg_id": msg_id, "price_msg_id": price_msg_id, "price_seen": price}

    def execution(t_ms: int, msg_id: int, account: int, outcome: str, price: float, t_price_ms: int,
                  collateral: float) -> dict[str, Any]:
        done = execute(1, 1.0, 100.0, collateral, price, 0.05, 0.0, 1e9)
        if outcome != "executed":
            done = accounts.Execution(price, 0.0, 0.0, 0.0, 0.0, collateral, 0.0)
        return {"t": t_ms * MS, "msg_id": msg_id, "account": account, "keeper": "keepers-0", "outcome": outcome,
                "price": price, "t_price": t_price_ms * MS, "pnl": done.pnl, "penalty": done.penalty,
                "slippage": done.slippage, "slippage_bps": done.slippage_bps,
                "collateral_after": done.collateral_after, "bad_debt": done.bad_debt}

    tables = {
        "prices": _prices({5: 85.0, 6: 95.0, 10: 86.0, 12: 84.0}),
        "accounts": [_account(0, 20.0), _account(1, 12.0)],
        "oracle": [{"msg_id": m, "instrument": "X", "price": p, "t_price": t * MS} for m, t, p, _ in oracle],
        "triggers": [trigger(520, 550, 0, 5, 1, 85.0), trigger(1230, 1300, 0, 6, 4, 84.0),
                     trigger(520, 550, 1, 7, 1, 85.0)],
        "executions": [execution(600, 7, 1, "executed", 85.0, 500, 12.0),
                       execution(700, 5, 0, "recovered", 95.0, 600, 20.0),
                       execution(1450, 6, 0, "executed", 84.0, 1200, 20.0)],
    }
    if reverted:
        tables["executions"].insert(0, {**execution(580, 8, 0, "executed", 60.0, 500, 20.0), "outcome": "reverted"})
    return _history(run_dir, tables, 2 * S, messages)


def test_the_delay_runs_from_the_crossing_the_executed_liquidation_answered(tmp_path: Path) -> None:
    """Account 0 first crossed at 0.5 s, but was back over its line from 0.6 s to 1.0 s: the
    liquidation that executed answered the crossing at 1.0 s, so its delay is 1.45 - 1.0 =
    450 ms (not 950). The oracle first showed that crossing at 1.1 s (m3): 100 ms; the keeper
    took 1.23 -> 1.30 s: 70 ms; messaging the rest, 280 ms (m3 published -> m4 seen: 130
    ms, L2 sent -> committed: 150 ms). Account 1 never recovered: 0.5 -> 0.6 s = 100 ms, the
    oracle 0 (m1 at the crossing), the keeper 30 ms, messaging 70 ms (20 + 50).

    Over both: p50 100 (the first of two), p99 and max 450, mean 275 = oracle 50 + keeper
    50 + messaging 175."""
    history = _recovered_history(tmp_path)
    market = market_summary(history)
    assert market is not None
    assert market.liquidation_delay_ms.model_dump() == {
        "p50": 100.0, "p99": 450.0, "max": 450.0, "mean": 275.0,
        "split": {"oracle": 50.0, "keeper": 50.0, "messaging": 175.0}}
    tables = market_tables(history)
    assert tables is not None
    delays = analysis_market.liquidation_delays(history, tables, analysis_market.executed_liquidations(history))
    assert delays.oracle is not None and delays.keeper is not None and delays.messaging is not None
    by_account = dict(zip(analysis_market.executed_liquidations(history).account.tolist(), range(2), strict=True))
    row = by_account[0]
    assert (delays.crossing[row], delays.delay[row]) == (1_000 * MS, 450 * MS)
    assert (delays.oracle[row], delays.keeper[row], delays.messaging[row]) == (100 * MS, 70 * MS, 280 * MS)
    assert np.array_equal(delays.oracle + delays.keeper + delays.messaging, delays.delay)


def test_late_is_not_the_same_as_ending_in_bad_debt(tmp_path: Path) -> None:
    """Both accounts end in bad debt (0.2 + 7.25); only account 1 is late: account 0 was
    liquidated at 84, before its bankruptcy price 80, and the 5% penalty took the rest."""
    market = market_summary(_recovered_history(tmp_path))
    assert market is not None
    assert market.liquidations.model_dump() == {"eligible": 2, "triggered": 2, "executed": 2, "late": 1,
                                                "no_op": 1, "not_attempted": 0, "messages": 3}
    assert market.bad_debt.absolute == pytest.approx(7.45) and market.bad_debt.accounts == 2


def test_an_execution_the_chain_lost_counts_neither_as_executed_nor_as_a_no_op(tmp_path: Path) -> None:
    """The ``reverted`` row (bad debt 23 at 60) changes nothing: the market's numbers are
    those of the executions on the chain that stayed."""
    kept = market_summary(_recovered_history(tmp_path / "kept"))
    market = market_summary(_recovered_history(tmp_path / "lost", reverted=True))
    assert market is not None and kept is not None
    assert market.liquidations.executed == 2 and market.liquidations.no_op == 1
    assert market.bad_debt.absolute == pytest.approx(7.45)
    assert market.liquidations == kept.liquidations and market.bad_debt == kept.bad_debt


def test_the_report_draws_the_delays_the_summary_counts(tmp_path: Path) -> None:
    history = _recovered_history(tmp_path)
    market = analyse(history).result.market
    assert market is not None
    plots = report_market.market_plots(history, market, ([], []), [])
    assert plots is not None
    histogram = plots["market-delay"]["data"][0]
    assert sorted(histogram["x"]) == [100.0, 450.0]
    bars = {trace["name"]: trace["x"][0] for trace in plots["market-delay"]["data"][1:]}
    assert bars == {"oracle (mean)": 50.0, "keeper (mean)": 50.0, "messaging (mean)": 175.0}


def test_the_delay_chart_changes_unit_so_a_day_long_delay_is_not_millions_of_ms() -> None:
    """The largest unit that keeps the longest delay at 2 or more: 450 ms stays in ms, 1.5 s
    too (below 2 s), 81 minutes (black-thursday-2020's p50) reads in minutes, 2 h in hours."""
    from msgstorm.report.text import duration_unit

    assert duration_unit(450.0) == ("ms", 1.0)
    assert duration_unit(1_500.0) == ("ms", 1.0)
    assert duration_unit(2_000.0) == ("s", 1_000.0)
    assert duration_unit(81 * 60_000.0) == ("min", 60_000.0)
    assert duration_unit(2 * 3_600_000.0) == ("h", 3_600_000.0)


def test_the_delay_chart_draws_its_bars_and_axes_in_the_unit_it_names(tmp_path: Path) -> None:
    """Delays of 100 and 450 ms drawn in ms: the axis titles say ms, and the values are the ms."""
    history = _recovered_history(tmp_path)
    market = analyse(history).result.market
    assert market is not None
    plots = report_market.market_plots(history, market, ([], []), [])
    assert plots is not None
    layout = plots["market-delay"]["layout"]
    assert layout["xaxis"]["title"]["text"] == "delay (ms)"
    assert layout["xaxis2"]["title"]["text"] == "mean split (ms)"


# --- one formula, one place ----------------------------------------------------------------------


def _shifted(formula: Any, by: float) -> Any:
    def mutated(*args: Any) -> Any:
        return formula(*args) - by

    return mutated


def test_every_consumer_of_equity_uses_the_one_formula(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reactor's top-ups (a top-up's amount) and the analysis (accounts marked to market)
    each import ``accounts.equity``, and the report's bad debt over time is the analysis's
    (``analysis/bad_debt.py``); a mutation of it moves all three numbers, so none of them can
    hold a copy that drifts."""
    for consumer in (market_topups, analysis_market):
        assert consumer.equity is accounts.equity, consumer.__name__
    assert not hasattr(report_market, "equity")
    history = _late_crash(tmp_path / "crash", 2_200 * MS)

    def numbers() -> tuple[float, float]:
        market = analyse(history).result.market
        assert market is not None
        plots = report_market.market_plots(history, market, ([], []), [])
        assert plots is not None
        return market.bad_debt.absolute, plots["market-bad-debt"]["data"][0]["y"][-1]

    assert numbers() == (10.0, 10.0)
    monkeypatch.setattr(analysis_market, "equity", _shifted(accounts.equity, 5.0))
    assert numbers() == (15.0, 15.0)

    # The reactor: every account tops up to leverage 1 by what its equity lacks (see
    # test_market: the collateral-12 long adds 88 at 100); 5 less equity, 5 more added.
    topups = KEEPER + '[market.topups]\nprobability = "100%"\nnear = "10%"\nreaction = "0s"\nto_leverage = 1.0\n'
    csv = tmp_path / "accounts.csv"
    csv.write_text(ACCOUNTS)
    scenario = parse_scenario(GAP.format(accounts=csv, keepers=topups), source="gap.toml")
    monkeypatch.setattr(market_topups, "equity", _shifted(accounts.equity, 5.0))
    result = run(scenario, tmp_path / "topups")
    added = {row["account"]: row["amount"] for row in result.history.table("topups").to_pylist()}
    assert added[2] == pytest.approx(88.0 + 5.0)


def test_liquidation_and_front_running_share_the_price_impact_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """``impact_bps`` is the one linear depth model: a liquidation's slippage and a won race's
    value both come from it. 10 bps per 1,000,000 of notional: a liquidation of 400,000 moves
    the price 4 bps and costs 160; doubling the model doubles the cost."""
    assert frontrun.impact_bps is accounts.impact_bps
    done = execute(1, 4_000.0, 100.0, 100_000.0, 100.0, 0.0, 10.0, 1_000_000.0)
    assert (done.slippage_bps, done.slippage) == (pytest.approx(4.0), pytest.approx(160.0))
    monkeypatch.setattr(rules, "impact_bps", _shifted(rules.impact_bps, -4.0))
    done = execute(1, 4_000.0, 100.0, 100_000.0, 100.0, 0.0, 10.0, 1_000_000.0)
    assert (done.slippage_bps, done.slippage) == (pytest.approx(8.0), pytest.approx(320.0))


def test_an_execution_keeps_the_accounts_equity_less_its_costs() -> None:
    """The rule ``execute`` applies is ``equity`` at the price: mutating ``equity`` moves
    what the account keeps by as much."""
    kept = execute(1, 1.0, 100.0, 20.0, 84.0, 0.05, 0.0, 1e9).collateral_after
    assert kept == pytest.approx(4.0 - 4.2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rules, "equity", _shifted(rules.equity, 1.0))
        assert execute(1, 1.0, 100.0, 20.0, 84.0, 0.05, 0.0, 1e9).collateral_after == pytest.approx(kept - 1.0)

