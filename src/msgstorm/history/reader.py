"""Reading a run's history back: the only input analysis and reports take."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from msgstorm.history.schema import TABLES

__all__ = ["History", "read_history"]


@dataclass(frozen=True)
class History:
    """The four history tables of one run, as Arrow tables."""

    messages: pa.Table
    deliveries: pa.Table
    events: pa.Table
    run: pa.Table

    @property
    def run_info(self) -> dict[str, Any]:
        """The single ``run`` row as a dict."""
        rows = self.run.to_pylist()
        return rows[0] if rows else {}

    @property
    def scenario(self) -> dict[str, Any]:
        """The validated scenario the run used (units normalised: ns, per-second, bytes)."""
        return dict(json.loads(self.run_info.get("scenario_json", "{}")))

    @property
    def nodes(self) -> list[dict[str, str]]:
        return list(json.loads(self.run_info.get("nodes_json", "[]")))


class HistoryMissing(FileNotFoundError):
    """A run directory without a readable history."""


def read_history(run_dir: str | Path) -> History:
    """Read ``RUN_DIR/history/*.parquet``; raises ``FileNotFoundError`` naming what is missing."""
    history_dir = Path(run_dir) / "history"
    tables: dict[str, pa.Table] = {}
    for name, schema in TABLES.items():
        path = history_dir / f"{name}.parquet"
        if not path.is_file():
            raise HistoryMissing(f"{path}: history table missing (is {run_dir} a msgstorm run directory?)")
        tables[name] = pq.read_table(path, schema=schema)
    return History(**tables)
