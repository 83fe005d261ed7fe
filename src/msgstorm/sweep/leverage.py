"""Safe leverage: the highest leverage *shown* to keep bad debt within budget with a stated confidence.

Place in the pipeline: above the sweep (every evaluation is a sweep over leverages and
seeds), for ``msgstorm safe-leverage``; ``leverage_html`` draws the page. The leverage is
**one leverage for every account**: each accounts group of the scenario gets
``leverage_median = L``, ``leverage_sigma = 0`` and ``leverage_cap = L``; everything else
(prices, accounts' collateral and sides, the network) is the scenario's, and every leverage
runs the same seeds (common random numbers).

A run is *over budget* when its bad debt is over ``budget`` x open interest, and also when it
has no bad-debt share to compare with the budget: a run that failed, or one without open
interest (the analysis then gives null). Such a run is *unmeasured*; it counts as over
budget, never as within, and each point says how many it had.

At each leverage the k runs over budget of n give the one-sided Clopper-Pearson bounds at the
confidence c. A leverage is **shown within budget** when its upper bound is at most 1 - c, and
**shown over** when its lower bound is above 1 - c. The answer is the highest leverage tried
that is shown within budget with every leverage tried below it shown within too; the
**boundary interval** is ``[the answer, the lowest leverage shown over]``. P(over budget) grows
with leverage, so the true boundary (where it is 1 - c) lies in it unless a bound is wrong; with
common random numbers each seed's outcome grows with leverage, k with it, and the answer is
wrong only when the bound of the first leverage above the boundary is, at most 1 - c of the
time. An end no leverage tried shows is None: with N seeds and none over budget the upper
bound is 1 - (1 - c)^(1/N), so fewer than ``seeds_to_show(c)`` seeds (59 at 95%) cannot show any
leverage within budget, and the curve says so.

The search evaluates a log-spaced grid over ``range``, lowest leverage first, then bisects
(geometrically) ``refine`` times the wider, as a ratio, of the boundary interval's two edges:
the answer and the next leverage tried above it; the lowest shown over and the highest tried
below it. It runs at most ``(grid_points + refine) x seeds`` runs a curve (``most_runs``).
The grid stops at its first leverage shown over: no leverage above it can change the answer,
the boundary interval or any bisection (the answer is below it, being not shown within; the
lowest shown over is it or below; the edges' other ends are the leverages tried next to the
answer and next below the lowest shown over, both at or below it; every bisection falls
inside an edge, so below it too), so those runs are not made and their leverages are not
among the curve's points (``not_run``). The answer, the boundary interval and every
bisection are those of the whole grid (``tests/test_sweep_leverage.py`` compares both
searches on random tallies). A range whose top is at or
above 1 / maintenance margin is refused before anything runs: an account at that leverage
opens on or past its liquidation line.

``vary``: ``KEY=v1,v2,...`` draws one curve per value (e.g. a latency scale of the
network): safe leverage as a function of the messaging layer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msgstorm.scenario import Scenario, load_scenario
from msgstorm.scenario.errors import TomlLocator, format_field
from msgstorm.scenario.loader import Override
from msgstorm.scenario.market import leverage_limit
from msgstorm.scenario.registry import LIQUIDATION_MECHANISMS
from msgstorm.sweep import default_workers, sweep
from msgstorm.sweep.bounds import clopper_pearson, one_sided_bounds, seeds_to_show
from msgstorm.sweep.execute import WorkerPool
from msgstorm.sweep.grid import toml_value
from msgstorm.sweep.leverage_bisect import (
    SeedBisection,
    SeedRow,
    bisect_seeds,
    seed_rows,
    seeds_judged,
    whole_runs,
)
from msgstorm.sweep.leverage_html import write_leverage_report
from msgstorm.sweep.leverage_method import books_shared, probes_cannot_answer
from msgstorm.sweep.leverage_probes import GRID_POINTS as PROBE_POINTS
from msgstorm.sweep.leverage_probes import (
    PILOT_SEED_OFFSET,
    PILOT_SEEDS,
    accounts_leverage,
    looks,
    probe_grid,
    probe_search,
)
from msgstorm.sweep.manifest import SEARCH_FILE
from msgstorm.sweep.results import flatten

__all__ = ["CONFIDENCE_EXPECTED", "METHODS", "OVER_BUDGET_IS", "SHARE_EXPECTED", "Tally",
           "bisect_search", "boundary_interval", "check_search", "check_seeds", "choose_method",
           "clopper_pearson", "default_range", "fraction_note", "leverage_floors", "most_runs",
           "books_shared", "needs_market", "one_sided_bounds", "parse_range", "parse_share", "probes_cannot_answer", "runs_seeds",
           "safe_leverage", "search", "seeds_to_show", "settled", "settled_prefix", "tally_rows",
           "uniform_leverage", "vault_liquidation_ratio"]

PCT = "market.bad_debt.pct_of_open_interest"
OVER_BUDGET_IS = ("bad debt over the budget x open interest, or no bad-debt share to compare "
                  "(a failed run, or no open interest): such a run is unmeasured and counts as over budget")
GRID_POINTS, REFINE = 6, 6
METHODS = ("auto", "probes", "bisect", "runs")


@dataclass(frozen=True)
class Tally:
    """The runs at one leverage: ``over`` budget (the unmeasured included) of ``runs``, of
    the ``seeds`` planned (0: as many as ``runs``; more when the runs made already fixed
    what the leverage shows, ``settled``)."""

    over: int
    runs: int
    unmeasured: int = 0
    seeds: int = 0

    @property
    def planned(self) -> int:
        return max(self.seeds, self.runs)


Evaluate = Callable[[list[float]], dict[float, Tally]]


# What a share option expects, said when its value is not one (each example parses to the same share).
SHARE_EXPECTED = "a percentage such as 0.1% or a fraction between 0 and 1 such as 0.001 (the same)"
CONFIDENCE_EXPECTED = "a confidence between 0 and 1, such as 0.95 or 95% (the same)"


def parse_share(text: str, option: str, expected: str = SHARE_EXPECTED) -> float:
    """A share in [0, 1] written as a percentage (``"0.1%"``) or, as in scenario files, as a
    plain fraction (``"0.001"``); a ValueError saying ``expected`` otherwise."""
    stripped = text.strip()
    try:
        share = float(stripped[:-1]) / 100.0 if stripped.endswith("%") else float(stripped)
    except ValueError:
        share = math.nan
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{option}: expected {expected}, got {text!r}")
    return share


def fraction_note(text: str, option: str) -> str | None:
    """What a share written as a plain fraction means, said back (``--budget 0.1`` is 10%, a
    hundred times ``--budget 0.1%``); None for a percentage."""
    if text.strip().endswith("%"):
        return None
    share = parse_share(text, option)
    return (f"note: {option} {text.strip()} is a fraction: {share * 100:g}% of open interest "
            f"(for {text.strip()}% write {option} {text.strip()}%)")


def parse_range(text: str) -> tuple[float, float]:
    """``"LOW:HIGH"`` leverages."""
    low_text, colon, high_text = text.partition(":")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        low = high = math.nan
    if not colon or not 0 < low < high < math.inf:
        raise ValueError(f"--range: expected LOW:HIGH leverages with 0 < LOW < HIGH, such as 1:20, got {text!r}")
    return low, high


def needs_market(scenario: Scenario, scenario_path: str | Path | None = None) -> None:
    """``ValueError`` when ``scenario`` (of the file ``scenario_path``) has no accounts to put
    at a leverage: no ``[market]`` or no ``[[market.accounts]]``."""
    if scenario.market is None or not scenario.market.accounts:
        where = "" if scenario_path is None else f"{scenario_path}: "
        raise ValueError(f"{where}safe-leverage needs a [market] with [[market.accounts]]")


def default_range(scenario: Scenario) -> tuple[float, float]:
    """1x (or the highest ``leverage_floor`` of the accounts groups, when above 1x) up to just
    below the leverage of the liquidation line (0.99 / maintenance margin), at most 50x; a
    scenario without a market has none (``needs_market``: ``ValueError``)."""
    needs_market(scenario)
    assert scenario.market is not None
    floors = [floor for _, floor in leverage_floors(scenario)]
    below_line = math.floor(0.99 * leverage_limit(scenario.market.maintenance_margin) * 100) / 100
    return max([1.0, *floors]), min(50.0, below_line)


def leverage_floors(scenario: Scenario) -> list[tuple[int, float]]:
    """``(group index, leverage_floor)`` of each accounts group with a floor. The search puts a
    group at L by its median and cap (``uniform_leverage``) and keeps its floor: every account
    is drawn at least at the floor, so a leverage below it cannot be searched."""
    market = scenario.market
    if market is None:
        return []
    return [(index, group.leverage_floor) for index, group in enumerate(market.accounts)
            if group.file is None and group.leverage_floor is not None]


def _below_a_floor(scenario: Scenario, scenario_path: str | Path, low: float, high: float,
                   where: str) -> str | None:
    """What is wrong with a range whose bottom is below an accounts group's ``leverage_floor``
    (the file, line and field of the floor, and a range that can be searched), or None."""
    floors = leverage_floors(scenario)
    if not floors:
        return None
    index, floor = max(floors, key=lambda pair: pair[1])
    if low >= floor:
        return None
    loc = ("market", "accounts", index, "leverage_floor")
    line = _line_of(scenario_path, loc)
    place = f"{scenario_path}:{line}" if line is not None else str(scenario_path)
    top = high if high > floor else default_range(scenario)[1]
    return (f"--range: the bottom, {low:g}, is below {place}: {format_field(loc)} = "
            f"{floor:g}{where}: every account of the group is drawn at least at its floor, so none can be put at "
            f"{low:g}x; search from the floor, such as --range {floor:g}:{top:g}")


def _line_of(scenario_path: str | Path, loc: tuple[str | int, ...]) -> int | None:
    try:
        return TomlLocator(Path(scenario_path).read_text(encoding="utf-8")).line_of(loc)
    except OSError:
        return None


def _shown_within(tally: Tally, confidence: float) -> bool:
    return tally.runs > 0 and one_sided_bounds(tally.over, tally.runs, confidence)[1] <= 1.0 - confidence


def _shown_over(tally: Tally, confidence: float) -> bool:
    return tally.runs > 0 and one_sided_bounds(tally.over, tally.runs, confidence)[0] > 1.0 - confidence


def settled(over: int, runs: int, seeds: int, confidence: float) -> bool:
    """Whether ``over`` budget of the ``runs`` made at a leverage, of ``seeds`` planned, already
    fix what it shows, whatever the other runs give: shown over (over can only grow, and the
    lower bound with it), or neither shown within (the upper bound already above 1 - c) nor
    able to be shown over (not even with every other run over). The runs made then show the
    same as all would: with fewer runs and the same count over, the upper bound is higher;
    and the lower bound of ``over`` of ``runs`` is at most that of every other run over too
    (``tests/test_sweep_leverage.py`` checks every completion). The search's steps read only
    what each leverage shows, so the runs left out change no answer, interval or bisection."""
    if _shown_over(Tally(over, seeds), confidence):
        return True
    return (not _shown_within(Tally(over, seeds), confidence)
            and not _shown_over(Tally(over + seeds - runs, seeds), confidence))


def settled_prefix(over_in_seed_order: list[bool], seeds: int, confidence: float) -> int | None:
    """The fewest runs, taken in seed order from the first seed, that fix what a leverage
    shows (``settled``), or None when none do. Only these are counted: the runs a parallel
    sweep finishes past them depend on which worker was faster, and counting them would make
    the points' counts differ from machine to machine (the answer would not: ``settled``)."""
    over = 0
    for made, is_over in enumerate(over_in_seed_order, start=1):
        over += is_over
        if settled(over, made, seeds, confidence):
            return made
    return None


