"""safe-leverage says "safe" only where it showed it: the answer, its inputs, its page.

The search is checked on hand-made tallies (an ``evaluate`` that counts, per leverage, the
seeds whose threshold the leverage passes: outcomes that grow with leverage, as common random
numbers make them), fast; one small run through the command line checks that the terminal,
safe_leverage.json and the values plotted in safe_leverage.html say the same thing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sweep import LEVERAGE
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.report.live import SweepProgress
from msgstorm.scenario import ScenarioError, parse_scenario
from msgstorm.sweep.leverage import (
    CONFIDENCE_EXPECTED,
    Tally,
    default_range,
    fraction_note,
    most_runs,
    one_sided_bounds,
    parse_range,
    parse_share,
    safe_leverage,
    search,
    seeds_to_show,
    settled,
    settled_prefix,
    tally_rows,
)
from msgstorm.sweep.leverage_html import headline, log_ticks, write_leverage_report

PCT = "market.bad_debt.pct_of_open_interest"
KEY = "market.accounts.0.leverage_median"


def _thresholds(thresholds: list[float]):  # type: ignore[no-untyped-def]
    """An ``evaluate``: seed i is over budget at every leverage at or above ``thresholds[i]``."""
    def evaluate(leverages: list[float]) -> dict[float, Tally]:
        return {leverage: Tally(sum(1 for t in thresholds if leverage >= t), len(thresholds))
                for leverage in leverages}
    return evaluate


def _figures(html: str) -> dict[str, dict[str, Any]]:
    """Every figure the page embeds, by its slug, as plotly.js reads it."""
    return {slug: json.loads(text) for slug, text in
            re.findall(r'<script type="application/json" id="fig-([^"]+)">(.*?)</script>', html, re.S)}


# --- the answer: the highest leverage shown within budget ----------------------------------------


def test_a_point_estimate_within_budget_is_not_shown_safe() -> None:
    """8 seeds at 80%: one seed over budget from 7x on, so 1/8 = 0.125 <= 0.2 up to the top of
    the range (the old answer: 40x), but 1 of 8 leaves an upper bound of 0.42 > 0.2: only the
    leverages with 0 of 8 over (bound 0.18) are shown within. The answer is the highest of
    them, and the search brackets 7x, where it stops being shown."""
    assert one_sided_bounds(1, 8, 0.8)[1] > 0.2 >= one_sided_bounds(0, 8, 0.8)[1]
    curve = search(_thresholds([7.0, *[1e9] * 7]), low=1.0, high=40.0, confidence=0.8)
    safe, above = curve["bracket"]
    assert curve["safe_leverage"] == safe == curve["boundary"][0] and safe < 7.0 <= above, curve["bracket"]
    assert above / safe < 1.05, curve["bracket"]
    assert curve["at_safe"]["exceed"] == 0 and curve["at_safe"]["bounds"][1] <= 0.2
    assert curve["boundary"][1] is None and curve["note"] is None


def test_two_of_twenty_over_is_not_shown_within_at_80_percent() -> None:
    """20 seeds at 80%: 2 of 20 over (p 0.1) has an upper bound of 0.2018 > 0.2, 1 of 20 of
    0.141. Seeds over from 3.5x, 3.8x, 4.5x: the answer lies below 3.8x, not at 3.9x where
    the estimate 2/20 is still within 1 - confidence."""
    assert one_sided_bounds(2, 20, 0.8)[1] > 0.2 >= one_sided_bounds(1, 20, 0.8)[1]
    curve = search(_thresholds([3.5, 3.8, 4.5, *[1e9] * 17]), low=2.0, high=6.0, confidence=0.8)
    assert 3.5 <= curve["safe_leverage"] < 3.8 <= curve["bracket"][1], curve["bracket"]
    assert curve["at_safe"]["exceed"] == 1


@pytest.mark.parametrize("seed", range(6))
def test_every_leverage_up_to_the_answer_is_shown_within_and_the_next_is_not(seed: int) -> None:
    """Random thresholds (a boundary somewhere in the range): whatever the search tried, the
    answer and every leverage below it have an upper bound within 1 - confidence, the next
    one tried does not, and the lowest shown over has a lower bound above it."""
    rng = np.random.default_rng(seed)
    confidence = float(rng.choice([0.8, 0.9, 0.95]))
    seeds = int(rng.integers(seeds_to_show(confidence), seeds_to_show(confidence) + 40))
    thresholds = list(np.exp(rng.normal(np.log(8.0), 0.6, seeds)))
    curve = search(_thresholds(thresholds), low=1.0, high=30.0, confidence=confidence)
    alpha = 1 - confidence
    for point in curve["points"]:
        upper = one_sided_bounds(point["exceed"], point["runs"], confidence)[1]
        if curve["safe_leverage"] is not None and point["leverage"] <= curve["safe_leverage"]:
            assert upper <= alpha, point
        if point["leverage"] == curve["bracket"][1]:
            assert upper > alpha, point
    if curve["boundary"][1] is not None:
        over = next(p for p in curve["points"] if p["leverage"] == curve["boundary"][1])
        assert one_sided_bounds(over["exceed"], over["runs"], confidence)[0] > alpha
    assert len(curve["points"]) <= most_runs(1, 1)


def test_too_few_seeds_show_nothing_and_say_how_many_would() -> None:
    """5 seeds at 80% (8 needed), none over budget anywhere: 0 of 5 has an upper bound of
    0.275 > 0.2, so no leverage is shown within budget, whatever the estimates."""
    assert seeds_to_show(0.8) == 8 and seeds_to_show(0.95) == 59
    curve = search(_thresholds([1e9] * 5), low=1.0, high=10.0, confidence=0.8)
    assert curve["safe_leverage"] is None and curve["at_safe"] is None and curve["boundary"] == [None, None]
    assert "5 seeds cannot show" in curve["note"] and "at least 8" in curve["note"]


def _recording(evaluate, calls: list[list[float]]):  # type: ignore[no-untyped-def]
    """``evaluate``, noting the leverages of each call."""
    def recorded(leverages: list[float]) -> dict[float, Tally]:
        calls.append(list(leverages))
        return dict(evaluate(leverages))
    return recorded


def _drawn_tallies(seed: int, seeds: int):  # type: ignore[no-untyped-def]
    """An ``evaluate`` of tallies drawn at random for each leverage (a fixed draw per
    leverage, none growing with it): the stop at the first shown over needs no monotone P."""
    def evaluate(leverages: list[float]) -> dict[float, Tally]:
        tallies = {}
        for leverage in leverages:
            rng = np.random.default_rng([seed, int(round(leverage * 1e6))])
            over = int(rng.integers(0, seeds + 1)) if rng.random() < 0.5 else int(rng.integers(0, min(seeds, 2) + 1))
            tallies[leverage] = Tally(over, seeds)
        return tallies
    return evaluate


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), seeds=st.integers(1, 80), confidence=st.sampled_from([0.5, 0.8, 0.9, 0.95]),
       drawn=st.booleans(), grid_points=st.integers(2, 8), refine=st.integers(0, 6),
       low=st.floats(1.0, 3.0), width=st.floats(1.1, 20.0))
def test_stopping_the_grid_at_its_first_leverage_shown_over_gives_the_whole_grids_answer(
        seed: int, seeds: int, confidence: float, drawn: bool, grid_points: int, refine: int, low: float,
        width: float) -> None:
    """The grid run lowest first and stopped at its first leverage shown over against the whole
    grid run at once (``whole_grid``, the search before): the same answer, boundary interval,
    bracket and note, the same bisections in the same order, and the same tally at every
    leverage both ran; the leverages it did not run are the grid's above that first one."""
    rng = np.random.default_rng(seed)
    evaluate = (_drawn_tallies(seed, seeds) if drawn else
                _thresholds(list(np.exp(rng.normal(np.log(low * width ** 0.5), 0.5, seeds)))))
    stopped_calls: list[list[float]] = []
    whole_calls: list[list[float]] = []
    options = {"low": low, "high": low * width, "confidence": confidence, "grid_points": grid_points,
               "refine": refine}
    stopped = search(_recording(evaluate, stopped_calls), **options)  # type: ignore[arg-type]
    whole = search(_recording(evaluate, whole_calls), whole_grid=True, **options)  # type: ignore[arg-type]
    for key in ("safe_leverage", "boundary", "bracket", "at_safe", "note", "unmeasured"):
        assert stopped[key] == whole[key], key
    grid, bisections = whole_calls[0], whole_calls[1:]
    assert stopped_calls[-len(bisections):] == bisections if bisections else True
    run = [call[0] for call in stopped_calls[:len(stopped_calls) - len(bisections)]]
    assert run == grid[:len(run)] and all(len(call) == 1 for call in stopped_calls)
    assert stopped["not_run"] == grid[len(run):] and whole["not_run"] == []
    whole_points = {point["leverage"]: point for point in whole["points"]}
    assert all(whole_points[point["leverage"]] == point for point in stopped["points"])
    assert sorted(whole_points) == sorted([point["leverage"] for point in stopped["points"]] + stopped["not_run"])
    shown_over = [leverage for leverage in run if whole_points[leverage]["shown"] == "over"]
    assert shown_over == ([run[-1]] if stopped["not_run"] or shown_over else []), (run, shown_over)


