"""A sweep's directory: its manifest (which sweep it holds) and its lock (one sweep at a time).

Place in the pipeline: the first thing ``msgstorm sweep`` does with its ``--out``, before any
run. ``manifest.json`` says which sweep the directory holds: the scenario file's content
digest (sha256 of its bytes; files it refers to, such as price files, are not part of it),
the ``--set`` overrides, the seeds, the grid's keys and points, and msgstorm's version. A
sweep resumes only into a directory whose manifest is its own; anything else is refused
(``SweepDirError``, naming what differs), as is a run directory (one holding ``history/``
or ``summary.json``) or a directory of other files. A caller that adds points to one sweep
(the safe-leverage search, one bisection step at a time) passes ``adding=True``: the same
scenario, sets, seeds and keys, and the manifest's points grow.

``not_a_run(directory)`` says what a sweep's directory (its manifest), or a safe-leverage
search's (``SEARCH_FILE``), is, for a command given it in place of a run directory.

``locked(out)`` holds an exclusive ``flock`` on ``out/.sweep.lock`` while the sweep runs
(``history/lock.py``, the same lock a run holds on its run directory): a second sweep into
the same directory is refused at once rather than writing beside the first. The kernel
drops the lock when the holder dies, however it dies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from msgstorm.history.lock import LockHeld, exclusive
from msgstorm.sweep.grid import point_key, toml_value

__all__ = ["LOCK_FILE", "MANIFEST_FILE", "SEARCH_FILE", "Manifest", "SweepDirError", "locked", "not_a_run",
           "read_manifest", "scenario_digest", "settle"]

MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".sweep.lock"
SEARCH_FILE = "safe_leverage.json"  # a safe-leverage search's result, beside its sweeps' directories


class SweepDirError(ValueError):
    """A ``--out`` a sweep cannot use (the message says why and what would be right)."""


@dataclass(frozen=True)
class Manifest:
    """Which sweep a directory holds. ``scenario`` (the path given) and ``scenario_name`` are
    shown, never compared: a scenario moved but unchanged is the same sweep."""

    scenario: str
    scenario_name: str
    scenario_digest: str
    sets: list[str]
    seeds: list[int]
    keys: list[str]
    points: list[dict[str, Any]]
    msgstorm_version: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Manifest:
        return cls(**{name: document[name] for name in cls.__dataclass_fields__})


def scenario_digest(path: str | Path) -> str:
    """sha256 of the scenario file's bytes, in hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest in ``directory``, or None when it has none."""
    path = directory / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SweepDirError(f"{path}: cannot read it ({error.strerror or error})") from None
    try:
        return Manifest.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise SweepDirError(f"{path}: not a sweep manifest ({type(error).__name__}: {error}); "
                            "give a new --out") from None


def not_a_run(directory: Path) -> str | None:
    """Why ``directory`` is no run directory when it is a sweep's or a safe-leverage
    search's, and where its results are; None when it is neither."""
    if (directory / SEARCH_FILE).is_file():
        return (f"{directory}: a safe-leverage search's directory ({SEARCH_FILE}), not a run's: msgstorm report "
                f"re-analyses one run from its history. The search's page is {directory / 'safe_leverage.html'}; "
                "its sweeps are the curve-* directories beside it")
    try:
        manifest = read_manifest(directory)
    except SweepDirError:
        manifest = None
    if manifest is None:
        return None
    points, seeds = len(manifest.points), len(manifest.seeds)
    page = directory / "sweep.html"
    results = (f"its page is {page}, its runs' table {directory / 'sweep.parquet'}, its points {directory / 'sweep.json'}"
               if page.is_file() else "it has no sweep.html yet (written when the sweep ends)")
    kept = sorted(run.parent.name for run in (directory / "runs").glob("*/history"))
    runs = (f"; a run it kept: msgstorm report {directory / 'runs' / kept[0]}" if kept else
            "; msgstorm sweep --keep-runs keeps each run's directory under runs/ for msgstorm report")
    return (f"{directory}: a sweep's directory ({points} point{'s' if points != 1 else ''} x {seeds} "
            f"seed{'s' if seeds != 1 else ''} of {manifest.scenario}, {MANIFEST_FILE}), not a run's: msgstorm "
            f"report re-analyses one run from its history. {results[0].upper()}{results[1:]}{runs}")


def _short(digest: str) -> str:
    return f"sha256 {digest[:12]}"


