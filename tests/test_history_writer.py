"""The streaming history writer: row groups written in order from its background thread,
and a failed write reported to the caller instead of lost with the thread."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from msgstorm.history import HistoryWriter


def _deliveries(start: int, n: int) -> dict[str, list[object]]:
    return {"msg_id": list(range(start, start + n)), "node": ["n0"] * n,
            "t_delivered": [10 * i for i in range(start, start + n)], "hops": [1] * n}


def test_row_groups_arrive_in_order(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history", row_group_size=100)
    for start in range(0, 5_000, 70):  # appends that straddle row-group boundaries
        writer.append("deliveries", _deliveries(start, 70))
    writer.close()
    table = pq.read_table(tmp_path / "history" / "deliveries.parquet")
    assert table["msg_id"].to_pylist() == list(range(0, 5_040))
    assert pq.ParquetFile(tmp_path / "history" / "deliveries.parquet").metadata.num_row_groups > 10


def test_a_failed_write_is_raised_not_lost(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "history", row_group_size=100)
    sink = writer._sinks["deliveries"]

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    sink.writer.write_table = disk_full  # type: ignore[method-assign]
    writer.append("events", {"t": [1], "kind": ["run_start"], "node": [None], "value": [None],
                              "height": [None], "detail": [None]})
    with pytest.raises(OSError, match="No space left"):
        for start in range(0, 1_000, 100):  # each append fills a row group
            writer.append("deliveries", _deliveries(start, 100))
        writer.close()
    # The other tables were still closed: what they hold is readable.
    if not writer.closed:
        with pytest.raises(OSError, match="No space left"):
            writer.close()
    assert pq.read_table(tmp_path / "history" / "events.parquet").num_rows == 1
