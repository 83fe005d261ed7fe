"""Two sweeps compared point by point (``msgstorm compare SWEEP_A SWEEP_B``).

Place in the pipeline: above the run comparison (``report/compare.py``), which it applies to
each point's seeds as groups of replicas; it reads each sweep's ``sweep.json``,
``sweep.parquet``, ``manifest.json`` and its runs' ``summary.json``. The manifests say when
the two sweeps ran different scenarios (a warning naming both) or different ``--set``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console

from msgstorm.report.compare import (
    SIGNIFICANCE,
    Comparison,
    RunDirError,
    RunSummary,
    compare_runs,
    format_delta,
    load_run,
)
from msgstorm.report.compare_html import digest_path, render_sweep_compare
from msgstorm.sweep.manifest import SweepDirError, read_manifest

__all__ = ["compare_sweeps", "default_sweep_html_path", "load_sweep_points", "sweep_differences"]


def load_sweep_points(directory: Path, label: str) -> dict[str, RunSummary]:
    """A sweep's points as groups of replicas, keyed by their grid values (JSON), from its
    ``sweep.json`` and each run's ``summary.json``."""
    document = json.loads((directory / "sweep.json").read_text(encoding="utf-8"))
    table = pq.read_table(directory / "sweep.parquet", columns=["run_id", "point", "status"]).to_pylist()
    groups: dict[str, RunSummary] = {}
    for point in document["points"]:
        paths = [directory / "runs" / row["run_id"] for row in table
                 if row["point"] == point["point"] and row["status"] == "ok"]
        if not paths:
            continue
        runs = [load_run(path, label) for path in paths]
        key = json.dumps(point["grid"], sort_keys=True)
        groups[key] = RunSummary(label, directory, runs[0].summary, tuple(run.summary for run in runs), tuple(paths))
    return groups


def sweep_differences(first: Path, second: Path) -> list[str]:
    """What the two sweeps' manifests say differs besides the grid: a warning when they ran
    different scenarios (by content), a note when their ``--set`` differ or a manifest is
    missing."""
    try:
        manifests = {"A": (first, read_manifest(first)), "B": (second, read_manifest(second))}
    except SweepDirError as error:
        raise RunDirError(str(error)) from None
    lines = [f"note: {label} ({directory}) has no manifest.json (a sweep of an older msgstorm): which scenario it "
             "ran is not known" for label, (directory, manifest) in manifests.items() if manifest is None]
    (_, a), (_, b) = manifests.values()
    if a is None or b is None:
        return lines
    if a.scenario_digest != b.scenario_digest:
        lines.append(f"warning: the sweeps ran different scenarios: A = {a.scenario_name} ({a.scenario}, sha256 "
                     f"{a.scenario_digest[:12]}), B = {b.scenario_name} ({b.scenario}, sha256 {b.scenario_digest[:12]}); "
                     "each point compares the same grid values of two different scenarios")
    if a.sets != b.sets:
        lines.append(f"note: their --set differ: A {a.sets or 'none'}, B {b.sets or 'none'}")
    return lines


def compare_sweeps(first: Path, second: Path, tolerance: float, console: Console, html: Path | None = None) -> int:
    """Two sweeps point by point: each point's replicas against the same point of the other
    (by its grid values), regressions beyond the tolerance and significant; prints a line a
    point and returns how many regressions there were. With ``html``, writes the page there
    too (each point's table) and says where."""
    a, b = load_sweep_points(first, "A"), load_sweep_points(second, "B")
    shared = [key for key in a if key in b]
    if not shared:
        raise RunDirError(f"{first} and {second}: no point of one sweep is a point of the other (their grids differ)")
    title = (f"sweeps point by point: A = {first}, B = {second}; {len(shared)} shared point(s); a regression is "
             f"worse by more than {tolerance:.0%} and significant (Welch's t, p < {SIGNIFICANCE:g})")
    console.print(title, highlight=False, markup=False)
    notes = sweep_differences(first, second)
    for line in notes:
        console.print(line, highlight=False, markup=False)
    regressions = 0
    points: list[tuple[str, Comparison]] = []
    for key in shared:
        comparison = compare_runs([a[key], b[key]], tolerance)
        points.append((key, comparison))
        found = comparison.regressions
        regressions += len(found)
        what = ", ".join(f"{metric.name} {format_delta(metric, delta)}" for metric, _, delta in found) or "none"
        console.print(f"  {key} ({len(a[key].replicas)} vs {len(b[key].replicas)} runs): regressions: {what}",
                      highlight=False, markup=False)
    if html is not None:
        html.write_text(render_sweep_compare(title, notes, points), encoding="utf-8")
        console.print(f"comparison: {html}", highlight=False, markup=False)
    return regressions


def default_sweep_html_path(first: Path, second: Path) -> Path:
    """``FIRST/compare-<digest of both sweeps' directories>.html``."""
    return digest_path(first, [[first], [second]])