def _in_seed_order(seeded: list[tuple[int, bool]]) -> list[bool]:
    """The outcomes (over budget or not) of the runs from the lowest seed made up to the first
    seed not made: the prefix whatever finished out of order past it."""
    by_seed = dict(seeded)
    first = min(by_seed, default=0)
    prefix: list[bool] = []
    while first + len(prefix) in by_seed:
        prefix.append(by_seed[first + len(prefix)])
    return prefix


def boundary_interval(tallies: Mapping[float, Tally], confidence: float) -> tuple[float | None, float | None]:
    """``(shown within, shown over)``: the highest leverage shown within budget with every one
    below it shown within too, and the lowest shown over (module docstring)."""
    within = None
    for leverage in sorted(tallies):
        if not _shown_within(tallies[leverage], confidence):
            break
        within = leverage
    over = [leverage for leverage, tally in tallies.items() if _shown_over(tally, confidence)]
    return within, (min(over) if over else None)


def most_runs(seeds: int, curves: int, grid_points: int = GRID_POINTS, refine: int = REFINE) -> int:
    """The most runs a search makes (it stops bisecting once its edges are fine enough)."""
    return curves * (grid_points + refine) * seeds


def _edges(tallies: Mapping[float, Tally], confidence: float) -> list[tuple[float, float]]:
    """The boundary interval's edges still open: (answer, next tried above), (highest tried
    below the lowest shown over, that one)."""
    within, over = boundary_interval(tallies, confidence)
    edges = []
    if within is not None and (above := [leverage for leverage in tallies if leverage > within]):
        edges.append((within, min(above)))
    if over is not None and (below := [leverage for leverage in tallies if leverage < over]):
        edges.append((max(below), over))
    return edges


