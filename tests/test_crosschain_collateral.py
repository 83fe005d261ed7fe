"""Positions on the destination, collateral on the source ([crosschain] positions =
"destination"): a close worked by hand, a censoring relayer and a halted source leaving
positions open, a reorg under a relayer that does not wait, determinism, what the terminal
and the page show, validation, and nothing changed without the setting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sim_runs import four_validators
from test_crosschain import REORG
from test_crosschain import _table as page_table
from test_docs import table_rows, terminal_lines
from test_market import ACCOUNTS, GAP, KEEPER

from msgstorm.analysis.collateral import collateral_table
from msgstorm.analysis.summary_chain import Collateral
from msgstorm.analysis.summary_model import Summary
from msgstorm.history import read_history
from msgstorm.history.reader import read_table
from msgstorm.report.collateral import SOURCE_BAD_DEBT, collateral_rows, market_bad_debt_label
from msgstorm.runner import reanalyse, run
from msgstorm.scenario import ScenarioError, parse_scenario

MS = 1_000_000

# The market of tests/test_market.py's GAP (price 100, a gap to 92 at 0.5 s and to 64.4 at 1 s,
# an oracle publishing every step, a keeper reacting at once, 1 ms blocks, maintenance 10%,
# penalty 5%, no slippage), its liquidations crossing to a chain with 250 ms blocks: the
# relayer waits 400 ms, the proof check takes 100 ms, the destination serves in 2 ms.
ACROSS = """
[crosschain]
kinds = ["liquidation"]
positions = "destination"
proof_check = "100ms"

[[crosschain.relayers]]
name = "r"
delay = "400ms"

[crosschain.destination.sequencer]
service = { dist = "constant", value = "2ms" }

[crosschain.destination.blocks]
interval = "250ms"

