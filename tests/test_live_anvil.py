"""The chain target against a real anvil: every transaction accounted for once, the base
fee the node's and EIP-1559's, pool order by fee or arrival, a node killed mid-run."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
import pytest
from conftest import require_anvil, run_in_process

from msgstorm.live.chain.accounts import traffic_accounts_needed
from msgstorm.live.chain.anvil import AnvilNode
from msgstorm.live.chain.calldata import HEADER, decode, encode, gas_cap, intrinsic_gas
from msgstorm.live.chain.sending import reason_of
from msgstorm.live.nemesis import alive
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.rules.base_fee import next_base_fee_wei
from msgstorm.scenario import Scenario, load_scenario, parse_scenario
from msgstorm.scenario.errors import ScenarioError
from msgstorm.traffic.generate import generate_traffic

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCENARIO = """
target = "anvil"
[run]
name = "anvil-test"
seed = 3
duration = "{duration}"
drain = "3s"
[blocks]
interval = "{interval}"
max_gas = {max_gas}
[sequencer]
policy = "{policy}"
[backpressure]
mode = "eip1559"
initial_base_fee = 1.0
[live]
start_timeout = "60s"  # a machine busy with other work takes over 10 s to make anvil's 1,000 accounts
[[agents]]
name = "low"
arrival = {{ process = "poisson", rate = "{rate}" }}
fee = {{ dist = "uniform", low = 20.0, high = 40.0 }}
size = "64B"
[[agents]]
name = "high"
arrival = {{ process = "poisson", rate = "{rate}" }}
fee = {{ dist = "uniform", low = 60.0, high = 90.0 }}
size = "64B"
"""


def _scenario(duration: str = "4s", interval: str = "500ms", max_gas: int = 30_000_000, policy: str = "fee_priority",
              rate: str = "40/s", *overrides: str) -> Scenario:
    text = SCENARIO.format(duration=duration, interval=interval, max_gas=max_gas, policy=policy, rate=rate)
    return parse_scenario(text, source="anvil.toml", overrides=overrides)


def _listening(log: Path, process: Any, deadline: float) -> str:
    """The node's URL once its log says it listens (it lists its accounts first)."""
    while True:
        assert time.monotonic() < deadline and process.poll() is None
        text = log.read_text() if log.is_file() else ""
        if "Listening on " in text:
            return "http://" + text.split("Listening on ", 1)[1].split()[0]
        time.sleep(0.05)


def _under_way(run_dir: Path, process: Any) -> int:
    """The pid of a run's node once the run is under way, whatever the machine's load made of
    the node's start: a block holds the run's transactions, and another block follows it for
    the run to read it."""
    pid_file = run_dir / "servers" / "anvil.pid"
    deadline = time.monotonic() + 60
    while not pid_file.is_file():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    url = _listening(run_dir / "servers" / "anvil.out", process, deadline)
    first = None
    while first is None or int(_rpc(url, "eth_blockNumber"), 16) < first + 2:
        assert time.monotonic() < deadline and process.poll() is None
        if first is None and _rpc(url, "eth_getBlockByNumber", "latest", False)["transactions"]:
            first = int(_rpc(url, "eth_blockNumber"), 16)
        time.sleep(0.05)
    return int(pid_file.read_text())


def _rpc(url: str, method: str, *params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())["result"]


def _rows(run_dir: Path, table: str) -> list[dict[str, Any]]:
    return ds.dataset(run_dir / "history" / table).to_table().to_pylist()


@pytest.fixture
def user_node(tmp_path: Path) -> Iterator[tuple[ManagedServer, Any]]:
    """An anvil started by the test (so its chain can be read after the run) with the
    scenario's own flags; ``start(scenario)`` returns the scenario pointed at it."""
    binary = require_anvil()
    servers: list[ManagedServer] = []

    def start(scenario: Scenario) -> Scenario:
        port = free_port()
        # As long as msgstorm's own start waits (``start_timeout`` above): at load a node
        # making 1,000 accounts took over 20 s to listen.
        server = ManagedServer("anvil", AnvilNode(scenario, tmp_path).argv(binary, port), port, tmp_path / "node",
                               scenario.live.start_timeout / 1e9)
        server.start()
        servers.append(server)
        return scenario.model_copy(update={"live": scenario.live.model_copy(update={"url": f"http://127.0.0.1:{port}"})})

    yield start  # type: ignore[misc]
    for server in servers:
        server.stop()


