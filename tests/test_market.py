"""The market: prices, the oracle, accounts, keepers and liquidations as messages, bad debt.

Hand-computed cases on a network without delay, the closed form of bad debt under geometric
Brownian motion, the accounting identity, more latency costing more, determinism, and the
scenario's errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from msgstorm import analyse, read_history, run
from msgstorm.cli import app
from msgstorm.errors import ExitCode
from msgstorm.scenario import ScenarioError, load_scenario, parse_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

GAP = """
[run]
name = "gap"
seed = 3
duration = "2s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = {{ dist = "constant", value = "0s" }}

[sequencer]
service = {{ dist = "constant", value = "1us" }}

[blocks]
interval = "1ms"

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "10/s" }}

[market]
resolution = "100ms"
maintenance_margin = "10%"
liquidation_penalty = "5%"
slippage_bps = 0.0

[[market.instruments]]
name = "X"
price = 100.0
shocks = [{{ at = "500ms", fall = "8%" }}, {{ at = "1s", fall = "30%" }}]

[market.oracle]
deviation = "0%"

[[market.accounts]]
file = "{accounts}"
{keepers}
"""

ACCOUNTS = "side,size,entry,collateral\nlong,1,100,50\nlong,1,100,20\nlong,1,100,12\nshort,1,100,20\n"
KEEPER = '[[market.keepers]]\nreaction = "0s"\n'


def _table(run_dir: Path, name: str) -> list[dict[str, Any]]:
    directory = run_dir / "history" / name
    if not directory.is_dir():
        return []
    return [row for part in sorted(directory.glob("part-*.parquet")) for row in pq.read_table(part).to_pylist()]


def _gap_run(tmp_path: Path, keepers: str = KEEPER):  # type: ignore[no-untyped-def]
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(ACCOUNTS)
    scenario = parse_scenario(GAP.format(accounts=accounts, keepers=keepers), source="gap.toml")
    return run(scenario, tmp_path / "run")


def test_without_delay_each_liquidation_executes_at_the_first_price_past_its_line(tmp_path: Path) -> None:
    """Price 100, then a gap to 92 at 0.5 s and to 64.4 at 1 s; an oracle reporting every
    step, a keeper on the same node reacting at once, 1 ms blocks. By hand (maintenance 10%,
    penalty 5%, no slippage; equity = collateral + size x (p - entry)):

    - collateral 12: line 88/0.9 = 97.78, crossed at 92: equity 4, penalty 4.6 -> bad debt 0.6
      (the 8% gap is wider than the 10% margin can cover with the penalty);
    - collateral 20: line 88.89, crossed at 64.4: equity -15.6, penalty 3.22 -> bad debt 18.82;
    - collateral 50: line 55.56, never crossed; marked at 64.4: equity 14.4, no bad debt;
    - the short: line 109.09, never crossed.
    """
    result = _gap_run(tmp_path)
    executions = {row["account"]: row for row in _table(result.run_dir, "executions")}
    assert sorted(executions) == [1, 2]
    assert executions[2]["outcome"] == executions[1]["outcome"] == "executed"
    assert executions[2]["price"] == pytest.approx(92.0) and executions[2]["t_price"] == 500_000_000
    assert executions[1]["price"] == pytest.approx(64.4) and executions[1]["t_price"] == 1_000_000_000
    assert executions[2]["bad_debt"] == pytest.approx(0.6) and executions[1]["bad_debt"] == pytest.approx(18.82)
    market = result.summary["market"]
    assert market["bad_debt"] == {"absolute": pytest.approx(19.42), "pct_of_open_interest": pytest.approx(4.855),
                                  "accounts": 2}
    assert market["liquidations"] == {"eligible": 2, "triggered": 2, "executed": 2, "late": 1, "no_op": 0,
                                      "not_attempted": 0, "messages": 2}
    # The price reached the keeper as it was published; the liquidation committed in the next
    # block: the whole delay is the messaging layer's 1 ms.
    assert market["liquidation_delay_ms"]["max"] == pytest.approx(1.0)
    assert market["liquidation_delay_ms"]["split"] == {"oracle": 0.0, "keeper": 0.0, "messaging": 1.0}
    # The report re-reads the history and finds the same numbers.
    assert analyse(read_history(result.run_dir)).summary["market"] == market


def test_a_gap_smaller_than_the_margin_leaves_no_bad_debt(tmp_path: Path) -> None:
    """A 3% fall takes the 12-collateral long past its line (97.78) to 97: equity 9, penalty
    4.85, it keeps 4.15 and nothing is owed."""
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(ACCOUNTS)
    text = GAP.format(accounts=accounts, keepers=KEEPER).replace(
        'shocks = [{ at = "500ms", fall = "8%" }, { at = "1s", fall = "30%" }]', 'shocks = [{ at = "500ms", fall = "3%" }]')
    result = run(parse_scenario(text, source="gap.toml"), tmp_path / "run")
    (execution,) = _table(result.run_dir, "executions")
    assert execution["account"] == 2 and execution["price"] == pytest.approx(97.0)
    assert execution["collateral_after"] == pytest.approx(4.15) and execution["bad_debt"] == 0.0
    assert result.summary["market"]["bad_debt"]["absolute"] == 0.0


def test_without_keepers_nothing_is_liquidated_and_the_run_shows_what_that_costs(tmp_path: Path) -> None:
    """No keeper: the accounts past their line are marked to market at the end (64.4): the
    12-collateral long owes 23.6, the 20-collateral long 15.6."""
    result = _gap_run(tmp_path, keepers="")
    market = result.summary["market"]
    assert _table(result.run_dir, "executions") == [] and _table(result.run_dir, "triggers") == []
    assert market["liquidations"]["executed"] == 0 and market["liquidations"]["not_attempted"] == 2
    assert market["bad_debt"]["absolute"] == pytest.approx(23.6 + 15.6) and market["bad_debt"]["accounts"] == 2


@pytest.mark.slow
def test_every_account_balances_and_bad_debt_is_the_negative_part(tmp_path: Path) -> None:
    """black-thursday-fee-aware, shortened: per executed account, what it keeps = collateral +
    realised PnL - penalty - slippage, the PnL and penalty follow from the on-chain price,
    the bad debt is exactly the negative part, and the summary's total is their sum plus the
    accounts marked to market at the horizon."""
    scenario = load_scenario(str(EXAMPLES / "black-thursday-fee-aware.toml"),
                             ['run.duration="20s"', "market.accounts.0.count=2000", 'run.drain="2s"'])
    result = run(scenario, tmp_path / "run")
    accounts = {row["account"]: row for row in _table(result.run_dir, "accounts")}
    executions = [row for row in _table(result.run_dir, "executions") if row["outcome"] == "executed"]
    assert len(executions) > 100
    penalty_rate = 0.05
    for row in executions:
        account = accounts[row["account"]]
        pnl = account["side"] * account["size"] * (row["price"] - account["entry"])
        assert row["pnl"] == pytest.approx(pnl, rel=1e-12, abs=1e-9)
        assert row["penalty"] == pytest.approx(penalty_rate * account["size"] * row["price"], rel=1e-12)
        kept = account["collateral"] + row["pnl"] - row["penalty"] - row["slippage"]
        assert row["collateral_after"] == pytest.approx(kept, rel=1e-12, abs=1e-9)
        assert row["bad_debt"] == max(0.0, -row["collateral_after"])
    executed = {row["account"] for row in executions}
    assert len(executed) == len(executions), "an account is executed at most once"
    # The rest are marked at the true price at the horizon (run.duration = 20 s), whenever
    # the run settled.
    prices = _table(result.run_dir, "prices")
    last = max((row for row in prices if row["t"] <= 20_000_000_000), key=lambda row: row["t"])
    marked = sum(max(0.0, -(a["collateral"] + a["side"] * a["size"] * (last["price"] - a["entry"])))
                 for account_id, a in accounts.items() if account_id not in executed)
    total = sum(row["bad_debt"] for row in executions) + marked
    assert result.summary["market"]["bad_debt"]["absolute"] == pytest.approx(total, rel=1e-9)


GBM = """
[run]
name = "gbm"
seed = 11
duration = "30s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = {{ dist = "constant", value = "0s" }}

