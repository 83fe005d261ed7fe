"""A live run's event log: held until the clock starts, then on disk as each event comes."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import pyarrow.parquet as pq

from msgstorm.history.events import EventKind
from msgstorm.history.writer import HistoryWriter
from msgstorm.live.event_log import EventLog


def _on_disk(history: Path) -> list[tuple[int, str]]:
    rows: list[tuple[int, str]] = []
    for part in sorted((history / "events").glob("part-*.parquet")):
        table = pq.read_table(part, columns=["t", "kind"])
        rows += list(zip(table["t"].to_pylist(), table["kind"].to_pylist()))
    return rows


def test_events_land_as_they_come_once_the_clock_starts(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history")
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        log = EventLog(writer, executor)
        log.add((100, EventKind.RUN_START, None, None, {"target": "nats"}))
        log.add((300, EventKind.SERVER_START, None, None, {"name": "nats-server", "pid": 7}))
        executor.submit(writer.sync).result()
        assert _on_disk(tmp_path / "history") == [], "held until the clock starts: their times move"
        log.start_clock(1000)
        executor.submit(writer.sync).result()
        assert _on_disk(tmp_path / "history") == [(-900, "run_start"), (-700, "server_start")]
        log.add((50, EventKind.CPU_SECONDS, "publisher", 0.1, None))  # waits for the next other event
        executor.submit(writer.sync).result()
        assert len(_on_disk(tmp_path / "history")) == 2
        log.add((60, EventKind.FAULT_START, "nats-server", None, {"fault_id": 0}))
        executor.submit(writer.sync).result()
        assert _on_disk(tmp_path / "history")[2:] == [(50, "cpu_seconds"), (60, "fault_start")]
        log.end_at(500)  # the drain is over: what comes after is stamped at the run's end
        log.add((900, EventKind.SERVER_STOP, None, None, {"name": "nats-server", "returncode": 0}))
        executor.submit(writer.sync).result()
        assert _on_disk(tmp_path / "history")[-1] == (500, "server_stop")
        log.stop_writing()
    log.add((800, EventKind.RUN_END, None, 10.0, None))
    log.add((700, EventKind.CLEANUP, None, None, {"left": []}))
    log.finish()
    writer.close()
    assert _on_disk(tmp_path / "history")[-2:] == [(500, "run_end"), (500, "cleanup")]
    assert [json.loads(d)["pid"] for d in pq.read_table(tmp_path / "history" / "events")["detail"].to_pylist()
            if d and "pid" in d] == [7]


def test_a_run_whose_clock_never_started_writes_its_events_at_the_end(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history")
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        log = EventLog(writer, executor)
        log.add((20, EventKind.CLIENT_ERROR, None, None, {"client": "start", "error": "refused"}))
        log.add((10, EventKind.RUN_START, None, None, None))
        log.stop_writing()
    log.finish()
    writer.close()
    assert _on_disk(tmp_path / "history") == [(10, "run_start"), (20, "client_error")]


def test_samples_alone_are_written_at_most_every_so_often(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history")
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        log = EventLog(writer, executor)
        log.start_clock(0)
        log.add((10, EventKind.CPU_SECONDS, "publisher", 0.1, None))
        log.write_pending(unless_within_s=3600.0)  # a recorder flush: too soon after the last write
        executor.submit(writer.sync).result()
        assert _on_disk(tmp_path / "history") == []
        log.write_pending()
        executor.submit(writer.sync).result()
        assert _on_disk(tmp_path / "history") == [(10, "cpu_seconds")]
        log.stop_writing()
    log.finish()
    writer.close()
