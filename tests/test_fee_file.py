"""The fee market from a file (``[backpressure] base_fee_file``, ``scenario/fee_file.py``): the
base fee follows the file block by block, messages priced below it wait, and a bad file is
an error naming the file, the line and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from msgstorm import read_history, run
from msgstorm.errors import DataFileError
from msgstorm.scenario import load_scenario
from msgstorm.scenario.fee_file import read_fee_series

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
S = 1_000_000_000


def test_the_series_is_the_last_row_at_or_before(tmp_path: Path) -> None:
    path = tmp_path / "gas.csv"
    path.write_text("t,base_fee\n100,10\n101.5,200\n104,20.5\n")
    series = read_fee_series(str(path))
    assert series.times.tolist() == [0, 1_500_000_000, 4 * S]  # from the first row's time
    assert [series.at(t) for t in (0, 1_499_999_999, 1_500_000_000, 3 * S, 4 * S, 60 * S)] == [
        10.0, 10.0, 200.0, 200.0, 20.5, 20.5]


@pytest.mark.parametrize(("text", "expected"), [
    ("t,base_fee\n0,1\n1,-3\n", "line 3, field base_fee: -3 is not a number above 0"),
    ("t,base_fee\n0,1\n2,4\n1,5\n", "line 4, field t: 1 is before the line above's 2 (rows in time order)"),
    ("t,gwei\n0,1\n", "has no column 'base_fee'; columns are ['t', 'gwei']"),
    ("t,base_fee\n0,1\n1,\n", "line 3, field base_fee: None is not a number above 0"),
])
def test_a_bad_file_names_the_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "gas.csv"
    path.write_text(text)
    with pytest.raises(DataFileError) as error:
        read_fee_series(str(path))
    assert f"base fee file {path}" in str(error.value) and expected in str(error.value), str(error.value)


def test_the_base_fee_follows_the_file_and_stuck_liquidations_wait(tmp_path: Path) -> None:
    """The base fee is 1 until 2 s, 50 from 2 s to 6 s, then 1 again; the oracle pays 100,
    the keeper a fixed 5 (gas settings not raised). Each block's base fee is the file's at
    its time; the crash's liquidations, reaching the sequencer after 2 s, wait there while
    the base fee is 50 and are taken the moment the block at 6 s lowers it."""
    gas = tmp_path / "gas.csv"
    gas.write_text("t,base_fee\n0,1\n2,50\n6,1\n")
    overrides = [f'backpressure={{mode="eip1559", base_fee_file="{gas}"}}', "market.oracle.fee=100",
                 "market.keepers.0.fee=5", 'market.instruments.0.shocks=[{at="2s", fall="20%", over="2s"}]']
    result = run(load_scenario(str(EXAMPLES / "leverage-latency.toml"), overrides), tmp_path / "run")
    history = read_history(result.run_dir)
    events = history.events.to_pylist()
    fees = [(event["t"], event["value"]) for event in events if event["kind"] == "base_fee"]
    assert fees and all(value == (50.0 if 2 * S <= t < 6 * S else 1.0) for t, value in fees)
    assert history.table("executions").num_rows == 10
    messages = history.messages.to_pylist()
    stuck = [m for m in messages if m["kind"] == "liquidation"]
    assert len(stuck) == 10 and all(2 * S <= m["t_received"] < 6 * S for m in stuck)
    # The block at 6 s lowers the base fee to 1 and lets the waiting ones through at once.
    assert min(m["t_dequeued"] for m in stuck) == 6 * S


def _fees_by_agent(tmp_path: Path, overrides: list[str]) -> list[dict[str, Any]]:
    result = run(load_scenario(str(EXAMPLES / "quickstart.toml"), overrides), tmp_path / "run", write_report=False)
    rows: list[dict[str, Any]] = read_history(result.run_dir).messages.select(["agent", "t_intended", "fee"]).to_pylist()
    return rows


def test_an_agents_fees_follow_its_file_times_its_drawn_fee(tmp_path: Path) -> None:
    """Traders (Poisson, the compiled draw) pay the file's fee at each intended send time times
    a constant 2; makers (constant arrivals, drawn window by window) the file's fee alone. The
    file: 3 until 4 s, 40 from 4 s, 0 (no priority fee) from 7 s."""
    fees = tmp_path / "tips.csv"
    fees.write_text("t,fee\n0,3\n4,40\n7,0\n")
    rows = _fees_by_agent(tmp_path, [f'agents.0.fee_file="{fees}"', "agents.0.fee=2",
                                        f'agents.1.fee_file="{fees}"'])

    def expected(t: int) -> float:
        return 3.0 if t < 4 * S else 40.0 if t < 7 * S else 0.0

    traders = [row for row in rows if row["agent"] == "traders"]
    makers = [row for row in rows if row["agent"] == "makers"]
    assert len(traders) > 1000 and len(makers) > 1000
    assert all(row["fee"] == 2 * expected(row["t_intended"]) for row in traders)
    assert all(row["fee"] == expected(row["t_intended"]) for row in makers)
    assert {row["fee"] for row in makers} == {3.0, 40.0, 0.0}


def test_a_bad_agent_fee_file_names_the_file_line_and_field(tmp_path: Path) -> None:
    fees = tmp_path / "tips.csv"
    fees.write_text("t,fee\n0,3\n1,-1\n")
    with pytest.raises(DataFileError) as error:
        _fees_by_agent(tmp_path, [f'agents.0.fee_file="{fees}"'])
    assert f"fee file {fees}, line 3, field fee: -1 is not a number of 0 or more" in str(error.value)
