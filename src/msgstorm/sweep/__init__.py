"""Sweeps: one scenario over a grid of settings and several seeds, on every local core or Ray.

Place in the pipeline: above the runner (each run is a whole ``msgstorm.run``), below the
command line (``msgstorm sweep``). ``grid`` plans the runs, ``execute`` runs them on local
processes (or as tasks on a Ray cluster, ``ray=ADDRESS``), ``results`` writes the table and
the per-point statistics, ``html`` the page; ``manifest`` keeps a directory to one sweep, and
``compare`` sets two sweeps side by side, point by point (``msgstorm compare``).

``settled(outcomes)``, when given, is asked after each outcome with every outcome of that
run's point so far: once it says True, the point's runs not yet started are not started
(those under way finish, those queued are cancelled), and the table has a row for each
run made. The safe-leverage
search passes the rule that a leverage's runs already fix what it shows, and ``pool``
(``execute.WorkerPool``): workers kept across its sweeps, started once.

``sweep(...)`` is resumable, into its own directory only: ``manifest`` checks that ``out_dir``
is new or holds the same sweep (refusing anything else) and locks it while the sweep runs. The
runs that finished ``ok`` there (their ``done.json``) are skipped and said so; those recorded
as failed run again (``execute.run_with_retries``: the retry rule of both executors); the
table and statistics are written again from all of them. ``add_points=True`` adds the grid's
points, and seeds past those it has, to the sweep already in ``out_dir`` (the safe-leverage
search, one step at a time), so its tables cover every run of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from msgstorm.processes import usable_cpus
from msgstorm.scenario import load_scenario
from msgstorm.sweep.execute import (
    RunOutcome,
    WorkerPool,
    finished,
    run_all,
    run_all_on_ray,
    run_with_retries,
)
from msgstorm.sweep.grid import GridError, Plan, RunSpec, parse_grid, plan_points, plan_sweep
from msgstorm.sweep.html import write_sweep_report
from msgstorm.sweep.manifest import Manifest, SweepDirError, locked, scenario_digest, settle
from msgstorm.sweep.results import write_results
from msgstorm.version import __version__

__all__ = ["GridError", "SweepDirError", "SweepResult", "parse_grid", "plan_sweep", "sweep"]


@dataclass(frozen=True)
class SweepResult:
    plan: Plan
    table: pa.Table
    skipped: int  # runs a previous sweep had finished ok
    ran: int
    failed: int  # runs whose last outcome is failed
    out_dir: Path
    failed_before: int = 0  # runs a previous sweep had recorded as failed (run again now)


def default_workers() -> int:
    """Every core this process may use."""
    return usable_cpus()


def sweep(scenario_path: str | Path, grids: list[tuple[str, list[Any]]], *, seeds: int = 1, zipped: bool = False,
          workers: int | None = None, out_dir: str | Path, keep_runs: bool = False, sets: list[str] | None = None,
          ray: str | None = None, ray_cpus: float = 1.0, add_points: bool = False,
          on_outcome: Callable[[RunOutcome], None] | None = None,
          on_start: Callable[[Plan, int, int], None] | None = None,
          settled: Callable[[list[RunOutcome]], bool] | None = None, pool: WorkerPool | None = None) -> SweepResult:
    """Run the sweep; every point's scenario is validated before any run starts (a bad
    value fails the whole sweep at once, naming the point). ``on_start(plan, finished ok
    before, failed before)``. Raises ``SweepDirError`` when ``out_dir`` holds anything but
    this sweep (or another sweep is running there)."""
    scenario_path = str(scenario_path)
    fixed = list(sets or [])
    base = load_scenario(scenario_path, fixed)
    digest = scenario_digest(scenario_path)
    requested = plan_sweep(grids, zipped, seeds, base.run.seed, fixed, digest)
    for index in range(len(requested.points)):  # every point validated (and estimated) before any run
        load_scenario(scenario_path, [*fixed, *requested.runs[index * len(requested.seeds)].overrides])
    out = Path(out_dir)
    wanted = Manifest(scenario_path, base.run.name, digest, fixed, requested.seeds, requested.keys, requested.points,
                      __version__)
    with locked(out):
        manifest = settle(out, wanted, adding=add_points)
        # Adding: every point so far, at the seeds asked for now (a step of a search may ask
        # for fewer than the sweep holds, when the search is resumed from its start).
        plan = plan_points(manifest.keys, manifest.points, requested.seeds, fixed, digest) if add_points else requested
        runs_dir = out / "runs"
        runs_dir.mkdir(parents=True, exist_ok=True)
        outcomes: dict[str, RunOutcome] = {}
        failed_before = 0
        for spec in plan.runs:
            done = finished(runs_dir, spec.run_id)
            if done is not None:
                outcomes[spec.run_id] = done
                failed_before += done.get("status") != "ok"
        todo = [spec for spec in plan.runs if outcomes.get(spec.run_id, {}).get("status") != "ok"]
        skipped = len(plan.runs) - len(todo)
        if on_start is not None:
            on_start(plan, skipped, failed_before)
        ran = 0
        by_point: dict[int, list[RunOutcome]] = {}
        for outcome in outcomes.values():
            by_point.setdefault(int(outcome["point"]), []).append(outcome)
        done_points = {point for point, made in by_point.items() if settled is not None and settled(made)}

        def execute(specs: list[RunSpec], attempt: int) -> Iterator[RunOutcome]:
            if ray is not None:  # every task is submitted at once: none is left out
                return run_all_on_ray(scenario_path, fixed, specs, runs_dir.resolve(), ray, keep_runs, ray_cpus,
                                      attempt)
            return run_all(scenario_path, fixed, specs, runs_dir, workers or default_workers(), keep_runs, attempt,
                           wanted=None if settled is None else lambda spec: spec.point not in done_points, pool=pool)

        try:
            for outcome in run_with_retries(execute, todo, on_outcome or (lambda _: None)):
                outcomes[str(outcome["run_id"])] = outcome
                ran += 1
                if settled is not None:
                    made = by_point.setdefault(int(outcome["point"]), [])
                    made.append(outcome)
                    if settled(made):
                        done_points.add(int(outcome["point"]))
        finally:
            table = write_results(out, plan, outcomes)  # what finished, even when stopped
            write_sweep_report(out, plan, table)
    failed = sum(1 for outcome in outcomes.values() if outcome.get("status") != "ok")
    return SweepResult(plan, table, skipped, ran, failed, out, failed_before)