def _shows(tally: Tally, confidence: float) -> str | None:
    within = one_sided_bounds(tally.over, tally.runs, confidence)[1] <= 1 - confidence
    over = one_sided_bounds(tally.over, tally.runs, confidence)[0] > 1 - confidence
    return "within" if within else "over" if over else None


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9, 0.95])
def test_a_leverage_settled_early_shows_what_every_way_of_running_the_rest_would(confidence: float) -> None:
    """Every count over of every number of runs made, up to 14 seeds: where ``settled`` says
    the runs made fix what the leverage shows, every way the other runs could go, each run
    after the other, shows the same (so do the runs already under way when it settled, which
    finish). At 95% with 59 and 60 seeds (enough to show within), every whole set of runs."""
    cases = [(seeds, made, over) for seeds in range(1, 15) for made in range(seeds + 1) for over in range(made + 1)]
    if confidence == 0.95:
        cases += [(seeds, made, over) for seeds in (59, 60) for made in range(seeds + 1) for over in range(made + 1)]
    shows: dict[tuple[int, int], str | None] = {}

    def shown(over: int, runs: int) -> str | None:
        if (over, runs) not in shows:
            shows[(over, runs)] = _shows(Tally(over, runs), confidence)
        return shows[(over, runs)]

    early = 0
    for seeds, made, over in cases:
        if made == seeds or not settled(over, made, seeds, confidence):
            continue
        early += 1
        now = shown(over, made)
        later = [(over + extra, runs) for runs in range(made + 1, seeds + 1) for extra in range(runs - made + 1)]
        if seeds > 14:
            later = [(over + extra, seeds) for extra in range(seeds - made + 1)]
        assert all(shown(k, n) == now for k, n in later), (seeds, made, over, now)
    assert early > 50  # it does settle early, and often


