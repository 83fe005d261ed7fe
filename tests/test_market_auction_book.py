"""The batch auction clears the simulator's orders: hand-computed batches, no place for arrival order."""

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

from msgstorm.cli import app
from msgstorm.market.auction_book import AuctionBook
from msgstorm.market.prices import PricePaths
from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.scenario.market import AuctionOrdersSpec
from msgstorm.scenario.schema import MESSAGE_KINDS
from msgstorm.traffic import MessageBatch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SMALL = """
[run]
name = "auction"
seed = 5
duration = "3s"
drain = "2s"

[network]
regions = ["us-east"]
nodes_per_region = 2
processing = {{ dist = "constant", value = "0s" }}

[sequencer]
policy = "{policy}"
service = {{ dist = "constant", value = "1us" }}
batch_auction = {{ interval = "500ms" }}

[blocks]
interval = "100ms"

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "12/s" }}
mix = {{ order = 1.0 }}

[market]

[[market.instruments]]
name = "X"
price = 100.0

[market.orders]
buy_share = 0.5
limit_offset_bps = 10.0
limit_spread_bps = 0.0
quantity = {{ dist = "constant", value = 2.0 }}
"""


def _table(run_dir: Path, name: str) -> list[dict[str, Any]]:
    directory = run_dir / "history" / name
    if not directory.is_dir():
        return []
    return [row for part in sorted(directory.glob("part-*.parquet")) for row in pq.read_table(part).to_pylist()]


def _small_run(tmp_path: Path, run_scenario: Any, policy: str = "batch_auction", name: str = "run") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SMALL.format(policy=policy))
    run_scenario(load_scenario(path), name)
    return tmp_path / name


def test_each_batch_clears_as_computed_by_hand(tmp_path: Path, run_scenario: Any) -> None:
    """Buys bid 100.1 and sells ask 99.9, 2 each, and the true price stays 100: in a batch
    of B buys and S sells (both > 0) the prices 99.9 and 100.1 both trade 2 min(B, S) with
    the same imbalance, so the batch clears at their midpoint, 100; the short side fills in
    full, each order of the long side 2 min(B, S) / max(B, S). One side alone trades nothing."""
    run_dir = _small_run(tmp_path, run_scenario)
    orders = _table(run_dir, "auction_orders")
    auctions = _table(run_dir, "auctions")
    assert len(orders) >= 30 and len(auctions) >= 5
    assert {o["limit_price"] for o in orders} == {100.0 * (1 + 0.001), 100.0 * (1 - 0.001)}
    traded = 0
    for auction in auctions:
        members = [o for o in orders if o["batch"] == auction["batch"]]
        buys = sum(1 for o in members if o["side"] == 1)
        sells = len(members) - buys
        assert (auction["orders"], auction["buys"]) == (len(members), buys)
        assert auction["t"] == (auction["batch"] + 1) * 500_000_000
        if buys == 0 or sells == 0:
            assert math.isnan(auction["price"]) and auction["volume"] == 0.0
            assert all(o["fill"] == 0.0 for o in members)
            continue
        traded += 1
        assert auction["price"] == pytest.approx(100.0, abs=1e-9)
        assert auction["volume"] == pytest.approx(2.0 * min(buys, sells), abs=1e-12)
        assert auction["imbalance"] == pytest.approx(2.0 * (buys - sells), abs=1e-12)
        for order in members:
            short = (order["side"] == 1) == (buys <= sells)
            expected = 2.0 if short else 2.0 * min(buys, sells) / max(buys, sells)
            assert order["fill"] == pytest.approx(expected, abs=1e-12)
    assert traded >= 3


def test_no_batch_auction_draws_no_orders(tmp_path: Path, run_scenario: Any) -> None:
    run_dir = _small_run(tmp_path, run_scenario, policy="fifo")
    assert not (run_dir / "history" / "auctions").exists()
    assert not (run_dir / "history" / "auction_orders").exists()
    assert _table(run_dir, "messages")  # the run did happen


class _Host:
    """What the book asks of the simulator: ranks of committed messages, and the history."""

    def __init__(self, ranks: dict[int, int]) -> None:
        self.ranks = ranks
        self.tables: dict[str, dict[str, Any]] = {}

    def execution_rank(self, msg_id: int) -> int | None:
        return self.ranks.get(msg_id)

    def append(self, table: str, columns: dict[str, Any]) -> None:
        self.tables[table] = columns


# The hand-built book of tests/test_market_auction.py: it clears 14 at 100; fills below.
SIDES = [1, 1, 1, -1, -1, -1]
LIMITS = [101.0, 100.0, 99.0, 98.0, 100.0, 102.0]
QUANTITIES = [10.0, 5.0, 5.0, 8.0, 6.0, 10.0]
FILLS = [10.0, 4.0, 0.0, 8.0, 6.0, 0.0]