def search(evaluate: Evaluate, *, low: float, high: float, confidence: float, grid_points: int = GRID_POINTS,
           refine: int = REFINE, whole_grid: bool = False) -> dict[str, Any]:
    """One curve: the grid, the bisections (module docstring), and what they showed.
    ``whole_grid`` evaluates every grid leverage at once, as the search did before it stopped
    at the first shown over: the reference the tests compare the answers with."""
    ratio = (high / low) ** (1 / max(grid_points - 1, 1))
    grid = [round(low * ratio**i, 6) for i in range(grid_points)]
    tallies: dict[float, Tally] = dict(evaluate(grid)) if whole_grid else {}
    for leverage in [] if whole_grid else grid:  # lowest first, until one is shown over (module docstring: those above it are not run)
        tallies.update(evaluate([leverage]))
        if _shown_over(tallies[leverage], confidence):
            break
    for _ in range(refine):
        edges = [(lo, hi) for lo, hi in _edges(tallies, confidence) if hi / lo >= 1.001]
        if not edges:
            break
        lo, hi = max(edges, key=lambda edge: edge[1] / edge[0])  # the first, the answer's, on a tie
        middle = round(math.sqrt(lo * hi), 6)
        if middle in tallies or not lo < middle < hi:
            break
        tallies.update(evaluate([middle]))
    document = _curve_document(tallies, confidence)
    document["not_run"] = [leverage for leverage in grid if leverage not in tallies]
    return document


