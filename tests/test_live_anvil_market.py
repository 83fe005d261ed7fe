"""The market on a chain (``live/chain/market.py``): alone, a message under the next base fee
is held until a head lets it go; on a real anvil, fixed-fee keepers wait while the
base fee is above their cap and fee-aware ones do not, a liquidation executes at the oracle
price committed before it in block order, every oracle and keeper transaction is accounted
once against the node's blocks. One run serves the node tests: a flood lifts the base fee
past the fixed keepers' cap while the price falls; two keeper groups race for each account."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
import pytest
from conftest import require_anvil

from msgstorm.live.chain.anvil import AnvilNode
from msgstorm.live.chain.calldata import decode
from msgstorm.live.chain.market import ChainMarket
from msgstorm.live.chain.record import PENDING
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.rules.base_fee import next_base_fee_wei
from msgstorm.scenario import parse_scenario
from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.schema import MESSAGE_KINDS

SCENARIO = """
target = "anvil"
[run]
name = "anvil-market-test"
seed = 5
duration = "12s"
drain = "6s"
[blocks]
interval = "500ms"
max_gas = 1_000_000
[sequencer]
policy = "fee_priority"
[backpressure]
mode = "eip1559"
initial_base_fee = 1.0
underpriced = "wait"
[live]
start_timeout = "60s"
[live.anvil]
accounts = 300
market_accounts = 200
[[agents]]
name = "bots"
role = "flooder"
start = "1s"
stop = "9s"
arrival = { process = "poisson", rate = "150/s" }
size = "150B"
fee = { dist = "pareto", scale = 3.0, alpha = 1.5 }
[market]
resolution = "100ms"
maintenance_margin = "10%"
liquidation_penalty = "2%"
[[market.instruments]]
name = "ETH"
price = 194.0
volatility = "100%/y"
shocks = [{ at = "4s", fall = "40%", over = "5s" }]
[market.oracle]
deviation = "0.5%"
fee = 1000.0
[[market.accounts]]
count = 60
leverage_median = 3.0
leverage_sigma = 0.4
leverage_cap = 8.0
long_share = "100%"
[[market.keepers]]
name = "fixed"
count = 2
race = false
reaction = { dist = "lognormal", median = "100ms", sigma = 0.5 }
fee = 2.0
[[market.keepers]]
name = "aware"
count = 2
race = false
reaction = { dist = "lognormal", median = "100ms", sigma = 0.5 }
fee_aware = true
fee_multiple = 3.0
fee_cap = 1000.0
"""
FIXED_CAP = 2.0
PRICE, LIQUIDATION = MESSAGE_KINDS.index("price"), MESSAGE_KINDS.index("liquidation")


def _rpc(url: str, method: str, *params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())["result"]


def _rows(run_dir: Path, table: str) -> list[dict[str, Any]]:
    return ds.dataset(run_dir / "history" / table).to_table().to_pylist()


@pytest.fixture(scope="module")
def market_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run on a node the test started (so its chain is read after), and that chain."""
    from msgstorm.runner import run

    binary = require_anvil()
    tmp = tmp_path_factory.mktemp("anvil-market")
    scenario = parse_scenario(SCENARIO, source="market.toml")
    port = free_port()
    server = ManagedServer("anvil", AnvilNode(scenario, tmp).argv(binary, port), port, tmp / "node", 60)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        scenario = scenario.model_copy(update={"live": scenario.live.model_copy(update={"url": url})})
        result = run(scenario, tmp / "run")
        _rpc(url, "evm_setIntervalMining", 0)  # the chain stops here
        latest = int(_rpc(url, "eth_blockNumber"), 16)
        blocks = [_rpc(url, "eth_getBlockByNumber", hex(n), True) for n in range(1, latest + 1)]
    finally:
        server.stop()
    run_dir = result.run_dir
    return {"dir": run_dir, "blocks": blocks, "unit": scenario.live.anvil.fee_unit_wei,
            "messages": _rows(run_dir, "messages"), "events": _rows(run_dir, "events"),
            "summary": json.loads((run_dir / "summary.json").read_text())}


