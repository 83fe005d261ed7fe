"""Shared plumbing for analysis: history columns as numpy arrays, exact percentiles, units.

Place in the pipeline: the first thing every analysis module touches. It knows nothing about
metrics; it reads the history tables once into numpy arrays (nullable times become a value
array plus a ``present`` mask) and says how results are expressed: milliseconds rounded to
3 decimals, plain Python numbers so ``summary.json`` needs no numpy-aware encoder.

Percentiles are exact and nearest-rank (numpy ``method="inverted_cdf"``): the reported
value is always an observed latency, the smallest one with at least q% of samples at or
below it. That is what an HDR histogram reports live, so sim and live read the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from msgstorm.history.reader import History
from msgstorm.history.schema import STATUSES

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

# Defaults of ``AnalysisSpec`` (used when a history's scenario lacks the section).
DEFAULT_KNEE_LATENCY_FACTOR = 3.0
DEFAULT_THROUGHPUT_FRACTION = 0.95
DEFAULT_WINDOW_NS = NS_PER_S


def nullable_ints(column: pa.ChunkedArray) -> tuple[I64, Bools]:
    """A nullable integer column as (values with nulls as 0, present mask)."""
    present = np.asarray(pc.is_valid(column).to_numpy(), dtype=np.bool_)
    values = np.asarray(column.fill_null(0).to_numpy(), dtype=np.int64)
    return values, present


@dataclass(frozen=True)
class Stamp:
    """One nullable time (or number) column: ``values[i]`` is meaningful where ``present[i]``."""

    values: I64
    present: Bools


@dataclass(frozen=True)
class MessageArrays:
    """The ``messages`` table as numpy arrays, read once and shared by every metric."""

    msg_id: I64
    agent: I64  # dictionary codes of the ``agent`` column: one stream per agent
    t_intended: I64
    t_sent: Stamp
    t_received: Stamp
    t_dequeued: Stamp
    t_sequenced: Stamp
    seq_no: Stamp
    t_committed: Stamp
    status: dict[str, Bools] = field(default_factory=dict)

    @classmethod
    def from_history(cls, history: History) -> MessageArrays:
        table = history.messages

        def stamp(name: str) -> Stamp:
            values, present = nullable_ints(table.column(name))
            return Stamp(values, present)

        status_column = table.column("status")
        statuses = {
            status: np.asarray(
                pc.equal(status_column, status).fill_null(False).to_numpy(), dtype=np.bool_
            )
            for status in STATUSES
        }
        agent = table.column("agent").combine_chunks().dictionary_encode().indices
        return cls(
            msg_id=np.asarray(table.column("msg_id").to_numpy(), dtype=np.int64),
            agent=np.asarray(agent.to_numpy(zero_copy_only=False), dtype=np.int64),
            t_intended=np.asarray(table.column("t_intended").to_numpy(), dtype=np.int64),
            t_sent=stamp("t_sent"),
            t_received=stamp("t_received"),
            t_dequeued=stamp("t_dequeued"),
            t_sequenced=stamp("t_sequenced"),
            seq_no=stamp("seq_no"),
            t_committed=stamp("t_committed"),
            status=statuses,
        )

    @property
    def count(self) -> int:
        return int(self.t_intended.shape[0])

    @property
    def committed(self) -> Bools:
        """Messages whose latency is defined: status committed with a commit time."""
        return self.status["committed"] & self.t_committed.present

    def latency_ns(self, mask: Bools | None = None) -> I64:
        """``t_committed - t_intended`` of committed messages (restricted to ``mask`` if given)."""
        selected = self.committed if mask is None else self.committed & mask
        return self.t_committed.values[selected] - self.t_intended[selected]


@dataclass(frozen=True)
class EventRows:
    """Events of some kinds, stably sorted by ``t`` (writers only order their own events)."""

    t: I64
    value: F64  # NaN where null
    table: pa.Table

    @property
    def count(self) -> int:
        return int(self.t.shape[0])

    def nodes(self) -> list[str | None]:
        return list(self.table.column("node").to_pylist())

    def kinds(self) -> list[str]:
        return list(self.table.column("kind").to_pylist())

    def heights(self) -> list[int | None]:
        return list(self.table.column("height").to_pylist())

    def details(self) -> list[dict[str, Any]]:
        return [parse_detail(text) for text in self.table.column("detail").to_pylist()]


def parse_detail(text: str | None) -> dict[str, Any]:
    """An event's JSON detail as a dict ({} when null; {"raw": text} when not a JSON object)."""
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"raw": text}
    return parsed if isinstance(parsed, dict) else {"raw": parsed}


def events_of(history: History, *kinds: str) -> EventRows:
    """The events of the given kinds, stably sorted by time."""
    events = history.events
    mask = pc.is_in(events.column("kind"), value_set=pa.array(kinds, type=pa.string()))
    selected = events.filter(mask)
    t = np.asarray(selected.column("t").to_numpy(), dtype=np.int64)
    order = np.argsort(t, kind="stable")
    selected = selected.take(pa.array(order, type=pa.int64()))
    value = np.asarray(selected.column("value").to_numpy(zero_copy_only=False), dtype=np.float64)
    return EventRows(t=t[order], value=value, table=selected)


def run_t_end_ns(history: History) -> int:
    """The last time the target observed (0 for a history without a run row). A run that was
    cut off never wrote it: then the latest time any recorded row carries stands in."""
    if not history.cut_off:
        return int(history.run_info.get("t_end") or 0)
    latest = 0
    for table, names in ((history.messages, ("t_intended", "t_committed")), (history.events, ("t",)),
                         (history.deliveries, ("t_delivered",))):
        for name in names:
            if table.num_rows:
                value = pc.max(table.column(name)).as_py()
                latest = max(latest, int(value or 0))
    return latest


def scenario_section(history: History, name: str) -> dict[str, Any]:
    """One top-level section of the run's scenario ({} when absent)."""
    section = history.scenario.get(name)
    return dict(section) if isinstance(section, dict) else {}


def analysis_settings(history: History) -> tuple[float, float]:
    """(knee_latency_factor, throughput_fraction) from the scenario, defaults if absent."""
    spec = scenario_section(history, "analysis")
    factor = float(spec.get("knee_latency_factor", DEFAULT_KNEE_LATENCY_FACTOR))
    fraction = float(spec.get("throughput_fraction", DEFAULT_THROUGHPUT_FRACTION))
    return factor, fraction


def percentile(values: npt.NDArray[Any], q: float) -> float:
    """Exact nearest-rank percentile of a non-empty array."""
    return float(np.percentile(values, q, method="inverted_cdf"))


def ms(ns: float | None) -> float | None:
    """Nanoseconds as milliseconds rounded to 3 decimals (None stays None)."""
    if ns is None or math.isnan(ns):
        return None
    return round(float(ns) / NS_PER_MS, 3)


def rounded(value: float | None, digits: int = 3) -> float | None:
    """A plain float rounded for JSON (None and NaN become None)."""
    if value is None or math.isnan(value):
        return None
    return round(float(value), digits)


def seconds(ns: int | None) -> float | None:
    return None if ns is None else round(ns / NS_PER_S, 9)


def plain_number(value: float) -> int | float:
    """An integral float as int (queue depths, counts), otherwise the float."""
    return int(value) if float(value).is_integer() else float(value)
