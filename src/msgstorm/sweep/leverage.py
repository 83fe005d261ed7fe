"""Safe leverage: the highest leverage whose bad debt stays within budget with a stated confidence.

Place in the pipeline: above the sweep (every evaluation is a sweep over leverages and
seeds), for ``msgstorm safe-leverage``. The leverage is **one leverage for every account**:
each accounts group of the scenario gets ``leverage_median = L``, ``leverage_sigma = 0`` and
``leverage_cap = L``; everything else (prices, accounts' collateral and sides, the network)
is the scenario's, and every leverage runs the same seeds (common random numbers).

A run *exceeds* when its bad debt is over ``budget`` x open interest. At each leverage the
probability of exceeding is estimated over the seeds, with its Clopper-Pearson interval at
the stated confidence. The search evaluates a log-spaced grid over ``range``, then bisects
(geometrically) between the highest leverage whose estimate is within ``1 - confidence``
(below the first that is not) and that first one. The answer is that highest leverage, with
the bracket ``[it, the lowest leverage above it found over]`` at the search's resolution and
its probability's interval.

The answer's uncertainty is the **boundary interval** ``[surely within, surely over]``: the
highest leverage tried whose one-sided upper Clopper-Pearson bound (at the confidence) is
within ``1 - confidence``, and the lowest whose one-sided lower bound is over it. The
probability grows with leverage, so the true boundary lies between them unless one of the
two bounds is wrong (each at most ``1 - confidence`` of the time). An end that no leverage
tried shows is None: with N seeds and none exceeding the upper bound is
1 - (1 - confidence)^(1/N), so few seeds cannot *show* a small probability (59 seeds for 5%).

``vary``: ``KEY=v1,v2,...`` draws one curve per value (e.g. a latency scale of the
network): safe leverage as a function of the messaging layer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msgstorm.scenario import load_scenario
from msgstorm.sweep import sweep
from msgstorm.sweep.grid import toml_value

__all__ = ["boundary_interval", "clopper_pearson", "one_sided_bounds", "safe_leverage", "seeds_to_show"]

PCT = "market.bad_debt.pct_of_open_interest"


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval of a binomial proportion."""
    from scipy.stats import beta

    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def one_sided_bounds(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The one-sided Clopper-Pearson bounds at ``confidence``: p is at least the first, and at
    most the second, each with that confidence."""
    from scipy.stats import beta

    low = 0.0 if k == 0 else float(beta.ppf(1.0 - confidence, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(confidence, k + 1, n - k))
    return low, high


def seeds_to_show(confidence: float) -> int:
    """The fewest seeds, none exceeding, whose one-sided upper bound at ``confidence`` is
    within ``1 - confidence``: 1 - (1 - c)^(1/N) <= 1 - c."""
    alpha = 1.0 - confidence
    return math.ceil(math.log(alpha) / math.log(confidence))


def boundary_interval(counts: dict[float, tuple[int, int]], confidence: float) -> tuple[float | None, float | None]:
    """``(surely within, surely over)``: the highest leverage whose probability is shown to be
    within ``1 - confidence`` below the lowest shown to be over it (module docstring)."""
    alpha = 1.0 - confidence
    over = [leverage for leverage, (k, n) in counts.items() if n and one_sided_bounds(k, n, confidence)[0] > alpha]
    first_over = min(over) if over else None
    within = [leverage for leverage, (k, n) in counts.items()
              if n and one_sided_bounds(k, n, confidence)[1] <= alpha and (first_over is None or leverage < first_over)]
    return (max(within) if within else None), first_over


def _evaluate(scenario_path: str, leverages: list[float], groups: int, seeds: int, sets: list[str],
              workers: int | None, out_dir: Path, budget_pct: float,
              on_outcome: Callable[[dict[str, Any]], None] | None, ray: str | None = None) -> dict[float, tuple[int, int]]:
    """(runs exceeding the budget, runs) at each leverage: one sweep over them (zipped keys)."""
    grids: list[tuple[str, list[Any]]] = []
    for index in range(groups):
        grids += [(f"market.accounts.{index}.leverage_median", leverages),
                  (f"market.accounts.{index}.leverage_sigma", [0.0] * len(leverages)),
                  (f"market.accounts.{index}.leverage_cap", leverages)]
    result = sweep(scenario_path, grids, seeds=seeds, zipped=True, workers=workers, out_dir=out_dir, sets=sets,
                   on_outcome=on_outcome, ray=ray)
    rows = result.table.to_pylist()
    counts: dict[float, tuple[int, int]] = {}
    key = "market.accounts.0.leverage_median"
    for leverage in leverages:
        mine = [row for row in rows if row["status"] == "ok" and math.isclose(row[key], leverage)]
        exceed = sum(1 for row in mine if (row.get(PCT) or 0.0) > budget_pct)
        counts[leverage] = (exceed, len(mine))
    return counts


def _curve(scenario_path: str, groups: int, budget_pct: float, confidence: float, seeds: int, low: float,
           high: float, sets: list[str], workers: int | None, out_dir: Path, grid_points: int, refine: int,
           on_outcome: Callable[[dict[str, Any]], None] | None, ray: str | None) -> dict[str, Any]:
    alpha = 1.0 - confidence
    ratio = (high / low) ** (1 / max(grid_points - 1, 1))
    grid = [round(low * ratio**i, 6) for i in range(grid_points)]
    counts = _evaluate(scenario_path, grid, groups, seeds, sets, workers, out_dir, budget_pct, on_outcome, ray)

    def boundary() -> tuple[float | None, float | None]:
        ordered = sorted(counts)
        safe = None
        for leverage in ordered:
            exceed, n = counts[leverage]
            if n == 0 or exceed / n > alpha:
                return safe, leverage
            safe = leverage
        return safe, None

    for _ in range(refine):
        safe, unsafe = boundary()
        if safe is None or unsafe is None:
            break
        middle = round(math.sqrt(safe * unsafe), 6)
        if middle in counts or unsafe / safe < 1.001:
            break
        counts.update(_evaluate(scenario_path, [middle], groups, seeds, sets, workers, out_dir, budget_pct,
                                on_outcome, ray))
    safe, unsafe = boundary()
    points = []
    for leverage in sorted(counts):
        exceed, n = counts[leverage]
        interval = clopper_pearson(exceed, n, confidence) if n else (0.0, 1.0)
        points.append({"leverage": leverage, "runs": n, "exceed": exceed, "p": exceed / n if n else None,
                       "ci": list(interval)})
    at_safe = next((point for point in points if point["leverage"] == safe), None)
    return {"safe_leverage": safe, "bracket": [safe, unsafe], "boundary": list(boundary_interval(counts, confidence)),
            "at_safe": at_safe, "points": points,
            "note": None if safe is not None else f"already over budget at the range's lowest leverage {low}"}


def safe_leverage(scenario_path: str | Path, *, budget: float, confidence: float = 0.95, seeds: int = 10,
                  low: float = 1.0, high: float = 50.0, vary: tuple[str, list[Any]] | None = None,
                  sets: list[str] | None = None, workers: int | None = None, out_dir: str | Path,
                  grid_points: int = 6, refine: int = 4, ray: str | None = None,
                  on_outcome: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The search, per value of ``vary`` (one curve without it); writes
    ``safe_leverage.json`` and ``safe_leverage.html`` into ``out_dir`` and returns the document."""
    scenario_path = str(scenario_path)
    fixed = list(sets or [])
    scenario = load_scenario(scenario_path, fixed)
    if scenario.market is None or not scenario.market.accounts:
        raise ValueError(f"{scenario_path}: safe-leverage needs a [market] with [[market.accounts]]")
    if not 0 < low < high:
        raise ValueError(f"--range: expected LOW:HIGH with 0 < LOW < HIGH, got {low}:{high}")
    groups = len(scenario.market.accounts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    values = vary[1] if vary is not None else [None]
    curves = []
    for index, value in enumerate(values):
        curve_sets = fixed + ([f"{vary[0]}={toml_value(value)}"] if vary is not None else [])
        curve = _curve(scenario_path, groups, budget * 100, confidence, seeds, low, high, curve_sets, workers,
                       out / f"curve-{index}", grid_points, refine, on_outcome, ray)
        curves.append({"vary": None if vary is None else {vary[0]: value}, **curve})
    document = {"scenario": scenario.run.name, "budget_pct_of_open_interest": budget * 100,
                "confidence": confidence, "seeds": seeds, "range": [low, high],
                "leverage_is": "one leverage for every account (leverage_median = leverage_cap, leverage_sigma = 0)",
                "vary": None if vary is None else vary[0], "curves": curves}
    (out / "safe_leverage.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    from msgstorm.sweep.leverage_html import write_leverage_report

    write_leverage_report(out, document)
    return document