def _curve_document(tallies: Mapping[float, Tally], confidence: float) -> dict[str, Any]:
    within, over = boundary_interval(tallies, confidence)
    points = []
    for leverage in sorted(tallies):
        tally = tallies[leverage]
        k, n = tally.over, tally.runs
        points.append({"leverage": leverage, "runs": n, "exceed": k, "unmeasured": tally.unmeasured,
                       "p": k / n if n else None,
                       "ci": list(clopper_pearson(k, n, confidence)) if n else [0.0, 1.0],
                       "bounds": list(one_sided_bounds(k, n, confidence)) if n else [0.0, 1.0],
                       "shown": ("within" if _shown_within(tally, confidence) else
                                 "over" if _shown_over(tally, confidence) else None)})
    at_safe = next((point for point in points if point["leverage"] == within), None)
    above = [leverage for leverage in tallies if within is None or leverage > within]
    lowest = min(tallies) if tallies else None
    unmeasured = sum(tally.unmeasured for tally in tallies.values())
    if within is not None and not above:
        note = (f"every leverage tried, up to {within:g}x, is shown within budget: the boundary lies above "
                f"the range")
    elif within is not None:
        note = None
    elif lowest is None:
        note = "no leverage was tried"
    elif tallies[lowest].planned < seeds_to_show(confidence):
        runs = tallies[lowest].planned
        note = (f"{runs} seed{'' if runs == 1 else 's'} cannot show a leverage within budget at {confidence:.0%} "
                f"confidence: at least {seeds_to_show(confidence)} are needed (with none over budget)")
    else:
        note = (f"not shown within budget even at the range's lowest leverage, {lowest:g}x "
                f"({tallies[lowest].over}/{tallies[lowest].runs} over budget): search lower, or run more seeds")
    if unmeasured:
        note = ((note + "; ") if note else "") + (f"{unmeasured} run(s) had no bad-debt share (failed, or no open "
                                                  f"interest) and count as over budget")
    return {"safe_leverage": within, "boundary": [within, over], "bracket": [within, min(above) if above else None],
            "at_safe": at_safe, "unmeasured": unmeasured, "points": points, "note": note}


def _measured(row: Mapping[str, Any]) -> float | None:
    """A run's bad debt as a % of open interest; None when it has none to compare (it failed,
    or had no open interest)."""
    if row.get("status") != "ok":
        return None
    pct = row.get(PCT)
    return None if pct is None or math.isnan(pct) else float(pct)


def _over_budget(row: Mapping[str, Any], budget_pct: float) -> bool:
    share = _measured(row)
    return share is None or share > budget_pct


