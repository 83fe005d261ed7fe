"""The sequencer uptime guard (market/sentinel.py): paused liquidations, the bound, the price after."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from msgstorm.history.reader import read_history
from msgstorm.market.sentinel import Sentinel, health_factor
from msgstorm.scenario.schema import Scenario

S = 1_000_000_000

_MARKET = """
[run]
name = "sentinel"
seed = 3
duration = "20s"
drain = "3s"
[network]
nodes_per_region = 1
processing = "50us"
[sequencer]
service = "100us"
[blocks]
interval = "250ms"
[[agents]]
name = "traders"
role = "trader"
arrival = { process = "constant", rate = "20/s" }
[[faults]]
kind = "sequencer_outage"
at = "6s"
duration = "4s"
[market]
resolution = "100ms"
maintenance_margin = "10%"
[[market.instruments]]
name = "ETH"
price = 100.0
volatility = "1%/y"
shocks = [{ at = "5s", fall = "20%", over = "10s" }]
[market.oracle]
heartbeat = "1h"
deviation = "0.5%"
[[market.accounts]]
count = 400
leverage_median = 5.0
leverage_sigma = 0.3
leverage_cap = 9.0
collateral = { dist = "lognormal", median = 10_000.0, sigma = 0.5 }
long_share = "100%"
[[market.keepers]]
name = "keepers"
count = 2
reaction = "100ms"
"""

_GUARD = '[market.sentinel]\ngrace = "5s"\nhealth_factor_bound = 0.95\n'


def test_the_health_factor_is_one_at_the_line_and_zero_at_bankruptcy() -> None:
    assert health_factor(90.0, 80.0, 90.0) == 1.0
    assert health_factor(90.0, 80.0, 80.0) == 0.0
    assert health_factor(90.0, 80.0, 89.5) == pytest.approx(0.95)
    assert health_factor(110.0, 120.0, 110.5) == pytest.approx(0.95)  # a short: both sides


def test_the_pause_covers_the_outage_and_the_grace_and_the_bound_lets_the_deep_ones_through() -> None:
    guard = Sentinel([(6 * S, 10 * S)], 5 * S, 0.95)
    assert guard.blocked_until(6 * S - 1, 0.99) is None
    assert guard.blocked_until(6 * S, 0.99) == 15 * S
    assert guard.blocked_until(15 * S - 1, 0.95) == 15 * S  # at the bound: not below it
    assert guard.blocked_until(15 * S - 1, 0.9499) is None
    assert guard.blocked_until(15 * S, 0.99) is None
    assert Sentinel([(6 * S, 10 * S)], 5 * S, None).blocked_until(7 * S, 0.0) == 15 * S  # no bound: no one


def test_no_liquidation_executes_in_the_pause_unless_below_the_bound_and_the_rest_execute_after_it(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    result = run_scenario(scenario_from(_MARKET + _GUARD))
    history = read_history(result.run_dir)  # type: ignore[attr-defined]
    accounts = {row["account"]: row for row in history.table("accounts").to_pylist()}
    rows = history.table("executions").to_pylist()

    def health(row: dict[str, object]) -> float:
        account = accounts[row["account"]]  # type: ignore[index]
        return health_factor(account["liquidation_price"], account["bankruptcy_price"], row["price"])  # type: ignore[arg-type]

    blocked = [row for row in rows if row["outcome"] == "blocked"]
    executed = [row for row in rows if row["outcome"] == "executed"]
    in_pause = [row for row in executed if 6 * S <= row["t"] < 15 * S]
    assert blocked and in_pause, "the run must pause some liquidations and let some through"
    assert all(6 * S <= row["t"] < 15 * S and health(row) >= 0.95 for row in blocked)
    assert all(health(row) < 0.95 for row in in_pause)  # let through: below the bound
    # Each blocked one is called again the moment the pause lifts, at the on-chain price then.
    again = {row["msg_id"]: row for row in rows if row["t"] == 15 * S and row["outcome"] != "blocked"}
    assert set(again) == {row["msg_id"] for row in blocked}
    oracle = {row["msg_id"]: row["price"] for row in history.table("oracle").to_pylist()}
    committed = sorted((m["t_committed"], m["seq_no"], oracle[m["msg_id"]])
                       for m in history.table("messages").to_pylist()
                       if m["msg_id"] in oracle and m["status"] == "committed" and m["t_committed"] <= 15 * S)
    on_chain = committed[-1][2]
    assert {row["price"] for row in again.values()} == {on_chain}
    summary = result.analysis.summary  # type: ignore[attr-defined]
    assert summary["sentinel"]["blocked"] == len(blocked)
    assert summary["sentinel"]["let_through"] == len(in_pause)
    assert summary["sentinel"]["after_pause"] == sum(1 for row in again.values() if row["outcome"] == "executed")


def test_a_blocked_liquidation_executes_in_the_first_block_at_the_grace_end_even_an_empty_one(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    # The same market with the fall over 5 s to 10 s and a trader a second: down 6 s to 10 s,
    # grace 5 s, so the pause ends at 15 s, an L2 block boundary (250 ms blocks). Nothing is
    # sent in (14.75, 15] s: the trader's message of 15 s is sequenced after 15 s, and no price
    # moves after the fall. The block at 15 s is empty; the blocked liquidations execute in
    # it, at 15 s, not in the next block (15.25 s).
    quiet = (_MARKET.replace('rate = "20/s"', 'rate = "1/s"')
             .replace('shocks = [{ at = "5s", fall = "20%", over = "10s" }]',
                      'shocks = [{ at = "5s", fall = "20%", over = "5s" }]'))
    result = run_scenario(scenario_from(quiet + '[market.sentinel]\ngrace = "5s"\n'))
    history = read_history(result.run_dir)  # type: ignore[attr-defined]
    messages = history.table("messages").to_pylist()
    assert not [m for m in messages if m["t_committed"] == 15 * S], "the block at 15 s must be empty"
    events = history.table("events").to_pylist()
    assert [e for e in events if e["kind"] == "block_committed" and e["t"] == 15 * S]
    rows = history.table("executions").to_pylist()
    blocked = {row["msg_id"] for row in rows if row["outcome"] == "blocked"}
    after = [row for row in rows if row["msg_id"] in blocked and row["outcome"] != "blocked"]
    assert blocked and {row["msg_id"] for row in after} == blocked
    assert {row["t"] for row in after} == {15 * S}


def test_without_the_guard_nothing_is_blocked(scenario_from: Callable[..., Scenario],
                                               run_scenario: Callable[..., object]) -> None:
    result = run_scenario(scenario_from(_MARKET))
    rows = read_history(result.run_dir).table("executions").to_pylist()  # type: ignore[attr-defined]
    assert rows and not [row for row in rows if row["outcome"] == "blocked"]
    assert "sentinel" not in result.analysis.summary  # type: ignore[attr-defined]


def test_a_guard_on_a_live_target_is_refused(scenario_from: Callable[..., Scenario]) -> None:
    from msgstorm.scenario.errors import ScenarioError

    text = _MARKET.replace('[run]', 'target = "anvil"\n[run]', 1).replace(
        '[[faults]]\nkind = "sequencer_outage"\nat = "6s"\nduration = "4s"\n', '')
    with pytest.raises(ScenarioError, match=r"\[market.sentinel\] runs on target 'sim' only: target 'anvil' cannot run it"):
        scenario_from(text + _GUARD)