def _node_blocks(url: str, first: int) -> list[dict[str, Any]]:
    latest = int(_rpc(url, "eth_blockNumber"), 16)
    return [_rpc(url, "eth_getBlockByNumber", hex(n), True) for n in range(first, latest + 1)]


# --- without a node ---------------------------------------------------------------------------


def test_calldata_carries_the_header_and_gas_covers_it() -> None:
    data = encode(123_456_789, 3, 2, 987_654_321, 100)
    assert len(data) == 2 + 200
    assert decode(data) == (123_456_789, 3, 2, 987_654_321)
    assert decode("0x" + "11" * 40) is None  # not msgstorm's
    assert decode("0x6d736773") is None  # too short
    # Prague's calldata floor (EIP-7623) is above the EIP-2028 cost for mostly-zero input.
    zeros = 100 - HEADER.size
    nonzero = bytes.fromhex(data[2:]).count(0) - zeros
    assert intrinsic_gas(data) == max(21_000 + 16 * (HEADER.size - nonzero) + 4 * (zeros + nonzero),
                                      21_000 + 10 * (zeros + nonzero + 4 * (HEADER.size - nonzero)))
    assert gas_cap(100) >= intrinsic_gas(data)
    assert gas_cap(100) == 21_000 + 10 * (zeros + 4 * HEADER.size)


def test_refusals_are_named_by_reason() -> None:
    assert reason_of("max fee per gas less than block base fee") == "fee_cap_below_base_fee"
    assert reason_of("replacement transaction underpriced") == "replacement"
    assert reason_of("nonce too low") == "nonce"
    assert reason_of("intrinsic gas too low") == "gas"
    assert reason_of("something else") == "other"


@pytest.mark.parametrize("name", ["live-anvil", "live-anvil-black-thursday", "live-anvil-black-thursday-fee-aware"])
def test_a_shipped_anvil_example_has_an_idle_account_for_every_transaction_its_schedule_pools(name: str) -> None:
    """Its traffic's peak pool backlog (blocks filled to max_gas) fits its accounts: no
    'no account idle' under its own load. black-thursday's flood: 150/s into 500 ms blocks of
    about 43 transactions (1,000,000 gas / 23,250), 32/s more than they take for 14 s."""
    scenario = load_scenario(EXAMPLES / f"{name}.toml")
    needed = traffic_accounts_needed(scenario)
    assert needed <= scenario.live.anvil.accounts, (needed, scenario.live.anvil.accounts)
    if "black-thursday" in name:
        assert 900 < needed < 1100  # about (150 - 86) x 14 s of backlog + 75 sent since the last block


def test_the_accounts_a_schedule_needs_are_its_peak_backlog_plus_one_interval() -> None:
    # 2 x 50/s constant into 1 s blocks with room for 40 transactions (40 x a 64-byte one's
    # gas): 100 arrive a block, 60 more than it takes; after 4 s the backlog is 4 x 60 = 240,
    # and the fifth second's 100 are in the pool as its block is built: 340.
    scenario = _scenario("5s", "1s", 40 * gas_cap(64), "fee_priority", "50/s",
                         'agents.0.arrival={process="constant", rate="50/s"}',
                         'agents.1.arrival={process="constant", rate="50/s"}')
    assert traffic_accounts_needed(scenario) == 4 * 60 + 100


def test_anvil_refuses_what_it_cannot_do_naming_the_field() -> None:
    with pytest.raises(ScenarioError, match=r"anvil.toml:\d+: sequencer.policy"):
        _scenario("4s", "500ms", 30_000_000, "batch_auction")
    with pytest.raises(ScenarioError, match=r"anvil.toml:\d+: blocks.interval: anvil's block time is in whole"):
        _scenario("4s", "500500us")


def test_a_missing_anvil_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msgstorm.live.chain.anvil import INSTALL, find_anvil
    from msgstorm.live.servers import ServerError

    monkeypatch.setenv("MSGSTORM_ANVIL", str(tmp_path / "nothing"))
    with pytest.raises(ServerError, match=re.escape(INSTALL)):
        find_anvil()


# --- a real node ------------------------------------------------------------------------------


