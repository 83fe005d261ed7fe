"""The ``msgstorm`` command line: run, validate, report, compare, schema.

Exit codes: 0 ok; 1 an SLO failed (``compare --fail-on-regression``: a regression); 2 bad
input (the message names file, line and field, or the run directory and what is wrong).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from msgstorm.scenario import ScenarioError, load_scenario

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Stress-test the messaging layer of a trading system.")
err = Console(stderr=True)
out = Console()


def _load(path: Path, overrides: list[str]) -> Any:
    try:
        return load_scenario(path, overrides)
    except ScenarioError as error:
        for issue in error.issues:
            err.print(f"[red]error[/]: {issue}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def validate(
    scenario: Annotated[Path, typer.Argument(help="scenario TOML file", metavar="SCENARIO.toml")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override dotted.key=value")] = None,
) -> None:
    """Check a scenario without running it."""
    from msgstorm.scenario.budget import estimate_work

    loaded = _load(scenario, set_ or [])
    out.print(f"[green]ok[/]: {scenario} ({loaded.run.name}: {len(loaded.agents)} agents, "
              f"{len(loaded.faults)} faults, target {loaded.target})", highlight=False, soft_wrap=True)
    out.print(f"estimated work: {estimate_work(loaded).describe()}", highlight=False, soft_wrap=True)


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario TOML file", metavar="SCENARIO.toml")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="run directory (default runs/<UTC time>-<name>)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="override run.seed")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override dotted.key=value (repeatable)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="an SLO that cannot be judged (no data) fails too")] = False,
    prometheus: Annotated[int | None, typer.Option(
        "--prometheus", metavar="PORT", min=0, max=65535,
        help="serve live metrics at http://127.0.0.1:PORT/metrics while the run goes "
             "(0 picks a free port)")] = None,
) -> None:
    """Run a scenario, write the run directory and print a summary."""
    from msgstorm.analysis import slo_failed
    from msgstorm.report.terminal import print_summary
    from msgstorm.runner import run as run_scenario

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"run.seed={seed}")
    loaded = _load(scenario, overrides)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        err.print(f"[red]error[/]: --out {out_dir}: exists and is not a directory", highlight=False)
        raise typer.Exit(2)
    show_progress = sys.stdout.isatty() and not quiet
    exporter = _start_exporter(prometheus, loaded) if prometheus is not None else None
    try:
        observe = exporter.observe if exporter is not None else None
        if show_progress:
            result = _run_with_progress(loaded, out_dir, run_scenario, observe)
        else:
            result = run_scenario(loaded, out_dir, observe)
        if exporter is not None:
            exporter.finish(result.analysis, result.history)
    finally:
        if exporter is not None:
            exporter.close()
    if not quiet:
        print_summary(result.summary, out)
    out.print(f"run directory: {result.run_dir} (report: {result.run_dir / 'report.html'})", highlight=False)
    if slo_failed(result.analysis, strict):
        raise typer.Exit(1)


def _start_exporter(port: int, loaded: Any) -> Any:
    from msgstorm.report.prometheus import PrometheusExporter

    exporter = PrometheusExporter(port, loaded)
    try:
        exporter.start()
    except OSError as error:
        err.print(f"[red]error[/]: --prometheus {port}: cannot listen on 127.0.0.1:{port} ({error.strerror or error}); "
                  "choose a free port (0 picks one)", highlight=False)
        raise typer.Exit(2) from None
    err.print(f"prometheus metrics: {exporter.url}", highlight=False)
    return exporter


def _run_with_progress(loaded: Any, out_dir: Path | None, run_scenario: Any, also: Any = None) -> Any:
    from msgstorm.report.live import LiveProgress, tee

    with LiveProgress(out, span_ns=2 * loaded.run.window) as bar:
        return run_scenario(loaded, out_dir, tee(bar, also))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    strict: Annotated[bool, typer.Option("--strict", help="an SLO that cannot be judged (no data) fails too")] = False,
) -> None:
    """Re-analyse a run from its history alone; rewrite summary.json, report.html, windows.csv."""
    import pyarrow as pa

    from msgstorm.analysis import slo_failed
    from msgstorm.report.terminal import print_summary
    from msgstorm.runner import reanalyse

    try:
        analysis = reanalyse(run_dir)
    except FileNotFoundError as error:
        err.print(f"[red]error[/]: {error}", highlight=False)
        raise typer.Exit(2) from None
    except (pa.ArrowException, OSError) as error:
        err.print(f"[red]error[/]: {run_dir}: history unreadable (was the run killed while "
                  f"writing?): {error}", highlight=False)
        raise typer.Exit(2) from None
    print_summary(analysis.summary, out)
    out.print(f"report: {run_dir / 'report.html'}", highlight=False)
    if slo_failed(analysis, strict):
        raise typer.Exit(1)


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="run directories; the first is the baseline")],
    tolerance: Annotated[str, typer.Option("--tolerance", help="how much worse than the baseline a metric may "
                                           "get before it is a regression, e.g. 5% or 0.05")] = "5%",
    fail_on_regression: Annotated[bool, typer.Option("--fail-on-regression",
                                                     help="exit 1 when any metric regressed")] = False,
    html: Annotated[Path, typer.Option("--html", help="where to write the HTML comparison")] = Path("compare.html"),
    no_html: Annotated[bool, typer.Option("--no-html", help="print the table only")] = False,
) -> None:
    """Compare runs' key metrics against the first run; flag regressions beyond a tolerance."""
    from msgstorm.report.compare import (
        RunDirError,
        compare_runs,
        load_run,
        parse_tolerance,
        print_comparison,
    )

    problems: list[str] = []
    try:
        fraction = parse_tolerance(tolerance)
    except ValueError as error:
        problems.append(str(error))
    if len(runs) < 2:
        problems.append(f"compare needs at least two run directories, got {len(runs)}")
    loaded = []
    for index, path in enumerate(runs):
        label = chr(ord("A") + index) if index < 26 else f"R{index + 1}"
        try:
            loaded.append(load_run(path, label))
        except RunDirError as error:
            problems.append(str(error))
    if problems:
        for problem in problems:
            err.print(f"[red]error[/]: {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    comparison = compare_runs(loaded, fraction)
    print_comparison(comparison, out)
    if not no_html:
        from msgstorm.report.compare_html import write_compare_html

        out.print(f"comparison: {write_compare_html(comparison, html)}", highlight=False)
    if fail_on_regression and comparison.regressions:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of summary.json."""
    from msgstorm.report.schema import summary_schema_text

    sys.stdout.write(summary_schema_text())


def main() -> None:  # pragma: no cover - console entry
    app()
