"""Safe leverage from whole runs, each seed's critical leverage found by bisection.

Place in the pipeline: the search of ``msgstorm safe-leverage`` where the probe books cannot
answer for the venue (``--method bisect``; ``sweep/leverage.py`` chooses it and writes the
document), beside ``sweep/leverage_probes.py``, whose grid, looks and stopping rule it takes
whole: only the way a seed's outcome at each leverage of the grid is learnt differs.

**A seed's critical leverage.** Every account is put at one leverage of the grid
(``uniform_leverage``) and the seeds are the probe search's, ``run.seed + i``, the same at every
leverage (common random numbers). On a fixed seed a run's bad debt (as a share of open
interest) grows with leverage, so the seed is within budget up to its *critical leverage* and
over above it: bisection over the grid's indices (within at ``lo``, over at ``hi``) finds it in
at most about log2(grid points + 1) + 2 runs. Seeds go in waves of ``WAVE`` (the first of
``FIRST_WAVE``, bisected from the middle), each round one batch of every seed's next leverage;
a later wave's seeds are first run at the median critical index of the seeds before (and the
one above): where the seeds' critical leverages lie close together, a seed costs two runs (one
at the top of the grid).

**Reversals.** The shares at the leverages run on a seed are checked: one at a higher leverage
below one at a lower is a *reversal*, and the seed is counted and said (``reversals``), never
bisected past: it is run at every leverage of the grid below its lowest run over budget (below
its highest run when none is over), and counts over budget from its first leverage over (the
envelope of the probe search; from its lowest run over on it is over whatever the runs above
show), so the answer errs low, never high. A run with no share (failed) counts as over budget
at its leverage and above (``unmeasured``).

A seed's outcome at every leverage of the grid is then that of whole runs at each leverage on
the same seed (``tests/test_sweep_leverage_bisect.py`` checks it), and the looks judge it as
they judge the probe books' (``probe_search``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np

from msgstorm.sweep.execute import (
    RunOutcome,
    WorkerPool,
    finished,
    run_all,
    run_all_on_ray,
    run_with_retries,
)
from msgstorm.sweep.grid import RunSpec
from msgstorm.sweep.leverage_probes import Rows
from msgstorm.sweep.manifest import scenario_digest
from msgstorm.sweep.results import flatten

__all__ = ["FIRST_WAVE", "WAVE", "RunAt", "SeedBisection", "SeedRow", "bisect_seeds", "seed_rows",
           "seeds_judged", "whole_runs"]

# Seeds bisected together (a round runs each one's next index); a constant, so the runs a
# search makes are the same on every machine and with any number of workers.
WAVE = 8
# The search's first seeds, bisected from the middle before any guess: few, so the guess comes
# soon.
FIRST_WAVE = 2
# Given (seed, grid index) pairs, each run's bad-debt share of open interest in % (None: no
# share, a failed run or no open interest).
RunAt = Callable[[list[tuple[int, int]]], Mapping[tuple[int, int], float | None]]


@dataclass
class SeedBisection:
    """One seed's runs by grid index, and what they show."""

    seed: int
    shares: dict[int, float | None] = field(default_factory=dict)
    lo: int = -1  # the highest index known within budget (-1: none)
    hi: int = -1  # the lowest index known over budget (set to the grid's length at the start)
    reversal: bool = False

    @property
    def critical(self) -> int:
        """The highest grid index within budget (-1: not even the lowest)."""
        return self.lo


def _over(share: float | None, budget_pct: float) -> bool:
    return share is None or math.isnan(share) or share > budget_pct


def _reversed(shares: Mapping[int, float | None]) -> bool:
    """Whether a share at a higher index is below one at a lower (failed runs left out)."""
    known = [shares[at] for at in sorted(shares) if shares[at] is not None]
    pairs = zip(known, known[1:], strict=False)
    return any(later < earlier for earlier, later in pairs)  # type: ignore[operator]


def bisect_seeds(run_at: RunAt, seeds: Sequence[int], points: int, budget_pct: float, *,
                 known: Sequence[int] = ()) -> list[SeedBisection]:
    """Each seed's critical index on a grid of ``points`` leverages (module docstring), ``WAVE``
    seeds at a time (``FIRST_WAVE`` with none known yet); ``known``: the critical indices of
    seeds bisected before."""
    criticals = list(known)
    states: list[SeedBisection] = []
    start = 0
    while start < len(seeds):
        guess = int(np.median(criticals)) if criticals else None
        size = WAVE if criticals else FIRST_WAVE
        wave = [SeedBisection(seed, hi=points) for seed in seeds[start:start + size]]
        start += size
        while asked := {state.seed: at for state in wave
                        if (at := _next_index(state, guess)) is not None}:
            shares = run_at(list(asked.items()))
            for state in wave:
                if state.seed not in asked:
                    continue
                at = asked[state.seed]
                state.shares[at] = shares[(state.seed, at)]
                if _over(state.shares[at], budget_pct):
                    state.hi = at
                else:
                    state.lo = at
        _settle_reversals(run_at, [state for state in wave if _reversed(state.shares)], budget_pct)
        criticals += [state.critical for state in wave]
        states += wave
    return states


def _next_index(state: SeedBisection, guess: int | None) -> int | None:
    """The next index to run a seed at: the guess (the median critical index of the seeds
    before), then the one above it, while inside the seed's bracket; else the bracket's middle;
    None once the bracket is closed. Every index inside the bracket keeps the bisection exact."""
    if state.hi - state.lo <= 1:
        return None
    if guess is not None:
        for at in (guess, guess + 1):
            if state.lo < at < state.hi:
                return at
    return (state.lo + state.hi) // 2