def test_every_transaction_is_accounted_for_once_and_the_base_fee_is_the_nodes(tmp_path: Path,
                                                                                user_node: Any) -> None:
    from msgstorm.runner import run

    # A block holds about 13 of these transactions: 80/s offered at 2 blocks a second fills
    # them past the target, so the base fee climbs and a backlog waits in the pool.
    scenario = user_node(_scenario("4s", "500ms", 300_000, "fee_priority", "40/s"))
    url = scenario.live.url
    first = int(_rpc(url, "eth_blockNumber"), 16) + 1
    result = run(scenario, tmp_path / "run")
    _rpc(url, "evm_setIntervalMining", 0)  # the chain stops here: what the pool holds stays there
    messages = _rows(result.run_dir, "messages")
    events = _rows(result.run_dir, "events")
    ids = [m["msg_id"] for m in messages]
    assert len(ids) == len(set(ids)) and ids  # one row a message
    # The chain, read from the node after the run, against the history.
    on_chain: dict[int, int] = {}
    blocks = _node_blocks(url, first)
    for block in blocks:
        for tx in block["transactions"]:
            header = decode(tx["input"])
            if header is not None:
                assert header[0] not in on_chain  # included once
                on_chain[header[0]] = int(block["number"], 16)
    # The history's chain ends at its last block; the node went on mining until stopped above.
    last = max(e["height"] for e in events if e["kind"] == "block_produced")
    committed = {m["msg_id"]: m["block"] for m in messages if m["status"] == "committed"}
    assert committed == {msg_id: n for msg_id, n in on_chain.items() if n <= last}
    pending = {m["msg_id"] for m in messages if m["status"] == "pending"}
    later = {msg_id for msg_id, n in on_chain.items() if n > last}
    assert later <= pending
    pool = _rpc(url, "txpool_status")
    statuses = Counter(m["status"] for m in messages)
    assert statuses["pending"] == len(later) + int(pool["pending"], 16) + int(pool["queued"], 16)
    assert statuses["committed"] > 0 and statuses["lost"] == 0
    assert set(statuses) <= {"committed", "pending", "rejected", "unsent"}
    assert not [e for e in events if e["kind"] == "client_error"]  # every sender idle when it sent
    rejected = sum(e["value"] for e in events if e["kind"] == "tx_rejected")
    assert statuses["rejected"] == rejected
    sent = [m for m in messages if m["t_sent"] is not None]
    assert all(m["t_sent"] <= m["t_received"] for m in sent)
    assert all(m["t_received"] <= m["t_committed"] for m in sent if m["status"] == "committed")
    # Base fee: the history's per block is the node's, and the node's follows EIP-1559.
    fees = {e["height"]: e["value"] for e in events if e["kind"] == "base_fee"}
    unit = scenario.live.anvil.fee_unit_wei
    by_number = {int(b["number"], 16): b for b in blocks}
    assert fees and all(round(fees[n] * unit) == int(by_number[n]["baseFeePerGas"], 16) for n in fees if n in by_number)
    climbed = 0
    for n in sorted(by_number)[1:]:
        parent = by_number[n - 1]
        base, used, limit = (int(parent[k], 16) for k in ("baseFeePerGas", "gasUsed", "gasLimit"))
        climbed += used > limit // 2
        # The rule the market's keepers bid by (rules/base_fee.py) is the node's.
        assert int(by_number[n]["baseFeePerGas"], 16) == next_base_fee_wei(base, used, limit), n
    assert climbed >= 2  # the test filled blocks past the target, so the rule was exercised both ways
    # The analysis reads the run as it reads a sim run: the wait in the pool is the queue wait.
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["latency_stages_ms"]["queue_wait"]["p50"] > 100  # a 500 ms block interval
    checks = {c["name"]: c["verdict"] for c in summary["checks"]}
    named = ("conservation", "stage-order", "committed-implies-sequenced", "delivery", "liveness")
    assert {name: checks[name] for name in named} == dict.fromkeys(named, "valid")


