"""Reading a run's history back: the only input analysis and reports take.

Place in the pipeline: ``RUN_DIR/history`` -> **read_history** -> ``History`` -> analysis.
A table is a directory of Parquet parts (read in part order, so rows come back in the order
they were written); a leftover temporary file of a part that was being written when the
process died is ignored. Histories written before parts existed (one ``<table>.parquet``
file per table) are read too.

A run that was killed has no final ``run`` row: ``History.cut_off`` says so, and the
analysis reports it instead of presenting a partial history as a whole one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from msgstorm.history.schema import TABLES
from msgstorm.history.writer import PART_GLOB

__all__ = ["History", "HistoryMissing", "read_history", "read_table"]


@dataclass(frozen=True)
class History:
    """The four history tables of one run, as Arrow tables."""

    messages: pa.Table
    deliveries: pa.Table
    events: pa.Table
    run: pa.Table

    @property
    def run_info(self) -> dict[str, Any]:
        """The latest ``run`` row as a dict (the final one if the run ended)."""
        if self.run.num_rows == 0:
            return {}
        return dict(self.run.slice(self.run.num_rows - 1).to_pylist()[0])

    @property
    def cut_off(self) -> bool:
        """True when the run never wrote its final row: it was killed or lost power, and the
        history holds what was flushed before that (messages still moving are absent)."""
        info = self.run_info
        return not info or not info.get("completed", True)

    @property
    def scenario(self) -> dict[str, Any]:
        """The validated scenario the run used (units normalised: ns, per-second, bytes)."""
        return dict(json.loads(self.run_info.get("scenario_json", "{}")))

    @property
    def nodes(self) -> list[dict[str, str]]:
        return list(json.loads(self.run_info.get("nodes_json", "[]")))


class HistoryMissing(FileNotFoundError):
    """A run directory without a readable history."""


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table in ``schema``: columns a former version did not write are filled in (the
    ``run`` table's ``completed``: a one-file history was only readable once complete)."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        elif field.name == "completed":
            columns.append(pa.array([True] * table.num_rows, type=field.type))
        else:
            columns.append(pa.nulls(table.num_rows, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def read_table(history_dir: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """One table of a history directory (parts, or a former single file)."""
    schema = TABLES[name]
    directory = history_dir / name
    single = history_dir / f"{name}.parquet"
    if directory.is_dir():
        parts = sorted(directory.glob(PART_GLOB))
        tables = [_conform(pq.read_table(part, columns=columns), schema if columns is None else
                           pa.schema([schema.field(c) for c in columns])) for part in parts]
    elif single.is_file():
        tables = [_conform(pq.read_table(single, columns=columns), schema if columns is None else
                           pa.schema([schema.field(c) for c in columns]))]
    else:
        raise HistoryMissing(f"{directory}: history table missing (is {history_dir.parent} a msgstorm run directory?)")
    target = schema if columns is None else pa.schema([schema.field(c) for c in columns])
    if not tables:
        return target.empty_table()
    return pa.concat_tables(tables)


def read_history(run_dir: str | Path) -> History:
    """Read ``RUN_DIR/history``; raises ``FileNotFoundError`` naming what is missing."""
    history_dir = Path(run_dir) / "history"
    if not history_dir.is_dir():
        raise HistoryMissing(f"{history_dir}: no history (is {run_dir} a msgstorm run directory?)")
    return History(**{name: read_table(history_dir, name) for name in TABLES})
