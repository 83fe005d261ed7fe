"""Bad debt over time (``analysis/bad_debt.py``) on a hand-built history worked out on paper.

The history of ``test_market_analysis``: one instrument X on a 100 ms grid, a horizon of 3 s,
longs of size 1 entered at 100. Three accounts:

- account 0, collateral 20: a partial close at 0.6 s leaves it size 0.5 and collateral 10
  (a ``venue`` row); never closed whole;
- account 1, collateral 12: executed at 1.0 s with a shortfall of 3 left after the venue's
  cover (its ``executions`` row);
- account 2, collateral 50: a top-up at 1.5 s takes its collateral to 70.

The true price: 100; 85 from 0.5 s; 70 from 1.0 s; 60 from 2.0 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_analysis_history import message
from test_market_analysis import MS, S, _account, _history, _prices

from msgstorm import analyse
from msgstorm.analysis.bad_debt import bad_debt_over_time
from msgstorm.analysis.market import executed_liquidations, market_summary, market_tables
from msgstorm.history.reader import History
from msgstorm.report import market as report_market


def _books(run_dir: Path, executed_ms: int = 1_000,
           earlier: list[dict[str, Any]] | None = None) -> History:
    """The history of the module docstring, account 1's liquidation committed at ``executed_ms``
    (``earlier``: ``venue`` rows written after the partial close)."""
    execution: dict[str, Any] = {"t": executed_ms * MS, "msg_id": 1, "account": 1, "keeper": "keepers-0",
                                 "outcome": "executed", "price": 70.0, "t_price": 1_000 * MS, "pnl": -30.0,
                                 "penalty": 0.0, "slippage": 0.0, "slippage_bps": 0.0, "collateral_after": 0.0,
                                 "bad_debt": 3.0}
    partial = {"t": 600 * MS, "msg_id": 2, "account": 0, "kind": "partial", "amount": 42.5, "size_after": 0.5,
               "collateral_after": 10.0, "fund_after": 0.0}
    topup = {"t": 1_500 * MS, "msg_id": 3, "account": 2, "amount": 20.0, "collateral_after": 70.0,
             "liquidation_price": 33.33, "bankruptcy_price": 30.0}
    trigger = {"t": 1_000 * MS, "t_sent": 1_000 * MS, "keeper": "keepers-0", "node": "n0", "account": 1,
               "msg_id": 1, "price_msg_id": 9, "price_seen": 70.0}
    tables = {"prices": _prices({5: 85.0, 10: 70.0, 20: 60.0}),
              "accounts": [_account(0, 20.0), _account(1, 12.0), _account(2, 50.0)],
              "oracle": [{"msg_id": 9, "instrument": "X", "price": 70.0, "t_price": 1_000 * MS}],
              "triggers": [trigger], "executions": [execution],
              "venue": [partial, *(earlier or [])],
              "topups": [topup]}
    messages = [message(9, 1_000 * MS, latency_ns=0, kind="price", agent="oracle"),
                message(1, 1_000 * MS, latency_ns=(executed_ms - 1_000) * MS, kind="liquidation", agent="keepers")]
    return _history(run_dir, tables, max(2_000, executed_ms + 100) * MS, messages)


def test_bad_debt_over_time_reads_the_books_as_they_stood_then(tmp_path: Path) -> None:
    """Before 0.5 s nothing is underwater: 0. At 0.5 s (85): account 1 owes 12 - 15 = -3, so 3;
    account 0 keeps 20 - 15 = 5. At 0.6 s the partial close leaves account 0 10 + 0.5 x -15 =
    2.5: still 3. At 1.0 s (70): account 1's execution counts its recorded 3; account 0 owes
    10 + 0.5 x -30 = -5: 8 (at its original size and collateral it would owe 20 - 30 = -10).
    At 2.0 s (60): account 0 owes 10 - 20 = -10; account 2, topped up to 70 at 1.5 s, keeps 30:
    13, to the end: summary.json's bad debt, 13."""
    history = _books(tmp_path)
    tables = market_tables(history)
    assert tables is not None
    series = bad_debt_over_time(history, tables, executed_liquidations(history))
    assert series.t_ns.tolist() == [k * 100 * MS for k in range(31)]
    expected = [0.0] * 5 + [3.0] * 5 + [8.0] * 10 + [13.0] * 11
    assert series.total.tolist() == pytest.approx(expected)
    assert series.realised.tolist() == pytest.approx([0.0] * 10 + [3.0] * 21)
    market = market_summary(history)
    assert market is not None and market.bad_debt.absolute == 13.0 and market.bad_debt.accounts == 2


def test_the_report_draws_the_series_and_ends_at_the_summarys_bad_debt(tmp_path: Path) -> None:
    history = _books(tmp_path)
    market = analyse(history).result.market
    assert market is not None
    plots = report_market.market_plots(history, market, ([], []), [])
    assert plots is not None
    total, realised = plots["market-bad-debt"]["data"][:2]
    assert np.allclose(total["x"], [k / 10 for k in range(31)])
    assert total["y"][10] == pytest.approx(8.0) and total["y"][-1] == pytest.approx(market.bad_debt.absolute)
    assert realised["y"][-1] == pytest.approx(3.0)


def test_a_liquidation_in_the_drain_adds_a_last_point_at_its_time(tmp_path: Path) -> None:
    """Account 1 executed at 3.4 s, in the drain: the horizon's point (3 s) still marks it to
    market (70 - 100 + 12 = -18 at 60: 28 with account 0's 10), the run's end counts its
    recorded 3: 13, the summary's."""
    history = _books(tmp_path, executed_ms=3_400)
    tables = market_tables(history)
    assert tables is not None
    series = bad_debt_over_time(history, tables, executed_liquidations(history))
    assert series.t_ns[-2:].tolist() == [3 * S, 3_400 * MS]
    assert series.total[-2:].tolist() == pytest.approx([10.0 + 28.0, 13.0])


def test_rows_written_out_of_time_order_are_read_in_time_order(tmp_path: Path) -> None:
    """A ``venue`` row of 0.3 s written after the partial close of 0.6 s (account 0 at size
    0.8 and collateral 15): read in time order, the partial close still leaves account 0 at
    size 0.5 and collateral 10 from 0.6 s on, so up to the horizon the series is the one
    without the earlier row (at 0.5 s, 85, account 0 holds 15 + 0.8 x -15 = 3: 3 in all,
    account 1's). The end's point is the summary's, whose books end at each account's last
    row as written: account 0 at 15 + 0.8 x -40 = -17, 20 with account 1's 3."""
    earlier = {"t": 300 * MS, "msg_id": 4, "account": 0, "kind": "partial", "amount": 1.0,
               "size_after": 0.8, "collateral_after": 15.0, "fund_after": 0.0}
    history = _books(tmp_path, earlier=[earlier])
    tables = market_tables(history)
    assert tables is not None
    series = bad_debt_over_time(history, tables, executed_liquidations(history))
    expected = [0.0] * 5 + [3.0] * 5 + [8.0] * 10 + [13.0] * 10 + [20.0]
    assert series.total.tolist() == pytest.approx(expected)