@pytest.mark.slow
def test_pipelined_sends_account_for_every_transaction_once(tmp_path: Path, user_node: Any) -> None:
    """At a rate where requests overlap on the pipelined connections (the next written before
    the last is answered), each transaction is one row, once on the node's chain, and its
    row's times in order."""
    from msgstorm.runner import run

    scenario = user_node(_scenario("3s", "500ms", 30_000_000, "fifo", "200/s", "live.anvil.connections=2"))
    url = scenario.live.url
    first = int(_rpc(url, "eth_blockNumber"), 16) + 1
    result = run(scenario, tmp_path / "run")
    _rpc(url, "evm_setIntervalMining", 0)
    messages = _rows(result.run_dir, "messages")
    ids = [m["msg_id"] for m in messages]
    assert len(ids) == len(set(ids)) and len(ids) > 900  # 400/s for 3 s, every one a row
    on_chain: dict[int, int] = {}
    for block in _node_blocks(url, first):
        for tx in block["transactions"]:
            header = decode(tx["input"])
            if header is not None:
                assert header[0] not in on_chain
                on_chain[header[0]] = int(block["number"], 16)
    statuses = Counter(m["status"] for m in messages)
    assert set(statuses) <= {"committed", "pending", "unsent"}, statuses
    committed = {m["msg_id"]: m["block"] for m in messages if m["status"] == "committed"}
    assert committed and all(on_chain[msg_id] == n for msg_id, n in committed.items())
    assert set(on_chain) <= set(ids)  # nothing on the chain the history does not have
    sent = sorted((m for m in messages if m["t_sent"] is not None), key=lambda m: m["t_sent"])
    assert all(m["t_intended"] <= m["t_sent"] <= m["t_received"] for m in sent)
    # Requests in flight together: a send written before an earlier one's answer came.
    overlapping = sum(later["t_sent"] < earlier["t_received"] and later["t_sent"] > earlier["t_sent"]
                      for earlier, later in zip(sent, sent[1:], strict=False))
    assert overlapping > 0


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["fee_priority", "fifo"])
def test_the_pool_orders_by_fee_or_by_arrival(tmp_path: Path, user_node: Any, policy: str) -> None:
    from msgstorm.runner import run

    # Blocks of about 13 transactions every second, 60/s offered: a backlog builds, and the
    # pool's order decides who waits.
    scenario = user_node(_scenario("5s", "1s", 300_000, policy, "30/s"))
    run(scenario, tmp_path / "run")
    rows = [m for m in _rows(tmp_path / "run", "messages") if m["status"] == "committed"]
    heads = sorted({m["t_committed"] for m in rows})
    # FIFO: a in the pool before b was sent (requests on parallel connections reach the node
    # in any order, so only an answer before the other's send orders them).
    orders = {"fee_priority": lambda a, b: a["fee"] > b["fee"], "fifo": lambda a, b: a["t_received"] < b["t_sent"]}
    inversions = dict.fromkeys(orders, 0)
    pairs = dict.fromkeys(orders, 0)
    for a in rows:
        for b in rows:
            # Both in the pool when a block was built: accepted before the head before it
            # (a head arrives after its block is built), neither included before it.
            accepted = max(a["t_received"], b["t_received"])
            later = [h for h in heads if h > accepted]
            if len(later) < 2 or min(a["t_committed"], b["t_committed"]) < later[1]:
                continue
            for name, first in orders.items():
                if first(a, b):
                    pairs[name] += 1
                    inversions[name] += a["seq_no"] > b["seq_no"]
    assert pairs[policy] > 100
    assert inversions[policy] == 0
    other = next(name for name in orders if name != policy)
    assert inversions[other] > 0  # the other order would not hold: the test tells them apart