# --- without a node ---------------------------------------------------------------------------


def test_the_next_base_fee_follows_eip1559() -> None:
    assert next_base_fee_wei(1000, 500, 1000) == 1000  # at the target
    assert next_base_fee_wei(1000, 1000, 1000) == 1125  # full: +12.5%
    assert next_base_fee_wei(1000, 0, 1000) == 875  # empty: -12.5%
    assert next_base_fee_wei(7, 501, 1000) == 8  # up by at least 1 wei


@pytest.mark.parametrize(("overrides", "expected"), [
    (['market.keepers.0.region="us-east"'], "market.keepers[0].region: on a chain node the market's agents send"),
    (['market.oracle.node="us-east-0"'], "market.oracle.node: on a chain node"),
    (['faults=[{kind="crash", at="2s", node="anvil"}]', 'market.topups={probability="50%"}'],
     "faults[0].kind: a 'crash' fault (SIGKILL) may restart the node from a chain up to a second older"),
])
def test_what_the_chain_cannot_run_of_the_market_is_refused_naming_the_field(overrides: list[str],
                                                                             expected: str) -> None:
    with pytest.raises(ScenarioError) as error:
        parse_scenario(SCENARIO, source="market.toml", overrides=overrides)
    assert expected in str(error.value), str(error.value)


def test_a_market_message_under_the_next_base_fee_is_held_until_a_head_lets_it_go() -> None:
    """``ChainMarket`` alone (no node): what it hands the sender, as heads arrive."""
    scenario = parse_scenario(SCENARIO, source="market.toml")
    unit = scenario.live.anvil.fee_unit_wei
    sent: list[tuple[list[int], list[int]]] = []  # (msg_ids, t_sent) of each hand-over

    async def drive() -> ChainMarket:
        clock = [1_000]
        market = ChainMarket(scenario, np.random.SeedSequence(1), lambda: clock[0], unit)
        market.start(lambda window, rows: sent.append(
            ([int(window.batch.msg_id[k]) for k in rows], [int(window.sent[k]) for k in rows])))
        keeper = market.agent_index("fixed")
        market.on_block(0, 2 * unit, 1_000_000, 1_000_000, [])  # full: the next base fee is 2.25
        low = market.send(500, keeper, "liquidation", 0, 7, 300, FIXED_CAP)
        high = market.send(500, keeper, "liquidation", 0, 8, 300, 3.0)
        await asyncio.sleep(0)
        assert sent == [([high], [1_000])]  # one turn of the loop: the one over 2.25 goes
        assert market.base_fee() == 2.25 and not market.settled()
        clock[0] = 2_000
        market.on_block(1, int(2.25 * unit), 600_000, 1_000_000, [])  # over the target: 2.3906...
        await asyncio.sleep(0)
        assert len(sent) == 1
        market.on_block(2, int(2.25 * unit), 0, 1_000_000, [])  # empty: 1.96875, within its cap
        await asyncio.sleep(0)
        assert sent[1] == ([low], [1_000])  # t_sent: when its keeper sent it, not the hold's end
        assert market.settled()
        held = market.send(900, keeper, "liquidation", 0, 9, 300, 1.0)
        market.close()  # still held at the end: pending, never handed to the node
        assert market.windows[-1].outcome.tolist() == [PENDING]
        assert market.windows[-1].batch.msg_id.tolist() == [held]
        return market

    asyncio.run(drive())