def _book_of_hand_built_batches(commit_order: list[int]) -> _Host:
    """Six orders (msg 0-5) and a seventh that never takes effect; all in batch 3. The
    orders are set by hand after the draw; they commit in ``commit_order``."""
    scenario = load_scenario(EXAMPLES / "front-running.toml", ['sequencer.policy="batch_auction"'])
    paths = PricePaths(["ETH"], 100_000_000, np.full((1, 101), 100.0))
    book = AuctionBook(scenario, AuctionOrdersSpec(), paths, np.random.SeedSequence(1))
    n = 7
    order = MESSAGE_KINDS.index("order")
    book.numbered(MessageBatch(msg_id=np.arange(n, dtype=np.int64), t_intended=np.arange(n, dtype=np.int64) * 1000,
                               agent=np.zeros(n, dtype=np.int32), kind=np.full(n, order, dtype=np.int8),
                               node=np.zeros(n, dtype=np.int32), key=np.zeros(n, dtype=np.int64),
                               size=np.full(n, 100, dtype=np.int32), fee=np.ones(n)))
    book.side[:6], book.limit_price[:6], book.quantity[:6] = SIDES, LIMITS, QUANTITIES
    host = _Host({i: 3 for i in range(6)})
    book.committed(commit_order, host)
    book.finish(host)
    return host


def test_a_hand_built_batch_clears_at_the_hand_computed_price() -> None:
    host = _book_of_hand_built_batches(list(range(7)))
    auctions, orders = host.tables["auctions"], host.tables["auction_orders"]
    interval = 500_000_000  # examples/front-running.toml
    assert auctions["batch"] == [3] and auctions["t"] == [4 * interval]
    assert (auctions["price"], auctions["volume"], auctions["imbalance"]) == ([100.0], [14.0], [1.0])
    assert (auctions["orders"], auctions["buys"], auctions["true_price"]) == ([6], [3], [100.0])
    assert orders["fill"] == [*FILLS, 0.0]
    assert orders["batch"] == [3, 3, 3, 3, 3, 3, -1]


def test_the_commit_order_within_a_batch_changes_no_fill() -> None:
    reference = _book_of_hand_built_batches(list(range(7)))
    for commit_order in ([5, 4, 3, 2, 1, 0, 6], [2, 0, 5, 1, 3, 4], [6, 3, 1, 4, 0, 5, 2]):
        host = _book_of_hand_built_batches(commit_order)
        assert host.tables == reference.tables


def _fills_by_batch(run_dir: Path) -> tuple[dict[int, dict[int, float]], dict[int, list[int]]]:
    """Batch -> {msg_id: fill}, and batch -> its msg_ids in the order they reached the sequencer."""
    orders = [o for o in _table(run_dir, "auction_orders") if o["batch"] >= 0]
    received = {m["msg_id"]: m["t_received"] for m in _table(run_dir, "messages")}
    fills: dict[int, dict[int, float]] = {}
    for o in orders:
        fills.setdefault(o["batch"], {})[o["msg_id"]] = o["fill"]
    arrival = {batch: sorted(members, key=lambda m: (received[m], m)) for batch, members in fills.items()}
    return fills, arrival


def test_permuting_arrival_within_a_batch_changes_no_fill_in_a_run(run_scenario: Any, tmp_path: Path) -> None:
    """The same order flow (four traders on two nodes, limits spread 20 bps) through nodes
    whose processing jitters up to 1 ms: orders reach the sequencer in another order. Every
    batch with the same members in both runs gives each of them the same fill."""
    text = (SMALL.format(policy="batch_auction").replace('process = "constant", rate = "12/s"', 'process = "poisson", rate = "40/s"')
            .replace("mix = { order = 1.0 }", "mix = { order = 1.0 }\ncount = 4")
            .replace("limit_spread_bps = 0.0", "limit_spread_bps = 20.0").replace('duration = "3s"', 'duration = "6s"'))
    path = tmp_path / "jitter.toml"
    path.write_text(text)
    run_scenario(load_scenario(path), "a")
    run_scenario(load_scenario(path, ['network.processing={dist="uniform", low="0s", high="1ms"}']), "b")
    fills_a, arrival_a = _fills_by_batch(tmp_path / "a")
    fills_b, arrival_b = _fills_by_batch(tmp_path / "b")
    same = [batch for batch in fills_a if batch in fills_b and set(fills_a[batch]) == set(fills_b[batch])]
    permuted = [batch for batch in same if arrival_a[batch] != arrival_b[batch]]
    assert len(permuted) >= 3, (len(same), len(fills_a))
    for batch in same:
        assert fills_a[batch] == fills_b[batch]
    assert all(sum(fills_a[batch].values()) > 0 for batch in permuted)


def test_the_same_seed_gives_the_same_book(tmp_path: Path, run_scenario: Any) -> None:
    first = _table(_small_run(tmp_path, run_scenario, name="first"), "auction_orders")
    second = _table(_small_run(tmp_path, run_scenario, name="second"), "auction_orders")
    assert first == second and first