def test_a_settled_leverage_is_one_shown_over_or_neither_and_never_one_that_could_be_within() -> None:
    """10 seeds at 95% (the command's defaults): 3 over settles it as shown over (lower bound
    0.087 > 0.05); 8 none over of the 10 settles it as neither (no 3 can follow); 0 of 9 could
    still end 0 of 10, not shown within but with 59 seeds needed, also settled as neither."""
    assert settled(3, 3, 10, 0.95) and _shows(Tally(3, 3), 0.95) == "over"
    assert not settled(2, 2, 10, 0.95) and not settled(2, 9, 10, 0.95)
    assert settled(0, 8, 10, 0.95) and not settled(0, 7, 10, 0.95) and settled(1, 9, 10, 0.95)
    assert not settled(0, 58, 59, 0.95)  # 0 of 59 would be shown within: every seed runs
    assert settled(1, 1, 59, 0.95) is False and settled(1, 57, 59, 0.95)


@pytest.mark.slow
def test_stopping_a_leverages_seeds_once_settled_gives_the_answer_of_every_seed(tmp_path: Path) -> None:
    """The hand-computed gap (over budget from 2.994x on, every seed alike), 8 seeds at 50%,
    one worker: with every seed run, and with a leverage's seeds stopped once they fix what it
    shows (5 over of 8 shows over whatever follows). The same answer, boundary and bracket, the
    same leverages in the same order and each showing the same; the leverages shown over have
    fewer runs (5: those under way when it settled finish, and are not counted), the others
    all 8."""
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    options: dict[str, Any] = {"budget": 0.001, "confidence": 0.5, "seeds": 8, "low": 1.0, "high": 5.0,
                               "workers": 1, "grid_points": 2, "refine": 2, "method": "runs"}
    every = safe_leverage(scenario, out_dir=tmp_path / "every", every_seed=True, **options)["curves"][0]
    early = safe_leverage(scenario, out_dir=tmp_path / "early", **options)["curves"][0]
    for key in ("safe_leverage", "boundary", "bracket", "at_safe", "note", "not_run"):
        assert early[key] == every[key], key
    assert [(p["leverage"], p["shown"]) for p in early["points"]] == [(p["leverage"], p["shown"])
                                                                      for p in every["points"]]
    assert [p["leverage"] for p in every["points"]] == [1.0, 2.236068, 3.343702, 5.0], every["points"]
    for point, full in zip(early["points"], every["points"], strict=True):
        assert full["runs"] == 8
        assert point["runs"] == (5 if point["shown"] == "over" else 8), point  # whatever the worker's timing
        assert point["exceed"] == (point["runs"] if point["shown"] == "over" else 0), point


