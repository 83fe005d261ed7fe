"""Running a sweep's runs: one process per run slot, every local core by default.

Place in the pipeline: after the plan (``grid``), before the table (``results``). Each run
is the same as ``msgstorm run SCENARIO --set ... --seed N --out DIR/runs/<run_id>`` in a
worker process of a ``ProcessPoolExecutor``. The workers are forked from multiprocessing's
fork server, a clean process the sweep's process starts once and keeps
(``preload``: it imports the runner and loads numba's cache before its first fork, so a
worker starts with both, and a second sweep in the same process starts no server); where
there is no fork server (Windows), a worker is started by ``spawn`` and loads them itself.
A worker dies with the sweep: a thread of it waits on the sweep's process (a pidfd)
and ends the worker when it ends (``_tie_to_sweep``), so a SIGKILLed sweep leaves no worker
writing into its directory; then nothing holds the fork server, and it ends too. A run
that raises is a row with its error, never the end of the sweep; a worker that dies makes
every run it had queued a failed row.

One retry rule for both executors (``run_with_retries``): a run that failed is run once more
within the sweep (``RETRIES``), and a resumed sweep runs again every run recorded as failed.
A finished run leaves ``done.json`` in its directory (written, then renamed into place),
its status and attempt with it (a run stopped part way by Ctrl-C or SIGTERM, its summary
marked ``interrupted``, is a failed run, not an ``ok`` one): a sweep run again with the
same ``--out`` skips every run that finished ``ok``, and runs again any that failed or was
cut short. Without
``keep_runs`` a run writes no report.html or windows.csv (the sweep's tables read only its
summary), nor syncs its history to disk (read once, then removed), and once finished keeps
its ``summary.json`` only.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgstorm.errors import ExitCode
from msgstorm.processes import connect_ray, die_with_parent
from msgstorm.sweep.grid import RunSpec

__all__ = ["DONE_FILE", "PRELOAD", "RETRIES", "Execute", "RunOutcome", "RunTask", "WorkerPool", "finished", "record", "run_all",
           "run_all_on_ray", "run_one", "run_with_retries", "worker_context"]

DONE_FILE = "done.json"
RunOutcome = dict[str, Any]  # {run_id, status ("ok", "failed"), error, wall_s, summary, attempt}
# Runs the specs as attempt N (1 the first), yielding each outcome as it comes.
Execute = Callable[[list[RunSpec], int], Iterator[RunOutcome]]

# How many times a run that failed is run again within one sweep, by either executor.
RETRIES = 1


def run_with_retries(execute: Execute, specs: list[RunSpec], on_outcome: Callable[[RunOutcome], None]
                     ) -> Iterator[RunOutcome]:
    """The sweep's one retry rule: run ``specs``; run those that failed again, up to
    ``RETRIES`` times; yield (and report) each run's last outcome."""
    by_id = {spec.run_id: spec for spec in specs}
    attempt, todo = 1, specs
    while todo:
        again = []
        for outcome in execute(todo, attempt):
            if outcome.get("status") != "ok" and attempt <= RETRIES:
                again.append(by_id[str(outcome["run_id"])])
                continue
            on_outcome(outcome)
            yield outcome
        attempt, todo = attempt + 1, again


def _failed(spec: RunSpec, attempt: int, error: str) -> RunOutcome:
    return {"run_id": spec.run_id, "point": spec.point, "seed": spec.seed, "values": spec.values, "attempt": attempt,
            "status": "failed", "error": error, "summary": None, "wall_s": None}


@dataclass(frozen=True)
class RunTask:
    """What a worker needs for one run (``run_one``'s one argument, pickled to the worker)."""

    scenario_path: str
    fixed: list[str]
    spec: RunSpec
    run_dir: str
    keep_runs: bool
    attempt: int = 1