[sequencer]
service = {{ dist = "constant", value = "1us" }}

[blocks]
interval = "1ms"

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "1/s" }}

[market]
resolution = "500ms"
maintenance_margin = "2%"
liquidation_penalty = "1%"
slippage_bps = 0.0

[market.oracle]
deviation = "0%"

[[market.keepers]]
reaction = "2s"
{instruments}
"""


@pytest.mark.parametrize(("volatility", "per_minute"), [("5%/min", 0.05), ("10%/min", 0.10)])
def test_bad_debt_after_a_fixed_delay_matches_the_normal_formula(tmp_path: Path, volatility: str,
                                                                  per_minute: float) -> None:
    """A run of the engine: instruments under geometric Brownian motion, one long each
    (leverage 20: the line 3.1% under the entry), an oracle publishing every step, a keeper
    on the same node reacting a fixed d = 2 s (four steps) after the price crossing the line
    reaches it, 1 ms blocks: no congestion. With P_c the price the keeper saw and X the
    log-return over d ~ normal((mu - s^2/2) d, s^2 d), the liquidation leaves bad debt when
    P_c e^X < (size x entry - collateral) / (size x (1 - penalty)) =: B (no slippage), so
    P(bad debt) = Phi((ln(B / P_c) - (mu - s^2/2) d) / (s sqrt d)). The instruments are
    independent: the count of first liquidations that left bad debt must match the sum of
    these probabilities within 4 standard deviations."""
    instruments = 600
    accounts = tmp_path / "one-long.csv"
    accounts.write_text("side,size,entry,collateral\nlong,20,100,100\n")
    text = GBM.format(instruments="".join(
        f'\n[[market.instruments]]\nname = "i{i}"\nprice = 100.0\ndrift = "10%/y"\nvolatility = "{volatility}"\n'
        f'\n[[market.accounts]]\nfile = "{accounts}"\ninstrument = "i{i}"\n' for i in range(instruments)))
    result = run(parse_scenario(text, source="gbm.toml"), tmp_path / "run")
    d_ns, horizon_ns = 2_000_000_000, 30_000_000_000
    sigma = per_minute / math.sqrt(60)  # per sqrt(second)
    mu = 0.10 / (365 * 86400)
    d = d_ns / 1e9
    threshold = (20 * 100.0 - 100.0) / (20 * (1 - 0.01))
    t_seen = {row["msg_id"]: row["t_price"] for row in _table(result.run_dir, "oracle")}
    executions = {row["msg_id"]: row for row in _table(result.run_dir, "executions")}
    first: dict[Any, dict[str, Any]] = {}  # each account's first trigger (a no-op may bring more)
    for trigger in sorted(_table(result.run_dir, "triggers"), key=lambda row: row["t"]):
        first.setdefault(trigger["account"], trigger)
    expected = variance = 0.0
    observed = judged = 0
    for trigger in first.values():
        crossed_ns = t_seen[trigger["price_msg_id"]]
        if crossed_ns + d_ns >= horizon_ns:
            continue  # executed past the price path's end
        execution = executions[trigger["msg_id"]]
        assert execution["t_price"] == crossed_ns + d_ns, "the delay is d exactly"
        judged += 1
        observed += execution["bad_debt"] != 0.0
        z = (math.log(threshold / trigger["price_seen"]) - (mu - sigma**2 / 2) * d) / (sigma * math.sqrt(d))
        p = 0.5 * math.erfc(-z / math.sqrt(2))
        expected += p
        variance += p * (1 - p)
    assert judged > 150 and observed > 30, (judged, observed)
    assert abs(observed - expected) <= 4 * math.sqrt(variance) + 1, (observed, expected, variance, judged)


def _latency_run(tmp_path: Path, seed: int, latency: str) -> float:
    scenario = load_scenario(str(EXAMPLES / "black-thursday-fee-aware.toml"), [
        f"run.seed={seed}", 'run.duration="25s"', 'run.drain="3s"', "market.accounts.0.count=1500",
        'agents.1.arrival={process="poisson", rate="500/s"}', 'market.keepers.0.region="ap-northeast"',
        f'network.latency={{"us-east/ap-northeast" = "{latency}", "eu-west/ap-northeast" = "{latency}", '
        f'"us-east/eu-west" = "40ms"}}'])
    result = run(scenario, tmp_path / f"{seed}-{latency}")
    return float(result.summary["market"]["bad_debt"]["absolute"])


@pytest.mark.slow
def test_more_latency_never_lowers_mean_bad_debt_on_the_same_seeds(tmp_path: Path) -> None:
    """The same seeds, so the same price paths and accounts; only the way from the oracle to
    the keepers (in ap-northeast) and back is longer."""
    seeds = (1, 2, 3)
    near = [_latency_run(tmp_path, seed, "20ms") for seed in seeds]
    far = [_latency_run(tmp_path, seed, "800ms") for seed in seeds]
    assert sum(far) / len(far) >= sum(near) / len(near), (near, far)
    assert sum(far) > sum(near), (near, far)  # and here it costs something


@pytest.mark.slow
def test_the_same_seed_gives_the_same_market_history(tmp_path: Path) -> None:
    scenario = load_scenario(str(EXAMPLES / "black-thursday.toml"),
                             ['run.duration="15s"', "market.accounts.0.count=1000", 'run.drain="2s"'])
    first, second = run(scenario, tmp_path / "a"), run(scenario, tmp_path / "b")
    for table in ("prices", "oracle", "accounts", "triggers", "executions"):
        assert _table(first.run_dir, table) == _table(second.run_dir, table), table
    assert first.history.messages.equals(second.history.messages)
    assert first.summary["market"] == second.summary["market"]


@pytest.mark.slow
def test_fee_aware_keepers_cut_black_thursdays_bad_debt_by_nine_tenths(example_run: Any) -> None:
    fixed, aware = example_run("black-thursday"), example_run("black-thursday-fee-aware")
    fixed_debt = fixed.summary["market"]["bad_debt"]["absolute"]
    aware_debt = aware.summary["market"]["bad_debt"]["absolute"]
    assert fixed_debt > 0 and aware_debt <= 0.1 * fixed_debt, (fixed_debt, aware_debt)
    assert aware.summary["market"]["liquidations"]["executed"] > fixed.summary["market"]["liquidations"]["executed"]


def test_a_run_without_a_market_has_none(tmp_path: Path) -> None:
    result = run(load_scenario(str(EXAMPLES / "quickstart.toml"), ['run.duration="2s"']), tmp_path / "run")
    assert result.summary["market"] is None
    assert not any((result.run_dir / "history" / name).exists()
                   for name in ("prices", "oracle", "accounts", "triggers", "executions"))


@pytest.mark.parametrize(("override", "expected"), [
    ('market.keepers.0.node="us-est-0"', "market.keepers[0].node: unknown node 'us-est-0' (did you mean 'us-east-0'?)"),
    ('market.instruments.0.volatility="80%"', "market.instruments[0].volatility: expected a number with its time unit"),
    ('market.instruments.0.shocks=[{at="1s", fall="100%"}]', "'fall' must be below 100%"),
    ('market.accounts.0.instrument="BTC"', "unknown instrument 'BTC'"),
    ("market.accounts.0.count=30000000", "market.accounts[0].count: accounts: about 30,000,000, over limits.max_accounts"),
    ('market.resolution="100ns"', "market.resolution: price steps: about 800,000,001, over limits.max_price_steps"),
])
def test_bad_market_input_names_the_field(override: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as error:
        load_scenario(str(EXAMPLES / "black-thursday.toml"), [override])
    assert expected in str(error.value), str(error.value)


def test_a_market_on_a_live_target_is_refused_at_validation() -> None:
    result = CliRunner().invoke(app, ["validate", str(EXAMPLES / "black-thursday.toml"), "--target", "nats"])
    assert result.exit_code == 2, result.output
    assert "market: market agents run on the simulator and on a chain node only" in result.output.replace("\n", " "), result.output


def test_the_example_prints_what_delay_cost(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(EXAMPLES / "black-thursday-fee-aware.toml"), "--out",
                                      str(tmp_path / "run"), "--set", 'run.duration="15s"',
                                      "--set", "market.accounts.0.count=1000"])
    assert result.exit_code in (0, 1), result.output
    for label in ("liquidations", "liquidation delay p50 / p99 / max", "delay split (mean)", "bad debt",
                  "price staleness"):
        assert label in result.output, label
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["market"]["liquidations"]["executed"] > 0


def test_the_report_shows_what_delay_cost(tmp_path: Path) -> None:
    """report.html: the market's numbers, the true and on-chain prices, bad debt over time and
    the delay's distribution with its split; a run without a market has no such section."""
    result = _gap_run(tmp_path)
    html = (result.run_dir / "report.html").read_text()
    assert 'id="market-table"' in html and "What delay cost" in html
    for slug in ("market-prices", "market-bad-debt", "market-delay"):
        assert f'id="plot-{slug}"' in html, slug
    plain = run(load_scenario(str(EXAMPLES / "quickstart.toml"), ['run.duration="1s"']), tmp_path / "plain")
    assert "What delay cost" not in (plain.run_dir / "report.html").read_text()