def test_a_leverage_counts_the_runs_in_seed_order_that_settle_it_whatever_finished_after() -> None:
    """10 seeds at 95%. Which runs a parallel sweep has finished when a leverage settles
    depends on its workers' timing, so the tally counts the runs in seed order up to the one
    that settles it: seeds 0-6 within and 7-9 over settle it at the 10th (3 of 10 over: lower
    bound 0.087 > 0.05); seeds 0-2 over settle it at the third, and seeds 5 and 6, finished
    early by another worker, are not counted; with seed 3 missing and seeds 0-2 not settling
    it, every run made counts (the sweep ran on: it never settled)."""
    def rows(seeds: list[int], over: set[int]) -> list[dict[str, object]]:
        return [{KEY: 2.0, "status": "ok", "seed": 100 + seed, PCT: 0.5 if seed in over else 0.0} for seed in seeds]

    assert tally_rows(rows(list(range(10)), {7, 8, 9}), [2.0], 0.1, 10, 0.95) == {2.0: Tally(3, 10, 0, 10)}
    assert settled_prefix([False, False, False, False], 10, 0.95) is None
    assert settled_prefix([True, True, True], 10, 0.95) == 3
    # Seeds 0, 1, 2 over settle it at the third run: seeds 5 and 6, finished early by another worker, do not count.
    assert tally_rows(rows([0, 1, 2, 5, 6], {0, 1, 2}), [2.0], 0.1, 10, 0.95) == {2.0: Tally(3, 3, 0, 10)}
    assert tally_rows(rows([0, 1, 2, 4, 5], {0, 1}), [2.0], 0.1, 10, 0.95) == {2.0: Tally(2, 5, 0, 10)}


# --- runs without a bad-debt share --------------------------------------------------------------


def test_a_run_without_a_bad_debt_share_counts_as_over_budget() -> None:
    """At 2x: one run within budget, one over, one without open interest (the analysis gives
    null) and one failed: 3 of 4 over, 2 of them unmeasured. Never within."""
    rows = [{KEY: 2.0, "status": "ok", PCT: 0.05}, {KEY: 2.0, "status": "ok", PCT: 0.2},
            {KEY: 2.0, "status": "ok", PCT: None}, {KEY: 2.0, "status": "failed"},
            {KEY: 3.0, "status": "ok", PCT: 0.0}]
    assert tally_rows(rows, [2.0, 3.0], budget_pct=0.1) == {2.0: Tally(3, 4, 2), 3.0: Tally(0, 1, 0)}


# --- leverage past the liquidation line ---------------------------------------------------------


def _market(accounts: str, margin: str = '"10%"') -> str:
    return (LEVERAGE.replace('maintenance_margin = "10%"', f"maintenance_margin = {margin}")
            .replace("count = 10\nleverage_cap = 5.0", accounts))


