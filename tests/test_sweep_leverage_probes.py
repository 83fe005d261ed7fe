"""The probe-book search: seeds in looks until decided, against a closed form, and through the command.

The design is checked on drawn outcomes of a case with a closed form (a sliding crash of a
depth drawn per seed and a constant delay), repeated hundreds of times: how often its answer
is above the true limit, and how often its intervals hold the true curve. One small search
through the command line checks the gap computed by hand, the terminal, the JSON and the page.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_sweep import LEVERAGE, ray_cluster  # noqa: F401 (the fixture)
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.sweep import sweep
from msgstorm.sweep.bounds import one_sided_bounds
from msgstorm.sweep.grid import toml_value
from msgstorm.sweep.leverage import safe_leverage, uniform_leverage
from msgstorm.sweep.leverage_probes import (
    PCT,
    Look,
    critical_leverages,
    looks,
    probe_grid,
    probe_search,
    seeds_over,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The sliding crash, by hand: entry 1, maintenance m = 10%, penalty 5%, budget b = 0.1% of
# open interest. The price slides linearly from 1 to 1 - D, D uniform on [0, 0.6] per seed;
# a keeper liquidates a constant delay after the price crosses the line l(L) = (1 - 1/L) /
# (1 - m), by when the price has slid 0.5 further (or stopped at its bottom). A long at L with
# collateral c (size L c) executed at P keeps c (1 - L (1 - 0.95 P)); its bad debt is over b
# of its open interest L c when P < q(L) = (1 - 1/L - b) / 0.95. It executes at max(l - 0.5,
# 1 - D) < q(L) exactly when D > 1 - q(L) (l - 0.5 < q always here), so
# P(over | L) = clip((q(L) - 0.4) / 0.6, 0, 1), and the limit where it is 1 - c is
# L* = 1 / (1 - b - 0.95 (0.4 + 0.6 (1 - c))): 1.6935 at 95%.
M, PENALTY, BUDGET, SLIDE, DEEPEST = 0.10, 0.05, 0.001, 0.5, 0.6


def _q(leverage: float) -> float:
    return (1 - 1 / leverage - BUDGET) / (1 - PENALTY)


def p_over(leverage: float) -> float:
    return min(1.0, max(0.0, (_q(leverage) - (1 - DEEPEST)) / DEEPEST))


def true_limit(confidence: float) -> float:
    return 1 / (1 - BUDGET - (1 - PENALTY) * (1 - DEEPEST + DEEPEST * (1 - confidence)))


def _pct(leverage: float, depth: float) -> float:
    line = (1 - 1 / leverage) / (1 - M)
    bottom = 1 - depth
    price = max(line - SLIDE, bottom) if bottom < line else bottom  # not crossed: marked at the bottom
    return 100 * max(0.0, 1 - 1 / leverage - price * (1 - PENALTY)) if bottom < line else 100 * max(0.0, 1 - 1 / leverage - price)


def _drawn(grid: list[float], rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """An ``evaluate`` whose seed i has its own crash depth, the same at every leverage."""
    depths: list[float] = []

    def evaluate(count: int) -> list[dict[str, Any]]:
        while len(depths) < count:
            depths.append(float(rng.uniform(0, DEEPEST)))
        return [{"seed": seed, "status": "ok", **{PCT.format(index=index): _pct(leverage, depth)
                                                  for index, leverage in enumerate(grid)}}
                for seed, depth in enumerate(depths[:count])]
    return evaluate


def test_the_closed_form_is_what_the_drawn_outcomes_give() -> None:
    rng = np.random.default_rng(0)
    depths = rng.uniform(0, DEEPEST, 200_000)
    for leverage in (1.3, 1.6935, 2.0, 2.5):
        over = np.mean([_pct(leverage, d) > 100 * BUDGET for d in depths[:20_000]])
        assert over == pytest.approx(p_over(leverage), abs=0.01)
    assert p_over(true_limit(0.95)) == pytest.approx(0.05)


def test_the_looks_spend_the_error_once() -> None:
    """60, 120, 240 and 480 seeds at 95%: the first the fewest with none over whose upper bound
    at 95.25% (95% of the 5% spent) is at most 5%, ln(0.0475) / ln(0.95) = 59.4; the looks'
    errors add up to 5%."""
    plan = looks(0.95)
    assert [look.seeds for look in plan] == [60, 120, 240, 480]
    assert sum(1 - look.confidence for look in plan) == pytest.approx(0.05)
    assert one_sided_bounds(0, 60, 0.9525)[1] <= 0.05 < one_sided_bounds(0, 59, 0.9525)[1]


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_repeated_searches_answer_at_or_below_the_true_limit_with_the_confidence(confidence: float) -> None:
    """400 searches, each with its own drawn depths, on a grid with a leverage just above the
    true limit (P(over budget) there 1 - c + 1%), where a search that took the estimate, or did
    not account for its looks, would answer too high about half the time. At most 1 - c of
    them may answer above the limit: 400 searches tell 95% from 85% by more than 5 standard
    errors. Their 95% intervals hold the true P(over budget) at each leverage about as often."""
    limit = true_limit(confidence)
    above = next(leverage for leverage in np.linspace(limit, 3, 4000) if p_over(leverage) >= 1 - confidence + 0.01)
    grid = sorted({*probe_grid(1.1, 3.0, 12), float(f"{above:.6g}")})
    rng = np.random.default_rng(7)
    repeats, wrong, looks_made = 400, 0, []
    covered = np.zeros(len(grid))
    for _ in range(repeats):
        curve = probe_search(_drawn(grid, rng), grid, confidence=confidence, budget_pct=100 * BUDGET)
        looks_made.append(len(curve["looks"]))
        wrong += curve["safe_leverage"] is not None and curve["safe_leverage"] > limit
        for at, point in enumerate(curve["points"]):
            low, high = point["ci"]
            covered[at] += low <= p_over(grid[at]) <= high
    assert wrong / repeats <= 1 - confidence, (wrong, repeats)
    assert (covered / repeats >= confidence - 0.04).all(), covered / repeats
    assert max(looks_made) > 1  # some searches needed more seeds than the first look


def test_a_seed_over_at_a_lower_leverage_counts_over_above_it_and_its_critical_leverage() -> None:
    grid = [1.0, 2.0, 3.0, 4.0]
    rows = [{"seed": 0, "status": "ok", **{PCT.format(index=i): v for i, v in enumerate([0.0, 0.5, 0.0, 0.2])}},
            {"seed": 1, "status": "ok", **{PCT.format(index=i): v for i, v in enumerate([0.0, 0.0, 0.0, 0.0])}},
            {"seed": 2, "status": "failed"}]
    over = seeds_over(rows, grid, 0.1)
    assert over.tolist() == [[False, True, True, True], [False, False, False, False], [True, True, True, True]]
    assert critical_leverages(over, grid) == [1.0, 4.0, None]


def test_a_cap_stops_the_search_and_says_what_it_would_take() -> None:
    """Every seed's book at 2x within, one seed over at 2.5x: not shown within at the first
    look (1 over of 60 at 95.25%), but at a later one if no other seed is over, unless
    --max-runs stops it first; then the note says how many seeds that look needs."""
    grid = [2.0, 2.5, 3.0]

    def evaluate(count: int) -> list[dict[str, Any]]:
        return [{"seed": seed, "status": "ok", PCT.format(index=0): 0.0,
                 PCT.format(index=1): 1.0 if seed == 5 else 0.0, PCT.format(index=2): 1.0}
                for seed in range(count)]

    curve = probe_search(evaluate, grid, confidence=0.95, budget_pct=0.1, max_runs=100)
    assert curve["stopped"] == "max_runs" and curve["runs"] == 60 and curve["safe_leverage"] == 2.0
    wanted = next(look.seeds for look in looks(0.95)[1:] if one_sided_bounds(1, look.seeds, look.confidence)[1] <= 0.05)
    assert f"needs {wanted} seeds" in curve["note"] and f"{wanted - 60} more runs" in curve["note"]
    whole = probe_search(evaluate, grid, confidence=0.95, budget_pct=0.1)
    assert whole["safe_leverage"] == 2.5 and whole["runs"] == wanted and whole["stopped"] == "decided"


def test_the_search_stops_when_no_later_look_could_raise_the_answer() -> None:
    grid = [2.0, 2.5, 3.0]

    def evaluate(count: int) -> list[dict[str, Any]]:  # 10% of seeds over at 2.5x: never shown within
        return [{"seed": seed, "status": "ok", PCT.format(index=0): 0.0,
                 PCT.format(index=1): 1.0 if seed % 10 == 0 else 0.0, PCT.format(index=2): 1.0}
                for seed in range(count)]

    curve = probe_search(evaluate, grid, confidence=0.95, budget_pct=0.1)
    plan = looks(0.95)
    # The first look after which a tenth of the seeds over (its count growing with them,
    # none of the new ones over) has an upper bound above 5% at every later look.
    stop = next(look.seeds for at, look in enumerate(plan)
                if all(one_sided_bounds(-(-look.seeds // 10), later.seeds, later.confidence)[1] > 0.05
                       for later in plan[at + 1:]))
    assert (curve["stopped"], curve["runs"], curve["safe_leverage"]) == ("decided", stop, 2.0)
    assert stop < plan[-1].seeds and isinstance(plan[0], Look)


def _figures(html: str) -> dict[str, dict[str, Any]]:
    return {slug: json.loads(text) for slug, text in
            re.findall(r'<script type="application/json" id="fig-([^"]+)">(.*?)</script>', html, re.S)}


@pytest.mark.slow
def test_the_command_brackets_the_gap_computed_by_hand_and_says_it_three_ways(tmp_path: Path) -> None:
    """The gap of ``test_sweep.LEVERAGE``: over budget from 2.994x on (every seed alike). At
    80% the first look is 8 seeds (after a pilot of 2); the probe grid over 2:4 has 2.994 between two of its
    leverages, which must be the answer and the lowest shown over."""
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    result = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--budget", "0.1%", "--confidence", "80%",
                                      "--range", "2:4", "--grid-points", "12", "--workers", "2",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "safe_leverage.json").read_text())
    (curve,) = document["curves"]
    grid = document["grid"]
    below = max(leverage for leverage in grid if leverage <= 1 / 0.334)
    above = min(leverage for leverage in grid if leverage > 1 / 0.334)
    assert curve["safe_leverage"] == below and curve["boundary"] == [below, above]
    assert curve["runs"] == 8 and curve["stopped"] == "decided" and document["method"] == "probes"
    assert all(p["exceed"] == (8 if p["leverage"] > 1 / 0.334 else 0) for p in curve["points"])
    assert curve["critical"] == [below] * 8 and curve["accounts_at"] == below
    assert f"{below:g}x shown within budget: 0/8 over budget" in result.output
    assert f"between {below:g}x (shown within budget) and {above:g}x (shown over)" in result.output
    assert "8 seeds in 1 look(s) (decided)" in result.output
    html = (tmp_path / "out" / "safe_leverage.html").read_text()
    figures = _figures(html)
    plotted, _line = figures["leverage-curve"]["data"]
    assert plotted["x"] == grid and plotted["y"] == [p["exceed"] / 8 for p in curve["points"]]
    (critical,) = figures["critical-leverage"]["data"]
    assert critical["y"] == [8 if leverage == below else 0 for leverage in grid]
    assert "8 seeds at 81.00%" in html and "probe books at 12 leverages, 8 seeds a curve" in html
    # Resumed with the same --out: nothing runs again.
    again = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--budget", "0.1%", "--confidence", "80%",
                                     "--range", "2:4", "--grid-points", "12", "--workers", "2",
                                     "--out", str(tmp_path / "out")])
    assert again.exit_code == 0 and json.loads((tmp_path / "out" / "safe_leverage.json").read_text()) == document
    assert math.isclose(document["budget_pct_of_open_interest"], 0.1)


def _curve_and_whole_runs(tmp_path: Path, example: str, leverages: list[float], riding: float, seeds: int,
                          sets: list[str]) -> tuple[list[list[float]], list[list[float]]]:
    """Per leverage, each seed's bad debt share: from probe books riding along runs whose
    accounts are at ``riding`` (as the search puts them), and from whole runs with every
    account at that leverage."""
    path = str(EXAMPLES / example)
    probes = sweep(path, [], seeds=seeds, workers=2, out_dir=tmp_path / "probes",
                   sets=[*sets, *uniform_leverage(1, riding), f"market.probes.leverages={toml_value(leverages)}"])
    whole = sweep(path, [(f"market.accounts.0.{key}", values) for key, values in
                         (("leverage_median", leverages), ("leverage_sigma", [0.0] * len(leverages)),
                          ("leverage_cap", leverages))],
                  seeds=seeds, zipped=True, workers=2, out_dir=tmp_path / "whole", sets=sets)
    rows = sorted(probes.table.to_pylist(), key=lambda row: row["seed"])
    full = sorted(whole.table.to_pylist(), key=lambda row: row["seed"])
    from_probes = [[row[PCT.format(index=at)] for row in rows] for at in range(len(leverages))]
    from_whole = [[row["market.bad_debt.pct_of_open_interest"] for row in full
                   if math.isclose(row["market.accounts.0.leverage_median"], leverage)] for leverage in leverages]
    return from_probes, from_whole


@pytest.mark.slow
def test_the_curve_agrees_with_whole_runs_on_the_shipped_examples(tmp_path: Path) -> None:
    """leverage-latency at 1 s between the regions, 12 seeds, accounts riding at 12x; and
    black-thursday, one seed, accounts riding at 2.256x (where the search puts them): at each
    leverage, the probe book is over the 0.1% budget on the same seeds as whole runs with every
    account there (docs/model.md gives the shares). The accounts' own leverage agrees to 0.1
    point of open interest."""
    shares, whole = _curve_and_whole_runs(tmp_path / "latency", "leverage-latency.toml", [8.0, 12.0, 16.0], 12.0,
                                          12, ['network.latency={"us-east/ap-northeast"="1s"}'])
    for leverage, probe_row, whole_row in zip([8.0, 12.0, 16.0], shares, whole, strict=True):
        assert [share > 0.1 for share in probe_row] == [share > 0.1 for share in whole_row], leverage
    assert shares[1] == pytest.approx(whole[1], abs=0.1)
    assert any(share > 0.1 for share in shares[2])  # the comparison has something to agree on
    shares, whole = _curve_and_whole_runs(tmp_path / "thursday", "black-thursday.toml", [2.061, 2.256, 2.47], 2.256,
                                          1, [])
    assert [[share > 0.1 for share in row] for row in shares] == [[False], [True], [True]]
    assert [[share > 0.1 for share in row] for row in whole] == [[False], [True], [True]]
    assert shares[1] == pytest.approx(whole[1], abs=0.1)


@pytest.mark.slow
def test_the_readme_shows_lines_the_safe_leverage_command_prints(readme_safe_leverage: tuple[list[str], Any]) -> None:
    """The README's safe-leverage excerpt: its command run as written, each line it shows
    printed (the session's run of it, ``readme_safe_leverage``)."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    block = readme[readme.index("$ msgstorm safe-leverage examples/leverage-latency.toml"):]
    block = block[:block.index("```")]
    command, _, shown = block.partition("\n    --vary ")
    vary, _, excerpt = shown.partition("\n")
    args = command.removeprefix("$ msgstorm ").rstrip(" \\").split() + ["--vary", vary.strip().strip("'")]
    ran, result = readme_safe_leverage
    assert ran == args, "the command run is the one the README writes"
    assert result.exit_code == 0, result.output
    printed = result.output.splitlines()
    for line in filter(str.strip, excerpt.splitlines()):
        assert line in printed, (line, result.output)


@pytest.mark.slow
def test_the_probe_search_on_a_ray_cluster_gives_the_local_answer(tmp_path: Path, ray_cluster: str) -> None:  # noqa: F811
    """The gap at 80% (a pilot of 2 seeds, then 8): the same answer, boundary, runs and per-seed
    critical leverages as Ray tasks as on local processes."""
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    options: dict[str, Any] = {"budget": 0.001, "confidence": 0.8, "low": 2.0, "high": 4.0, "probe_points": 12}
    local = safe_leverage(scenario, out_dir=tmp_path / "local", workers=2, **options)["curves"][0]
    on_ray = safe_leverage(scenario, out_dir=tmp_path / "ray", ray=ray_cluster, **options)["curves"][0]
    for key in ("safe_leverage", "boundary", "runs", "critical", "accounts_at", "looks", "points"):
        assert on_ray[key] == local[key], key


def test_a_search_resumed_from_its_first_look_asks_for_fewer_seeds_than_the_sweep_holds(tmp_path: Path) -> None:
    """A search stopped in its second look (4 seeds run) and run again starts from its first
    (2 seeds): the sweep gives the first look's 2 rows, runs nothing again, and keeps its 4."""
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    options: dict[str, Any] = {"workers": 1, "out_dir": tmp_path / "curve", "add_points": True,
                               "sets": ["market.probes.leverages=[2.0, 4.0]"]}
    later = sweep(str(scenario), [], seeds=4, **options)
    first = sweep(str(scenario), [], seeds=2, **options)
    assert later.ran == 4 and (first.ran, first.skipped) == (0, 2)
    assert [row["seed"] for row in first.table.to_pylist()] == [3, 4]
    assert json.loads((tmp_path / "curve" / "manifest.json").read_text())["seeds"] == [3, 4, 5, 6]
