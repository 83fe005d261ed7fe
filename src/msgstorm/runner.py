"""Running a scenario end to end: target -> history -> analysis -> summary.json.

``run(scenario)`` is the library entry point behind ``msgstorm run``. The history is
written while the target runs; on Ctrl-C the target stops, what it recorded is settled
and written, and analysis still produces a summary (marked ``interrupted``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from msgstorm.analysis import Analysis
from msgstorm.history import History, HistoryWriter, read_history
from msgstorm.history.lock import LockHeld, exclusive
from msgstorm.history.reader import DESTINATION_DIR
from msgstorm.history.run_row import msgstorm_version, write_run_row
from msgstorm.progress import Progress
from msgstorm.report.apart import analyse_apart
from msgstorm.report.rerun import (
    analyse_run_dir,
    reanalyse,
)
from msgstorm.scenario import Scenario
from msgstorm.scenario.registry import TARGETS
from msgstorm.targets import RunContext

__all__ = ["DESTINATION_DIR", "RUN_FILES", "RUN_LOCK", "RunDirError", "RunResult", "claim_run_dir", "default_run_dir",
           "msgstorm_version", "prepare_run_dir", "reanalyse", "refuse_a_file", "run", "run_claimed", "write_run_row"]


@dataclass(frozen=True)
class RunResult:
    """What a run leaves: the scenario, its history, the analysis and where it all is."""

    scenario: Scenario
    run_dir: Path
    history: History
    analysis: Analysis
    wall_s: float

    @property
    def summary(self) -> dict[str, object]:
        return self.analysis.summary

    @property
    def verdicts(self) -> list[object]:
        return list(self.analysis.verdicts)


# What a run writes into its directory; ``--overwrite`` clears exactly these.
RUN_FILES = ("history", "summary.json", "report.html", "windows.csv", "destination", "generators")
# The lock a run holds on its directory while it writes there (``claim_run_dir``); it stays
# when the run ends, and a directory holding nothing else counts as empty.
RUN_LOCK = ".run.lock"


class RunDirError(Exception):
    """The run directory cannot be used: it holds something, or the OS refused it."""


def default_run_dir(scenario: Scenario, root: Path = Path("runs"), kind: str = "") -> Path:
    """A new, empty directory ``runs/<UTC time to the microsecond>-<name>[-kind][-N]``,
    created exclusively here, so runs started in parallel never share one; ``kind`` says
    what else than a run it holds (``sweep``, ``safe-leverage``)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    root.mkdir(parents=True, exist_ok=True)
    named = f"{stamp}-{scenario.run.name}" + (f"-{kind}" if kind else "")
    for attempt in range(1000):
        candidate = root / (named + (f"-{attempt}" if attempt else ""))
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RunDirError(f"{root}: could not create a new run directory")  # pragma: no cover


def refuse_a_file(out_dir: Path) -> None:
    """``RunDirError`` when ``out_dir`` exists and is not a directory (a run's, or any
    command's ``--out``); nothing is changed."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError(f"{out_dir}: exists and is not a directory")


def _refuse_unusable(out_dir: Path, overwrite: bool) -> None:
    """``RunDirError`` when ``out_dir`` is a file, or holds anything (its lock aside) and not
    ``overwrite``; nothing is changed."""
    refuse_a_file(out_dir)
    if out_dir.is_dir() and not overwrite:
        present = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in out_dir.iterdir()
                         if entry.name != RUN_LOCK)
        if present:
            shown = ", ".join(present[:6]) + (f" and {len(present) - 6} more" if len(present) > 6 else "")
            raise RunDirError(f"{out_dir}: not empty (holds {shown}); choose a new directory, "
                              "or pass --overwrite (overwrite=True in Python) to replace the run in it")


def prepare_run_dir(out_dir: Path, overwrite: bool = False) -> list[str]:
    """Make ``out_dir`` ready for a run: create it, or accept it empty. A directory that holds
    anything is refused (``RunDirError`` says what is there) unless ``overwrite``, which
    removes what a run writes and nothing else. Returns what was removed. A run holds the
    directory's lock first (``claim_run_dir``)."""
    import shutil

    _refuse_unusable(out_dir, overwrite)
    if not out_dir.is_dir():
        out_dir.mkdir(parents=True)
        return []
    removed = []
    for name in RUN_FILES:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(name + "/")
        elif path.exists():
            path.unlink()
            removed.append(name)
    return removed