@pytest.mark.parametrize(("accounts", "field", "words"), [
    ("count = 10\nleverage_cap = 10.0", "leverage_cap", "10 is at or above 1 / maintenance_margin = 10"),
    ("count = 10\nleverage_median = 12.0\nleverage_sigma = 0.0\nleverage_cap = 12.0", "leverage_median",
     "12 is at or above 1 / maintenance_margin = 10"),
    ("count = 10", "leverage_cap", "50 (the default) is at or above 1 / maintenance_margin = 10"),
    ("count = 10\nleverage_median = 4.0\nleverage_cap = 3.0", "leverage_cap", "below leverage_median 4"),
    ("count = 10\nleverage_median = 2.0\nleverage_floor = 3.0\nleverage_cap = 5.0", "leverage_floor",
     "above leverage_median 2: every account would be drawn at the floor"),
    ("count = 0\nleverage_cap = 5.0", "count", "greater than or equal to 1"),
])
def test_accounts_that_would_open_past_their_line_are_refused(accounts: str, field: str, words: str) -> None:
    text = _market(accounts)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="lev.toml")
    (issue,) = caught.value.issues
    assert (issue.file, issue.field) == ("lev.toml", f"market.accounts[0].{field}"), issue
    lines = text.splitlines()
    assert issue.line is not None and (lines[issue.line - 1].startswith(field) or field == "leverage_cap"
                                       and lines[issue.line - 1] == "[[market.accounts]]"), (issue, lines)
    assert words in issue.message, issue


def test_leverage_below_the_line_and_a_cap_unused_without_spread_are_accepted() -> None:
    parse_scenario(_market("count = 10\nleverage_cap = 9.9"), source="lev.toml")
    parse_scenario(_market("count = 10\nleverage_median = 9.0\nleverage_sigma = 0.0"), source="lev.toml")
    parse_scenario(_market("count = 10", margin='"1%"'), source="lev.toml")  # 50 < 100


def test_a_range_reaching_the_liquidation_line_is_refused_before_any_run(tmp_path: Path) -> None:
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1%", "--range", "2:10",
                                      "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "--range: the top, 10, is at or above 1 / maintenance_margin = 10" in result.output, result.output
    assert "such as --range 2:9.9" in result.output and not out.exists()
    varied = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1%", "--range", "2:9",
                                      "--vary", 'market.maintenance_margin="10%","15%"', "--out", str(out)])
    assert varied.exit_code == 2, varied.output
    assert "1 / maintenance_margin = 6.66667 (with market.maintenance_margin" in varied.output, varied.output
    assert not out.exists()


def test_a_floor_starts_the_default_range_and_a_range_below_it_is_refused_naming_the_floor(tmp_path: Path) -> None:
    """A group with leverage_floor 1.5 keeps its floor at every leverage searched (median and
    cap are set to L): the default range starts at it, and a range from 1 is refused before any
    run with the floor's file, line and field and a range that can be searched, 1.5:4."""
    text = _market("count = 10\nleverage_median = 2.0\nleverage_floor = 1.5\nleverage_cap = 5.0")
    assert default_range(parse_scenario(text, source="lev.toml")) == (1.5, 9.9)
    scenario = tmp_path / "lev.toml"
    scenario.write_text(text)
    line = text.splitlines().index("leverage_floor = 1.5") + 1
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1%",
                                      "--range", "1:4", "--out", str(out)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"{scenario}:{line}: market.accounts[0].leverage_floor = 1.5" in said, said
    assert "such as --range 1.5:4" in said and not out.exists(), said


