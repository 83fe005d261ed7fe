"""Safe leverage from probe books: the whole curve from each run, seeds until it is decided.

Place in the pipeline: the default search of ``msgstorm safe-leverage``, called by
``sweep/leverage.py`` (the checks and the command's document, and the search by whole runs
at each leverage, ``--method runs``); both judge by ``sweep/bounds.py``. Every run carries probe books at a log-spaced grid of
leverages over the range (``[market.probes]``, ``market/probes.py``), so each seed gives bad
debt at every leverage of the grid on the same price path, network and keepers (common random
numbers by construction).

**What the accounts ride at.** The probes' liquidations send nothing (``market/probes.py``):
the network carries the accounts' own. Those must be the liquidations of a book near the
answer, or the probes ride a network the answer's book would not meet: on black-thursday the
scenario's accounts (leverage 3 around a median, 41,635 liquidations at a fee of 1) fill the
lane a 2.26x book's liquidations need, which then never execute and pay no penalty, where a
whole book at 2.26x executes them in the drain and ends over budget. So a *pilot* of
``PILOT_SEEDS`` seeds (numbered apart from the search's) runs the probes with the scenario's
accounts, and the search then puts every account at the lowest critical leverage the pilot
saw (``accounts_leverage``): there the probe book is the accounts' own, and the leverages
next to it ride nearly their own traffic. The pilot's runs count in no bound.

**Per seed.** A seed is *over budget* at leverage L when its book at L, or at any lower
leverage of the grid, ends with bad debt over ``budget`` x its open interest, or the run has
no share to compare (failed). A book at a higher leverage usually ends with more (its line is
nearer, the price falls as far behind it), but not always on one path: the oracle's price
steps and a path that rises again can give a lower leverage the worse execution
(``tests/test_market_probes.py``). Taking the lower leverages in makes each seed's outcome grow
with leverage, so it has a *critical leverage*, the highest of the grid within budget, and
can only count a seed over where its own book was within: the answer errs low, not high.

**Seeds until decided (a group-sequential design).** The search looks at the runs after
``n_1``, ``2 n_1``, ``4 n_1`` and ``8 n_1`` seeds (``LOOK_SHARES``: the error 1 - c is spent
95%, 2%, 2% and 1% over the four looks, so look j uses the confidence c_j = 1 - share_j (1 - c),
and ``n_1`` is the fewest seeds that can show a leverage within at c_1: 60 at 95%, against 59
for one look that spends it all; most searches end at the first look). At each
look, a leverage is *shown within* when the one-sided Clopper-Pearson upper bound at c_j of
P(over budget) is at most 1 - c, *shown over* when the lower bound is above it; what a look
shows stays shown. By the union bound, a leverage whose P(over budget) is above 1 - c is shown
within at some look with probability at most the sum of the shares' errors, 1 - c; and since
each seed's outcome grows with leverage, the answer, the highest leverage shown within (every
one below it too), is above the true limit only when the first leverage above the limit is
shown within: at most 1 - c of the time, whatever the number of looks made. The same holds for
the lowest shown over, so the boundary interval [answer, lowest shown over] holds the limit
(where P(over budget) crosses 1 - c) but with at most 2 (1 - c).

**When it stops.** After a look, when the leverage of the grid above the answer is shown over
(the boundary is found to the grid's step), or the answer is the top of the grid, or that
leverage could not be shown within at any later look even if every new seed were within budget:
*decided* (then no later look could raise the answer). Else it takes the next look, unless the looks are spent or a cap binds
(``max_runs``, or ``seconds``: the next look's runs at the pace so far would not end in time);
then it says what was shown and what the next leverage would still take.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from msgstorm.sweep.bounds import clopper_pearson, one_sided_bounds, seeds_to_show

__all__ = ["GRID_POINTS", "LOOK_SHARES", "PILOT_SEEDS", "PILOT_SEED_OFFSET", "Look", "accounts_leverage",
           "critical_leverages", "looks", "probe_grid", "probe_search", "seeds_over"]

GRID_POINTS = 24
LOOK_SHARES = (0.95, 0.02, 0.02, 0.01)
# The pilot: this many seeds, numbered from the scenario's seed + the offset (none of the
# search's own), to choose the leverage the accounts ride at.
PILOT_SEEDS = 2
PILOT_SEED_OFFSET = 1_000_000
PCT = "market.probes.{index}.pct_of_open_interest"


@dataclass(frozen=True)
class Look:
    seeds: int  # seeds run by this look, all told
    confidence: float  # c_j: the one-sided bounds' confidence at this look


def looks(confidence: float) -> list[Look]:
    """The looks of the design (module docstring): seeds n_1 2^j, confidences 1 - share_j (1 - c)."""
    alpha = 1.0 - confidence
    first = seeds_to_show(1.0 - alpha * LOOK_SHARES[0], limit=alpha)
    return [Look(first * 2**j, 1.0 - alpha * share) for j, share in enumerate(LOOK_SHARES)]


def probe_grid(low: float, high: float, points: int = GRID_POINTS) -> list[float]:
    """``points`` leverages, log-spaced from ``low`` to ``high``, rounded to 4 significant digits."""
    ratio = (high / low) ** (1.0 / max(points - 1, 1))
    grid = [float(f"{low * ratio**i:.4g}") for i in range(points)]
    return sorted(set(min(max(value, low), high) for value in grid))


def seeds_over(rows: Sequence[Mapping[str, Any]], grid: list[float], budget_pct: float) -> np.ndarray:
    """``[seeds, grid]`` booleans: over budget at each leverage (module docstring: at it or a
    lower one, and everywhere for a run without shares), one row per run, by seed."""
    over = np.ones((len(rows), len(grid)), dtype=bool)
    for at, row in enumerate(sorted(rows, key=lambda row: row.get("seed", 0))):
        shares = _shares(row, len(grid))
        if shares is not None:
            over[at] = np.logical_or.accumulate(shares > budget_pct)
    return over


def _shares(row: Mapping[str, Any], points: int) -> np.ndarray | None:
    """A run's bad-debt share at each grid leverage; None when it has none to compare (it
    failed, or a share is missing): such a run is unmeasured."""
    if row.get("status") != "ok":
        return None
    shares = [row.get(PCT.format(index=index)) for index in range(points)]
    if any(share is None or math.isnan(share) for share in shares):
        return None
    return np.asarray(shares, dtype=np.float64)


def critical_leverages(over: np.ndarray, grid: list[float]) -> list[float | None]:
    """Per seed, the highest leverage of the grid within budget (None: not even the lowest)."""
    within = (~over).sum(axis=1)  # the envelope makes within a prefix of the grid
    return [grid[count - 1] if count else None for count in within.tolist()]


def accounts_leverage(rows: Sequence[Mapping[str, Any]], grid: list[float], budget_pct: float) -> float:
    """The leverage the accounts ride at in the search: the lowest critical leverage among the
    pilot's seeds (the grid's lowest where one of them has none)."""
    critical = critical_leverages(seeds_over(rows, grid, budget_pct), grid)
    return grid[0] if not critical or None in critical else min(value for value in critical if value is not None)


def _shown(over_count: int, runs: int, confidence: float, alpha: float) -> str | None:
    low, high = one_sided_bounds(over_count, runs, confidence)
    return "within" if high <= alpha else "over" if low > alpha else None


def _seeds_to_show_within(over_count: int, plan: list[Look], start: int, alpha: float) -> int | None:
    """The fewest seeds among the looks from ``start`` that would show a leverage with
    ``over_count`` over budget within, none of the new seeds over; None: no look would."""
    for look in plan[start:]:
        if one_sided_bounds(over_count, look.seeds, look.confidence)[1] <= alpha:
            return look.seeds
    return None


# A row a seed: a run's, as the sweep's table has it, or a seed's bisection (``leverage_bisect``).
Rows = Sequence[Mapping[str, Any]]
Evaluate = Callable[[int], Rows]
# A seed's rows judged: ``[seeds, grid]`` over budget, by seed, and how many were unmeasured.
Judge = Callable[[Rows], tuple[np.ndarray, int]]


def probe_search(evaluate: Evaluate, grid: list[float], *, confidence: float, budget_pct: float,
                 max_runs: int | None = None, seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 judge: Judge | None = None) -> dict[str, Any]:
    """One curve (module docstring). ``evaluate(n)`` runs seeds until ``n`` have run and returns
    a row a seed (by default a run's, ``status``, ``seed`` and the probe shares, as the sweep's
    table has them; ``judge`` reads other rows, as the bisection of whole runs gives them)."""
    if judge is None:
        def judge(rows: Rows) -> tuple[np.ndarray, int]:
            return (seeds_over(rows, grid, budget_pct),
                    sum(1 for row in rows if _shares(row, len(grid)) is None))
    alpha = 1.0 - confidence
    plan = looks(confidence)
    started = clock()
    shown: dict[int, tuple[str, int]] = {}  # grid index -> (what, the look that showed it)
    rows: Rows = []
    over = np.zeros((0, len(grid)), dtype=bool)
    unmeasured = 0
    made: list[dict[str, Any]] = []
    stopped, wanted = "looks", None
    for index, look in enumerate(plan):
        rows = evaluate(look.seeds)
        over, unmeasured = judge(rows)
        counts = over.sum(axis=0).tolist()
        runs = len(rows)
        for at, count in enumerate(counts):
            if at not in shown and (what := _shown(count, runs, look.confidence, alpha)) is not None:
                shown[at] = (what, index)
        made.append({"seeds": runs, "confidence": look.confidence})
        answer = _answer(shown, len(grid))
        above = 0 if answer is None else answer + 1
        if above >= len(grid) or shown.get(above, ("", 0))[0] == "over":
            stopped = "decided"
            break
        if index + 1 == len(plan):
            wanted = _seeds_to_show_within(counts[above], plan, index + 1, alpha)
            break
        following = plan[index + 1]
        wanted = _seeds_to_show_within(counts[above], plan, index + 1, alpha)
        if wanted is None:
            stopped = "decided"  # no later look can show it within, whatever its seeds give
            break
        if max_runs is not None and following.seeds > max_runs:
            stopped = "max_runs"
            break
        spent = clock() - started
        if seconds is not None and spent + spent / max(runs, 1) * (following.seeds - runs) > seconds:
            stopped = "time"
            break
    return _document(grid, over, shown, made, len(rows), confidence, stopped, wanted, unmeasured)


def _answer(shown: Mapping[int, tuple[str, int]], points: int) -> int | None:
    """The highest grid index shown within with every one below it shown within too."""
    answer = None
    for at in range(points):
        if shown.get(at, ("", 0))[0] != "within":
            break
        answer = at
    return answer


def _document(grid: list[float], over: np.ndarray, shown: Mapping[int, tuple[str, int]], made: list[dict[str, Any]],
              runs: int, confidence: float, stopped: str, wanted: int | None,
              unmeasured: int) -> dict[str, Any]:
    alpha = 1.0 - confidence
    counts = over.sum(axis=0).tolist() if runs else [0] * len(grid)
    last = made[-1]["confidence"] if made else confidence
    points = []
    for at, leverage in enumerate(grid):
        what = shown.get(at)
        # The one-sided bounds at the confidence of the look that showed it (else the last look's).
        deciding = last if what is None else made[what[1]]["confidence"]
        points.append({"leverage": leverage, "runs": runs, "exceed": counts[at], "unmeasured": unmeasured,
                       "p": counts[at] / runs if runs else None,
                       "ci": list(clopper_pearson(counts[at], runs, confidence)) if runs else [0.0, 1.0],
                       "bounds": list(one_sided_bounds(counts[at], runs, deciding)) if runs else [0.0, 1.0],
                       "shown": None if what is None else what[0],
                       "shown_at_look": None if what is None else what[1] + 1})
    answer = _answer(shown, len(grid))
    lowest_over = min((at for at, (what, _) in shown.items() if what == "over"), default=None)
    within = None if answer is None else grid[answer]
    above = None if answer is None or answer + 1 >= len(grid) else grid[answer + 1]
    critical = critical_leverages(over, grid) if runs else []
    note = None
    next_index = 0 if answer is None else answer + 1
    if answer is not None and answer + 1 >= len(grid):
        note = f"every leverage of the grid, up to {within:g}x, is shown within budget: the boundary lies above the range"
    elif stopped == "looks":
        note = (f"the design's {len(made)} looks are spent ({runs} seeds): the next leverage, {grid[next_index]:g}x "
                f"({counts[next_index]}/{runs} over budget), is shown neither within budget nor over")
    elif stopped in ("max_runs", "time"):
        cap = {"max_runs": "--max-runs", "time": "--time"}[stopped]
        pending = f"{grid[next_index]:g}x ({counts[next_index]}/{runs} over budget)"
        more = ("no later look would show it within with that many over"
                if wanted is None else f"showing it within needs {wanted} seeds with no more over budget: "
                                       f"{wanted - runs} more runs")
        note = f"stopped by {cap} after {runs} seeds: the next leverage, {pending}, is not decided; {more}"
    elif answer is None and shown.get(0, ("", 0))[0] == "over":
        note = (f"not shown within budget even at the range's lowest leverage, {grid[0]:g}x "
                f"({counts[0]}/{runs} over budget): search lower")
    if unmeasured:
        note = ((note + "; ") if note else "") + (f"{unmeasured} run(s) had no bad-debt share (failed) and count as "
                                                  f"over budget at every leverage")
    known = sorted(value for value in critical if value is not None)
    return {"safe_leverage": within, "boundary": [within, None if lowest_over is None else grid[lowest_over]],
            "bracket": [within, above], "at_safe": None if answer is None else points[answer],
            "unmeasured": unmeasured, "points": points, "note": note, "not_run": [],
            "method": "probes", "looks": made, "runs": runs, "stopped": stopped,
            "critical": critical,
            "critical_summary": None if not critical else {
                "below_range": sum(1 for value in critical if value is None),
                "min": known[0] if known else None,
                "median": known[len(known) // 2] if known else None,
                "max": known[-1] if known else None},
            "alpha": alpha}