[[crosschain.destination.agents]]
name = "locals"
arrival = { process = "constant", rate = "1/s" }
"""


def _gap_across(tmp_path: Path, section: str = ACROSS) -> str:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(ACCOUNTS)
    return GAP.format(accounts=accounts, keepers=KEEPER) + section


def _ceil_to(t: int, step: int) -> int:
    return -(-t // step) * step


def _closed_bad_debt(collateral: float, price: float) -> float:
    """A long of size 1 opened at 100, closed at ``price`` with the 5% penalty (no slippage)."""
    return max(0.0, -(collateral + (price - 100.0) - 0.05 * price))


def test_a_close_that_waits_for_the_relay_worked_by_hand(tmp_path: Path) -> None:
    """Account 2 (collateral 12, line 97.78) is liquidated on the source at 92 in the block of
    0.501 s: on one chain it ends 0.6 short. Across, its liquidation is seen at that commit,
    relayed 400 ms later, arrives 100 ms after that, is served in 2 ms and commits in the
    destination's block of 1.25 s, when the price is 64.4: 12 - 35.6 - 3.22 = -26.82.
    Account 1 (collateral 20) is liquidated at 64.4 at 1.001 s and closes at 1.75 s at
    the same price: 18.82 both ways."""
    result = run(parse_scenario(_gap_across(tmp_path), source="across.toml"), tmp_path / "run")
    rows = collateral_table(read_history(tmp_path / "run"))
    assert rows is not None
    expected = []
    for account, collateral, t_price, price in ((2, 12.0, 500 * MS, 92.0), (1, 20.0, 1000 * MS, 64.4)):
        t_source = t_price + 1 * MS  # the next 1 ms block
        t_dest = _ceil_to(t_source + 400 * MS + 100 * MS + 2 * MS, 250 * MS)
        expected.append({"account": account, "fate": "delivered", "t_source": t_source, "t_dest_commit": t_dest,
                         "one_chain_price": pytest.approx(price), "one_chain_bad_debt": pytest.approx(
                             _closed_bad_debt(collateral, price)),
                         "price": pytest.approx(64.4), "bad_debt": pytest.approx(_closed_bad_debt(collateral, 64.4)),
                         "closed": True})
    assert [{key: value for key, value in row.items() if key != "msg_id"} for row in rows.to_pylist()] == expected
    assert [row["t_dest_commit"] for row in expected] == [1250 * MS, 1750 * MS]
    Summary.model_validate(result.summary)  # the shipped schema's model holds the section
    collateral = result.summary["collateral"]
    assert collateral["positions"] == collateral["closed"] == 2
    assert collateral["open"] == {"censored": 0, "never_final": 0, "undelivered": 0}
    assert collateral["open_accounts"] == []
    assert collateral["wait_ms"] == {"p50": 749.0, "max": 749.0, "mean": 749.0}
    assert collateral["split_ms"] == {"source_finality": {"p50": 1.0, "mean": 1.0},
                                      "relay": {"p50": 400.0, "mean": 400.0},
                                      "proof_check": {"p50": 100.0, "mean": 100.0},
                                      "destination": {"p50": 249.0, "mean": 249.0}}
    assert collateral["bad_debt"] == {"one_chain": pytest.approx(19.42), "across": pytest.approx(45.64),
                                      "extra": pytest.approx(26.22), "open": 0.0}
    # The market section stays what the source executed: the one-chain numbers.
    assert result.summary["market"]["bad_debt"]["absolute"] == pytest.approx(19.42)
    # Re-analysed from the run directory alone, the same section.
    (tmp_path / "run" / "summary.json").unlink()
    assert reanalyse(tmp_path / "run").summary["collateral"] == collateral
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["collateral"] == collateral
    # What the terminal prints and the page shows, read back.
    printed = table_rows(terminal_lines(result.summary))
    shown = {label: text for label, text in printed.items() if label in (
        "liquidations across chains", "close after source p50 / max", "close split (mean)",
        "bad debt across / one chain")}
    assert shown == {
        "liquidations across chains": "2: closed 2 (0 reverted on source), open 0: censored 0, never final 0, "
                                      "undelivered 0",
        "close after source p50 / max": "749 ms / 749 ms",
        "close split (mean)": "source finality 1 ms, relay 400 ms, proof check 100 ms, destination 249 ms",
        "bad debt across / one chain": "45.64 / 19.42 (0 left open)"}
    # The same rows from the typed summary as from summary.json's dictionary read through its
    # type, and the same label.
    typed = result.analysis.result
    assert typed.collateral is not None
    assert collateral_rows(typed.collateral) == collateral_rows(Collateral.model_validate(result.summary["collateral"]))
    assert market_bad_debt_label(typed) == SOURCE_BAD_DEBT
    assert market_bad_debt_label(typed.model_copy(update={"collateral": None})) == "bad debt"
    page_text = (tmp_path / "run" / "report.html").read_text()
    page = page_table(page_text, "collateral-table")
    assert {label: cells[0] for label, cells in page.items()} == shown
    # The market's bad debt is the source's executions at its oracle price (0.6 + 18.82 of an
    # open interest of 400: 4.855%), not the positions': it says so, in the terminal's
    # headline, the page's card and the page's market table; no row calls it "bad debt".
    assert printed["bad debt on the source (oracle price)"] == "19.42 (4.855% of open interest 400), 2 accounts"
    assert "bad debt" not in printed
    assert page_table(page_text, "market-table")["bad debt on the source (oracle price)"] == [
        "19.42 (4.855% of open interest), 2 accounts"]
    assert '<div class="label">bad debt on the source (oracle price)</div><div class="value">19.42</div>' in page_text
    assert '<div class="label">bad debt</div>' not in page_text


def test_without_a_wait_past_the_next_price_the_relay_costs_nothing(tmp_path: Path) -> None:
    """With no relay delay and no proof check, account 2's close commits in the destination's
    block of 0.75 s, before the price moves on from 92: across the relay and on one chain the
    bad debt is the same. The extra of the case worked by hand is the wait's alone."""
    text = _gap_across(tmp_path, ACROSS.replace('delay = "400ms"', 'delay = "0s"').replace(
        'proof_check = "100ms"', 'proof_check = "0s"'))
    result = run(parse_scenario(text, source="nowait.toml"), tmp_path / "run", write_report=False)
    rows = collateral_table(read_history(tmp_path / "run"))
    assert rows is not None
    assert rows.column("t_dest_commit").to_pylist() == [750 * MS, 1250 * MS]
    assert rows.column("price").to_pylist() == pytest.approx([92.0, 64.4])
    assert result.summary["collateral"]["bad_debt"] == {"one_chain": pytest.approx(19.42),
                                                        "across": pytest.approx(19.42), "extra": 0.0, "open": 0.0}


