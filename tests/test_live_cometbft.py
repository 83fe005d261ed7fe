"""The validator-network target against real CometBFT validators: every transaction accounted
for once, the counts equal to what the validators' own block stores hold, one block per
height on every validator, and nothing left running however msgstorm ends."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from conftest import cometbft_inspect, require_cometbft, run_in_process

from msgstorm.analysis.comet_costs import comet_costs
from msgstorm.history import read_history
from msgstorm.live.chain.comet_target import block_number, decode_tx, encode_tx, reason_of
from msgstorm.live.chain.cometbft import _set
from msgstorm.live.nemesis import alive
from msgstorm.live.servers import ServerError
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
    with pytest.raises(ScenarioError, match=r"c\.toml:19: faults\[0\]\.link: a toxic on target 'cometbft' acts on the "
                                            r"validators' links: link = \"routes\""):
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
    with cometbft_inspect(binary, home) as (call, top):
        blocks: dict[int, tuple[str, list[bytes]]] = {}
        for height in range(1, top + 1):
            found = call("block", height=str(height))
            blocks[height] = (found["block_id"]["hash"], [base64.b64decode(t) for t in found["block"]["data"]["txs"]])
        return blocks


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
    # The latency split: the validator's answer, then the proposal of the block holding it
    # (t_dequeued = t_sequenced: the mempool's wait ends there), then its first commit.
    done = [m for m in messages if m["status"] == "committed"]
    assert all(m["t_sent"] <= m["t_received"] <= m["t_dequeued"] == m["t_sequenced"] <= m["t_committed"] for m in done)
    assert sum(m["t_dequeued"] < m["t_committed"] for m in done) > 0.9 * len(done)  # a proposal precedes its commit
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
    assert verdicts["safety"] == verdicts["delivery"] == verdicts["ordering"] == "valid", verdicts
    assert summary["messages"]["committed"] == statuses["committed"]
    # Per validator: its heights are its finalized rows, and every height the history
    # holds was proposed by exactly one validator.
    table = {row["name"]: row for row in summary["validators"]["validators"]}
    assert {name: row["heights"] for name, row in table.items()} == {n: len(h) for n, h in heights_of.items()}
    made = {row["height"] for row in finalized}
    assert sum(row["proposed"] for row in table.values()) == len(made)
    assert [h["height"] for h in summary["validators"]["heights"]] == sorted(made)
    # report.html shows those numbers: each validator's row, read back.
    page = (run_dir / "report.html").read_text()
    shown = page[page.index('id="validators-table"'):]
    shown = shown[:shown.index("</table>")]
    rows = {cells[0]: cells[1:] for cells in (re.findall(r"<td[^>]*>([^<]*)</td>", row)
                                              for row in re.findall(r"<tr>(.*?)</tr>", shown)) if cells}
    assert {name: (int(cells[0]), int(cells[1]), int(cells[7].replace(",", ""))) for name, cells in rows.items()} == {
        name: (row["heights"], row["proposed"], row["height_lag_max"]) for name, row in table.items()}
    assert page.count('<tr><td class="num">', page.index('id="heights-table"')) >= len(made)
    # Each validator's own counters, read before it stopped: the heights and transactions
    # the history committed, but for the last height or so (the median validator's).
    costs = comet_costs(read_history(run_dir))
    assert costs is not None and costs.validators == 4
    assert max(made) - 1 <= costs.heights <= max(made) + 1
    # A validator's transaction counter holds its heights' transactions: the median's lies
    # between the stores' count up to one height below the median height and one above (on a
    # loaded machine a run makes few heights, the last of them holding most of the sends).
    per_height = Counter(in_store.values())
    up_to = [sum(n for height, n in per_height.items() if height <= top)
             for top in (costs.heights - 1, costs.heights + 1)]
    assert up_to[0] <= costs.transactions <= up_to[1], (costs.transactions, sorted(per_height.items()))
    assert costs.check_tx_ns > 0 and costs.copies_per_tx > 0 and "Propose" in costs.step_ms


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


# --- faults on validators ------------------------------------------------------------------

# One round of a height: propose, prevote and precommit timeouts, then timeout_commit.
_ROUND_S = 1.0 + 0.5 + 0.5 + 0.3


def _fault_times(events: list[dict[str, Any]]) -> tuple[float, float]:
    start = next(e["t"] for e in events if e["kind"] == "fault_start") / 1e9
    end = next(e["t"] for e in events if e["kind"] == "fault_end") / 1e9
    return start, end


@pytest.mark.slow
def test_a_partition_without_a_two_thirds_side_halts_the_chain_until_it_heals(tmp_path: Path) -> None:
    require_cometbft()
    from msgstorm.runner import run

    text = SCENARIO.format(duration="12s", validators=4, rate="30/s").replace("drain = \"5s\"", "drain = \"10s\"") + (
        '[[faults]]\nkind = "partition"\nat = "3s"\nduration = "4s"\n'
        'groups = [["validator-0", "validator-1"], ["validator-2", "validator-3"]]\n')
    run(parse_scenario(text, source="c.toml"), tmp_path / "run")
    run_dir = tmp_path / "run"
    events = _rows(run_dir, "events")
    start, end = _fault_times(events)
    commits = sorted(e["t"] / 1e9 for e in events if e["kind"] == "block_committed")
    # Two against two: no side has the votes of more than two thirds, so no validator
    # commits once the height under way at the cut has run out of its round.
    assert [t for t in commits if start + _ROUND_S < t < end] == []
    assert any(t > end for t in commits)  # and commits came back after the heal
    summary = json.loads((run_dir / "summary.json").read_text())
    halt = summary["validators"]
    assert start - _ROUND_S <= halt["halt_from_s"] <= start + _ROUND_S
    assert end <= halt["halt_to_s"] < end + 10  # the validators dial each other again within seconds
    assert halt["halt_to_s"] - halt["halt_from_s"] >= end - start - _ROUND_S
    statuses = Counter(m["status"] for m in _rows(run_dir, "messages"))
    assert set(statuses) == {"committed"}, statuses  # what waited in the mempools committed after the heal
    verdicts = {check["name"]: check["verdict"] for check in summary["checks"]}
    assert verdicts["safety"] == "valid"
    # The block committed after the heal was proposed in a later round than the one cut
    # off: its messages' proposal time is that block's, never before they were sent.
    assert verdicts["ordering"] == "valid"
    done = _rows(run_dir, "messages")
    assert all(m["t_sent"] <= m["t_received"] <= m["t_dequeued"] <= m["t_committed"] for m in done)


@pytest.mark.slow
def test_a_validator_killed_below_one_third_does_not_stop_the_chain_and_catches_up_on_restart(
        tmp_path: Path) -> None:
    require_cometbft()
    from msgstorm.runner import run

    # Down 8 s: long beside the two rounds a height validator-3 was to propose takes.
    text = SCENARIO.format(duration="16s", validators=4, rate="30/s").replace(
        "validators = 4", "validators = 4\nentry = 0") + (
        '[[faults]]\nkind = "crash"\nat = "3s"\nrestart_after = "8s"\nnode = "validator-3"\n')
    run(parse_scenario(text, source="c.toml"), tmp_path / "run")
    run_dir = tmp_path / "run"
    events = _rows(run_dir, "events")
    start, end = _fault_times(events)
    by_node: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for e in events:
        if e["kind"] == "block_committed":
            by_node[e["node"]].append((e["t"] / 1e9, e["height"]))
    # Three of four validators hold 3/4 > 2/3 of the votes: they go on committing while
    # validator-3 is down, never more than two rounds and a block apart. A height validator-3
    # was to propose waits out round 0's timeouts and commits in round 1, whose steps on a
    # loaded machine take up to their timeouts too (one such height took 3 s at load).
    for name in ("validator-0", "validator-1", "validator-2"):
        during = [t for t, _ in sorted(by_node[name]) if start <= t <= end]
        assert len(during) >= 2, name
        marks = [start, *during, end]
        assert max(b - a for a, b in zip(marks, marks[1:], strict=False)) < 2 * _ROUND_S + 1.5, name
    # validator-3 commits nothing while killed, and after its restart (its home kept) it
    # commits the heights it missed and the chain's top.
    assert [t for t, _ in by_node["validator-3"] if start + 0.5 < t < end] == []
    top = max(h for rows in by_node.values() for _, h in rows)
    heights_3 = {h for _, h in by_node["validator-3"]}
    assert max(heights_3) >= top - 1
    finalized = _rows(run_dir, "finalized")
    assert len({(r["height"], r["block"]) for r in finalized}) == len({r["height"] for r in finalized})
    statuses = Counter(m["status"] for m in _rows(run_dir, "messages"))
    assert set(statuses) == {"committed"}, statuses


@pytest.mark.slow
def test_a_full_mempool_refuses_with_its_reason_and_every_refusal_is_a_rejected_row(tmp_path: Path) -> None:
    require_cometbft()
    from msgstorm.runner import run

    # 100/s into one validator whose mempool holds 20, a block every second or so: most
    # sends find it full.
    text = SCENARIO.format(duration="4s", validators=4, rate="100/s").replace(
        "validators = 4", "validators = 4\nentry = 0\nmempool_size = 20").replace('interval = "300ms"',
                                                                                 'interval = "1s"')
    run(parse_scenario(text, source="c.toml"), tmp_path / "run")
    run_dir = tmp_path / "run"
    statuses = Counter(m["status"] for m in _rows(run_dir, "messages"))
    refused = [e for e in _rows(run_dir, "events") if e["kind"] == "tx_rejected"]
    assert [json.loads(e["detail"])["reason"] for e in refused] == ["mempool_full"]
    assert "mempool is full" in json.loads(refused[0]["detail"])["error"]
    assert statuses["rejected"] == refused[0]["value"] > 0
    # Nothing lost: what the mempool still held when the drain ended is pending, at most its 20.
    assert set(statuses) <= {"committed", "rejected", "pending"} and statuses["pending"] <= 20, statuses
    mempools = [e["value"] for e in _rows(run_dir, "events") if e["kind"] == "queue_depth" and e["node"] == "validator-0"]
    assert max(mempools) <= 20


@pytest.mark.slow
def test_a_paused_validator_commits_nothing_while_stopped_and_every_height_after(tmp_path: Path) -> None:
    require_cometbft()
    from msgstorm.runner import run

    # Paused 10 s: the three others wait out a round the paused one was to propose, which on a
    # loaded machine took the whole of a 3 s pause once, and of a 6 s one beside two CPU hogs
    # (the next round's proposal came late too). Desynchronised from 4 s behind: the catch-up
    # after the pause takes a few seconds, the pause itself (not counted: down) 10.
    text = SCENARIO.format(duration="18s", validators=4, rate="20/s").replace(
        "validators = 4", "validators = 4\nentry = 0") + (
        '[desync]\nmin_duration = "4s"\n'
        '[[faults]]\nkind = "pause"\nat = "3s"\nduration = "10s"\nnode = "validator-1"\n')
    run(parse_scenario(text, source="c.toml"), tmp_path / "run")
    run_dir = tmp_path / "run"
    events = _rows(run_dir, "events")
    start, end = _fault_times(events)
    paused = sorted((e["t"] / 1e9, e["height"]) for e in events
                    if e["kind"] == "block_committed" and e["node"] == "validator-1")
    others = {e["height"] for e in events if e["kind"] == "block_committed" and e["node"] == "validator-0"}
    assert [t for t, _ in paused if start + 0.2 < t < end] == []  # SIGSTOPped: nothing
    during = {e["height"] for e in events if e["kind"] == "block_committed" and e["node"] == "validator-0"
              and start + 0.2 < e["t"] / 1e9 < end}
    assert during  # three of four went on
    # After SIGCONT validator-1 commits each height it missed, and ends at the others' top.
    assert during <= {h for _, h in paused}
    assert max(h for _, h in paused) >= max(others) - 1
    summary = json.loads((run_dir / "summary.json").read_text())
    lag = {v["name"]: v["height_lag_max"] for v in summary["validators"]["validators"]}
    assert lag["validator-1"] >= 1  # it fell behind the heights made while it was stopped
    assert not [e for e in events if e["kind"] == "desync_start"]  # stopped by a fault: down, not desynchronised


def test_a_toxic_between_groups_of_validators_is_checked_where_it_is_written() -> None:
    base = SCENARIO.format(duration="4s", validators=4, rate="10/s")
    toxic = '[[faults]]\nkind = "toxic"\nat = "1s"\nduration = "1s"\ntoxic = "latency"\nlatency = "50ms"\n'
    with pytest.raises(ScenarioError, match=r'c\.toml:\d+: faults\[0\]\.toxic\.between: names groups of servers: it needs '
                                            r'link = "routes"'):
        parse_scenario(base + toxic + 'between = [["validator-0"], ["validator-1"]]\n', source="c.toml")
    with pytest.raises(ScenarioError, match=r"unknown server 'validator-9'"):
        parse_scenario(base + toxic + 'link = "routes"\nbetween = [["validator-0"], ["validator-9"]]\n',
                       source="c.toml")
    with pytest.raises(ScenarioError, match=r"between: \['validator-0'\] in both groups"):
        parse_scenario(base + toxic + 'link = "routes"\nbetween = [["validator-0"], ["validator-0"]]\n',
                       source="c.toml")
    scenario = parse_scenario(base + toxic + 'link = "routes"\nbetween = [["validator-0", "validator-1"], '
                                             '["validator-2", "validator-3"]]\n', source="c.toml")
    assert scenario.faults[0].between == [["validator-0", "validator-1"], ["validator-2", "validator-3"]]  # type: ignore[union-attr]
    # Off a cluster's routes a toxic on them is refused, naming the field.
    with pytest.raises(ScenarioError, match=r'faults\[0\]\.link: a toxic on link = "routes"'):
        parse_scenario(base.replace('target = "cometbft"', 'target = "redis"') + toxic + 'link = "routes"\n',
                       source="c.toml")


@pytest.mark.slow
def test_latency_between_two_halves_of_the_validators_slows_every_height_and_no_more_after(tmp_path: Path) -> None:
    require_cometbft()
    from msgstorm.runner import run

    text = SCENARIO.format(duration="14s", validators=4, rate="20/s") + (
        '[[faults]]\nkind = "toxic"\nat = "5s"\nduration = "5s"\ntoxic = "latency"\nlatency = "400ms"\n'
        'link = "routes"\nbetween = [["validator-0", "validator-1"], ["validator-2", "validator-3"]]\n')
    run(parse_scenario(text, source="c.toml"), tmp_path / "run")
    run_dir = tmp_path / "run"
    events = _rows(run_dir, "events")
    start, end = _fault_times(events)
    detail = json.loads(next(e["detail"] for e in events if e["kind"] == "fault_start"))
    # Two validators a side: 2 x 2 links each way cross the cut.
    assert sorted(detail["routes"]) == ["route-0-2", "route-0-3", "route-1-2", "route-1-3",
                                        "route-2-0", "route-2-1", "route-3-0", "route-3-1"]
    first: dict[int, float] = {}
    for e in events:
        if e["kind"] == "block_committed":
            first[e["height"]] = min(first.get(e["height"], e["t"] / 1e9), e["t"] / 1e9)
    times = sorted(first.values())
    gaps = [(a, b - a) for a, b in zip(times, times[1:], strict=False)]

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    before = median([g for t, g in gaps if t < start])
    during = median([g for t, g in gaps if start + 1 < t < end])
    after = median([g for t, g in gaps if t > end + 2])
    # A quorum of three needs a validator of the other side: the proposal, the prevotes and
    # the precommits each cross the 400 ms link once at least. On a loaded machine the
    # validators' own delays overlap those crossings in the gaps measured (1.06 s before, 1.70 s
    # during, seen), so the test asks for more than one whole crossing a height during the
    # fault, and less than one after it.
    assert during >= before + 0.4, (before, during)
    assert after < before + 0.4, (before, after)
    statuses = Counter(m["status"] for m in _rows(run_dir, "messages"))
    assert set(statuses) == {"committed"}, statuses


@pytest.mark.slow
def test_a_validator_whose_links_are_slow_falls_behind_and_is_desynchronised_by_the_simulators_rule(
        tmp_path: Path) -> None:
    require_cometbft()
    from msgstorm.runner import run

    # validator-3 hears the other three 3 s late (each way): they hold 3/4 of the votes and
    # go on at their pace, a height every second or less, so validator-3 trails them by more
    # than desync.max_height_gap = 2 heights for longer than desync.min_duration = 1 s.
    text = SCENARIO.format(duration="15s", validators=4, rate="20/s").replace(
        "validators = 4", "validators = 4\nentry = 0") + (
        '[[faults]]\nkind = "toxic"\nat = "3s"\nduration = "8s"\ntoxic = "latency"\nlatency = "3s"\n'
        'link = "routes"\nbetween = [["validator-3"], ["validator-0", "validator-1", "validator-2"]]\n')
    run(parse_scenario(text, source="c.toml"), tmp_path / "run")
    run_dir = tmp_path / "run"
    events = _rows(run_dir, "events")
    start, end = _fault_times(events)
    starts = [e for e in events if e["kind"] == "desync_start"]
    assert {e["node"] for e in starts} == {"validator-3"}
    assert start <= starts[0]["t"] / 1e9 <= end
    assert starts[0]["value"] > 2  # the gap when it was detected
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["desync"]["episodes"] >= 1 and summary["desync"]["max_height_gap"] >= 3
    lag = {v["name"]: v["height_lag_max"] for v in summary["validators"]["validators"]}
    assert lag["validator-3"] >= 3 and max(lag[f"validator-{i}"] for i in range(3)) <= 2
