"""The commands that run a scenario and read what a run left: ``validate``, ``run``,
``report`` and ``compare``.

Each is a plain function; ``msgstorm.cli`` registers it on the typer app.
"""

from __future__ import annotations

import errno
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from msgstorm.commands.common import (
    AllowRemoteOption,
    MaxTimeOption,
    TargetOption,
    counted,
    err,
    load_or_exit,
    out,
    refuse_out,
    say_error,
    say_ok,
    sigterm_as_interrupt,
)
from msgstorm.errors import DataFileError, ExitCode, TargetError

if TYPE_CHECKING:
    from msgstorm.analysis import Analysis


def validate(
    scenario: Annotated[Path, typer.Argument(help="scenario TOML file", metavar="SCENARIO.toml")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override dotted.key=value")] = None,
    target: TargetOption = None,
    allow_remote: AllowRemoteOption = False,
    max_time: MaxTimeOption = None,
) -> None:
    """Check a scenario without running it."""
    from msgstorm.scenario.budget import estimate_work

    loaded = load_or_exit(scenario, set_ or [], target, allow_remote, max_time)
    say_ok(f"{scenario} ({loaded.run.name}: {counted(len(loaded.agents), 'agent')}, "
        f"{counted(len(loaded.faults), 'fault')}, target {loaded.target})")
    out.print(f"estimated work: {estimate_work(loaded).describe()}", highlight=False, soft_wrap=True, markup=False)


def run(  # noqa: C901 - the run command's option checks, in the order its help lists them
    scenario: Annotated[Path, typer.Argument(help="scenario TOML file", metavar="SCENARIO.toml")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="run directory (default runs/<UTC time>-<name>, "
                                                 "always new)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the run in a non-empty --out directory "
                                            "(removes history/, summary.json, report.html, windows.csv)")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="override run.seed")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override dotted.key=value (repeatable)")] = None,
    target: TargetOption = None,
    allow_remote: AllowRemoteOption = False,
    max_time: MaxTimeOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="an SLO that cannot be judged (no data) fails too (exit 1), and a server "
                         "the run needed that exited early (killed, crashed) fails the run (exit 7)")] = False,
    prometheus: Annotated[int | None, typer.Option(
        "--prometheus", metavar="PORT", min=0, max=65535,
        help="serve live metrics at http://127.0.0.1:PORT/metrics while the run goes "
             "(0 picks a free port)")] = None,
    linger: Annotated[float, typer.Option(
        "--prometheus-linger", metavar="SECONDS", min=0,
        help="keep serving the final metrics this long after the run ends")] = 5.0,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="ADDRESS",
        help="a live run's generators as actors on this Ray cluster, one per node ([live] generators "
             "sets how many): auto or host:port")] = None,
) -> None:
    """Run a scenario, write the run directory and print a summary."""
    from functools import partial

    from msgstorm.analysis import slo_failed
    from msgstorm.report.terminal import print_summary
    from msgstorm.runner import RunDirError, claim_run_dir, default_run_dir, run_claimed

    run_scenario = partial(run_claimed, ray=ray)

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"run.seed={seed}")
    loaded = load_or_exit(scenario, overrides, target, allow_remote, max_time)
    from msgstorm.scenario.refs import simulated

    if ray is not None and simulated(loaded):
        say_error(f"--ray {ray}: spreads a live target's generators; {scenario} runs on the simulator (target "
                  "\"sim\"): drop --ray, or give --target")
        raise typer.Exit(ExitCode.BAD_INPUT)
    exporter = _start_exporter(prometheus, loaded) if prometheus is not None else None  # exits 2 on a bad port
    claimed = ExitStack()  # the run directory's lock, held until the last file is written
    try:
        run_dir = default_run_dir(loaded) if out_dir is None else out_dir
        removed = claimed.enter_context(claim_run_dir(run_dir, overwrite))
        if removed:
            err.print(f"--overwrite: removed {', '.join(removed)} from {out_dir}", highlight=False, markup=False)
    except (RunDirError, OSError) as error:
        if exporter is not None:
            exporter.close()
        refuse_out(error, out_dir)
    show_progress = sys.stdout.isatty() and not quiet
    if show_progress:
        from msgstorm.scenario.budget import estimate_work, wall_time

        work = estimate_work(loaded)
        out.print(f"estimated wall time: about {wall_time(work.wall_s)}{work.leaves_out} "
                  "(limits.max_wall_time, --max-time)", highlight=False, markup=False)
    try:
        with claimed, sigterm_as_interrupt():
            observe = exporter.observe if exporter is not None else None
            if show_progress:
                result = _run_with_progress(loaded, run_dir, run_scenario, observe)
            else:
                result = run_scenario(loaded, run_dir, observe)
            if exporter is not None:
                exporter.finish(result.analysis, result.history)
                _linger(exporter, linger)
    except KeyboardInterrupt:
        # The simulator settles its own interruptions; one that lands here came while the
        # history was being closed, analysed or reported: the history is on disk.
        err.print(f"interrupted: the history in {run_dir} is written; finish the summary and report "
                  f"with: msgstorm report {run_dir}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except DataFileError as error:
        say_error(str(error))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except TargetError as error:
        say_error(str(error))
        if (run_dir / "history").is_dir():
            err.print(f"the run never started: {run_dir} keeps the failure and the logs of any server msgstorm "
                      f"started (servers/); msgstorm report {run_dir} says the same", highlight=False, markup=False)
        raise typer.Exit(ExitCode.TARGET_FAILED) from None
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            say_error(f"{run_dir}: {error.strerror}: the run stopped; the history in "
                   f"{run_dir / 'history'} keeps every part written before (msgstorm report {run_dir} reads it)")
            raise typer.Exit(ExitCode.OUT_OF_SPACE) from None
        say_error(f"{getattr(error, 'filename', None) or run_dir}: {error.strerror or error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    finally:
        if exporter is not None:
            exporter.close()
    if not quiet:
        print_summary(result.analysis.result, out)
    out.print(f"run directory: {result.run_dir} (report: {result.run_dir / 'report.html'})", highlight=False, markup=False)
    if result.analysis.result.interrupted:
        err.print(f"interrupted: the history in {result.run_dir} holds what was recorded before the stop; "
                  f"re-analyse it with: msgstorm report {result.run_dir}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED)
    connections = result.analysis.result.connections
    exited = connections.servers_exited if connections is not None else []
    if strict and exited:
        said = ", ".join(f"{server.name} (exit code {server.returncode})" for server in exited)
        report_file = result.run_dir / "report.html"
        say_error(f"--strict: {said} exited before the run's end, not stopped by msgstorm or a "
                  f"scheduled fault: the run measured a server that went away (report: {report_file})")
        raise typer.Exit(ExitCode.SERVER_EXITED)
    if slo_failed(result.analysis, strict):
        if quiet:
            _say_failing_slos(result.analysis, strict)
        raise typer.Exit(ExitCode.CHECK_FAILED)


def _say_failing_slos(analysis: Analysis, strict: bool) -> None:
    """With -q there is no summary table: say on stderr which SLOs make the exit code 1."""
    from msgstorm.analysis import failing_slos
    from msgstorm.scenario.slo import SLO_METRICS

    for entry in failing_slos(analysis, strict):
        unit = {"ms": " ms", "per_s": "/s"}.get(SLO_METRICS[entry.name][1], "") if entry.name in SLO_METRICS else ""
        shown = "no data to judge" if entry.value is None else f"{entry.value:g}{unit}"
        if entry.bound == "lower":
            shown = f"≥ {shown}"
        why = f": {entry.reason}" if entry.reason else ""
        err.print(f"SLO {entry.verdict}: {entry.name} = {shown} (wanted {entry.threshold}){why}",
                  highlight=False, markup=False)


def _linger(exporter: Any, seconds: float) -> None:
    """Keep the final metrics up so a scraper sees them (``msgstorm_run_finished`` 1)."""
    if seconds > 0:
        err.print(f"prometheus: final metrics at {exporter.url} for {seconds:g} s more", highlight=False, markup=False)
        time.sleep(seconds)


def _start_exporter(port: int, loaded: Any) -> Any:
    from msgstorm.report.prometheus import PrometheusExporter

    exporter = PrometheusExporter(port, loaded)
    try:
        exporter.start()
    except OSError as error:
        say_error(f"--prometheus {port}: cannot listen on 127.0.0.1:{port} ({error.strerror or error}); "
               "choose a free port (0 picks one)")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    err.print(f"prometheus metrics: {exporter.url}", highlight=False, markup=False)
    return exporter


def _run_with_progress(loaded: Any, run_dir: Path, run_scenario: Any, also: Any = None) -> Any:
    from msgstorm.report.live import LiveProgress, tee

    with LiveProgress(out, span_ns=2 * loaded.run.window) as bar:
        return run_scenario(loaded, run_dir, tee(bar, also))


def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory", metavar="RUN_DIR")],
    strict: Annotated[bool, typer.Option("--strict", help="an SLO that cannot be judged (no data) fails too")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no summary table: only the report's path and "
                                        "what decides the exit code")] = False,
) -> None:
    """Re-analyse a run from its history alone; rewrite summary.json, report.html, windows.csv."""
    import pyarrow as pa

    from msgstorm.analysis import slo_failed
    from msgstorm.history import read_history
    from msgstorm.report.rerun import reanalyse
    from msgstorm.report.terminal import print_summary

    try:
        with sigterm_as_interrupt():
            history = read_history(run_dir)
            failure = history.start_failure
            if failure is not None:
                say_error(f"{run_dir}: the run never started, nothing was sent: {failure}")
                raise typer.Exit(ExitCode.TARGET_FAILED)
            if history.cut_off and history.num_rows("messages") == 0:
                live = not history.is_simulated
                hint = ("; a live run writes its messages at the end unless [live] record_every is set "
                        "(then a killed run keeps them)") if live else ""
                if not live or history.num_rows("events") == 0:
                    say_error(f"{run_dir}: the run was cut off before any message was recorded; "
                           f"there is nothing to report{hint}")
                    raise typer.Exit(ExitCode.INTERRUPTED)
                # A live run keeps its events as they happen: its servers, faults and outages are reported.
                err.print(f"{run_dir}: the run was cut off before any message was recorded{hint}; "
                          "reporting its events (servers, faults, connections)", highlight=False, markup=False)
            analysis = reanalyse(run_dir, history)
    except FileNotFoundError as error:
        # Only when there is no history: is it a sweep's directory?
        from msgstorm.sweep.manifest import not_a_run

        say_error(not_a_run(run_dir) or str(error))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except (pa.ArrowException, OSError) as error:
        say_error(f"{run_dir}: history unreadable: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except KeyboardInterrupt:
        err.print(f"interrupted: {run_dir} is unchanged where it was not rewritten; run msgstorm report "
                  f"{run_dir} again to finish", highlight=False, markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    if not quiet:
        print_summary(analysis.result, out)
    out.print(f"report: {run_dir / 'report.html'}", highlight=False, markup=False)
    if analysis.result.cut_off:
        err.print(f"cut off: {run_dir} was killed before it finished; the numbers cover what was "
                  "flushed to its history (up to about a second before the kill)", highlight=False, markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED)
    if analysis.result.interrupted:
        # The run exited 3; its report says the same: SLOs judged on part of a run decide nothing.
        err.print(f"interrupted: {run_dir} was stopped (Ctrl-C or SIGTERM) before it finished; the numbers "
                  "cover what was recorded before the stop", highlight=False, markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED)
    if slo_failed(analysis, strict):
        if quiet:
            _say_failing_slos(analysis, strict)
        raise typer.Exit(ExitCode.CHECK_FAILED)


def compare(
    runs: Annotated[list[Path], typer.Argument(help="run directories; the first is the baseline. A group of "
                                               "replicas: DIR1,DIR2,... or a directory of runs (a sweep's --out)",
                                               metavar="RUN_DIR...")],
    tolerance: Annotated[str, typer.Option("--tolerance", help="how much worse than the baseline a metric may "
                                           "get before it is a regression, e.g. 5% or 0.05")] = "5%",
    fail_on_regression: Annotated[bool, typer.Option("--fail-on-regression",
                                                     help="exit 1 when any metric regressed")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="where to write the HTML comparison "
                                              "(default: compare-<digest of the directories compared>.html in the "
                                              "first run's directory, said when written)")] = None,
    no_html: Annotated[bool, typer.Option("--no-html", help="print the table only")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no table: only the HTML's path and the "
                                        "regressions")] = False,
) -> None:
    """Compare runs' key metrics against the first run; flag regressions beyond a tolerance."""
    from msgstorm.report.compare import (
        RunDirError,
        compare_runs,
        load_group,
        load_run,
        parse_tolerance,
        print_comparison,
        print_regressions,
    )

    problems: list[str] = []
    try:
        fraction = parse_tolerance(tolerance)
    except ValueError as error:
        problems.append(str(error))
    if len(runs) == 2 and not problems and all((path / "sweep.json").is_file() for path in runs):
        from msgstorm.sweep.compare import compare_sweeps, default_sweep_html_path

        page_path = None if no_html else html if html is not None else default_sweep_html_path(runs[0], runs[1])
        try:
            regressions = compare_sweeps(runs[0], runs[1], fraction, out, page_path)
        except RunDirError as error:
            say_error(str(error))
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        except OSError as error:
            say_error(f"--html {page_path}: cannot write: {error.strerror or error}")
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        if fail_on_regression and regressions:
            raise typer.Exit(ExitCode.CHECK_FAILED)
        return
    if len(runs) < 2:
        problems.append(f"compare needs at least two run directories, got {len(runs)}")
    loaded = []
    for index, path in enumerate(runs):
        label = chr(ord("A") + index) if index < 26 else f"R{index + 1}"
        try:
            group = "," in str(path) or (path.is_dir() and not (path / "summary.json").exists()
                                         and not (path / "history").is_dir())
            loaded.append(load_group(str(path), label) if group else load_run(path, label))
        except RunDirError as error:
            problems.append(str(error))
    if problems:
        for problem in problems:
            say_error(str(problem), soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT)
    comparison = compare_runs(loaded, fraction)
    if quiet:
        print_regressions(comparison, out)
    else:
        print_comparison(comparison, out)
    if not no_html:
        from msgstorm.report.compare_html import default_html_path, write_compare_html

        target = html if html is not None else default_html_path(comparison)
        try:
            out.print(f"comparison: {write_compare_html(comparison, target)}", highlight=False, markup=False)
        except OSError as error:
            say_error(f"--html {target}: cannot write: {error.strerror or error}")
            raise typer.Exit(ExitCode.BAD_INPUT) from None
    if fail_on_regression and comparison.regressions:
        raise typer.Exit(ExitCode.CHECK_FAILED)
