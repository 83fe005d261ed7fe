"""The ``msgstorm`` command line: run, validate, report.

Exit codes: 0 ok; 1 an SLO failed; 2 bad input (the message names file, line and field).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

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
    scenario: Annotated[Path, typer.Argument(help="scenario TOML file")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override dotted.key=value")] = None,
) -> None:
    """Check a scenario without running it."""
    loaded = _load(scenario, set_ or [])
    out.print(f"[green]ok[/]: {scenario} ({loaded.run.name}: {len(loaded.agents)} agents, "
              f"{len(loaded.faults)} faults, target {loaded.target})", highlight=False)


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario TOML file")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="run directory (default runs/<UTC time>-<name>)")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="override run.seed")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override dotted.key=value (repeatable)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table")] = False,
) -> None:
    """Run a scenario, write the run directory and print a summary."""
    from msgstorm.analysis import slo_failed
    from msgstorm.report.terminal import print_summary
    from msgstorm.runner import run as run_scenario

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"run.seed={seed}")
    loaded = _load(scenario, overrides)
    show_progress = sys.stdout.isatty() and not quiet
    if show_progress:
        result = _run_with_progress(loaded, out_dir, run_scenario)
    else:
        result = run_scenario(loaded, out_dir)
    if not quiet:
        print_summary(result.summary, out)
    out.print(f"run directory: {result.run_dir}", highlight=False)
    if slo_failed(result.analysis):
        raise typer.Exit(1)


def _run_with_progress(loaded: Any, out_dir: Optional[Path], run_scenario: Any) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]sim"), BarColumn(), TextColumn("{task.fields[status]}"),
                  TimeElapsedColumn(), console=out, transient=True) as bar:
        task = bar.add_task("sim", total=1.0, status="")
        last = [0.0]

        def progress(snapshot: dict[str, Any]) -> None:
            now = time.monotonic()
            if now - last[0] < 0.1:
                return
            last[0] = now
            status = (f"t={snapshot['t_ns'] / 1e9:.2f}s sent={snapshot['sent']:,} "
                      f"committed={snapshot['committed']:,} dropped={snapshot['dropped']:,} "
                      f"queue={snapshot['queue_depth']:,}")
            bar.update(task, completed=min(1.0, snapshot["t_ns"] / max(1, snapshot["end_ns"])), status=status)

        return run_scenario(loaded, out_dir, progress)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory")]) -> None:
    """Re-analyse a run from its history alone and rewrite summary.json."""
    from msgstorm.analysis import slo_failed
    from msgstorm.report.terminal import print_summary
    from msgstorm.runner import reanalyse

    try:
        analysis = reanalyse(run_dir)
    except FileNotFoundError as error:
        err.print(f"[red]error[/]: {error}", highlight=False)
        raise typer.Exit(2) from None
    print_summary(analysis.summary, out)
    if slo_failed(analysis):
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry
    app()