@pytest.mark.slow
def test_liquidations_starve_behind_a_fifo_flood_and_survive_priority_shedding(tmp_path: Path,
                                                                                 example_run: Any) -> None:
    """solana-spam: 400,000 spam messages/s for 2 s against 4,000/s. FIFO: the queue holds
    hundreds of thousands, the nodes desynchronise, most liquidations never execute and
    those that do are late. Priority shedding (spam first, liquidations and prices
    protected): the queue stays bounded and every liquidation triggered executes, with less
    bad debt."""
    example = str(EXAMPLES / "solana-spam.toml")
    fifo = example_run("solana-spam").summary  # the tour's run of it (tests/test_docs.py)
    shed = run(load_scenario(example, ['backpressure={mode="shed", capacity=8000, levels={spam="10%"}, '
                                       'protect=["liquidation", "price"]}']), tmp_path / "shed").summary
    assert fifo["queue"]["max_depth"] > 100_000 and fifo["desync"]["episodes"] >= 1
    starving, surviving = fifo["market"]["liquidations"], shed["market"]["liquidations"]
    assert starving["executed"] < 0.2 * starving["triggered"] and starving["late"] == starving["executed"]
    assert shed["queue"]["max_depth"] <= 8000 and shed["messages"]["dropped"] > 0
    assert surviving["executed"] == surviving["triggered"] == surviving["eligible"]
    assert shed["market"]["bad_debt"]["absolute"] < 0.5 * fifo["market"]["bad_debt"]["absolute"]


