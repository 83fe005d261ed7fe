"""The validator-network target against real CometBFT validators: every transaction accounted
for once, the counts equal to what the validators' own block stores hold, one block per
height on every validator, and nothing left running however msgstorm ends."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from conftest import require_cometbft, run_in_process

from msgstorm.live.chain.comet_target import block_number, decode_tx, encode_tx, reason_of
from msgstorm.live.chain.cometbft import _set
from msgstorm.live.nemesis import alive
from msgstorm.live.servers import ServerError, free_port
from msgstorm.scenario import parse_scenario
from msgstorm.scenario.errors import ScenarioError

SCENARIO = """
target = "cometbft"
[run]
name = "cometbft-test"
seed = 5
duration = "{duration}"
drain = "5s"
[blocks]
interval = "300ms"
[live]
start_timeout = "30s"
[live.cometbft]
validators = {validators}
[[agents]]
name = "a"
arrival = {{ process = "poisson", rate = "{rate}" }}
size = "40B"
keys = 100
"""


def _rows(run_dir: Path, table: str) -> list[dict[str, Any]]:
    return ds.dataset(run_dir / "history" / table, format="parquet").to_table().to_pylist()  # type: ignore[no-any-return]


def _rpc(url: str, method: str, **params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["result"]


# --- the transaction and the config, by hand ------------------------------------------------


def test_a_transaction_is_unique_key_value_bytes_of_the_message_size_and_reads_back() -> None:
    tx = encode_tx(42, 1, 0, 7, 20)
    assert tx == b"m42=1.0.7" + b"x" * 11  # 9 bytes of header, padded to 20
    assert decode_tx(tx) == 42
    assert encode_tx(123456, 0, 2, 10**12, 4) == b"m123456=0.2.1000000000000"  # longer than size: not cut
    assert decode_tx(b"k0=v") is None and decode_tx(b"m12") is None and decode_tx(b"mx=1") is None


def test_a_block_id_is_the_first_60_bits_of_its_hash_and_reasons_name_the_validators_words() -> None:
    assert block_number("001D2F22C3A7343AEACBC51B92DC5116") == 0x001D2F22C3A7343
    assert block_number("F" * 64) == 2**60 - 1  # within int64
    assert reason_of("tx already exists in cache") == "duplicate"
    assert reason_of("mempool is full: number of txs 5000 (max: 5000)") == "mempool_full"
    assert reason_of("something else") == "other"


def test_a_config_key_is_set_in_its_own_section_and_a_missing_one_is_an_error() -> None:
    text = 'proxy_app = "tcp://x"\n[rpc]\nladdr = "tcp://a"\n[p2p]\nladdr = "tcp://b"\npex = true\n'
    text = _set(text, "p2p", "laddr", '"tcp://127.0.0.1:5"')
    assert text == 'proxy_app = "tcp://x"\n[rpc]\nladdr = "tcp://a"\n[p2p]\nladdr = "tcp://127.0.0.1:5"\npex = true\n'
    assert _set(text, "", "proxy_app", '"kvstore"').startswith('proxy_app = "kvstore"\n')
    with pytest.raises(ServerError, match=r"no 'seeds' in \[p2p\]"):
        _set(text, "p2p", "seeds", '""')


def test_what_the_validators_cannot_do_is_refused_naming_file_line_and_field() -> None:
    text = (SCENARIO.format(duration="2s", validators=4, rate="10/s")
            + '[[faults]]\nkind = "toxic"\nat = "1s"\nduration = "1s"\ntoxic = "latency"\nlatency = "10ms"\n')
    with pytest.raises(ScenarioError, match=r"c\.toml:20: faults\[0\]\.kind: a 'latency' toxic .* a 'partition'"):
        parse_scenario(text, source="c.toml")
    with pytest.raises(ScenarioError, match="entry 4 is not a validator"):
        parse_scenario(SCENARIO.format(duration="2s", validators=4, rate="10/s").replace(
            "validators = 4", "validators = 4\nentry = 4"), source="c.toml")
    with pytest.raises(ScenarioError, match="live.url: msgstorm starts the validators"):
        parse_scenario(SCENARIO.format(duration="2s", validators=4, rate="10/s").replace(
            '[live]\n', '[live]\nurl = "http://127.0.0.1:26657"\n'), source="c.toml")


def test_a_missing_binary_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from msgstorm.live.chain.cometbft import find_cometbft

    monkeypatch.setenv("MSGSTORM_COMETBFT", str(tmp_path / "nowhere"))
    with pytest.raises(ServerError, match="go install github.com/cometbft/cometbft/cmd/cometbft@v0.38.19"):
        find_cometbft()


# --- against real validators ---------------------------------------------------------------


def _inspect(binary: str, home: Path) -> dict[int, tuple[str, list[bytes]]]:
    """A stopped validator's own block store, read with ``cometbft inspect``: height -> (block
    hash, transactions)."""
    port = free_port()
    process = subprocess.Popen([binary, "inspect", "--home", str(home), "--rpc.laddr", f"tcp://127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                top = int(_rpc(url, "blockchain", minHeight="1", maxHeight="1")["last_height"])
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        blocks: dict[int, tuple[str, list[bytes]]] = {}
        for height in range(1, top + 1):
            found = _rpc(url, "block", height=str(height))
            blocks[height] = (found["block_id"]["hash"], [base64.b64decode(t) for t in found["block"]["data"]["txs"]])
        return blocks
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
def test_every_transaction_is_accounted_for_once_and_the_validators_own_blocks_agree(tmp_path: Path) -> None:
    binary = require_cometbft()
    from msgstorm.runner import run

    scenario = parse_scenario(SCENARIO.format(duration="6s", validators=4, rate="60/s"), source="c.toml")
    run(scenario, tmp_path / "run")
    run_dir = tmp_path / "run"
    messages = _rows(run_dir, "messages")
    ids = [m["msg_id"] for m in messages]
    assert len(ids) == len(set(ids)) > 200  # one row each; 60/s for 6 s is about 360
    statuses = Counter(m["status"] for m in messages)
    assert set(statuses) <= {"committed", "rejected", "pending", "unsent"}, statuses
    assert statuses["committed"] > 0.9 * len(ids)
    # Each validator's own store, read after the run: the transactions msgstorm sent in
    # it, at each height, equal the history's, and every validator holds the same block.
    stores = {f"validator-{i}": _inspect(binary, run_dir / "servers" / "cometbft" / f"validator-{i}")
              for i in range(4)}
    in_store: dict[int, int] = {}
    for blocks in stores.values():
        for height, (_, txs) in blocks.items():
            for tx in txs:
                msg_id = decode_tx(tx)
                assert msg_id is not None
                assert in_store.setdefault(msg_id, height) == height  # one height on every validator
    committed = {m["msg_id"]: m["block"] for m in messages if m["status"] == "committed"}
    assert committed == in_store
    common = min(max(blocks) for blocks in stores.values())
    for height in range(1, common + 1):
        assert len({blocks[height][0] for blocks in stores.values()}) == 1, height
    # The history's per-validator commits: each validator's rows name the store's block at
    # each height, and every committed message has a delivery row on each validator that
    # committed its height.
    finalized = _rows(run_dir, "finalized")
    assert finalized
    for row in finalized:
        assert row["block"] == block_number(stores[row["node"]][row["height"]][0])
    heights_of: dict[str, set[int]] = defaultdict(set)
    for row in finalized:
        heights_of[row["node"]].add(row["height"])
    expected = {(msg_id, node) for msg_id, height in committed.items() for node, heights in heights_of.items()
                if height in heights}
    delivered = [(d["msg_id"], d["node"]) for d in _rows(run_dir, "deliveries")]
    assert len(delivered) == len(set(delivered))
    assert set(delivered) == expected
    summary = json.loads((run_dir / "summary.json").read_text())
    verdicts = {check["name"]: check["verdict"] for check in summary["checks"]}
    assert verdicts["safety"] == "valid" and verdicts["delivery"] == "valid", verdicts
    assert summary["messages"]["committed"] == statuses["committed"]
    # Per validator: its heights are its finalized rows, and every height the history
    # holds was proposed by exactly one validator.
    table = {row["name"]: row for row in summary["validators"]["validators"]}
    assert {name: row["heights"] for name, row in table.items()} == {n: len(h) for n, h in heights_of.items()}
    made = {row["height"] for row in finalized}
    assert sum(row["proposed"] for row in table.values()) == len(made)
    assert [h["height"] for h in summary["validators"]["heights"]] == sorted(made)


def _validator_pids(run_dir: Path, count: int, process: subprocess.Popen[bytes]) -> list[int]:
    """The validators' pids once each has made a block of the run (its log says so)."""
    deadline = time.monotonic() + 90
    pids: list[int] = []
    for i in range(count):
        pid_file = run_dir / "servers" / f"validator-{i}.pid"
        while not pid_file.is_file() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline and process.poll() is None, process.stderr and process.stderr.read()
            time.sleep(0.05)
        pids.append(int(pid_file.read_text()))
    events = run_dir / "history" / "events"
    while not (events.is_dir() and any(events.iterdir())):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    time.sleep(2)  # the run under way
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_no_validator_outlives_msgstorm_stopped_or_killed(tmp_path: Path, signum: int) -> None:
    require_cometbft()
    scenario = tmp_path / "c.toml"
    scenario.write_text(SCENARIO.format(duration="30s", validators=4, rate="20/s"))
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir, env={**os.environ})
    pids = _validator_pids(run_dir, 4, process)
    assert all(alive(pid) for pid in pids)
    process.send_signal(signum)
    process.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, [pid for pid in pids if alive(pid)]
        time.sleep(0.05)
    if signum == signal.SIGTERM:  # stopped: the run's end and its cleanup written
        events = _rows(run_dir, "events")
        cleanup = next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")
        assert cleanup["left"] == []
        stopped = sorted(json.loads(e["detail"])["name"] for e in events if e["kind"] == "server_stop")
        assert stopped == ["msgstorm-route-proxy", "validator-0", "validator-1", "validator-2", "validator-3"]