def test_a_censoring_relayer_leaves_every_position_open(tmp_path: Path) -> None:
    """A relayer that refuses every liquidation: both positions stay open on the destination
    and are marked at the horizon's 64.4 with no penalty: 12 - 35.6 and 20 - 35.6 short."""
    text = _gap_across(tmp_path, ACROSS.replace('delay = "400ms"', 'delay = "400ms"\ncensor = 1.0'))
    result = run(parse_scenario(text, source="censor.toml"), tmp_path / "run", write_report=False)
    collateral = result.summary["collateral"]
    assert collateral["positions"] == 2 and collateral["closed"] == 0
    assert collateral["open"] == {"censored": 2, "never_final": 0, "undelivered": 0}
    assert collateral["open_accounts"] == [1, 2]
    assert collateral["wait_ms"] == {"p50": None, "max": None, "mean": None}
    assert collateral["bad_debt"] == {"one_chain": pytest.approx(19.42), "across": pytest.approx(23.6 + 15.6),
                                      "open": pytest.approx(39.2), "extra": pytest.approx(39.2 - 19.42)}
    rows = table_rows(terminal_lines(result.summary))
    assert rows["accounts left open"] == "1, 2"
    assert rows["liquidations across chains"].endswith("open 2: censored 2, never final 0, undelivered 0")


def _halted(tmp_path: Path) -> str:
    """Four validators final by votes (3 of 4); two crash at 2.5 s, so blocks still commit
    (one confirmation) but nothing is final after: the second liquidation, at 4.5 s, is
    executed on the source and never seen final by the relayer."""
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("side,size,entry,collateral\nlong,1,100,12\nlong,1,100,20\n")
    return four_validators("halted", 5) + f"""
[[faults]]
kind = "crash"
at = "2500ms"
node = "eu-west-0"

[[faults]]
kind = "crash"
at = "2500ms"
node = "eu-west-1"

[market]
resolution = "100ms"
maintenance_margin = "10%"
liquidation_penalty = "5%"
slippage_bps = 0.0

[[market.instruments]]
name = "X"
price = 100.0
shocks = [{{ at = "1500ms", fall = "8%" }}, {{ at = "4500ms", fall = "30%" }}]

[market.oracle]
node = "us-east-0"
deviation = "0%"

[[market.accounts]]
file = "{accounts}"

[[market.keepers]]
node = "us-east-0"
reaction = "0s"

[crosschain]
kinds = ["liquidation"]
positions = "destination"

[[crosschain.relayers]]
name = "r"
source_node = "us-east-2"

[crosschain.destination.network]
regions = ["us-east"]
nodes_per_region = 1

[crosschain.destination.blocks]
interval = "200ms"

[[crosschain.destination.agents]]
name = "locals"
arrival = {{ process = "constant", rate = "1/s" }}
"""


def test_a_halted_source_leaves_the_liquidation_after_the_halt_open(tmp_path: Path) -> None:
    result = run(parse_scenario(_halted(tmp_path), source="halted.toml"), tmp_path / "run", write_report=False)
    assert result.summary["finality"]["live"] is False, "finality must halt"
    rows = collateral_table(read_history(tmp_path / "run"))
    assert rows is not None
    by_account = {row["account"]: row for row in rows.to_pylist()}
    assert sorted(by_account) == [0, 1]
    before, after = by_account[0], by_account[1]
    assert before["t_source"] < 2_500 * MS < after["t_source"]
    assert before["fate"] == "delivered" and before["closed"]
    assert after["fate"] == "never_final" and not after["closed"] and after["t_dest_commit"] is None
    # Open, marked at the horizon's 64.4 without a penalty.
    assert after["price"] == pytest.approx(64.4) and after["bad_debt"] == pytest.approx(15.6)
    collateral = result.summary["collateral"]
    assert collateral["open"] == {"censored": 0, "never_final": 1, "undelivered": 0}
    assert collateral["open_accounts"] == [1]
    assert collateral["bad_debt"]["open"] == pytest.approx(15.6)


# tests/test_crosschain.py's REORG (two proof-of-work producers, us-east cut off from 2 s to
# 5 s, its branch reorganised away) with a 20% fall over 1 s from 3 s, 200 accounts and a
# keeper at us-east-1; the relayer watches us-east-1 and relays on inclusion.
REORG_MARKET = """
[market]
resolution = "100ms"
maintenance_margin = "10%"
liquidation_penalty = "5%"
slippage_bps = 0.0

[[market.instruments]]
name = "X"
price = 100.0
shocks = [{ at = "3s", fall = "20%", over = "1s" }]

[market.oracle]
node = "us-east-0"
deviation = "0%"

[[market.accounts]]
count = 200
leverage_median = 5.0
leverage_sigma = 0.5
leverage_cap = 9.0

[[market.keepers]]
node = "us-east-1"
reaction = "0s"

[crosschain]
kinds = ["liquidation"]
positions = "destination"
"""