def _evaluate(scenario_path: str, leverages: list[float], groups: int, seeds: int, sets: list[str],
              workers: int | None, out_dir: Path, budget_pct: float,
              on_outcome: Callable[[dict[str, Any]], None] | None, ray: str | None = None,
              confidence: float | None = None, pool: WorkerPool | None = None) -> dict[float, Tally]:
    """The tally at each leverage: one sweep over them (zipped keys). With ``confidence``, a
    leverage's seeds stop once the runs made fix what it shows (``settled``)."""
    def fixed(outcomes: list[dict[str, Any]]) -> bool:
        assert confidence is not None
        seeded = []
        for outcome in outcomes:
            row = {"status": outcome.get("status"), **flatten(outcome.get("summary") or {})}
            seeded.append((int(outcome["seed"]), _over_budget(row, budget_pct)))
        return settled_prefix(_in_seed_order(seeded), seeds, confidence) is not None

    grids: list[tuple[str, list[Any]]] = []
    for index in range(groups):
        grids += [(f"market.accounts.{index}.leverage_median", leverages),
                  (f"market.accounts.{index}.leverage_sigma", [0.0] * len(leverages)),
                  (f"market.accounts.{index}.leverage_cap", leverages)]
    result = sweep(scenario_path, grids, seeds=seeds, zipped=True, workers=workers, out_dir=out_dir, sets=sets,
                   on_outcome=on_outcome, ray=ray, add_points=True, settled=None if confidence is None else fixed,
                   pool=pool)
    return tally_rows(result.table.to_pylist(), leverages, budget_pct, seeds, confidence)


def tally_rows(rows: list[dict[str, Any]], leverages: list[float], budget_pct: float,
               seeds: int = 0, confidence: float | None = None) -> dict[float, Tally]:
    """The tally at each leverage from a sweep table's rows, of ``seeds`` planned: a run is
    over budget when its bad-debt share is over ``budget_pct`` or it has none (it failed, or
    had no open interest). With ``confidence``, a leverage whose runs in seed order fix what
    it shows counts those runs only (``settled_prefix``): the same tally on every machine."""
    tallies: dict[float, Tally] = {}
    key = "market.accounts.0.leverage_median"
    for leverage in leverages:
        mine = [row for row in rows if math.isclose(row[key], leverage)]
        if confidence is not None and seeds:
            seeded = [(int(row["seed"]), _over_budget(row, budget_pct)) for row in mine]
            prefix = _in_seed_order(seeded)
            counted = settled_prefix(prefix, seeds, confidence)
            if counted is not None:
                first = min(int(row["seed"]) for row in mine)
                mine = [row for row in mine if int(row["seed"]) < first + counted]
        shares = [_measured(row) for row in mine]
        unmeasured = sum(1 for share in shares if share is None)
        over = sum(1 for share in shares if share is None or share > budget_pct)
        tallies[leverage] = Tally(over, len(shares), unmeasured, seeds)
    return tallies


def bisect_search(run_at: Callable[[list[tuple[int, int]]], Mapping[tuple[int, int], float | None]],
                  grid: list[float], base_seed: int, *, confidence: float, budget_pct: float,
                  max_runs: int | None = None, seconds: float | None = None) -> dict[str, Any]:
    """One curve of ``--method bisect``: the probe search's looks over seeds ``base_seed + i``,
    each seed's outcome at every leverage of the grid from the bisection of its whole runs
    (``sweep/leverage_bisect.py``); the curve says its whole runs and every seed that reversed."""
    states: list[SeedBisection] = []

    def grow(count: int) -> list[SeedRow]:
        seeds = [base_seed + i for i in range(len(states), count)]
        states.extend(bisect_seeds(run_at, seeds, len(grid), budget_pct,
                                   known=[state.critical for state in states]))
        return seed_rows(states, grid)

    curve = probe_search(grow, grid, confidence=confidence, budget_pct=budget_pct,
                         max_runs=max_runs, seconds=seconds,
                         judge=lambda rows: seeds_judged(rows, len(grid)))
    rows = seed_rows(states, grid)
    reversed_seeds = [row["seed"] for row in rows if row["reversal"]]
    if reversed_seeds:
        named = ", ".join(str(seed) for seed in reversed_seeds[:10])
        more = ", ..." if len(reversed_seeds) > 10 else ""
        said = (f"{len(reversed_seeds)} seed(s) reversed (bad debt lower at a higher leverage run: "
                f"seed {named}{more}): each was run at every leverage below its lowest over "
                f"budget and counts over budget from its first leverage over")
        curve["note"] = f"{curve['note']}; {said}" if curve["note"] else said
    return {**curve, "method": "bisect", "whole_runs": sum(row["runs"] for row in rows),
            "reversals": reversed_seeds, "seeds": rows}


def _leverage_is(method: str) -> str:
    """How the search puts every account at one leverage, as the document says it."""
    if method == "probes":
        return ("one leverage for every account: a probe book of every account at each leverage of "
                "the grid riding along each run (market.probes)")
    uniform = "one leverage for every account (leverage_median = leverage_cap, leverage_sigma = 0)"
    if method == "bisect":
        return f"{uniform}, whole runs at the leverages of the grid each seed's bisection asks for"
    return uniform