def test_traders_who_top_up_in_time_are_not_liquidated(tmp_path: Path) -> None:
    """Every account tops up (at once, to leverage 1 at the on-chain price) when a price
    comes within 10% of its line. By hand: the 12-collateral long (line 97.78) tops up at the
    first price, 100, by 88; the 20-collateral long (line 88.89) at 92 by 80 (equity 12 ->
    92); the short (line 109.09) at 100 by 80. Their new lines are out of the crash's reach:
    no liquidation, no bad debt; the 50-collateral long never came near."""
    topups = KEEPER + '[market.topups]\nprobability = "100%"\nnear = "10%"\nreaction = "0s"\nto_leverage = 1.0\n'
    result = _gap_run(tmp_path, keepers=topups)
    rows = {row["account"]: row for row in _table(result.run_dir, "topups")}
    assert sorted(rows) == [1, 2, 3]
    assert rows[2]["amount"] == pytest.approx(88.0) and rows[1]["amount"] == pytest.approx(80.0)
    assert rows[3]["amount"] == pytest.approx(80.0)
    assert rows[2]["liquidation_price"] == pytest.approx(0.0) and rows[3]["liquidation_price"] == pytest.approx(200 / 1.1)
    assert [row for row in _table(result.run_dir, "executions") if row["outcome"] == "executed"] == []
    market = result.summary["market"]
    assert market["bad_debt"]["absolute"] == 0.0 and market["liquidations"]["eligible"] == 0
    messages = result.history.messages
    agents = messages.column("agent").to_pylist()
    assert agents.count("traders-topping-up") == 3
    assert analyse(read_history(result.run_dir)).summary["market"] == market


