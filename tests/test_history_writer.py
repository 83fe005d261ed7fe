"""The streaming history writer: parts written in order, whole or not at all, a failed write
reported to the caller instead of lost with the thread, and old one-file histories still read."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msgstorm.history import RUN, HistoryWriter, read_history
from msgstorm.history.events import EventKind
from msgstorm.history.reader import read_table


def _deliveries(start: int, n: int) -> dict[str, list[object]]:
    return {"msg_id": list(range(start, start + n)), "node": ["n0"] * n,
            "t_delivered": [10 * i for i in range(start, start + n)], "hops": [1] * n}


def _event(t: int) -> dict[str, list[object]]:
    return {"t": [t], "kind": ["run_start"], "node": [None], "value": [None], "height": [None], "detail": [None]}


def test_parts_arrive_in_order(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history", row_group_size=100)
    for start in range(0, 5_000, 70):  # appends that straddle part boundaries
        writer.append("deliveries", _deliveries(start, 70))
    writer.close()
    parts = sorted((tmp_path / "history" / "deliveries").glob("part-*.parquet"))
    assert len(parts) > 10
    table = read_table(tmp_path / "history", "deliveries")
    assert table["msg_id"].to_pylist() == list(range(0, 5_040))


def test_a_history_not_durable_lands_the_same_parts_without_syncing_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``durable=False`` (a sweep's runs, removed once analysed): no fsync, the same parts."""
    import os

    synced: list[int] = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or fsync(fd))
    for durable in (True, False):
        synced.clear()
        writer = HistoryWriter(tmp_path / str(durable) / "history", row_group_size=100, durable=durable)
        for start in range(0, 1_400, 70):
            writer.append("deliveries", _deliveries(start, 70))
        writer.close()
        assert len(synced) == (28 if durable else 0)  # 14 parts, the file and its directory each
    parts = {durable: sorted(path.name for path in (tmp_path / str(durable) / "history" / "deliveries").iterdir())
             for durable in (True, False)}
    assert parts[True] == parts[False] == [f"part-{i:06d}.parquet" for i in range(14)]  # no temporary left
    assert read_table(tmp_path / "False" / "history", "deliveries").equals(
        read_table(tmp_path / "True" / "history", "deliveries"))


def test_a_part_is_cut_once_a_second_of_wall_time_has_passed(tmp_path: Path) -> None:
    now = [0.0]
    writer = HistoryWriter(tmp_path / "history", row_group_size=1_000_000, clock=lambda: now[0])
    writer.append("deliveries", _deliveries(0, 5))
    writer.sync()
    directory = tmp_path / "history" / "deliveries"
    assert list(directory.glob("part-*.parquet")) == [directory / "part-000000.parquet"]  # sync cut one
    writer.append("deliveries", _deliveries(5, 5))
    now[0] = 0.5
    writer.append("events", _event(1))
    writer._background.wait()
    assert len(list(directory.glob("part-*.parquet"))) == 1  # under a second: still buffered
    now[0] = 1.01
    writer.append("events", _event(2))  # any append past the interval cuts every waiting table
    writer._background.wait()
    assert len(list(directory.glob("part-*.parquet"))) == 2
    assert read_table(tmp_path / "history", "deliveries").num_rows == 10
    writer.close()