def uniform_leverage(groups: int, leverage: float) -> list[str]:
    """``--set`` overrides that put every accounts group at one ``leverage``."""
    return [f"market.accounts.{index}.{key}={value}" for index in range(groups)
            for key, value in (("leverage_median", leverage), ("leverage_sigma", 0.0), ("leverage_cap", leverage))]


def _curve_sets(fixed: list[str], vary: tuple[str, list[Any]] | None) -> list[list[str]]:
    if vary is None:
        return [list(fixed)]
    return [[*fixed, f"{vary[0]}={toml_value(value)}"] for value in vary[1]]


def _curve_loads(fixed: list[str], vary: tuple[str, list[Any]] | None) -> list[tuple[list[Override], str]]:
    """Each curve's overrides as its scenario is checked with them, the value of ``vary``
    given as --vary's (an error it causes names --vary), and the words naming the curve in a
    message (`` (with KEY=VALUE)``, none without ``vary``)."""
    if vary is None:
        return [(list(fixed), "")]
    return [([*fixed, ("--vary", setting)], f" (with {setting})")
            for setting in (f"{vary[0]}={toml_value(value)}" for value in vary[1])]


def check_search(scenario_path: str | Path, *, budget: float, confidence: float, seeds: int | None, low: float,
                 high: float, vary: tuple[str, list[Any]] | None = None, sets: list[str] | None = None) -> int:
    """Refuse a search that cannot answer, before anything runs; return the number of
    accounts groups. Raises ``ValueError`` (an option's value) or ``ScenarioError``."""
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"--budget: expected a share of open interest between 0% and 100%, got {budget * 100:g}%")
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"--confidence: expected at least 50% and below 100% (P(over budget) <= 1 - confidence; "
                         f"100% would need infinitely many seeds), got {confidence * 100:g}%")
    if seeds is not None and seeds < 1:
        raise ValueError(f"--seeds: expected at least 1, got {seeds}")
    if not 0 < low < high < math.inf:
        raise ValueError(f"--range: expected LOW:HIGH leverages with 0 < LOW < HIGH, such as 1:20, got {low}:{high}")
    groups = None
    for curve_sets, where in _curve_loads(list(sets or []), vary):
        scenario = load_scenario(scenario_path, curve_sets)
        needs_market(scenario, scenario_path)
        assert scenario.market is not None
        groups = len(scenario.market.accounts)
        if (floored := _below_a_floor(scenario, scenario_path, low, high, where)) is not None:
            raise ValueError(floored)
        limit = leverage_limit(scenario.market.maintenance_margin)
        if high >= limit:
            below = math.floor(limit * 0.99 * 100) / 100
            raise ValueError(f"--range: the top, {high:g}, is at or above 1 / maintenance_margin = {limit:g}{where}: an "
                             f"account at that leverage opens on or past its liquidation line; search below it, "
                             f"such as --range {low:g}:{below:g}")
    assert groups is not None  # at least one curve
    return groups


def vault_liquidation_ratio(scenario: Scenario) -> float | None:
    """A vault market's liquidation ratio (collateral over debt, 1 / (1 - maintenance margin)):
    an english auction's accounts are vaults, whose debt at leverage L is (L - 1) x
    collateral; None for a market of positions."""
    market = scenario.market
    rule = None if market is None else market.liquidation
    if market is None or rule is None or not LIQUIDATION_MECHANISMS[rule.mechanism].english:
        return None
    return 1.0 / (1.0 - market.maintenance_margin)


def choose_method(scenario_path: str | Path, method: str, *, sets: list[str] | None = None,
                  vary: tuple[str, list[Any]] | None = None) -> tuple[str, str | None]:
    """The method a search uses, and a note saying why when it is not the one asked for.

    ``auto`` is ``probes`` when the probe books answer for every curve's market and its
    accounts share no venue books (``books_shared``: there whole runs are exact and, the
    seeds' critical leverages close together, cheaper), else ``bisect`` (whole runs, with the
    venue's own mechanism and accounting, each seed's critical leverage by bisection,
    ``sweep/leverage_bisect.py``);
    ``probes`` asked for a market they cannot answer for is refused, naming what."""
    if method not in METHODS:
        raise ValueError(f"--method: expected auto, probes, bisect or runs, got {method!r}")
    if method in ("runs", "bisect"):
        return method, None
    for curve_sets, where in _curve_loads(list(sets or []), vary):
        reason = probes_cannot_answer(load_scenario(scenario_path, curve_sets))
        if reason is None:
            continue
        why = (f"the probe books carry whole, partial and close-factor liquidations at the index, "
               f"each book with its own fund and cover; they cannot answer for {reason}{where}")
        if method == "probes":
            raise ValueError(f"--method probes: {why}; use --method bisect (whole runs, with the "
                             f"venue's own rule, each seed's critical leverage by bisection)")
        return "bisect", (f"note: whole runs, each seed's critical leverage by bisection over the "
                          f"grid, the same seeds at every leverage (--method bisect): {why}")
    if method == "auto":
        for curve_sets, where in _curve_loads(list(sets or []), vary):
            shared = books_shared(load_scenario(scenario_path, curve_sets))
            if shared is not None:
                return "bisect", (
                    f"note: whole runs, each seed's critical leverage by bisection over the grid, "
                    f"the same seeds at every leverage (--method bisect): the accounts share "
                    f"{shared}{where}; the probe books keep each book's own (--method probes), but "
                    f"ride the accounts' liquidations at one leverage, where whole runs, bisected, "
                    f"are exact and, the seeds' critical leverages close together, cost less "
                    f"(docs/cli.md, Safe leverage)")
    return "probes", None


