"""Running a sweep's runs: one process per run slot, every local core by default.

Place in the pipeline: after the plan (``grid``), before the table (``results``). Each run
is the same as ``msgstorm run SCENARIO --set ... --seed N --out DIR/runs/<run_id>`` in a
worker process of a ``ProcessPoolExecutor`` (started by ``forkserver``: a worker is a clean
process, the numba cache loaded once and shared by every run it makes). A run that raises is a
row with its error, never the end of the sweep. A finished run leaves ``done.json`` in its
directory (written, then renamed into place): a sweep run again with the same ``--out``
skips every run that has one, and runs again any that was cut short. Without
``keep_runs`` a finished run keeps its ``summary.json`` only.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from msgstorm.sweep.grid import RunSpec

__all__ = ["DONE_FILE", "RunOutcome", "finished", "record", "run_all", "run_all_on_ray", "run_one"]

DONE_FILE = "done.json"
RunOutcome = dict[str, Any]  # {run_id, status ("ok", "failed"), error, wall_s, summary}


def run_one(scenario_path: str, fixed: list[str], spec: RunSpec, run_dir: str, keep_runs: bool) -> RunOutcome:
    """One run in this process; its outcome (also written to ``run_dir/done.json``)."""
    from msgstorm.runner import run
    from msgstorm.scenario import load_scenario

    directory = Path(run_dir)
    started = time.perf_counter()
    outcome: RunOutcome = {"run_id": spec.run_id, "point": spec.point, "seed": spec.seed, "values": spec.values}
    try:
        scenario = load_scenario(scenario_path, [*fixed, *spec.overrides])
        result = run(scenario, directory, overwrite=True)
        outcome.update(status="ok", error=None, summary=result.summary)
    except Exception as error:  # noqa: BLE001 - a failed run is a row, not the end of the sweep
        last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
        where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
        outcome.update(status="failed", error=f"{type(error).__name__}: {error}{where}", summary=None)
    outcome["wall_s"] = round(time.perf_counter() - started, 3)
    directory.mkdir(parents=True, exist_ok=True)
    if not keep_runs:
        for entry in directory.iterdir():
            if entry.name != "summary.json":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    record(directory, outcome)
    return outcome


def record(directory: Path, outcome: RunOutcome) -> None:
    """Leave ``done.json`` in the run's directory (written, then renamed into place)."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{DONE_FILE}.tmp"
    temporary.write_text(json.dumps(outcome), encoding="utf-8")
    os.replace(temporary, directory / DONE_FILE)


def finished(runs_dir: Path, run_id: str) -> RunOutcome | None:
    """The outcome a finished run left, or None."""
    path = runs_dir / run_id / DONE_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def run_all(scenario_path: str, fixed: list[str], specs: list[RunSpec], runs_dir: Path, workers: int,
            keep_runs: bool, on_outcome: Callable[[RunOutcome], None]) -> Iterator[RunOutcome]:
    """Run ``specs`` on ``workers`` processes, yielding each outcome as it comes (a few runs
    queued ahead of the workers, so a Ctrl-C leaves little to cancel)."""
    if not specs:
        return
    context = multiprocessing.get_context("forkserver")
    pending: dict[Future[RunOutcome], RunSpec] = {}
    todo = iter(specs)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            while True:
                while len(pending) < 2 * workers:
                    spec = next(todo, None)
                    if spec is None:
                        break
                    pending[pool.submit(run_one, scenario_path, fixed, spec, str(runs_dir / spec.run_id),
                                        keep_runs)] = spec
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = _outcome(future, pending.pop(future))
                    on_outcome(outcome)
                    yield outcome
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _outcome(future: Future[RunOutcome], spec: RunSpec) -> RunOutcome:
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - a worker that died: the run failed (a later sweep retries it)
        return {"run_id": spec.run_id, "point": spec.point, "seed": spec.seed, "values": spec.values,
                "status": "failed", "error": f"worker died: {type(error).__name__}: {error}", "summary": None,
                "wall_s": None}


def run_all_on_ray(scenario_path: str, fixed: list[str], specs: list[RunSpec], runs_dir: Path, address: str,
                   keep_runs: bool, on_outcome: Callable[[RunOutcome], None], cpus_per_task: float = 1.0
                   ) -> Iterator[RunOutcome]:
    """The same runs as Ray tasks on an existing cluster (``address``: ``auto`` or host:port).
    Each task writes its run where ``runs_dir`` says (a path every node shares, or this
    machine's); only its outcome comes back, and the driver records it in its own
    ``runs_dir`` too, so a sweep resumed here skips the runs other nodes finished even when
    ``runs_dir`` is not shared. A task whose worker dies is retried once (``max_retries=1``),
    then recorded as failed (and run again by a resumed sweep)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    remote = ray.remote(num_cpus=cpus_per_task, max_retries=1)(run_one)
    pending = {remote.remote(scenario_path, fixed, spec, str(runs_dir / spec.run_id), keep_runs): spec
               for spec in specs}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                spec = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                    if finished(runs_dir, spec.run_id) is None:  # the task ran on another node
                        record(runs_dir / spec.run_id, outcome)
                except Exception as error:  # noqa: BLE001 - retried once already: the run failed
                    outcome = {"run_id": spec.run_id, "point": spec.point, "seed": spec.seed, "values": spec.values,
                               "status": "failed", "error": f"ray task failed twice: {type(error).__name__}: "
                                                           f"{str(error).splitlines()[0] if str(error) else ''}",
                               "summary": None, "wall_s": None}
                on_outcome(outcome)
                yield outcome
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
