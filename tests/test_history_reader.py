"""Reading a history back for analysis: integer columns as shared numpy arrays, string
columns as codes in order of first appearance, the same from disk as from memory, and
names a target wrote as dictionary codes read back as the strings they stand for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import msgstorm
from msgstorm.history import HistoryWriter, read_history
from msgstorm.history.reader import History, _first_uses, read_table

NAMES = pa.array(["n0", "n1", "n2", "n3"], pa.string())


def _deliveries(codes: list[int], start: int) -> dict[str, object]:
    """Delivery rows whose node names come as codes into NAMES (as the simulator gives them)."""
    n = len(codes)
    return {"msg_id": np.arange(start, start + n), "node": pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()),
                                                                                          NAMES),
            "t_delivered": np.arange(start, start + n) * 10, "hops": np.zeros(n, dtype=np.int32)}


def _run_row(writer: HistoryWriter) -> None:
    writer.append("run", {"scenario_name": ["s"], "scenario_hash": ["h"], "scenario_json": ["{}"], "seed": [1],
                          "msgstorm_version": ["0"], "target": ["sim"], "nodes_json": ["[]"], "t_end": [1],
                          "interrupted": [False], "host": ["{}"], "completed": [True]})


def _written(tmp_path: Path, parts: list[tuple[list[int], int]]) -> History:
    writer = HistoryWriter(tmp_path / "history", row_group_size=1024)
    for codes, start in parts:
        writer.append("deliveries", _deliveries(codes, start))
        writer.sync()  # a part each
    _run_row(writer)
    writer.close()
    return read_history(tmp_path)


def test_names_written_as_codes_read_back_as_strings(tmp_path: Path) -> None:
    history = _written(tmp_path, [([2, 0, 2], 0), ([3, 3], 3)])
    table = read_table(tmp_path / "history", "deliveries")
    assert table.schema.field("node").type == pa.string()
    assert table["node"].to_pylist() == ["n2", "n0", "n2", "n3", "n3"]
    assert history.column("deliveries", "node").to_pylist() == ["n2", "n0", "n2", "n3", "n3"]


def test_codes_follow_first_appearance_and_leave_unused_names_out(tmp_path: Path) -> None:
    # Each part's dictionary is the whole NAMES (n1 never used): codes name only what appears.
    history = _written(tmp_path, [([2, 0, 2], 0), ([3, 0], 3)])
    codes, values = history.codes("deliveries", "node")
    assert values == ["n2", "n0", "n3"]
    assert codes.tolist() == [0, 1, 0, 2, 1]
    assert codes.dtype == np.int8
    memory = History(messages=pa.table({}), deliveries=read_table(tmp_path / "history", "deliveries"),
                     events=pa.table({}), run=pa.table({}))
    memory_codes, memory_values = memory.codes("deliveries", "node")
    assert memory_values == values and memory_codes.tolist() == codes.tolist()


@pytest.mark.parametrize("size", [1, 3, 16, 17, 300])
def test_first_uses_are_what_unique_gives_with_or_without_its_sort(size: int) -> None:
    rng = np.random.default_rng(size)
    for dtype in (np.int8, np.int16, np.int32):
        if size > np.iinfo(dtype).max:
            continue
        indices = rng.integers(0, size, 2_000).astype(dtype)
        indices[indices == size // 2] = 0  # a value of the dictionary left unused
        used, first = _first_uses(indices, size)
        expected_used, expected_first = np.unique(indices, return_index=True)
        assert used.tolist() == expected_used.tolist() and first.tolist() == expected_first.tolist()


def _three_pending(start: int, sent: pa.Array, received: pa.Array) -> dict[str, Any]:
    """Three pending messages from ``msg_id`` ``start``, sent and received at those times."""
    return {
        "msg_id": np.arange(start, start + 3), "kind": ["order"] * 3, "agent": ["a"] * 3, "node": ["n0"] * 3,
        "key": np.zeros(3, dtype=np.int64), "size": np.ones(3, dtype=np.int32), "fee": np.zeros(3),
        "t_intended": np.arange(start, start + 3) * 10, "t_sent": sent, "t_received": received,
        "t_dequeued": pa.nulls(3, pa.int64()), "t_sequenced": pa.nulls(3, pa.int64()),
        "seq_no": pa.nulls(3, pa.int64()), "t_committed": pa.nulls(3, pa.int64()),
        "block": pa.nulls(3, pa.int64()), "status": ["pending"] * 3}


def test_ints_are_shared_read_only_and_equal_from_disk_and_memory(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history", row_group_size=1024)
    for start in (0, 3):
        sent = pa.array([None if (start + i) % 2 else 100 + start + i for i in range(3)], pa.int64())
        writer.append("messages", _three_pending(start, sent, pa.nulls(3, pa.int64())))
        writer.sync()
    _run_row(writer)
    writer.close()
    history = read_history(tmp_path)
    values, present = history.ints("messages", "t_sent")
    assert values.tolist() == [100, 0, 102, 0, 104, 0]  # nulls read as 0
    assert present.tolist() == [True, False, True, False, True, False]
    assert history.ints("messages", "t_sent")[0] is values  # one copy, shared
    with pytest.raises(ValueError):
        values[0] = 1  # read-only: a metric that writes works on its own copy
    assert history.column("messages", "t_sent").to_pylist() == [100, None, 102, None, 104, None]
    memory = History(messages=read_table(tmp_path / "history", "messages"), deliveries=pa.table({}),
                     events=pa.table({}), run=pa.table({}))
    for column in ("msg_id", "t_intended", "t_sent", "t_committed"):
        disk, mem = history.ints("messages", column), memory.ints("messages", column)
        assert disk[0].tolist() == mem[0].tolist() and disk[1].tolist() == mem[1].tolist()


def test_parts_take_a_column_ints_holds_from_it_with_its_nulls(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass a part at a time asks the file only for the columns ``ints`` does not hold;
    the held ones come as the part's rows of the held copy, nulls where they were."""
    writer = HistoryWriter(tmp_path / "history", row_group_size=1024)
    for start in (0, 3, 6):  # three parts
        sent = pa.array([None if (start + i) % 2 else 100 + start + i for i in range(3)], pa.int64())
        writer.append("messages", _three_pending(start, sent, sent))
        writer.sync()
    _run_row(writer)
    writer.close()
    columns = ["msg_id", "t_sent", "t_received", "kind"]
    fresh = [part.to_pylist() for part in read_history(tmp_path).parts("messages", columns)]
    history = read_history(tmp_path)
    held = history.ints("messages", "t_sent"), history.ints("messages", "msg_id")
    asked: list[list[str]] = []
    reader_file_read = pq.ParquetFile.read

    def counted(self: pq.ParquetFile, columns: list[str] | None = None, **options: object) -> pa.Table:
        asked.append(list(columns or []))
        return reader_file_read(self, columns=columns, **options)

    monkeypatch.setattr(pq.ParquetFile, "read", counted)
    parts = [part.to_pylist() for part in history.parts("messages", columns)]
    assert parts == fresh and len(parts) == 3
    assert [row["t_sent"] for part in parts for row in part] == [100, None, 102, None, 104, None, 106, None, 108]
    # t_sent and msg_id came from what ints holds; each read is followed by one of no column,
    # which lets the reader drop the column chunks it kept (see the next test).
    assert asked == [["t_received", "kind"], []] * 3
    assert held[0][0].tolist() == [100, 0, 102, 0, 104, 0, 106, 0, 108]  # the held copy is unchanged