def run_one(task: RunTask) -> RunOutcome:
    """One run in this process; its outcome (also written to ``run_dir/done.json``)."""
    from msgstorm.runner import run
    from msgstorm.scenario import load_scenario

    spec, keep_runs = task.spec, task.keep_runs
    directory = Path(task.run_dir)
    started = time.perf_counter()
    outcome: RunOutcome = {"run_id": spec.run_id, "point": spec.point, "seed": spec.seed, "values": spec.values,
                           "attempt": task.attempt}
    try:
        scenario = load_scenario(task.scenario_path, [*task.fixed, *spec.overrides])
        result = run(scenario, directory, overwrite=True, write_report=keep_runs, durable=keep_runs)
        if result.summary.get("interrupted"):
            # Stopped part way (the terminal's Ctrl-C reaches every worker): its summary covers
            # only what ran, so it is not a finished run, and a resumed sweep runs it again.
            ran = result.summary.get("duration_s")
            outcome.update(status="failed", summary=None,
                           error=f"interrupted (Ctrl-C or SIGTERM) "
                                 f"{f'{ran:.1f} s' if isinstance(ran, (int, float)) else 'part way'} into a "
                                 f"{scenario.run.duration / 1e9:g} s run: run again on resume")
        else:
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
    """The outcome a finished run left (``ok`` or ``failed``), or None."""
    path = runs_dir / run_id / DONE_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


# The modules the fork server imports before its first fork (``preload``'s docstring).
PRELOAD = ["msgstorm.sweep.preload"]


def worker_context() -> multiprocessing.context.BaseContext:
    """How the workers start: forked from the fork server, ``PRELOAD`` imported there first
    (setting the preload is a no-op once the server runs: it is started once per process);
    by ``spawn`` where there is no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _tie_to_sweep(sweep_pid: int) -> None:  # pragma: no cover - runs in each worker as it starts
    """A worker's initializer: die when the sweep's process dies, and at once if it died
    before the worker asked. A worker forked by the fork server is the server's child and
    holds the pipe whose end tells the server that nobody needs it any more, so neither the
    kernel's parent-death signal (the parent is the server, which would wait for that end)
    nor the server's own exit reaches it: a thread watches the sweep's process itself (a
    pidfd: readable once that process has ended). ``die_with_parent`` still covers the server
    killed by itself. Without pidfds (not Linux) the worker is tied as a ``spawn`` worker is:
    the kernel's "parent" is then the thread that submits the runs, the one running the sweep."""
    die_with_parent()
    try:
        sweep = os.pidfd_open(sweep_pid)
    except ProcessLookupError:  # the sweep is gone: this worker is cut short with it
        os._exit(ExitCode.INTERRUPTED)
    except (AttributeError, OSError):  # no pidfds here
        if os.getppid() != sweep_pid:
            os._exit(ExitCode.INTERRUPTED)
        return
    threading.Thread(target=_exit_when_ended, args=(sweep,), name="sweep-watch", daemon=True).start()


def _exit_when_ended(pidfd: int) -> None:  # pragma: no cover - a worker's thread
    select.select([pidfd], [], [])
    os._exit(ExitCode.INTERRUPTED)


class WorkerPool:
    """The worker processes, kept across calls of ``run_all`` for one caller: a search that
    makes many small sweeps (safe leverage, one step at a time) starts its workers once, not
    once a step (forked from the fork server, a worker starts with msgstorm imported and
    numba's cache loaded; started by ``spawn``, it would spend seconds of CPU on both).
    Started on first use, from the thread that uses it (``_tie_to_sweep``); one that a dying
    worker broke is replaced at the next use. A context manager: leaving it stops the workers."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._interrupted = False

    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=worker_context(),
                                                 initializer=_tie_to_sweep, initargs=(os.getpid(),))
        return self._executor

    def broken(self) -> None:
        """A worker died: the next use starts new workers, once the broken pool's are gone. The
        pool ends its other workers with SIGTERM, and a worker's run settles on it, holding its
        run directory meanwhile: a retry of that run started before then would find it locked."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def interrupt(self) -> None:
        """Stop the runs under way as the terminal's Ctrl-C does (SIGINT to each worker: its
        run settles and returns an interrupted outcome), for a sweep stopped by a signal that
        reached only its own process (SIGTERM, a Ctrl-C sent to its pid): ``close`` would
        otherwise wait for each run to finish."""
        if self._executor is None or self._interrupted:
            return  # once: a second SIGINT would cut short a run that is settling
        self._interrupted = True
        # The executor's worker processes (CPython keeps them in ``_processes``, a private
        # mapping of pid to process; the workers are the fork server's children, not ours).
        for pid in list(getattr(self._executor, "_processes", None) or {}):
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.interrupt()
        self.close()