@pytest.mark.slow
def test_a_node_killed_mid_run_ends_the_run_on_time_named_with_nothing_left(tmp_path: Path) -> None:
    require_anvil()
    scenario = tmp_path / "kill.toml"
    scenario.write_text(SCENARIO.format(duration="6s", interval="500ms", max_gas=30_000_000, policy="fee_priority",
                                        rate="40/s"))
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir, env={**os.environ})
    node = _under_way(run_dir, process)
    killed = time.monotonic()
    os.kill(node, signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - killed < 6 + 3 + 20  # at most the run's duration and drain, then the analysis
    events = _rows(run_dir, "events")
    kinds = Counter(e["kind"] for e in events)
    assert kinds["node_down"] == 1, stderr.decode()
    stop = next(json.loads(e["detail"]) for e in events if e["kind"] == "server_stop")
    assert stop.get("exited_early") is True
    cleanup = next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")
    assert cleanup["left"] == []
    assert not alive(node)
    statuses = Counter(m["status"] for m in _rows(run_dir, "messages"))
    assert statuses["committed"] > 0 and statuses["unsent"] > 0  # what the dead node could not take
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["messages"]["committed"] == statuses["committed"]


@pytest.mark.slow
def test_refusals_are_rejected_statuses_with_their_reason(tmp_path: Path, user_node: Any) -> None:
    from msgstorm.runner import run

    # One agent bids a fee cap under the base fee (1 gwei, falling at most 12.5% a block over
    # two seconds of empty blocks, so still above 0.5): the node refuses each of its transactions.
    scenario = user_node(_scenario("2s", "500ms", 30_000_000, "fee_priority", "20/s",
                                   "agents[0].fee=0.2"))
    run(scenario, tmp_path / "run")
    messages = _rows(tmp_path / "run", "messages")
    statuses = Counter((m["agent"], m["status"]) for m in messages)
    assert statuses[("low", "rejected")] > 10 and statuses[("low", "committed")] == 0
    assert statuses[("high", "committed")] > 10 and statuses[("high", "rejected")] == 0
    refused = [e for e in _rows(tmp_path / "run", "events") if e["kind"] == "tx_rejected"]
    assert [json.loads(e["detail"])["reason"] for e in refused] == ["fee_cap_below_base_fee"]
    assert refused[0]["value"] == statuses[("low", "rejected")]


def test_anvils_fee_ordered_pool_drops_a_senders_later_higher_fee_transaction(tmp_path: Path) -> None:
    """Why each transaction goes from an account with nothing in the pool (live/chain/sending.py):
    anvil 1.7 with ``--order fees`` drops a sender's nonce-1 transaction bidding more than its
    pending nonce-0 one. Should a later anvil fix it, this test says so."""
    binary = require_anvil()
    port = free_port()
    server = ManagedServer("anvil", [binary, "--port", str(port), "--accounts", "1", "--block-time", "1",
                                     "--order", "fees"], port, tmp_path, 20)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        sender = _rpc(url, "eth_accounts")[0]
        for nonce, fee_gwei in enumerate((10, 20)):
            _rpc(url, "eth_sendTransaction", {"from": sender, "to": "0x000000000000000000000000000000000000dEaD",
                                              "gas": hex(gas_cap(64)), "maxFeePerGas": hex(fee_gwei * 10**9),
                                              "maxPriorityFeePerGas": hex(fee_gwei * 10**9), "nonce": hex(nonce),
                                              "data": encode(nonce, 0, 0, 0, 64)})
        deadline = time.monotonic() + 10
        while int(_rpc(url, "eth_blockNumber"), 16) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert int(_rpc(url, "eth_getTransactionCount", sender, "latest"), 16) == 1  # nonce 1 never included
        pool = _rpc(url, "txpool_status")
        assert int(pool["pending"], 16) + int(pool["queued"], 16) == 0  # nor waiting: dropped
    finally:
        server.stop()


@pytest.mark.slow
def test_an_interrupted_run_stops_the_node_and_keeps_what_it_recorded(tmp_path: Path) -> None:
    require_anvil()
    scenario = tmp_path / "int.toml"
    scenario.write_text(SCENARIO.format(duration="30s", interval="500ms", max_gas=30_000_000, policy="fee_priority",
                                        rate="20/s"))
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir, env={**os.environ})
    node = _under_way(run_dir, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr.decode()  # ExitCode.INTERRUPTED
    assert not alive(node)
    events = _rows(run_dir, "events")
    assert [e["kind"] for e in events].count("interrupted") == 1
    assert next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")["left"] == []
    statuses = Counter(m["status"] for m in _rows(run_dir, "messages"))
    assert statuses["committed"] > 0 and statuses["unsent"] == 0 and statuses["lost"] == 0


@pytest.mark.slow
def test_transactions_the_node_drops_are_dropped_not_pending(tmp_path: Path, user_node: Any) -> None:
    from msgstorm.runner import run

    # Two accounts for 40/s: each sends while its last transaction still waits, and anvil's
    # fee-ordered pool drops those bidding above their predecessor (the test above).
    scenario = user_node(_scenario("3s", "500ms", 30_000_000, "fee_priority", "20/s", "live.anvil.accounts=2"))
    url = scenario.live.url
    run(scenario, tmp_path / "run")
    _rpc(url, "evm_setIntervalMining", 0)
    messages = _rows(tmp_path / "run", "messages")
    events = _rows(tmp_path / "run", "events")
    statuses = Counter(m["status"] for m in messages)
    assert statuses["dropped"] > 0 and statuses["committed"] > 0
    busy = [json.loads(e["detail"]) for e in events if e["kind"] == "client_error"]
    assert [b["client"] for b in busy] == ["senders"] and busy[0]["busy"] > 0
    last = max(e["height"] for e in events if e["kind"] == "block_produced")
    on_chain = {}
    for block in _node_blocks(url, 1):
        for tx in block["transactions"]:
            header = decode(tx["input"])
            if header is not None:
                on_chain[header[0]] = int(block["number"], 16)
    dropped = {m["msg_id"] for m in messages if m["status"] == "dropped"}
    assert not dropped & set(on_chain)  # none of them ever in a block
    pool = _rpc(url, "txpool_status")
    later = sum(1 for n in on_chain.values() if n > last)
    assert statuses["pending"] == later + int(pool["pending"], 16) + int(pool["queued"], 16)


# --- faults on the node -----------------------------------------------------------------------


def _fault_events(events: list[dict[str, Any]]) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(e["kind"], e["node"], json.loads(e["detail"])) for e in events if e["kind"] in ("fault_start", "fault_end")]


