"""The commands that run a scenario many times: ``sweep`` over a grid of settings and
seeds, and ``safe-leverage``, the search for the highest leverage within a bad-debt budget.

Each is a plain function; ``msgstorm.cli`` registers it on the typer app.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from msgstorm.commands.common import (
    counted,
    err,
    load_or_exit,
    out,
    refuse_out,
    say_error,
    sigterm_as_interrupt,
)
from msgstorm.errors import ExitCode

POINTS_WIDTH = 80  # columns of the points' table a sweep prints at its end, whatever the terminal's


def _no_ray(error: ImportError) -> NoReturn:
    """--ray without Ray installed: say which extra brings it; exit 2."""
    say_error(f"--ray: {error}; install the cluster extra: pip install -e '.[cluster]'")
    raise typer.Exit(ExitCode.BAD_INPUT) from None


def sweep(
    scenario: Annotated[Path, typer.Argument(help="the scenario file", metavar="SCENARIO.toml")],
    grid: Annotated[list[str] | None, typer.Option("--grid", help="KEY=V1,V2,... (TOML values, as --set takes "
                                                   "them); several --grid: their cartesian product",
                                                   metavar="KEY=V1,V2")] = None,
    zipped: Annotated[bool, typer.Option("--zip", help="pair the grids' values side by side instead")] = False,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="seeds per point: run.seed, run.seed+1, ...")] = 1,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="processes (default: every core)")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="the sweep's directory (default: runs/<time>-<name>-sweep); "
                                             "run again with the same --out to resume the same sweep (another "
                                             "sweep's directory is refused)", metavar="DIR")] = None,
    keep_runs: Annotated[bool, typer.Option("--keep-runs", help="keep every run's directory (default: its "
                                            "summary.json only)")] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="dotted.key=value for every run",
                                                        metavar="KEY=VALUE")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress; only where the results are")] = False,
    ray: Annotated[str | None, typer.Option("--ray", help="run each run as a task on this Ray cluster: auto or "
                                            "HOST:PORT (pip install -e '.[cluster]')", metavar="ADDRESS")] = None,
    ray_cpus: Annotated[float, typer.Option("--ray-cpus", min=0.01, help="CPUs a Ray task asks for")] = 1.0,
) -> None:
    """Run a scenario over a grid of settings and several seeds on every local core (or a Ray
    cluster); write the
    table (sweep.parquet), per-point means with 95% intervals (sweep.json) and sweep.html."""
    from msgstorm.runner import default_run_dir
    from msgstorm.sweep import GridError, SweepDirError, parse_grid
    from msgstorm.sweep import sweep as run_sweep

    fixed = list(overrides or [])
    loaded = load_or_exit(scenario, fixed)
    from msgstorm.scenario.refs import simulated

    if not simulated(loaded):
        say_error(f"{scenario}: a sweep runs on the simulator; target {loaded.target!r} is live")
        raise typer.Exit(ExitCode.BAD_INPUT)
    try:
        grids = [parse_grid(text) for text in grid or []]
    except GridError as error:
        say_error(str(error))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    out_dir = out_path if out_path is not None else default_run_dir(loaded, kind="sweep")
    from msgstorm.report.live import SweepProgress

    bar = SweepProgress(out, quiet=quiet)

    def started(plan: Any, skipped: int, failed_before: int) -> None:
        bar.start(len(plan.runs) - skipped)
        if not quiet:
            retried = f", {failed_before} failed before: retried" if failed_before else ""
            out.print(f"sweep: {len(plan.points)} point(s) x {len(plan.seeds)} seed(s) = {len(plan.runs)} runs; "
                      f"{skipped} finished before (skipped){retried}, {len(plan.runs) - skipped} to run "
                      "(a run that fails is run once more)", highlight=False, markup=False)

    from msgstorm.scenario import ScenarioError

    try:
        with sigterm_as_interrupt(), bar:
            result = run_sweep(scenario, grids, seeds=seeds, zipped=zipped, workers=workers, out_dir=out_dir,
                               keep_runs=keep_runs, sets=fixed, on_outcome=bar,
                               on_start=started, ray=ray, ray_cpus=ray_cpus)
    except (GridError, ScenarioError, SweepDirError) as error:
        for line in getattr(error, "issues", None) or [error]:
            say_error(str(line), soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except ImportError as error:
        _no_ray(error)
    except KeyboardInterrupt:
        say_error(f"interrupted: what finished is in {out_dir} (sweep.parquet); run the same command to resume")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    if not quiet:
        from msgstorm.sweep.points import points_table, read_points

        # Width-independent: the same table on any terminal, and no wider than 80 columns.
        out.print(points_table(read_points(out_dir)), width=POINTS_WIDTH, soft_wrap=False)
    retried = f" ({result.failed_before} of them failed before: retried)" if result.failed_before else ""
    out.print(f"{result.ran} run(s) now{retried}, {result.skipped} finished before, {result.failed} failed; "
              f"table {out_dir / 'sweep.parquet'}, points {out_dir / 'sweep.json'}, page "
              f"{out_dir / 'sweep.html'}", highlight=False, markup=False)
    from msgstorm.sweep.quorum import quorum_lines, quorum_points

    for line in quorum_lines(quorum_points(result.table)):  # a sweep under finality by votes
        out.print(line, highlight=False, markup=False)
    if result.failed:
        raise typer.Exit(ExitCode.RUNS_FAILED)


def safe_leverage_command(
    scenario: Annotated[Path, typer.Argument(help="a scenario with [market] accounts", metavar="SCENARIO.toml")],
    budget: Annotated[str, typer.Option("--budget", help="bad debt allowed, a share of open interest, e.g. 0.1%")],
    confidence: Annotated[str, typer.Option("--confidence", help="how sure: P(bad debt > budget) <= 1 - this")] = "95%",
    seeds: Annotated[int | None, typer.Option("--seeds", min=1, help="runs: seeds per leverage, the same at every one "
                                              "(default: the fewest that can show one within budget, 59 at 95%); "
                                              "the probe search takes none (refused)")] = None,
    leverage_range: Annotated[str | None, typer.Option(
        "--range", help="LOW:HIGH leverages searched (default: 1, or the highest leverage_floor, to "
                        "0.99 / maintenance margin, at most 50)", metavar="LOW:HIGH")] = None,
    vary: Annotated[str | None, typer.Option("--vary", help="KEY=V1,V2,...: one curve per value (TOML values)",
                                             metavar="KEY=V1,V2")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="processes (default: every core)")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="where to write (default: runs/<time>-<name>-safe-leverage); "
                                                  "run again with the same --out to resume", metavar="DIR")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="dotted.key=value for every run",
                                                        metavar="KEY=VALUE")] = None,
    ray: Annotated[str | None, typer.Option("--ray", help="run the seeds as tasks on this Ray cluster: auto or "
                                            "HOST:PORT (pip install -e '.[cluster]')", metavar="ADDRESS")] = None,
    method: Annotated[str, typer.Option(
        "--method", help="probes: probe books at a grid of leverages ride along "
                         "each run, seeds added until decided; bisect: whole runs, each seed's "
                         "critical leverage by bisection over the same grid, seeds added until "
                         "decided; runs: whole runs at each leverage, --seeds each; auto: probes "
                         "where they answer for the market (a whole liquidation at the index, no "
                         "fund), else bisect")] = "auto",
    max_runs: Annotated[int | None, typer.Option(
        "--max-runs", min=1, help="probes: at most this many runs a curve; "
                                  "bisect: this many seeds (the next look is not started past "
                                  "it)")] = None,
    seconds: Annotated[float | None, typer.Option(
        "--time", min=1, help="probes, bisect: seconds; the next look "
                              "is not started when it would end later", metavar="SECONDS")] = None,
    grid_points: Annotated[int, typer.Option(
        "--grid-points", min=2, max=256, help="probes, bisect: leverages of "
                                              "the grid, log-spaced over --range")] = 24,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress and no answer's lines: only where the "
                                        "results are (safe_leverage.json holds the answer)")] = False,
) -> None:
    """The highest leverage (one for every account) whose bad debt stays within a budget of
    open interest with the stated confidence; one curve per value of --vary."""
    from msgstorm.runner import RunDirError, default_run_dir, refuse_a_file
    from msgstorm.scenario import ScenarioError
    from msgstorm.sweep import GridError, parse_grid
    from msgstorm.sweep.leverage import (
        CONFIDENCE_EXPECTED,
        check_search,
        check_seeds,
        choose_method,
        default_range,
        fraction_note,
        needs_market,
        parse_range,
        parse_share,
        runs_seeds,
        safe_leverage,
    )

    fixed = list(overrides or [])
    loaded = load_or_exit(scenario, fixed)
    try:
        budget_share = parse_share(budget, "--budget")
        sure = parse_share(confidence, "--confidence", CONFIDENCE_EXPECTED)
        if (note := fraction_note(budget, "--budget")) is not None:
            err.print(note, highlight=False, markup=False)
        needs_market(loaded, scenario)
        low, high = parse_range(leverage_range) if leverage_range is not None else default_range(loaded)
        varied = parse_grid(vary, "--vary") if vary is not None else None
        chosen, method_note = choose_method(scenario, method, sets=fixed, vary=varied)
        check_seeds(chosen, seeds, sure, method)
        check_search(scenario, budget=budget_share, confidence=sure, seeds=seeds, low=low, high=high, vary=varied,
                     sets=fixed)
        per_leverage = runs_seeds(seeds, sure)  # whole runs' seeds a leverage (the probe search takes none)
        if method_note is not None:
            err.print(method_note, highlight=False, markup=False)
    except (ValueError, GridError) as error:
        say_error(f"safe-leverage: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except ScenarioError as error:
        for line in error.issues:
            say_error(str(line), soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    try:  # --out as msgstorm run takes it: a file there, or a path under one, is said and refused
        out_dir = out_path if out_path is not None else default_run_dir(loaded, kind="safe-leverage")
        refuse_a_file(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
    except (RunDirError, OSError) as error:
        refuse_out(error, out_path, "the search's directory")
    from msgstorm.report.live import SweepProgress

    started = time.monotonic()
    bar = SweepProgress(out, label="safe-leverage", quiet=quiet)
    try:
        with sigterm_as_interrupt(), bar:
            document = safe_leverage(scenario, budget=budget_share, confidence=sure, seeds=seeds, low=low, high=high,
                                     vary=varied, sets=fixed, workers=workers, out_dir=out_dir, on_outcome=bar,
                                     on_start=lambda most: bar.start(most, at_most=True), ray=ray, method=method,
                                     max_runs=max_runs, seconds=seconds, probe_points=grid_points)
    except (ValueError, GridError, ScenarioError) as error:
        for line in getattr(error, "issues", None) or [error]:
            say_error(str(line), soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except ImportError as error:
        if ray is None:
            raise
        _no_ray(error)
    except KeyboardInterrupt:
        say_error(f"interrupted: the same command with --out {out_dir} resumes")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    if not quiet:
        _say_answer(document, budget_share, sure, per_leverage)
    out.print(f"{bar.done} runs in {time.monotonic() - started:,.0f} s; {out_dir / 'safe_leverage.json'}, "
              f"{out_dir / 'safe_leverage.html'}", highlight=False, markup=False)


def _say_answer(document: dict[str, Any], budget_share: float, sure: float, per_leverage: int) -> None:
    """The answer of a safe-leverage search, a few lines a curve."""
    from msgstorm.sweep.leverage_html import (
        boundary_line,
        headline,
        leverage_text,
        margin_comparison,
        vault_line,
    )

    if document["method"] == "bisect":
        out.print(f"safe leverage (one leverage for every account: whole runs, each seed's "
                  f"critical leverage by bisection over {len(document['grid'])} leverages): the "
                  f"highest shown to keep bad debt <= {budget_share:.3%} of open interest with "
                  f"{sure:.0%} confidence, seeds added in looks until decided (a run without a "
                  f"bad-debt share counts as over budget):", highlight=False, markup=False)
    elif document["method"] == "probes":
        out.print(f"safe leverage (one leverage for every account: probe books at {len(document['grid'])} leverages "
                  f"riding along each run): the highest shown to keep bad debt <= {budget_share:.3%} of open interest "
                  f"with {sure:.0%} confidence, seeds added in looks until decided (a run without a bad-debt share "
                  f"counts as over budget):", highlight=False, markup=False)
    else:
        out.print(f"safe leverage (one leverage for every account): the highest shown to keep bad debt <= "
                  f"{budget_share:.3%} of open interest with {sure:.0%} confidence, {counted(per_leverage, 'seed')} a "
                  f"leverage (a run without a bad-debt share counts as over budget):", highlight=False, markup=False)
    for curve in document["curves"]:
        label = "" if curve["vary"] is None else " " + ", ".join(f"{k} = {v}" for k, v in curve["vary"].items()) + ":"
        out.print(f"{label} {headline(curve, sure)}", highlight=False, markup=False)
        out.print(f"  {boundary_line(curve, sure)}", highlight=False, markup=False)
        if document.get("vault_liquidation_ratio") and curve["safe_leverage"] is not None:
            out.print("  " + vault_line(curve["safe_leverage"], document["vault_liquidation_ratio"]),
                      highlight=False, markup=False)
        if curve["note"] and curve["safe_leverage"] is not None:
            out.print(f"  {curve['note']}", highlight=False, markup=False)
        if curve.get("method") == "probes":
            seen = curve["critical_summary"] or {}
            out.print(f"  accounts at {leverage_text(curve['accounts_at'])} (the lowest critical leverage of a pilot of "
                      f"{curve['pilot_seeds']} seeds); {curve['runs']} seeds in {len(curve['looks'])} look(s) "
                      f"({curve['stopped']}); per-seed "
                      f"critical leverage: min {leverage_text(seen.get('min'))}, median "
                      f"{leverage_text(seen.get('median'))}, max {leverage_text(seen.get('max'))}"
                      + (f", {seen['below_range']} below the range" if seen.get("below_range") else ""),
                      highlight=False, markup=False)
        if curve.get("method") == "bisect":
            seen = curve["critical_summary"] or {}
            below = f", {seen['below_range']} below the range" if seen.get("below_range") else ""
            out.print(f"  {curve['whole_runs']} whole runs over {curve['runs']} seeds in "
                      f"{len(curve['looks'])} look(s) ({curve['stopped']}); "
                      f"{len(curve['reversals'])} seed(s) reversed; per-seed critical leverage: "
                      f"min {leverage_text(seen.get('min'))}, median "
                      f"{leverage_text(seen.get('median'))}, max {leverage_text(seen.get('max'))}{below}",
                      highlight=False, markup=False)
        out.print("  " + "  ".join(f"{leverage_text(p['leverage'])}: {p['exceed']}/{p['runs']}"
                                   + (f" ({p['unmeasured']} unmeasured)" if p["unmeasured"] else "")
                                   for p in curve["points"]), highlight=False, markup=False)
        if curve.get("not_run"):
            out.print(f"  not run (above the lowest shown over, no bearing on the answer): "
                      f"{', '.join(leverage_text(leverage) for leverage in curve['not_run'])}",
                      highlight=False, markup=False)
    for compared in margin_comparison(document["curves"]):
        out.print(compared, highlight=False, markup=False)