@pytest.mark.slow
def test_a_scenario_with_a_floor_searches_its_range_from_the_floor(tmp_path: Path) -> None:
    """The floor (1.5) below the range's bottom (2) changes nothing: every account is at L.
    The same hand-worked boundary as without a floor, 1 / 0.334 = 2.994, lies in the bracket."""
    scenario = tmp_path / "lev.toml"
    scenario.write_text(_market("count = 10\nleverage_floor = 1.5\nleverage_cap = 5.0"))
    result = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1%",
                                      "--seeds", "2", "--confidence", "50%", "--range", "2:5", "--workers", "2",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (curve,) = json.loads((tmp_path / "out" / "safe_leverage.json").read_text())["curves"]
    low, high = curve["bracket"]
    assert low <= 1 / 0.334 <= high, curve["bracket"]


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "words"), [
    (["--confidence", "100%"], "--confidence: expected at least 50% and below 100%"),
    (["--confidence", "0%"], "--confidence: expected at least 50% and below 100%"),
    (["--confidence", "1.5"], "--confidence: expected a confidence between 0 and 1, such as 0.95 or 95% (the same), "
                              "got '1.5'"),
    (["--budget", "5"], "--budget: expected a percentage such as 0.1% or a fraction between 0 and 1 such as 0.001"),
    (["--budget", "ten"], "--budget: expected a percentage such as 0.1%"),
    (["--range", "2-20"], "--range: expected LOW:HIGH leverages with 0 < LOW < HIGH, such as 1:20, got '2-20'"),
    (["--range", "5:2"], "--range: expected LOW:HIGH"),
    (["--vary", "market.maintenance_margin"], "--vary 'market.maintenance_margin': expected KEY=VALUE,VALUE"),
    (["--vary", "market.maintenance_margin=[0.1"], "--vary market.maintenance_margin: cannot read the values"),
    (["--vary", 'market.maintenance_margin="10%","-5%"'], "error: --vary: market.maintenance_margin: "),
])
def test_bad_values_exit_2_with_what_would_be_right(tmp_path: Path, args: list[str], words: str) -> None:
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    options = {"--budget": "0.1%", "--range": "1:5", **dict(zip(args[::2], args[1::2], strict=True))}
    result = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--method", "runs", *[x for kv in options.items() for x in kv],
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_quiet_shows_no_progress_and_no_answer_only_where_the_results_are(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``-q`` as ``run`` and ``sweep`` have it: in a pipe, neither progress lines nor the
    answer's, only the line saying where the results are (the search itself stands in here:
    its runs are not what is checked)."""
    import msgstorm.sweep.leverage as leverage

    def search(*_: Any, on_outcome: Any, on_start: Any, out_dir: Path, **__: Any) -> dict[str, Any]:
        on_start(40)
        for index in range(30):
            on_outcome({"run_id": str(index), "status": "ok"})
        return {"method": "runs", "curves": []}

    monkeypatch.setattr(leverage, "safe_leverage", search)
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    out = tmp_path / "out"
    args = ["safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1%", "--range", "1:5", "--out", str(out)]
    quiet = CliRunner().invoke(app, [*args, "-q"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.splitlines() == [f"30 runs in 0 s; {out / 'safe_leverage.json'}, {out / 'safe_leverage.html'}"]
    loud = CliRunner().invoke(app, args)
    assert loud.exit_code == 0, loud.output
    progress = [line for line in loud.output.splitlines() if " done, " in line]
    assert progress[0] == "  1/≤40 done, 0 failed" and len(progress) <= 11, loud.output  # a tenth, not a run


def test_a_share_is_a_percentage_or_a_fraction_and_the_message_invites_only_what_is_accepted() -> None:
    assert parse_share("0.1%", "--budget") == pytest.approx(0.001)
    assert parse_share("0.001", "--budget") == pytest.approx(0.001)
    assert parse_share("0.1", "--budget") == pytest.approx(0.1)
    assert parse_share("0.8", "--confidence") == parse_share("80%", "--confidence") == pytest.approx(0.8)
    with pytest.raises(ValueError) as caught:
        parse_share("5", "--budget")
    invited = re.findall(r"such as (\S+)", str(caught.value))
    assert invited == ["0.1%", "0.001"], caught.value
    assert [parse_share(text, "--budget") for text in invited] == pytest.approx([0.001, 0.001])
    with pytest.raises(ValueError) as caught:
        parse_share("1.5", "--confidence", CONFIDENCE_EXPECTED)
    invited = re.findall(r"such as (\S+) or (\S+) ", str(caught.value))[0]
    assert "%" not in str(caught.value).split("such as")[0], "a confidence is not offered as a budget's 0.1%"
    assert [parse_share(text, "--confidence", CONFIDENCE_EXPECTED) for text in invited] == pytest.approx([0.95, 0.95])
    assert parse_range("1:20") == (1.0, 20.0)


def test_the_default_range_stops_below_the_liquidation_line() -> None:
    assert default_range(parse_scenario(LEVERAGE, source="lev.toml")) == (1.0, 9.9)  # maintenance 10%
    assert default_range(parse_scenario(_market("count = 10", margin='"1%"'), source="lev.toml")) == (1.0, 50.0)


def test_the_progress_of_a_search_counts_against_its_most_runs() -> None:
    import io

    from rich.console import Console

    log = io.StringIO()
    with SweepProgress(Console(file=log, force_terminal=False, width=200), label="safe-leverage") as bar:
        bar.start(most_runs(seeds=2, curves=1), at_most=True)
        bar({"run_id": "a", "status": "ok"})
    assert log.getvalue() == "  1/≤24 done, 0 failed\n", log.getvalue()  # no ETA from one run


# --- the page -----------------------------------------------------------------------------------


def test_the_log_axis_labels_each_tick_in_full() -> None:
    assert log_ticks(1.0, 50.0) == [1, 2, 5, 10, 20, 50]
    assert log_ticks(1.5, 4.0) == [1.5, 2, 3]
    assert len(log_ticks(2.2, 2.4)) >= 2


def _document(curves: list[dict[str, Any]], vary: str | None) -> dict[str, Any]:
    return {"scenario": "s", "budget_pct_of_open_interest": 0.1, "confidence": 0.8, "seeds": 8, "range": [1.0, 40.0],
            "seeds_to_show": 8, "over_budget_is": "over", "leverage_is": "one leverage", "vary": vary,
            "curves": curves}


def test_the_page_plots_the_answer_and_its_boundary_interval(tmp_path: Path) -> None:
    """Three curves against a varied key: one with both ends shown, one without a leverage
    shown over, one with none shown within (too few seeds). The points plotted are the
    answer and the bar reaches the lowest shown over; the curve axis reads 20 as 20."""
    shown = search(_thresholds([7.0, 9.0, 10.0, 12.0, 15.0, 15.0, 20.0, 25.0]), low=1.0, high=40.0, confidence=0.8)
    open_top = search(_thresholds([7.0, *[1e9] * 7]), low=1.0, high=40.0, confidence=0.8)
    nothing = search(_thresholds([1e9] * 5), low=1.0, high=40.0, confidence=0.8)
    assert shown["boundary"][1] is not None and shown["safe_leverage"] is not None
    curves = [{"vary": {"k": value}, **curve} for value, curve in zip(["a", "b", "c"], [shown, open_top, nothing],
                                                                        strict=True)]
    html = write_leverage_report(tmp_path, _document(curves, "k")).read_text()
    figures = _figures(html)
    (safe,) = figures["safe-leverage"]["data"]
    assert safe["x"] == ["a", "b", "c"]
    assert safe["y"] == [shown["safe_leverage"], open_top["safe_leverage"], None]
    assert safe["y"][0] + safe["error_y"]["array"][0] == pytest.approx(shown["boundary"][1])
    assert safe["error_y"]["array"][1:] == [None, None] and safe["error_y"]["arrayminus"][:2] == [0.0, 0.0]
    axis = figures["leverage-curve"]["layout"]["xaxis"]
    assert axis["type"] == "log" and dict(zip(axis["tickvals"], axis["ticktext"], strict=True))[20] == "20"
    plotted = {trace["name"]: trace for trace in figures["leverage-curve"]["data"]}
    assert plotted["k = a"]["x"] == [p["leverage"] for p in shown["points"]]
    assert plotted["k = a"]["y"] == [p["p"] for p in shown["points"]]
    assert "None" not in html.split("<main>")[1]
    assert headline(nothing, 0.8).startswith("none shown within budget: 5 seeds cannot show")
    assert f"{open_top['safe_leverage']:g}x shown within budget: 0/8" in headline(open_top, 0.8)


@pytest.mark.slow
def test_the_terminal_the_json_and_the_page_give_one_answer(tmp_path: Path) -> None:
    """The hand-computed gap (over budget from 2.994x on, every seed alike), one seed a leverage
    at 50% and a second curve with a 40% gap (over from 2.331x). Each curve's answer is the
    highest leverage shown within budget below those; the terminal prints it, its boundary
    and no Python None; the page plots it; the bar counted against the most runs."""
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "safe-leverage", str(scenario), "--method", "runs", "--budget", "0.001", "--seeds", "1", "--confidence", "0.5", "--range", "2:4",
        "--workers", "2", "--out", str(out), "--vary",
        'market.instruments.0.shocks=[{at="1s", fall="30%"}],[{at="1s", fall="40%"}]'])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "safe_leverage.json").read_text())
    assert document["budget_pct_of_open_interest"] == pytest.approx(0.1) and document["confidence"] == 0.5
    thirty, forty = document["curves"]
    for curve, boundary in ((thirty, 1 / 0.334), (forty, 1 / 0.429)):
        assert curve["safe_leverage"] < boundary <= curve["bracket"][1], curve
        assert curve["bracket"][1] / curve["safe_leverage"] < 1.02, curve["bracket"]
        assert all(p["exceed"] == (p["leverage"] > boundary) for p in curve["points"]), curve["points"]
        assert f"{curve['safe_leverage']:g}x shown within budget: 0/1 over budget" in result.output
    assert "None" not in result.output and "1/≤24 done" in result.output, result.output
    figures = _figures((out / "safe_leverage.html").read_text())
    (safe,) = figures["safe-leverage"]["data"]
    assert safe["y"] == [thirty["safe_leverage"], forty["safe_leverage"]]
    curve_traces = figures["leverage-curve"]["data"][:2]
    assert [trace["x"] for trace in curve_traces] == [[p["leverage"] for p in c["points"]] for c in (thirty, forty)]
    assert [trace["y"] for trace in curve_traces] == [[p["p"] for p in c["points"]] for c in (thirty, forty)]
    assert math.isclose(min(curve_traces[0]["x"]), 2.0)


def test_the_pages_bars_are_the_bounds_that_decide_against_the_line() -> None:
    """At 95%, 59 seeds none over is shown within budget (upper bound 0.0495) though the
    two-sided 95% interval reaches 0.061, and 8 of 59 over is shown over (lower bound 0.069)
    though the two-sided one starts at 0.060: each bar is the one-sided bounds, so its top is
    under the line 0.05 exactly where the point is shown within, its bottom over it where over."""
    import tempfile

    seeds = [1e9] * 59
    curve = search(_thresholds([3.0] * 8 + seeds[8:]), low=1.0, high=8.0, confidence=0.95, refine=0)
    shown = {p["leverage"]: p["shown"] for p in curve["points"]}
    assert set(shown.values()) == {"within", "over"}, shown
    with tempfile.TemporaryDirectory() as directory:
        document = {**_document([{"vary": None, **curve}], None), "confidence": 0.95, "seeds": 59}
        figures = _figures(write_leverage_report(Path(directory), document).read_text())
    trace, line = figures["leverage-curve"]["data"]
    assert line["y"] == [pytest.approx(0.05)] * 2
    for x, y, up, down in zip(trace["x"], trace["y"], trace["error_y"]["array"], trace["error_y"]["arrayminus"],
                              strict=True):
        assert (y + up <= 0.05 + 1e-12) == (shown[x] == "within"), (x, y, up)
        assert (y - down > 0.05) == (shown[x] == "over"), (x, y, down)


def test_a_budget_written_as_a_fraction_is_said_back_as_a_percentage(tmp_path: Path) -> None:
    """--budget 0.1 is 10% of open interest, a hundred times --budget 0.1%: the command says
    which it read before anything runs (here the range then refuses, so nothing does)."""
    assert fraction_note("0.1%", "--budget") is None
    assert fraction_note("0.1", "--budget") == "note: --budget 0.1 is a fraction: 10% of open interest " \
                                               "(for 0.1% write --budget 0.1%)"
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    result = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1", "--range", "2:12",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "note: --budget 0.1 is a fraction: 10% of open interest" in result.output, result.output


def test_ray_asked_for_but_not_installed_says_which_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Ray (an import of it fails), --ray exits 2 naming the cluster extra, no traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" raises ImportError
    scenario = tmp_path / "lev.toml"
    scenario.write_text(LEVERAGE)
    result = CliRunner().invoke(app, ["safe-leverage", str(scenario), "--method", "runs", "--budget", "0.1%", "--seeds", "1",
                                      "--confidence", "50%", "--range", "2:4", "--ray", "auto",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "install the cluster extra: pip install -e '.[cluster]'" in result.output, result.output
    assert "Traceback" not in result.output