def test_a_leftover_temporary_part_is_ignored(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history", row_group_size=10)
    writer.append("deliveries", _deliveries(0, 10))
    writer.close()
    (tmp_path / "history" / "deliveries" / ".part-000001.parquet.tmp").write_bytes(b"PAR1 half a file")
    assert read_table(tmp_path / "history", "deliveries").num_rows == 10


def test_a_failed_write_is_raised_not_lost(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history", row_group_size=100)
    writer.append("events", _event(1))
    writer.sync()
    # The deliveries directory is gone: its next part cannot be written (a real OS error).
    (tmp_path / "history" / "deliveries").rmdir()
    with pytest.raises(OSError):
        for start in range(0, 1_000, 100):  # each append cuts a part
            writer.append("deliveries", _deliveries(start, 100))
        writer.close()
    if not writer.closed:
        with pytest.raises(OSError):
            writer.close()
    # The other tables were still written: what they hold is readable.
    assert read_table(tmp_path / "history", "events").num_rows == 1


def test_a_history_of_one_file_per_table_still_reads(tmp_path: Path) -> None:
    """Runs written before tables became directories of parts."""
    history = tmp_path / "history"
    history.mkdir()
    writer = HistoryWriter(tmp_path / "new", row_group_size=10)
    writer.close()
    for name in ("messages", "deliveries", "events"):
        pq.write_table(read_table(tmp_path / "new", name), history / f"{name}.parquet")
    old_run = pa.schema([field for field in RUN if field.name != "completed"])
    pq.write_table(pa.Table.from_pylist([{
        "scenario_name": "old", "scenario_hash": "h", "scenario_json": json.dumps({"run": {"name": "old"}}),
        "seed": 1, "msgstorm_version": "0.1.0", "target": "sim", "nodes_json": "[]", "t_end": 5,
        "interrupted": False, "host": "{}",
    }], schema=old_run), history / "run.parquet")
    read = read_history(tmp_path)
    assert read.run_info["scenario_name"] == "old"
    assert read.cut_off is False
    assert read.edges.num_rows == 0  # written by newer targets only


def test_an_unknown_event_kind_is_refused_and_nothing_of_the_batch_is_written(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history", row_group_size=10)
    good = {"t": [1], "kind": [EventKind.QUEUE_DEPTH], "node": ["a"], "value": [3.0], "height": [None],
            "detail": [None]}
    writer.append("events", good)
    with pytest.raises(ValueError, match=r"unknown event kind\(s\) \['queue_dept'\]"):
        writer.append("events", {**good, "t": [2, 3], "kind": ["queue_depth", "queue_dept"],
                                 "node": ["a", "a"], "value": [1.0, 2.0], "height": [None, None],
                                 "detail": [None, None]})
    writer.close()
    events = read_history(tmp_path).events
    assert events["t"].to_pylist() == [1] and events["kind"].to_pylist() == ["queue_depth"]


def test_the_columns_rows_are_selected_by_carry_min_max_statistics_and_no_others(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history", row_group_size=100)
    writer.append("deliveries", _deliveries(1_000, 100))
    writer.append("deliveries", _deliveries(5_000, 100))
    writer.append("events", _event(7))
    writer.close()
    parts = sorted((tmp_path / "history" / "deliveries").glob("part-*.parquet"))
    assert len(parts) == 2
    ranges = []
    for part in parts:
        group = pq.ParquetFile(part).metadata.row_group(0)
        columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
        for name in ("node", "hops"):
            assert columns[name].statistics is None or not columns[name].statistics.has_min_max
        msg_id, t_delivered = columns["msg_id"].statistics, columns["t_delivered"].statistics
        assert msg_id is not None and msg_id.has_min_max and t_delivered.has_min_max
        ranges.append((msg_id.min, msg_id.max, t_delivered.min, t_delivered.max))
    # A reader can skip a part by its ids or its times.
    assert ranges == [(1_000, 1_099, 10_000, 10_990), (5_000, 5_099, 50_000, 50_990)]
    event_part = next((tmp_path / "history" / "events").glob("part-*.parquet"))
    t_column = pq.ParquetFile(event_part).metadata.row_group(0).column(0)
    assert t_column.path_in_schema == "t" and (t_column.statistics.min, t_column.statistics.max) == (7, 7)


def test_parts_land_in_the_order_they_were_cut_whichever_thread_encodes_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At close a second thread encodes the newest waiting parts while the first is still on
    an older one; the newer parts must not land (be renamed into place) before it."""
    import threading

    from msgstorm.history import writer as writer_module

    encode, land = writer_module._encode_part, writer_module._land_part
    first_started = threading.Event()
    encoded_by: dict[int, str] = {}
    landed: list[str] = []

    def slow_first_encode(table: pa.Table, *args: object) -> pa.Buffer:
        start = table["msg_id"][0].as_py()
        if start == 0:  # the first part: slow, so the parts after it are encoded meanwhile
            first_started.set()
            time.sleep(0.3)
        encoded_by[start] = threading.current_thread().name
        return encode(table, *args)  # type: ignore[arg-type]

    def recorded_land(data: pa.Buffer, directory: Path, name: str) -> None:
        landed.append(f"{directory.name}/{name}")
        land(data, directory, name)

    monkeypatch.setattr(writer_module, "_IN_FLIGHT", 3)  # room for the three parts at once
    monkeypatch.setattr(writer_module, "_encode_part", slow_first_encode)
    monkeypatch.setattr(writer_module, "_land_part", recorded_land)
    writer = HistoryWriter(tmp_path / "history", row_group_size=100)
    writer.append("deliveries", _deliveries(0, 100))
    assert first_started.wait(5)
    writer.append("deliveries", _deliveries(100, 100))
    writer.append("deliveries", _deliveries(200, 50))  # waits for close
    writer.close()
    assert landed == [f"deliveries/part-00000{i}.parquet" for i in range(3)]
    # The last part was encoded by the helper while the first thread was still on part 0.
    assert encoded_by[200] != encoded_by[0]
    assert read_table(tmp_path / "history", "deliveries")["msg_id"].to_pylist() == list(range(250))


def test_after_a_failed_part_no_later_part_of_its_table_lands_and_other_tables_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table keeps a prefix of its rows: a part after a failed one would leave a hole."""
    from msgstorm.history import writer as writer_module

    land = writer_module._land_part

    def failing_second(data: pa.Buffer, directory: Path, name: str) -> None:
        if directory.name == "deliveries" and name == "part-000001.parquet":
            raise OSError(28, "No space left on device")
        land(data, directory, name)

    monkeypatch.setattr(writer_module, "_land_part", failing_second)
    writer = HistoryWriter(tmp_path / "history", row_group_size=100)
    for start in range(0, 500, 100):
        writer.append("deliveries", _deliveries(start, 100))
    writer.append("events", _event(3))
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    parts = sorted(p.name for p in (tmp_path / "history" / "deliveries").glob("part-*.parquet"))
    assert parts == ["part-000000.parquet"]
    assert read_table(tmp_path / "history", "deliveries")["msg_id"].to_pylist() == list(range(100))
    assert read_table(tmp_path / "history", "events")["t"].to_pylist() == [3]


def test_a_ctrl_c_while_a_part_is_handed_over_neither_hangs_nor_loses_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C raises in the caller's thread wherever it is; if it comes just after a part
    was handed to the encoding thread, the part must still land, in order, and close() must
    return."""
    from collections import deque

    interrupted: list[bool] = []

    class InterruptedOnce(deque):  # type: ignore[type-arg]
        def append(self, item: object) -> None:
            if len(interrupted) == 0 and len(self) == 1:
                interrupted.append(True)
                raise KeyboardInterrupt
            super().append(item)

    writer = HistoryWriter(tmp_path / "history", row_group_size=100)
    monkeypatch.setattr(writer._background, "jobs", InterruptedOnce())
    writer.append("deliveries", _deliveries(0, 100))
    with pytest.raises(KeyboardInterrupt):
        writer.append("deliveries", _deliveries(100, 100))
    writer.append("deliveries", _deliveries(200, 100))
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (writer.close(), closed.set()), daemon=True)
    closer.start()
    assert closed.wait(10), "close() hung"
    assert interrupted == [True]
    assert read_table(tmp_path / "history", "deliveries")["msg_id"].to_pylist() == list(range(300))