def test_a_relayer_that_does_not_wait_closes_positions_on_blocks_a_reorg_took_back(tmp_path: Path) -> None:
    """The keeper's liquidations go into us-east's blocks during the cut; the relayer carries
    them at once, and the destination closes the positions there, before the source, whose
    canonical chain left those blocks, executes them again after the cut heals."""
    text = REORG.replace("NAME", "fast").replace("WAIT", "included").replace("[crosschain]\n", REORG_MARKET)
    result = run(parse_scenario(text, source="reorg.toml"), tmp_path / "run", write_report=False)
    rows = collateral_table(read_history(tmp_path / "run"))
    assert rows is not None and rows.num_rows > 0
    reverted = [row for row in rows.to_pylist() if row["fate"] == "reverted_on_source"]
    assert reverted, "the cut must put liquidations into blocks the reorg takes back"
    assert all(row["closed"] and row["t_dest_commit"] < row["t_source"] for row in reverted), \
        "closed on the destination before the source's canonical chain executed them"
    collateral = result.summary["collateral"]
    assert collateral["closed_reverted_on_source"] == len(reverted)
    assert collateral["closed"] == rows.num_rows  # nothing refused, all relayed
    assert collateral["wait_ms"]["p50"] < 0  # the close came first


def test_same_seed_same_collateral(tmp_path: Path) -> None:
    text = _gap_across(tmp_path, ACROSS.replace('delay = "400ms"', 'delay = "400ms"\ncensor = 0.5'))
    scenario = parse_scenario(text, source="again.toml")
    for name in ("a", "b"):
        run(scenario, tmp_path / name, write_report=False)
    a, b = (collateral_table(read_history(tmp_path / name)) for name in ("a", "b"))
    assert a is not None and b is not None and a.equals(b)
    summaries = [json.loads((tmp_path / name / "summary.json").read_text())["collateral"] for name in ("a", "b")]
    assert summaries[0] == summaries[1]


def test_the_setting_changes_nothing_on_the_source(tmp_path: Path) -> None:
    """With and without the setting the source runs the same; only the summary differs, by
    its ``collateral`` section."""
    with_it = parse_scenario(_gap_across(tmp_path), source="with.toml")
    without = parse_scenario(_gap_across(tmp_path, ACROSS.replace('positions = "destination"\n', "")),
                             source="without.toml")
    assert "positions" not in without.model_dump(mode="json", by_alias=True)["crosschain"]
    assert with_it.model_dump(mode="json", by_alias=True)["crosschain"]["positions"] == "destination"
    summaries: dict[str, dict[str, Any]] = {}
    for name, scenario in (("with", with_it), ("without", without)):
        summaries[name] = run(scenario, tmp_path / name, write_report=False).summary
    for table in ("messages", "executions", "triggers"):
        assert read_table(tmp_path / "with" / "history", table).equals(
            read_table(tmp_path / "without" / "history", table)), table
    assert "collateral" not in summaries["without"]
    assert summaries["with"]["market"] == summaries["without"]["market"]
    assert summaries["with"]["crosschain"] == summaries["without"]["crosschain"]
    assert collateral_table(read_history(tmp_path / "without")) is None
    assert pq.read_table(tmp_path / "with" / "destination" / "relays" / "r-0.liquidation.parquet").num_rows == 2


@pytest.mark.parametrize(("change", "field", "says"), [
    (("[market]", "[market]"), "crosschain.positions", "need a [market] with keepers"),
    (('kinds = ["liquidation"]', 'kinds = ["order"]'), "crosschain.positions", 'add "liquidation" to crosschain.kinds'),
    (('kinds = ["liquidation"]', 'kinds = ["liquidation"]\nagents = ["traders"]'), "crosschain.agents",
     "the keepers ['keepers'] close positions on the destination"),
])
def test_mistakes_are_located(tmp_path: Path, change: tuple[str, str], field: str, says: str) -> None:
    text = _gap_across(tmp_path).replace(*change)
    if change[0] == "[market]":  # no market: the source's tables before it, then the section
        text = text[:text.index("[market]")] + ACROSS
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="bad.toml")
    issues = [(issue.field, issue.message, issue.line) for issue in caught.value.issues]
    assert any(f == field and says in message and line is not None for f, message, line in issues), issues