def test_commits_a_chain_lost_are_taken_back_and_the_oracle_and_keepers_send_again() -> None:
    """``ChainMarket`` alone (no node): a low price and the liquidations it caused commit, then
    the chain loses them (``reverted``, as after a crash): the executions say ``reverted``, the
    accounts are open again, the oracle sends the same price again at once, and once that
    commits the keepers liquidate the same accounts again, each executed once for good."""
    scenario = parse_scenario(SCENARIO, source="market.toml")
    unit = scenario.live.anvil.fee_unit_wei
    handed: list[tuple[int, int, int]] = []  # (msg_id, kind, agent) of each hand-over
    tables: dict[str, list[dict[str, Any]]] = {}

    async def settle(market: ChainMarket) -> None:
        for _ in range(200):  # the keepers' reactions (100 ms median) on the loop's clock, bounded
            await asyncio.sleep(0.02)
            if market.settled():
                return

    async def drive() -> ChainMarket:
        clock = [0]
        market = ChainMarket(scenario, np.random.SeedSequence(1), lambda: clock[0], unit)
        market.start(lambda window, rows: handed.extend(
            (int(window.batch.msg_id[k]), int(window.batch.kind[k]), int(window.batch.agent[k])) for k in rows))
        reactor = market.reactors[0]
        oracle = market.numbered(next(market.traffic(iter([]))))  # every oracle message, numbered
        low = int(np.argmin(reactor.updates.price))  # the lowest price published
        clock[0] = int(reactor.updates.t[low]) + 1  # it is the newest published of its instrument
        price_id = int(oracle.msg_id[low])
        market.on_block(clock[0], unit, 0, 1_000_000, [(price_id, PRICE)])
        await settle(market)
        first = [msg_id for msg_id, kind, _ in handed if kind == LIQUIDATION]
        assert first, "the low price put no account past its line"
        market.on_block(clock[0], unit, 0, 1_000_000, [(m, LIQUIDATION) for m in first])
        executed = {e[2] for e in reactor._executions if e[4] == "executed"}  # two groups race: one executes
        assert len(executed) == reactor.liquidated.sum() == len(first) // 2
        handed.clear()
        market.reverted([price_id, *first], [price_id, *first])  # the block held them all; the pool is empty
        assert reactor.liquidated.sum() == 0  # open again
        assert reactor.chain_row == [-1] and reactor.chain_price == [float(reactor.paths.prices[0, 0])]
        assert {e[1]: e[4] for e in reactor._executions} == dict.fromkeys(first, "reverted")
        await asyncio.sleep(0)
        resent = [msg_id for msg_id, kind, agent in handed if kind == PRICE and agent == market.agent_index("oracle")]
        assert len(resent) == 1 and reactor.price_of[resent[0]] == low  # the same update, sent again at once
        assert not [m for m, kind, _ in handed if kind == LIQUIDATION]  # nothing past a line at the chain's price
        market.on_block(clock[0], unit, 0, 1_000_000, [(resent[0], PRICE)])
        await settle(market)
        again = [msg_id for msg_id, kind, _ in handed if kind == LIQUIDATION]
        market.on_block(clock[0], unit, 0, 1_000_000, [(m, LIQUIDATION) for m in again])
        market.close()
        market.finish(clock[0], lambda table, columns: tables.setdefault(table, []).extend(
            dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)))
        return market

    asyncio.run(drive())
    executions = tables["executions"]
    reverted = {e["account"] for e in executions if e["outcome"] == "reverted"}
    executed = [e["account"] for e in executions if e["outcome"] == "executed"]
    assert reverted and sorted(executed) == sorted(reverted)  # the same accounts, each executed once for good
    oracle = tables["oracle"]
    assert len(oracle) == len({o["msg_id"] for o in oracle})
    twice = Counter((o["instrument"], o["t_price"]) for o in oracle)
    assert sorted(twice.values())[-1] == 2 and sum(twice.values()) == len(twice) + 1  # one update sent twice


# --- against anvil ----------------------------------------------------------------------------


def _base_fees(run: dict[str, Any]) -> dict[int, float]:
    return {e["height"]: e["value"] for e in run["events"] if e["kind"] == "base_fee"}