def test_a_toxic_that_changes_bytes_on_the_rpc_link_is_refused_naming_why() -> None:
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.toxic: a 'corrupt' toxic changes bytes on the node's "
                                            r"JSON-RPC link"):
        _scenario("4s", "500ms", 30_000_000, "fee_priority", "20/s",
                  'faults=[{kind="toxic", at="1s", duration="1s", toxic="corrupt", link="publisher"}]')


@pytest.mark.slow
def test_a_latency_toxic_on_the_rpc_link_delays_each_answer_sent_under_it(tmp_path: Path) -> None:
    from msgstorm.runner import run

    require_anvil()
    scenario = _scenario("4s", "200ms", 30_000_000, "fee_priority", "20/s",
                         'faults=[{kind="toxic", at="1500ms", duration="1500ms", toxic="latency", latency="300ms", '
                         'link="publisher"}]')
    result = run(scenario, tmp_path / "run")
    events = _rows(result.run_dir, "events")
    faults = _fault_events(events)
    assert [kind for kind, _, _ in faults] == ["fault_start", "fault_end"]
    start, end = (next(e["t"] for e in events if e["kind"] == kind) for kind in ("fault_start", "fault_end"))
    messages = _rows(result.run_dir, "messages")
    sent = [m for m in messages if m["t_sent"] is not None]
    under = [m for m in sent if start <= m["t_sent"] and m["t_received"] < end]
    outside = [m for m in sent if m["t_received"] < start or m["t_sent"] >= end]
    assert under and outside
    # Each answer under the toxic waited its 300 ms on the link. Outside its window the link adds
    # nothing: most answers come back in less. Not every one: a stall of the node or the proxy
    # on a loaded machine holds the answers due while it lasts, a second's worth at most.
    assert all(m["t_received"] - m["t_sent"] >= 300_000_000 for m in under)
    assert np.median([m["t_received"] - m["t_sent"] for m in outside]) < 300_000_000
    statuses = Counter(m["status"] for m in messages)
    assert statuses["committed"] == len(sent) and statuses["lost"] == 0
    cleanup = next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")
    assert cleanup["left"] == [] and cleanup["proxies_closed"] == 1