def test_an_accounts_file_is_parsed_once_for_runs_of_the_same_file_and_again_once_rewritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's worker runs the same accounts file seed after seed: parsed once, shared
    read-only, the same accounts in every run; a file written again is parsed again."""
    from msgstorm.market import accounts as accounts_module
    from msgstorm.scenario import replay

    reads: list[str] = []
    read_csv = replay.pa_csv.read_csv
    monkeypatch.setattr(replay.pa_csv, "read_csv", lambda path, **options: reads.append(path) or read_csv(
        path, **options))
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(ACCOUNTS)
    tables = []
    for seed in (3, 4):
        scenario = parse_scenario(GAP.format(accounts=accounts, keepers=KEEPER), source="gap.toml",
                                  overrides=[f"run.seed={seed}"])
        tables.append(_table(run(scenario, tmp_path / f"run{seed}").run_dir, "accounts"))
    assert reads == [str(accounts)] * 4  # side, size, entry, collateral: each read once for both runs
    assert tables[0] == tables[1] and [row["collateral"] for row in tables[0]] == [50.0, 20.0, 12.0, 20.0]
    side = accounts_module._loaded(str(accounts))[0]
    assert not side.flags.writeable
    accounts.write_text(ACCOUNTS.replace("long,1,100,50", "long,1,100,40"))
    assert accounts_module._loaded(str(accounts))[3].tolist() == [40.0, 20.0, 12.0, 20.0]
    assert len(reads) == 8


def test_an_accounts_file_row_opened_past_its_line_is_refused_naming_it(tmp_path: Path) -> None:
    """Maintenance 10%: collateral 10 on a notional of 100 is leverage 10 = 1 / maintenance,
    an account on its line from the start; the run is refused before it starts, naming the row."""
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(ACCOUNTS + "long,1,100,10\n")
    scenario = parse_scenario(GAP.format(accounts=accounts, keepers=KEEPER), source="gap.toml")
    with pytest.raises(ValueError, match=r"accounts\.csv: row 6: leverage 10 .* at or above 1 / maintenance_margin = 10"):
        run(scenario, tmp_path / "run")


def test_msgstorm_run_says_which_accounts_row_is_past_its_line_and_exits_2(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(ACCOUNTS + "long,1,100,5\n")
    scenario = tmp_path / "gap.toml"
    scenario.write_text(GAP.format(accounts=accounts, keepers=KEEPER))
    result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "row 6: leverage 20" in result.output and "Traceback" not in result.output


def test_a_leverage_floor_raises_the_accounts_drawn_below_it_and_leaves_the_others(tmp_path: Path) -> None:
    """black-thursday-2020's vaults: lognormal leverage, median 1.8, sigma 0.25, at most 2.9.
    Without a floor 33 of 3,000 are drawn below 1, positions smaller than their collateral
    (no debt: no vault). With ``leverage_floor = 1.05`` those and the others below 1.05 are
    drawn at 1.05; every other account is the same account, size and collateral alike."""
    example = (EXAMPLES / "black-thursday-2020.toml").read_text()
    assert "\nleverage_floor = 1.05 " in example
    without = tmp_path / "black-thursday-2020.toml"  # beside its data, as the example names it
    without.write_text(re.sub(r"\nleverage_floor = 1.05 [^\n]*", "", example).replace('"data/', f'"{EXAMPLES}/data/'))

    def book(path: Path) -> dict[str, np.ndarray]:
        result = run(load_scenario(path, ['run.duration="10min"', 'run.drain="0s"']), tmp_path / path.parent.name,
                     write_report=False)
        accounts = pq.read_table(result.run_dir / "history" / "accounts").to_pydict()
        return {name: np.asarray(accounts[name], dtype=np.float64) for name in ("size", "entry", "collateral")}

    free, floored = book(without), book(EXAMPLES / "black-thursday-2020.toml")
    leverage = {name: drawn["size"] * drawn["entry"] / drawn["collateral"] for name, drawn in
                (("free", free), ("floored", floored))}
    assert int((leverage["free"] < 1).sum()) == 33 and leverage["floored"].min() == pytest.approx(1.05)
    below = leverage["free"] < 1.05
    assert np.allclose(leverage["floored"][below], 1.05)
    assert np.array_equal(free["size"][~below], floored["size"][~below])
    assert np.array_equal(free["collateral"], floored["collateral"])