def test_fixed_fee_keepers_wait_while_the_base_fee_is_above_their_cap_and_fee_aware_ones_do_not(
        market_run: dict[str, Any]) -> None:
    fees = _base_fees(market_run)
    heights = sorted(fees)
    blocks = [e for e in market_run["events"] if e["kind"] == "block_produced"]
    arrived = {e["height"]: e["t"] for e in blocks}
    liquidations = [m for m in market_run["messages"] if m["kind"] == "liquidation"]
    fixed = [m for m in liquidations if m["agent"] == "fixed" and m["status"] == "committed"]
    aware = [m for m in liquidations if m["agent"] == "aware" and m["status"] == "committed"]
    assert fixed and aware
    # A fixed keeper's liquidation commits only in a block whose base fee is within its cap;
    # many met blocks above it between when they were meant and when they committed.
    waited = 0
    for m in fixed:
        assert fees[m["block"]] <= FIXED_CAP, m
        met = [h for h in heights if m["t_intended"] <= arrived[h] and h < m["block"] and fees[h] > FIXED_CAP]
        waited += bool(met)
    assert waited >= 5, f"only {waited} fixed-fee liquidations met a base fee above their cap"
    # The fee-aware ones commit while the base fee is above the fixed cap, each bidding 3 x
    # a next base fee a head gave (the rule in live/chain/market.py, read back from the fee).
    assert sum(fees[m["block"]] > FIXED_CAP for m in aware) >= 5
    by_number = {int(b["number"], 16): b for b in market_run["blocks"]}
    unit = market_run["unit"]
    offered = {next_base_fee_wei(*(int(by_number[h][k], 16) for k in ("baseFeePerGas", "gasUsed", "gasLimit")))
               for h in heights if h in by_number}
    for m in aware:
        assert any(abs(m["fee"] * unit - 3 * wei) <= 3 for wei in offered), m
    # What it cost: the fixed group's triggers waited longer, on the same accounts and prices.
    delay = {name: sorted(m["t_committed"] - m["t_intended"] for m in group)
             for name, group in (("fixed", fixed), ("aware", aware))}
    assert delay["fixed"][len(fixed) // 2] > 2 * delay["aware"][len(aware) // 2]


def test_a_liquidation_executes_at_the_oracle_price_committed_before_it_in_block_order(
        market_run: dict[str, Any]) -> None:
    messages = {m["msg_id"]: m for m in market_run["messages"]}
    oracle = _rows(market_run["dir"], "oracle")
    executions = _rows(market_run["dir"], "executions")
    prices = _rows(market_run["dir"], "prices")
    first_price = min((p for p in prices if p["instrument"] == "ETH"), key=lambda p: p["t"])["price"]
    # The on-chain price is that of the oracle message latest in block order (block, then
    # its place in it) whose true price is newer than every one before it.
    published = sorted((messages[o["msg_id"]]["block"], messages[o["msg_id"]]["seq_no"], o["t_price"],
                         o["published"]) for o in oracle if messages[o["msg_id"]]["status"] == "committed")
    assert len(published) >= 10 and executions
    for execution in executions:
        liquidation = messages[execution["msg_id"]]
        at = (liquidation["block"], liquidation["seq_no"])
        price, newest = first_price, 0
        for block, seq, t_price, value in published:
            if (block, seq) >= at:
                break
            if t_price > newest:
                price, newest = value, t_price
        assert execution["price"] == price, (execution, at)
        assert execution["t"] == liquidation["t_committed"]
    executed = [e for e in executions if e["outcome"] == "executed"]
    assert len(executed) >= 10


def test_every_oracle_and_keeper_transaction_is_accounted_once_against_the_nodes_blocks(
        market_run: dict[str, Any]) -> None:
    messages = market_run["messages"]
    ids = [m["msg_id"] for m in messages]
    assert len(ids) == len(set(ids))
    market = {m["msg_id"]: m for m in messages if m["agent"] in ("oracle", "fixed", "aware")}
    on_chain: dict[int, int] = {}
    for block in market_run["blocks"]:
        for tx in block["transactions"]:
            header = decode(tx["input"])
            if header is not None and header[0] in market:
                assert header[0] not in on_chain, header  # included once
                on_chain[header[0]] = int(block["number"], 16)
    last = max(e["height"] for e in market_run["events"] if e["kind"] == "block_produced")
    committed = {msg_id: m["block"] for msg_id, m in market.items() if m["status"] == "committed"}
    assert committed == {msg_id: n for msg_id, n in on_chain.items() if n <= last}
    assert {m["status"] for m in market.values()} <= {"committed", "pending", "dropped"}
    # Dropped: only by the node, for a fee cap under the base fee of a block after its send
    # (once the market has closed, a transaction the pool drops is not held again).
    fees = [(e["t"], json.loads(e["detail"])["base_fee_wei"]) for e in market_run["events"]
            if e["kind"] == "block_produced"]
    for msg_id, m in market.items():
        if m["status"] == "dropped":
            assert msg_id not in on_chain
            assert m["fee"] * market_run["unit"] < max(fee for t, fee in fees if t >= m["t_sent"]), m
    # Every trigger is one liquidation message; every liquidation that committed executed once.
    triggers = _rows(market_run["dir"], "triggers")
    assert sorted(t["msg_id"] for t in triggers) == sorted(i for i, m in market.items() if m["kind"] == "liquidation")
    executions = _rows(market_run["dir"], "executions")
    assert sorted(e["msg_id"] for e in executions) == sorted(
        i for i, m in market.items() if m["kind"] == "liquidation" and m["status"] == "committed")
    oracle_rows = _rows(market_run["dir"], "oracle")
    assert sorted(o["msg_id"] for o in oracle_rows) == sorted(i for i, m in market.items() if m["kind"] == "price")
    # The analysis reads it as a sim run: the market's numbers are the history's.
    summary = market_run["summary"]["market"]
    outcomes = Counter(e["outcome"] for e in executions)
    assert summary["liquidations"]["executed"] == outcomes["executed"]
    assert summary["liquidations"]["messages"] == len(triggers)


def test_a_restart_of_the_node_is_taken_with_the_market() -> None:
    scenario = parse_scenario(SCENARIO, source="market.toml",
                              overrides=['faults=[{kind="restart", at="5s", down="1s", node="anvil"}]'])
    assert AnvilNode.market_problems(scenario) == []
    assert AnvilNode(scenario, Path("run")).keeps_state()


@pytest.mark.slow
def test_a_node_restarted_mid_market_keeps_its_chain_and_the_markets_accounts_agree_with_it(tmp_path: Path) -> None:
    """The node msgstorm started is stopped (SIGTERM: anvil writes its chain) at 2 s, under
    the flood, and started again 1 s later from that chain; the price falls from 12 s. The run ends on time, the
    sends the stop cost are named lost, nothing is left running, and the market's tables
    agree with the chain the node kept: each oracle and keeper transaction on it once, each
    liquidation that executed there once; keepers and oracle send again after the restart
    and their transactions commit (their accounts' nonces follow the node's count)."""
    import time

    from msgstorm.runner import run

    binary = require_anvil()
    # The price falls after the node is back (a restart takes seconds on a busy machine: its
    # 500 accounts and its chain are loaded again), so prices and liquidations follow it.
    text = SCENARIO.replace('shocks = [{ at = "4s", fall = "40%", over = "5s" }]',
                            'shocks = [{ at = "12s", fall = "40%", over = "4s" }]')
    assert text != SCENARIO
    scenario = parse_scenario(text, source="market.toml", overrides=[
        'faults=[{kind="restart", at="2s", down="1s", node="anvil"}]', "run.duration=18s"])
    started = time.monotonic()
    result = run(scenario, tmp_path / "run")
    # duration + drain + the node's start and restart (60 s allowed each on a loaded machine) + the analysis
    assert time.monotonic() - started < 18 + 6 + 2 * 60 + 30
    run_dir = result.run_dir
    events = _rows(run_dir, "events")
    faults = [(e["kind"], e["node"]) for e in events if e["kind"] in ("fault_start", "fault_end")]
    assert faults == [("fault_start", "anvil"), ("fault_end", "anvil")]
    assert not [e for e in events if e["kind"] == "node_down"]
    errors = [json.loads(e["detail"]) for e in events if e["kind"] == "client_error"]
    assert not [e for e in events if e["kind"] == "canonical_reorg"]  # a graceful stop writes the whole chain
    messages = _rows(run_dir, "messages")
    statuses = Counter(m["status"] for m in messages)
    assert statuses["lost"] == sum(e.get("lost_to_faults", 0) for e in errors) > 0  # the loss, named
    cleanup = next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")
    assert cleanup["left"] == []
    end = next(e["t"] for e in events if e["kind"] == "run_end")
    assert end <= (18 + 6 + 1) * 1_000_000_000  # its duration and drain, and the last answers and blocks read
    # The chain the node kept, loaded into a fresh anvil.
    port = free_port()
    node = ManagedServer("anvil-check", [binary, "--host", "127.0.0.1", "--port", str(port), "--load-state",
                                         str(run_dir / "servers" / "anvil-state.json"), "--no-mining"],
                         port, tmp_path / "check", 60)
    node.start()
    try:
        url = f"http://127.0.0.1:{port}"
        latest = int(_rpc(url, "eth_blockNumber"), 16)
        blocks = [_rpc(url, "eth_getBlockByNumber", hex(n), True) for n in range(1, latest + 1)]
    finally:
        node.stop()
    market = {m["msg_id"]: m for m in messages if m["agent"] in ("oracle", "fixed", "aware")}
    on_chain: dict[int, int] = {}
    for block in blocks:
        for tx in block["transactions"]:
            header = decode(tx["input"])
            if header is not None and header[0] in market:
                assert header[0] not in on_chain, header  # included once
                on_chain[header[0]] = int(block["number"], 16)
    last = max(e["height"] for e in events if e["kind"] == "block_produced")
    committed = {msg_id: m["block"] for msg_id, m in market.items() if m["status"] == "committed"}
    assert committed == {msg_id: n for msg_id, n in on_chain.items() if n <= last}
    restarted_at = next(e["t"] for e in events if e["kind"] == "fault_end")
    assert restarted_at < 12_000_000_000, "the node took until the price fell to come back"
    after = [m for m in market.values() if m["status"] == "committed" and m["t_intended"] > restarted_at]
    assert {m["kind"] for m in after} >= {"price", "liquidation"}, Counter(m["kind"] for m in after)
    # Every liquidation that executed is one on the chain; each account executed at most once.
    executions = _rows(run_dir, "executions")
    assert sorted(e["msg_id"] for e in executions) == sorted(
        i for i, m in market.items() if m["kind"] == "liquidation" and m["status"] == "committed")
    executed = [e for e in executions if e["outcome"] == "executed"]
    assert executed and len({e["account"] for e in executed}) == len(executed)
    summary = json.loads((run_dir / "summary.json").read_text())["market"]
    assert summary["liquidations"]["executed"] == len(executed)


@pytest.mark.slow
def test_a_node_crashed_mid_market_loses_its_last_blocks_and_the_history_follows_the_chain_it_kept(
        tmp_path: Path) -> None:
    """The node is killed (SIGKILL) at 4 s, just after a first fall made keepers liquidate,
    and started again 1 s later from the state it last wrote (up to a second old); a second
    fall is published while it is down. The run ends on time, the loss is named, nothing is
    left running; every transaction is accounted once against the chain the node kept (on
    it, undone by the crash, refused, pending, lost, unsent), the executions are those its
    liquidations make in block order at the oracle price before each, and the oracle's price
    sent while the node was down is sent again and on the chain after the restart."""
    import time

    from msgstorm.market.accounts import execute, past_line
    from msgstorm.runner import run

    binary = require_anvil()
    text = SCENARIO.replace('shocks = [{ at = "4s", fall = "40%", over = "5s" }]',
                            'shocks = [{ at = "1500ms", fall = "25%", over = "1s" }, '
                            '{ at = "4050ms", fall = "20%", over = "400ms" }]')
    assert text != SCENARIO
    scenario = parse_scenario(text, source="market.toml", overrides=[
        'faults=[{kind="crash", at="4s", restart_after="1s", node="anvil"}]', "run.duration=14s",
        # Blocks five times a state write: the kill most likely lands blocks after the last write.
        "blocks.interval=200ms"])
    started = time.monotonic()
    result = run(scenario, tmp_path / "run")
    # duration + drain + the node's start and restart (60 s allowed each on a loaded machine) + the analysis
    assert time.monotonic() - started < 14 + 6 + 2 * 60 + 30
    run_dir = result.run_dir
    events = _rows(run_dir, "events")
    faults = [(e["kind"], e["node"]) for e in events if e["kind"] in ("fault_start", "fault_end")]
    assert faults == [("fault_start", "anvil"), ("fault_end", "anvil")]
    crashed_at, restarted_at = (next(e["t"] for e in events if e["kind"] == kind) for kind in ("fault_start", "fault_end"))
    assert not [e for e in events if e["kind"] == "node_down"]
    errors = [json.loads(e["detail"]) for e in events if e["kind"] == "client_error"]
    messages = _rows(run_dir, "messages")
    ids = [m["msg_id"] for m in messages]
    assert len(ids) == len(set(ids))
    statuses = Counter(m["status"] for m in messages)
    assert set(statuses) <= {"committed", "dropped", "rejected", "pending", "lost", "unsent"}
    assert statuses["lost"] == sum(e.get("lost_to_faults", 0) for e in errors) > 0  # the loss, named
    assert next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")["left"] == []
    assert next(e["t"] for e in events if e["kind"] == "run_end") <= (14 + 6 + 1) * 1_000_000_000
    # The chain the node kept, loaded into a fresh anvil.
    port = free_port()
    node = ManagedServer("anvil-check", [binary, "--host", "127.0.0.1", "--port", str(port), "--load-state",
                                         str(run_dir / "servers" / "anvil-state.json"), "--no-mining"],
                         port, tmp_path / "check", 60)
    node.start()
    try:
        url = f"http://127.0.0.1:{port}"
        latest = int(_rpc(url, "eth_blockNumber"), 16)
        blocks = [_rpc(url, "eth_getBlockByNumber", hex(n), True) for n in range(1, latest + 1)]
    finally:
        node.stop()
    produced = {e["height"]: e["value"] for e in events if e["kind"] == "block_produced"}
    last = max(produced)
    # Counts from the node's blocks are the history's: each block's transactions, and each of msgstorm's.
    assert produced == {int(b["number"], 16): float(len(b["transactions"])) for b in blocks
                        if int(b["number"], 16) in produced}
    on_chain: dict[int, int] = {}  # msg_id -> block, in block order
    for block in blocks:
        for tx in block["transactions"]:
            header = decode(tx["input"])
            if header is not None:
                assert header[0] not in on_chain, header  # included once
                on_chain[header[0]] = int(block["number"], 16)
    committed = {m["msg_id"]: m["block"] for m in messages if m["status"] == "committed"}
    assert committed == {msg_id: n for msg_id, n in on_chain.items() if n <= last}
    # Undone by the crash: dropped, the lost block still named, not on the chain it kept.
    reorgs = [json.loads(e["detail"]) for e in events if e["kind"] == "canonical_reorg"]
    undone = {m["msg_id"]: m["block"] for m in messages if m["status"] == "dropped" and m["block"] is not None}
    assert set(undone) == {msg_id for r in reorgs for msg_id in r["undone"]}
    assert all(r["final"] and r["rolled_back"][0] <= n <= r["rolled_back"][1] for r in reorgs for n in
               (undone[m] for m in r["undone"]))
    assert not set(undone) & set(on_chain)
    # The executions are what the kept chain's liquidations do, in block order, each at the
    # oracle price committed before it (the executions a crash undid say so).
    by_id = {m["msg_id"]: m for m in messages}
    oracle = {o["msg_id"]: o for o in _rows(run_dir, "oracle")}
    accounts = {a["account"]: a for a in _rows(run_dir, "accounts")}
    market = scenario.market
    assert market is not None
    price, step = float(_rows(run_dir, "prices")[0]["price"]), -1
    liquidated: set[int] = set()
    expected: list[tuple[int, str, float, float]] = []  # (msg_id, outcome, price, bad debt)
    for msg_id, _ in sorted(((m, n) for m, n in on_chain.items() if n <= last), key=lambda item: item[1]):
        row = by_id[msg_id]
        if msg_id in oracle and oracle[msg_id]["t_price"] > step:
            price, step = oracle[msg_id]["price"], oracle[msg_id]["t_price"]
        elif row["kind"] == "liquidation":
            account = accounts[row["key"]]
            if row["key"] in liquidated:
                expected.append((msg_id, "already_liquidated", price, 0.0))
            elif not past_line(account["side"], account["liquidation_price"], price):
                expected.append((msg_id, "recovered", price, 0.0))
            else:
                liquidated.add(row["key"])
                done = execute(account["side"], account["size"], account["entry"], account["collateral"], price,
                               market.liquidation_penalty, market.slippage_bps, market.depth)
                expected.append((msg_id, "executed", price, done.bad_debt))
    executions = _rows(run_dir, "executions")
    kept = [(e["msg_id"], e["outcome"], e["price"], e["bad_debt"]) for e in executions if e["outcome"] != "reverted"]
    kept.sort()
    expected.sort()
    assert [k[:2] for k in kept] == [e[:2] for e in expected]
    assert [v for k in kept for v in k[2:]] == pytest.approx([v for e in expected for v in e[2:]])
    assert {e["msg_id"] for e in executions if e["outcome"] == "reverted"} == {
        m for m in undone if by_id[m]["kind"] == "liquidation"}
    assert [e for e in expected if e[1] == "executed" and by_id[e[0]]["t_committed"] > restarted_at]
    summary = json.loads((run_dir / "summary.json").read_text())["market"]
    assert summary["liquidations"]["executed"] == len(liquidated)
    # The price the oracle sent while the node was down went again once it was back, and is on the chain.
    twice = Counter((o["instrument"], o["t_price"]) for o in oracle.values())
    resent = [o for o in oracle.values() if twice[o["instrument"], o["t_price"]] == 2 and
              by_id[o["msg_id"]]["t_intended"] > crashed_at]
    assert resent, "no price sent again"
    assert any(by_id[o["msg_id"]]["status"] == "committed" and by_id[o["msg_id"]]["t_committed"] > restarted_at
               for o in resent)


@pytest.mark.slow
def test_a_node_killed_for_good_mid_market_ends_the_run_on_time_named_with_nothing_left(tmp_path: Path) -> None:
    """A crash without ``restart_after`` at 4.5 s, after a fall: the node is named down,
    the sending ends with it, nothing is left running, and the market's tables hold only what
    the blocks read before the kill committed."""
    import time

    from msgstorm.runner import run

    require_anvil()
    text = SCENARIO.replace('shocks = [{ at = "4s", fall = "40%", over = "5s" }]',
                            'shocks = [{ at = "1s", fall = "25%", over = "1s" }]')
    scenario = parse_scenario(text, source="market.toml", overrides=[
        'faults=[{kind="crash", at="4500ms", node="anvil"}]', "run.duration=12s"])
    started = time.monotonic()
    result = run(scenario, tmp_path / "run")
    assert time.monotonic() - started < 12 + 6 + 60 + 30  # duration + drain + the start (60 s at most) + the analysis
    events = _rows(result.run_dir, "events")
    down = [e for e in events if e["kind"] == "node_down"]
    assert len(down) == 1 and down[0]["node"] == "anvil" and "crash fault" in json.loads(down[0]["detail"])["error"]
    assert next(e["t"] for e in events if e["kind"] == "run_end") < 12_000_000_000  # ended with the node
    assert next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")["left"] == []
    messages = {m["msg_id"]: m for m in _rows(result.run_dir, "messages")}
    assert {m["status"] for m in messages.values()} <= {"committed", "dropped", "rejected", "pending", "lost", "unsent"}
    triggers = _rows(result.run_dir, "triggers")
    assert triggers and {t["msg_id"] for t in triggers} <= set(messages)  # keepers acted; each message a row
    # An execution is a liquidation the blocks read before the kill committed (under the
    # flood's fees there may be none yet: then the run wrote no executions).
    executions = _rows(result.run_dir, "executions") if (result.run_dir / "history" / "executions").exists() else []
    committed = {i for i, m in messages.items() if m["kind"] == "liquidation" and m["status"] == "committed"}
    assert sorted(e["msg_id"] for e in executions) == sorted(committed)
    assert all(messages[i]["t_committed"] < down[0]["t"] for i in committed)