def check_seeds(method: str, seeds: int | None, confidence: float, asked: str) -> None:
    """Refuse ``--seeds`` where the search takes no fixed number of seeds: the probe search
    (``method``, as ``choose_method`` chose it from ``asked``) adds seeds in looks until the
    answer is decided, each look at its own confidence (``looks``), so a fixed count would
    not be the design whose confidence it reports. Raises ``ValueError`` naming the looks and
    what to use instead."""
    if method not in ("probes", "bisect") or seeds is None:
        return
    search_name = "probe search" if method == "probes" else "bisection of whole runs"
    chose = (f"--method auto takes the {search_name} for this market, and it" if asked == "auto"
             else f"the {search_name}")
    first, *more = [str(look.seeds) for look in looks(confidence)]
    pilot = f"after a pilot of {PILOT_SEEDS} it " if method == "probes" else "it "
    raise ValueError(f"--seeds {seeds}: {chose} takes no fixed number of seeds: {pilot}"
                     f"adds them in looks ({first}, then {', '.join(more)} in all, for {confidence:.0%} confidence) "
                     f"until the answer is decided; cap it with --max-runs, or use --method runs for {seeds} whole "
                     f"runs at each leverage")


def runs_seeds(seeds: int | None, confidence: float) -> int:
    """Seeds a leverage for ``--method runs``: as given, else the fewest that can show a
    leverage within budget at ``confidence`` with none over (59 at 95%)."""
    return seeds if seeds is not None else seeds_to_show(confidence)