_HELD_AFTER_PASS = """
import sys
from pathlib import Path
import msgstorm.heap  # Arrow's pool is the C library's, as in the command (before pyarrow loads)
import pyarrow as pa
from msgstorm.history import read_history
assert pa.default_memory_pool().backend_name == "system"
import gc
history = read_history(Path(sys.argv[1]))
gc.collect()
before = pa.total_allocated_bytes()
present = [part.column("t_sent").null_count for part in history.parts("messages", ["t_sent"])]
gc.collect()  # what the reader holds, not what waits for the cycle collector (once, in CI: one part's 120 kB)
print(*present, pa.total_allocated_bytes() - before)
"""


def test_reading_parts_leaves_no_column_chunk_held(tmp_path: Path) -> None:
    """Arrow's Parquet reader (on the C library's pool, as the command sets it) keeps the
    column chunks of its last read until its next read; the history's part files stay open
    for the whole analysis, so a pass over them must not leave every part's chunks held:
    after a column is read and let go, Arrow holds what it held before (the run and events
    tables), not the parts' chunks of 20,000 random times each (120 kB a part)."""
    writer = HistoryWriter(tmp_path / "history", row_group_size=1 << 16)
    rows = 20_000
    rng = np.random.default_rng(3)
    for start in (0, rows, 2 * rows):  # three parts of 20,000 messages
        base = _three_pending(0, pa.nulls(3, pa.int64()), pa.nulls(3, pa.int64()))
        table = {name: np.resize(np.asarray(value), rows) if isinstance(value, (list, np.ndarray))
                 else pa.nulls(rows, pa.int64()) for name, value in base.items()}
        table["msg_id"] = np.arange(start, start + rows)
        table["t_sent"] = pa.array(rng.integers(0, 2**62, rows), pa.int64(), mask=np.arange(rows) % 4 == 0)
        writer.append("messages", table)
        writer.sync()
    _run_row(writer)
    writer.close()
    done = subprocess.run([sys.executable, "-c", _HELD_AFTER_PASS, str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(msgstorm.__file__).parents[1])}, check=True)
    *nulls, held = (int(word) for word in done.stdout.split())
    assert nulls == [rows // 4] * 3  # every part read, a quarter of its times null
    # Held in all three parts, t_sent's chunks alone would be 360 kB.
    assert held < 16_384


def _messages_history(tmp_path: Path, n: int) -> History:
    """``n`` committed messages with every integer column filled (distinct columns to read)."""
    writer = HistoryWriter(tmp_path / "history", row_group_size=4096)
    times = np.arange(n, dtype=np.int64) * 10
    writer.append("messages", {
        "msg_id": np.arange(n), "kind": ["order"] * n, "agent": ["a"] * n, "node": ["n0"] * n,
        "key": np.zeros(n, dtype=np.int64), "size": np.ones(n, dtype=np.int32), "fee": np.zeros(n),
        **{column: times + k for k, column in enumerate(("t_intended", "t_sent", "t_received", "t_dequeued",
                                                            "t_sequenced", "t_committed"))},
        "seq_no": np.arange(n), "block": np.zeros(n, dtype=np.int64), "status": ["committed"] * n})
    _run_row(writer)
    writer.close()
    return read_history(tmp_path)


def test_a_retained_column_is_not_read_again_once_its_holder_lets_it_go(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import msgstorm.history.reader as reader

    n = 2048
    history = _messages_history(tmp_path, n)
    monkeypatch.setattr(reader, "COLUMN_CACHE_BYTES", 4 * n * 9)  # four columns (int64 values, bool mask)
    reads: list[str] = []
    chunks = History._int64_chunks

    def counted(self: History, name: str, column: str) -> object:
        reads.append(column)
        return chunks(self, name, column)

    monkeypatch.setattr(History, "_int64_chunks", counted)
    held = history.ints("messages", "t_committed")  # a metric holds it ...
    for column in ("t_sent", "t_received", "t_dequeued", "t_sequenced", "seq_no"):  # ... while later reads
        history.ints("messages", column)                                              # push it out of the budget
    assert ("ints", "messages", "t_committed") not in history._cache
    history.retain("messages", ["t_committed"])
    values = held[0].copy()
    del held
    again = history.ints("messages", "t_committed")
    assert reads.count("t_committed") == 1 and again[0].tolist() == values.tolist()


def test_the_budget_drops_integer_columns_before_a_string_columns_codes(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import msgstorm.history.reader as reader

    n = 2048
    history = _messages_history(tmp_path, n)
    monkeypatch.setattr(reader, "COLUMN_CACHE_BYTES", 4 * n * 9 + n)  # four integer columns and one codes
    history.codes("messages", "status")
    columns = ("t_sent", "t_received", "t_dequeued", "t_sequenced", "seq_no")
    for column in columns:
        history.ints("messages", column)
    assert ("codes", "messages", "status") in history._cache  # read first, dropped last
    assert [("ints", "messages", c) in history._cache for c in columns] == [False, True, True, True, True]


def test_first_appearance_finds_values_that_come_late_and_leaves_unused_ones_out() -> None:
    from msgstorm.history.reader import _first_appearance

    indices = np.full(200_000, 2, dtype=np.int32)
    indices[150_000] = 0  # past the first block of rows the search looks at
    indices[199_999] = 3
    codes, order = _first_appearance(indices, 5)  # values 1 and 4 never appear
    assert order == [2, 0, 3]
    assert codes.dtype == np.int8
    assert codes[149_999] == 0 and codes[150_000] == 1 and codes[199_999] == 2
    assert int(np.count_nonzero(codes)) == 2
    in_order, order = _first_appearance(np.array([0, 1, 0, 2], dtype=np.int32), 3)  # already in order
    assert order == [0, 1, 2] and in_order.tolist() == [0, 1, 0, 2] and in_order.dtype == np.int8