def run_all(  # noqa: C901
    scenario_path: str, fixed: list[str], specs: Iterable[RunSpec], runs_dir: Path, workers: int,
    keep_runs: bool, attempt: int = 1, wanted: Callable[[RunSpec], bool] | None = None,
    pool: WorkerPool | None = None) -> Iterator[RunOutcome]:
    """Run ``specs`` on ``workers`` processes (``pool``'s when given, else started and stopped
    here), yielding each outcome as it comes (a few runs queued ahead of the workers, so a
    Ctrl-C leaves little to cancel). ``wanted``, asked again after each outcome, leaves out
    the runs it no longer wants: not queued, and cancelled if queued and not yet started (no
    outcome for either). A worker that dies breaks the pool: every run not finished then is a
    failed outcome."""
    if isinstance(specs, list) and not specs:
        return
    # A few runs queued ahead keep the workers busy; with ``wanted``, none beyond the workers,
    # since a run queued may be left out after the next outcome (the pool starts a queued
    # run before a worker is free, and a started run can no longer be cancelled).
    ahead = 2 * (workers if pool is None else pool.workers)
    if wanted is not None:
        specs = (spec for spec in specs if wanted(spec))
        ahead //= 2
    own = pool is None
    workers_pool = WorkerPool(workers) if pool is None else pool
    executor = workers_pool.executor()
    pending: dict[Future[RunOutcome], RunSpec] = {}
    todo = iter(specs)
    try:
        while True:
            while len(pending) < ahead:
                spec = next(todo, None)
                if spec is None:
                    break
                try:
                    future = executor.submit(run_one, RunTask(scenario_path, fixed, spec, str(runs_dir / spec.run_id),
                                                              keep_runs, attempt))
                except BrokenProcessPool as error:
                    workers_pool.broken()
                    for lost in (spec, *todo):
                        yield _failed(lost, attempt, f"worker died: {type(error).__name__}: {error}")
                    break
                pending[future] = spec
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                spec = pending.pop(future)
                if future.cancelled():
                    continue
                if isinstance(future.exception(), BrokenProcessPool):
                    workers_pool.broken()
                yield _outcome(future, spec, attempt)
            if wanted is not None:
                for future, spec in list(pending.items()):
                    if not wanted(spec) and future.cancel():
                        del pending[future]
    except BaseException as error:
        for future in pending:
            future.cancel()
        if isinstance(error, KeyboardInterrupt):
            workers_pool.interrupt()
        raise
    finally:
        if own:
            workers_pool.close()


def _outcome(future: Future[RunOutcome], spec: RunSpec, attempt: int) -> RunOutcome:
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - a worker that died: the run failed (retried by the rule)
        return _failed(spec, attempt, f"worker died: {type(error).__name__}: {error}")


def run_all_on_ray(scenario_path: str, fixed: list[str], specs: list[RunSpec], runs_dir: Path, address: str,
                   keep_runs: bool, cpus_per_task: float = 1.0, attempt: int = 1) -> Iterator[RunOutcome]:
    """The same runs as Ray tasks on an existing cluster (``address``: ``auto`` or host:port).
    Each task writes its run where ``runs_dir`` says (a path every node shares, or this
    machine's); only its outcome comes back, and the driver records it in its own
    ``runs_dir`` too, so a sweep resumed here skips the runs other nodes finished even when
    ``runs_dir`` is not shared. A task whose worker dies is a failed outcome (Ray itself does
    not retry it: ``run_with_retries`` is the one rule for both executors)."""
    import ray

    connect_ray(address)
    remote = ray.remote(num_cpus=cpus_per_task, max_retries=0)(run_one)
    pending = {remote.remote(RunTask(scenario_path, fixed, spec, str(runs_dir / spec.run_id), keep_runs, attempt)): spec
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
                except Exception as error:  # noqa: BLE001 - the task's worker died: the run failed
                    outcome = _failed(spec, attempt, f"ray task failed: {type(error).__name__}: "
                                                     f"{str(error).splitlines()[0] if str(error) else ''}")
                yield outcome
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