@pytest.mark.parametrize(("was", "line", "field", "message"), [
    ("buy_share = 0.5", "buy_share = 1.5", "market.orders.buy_share", ""),
    ("limit_spread_bps = 0.0", "limit_spread_bps = -1.0", "market.orders.limit_spread_bps",
     "greater than or equal to 0"),
    ("buy_share = 0.5", 'instrument = "Y"', "market.orders.instrument", "unknown instrument 'Y'"),
])
def test_bad_orders_name_file_line_and_field(tmp_path: Path, was: str, line: str, field: str, message: str) -> None:
    text = SMALL.format(policy="batch_auction").replace(was, line)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    shown = str(error.value)
    number = text.splitlines().index(line) + 1
    assert field in shown and message in shown, shown
    assert f"bad.toml:{number}" in shown, shown


def test_the_summary_gives_what_the_tables_hold(tmp_path: Path, run_scenario: Any) -> None:
    """summary.json's ``auction`` of the hand-computed run: every cleared batch at the true
    price 100 (deviation 0); the fill rate 2 x volume / quantity; shown in report.html."""
    run_dir = _small_run(tmp_path, run_scenario)
    orders = _table(run_dir, "auction_orders")
    auctions = _table(run_dir, "auctions")
    cleared = [a for a in auctions if not math.isnan(a["price"])]
    auction = json.loads((run_dir / "summary.json").read_text())["auction"]
    volume = sum(a["volume"] for a in auctions)
    quantity = 2.0 * sum(1 for o in orders if o["batch"] >= 0)
    assert (auction["batches"], auction["batches_cleared"]) == (len(auctions), len(cleared))
    assert (auction["orders"], auction["orders_in_batches"]) == (len(orders), sum(1 for o in orders if o["batch"] >= 0))
    assert auction["cleared_volume"] == pytest.approx(volume, abs=1e-6)
    assert auction["fill_rate"] == pytest.approx(2.0 * volume / quantity, abs=1e-6)
    assert auction["mean_clearing_price"] == pytest.approx(100.0, abs=1e-6)
    assert auction["price_deviation_bps"]["rms"] == pytest.approx(0.0, abs=1e-3)
    assert 'id="auction-table"' in (run_dir / "report.html").read_text()
    compared = CliRunner().invoke(app, ["compare", str(run_dir), str(run_dir)])
    assert compared.exit_code == 0, compared.output
    assert "auction fill rate" in compared.output and "clearing price deviation rms" in compared.output


def test_no_auction_no_summary_section(tmp_path: Path, run_scenario: Any) -> None:
    run_dir = _small_run(tmp_path, run_scenario, policy="fifo")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "auction" not in summary and summary["messages"]["committed"] > 0


def test_the_book_leaves_the_front_runners_races_as_they_were(run_scenario: Any, tmp_path: Path) -> None:
    """Both the book and the front-runner ask when an order took effect: each gets the batch
    (the policy forgets a rank once it gave it; the simulator keeps it for the block)."""
    short = ['sequencer.policy="batch_auction"', 'run.duration="4s"', 'run.drain="3s"']
    scenario = load_scenario(EXAMPLES / "front-running.toml", short)
    assert scenario.market is not None and scenario.market.orders is not None
    run_scenario(scenario, "with")
    market = scenario.market.model_copy(update={"orders": None})
    run_scenario(scenario.model_copy(update={"market": market}), "without")
    with_book, without = _table(tmp_path / "with", "frontruns"), _table(tmp_path / "without", "frontruns")
    assert with_book == without
    assert sum(1 for race in without if race["outcome"] == "won") > 0
    assert _table(tmp_path / "with", "auctions") and not _table(tmp_path / "without", "auctions")


def test_the_examples_page_quotes_what_the_example_auction_cleared(run_scenario: Any) -> None:
    readme = (EXAMPLES.parent / "docs" / "examples.md").read_text()  # the README links the tour there
    text = " ".join(readme[readme.index("Under it the order flow is also a book"):].split()[:120])
    numbers = re.search(r"its ([\d,]+) orders fell into (\d+) batches, (\d+) of which crossed; they cleared "
                        r"([\d,.]+) units .* a fill rate of ([\d.]+) .* mean clearing price of ([\d,.]+) "
                        r"\(last ([\d,.]+)\), ([\d.]+) bps .* mean −([\d.]+) bps", text)
    assert numbers, text
    shown = [float(n.replace(",", "")) for n in numbers.groups()]
    scenario = load_scenario(EXAMPLES / "front-running.toml", ['sequencer.policy="batch_auction"'])
    auction = run_scenario(scenario).summary["auction"]  # type: ignore[attr-defined]
    assert shown == [auction["orders"], auction["batches"], auction["batches_cleared"],
                     round(auction["cleared_volume"], 3), round(auction["fill_rate"], 1),
                     round(auction["mean_clearing_price"], 3), round(auction["last_clearing_price"], 2),
                     round(auction["price_deviation_bps"]["rms"], 2), -round(auction["price_deviation_bps"]["mean"], 3)]