def safe_leverage(scenario_path: str | Path, *, budget: float, confidence: float = 0.95, seeds: int | None = None,
                  low: float | None = None, high: float | None = None, vary: tuple[str, list[Any]] | None = None,
                  sets: list[str] | None = None, workers: int | None = None, out_dir: str | Path,
                  grid_points: int = GRID_POINTS, refine: int = REFINE, ray: str | None = None,
                  on_outcome: Callable[[dict[str, Any]], None] | None = None,
                  on_start: Callable[[int], None] | None = None, every_seed: bool = False,
                  method: str = "auto", max_runs: int | None = None, seconds: float | None = None,
                  probe_points: int | None = None) -> dict[str, Any]:
    """The search, per value of ``vary`` (one curve without it); writes
    ``safe_leverage.json`` and ``safe_leverage.html`` into ``out_dir`` and returns the document.
    ``on_start`` is told the most runs the search can make before the first; the range is
    ``default_range``'s where not given.

    ``method = "probes"`` (the default, ``sweep/leverage_probes.py``): probe books at a grid
    of ``probe_points`` leverages ride along every run, seeds are added in looks until the
    answer is decided or ``max_runs`` / ``seconds`` stop it; ``seeds`` is refused
    (``check_seeds``: it takes no fixed number).
    ``method = "runs"``: whole runs at each leverage, ``seeds`` each (``runs_seeds``), the
    grid and bisection of this module; a leverage's seeds stop once the runs made fix what it
    shows (``settled``), unless ``every_seed``: the same answer either way. ``method =
    "auto"`` is probes where the probe books answer for the market, else runs
    (``choose_method``; the document's ``method_note`` says why)."""
    scenario_path = str(scenario_path)
    fixed = list(sets or [])
    asked = method
    method, method_note = choose_method(scenario_path, method, sets=fixed, vary=vary)
    check_seeds(method, seeds, confidence, asked)
    scenario = load_scenario(scenario_path, fixed)
    needs_market(scenario, scenario_path)
    low = default_range(scenario)[0] if low is None else low
    high = default_range(scenario)[1] if high is None else high
    groups = check_search(scenario_path, budget=budget, confidence=confidence, seeds=seeds, low=low, high=high,
                          vary=vary, sets=fixed)
    seeds = runs_seeds(seeds, confidence)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    values = vary[1] if vary is not None else [None]
    grid = probe_grid(low, high, probe_points or PROBE_POINTS)
    if on_start is not None:
        # The most a curve can make: the probes' seeds (--max-runs caps them) and the pilot's;
        # the bisection's seeds (--max-runs caps them too), each at every grid leverage at
        # most (a reversed seed); the runs method's grid and refinements at every seed.
        last = looks(confidence)[-1].seeds
        capped = last if max_runs is None else min(last, max_runs)
        most = (capped + PILOT_SEEDS if method == "probes"
                else capped * len(grid) if method == "bisect"
                else (grid_points + refine) * seeds)
        on_start(len(values) * most)
    curves = []
    with WorkerPool(workers or default_workers()) as pool:  # started once for every step of every curve
        for index, (value, curve_sets) in enumerate(zip(values, _curve_sets(fixed, vary), strict=True)):
            if method == "probes":
                probe_set = f"market.probes.leverages={toml_value(grid)}"
                base_seed = load_scenario(scenario_path, curve_sets).run.seed
                pilot = sweep(scenario_path, [], seeds=PILOT_SEEDS, workers=workers, out_dir=out / f"curve-{index}-pilot",
                              sets=[*curve_sets, probe_set, f"run.seed={base_seed + PILOT_SEED_OFFSET}"],
                              on_outcome=on_outcome, ray=ray, pool=None if ray is not None else pool)
                at = accounts_leverage(pilot.table.to_pylist(), grid, budget * 100)
                riding = [*curve_sets, *uniform_leverage(groups, at), probe_set]

                def grow(count: int, riding: list[str] = riding, index: int = index) -> list[dict[str, Any]]:
                    result = sweep(scenario_path, [], seeds=count, workers=workers, out_dir=out / f"curve-{index}",
                                   sets=riding, on_outcome=on_outcome, ray=ray, add_points=True,
                                   pool=None if ray is not None else pool)
                    rows: list[dict[str, Any]] = result.table.to_pylist()
                    return rows

                curve = {**probe_search(grow, grid, confidence=confidence, budget_pct=budget * 100,
                                        max_runs=max_runs, seconds=seconds),
                         "accounts_at": at, "pilot_seeds": PILOT_SEEDS}
            elif method == "bisect":
                run_at = whole_runs(scenario_path, curve_sets, grid, groups,
                                    out / f"curve-{index}" / "runs",
                                    workers=workers or default_workers(), budget_key=PCT, ray=ray,
                                    pool=None if ray is not None else pool, on_outcome=on_outcome)
                base = load_scenario(scenario_path, curve_sets).run.seed
                curve = bisect_search(run_at, grid, base, confidence=confidence, budget_pct=budget * 100,
                                      max_runs=max_runs, seconds=seconds)
            else:
                def evaluate(leverages: list[float], curve_sets: list[str] = curve_sets,
                             index: int = index) -> dict[float, Tally]:
                    return _evaluate(scenario_path, leverages, groups, seeds, curve_sets, workers,
                                     out / f"curve-{index}", budget * 100, on_outcome, ray,
                                     None if every_seed else confidence, None if ray is not None else pool)

                curve = search(evaluate, low=low, high=high, confidence=confidence, grid_points=grid_points,
                               refine=refine)
            curves.append({"vary": None if vary is None else {vary[0]: value}, **curve})
    probes = method in ("probes", "bisect")
    document = {"scenario": scenario.run.name, "budget_pct_of_open_interest": budget * 100,
                "confidence": confidence, "seeds": None if probes else seeds, "range": [low, high],
                "method": method, "method_note": method_note, "grid": grid if probes else None,
                "looks": [{"seeds": look.seeds, "confidence": look.confidence} for look in looks(confidence)]
                if probes else None,
                "seeds_to_show": seeds_to_show(confidence), "over_budget_is": OVER_BUDGET_IS,
                "leverage_is": _leverage_is(method),
                "safe_leverage_is": ("the highest leverage tried shown within budget (one-sided upper "
                                     "Clopper-Pearson bound of P(over budget) at most 1 - confidence"
                                     + (", at the confidence of the look that showed it" if probes else "")
                                     + "), every one tried below it shown within too"),
                "vault_liquidation_ratio": vault_liquidation_ratio(scenario),
                "vary": None if vary is None else vary[0], "curves": curves}
    (out / SEARCH_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    write_leverage_report(out, document)
    return document