@pytest.mark.slow
def test_a_paused_node_includes_nothing_sent_during_the_pause_until_it_resumes(tmp_path: Path) -> None:
    from msgstorm.runner import run

    require_anvil()
    at, pause = 1_500_000_000, 1_500_000_000
    scenario = _scenario("4s", "200ms", 30_000_000, "fee_priority", "20/s",
                         'faults=[{kind="pause", at="1500ms", duration="1500ms", node="anvil"}]')
    result = run(scenario, tmp_path / "run")
    events = _rows(result.run_dir, "events")
    faults = _fault_events(events)
    assert [(kind, node) for kind, node, _ in faults] == [("fault_start", "anvil"), ("fault_end", "anvil")]
    start, end = (next(e["t"] for e in events if e["kind"] == kind) for kind in ("fault_start", "fault_end"))
    # Each edge applied at its time on the run's clock or after (a run stalled by a loaded
    # machine applies one late: the window's length moves by as much).
    assert start >= at and end >= at + pause
    messages = _rows(result.run_dir, "messages")
    during = [m for m in messages if m["t_sent"] is not None and start <= m["t_sent"] < end - 100_000_000]
    assert during
    assert all(m["status"] == "committed" for m in during), Counter(m["status"] for m in during)
    # Nothing sent during the pause is in a block before the node resumed; the first sent waits
    # about the window out (sent within a few of the 20/s arrivals of its start).
    assert all(m["t_committed"] >= end for m in during)
    latencies = sorted(m["t_committed"] - m["t_intended"] for m in during)
    assert latencies[-1] >= end - start - 150_000_000
    statuses = Counter(m["status"] for m in messages)
    assert statuses["lost"] == 0 and statuses["committed"] > len(during)
    assert not [e for e in events if e["kind"] == "node_down"]
    cleanup = next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")
    assert cleanup["left"] == []


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "signal_name"), [
    ('{kind="crash", at="2500ms", restart_after="1s", node="anvil"}', "SIGKILL"),
    ('{kind="restart", at="2500ms", down="1s", node="anvil"}', "SIGTERM"),
])
def test_a_node_stopped_by_a_fault_restarts_from_its_saved_chain_and_every_transaction_is_accounted_once(
        tmp_path: Path, fault: str, signal_name: str) -> None:
    from msgstorm.runner import run

    binary = require_anvil()
    # Sends go on well past a restart: a node of 1,000 accounts took 9 s to start again at load 5.
    scenario = _scenario("20s", "500ms", 30_000_000, "fee_priority", "20/s", f"faults=[{fault}]")
    result = run(scenario, tmp_path / "run")
    events = _rows(result.run_dir, "events")
    faults = _fault_events(events)
    errors = [json.loads(e["detail"]) for e in events if e["kind"] == "client_error"]
    assert [(kind, node) for kind, node, _ in faults] == [("fault_start", "anvil"), ("fault_end", "anvil")], errors
    assert faults[0][2]["signal"] == signal_name
    # A SIGKILL lands while the state file anvil rewrites in place is whole (held a moment if not).
    assert ("held_for_whole_ms" in faults[0][2]) == (signal_name == "SIGKILL")
    # While the node is down each send is lost, said once; nothing else went wrong.
    said = [e for e in errors if "lost_to_faults" not in e]
    assert said == []
    if signal_name == "SIGTERM":  # a graceful stop writes the whole chain: nothing to roll back
        assert not [e for e in events if e["kind"] == "canonical_reorg"]
    restarted = [json.loads(e["detail"]) for e in events if e["kind"] == "server_start"
                 and json.loads(e["detail"]).get("restarted")]
    assert len(restarted) == 1 and restarted[0]["pid"] != faults[0][2]["pid"]
    assert not [e for e in events if e["kind"] == "node_down"]
    crash_t = next(e["t"] for e in events if e["kind"] == "fault_start")
    heights = [e["height"] for e in events if e["kind"] == "block_produced"]
    assert heights == sorted(set(heights))  # one chain, each block once
    after = [e for e in events if e["kind"] == "block_produced" and e["t"] > crash_t + 1_000_000_000]
    assert after and sum(e["value"] for e in after) > 0  # the chain goes on past the restart, with transactions
    messages = _rows(result.run_dir, "messages")
    ids = [m["msg_id"] for m in messages]
    assert len(ids) == len(set(ids))
    statuses = Counter(m["status"] for m in messages)
    assert set(statuses) <= {"committed", "pending", "rejected", "lost", "dropped", "unsent"}
    assert statuses["committed"] > 0
    assert statuses["lost"] == sum(e.get("lost_to_faults", 0) for e in errors) > 0
    # The chain msgstorm recorded is the node's: the state the node wrote at its last exit,
    # loaded into a fresh anvil, holds each committed transaction once, in its block.
    state = result.run_dir / "servers" / "anvil-state.json"
    assert state.is_file()
    port = free_port()
    node = ManagedServer("anvil-check", [binary, "--host", "127.0.0.1", "--port", str(port), "--load-state",
                                         str(state), "--no-mining"], port, tmp_path / "check", 20)
    node.start()
    try:
        url = f"http://127.0.0.1:{port}"
        on_chain: dict[int, int] = {}
        for block in _node_blocks(url, 1):
            for tx in block["transactions"]:
                header = decode(tx["input"])
                if header is not None:
                    assert header[0] not in on_chain
                    on_chain[header[0]] = int(block["number"], 16)
    finally:
        node.stop()
    last = max(heights)
    committed = {m["msg_id"]: m["block"] for m in messages if m["status"] == "committed"}
    assert committed == {msg_id: n for msg_id, n in on_chain.items() if n <= last}
    assert {msg_id for msg_id, n in on_chain.items() if n > last} <= {m["msg_id"] for m in messages
                                                                       if m["status"] == "pending"}