def _unsettled(state: SeedBisection, budget_pct: float) -> int:
    """How many of a reversed seed's lowest indices it must be run at: every one below its
    lowest run over budget (from there on it is over, whatever lies above), or below its
    highest run when none is over."""
    over = [at for at, share in state.shares.items() if _over(share, budget_pct)]
    return min(over) if over else max(state.shares)


def _settle_reversals(run_at: RunAt, states: list[SeedBisection], budget_pct: float) -> None:
    """Run each reversed seed at every index below its lowest run over budget (its highest
    run, none over); it is over budget from its first leverage over."""
    below = {state.seed: _unsettled(state, budget_pct) for state in states}
    asked = [(state.seed, at) for state in states for at in range(below[state.seed])
             if at not in state.shares]
    shares = run_at(asked) if asked else {}
    for state in states:
        state.reversal = True
        for at in range(below[state.seed]):
            state.shares.setdefault(at, shares.get((state.seed, at)))
        first_over = next((at for at in sorted(state.shares)
                           if _over(state.shares[at], budget_pct)), None)
        if first_over is not None:
            state.lo, state.hi = first_over - 1, first_over


class SeedRow(TypedDict):
    """A seed's bisection as the search's rows carry it (``seed_rows``)."""

    seed: int
    critical_index: int  # the highest grid index within budget (-1: not even the lowest)
    critical: float | None  # its leverage
    runs: int  # the whole runs made on the seed
    reversal: bool
    unmeasured: bool  # a run without a bad-debt share
    shares: dict[str, float | None]  # the share at each leverage run, by the leverage's text


def seed_rows(states: Sequence[SeedBisection], grid: Sequence[float]) -> list[SeedRow]:
    """A row a seed, by seed: its critical index and leverage, its runs (the share at each
    leverage run), whether it had a run without a share and whether it reversed."""
    return [SeedRow(seed=state.seed, critical_index=state.critical,
                    critical=grid[state.critical] if state.critical >= 0 else None,
                    runs=len(state.shares), reversal=state.reversal,
                    unmeasured=any(share is None for share in state.shares.values()),
                    shares={f"{grid[at]:g}": share for at, share in sorted(state.shares.items())})
            for state in sorted(states, key=lambda state: state.seed)]


def seeds_judged(rows: Rows, points: int) -> tuple[np.ndarray, int]:
    """``[seeds, grid]`` over budget from ``seed_rows``, and how many seeds had a run without a
    share."""
    over = np.ones((len(rows), points), dtype=bool)
    for at, row in enumerate(rows):
        over[at, : int(row["critical_index"]) + 1] = False
    return over, sum(1 for row in rows if row["unmeasured"])


def whole_runs(scenario_path: str, sets: list[str], grid: Sequence[float], groups: int,
               runs_dir: Path, *, workers: int, budget_key: str, ray: str | None = None,
               pool: WorkerPool | None = None,
               on_outcome: Callable[[RunOutcome], None] | None = None) -> RunAt:
    """A ``RunAt`` of whole runs: each (seed, grid index) is the scenario with ``sets`` and every
    accounts group at that leverage (``uniform_leverage``), run as a sweep runs its runs
    (``execute``: local workers or Ray tasks, the sweep's retry rule), each in ``runs_dir``
    under an id of its settings, seed and the scenario file's content, so a search run again
    with the same ``--out`` reads the runs it has."""
    digest = scenario_digest(scenario_path)
    runs_dir.mkdir(parents=True, exist_ok=True)

    def spec_of(seed: int, at: int) -> RunSpec:
        values: dict[str, float] = {}
        for index in range(groups):
            values |= {f"market.accounts.{index}.leverage_median": grid[at],
                       f"market.accounts.{index}.leverage_sigma": 0.0,
                       f"market.accounts.{index}.leverage_cap": grid[at]}
        settings = {"point": values, "seed": seed, "set": sets, "scenario": digest}
        run_id = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return RunSpec(run_id, at, values, seed)

    def execute(specs: list[RunSpec], attempt: int) -> Iterator[RunOutcome]:
        if ray is not None:
            return run_all_on_ray(scenario_path, sets, specs, runs_dir.resolve(), ray, False, 1.0,
                                  attempt)
        return run_all(scenario_path, sets, specs, runs_dir, workers, False, attempt, pool=pool)

    def run_at(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], float | None]:
        specs = {pair: spec_of(*pair) for pair in pairs}
        outcomes = {pair: finished(runs_dir, spec.run_id) for pair, spec in specs.items()}
        todo = [spec for pair, spec in specs.items()
                if (outcomes[pair] or {}).get("status") != "ok"]
        by_id = {spec.run_id: pair for pair, spec in specs.items()}
        for outcome in run_with_retries(execute, todo, on_outcome or (lambda _: None)):
            outcomes[by_id[str(outcome["run_id"])]] = outcome
        return {pair: _share(outcome, budget_key) for pair, outcome in outcomes.items()}

    return run_at


def _share(outcome: RunOutcome | None, key: str) -> float | None:
    if outcome is None or outcome.get("status") != "ok":
        return None
    share = flatten(outcome.get("summary") or {}).get(key)
    return None if share is None or math.isnan(share) else float(share)
