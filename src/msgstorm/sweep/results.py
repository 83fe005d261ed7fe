"""A sweep's results: one row per run, and per point the mean with its 95% confidence interval.

Place in the pipeline: the last step of ``msgstorm sweep``, from the runs' outcomes.

- ``sweep.parquet``: per run ``run_id, point, seed, status, error, attempt, wall_s``, one
  column per grid key in its values' own type (``grid.grid_column``: integers as int64,
  numbers as float64, booleans, strings as themselves; arrays and tables as TOML text; the
  ``point`` column joins a row to its point in ``sweep.json``), and every numeric field of
  its summary flattened to a dotted name (``latency_ms.p99``, ``market.bad_debt.absolute``;
  SLOs as ``slo.<metric>.value``); a failed run has its error and no metrics.
- ``sweep.json``: per point its grid values, runs, failed runs, and for each key metric
  (``KEY_METRICS`` present in the runs) ``{mean, ci95: [low, high], min, max, n}``: the
  interval is Student's t over the point's seeds (scipy), null with fewer than two.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msgstorm.sweep.grid import Plan, grid_column

__all__ = ["BAD_DEBT_METRICS", "HEADLINE_METRICS", "KEY_METRICS", "POINTS_FILE", "flatten", "headline_metrics", "point_stats",
           "sweep_table", "write_results"]

# The metrics sweep.json summarises per point (those a run has).
KEY_METRICS = (
    "throughput_per_s", "latency_ms.p50", "latency_ms.p99", "latency_ms.p999", "jitter_ms.stddev",
    "capacity.knee_rate_per_s", "failure_threshold.rate_per_s", "queue.max_depth", "messages.committed",
    "messages.dropped", "messages.lost", "desync.episodes",
    "market.bad_debt.absolute", "market.bad_debt.pct_of_open_interest", "market.liquidations.executed",
    "market.liquidations.late", "market.liquidation_delay_ms.p50", "market.liquidation_delay_ms.p99",
    "market.price_staleness_ms.p99",
    "fairness.front_run_successes", "fairness.extracted_value", "fairness.inversions",
    "auction.cleared_volume", "auction.fill_rate", "auction.price_deviation_bps.rms",
    "finality.byzantine_stake", "finality.conflicting_heights", "finality.safe", "finality.live",
    "sentinel.bad_debt", "sentinel.blocked", "sentinel.let_through",
    "rollup.latency_ms.soft.p99", "rollup.latency_ms.safe.p99",
)

POINTS_FILE = "sweep.json"

# What a sweep shows first (sweep.html's first section, its points table, the terminal's
# table): throughput, p99 latency, loss and bad debt, the market's or else a guard's.
HEADLINE_METRICS = ("throughput_per_s", "latency_ms.p99", "messages.lost")
BAD_DEBT_METRICS = ("market.bad_debt.absolute", "sentinel.bad_debt")


def headline_metrics(present: Collection[str]) -> list[str]:
    """The headline metrics among ``present``, in their order, with one bad debt: the
    market's, or a guard's when the runs have no market bad debt."""
    bad_debt = next((metric for metric in BAD_DEBT_METRICS if metric in present), None)
    return [metric for metric in HEADLINE_METRICS if metric in present] + ([bad_debt] if bad_debt else [])


def flatten(value: Any, prefix: str = "") -> dict[str, float]:
    """Every number of a summary under its dotted path (booleans as 0/1; SLOs by metric; the
    probe books' points by their index in the grid)."""
    out: dict[str, float] = {}
    if isinstance(value, bool):
        out[prefix] = float(value)
    elif isinstance(value, (int, float)):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and prefix == "market.probes":  # the probe books' curve, by grid index
        for index, point in enumerate(value):
            out.update(flatten(point, f"{prefix}.{index}"))
    elif isinstance(value, list) and prefix == "slo":
        for slo in value:
            if isinstance(slo, dict) and isinstance(slo.get("value"), (int, float)):
                out[f"slo.{slo.get('name')}.value"] = float(slo["value"])
    return out


def sweep_table(plan: Plan, outcomes: dict[str, dict[str, Any]]) -> pa.Table:
    """One row per run of the plan that has an outcome, in plan order."""
    rows = [(spec, outcomes[spec.run_id]) for spec in plan.runs if spec.run_id in outcomes]
    flat = [flatten({k: v for k, v in (outcome.get("summary") or {}).items()
                     if k not in ("seed", "wall_s")}) for _, outcome in rows]
    metrics = sorted({name for row in flat for name in row})
    columns: dict[str, pa.Array] = {
        "run_id": pa.array([spec.run_id for spec, _ in rows], pa.string()),
        "point": pa.array([spec.point for spec, _ in rows], pa.int64()),
        "seed": pa.array([spec.seed for spec, _ in rows], pa.int64()),
        "status": pa.array([outcome.get("status") for _, outcome in rows], pa.string()),
        "error": pa.array([outcome.get("error") for _, outcome in rows], pa.string()),
        "attempt": pa.array([outcome.get("attempt", 1) for _, outcome in rows], pa.int64()),
        "wall_s": pa.array([outcome.get("wall_s") for _, outcome in rows], pa.float64()),
    }
    for key in plan.keys:
        columns[key] = grid_column([spec.values[key] for spec, _ in rows])
    for name in metrics:
        if name not in columns:
            columns[name] = pa.array([row.get(name) for row in flat], pa.float64())
    return pa.table(columns)


def point_stats(values: list[float]) -> dict[str, Any]:
    """Mean, 95% Student-t interval, min, max and count of one metric over a point's seeds."""
    # Student's t quantile from scipy.special, the function scipy.stats.t.ppf calls (the same
    # value, bit for bit): importing scipy.stats would cost a sweep about 1 s of CPU more.
    from scipy.special import stdtrit

    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if data.size == 0:
        return {"mean": None, "ci95": None, "min": None, "max": None, "n": 0}
    mean = float(data.mean())
    ci = None
    if data.size >= 2:
        half = float(stdtrit(data.size - 1, 0.975) * data.std(ddof=1) / math.sqrt(data.size))
        ci = [mean - half, mean + half]
    return {"mean": mean, "ci95": ci, "min": float(data.min()), "max": float(data.max()), "n": int(data.size)}


def write_results(out_dir: Path, plan: Plan, outcomes: dict[str, dict[str, Any]]) -> pa.Table:
    """``sweep.parquet`` and ``sweep.json`` from the outcomes so far (each written, then renamed)."""
    table = sweep_table(plan, outcomes)
    temporary = out_dir / ".sweep.parquet.tmp"
    pq.write_table(table, temporary)
    temporary.replace(out_dir / "sweep.parquet")
    points = []
    names = set(table.column_names)
    for index, values in enumerate(plan.points):
        mine = [outcomes[spec.run_id] for spec in plan.runs if spec.point == index and spec.run_id in outcomes]
        flat = [flatten(outcome.get("summary") or {}) for outcome in mine if outcome.get("status") == "ok"]
        points.append({
            "point": index, "grid": values, "runs": len(mine),
            "failed": sum(1 for outcome in mine if outcome.get("status") != "ok"),
            "metrics": {metric: point_stats([row.get(metric) for row in flat])  # type: ignore[misc]
                        for metric in KEY_METRICS if metric in names}})
    document = {"keys": plan.keys, "seeds": plan.seeds, "points": points}
    temporary = out_dir / f".{POINTS_FILE}.tmp"
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(out_dir / POINTS_FILE)
    return table