@pytest.mark.slow
def test_a_node_crashed_for_good_ends_the_run_on_time_and_is_named(tmp_path: Path) -> None:
    from msgstorm.runner import run

    require_anvil()
    scenario = _scenario("6s", "500ms", 30_000_000, "fee_priority", "20/s",
                         'faults=[{kind="crash", at="2s", node="anvil"}]')
    started = time.monotonic()
    result = run(scenario, tmp_path / "run")
    assert time.monotonic() - started < 6 + 3 + 60 + 20  # duration + drain + the start (60 s at most) and the analysis
    events = _rows(result.run_dir, "events")
    faults = _fault_events(events)
    assert [(kind, node) for kind, node, _ in faults] == [("fault_start", "anvil")]
    down = [e for e in events if e["kind"] == "node_down"]
    assert len(down) == 1 and down[0]["node"] == "anvil"
    assert "crash fault" in json.loads(down[0]["detail"])["error"]
    crash_t = next(e["t"] for e in events if e["kind"] == "fault_start")
    assert down[0]["t"] >= crash_t
    end = next(e["t"] for e in events if e["kind"] == "run_end")
    assert end < 6_000_000_000  # the sending ended with the node, not at the schedule's end
    cleanup = next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")
    assert cleanup["left"] == []
    messages = _rows(result.run_dir, "messages")
    statuses = Counter(m["status"] for m in messages)
    assert statuses["committed"] > 0 and statuses["unsent"] > 0
    # Every message the schedule meant before the run's end has one row, the ones after the
    # node's loss unsent: the same schedule, generated again from the run's seed.
    traffic_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)[0]
    schedule = [int(m) for batch in generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window)
                for m, t in zip(batch.msg_id, batch.t_intended, strict=True) if t < scenario.run.duration]
    assert len(schedule) > 200  # two agents at 20/s for 6 s
    assert sorted(m["msg_id"] for m in messages) == schedule
    late = [m for m in messages if m["t_intended"] > down[0]["t"] + 1_000_000_000]
    assert late and {m["status"] for m in late} == {"unsent"}
    assert all(m["t_received"] is None for m in messages if m["status"] in ("lost", "unsent"))
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["offered_rate_per_s"] == pytest.approx(len(schedule) / 6, abs=0.01)  # the schedule / run.duration


@pytest.mark.slow
def test_a_users_node_killed_mid_run_is_named_once_and_ends_the_sending(tmp_path: Path) -> None:
    from msgstorm.runner import run

    binary = require_anvil()
    scenario = _scenario("8s", "200ms", 30_000_000, "fee_priority", "20/s")
    port = free_port()
    server = ManagedServer("anvil", AnvilNode(scenario, tmp_path).argv(binary, port), port, tmp_path / "node", 20)
    server.start()
    url = f"http://127.0.0.1:{port}"
    scenario = scenario.model_copy(update={"live": scenario.live.model_copy(update={"url": url})})
    killed: list[float] = []

    def kill_once_under_way() -> None:
        # Once a block holds the run's transactions, and another follows it.
        deadline, first = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            try:
                if first is None and _rpc(url, "eth_getBlockByNumber", "latest", False)["transactions"]:
                    first = int(_rpc(url, "eth_blockNumber"), 16)
                elif first is not None and int(_rpc(url, "eth_blockNumber"), 16) >= first + 2:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        killed.append(time.monotonic())
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_once_under_way)
    killer.start()
    try:
        result = run(scenario, tmp_path / "run")
    finally:
        killer.join()
        server.stop()
    events = _rows(result.run_dir, "events")
    down = [e for e in events if e["kind"] == "node_down"]
    assert len(down) == 1 and url in json.loads(down[0]["detail"])["error"]
    # The outage is said once: no error of its own for each send the dead node failed.
    errors = [json.loads(e["detail"]) for e in events if e["kind"] == "client_error"]
    assert [e for e in errors if e["client"] in ("sender", "heads", "blocks")] == []
    end = next(e["t"] for e in events if e["kind"] == "run_end")
    assert end < 8_000_000_000 - 1_000_000_000  # ended with the node, not at run.duration
    messages = _rows(result.run_dir, "messages")
    statuses = Counter(m["status"] for m in messages)
    assert statuses["committed"] > 0 and statuses["unsent"] > 0
    assert all(m["t_received"] is None for m in messages if m["status"] in ("lost", "unsent"))
    assert {m["status"] for m in messages if m["t_intended"] > down[0]["t"] + 500_000_000} == {"unsent"}
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["connections"]["errors"] == 0
