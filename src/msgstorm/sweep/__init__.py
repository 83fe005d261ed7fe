"""Sweeps: one scenario over a grid of settings and several seeds, on every local core or Ray.

Place in the pipeline: above the runner (each run is a whole ``msgstorm.run``), below the
command line (``msgstorm sweep``). ``grid`` plans the runs, ``execute`` runs them on local
processes (or as tasks on a Ray cluster, ``ray=ADDRESS``), ``results`` writes the table and
the per-point statistics, ``html`` the page.

``sweep(...)`` is resumable: the runs already finished in ``out_dir`` (their ``done.json``)
are skipped and said so; the table and statistics are written again from all of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from msgstorm.scenario import load_scenario
from msgstorm.sweep.execute import RunOutcome, finished, run_all, run_all_on_ray
from msgstorm.sweep.grid import GridError, Plan, parse_grid, plan_sweep
from msgstorm.sweep.results import write_results

__all__ = ["GridError", "SweepResult", "parse_grid", "plan_sweep", "sweep"]


@dataclass(frozen=True)
class SweepResult:
    plan: Plan
    table: pa.Table
    skipped: int  # runs a previous sweep had finished
    ran: int
    failed: int
    out_dir: Path


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def sweep(scenario_path: str | Path, grids: list[tuple[str, list[Any]]], *, seeds: int = 1, zipped: bool = False,
          workers: int | None = None, out_dir: str | Path, keep_runs: bool = False, sets: list[str] | None = None,
          ray: str | None = None, ray_cpus: float = 1.0,
          on_outcome: Callable[[RunOutcome], None] | None = None,
          on_start: Callable[[Plan, int], None] | None = None) -> SweepResult:
    """Run the sweep; every point's scenario is validated before any run starts (a bad
    value fails the whole sweep at once, naming the point)."""
    scenario_path = str(scenario_path)
    fixed = list(sets or [])
    base = load_scenario(scenario_path, fixed)
    plan = plan_sweep(grids, zipped, seeds, base.run.seed, fixed)
    for index in range(len(plan.points)):  # every point validated (and estimated) before any run
        load_scenario(scenario_path, [*fixed, *plan.runs[index * len(plan.seeds)].overrides])
    out = Path(out_dir)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, RunOutcome] = {}
    for spec in plan.runs:
        done = finished(runs_dir, spec.run_id)
        if done is not None:
            outcomes[spec.run_id] = done
    skipped = len(outcomes)
    todo = [spec for spec in plan.runs if spec.run_id not in outcomes]
    if on_start is not None:
        on_start(plan, skipped)
    ran = 0
    try:
        report = on_outcome or (lambda _: None)
        outcomes_of = (run_all_on_ray(scenario_path, fixed, todo, runs_dir.resolve(), ray, keep_runs, report, ray_cpus)
                       if ray is not None else
                       run_all(scenario_path, fixed, todo, runs_dir, workers or default_workers(), keep_runs, report))
        for outcome in outcomes_of:
            outcomes[str(outcome["run_id"])] = outcome
            ran += 1
    finally:
        table = write_results(out, plan, outcomes)  # what finished, even when stopped
        from msgstorm.sweep.html import write_sweep_report

        write_sweep_report(out, plan, table)
    failed = sum(1 for outcome in outcomes.values() if outcome.get("status") != "ok")
    return SweepResult(plan, table, skipped, ran, failed, out)