def _points(points: list[dict[str, Any]]) -> str:
    """How many points, and the first few's values: ``2: sequencer.workers=1; sequencer.workers=2``."""
    shown = "; ".join(", ".join(f"{key}={toml_value(value)}" for key, value in point.items()) for point in points[:4])
    return f"{len(points)}: {shown}{'; ...' if len(points) > 4 else ''}"


def _differences(there: Manifest, now: Manifest, adding: bool) -> list[str]:
    """What makes ``now`` another sweep than ``there`` (nothing: the same sweep)."""
    found = []
    if there.scenario_digest != now.scenario_digest:
        found.append(f"the scenario's content ({there.scenario} {_short(there.scenario_digest)} there, "
                     f"{now.scenario} {_short(now.scenario_digest)} now)")
    if there.sets != now.sets:
        found.append(f"--set ({there.sets or 'none'} there, {now.sets or 'none'} now)")
    shorter, longer = sorted((there.seeds, now.seeds), key=len)
    if there.seeds != now.seeds and not (adding and longer[:len(shorter)] == shorter):
        found.append(f"the seeds ({there.seeds} there, {now.seeds} now)")
    if there.keys != now.keys:
        found.append(f"the grid's keys ({there.keys or 'none'} there, {now.keys or 'none'} now)")
    elif not adding and [point_key(p) for p in there.points] != [point_key(p) for p in now.points]:
        found.append(f"the grid's points ({_points(there.points)} there, {_points(now.points)} now)")
    if there.msgstorm_version != now.msgstorm_version:
        found.append(f"msgstorm's version ({there.msgstorm_version} there, {now.msgstorm_version} now)")
    return found


def _write(directory: Path, manifest: Manifest) -> None:
    temporary = directory / f".{MANIFEST_FILE}.tmp"
    temporary.write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
    temporary.replace(directory / MANIFEST_FILE)


def _refuse_foreign(directory: Path) -> None:
    """``SweepDirError`` when ``directory`` is a run directory or holds files but no manifest
    (checked before the lock file is made, so a refused directory is left as it was)."""
    if (directory / "history").is_dir() or (directory / "summary.json").exists():
        raise SweepDirError(f"{directory}: a run directory (it holds history/ or summary.json), not a sweep's; "
                            "give a new or empty --out")
    if not (directory / MANIFEST_FILE).exists():
        others = sorted(entry.name for entry in directory.iterdir() if entry.name != LOCK_FILE)
        if others:
            raise SweepDirError(f"{directory}: holds {', '.join(others[:5])}{' ...' if len(others) > 5 else ''} "
                                f"but no {MANIFEST_FILE}: not a sweep's directory (or one of an older msgstorm); "
                                "give a new or empty --out")


def settle(directory: Path, manifest: Manifest, adding: bool = False) -> Manifest:
    """Check that ``directory`` (locked, see ``locked``) is new or holds this sweep, write the
    manifest, and return the sweep's: ``manifest`` itself, or with ``adding`` the points
    already there followed by the new ones, and the longer of its seeds and the new ones (one
    must begin the other: a search resumed from its first step asks for fewer seeds than a
    later step already ran). Raises ``SweepDirError`` otherwise."""
    _refuse_foreign(directory)
    there = read_manifest(directory)
    if there is None:
        settled = manifest
    else:
        differences = _differences(there, manifest, adding)
        if differences:
            raise SweepDirError(f"{directory}: holds another sweep; it differs in {'; '.join(differences)}. "
                                "A sweep resumes only into its own directory: give a new --out")
        known = {point_key(point) for point in there.points}
        settled = replace(there, points=there.points + [p for p in manifest.points if point_key(p) not in known],
                          seeds=max(there.seeds, manifest.seeds, key=len)) if adding else there
    _write(directory, settled)
    return settled


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the sweep lock of ``directory`` (created if need be) while the block runs
    (``history.lock.exclusive``, the lock a run holds on its run directory too);
    ``SweepDirError`` at once when another process holds it, or, before any lock file is
    made there, when the directory is a run directory or one of other files."""
    with ExitStack() as held:
        try:
            if directory.is_dir():
                _refuse_foreign(directory)
            directory.mkdir(parents=True, exist_ok=True)
            held.enter_context(exclusive(directory / LOCK_FILE))
        except LockHeld as busy:
            raise SweepDirError(f"{directory}: another sweep is running there (process {busy.holder} holds "
                                f"{busy.path}); wait for it to end, or give another --out") from None
        except OSError as error:
            raise SweepDirError(f"--out {directory}: cannot use it: {error.strerror or error}") from None
        yield