@contextmanager
def claim_run_dir(out_dir: Path, overwrite: bool = False) -> Iterator[list[str]]:
    """Hold ``out_dir``'s lock (``history/lock.py``) and make it ready (``prepare_run_dir``)
    while the block runs; yields what ``overwrite`` removed. ``RunDirError`` at once when
    another process holds the lock (a second run into the same directory, with ``--overwrite``
    or not, would mix its history with the first's), naming that process. A directory refused
    for what it holds is left as it was (no lock file made in it)."""
    _refuse_unusable(out_dir, overwrite)
    with ExitStack() as held:
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            held.enter_context(exclusive(out_dir / RUN_LOCK))
        except LockHeld as busy:
            raise RunDirError(f"{out_dir}: another run is writing there (process {busy.holder} holds {busy.path}); "
                              "wait for it to end, or choose another directory") from None
        yield prepare_run_dir(out_dir, overwrite)


def run(scenario: Scenario, out_dir: str | Path | None = None, progress: Progress | None = None, *,
        overwrite: bool = False, write_report: bool = True, durable: bool = True,
        ray: str | None = None) -> RunResult:
    """Run a scenario on its target and analyse the history it wrote.

    ``out_dir`` must be new or empty, as ``msgstorm run --out`` requires: a directory that
    holds anything raises ``RunDirError`` (a second run's parts would mix with the first's)
    unless ``overwrite``, which removes what a run writes there first. Without ``out_dir``
    the run gets a new ``runs/<UTC time>-<name>``. ``write_report`` False writes the history
    and summary.json only, no report.html, windows.csv or latency.hlog (a sweep's runs, whose
    tables read only the summary). ``durable`` False writes the history without syncing it to
    disk (``HistoryWriter``): for a history removed once analysed (a sweep's runs again).
    The directory is locked while the run writes it (``claim_run_dir``): a second run into it
    meanwhile raises ``RunDirError`` naming this one's process. ``ray``: a Ray cluster's
    address, for a live run's generators spread over its nodes (``live/distributed.py``;
    ``[live] generators`` above 1 does so too, on the cluster ``RAY_ADDRESS`` names or a
    Ray started here)."""
    run_dir = default_run_dir(scenario) if out_dir is None else Path(out_dir)
    with claim_run_dir(run_dir, overwrite):
        return run_claimed(scenario, run_dir, progress, write_report=write_report, durable=durable, ray=ray)


def run_claimed(scenario: Scenario, run_dir: Path, progress: Progress | None = None, *, write_report: bool = True,
                durable: bool = True, ray: str | None = None) -> RunResult:
    """``run`` into ``run_dir``, which the caller holds and has made ready (``claim_run_dir``):
    ``msgstorm run`` claims it first, to say what ``--overwrite`` removed before the run starts."""
    writer = HistoryWriter(run_dir / "history", scenario.history.row_group_size, durable=durable)
    traffic_seed, target_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    target = TARGETS[scenario.target]
    started = time.perf_counter()
    target.record(RunContext(scenario, writer, run_dir, traffic_seed, target_seed, progress, write_report, durable,
                             ray))
    wall_s = time.perf_counter() - started
    if target.analyse_apart and sys.executable:
        # In a new interpreter (``report/apart.py``): this one holds what the recording loaded
        # (a live run's drivers and numba), which the analysis would start on top of.
        return RunResult(scenario, run_dir, read_history(run_dir), analyse_apart(run_dir, wall_s, write_report), wall_s)
    history, analysis = analyse_run_dir(run_dir, wall_s, write_report=write_report)
    return RunResult(scenario, run_dir, history, analysis, wall_s)
