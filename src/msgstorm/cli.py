"""The ``msgstorm`` command line: run, validate, report, compare, schema.

Exit codes: ``msgstorm.errors.ExitCode``, one per cause (docs/cli.md lists them); no
command exits with a bare number.

Lines a script may read (paths, errors) are never wrapped, whatever the terminal's width.
"""

from __future__ import annotations

import atexit
import errno
import gc
import inspect
import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from msgstorm.errors import EXIT_CODES_HELP, DataFileError, ExitCode, TargetError
from msgstorm.heap import keep_freed_memory  # first: it chooses Arrow's pool before pyarrow loads


class _Command(typer.core.TyperCommand):
    """A command whose usage line names its arguments plainly (``SCENARIO.toml``, not typer's
    ``{SCENARIO.toml}``, which reads like a literal brace in a shell), and whose help is plain
    text: typer reads help as rich markup, which would eat ``[cluster]`` or ``[market]``, so
    every help string is escaped here, once, for every command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            # A docstring's lines join into one paragraph (typer would keep each source line).
            self.help = escape(re.sub(r"(?<!\n)\n(?!\n)", " ", inspect.cleandoc(self.help)))
        for param in self.params:
            if isinstance(param, (typer.core.TyperOption, typer.core.TyperArgument)) and param.help:
                param.help = escape(param.help)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        return [piece.replace("{", "", 1).replace("}", "", 1) if piece.startswith("{") else piece
                for piece in pieces]


app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Stress-test the messaging layer of a trading system.", epilog=EXIT_CODES_HELP)
# soft_wrap: a long path or error line stays one line when stdout is a file or a pipe.
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _error(message: str, **options: Any) -> None:
    """``error: message`` on stderr. The message is plain text, never markup: paths, URLs and
    scenario text may hold square brackets (``runs/[a]``, ``agents[0]``)."""
    options.setdefault("highlight", False)
    err.print(Text.assemble(("error", "red"), ": ", message), **options)


def _ok(message: str) -> None:
    """``ok: message`` on stdout, the message as plain text."""
    out.print(Text.assemble(("ok", "green"), ": ", message), highlight=False)



def _count(n: int, noun: str) -> str:
    """``1 fault``, ``2 faults``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _version(value: bool) -> None:
    if value:
        import msgstorm

        out.print(f"msgstorm {msgstorm.__version__}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")] = False) -> None:
    """Stress-test the messaging layer of a trading system."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``timeout``, a CI runner, ``kill``) stops the run as Ctrl-C does: what was
    recorded is settled and written. A second SIGTERM or SIGINT while stopping ends the
    process at once; the history's parts on disk stay whole (``report`` reads them)."""
    signals = 0

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            err.print("stopped again: exiting now; the history keeps what was flushed", highlight=False, markup=False)
            sys.stderr.flush()
            import os

            os._exit(ExitCode.INTERRUPTED)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


TargetOption = Annotated[str | None, typer.Option(
    "--target", metavar="NAME|URL",
    help="where to run: sim, nats, jetstream, redis, zmq (msgstorm starts the server), or the URL of a "
         "server you run (nats://, jetstream://, redis://; tcp:// the endpoint ZeroMQ binds); overrides the scenario's target")]
AllowRemoteOption = Annotated[bool, typer.Option(
    "--allow-remote", help="let --target or live.url name an address off this machine (load goes only "
                           "to loopback otherwise)")]


def _load(path: Path, overrides: list[str], target: str | None = None, allow_remote: bool = False) -> Any:
    # The scenario schema (pydantic) loads only for the commands that read a scenario.
    from msgstorm.scenario import ScenarioError, load_scenario

    if target is not None or allow_remote:
        from msgstorm.scenario.target_option import target_overrides

        try:
            overrides = overrides + (target_overrides(target, allow_remote) if target is not None
                                     else ["live.allow_remote=true"])
        except ValueError as error:
            _error(str(error))
            raise typer.Exit(ExitCode.BAD_INPUT) from None
    try:
        loaded = load_scenario(path, overrides)
    except ScenarioError as error:
        for issue in error.issues:
            _error(str(issue), soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    return loaded


@app.command(cls=_Command)
def validate(
    scenario: Annotated[Path, typer.Argument(help="scenario TOML file", metavar="SCENARIO.toml")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override dotted.key=value")] = None,
    target: TargetOption = None,
    allow_remote: AllowRemoteOption = False,
) -> None:
    """Check a scenario without running it."""
    from msgstorm.scenario.budget import estimate_work

    loaded = _load(scenario, set_ or [], target, allow_remote)
    _ok(f"{scenario} ({loaded.run.name}: {_count(len(loaded.agents), 'agent')}, "
        f"{_count(len(loaded.faults), 'fault')}, target {loaded.target})")
    out.print(f"estimated work: {estimate_work(loaded).describe()}", highlight=False, soft_wrap=True, markup=False)


@app.command(cls=_Command)
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario TOML file", metavar="SCENARIO.toml")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="run directory (default runs/<UTC time>-<name>, "
                                                 "always new)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the run in a non-empty --out directory "
                                            "(removes history/, summary.json, report.html, windows.csv)")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="override run.seed")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override dotted.key=value (repeatable)")] = None,
    target: TargetOption = None,
    allow_remote: AllowRemoteOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or table")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="an SLO that cannot be judged (no data) fails too")] = False,
    prometheus: Annotated[int | None, typer.Option(
        "--prometheus", metavar="PORT", min=0, max=65535,
        help="serve live metrics at http://127.0.0.1:PORT/metrics while the run goes "
             "(0 picks a free port)")] = None,
    linger: Annotated[float, typer.Option(
        "--prometheus-linger", metavar="SECONDS", min=0,
        help="keep serving the final metrics this long after the run ends")] = 5.0,
) -> None:
    """Run a scenario, write the run directory and print a summary."""
    from msgstorm.analysis import slo_failed
    from msgstorm.report.terminal import print_summary
    from msgstorm.runner import RunDirError, default_run_dir, prepare_run_dir
    from msgstorm.runner import run as run_scenario

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"run.seed={seed}")
    loaded = _load(scenario, overrides, target, allow_remote)
    exporter = _start_exporter(prometheus, loaded) if prometheus is not None else None  # exits 2 on a bad port
    try:
        if out_dir is None:
            run_dir = default_run_dir(loaded)
        else:
            removed = prepare_run_dir(out_dir, overwrite)
            if removed:
                err.print(f"--overwrite: removed {', '.join(removed)} from {out_dir}", highlight=False, markup=False)
            run_dir = out_dir
    except (RunDirError, OSError) as error:
        if exporter is not None:
            exporter.close()
        if isinstance(error, RunDirError):
            _error(f"--out {error}")
        else:
            where = out_dir if out_dir is not None else Path("runs")
            _error(f"{where}: cannot create the run directory: {error.strerror or error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    show_progress = sys.stdout.isatty() and not quiet
    try:
        with _sigterm_as_interrupt():
            observe = exporter.observe if exporter is not None else None
            # The directory is ready (new, empty, or cleared by --overwrite above); other files
            # --overwrite leaves alone stay, so the run is told it may share the directory.
            if show_progress:
                result = _run_with_progress(loaded, run_dir, run_scenario, observe, overwrite)
            else:
                result = run_scenario(loaded, run_dir, observe, overwrite=overwrite)
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
        _error(str(error))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except TargetError as error:
        _error(str(error))
        if (run_dir / "history").is_dir():
            err.print(f"the run never started: {run_dir} keeps the failure and the logs of any server msgstorm "
                      f"started (servers/); msgstorm report {run_dir} says the same", highlight=False, markup=False)
        raise typer.Exit(ExitCode.TARGET_FAILED) from None
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            _error(f"{run_dir}: {error.strerror}: the run stopped; the history in "
                   f"{run_dir / 'history'} keeps every part written before (msgstorm report {run_dir} reads it)")
            raise typer.Exit(ExitCode.OUT_OF_SPACE) from None
        _error(f"{getattr(error, 'filename', None) or run_dir}: {error.strerror or error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    finally:
        if exporter is not None:
            exporter.close()
    if not quiet:
        print_summary(result.summary, out)
    out.print(f"run directory: {result.run_dir} (report: {result.run_dir / 'report.html'})", highlight=False, markup=False)
    if result.summary.get("interrupted"):
        err.print(f"interrupted: the history in {result.run_dir} holds what was recorded before the stop; "
                  f"re-analyse it with: msgstorm report {result.run_dir}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED)
    if slo_failed(result.analysis, strict):
        if quiet:
            _say_failing_slos(result.analysis, strict)
        raise typer.Exit(ExitCode.CHECK_FAILED)


def _say_failing_slos(analysis: Any, strict: bool) -> None:
    """With -q there is no summary table: say on stderr which SLOs make the exit code 1."""
    from msgstorm.analysis import failing_slos
    from msgstorm.scenario.slo import SLO_METRICS

    for entry in failing_slos(analysis, strict):
        value = entry.get("value")
        unit = {"ms": " ms", "per_s": "/s"}.get(SLO_METRICS[entry["name"]][1], "") if entry["name"] in SLO_METRICS else ""
        shown = "no data to judge" if value is None else f"{value:g}{unit}"
        err.print(f"SLO {entry['verdict']}: {entry['name']} = {shown} (wanted {entry['threshold']})",
                  highlight=False, markup=False)


def _no_ray(error: ImportError) -> NoReturn:
    """--ray without Ray installed: say which extra brings it; exit 2."""
    _error(f"--ray: {error}; install the cluster extra: pip install -e '.[cluster]'")
    raise typer.Exit(ExitCode.BAD_INPUT) from None


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
        _error(f"--prometheus {port}: cannot listen on 127.0.0.1:{port} ({error.strerror or error}); "
               "choose a free port (0 picks one)")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    err.print(f"prometheus metrics: {exporter.url}", highlight=False, markup=False)
    return exporter


def _run_with_progress(loaded: Any, out_dir: Path | None, run_scenario: Any, also: Any = None,
                       overwrite: bool = False) -> Any:
    from msgstorm.report.live import LiveProgress, tee

    with LiveProgress(out, span_ns=2 * loaded.run.window) as bar:
        return run_scenario(loaded, out_dir, tee(bar, also), overwrite=overwrite)


@app.command(cls=_Command)
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
        with _sigterm_as_interrupt():
            history = read_history(run_dir)
            failure = history.start_failure
            if failure is not None:
                _error(f"{run_dir}: the run never started, nothing was sent: {failure}")
                raise typer.Exit(ExitCode.TARGET_FAILED)
            if history.cut_off and history.num_rows("messages") == 0:
                live = history.run_info.get("target", "sim") not in (None, "sim")
                hint = ("; a live run writes its messages at the end unless [live] record_every is set "
                        "(then a killed run keeps them)") if live else ""
                if not live or history.num_rows("events") == 0:
                    _error(f"{run_dir}: the run was cut off before any message was recorded; "
                           f"there is nothing to report{hint}")
                    raise typer.Exit(ExitCode.INTERRUPTED)
                # A live run keeps its events as they happen: its servers, faults and outages are reported.
                err.print(f"{run_dir}: the run was cut off before any message was recorded{hint}; "
                          "reporting its events (servers, faults, connections)", highlight=False, markup=False)
            analysis = reanalyse(run_dir, history)
    except FileNotFoundError as error:
        _error(str(error))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except (pa.ArrowException, OSError) as error:
        _error(f"{run_dir}: history unreadable: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except KeyboardInterrupt:
        err.print(f"interrupted: {run_dir} is unchanged where it was not rewritten; run msgstorm report "
                  f"{run_dir} again to finish", highlight=False, markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    if not quiet:
        print_summary(analysis.summary, out)
    out.print(f"report: {run_dir / 'report.html'}", highlight=False, markup=False)
    if analysis.summary.get("cut_off"):
        err.print(f"cut off: {run_dir} was killed before it finished; the numbers cover what was "
                  "flushed to its history (up to about a second before the kill)", highlight=False, markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED)
    if analysis.summary.get("interrupted"):
        # The run exited 3; its report says the same: SLOs judged on part of a run decide nothing.
        err.print(f"interrupted: {run_dir} was stopped (Ctrl-C or SIGTERM) before it finished; the numbers "
                  "cover what was recorded before the stop", highlight=False, markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED)
    if slo_failed(analysis, strict):
        if quiet:
            _say_failing_slos(analysis, strict)
        raise typer.Exit(ExitCode.CHECK_FAILED)


@app.command(cls=_Command)
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
            _error(str(error))
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        except OSError as error:
            _error(f"--html {page_path}: cannot write: {error.strerror or error}")
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
            _error(str(problem), soft_wrap=True)
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
            _error(f"--html {target}: cannot write: {error.strerror or error}")
            raise typer.Exit(ExitCode.BAD_INPUT) from None
    if fail_on_regression and comparison.regressions:
        raise typer.Exit(ExitCode.CHECK_FAILED)


@app.command(cls=_Command)
def calibrate(
    run_dir: Annotated[Path, typer.Argument(help="a step-ramp run directory (live or sim); or `crypto`: measure "
                                            "what signing and verifying one message costs on this machine "
                                            "with each [security] scheme, and store it for runs to use",
                                            metavar="RUN_DIR|crypto")],
    output: Annotated[Path | None, typer.Option("--out", "-o", help="the twin scenario file to write (default: "
                                                "RUN_DIR/twin.toml)", metavar="TWIN.toml")] = None,
    low_load: Annotated[str, typer.Option("--low-load", help="steps offered at most this share of the measured "
                                          "knee are the low-load steps the fit uses")] = "50%",
    check: Annotated[bool, typer.Option("--check", help="also run the twin (into TWIN.toml's name without "
                                        ".toml, as a run directory) and print its knee beside the measured one; "
                                        "exit 1 when it is off by more than 15%, or is not a prediction (it "
                                        "says why)")] = False,
) -> None:
    """Fit a one-node sim twin to a step-ramp run from its low-load steps; write its scenario
    (or, `calibrate crypto`, measure the signing schemes' cost on this machine)."""
    if str(run_dir) == "crypto" and not run_dir.is_dir():
        _calibrate_crypto(output)
        return
    import pyarrow as pa

    from msgstorm.analysis.calibrate import CalibrationError
    from msgstorm.analysis.calibrate import calibrate as fit_twin
    from msgstorm.history import read_history
    from msgstorm.report.twin import write_twin
    from msgstorm.runner import msgstorm_version
    from msgstorm.scenario import ScenarioError
    from msgstorm.scenario.units import parse_fraction

    try:
        fraction = parse_fraction(low_load)
        if not 0 < fraction < 1:
            raise ValueError(f"expected a share of the knee above 0% and below 100%, such as '50%', got {low_load!r}")
    except ValueError as error:
        _error(f"--low-load: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    if output is None:
        output = run_dir / "twin.toml"  # beside the run it was fitted to, never in the working directory
    try:
        history = read_history(run_dir)
        calibration = fit_twin(history, fraction)
    except CalibrationError as error:
        _error(f"{run_dir}: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except FileNotFoundError as error:
        _error(str(error))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except (pa.ArrowException, OSError) as error:
        _error(f"{run_dir}: history unreadable: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    try:
        write_twin(calibration, output, str(run_dir), msgstorm_version())
    except ScenarioError as error:  # the twin is validated before it is written: a bug, but said plainly
        for issue in error.issues:
            _error(f"the twin scenario would not load, so it was not written: {issue}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except OSError as error:
        _error(f"{output}: cannot write: {error.strerror or error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    fit = calibration.service
    if calibration.low_load_note:
        err.print(f"note: {calibration.low_load_note}", highlight=False, markup=False)
    low, high = fit.capacity_range_per_s
    chain = calibration.chain
    if chain is not None:
        out.print(f"low-load step(s) {', '.join(str(s.step) for s in calibration.steps)} (measured knee "
                  f"{calibration.measured_knee_text}), {chain.blocks} blocks: every "
                  f"{chain.measured_interval_ns / 1e6:,.1f} ms, gas limit {chain.gas_limit:,d}, "
                  f"{chain.mean_gas:,.0f} gas a transaction: {chain.capacity_per_s:,.1f}/s; pool order {chain.policy}; "
                  f"base fee target {chain.rule.target:.3f}, at most {chain.rule.max_change:.3f} a block (recomputes the "
                  f"node's {chain.rule.recomputed_pairs} blocks within {chain.rule.recomputed_error:.1e})",
                  highlight=False, markup=False)
    else:
        out.print(f"low-load steps {', '.join(str(s.step) for s in calibration.steps)} (measured knee "
                  f"{calibration.measured_knee_text}): workers {fit.workers}, mean service "
                  f"{fit.mean_service_ns / 1e3:,.1f} us, scv {fit.scv:.2f}, capacity {fit.capacity_per_s:,.0f}/s "
                  f"({low:,.0f}-{high:,.0f}/s), RMS relative error {fit.rms_relative_error:.1%}",
                  highlight=False, markup=False)
    for cpu in calibration.cpu:
        out.print(f"{cpu.server}: {cpu.cpus} CPU(s), idle {cpu.idle_cores:.2f}, {cpu.cpu_per_message_ns / 1e3:,.2f} us "
                  f"of CPU a message: busy on every CPU at {cpu.capacity_per_s:,.0f}/s"
                  + ("" if cpu.linear else " (not used: it idles hot, its CPU per message falls with load)"),
                  highlight=False, markup=False)
    if calibration.bottleneck is not None:
        out.print(f"the twin models {calibration.bottleneck.server}'s CPU, which saturates first",
                  highlight=False, markup=False)
    for doubt in calibration.doubts:
        err.print(f"warning: the twin's knee will not be a prediction: {doubt}", highlight=False, markup=False)
    if calibration.machine_limit:
        err.print(f"note: a twin's knee off the measured one will not be a miss: {calibration.machine_limit}",
                  highlight=False, markup=False)
    out.print(f"twin: {output} (its knee is the prediction: msgstorm run {output})", highlight=False, markup=False)
    if check:
        _check_twin(output, calibration, history)


def _calibrate_crypto(output: Path | None) -> None:
    """Time signing and verifying with each scheme, store it (``--out``, else the default
    place runs read) and print it."""
    from msgstorm.security.costs import costs_path, measure, save_costs

    target = costs_path() if output is None else output
    costs = measure()
    try:
        save_costs(costs, target)
    except OSError as error:
        _error(f"{target}: cannot write: {error.strerror or error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    for name, cost in costs.schemes.items():
        out.print(f"{name}: sign {cost.sign_ns / 1e3:,.2f} us, verify {cost.verify_ns / 1e3:,.2f} us a message "
                  f"({costs.body_bytes} bytes; one core verifies {1e9 / cost.verify_ns:,.0f}/s)",
                  highlight=False, markup=False)
    out.print(f"{costs.library}; stored in {target} (a [security] run without verify_cost uses it"
              + ("" if output is None else f"; point {'MSGSTORM_CRYPTO_COSTS'} at it") + ")",
              highlight=False, markup=False)


def _check_twin(twin: Path, calibration: Any, measured: Any) -> None:
    """Run the twin just written and print its knee against the ``Calibration``'s measured one;
    exit 1 when it is not a prediction (saying why) or is off by more than the tolerance."""
    from msgstorm.analysis.calibrate import PREDICTION_TOLERANCE
    from msgstorm.analysis.chain_fit import base_fee_path
    from msgstorm.analysis.twin_check import check_twin
    from msgstorm.history import read_history
    from msgstorm.runner import run as run_scenario
    from msgstorm.scenario import load_scenario

    run_dir = twin.with_suffix("")
    if run_dir.exists() and any(run_dir.iterdir()):
        _error(f"--check: {run_dir} is not empty; the twin's run goes there")
        raise typer.Exit(ExitCode.BAD_INPUT)
    result = run_scenario(load_scenario(twin), run_dir)
    capacity = result.summary.get("capacity")
    knee = capacity.get("knee_rate_per_s") if isinstance(capacity, dict) else None
    steps = result.analysis.steps
    if steps is None:  # the twin keeps the source's agents, so its ramp: a bug, but said plainly
        _error(f"--check: the twin's run {run_dir} has no step ramp to find a knee on")
        raise typer.Exit(ExitCode.BAD_INPUT)
    chain = calibration.chain
    fees = None if chain is None else base_fee_path(
        measured, read_history(run_dir), chain.initial_base_fee, chain.fee_unit_wei,
        int(calibration.scenario["run"]["duration"]))
    verdict = check_twin(calibration, None if knee is None else float(knee), steps, fees)
    measured = f"measured {calibration.measured_knee_text}"
    if fees is not None:
        out.print(f"base fee, block by block over the ramp's {fees.blocks} blocks: the twin's differs from the "
                  f"node's by at most {fees.max_relative_error:.1%} (block {fees.at_block}); in the last, "
                  f"{fees.twin_last:.6g} against {fees.measured_last:.6g}", highlight=False, markup=False)
    if not verdict.predicted:
        twin_knee = "no knee" if verdict.twin_knee_per_s is None else f"knee {verdict.twin_knee_per_s:,.0f}/s"
        _error(f"--check: twin run {run_dir}: its {twin_knee} is not a prediction of the {measured}:")
        for doubt in verdict.doubts:
            err.print(f"  - {doubt}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.CHECK_FAILED)
    out.print(f"twin run: {run_dir}: predicted knee {verdict.twin_knee_per_s:,.0f}/s, {measured}: "
              f"{verdict.relative_error:+.0%}"
              + (" (the machine's cores were busy with other work at the measured limit, and the target's own limit "
                 "was there too)" if calibration.machine_limit else ""), highlight=False, markup=False)
    if not verdict.within_tolerance:
        _error(f"--check: the twin's knee is off the measured one by more than {PREDICTION_TOLERANCE:.0%}")
        raise typer.Exit(ExitCode.CHECK_FAILED)


@app.command(cls=_Command)
def sweep(
    scenario: Annotated[Path, typer.Argument(help="the scenario file", metavar="SCENARIO.toml")],
    grid: Annotated[list[str] | None, typer.Option("--grid", help="KEY=V1,V2,... (TOML values, as --set takes "
                                                   "them); several --grid: their cartesian product",
                                                   metavar="KEY=V1,V2")] = None,
    zipped: Annotated[bool, typer.Option("--zip", help="pair the grids' values side by side instead")] = False,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="seeds per point: run.seed, run.seed+1, ...")] = 1,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="processes (default: every core)")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="the sweep's directory (default: runs/<time>-<name>); "
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
    loaded = _load(scenario, fixed)
    if loaded.target != "sim":
        _error(f"{scenario}: a sweep runs on the simulator; target {loaded.target!r} is live")
        raise typer.Exit(ExitCode.BAD_INPUT)
    try:
        grids = [parse_grid(text) for text in grid or []]
    except GridError as error:
        _error(str(error))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    out_dir = out_path if out_path is not None else default_run_dir(loaded)
    from msgstorm.report.live import SweepProgress

    bar = SweepProgress(out)

    def started(plan: Any, skipped: int, failed_before: int) -> None:
        bar.start(len(plan.runs) - skipped)
        if not quiet:
            retried = f", {failed_before} failed before: retried" if failed_before else ""
            out.print(f"sweep: {len(plan.points)} point(s) x {len(plan.seeds)} seed(s) = {len(plan.runs)} runs; "
                      f"{skipped} finished before (skipped){retried}, {len(plan.runs) - skipped} to run "
                      "(a run that fails is run once more)", highlight=False, markup=False)

    from msgstorm.scenario import ScenarioError

    try:
        with _sigterm_as_interrupt(), (bar if not quiet else nullcontext()):
            result = run_sweep(scenario, grids, seeds=seeds, zipped=zipped, workers=workers, out_dir=out_dir,
                               keep_runs=keep_runs, sets=fixed, on_outcome=None if quiet else bar,
                               on_start=started, ray=ray, ray_cpus=ray_cpus)
    except (GridError, ScenarioError, SweepDirError) as error:
        for line in getattr(error, "issues", None) or [error]:
            _error(str(line), soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except ImportError as error:
        _no_ray(error)
    except KeyboardInterrupt:
        _error(f"interrupted: what finished is in {out_dir} (sweep.parquet); run the same command to resume")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    retried = f" ({result.failed_before} of them failed before: retried)" if result.failed_before else ""
    out.print(f"{result.ran} run(s) now{retried}, {result.skipped} finished before, {result.failed} failed; "
              f"table {out_dir / 'sweep.parquet'}, points {out_dir / 'sweep.json'}, page "
              f"{out_dir / 'sweep.html'}", highlight=False, markup=False)
    from msgstorm.sweep.quorum import quorum_lines, quorum_points

    for line in quorum_lines(quorum_points(result.table)):  # a sweep under finality by votes
        out.print(line, highlight=False, markup=False)
    if result.failed:
        raise typer.Exit(ExitCode.RUNS_FAILED)


@app.command("safe-leverage", cls=_Command)
def safe_leverage_command(
    scenario: Annotated[Path, typer.Argument(help="a scenario with [market] accounts", metavar="SCENARIO.toml")],
    budget: Annotated[str, typer.Option("--budget", help="bad debt allowed, a share of open interest, e.g. 0.1%")],
    confidence: Annotated[str, typer.Option("--confidence", help="how sure: P(bad debt > budget) <= 1 - this")] = "95%",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="seeds per leverage (the same at every one)")] = 10,
    leverage_range: Annotated[str | None, typer.Option("--range", help="LOW:HIGH leverages searched (default: 1 to "
                                                     "0.99 / maintenance margin, at most 50)",
                                                     metavar="LOW:HIGH")] = None,
    vary: Annotated[str | None, typer.Option("--vary", help="KEY=V1,V2,...: one curve per value (TOML values)",
                                             metavar="KEY=V1,V2")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="processes (default: every core)")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="where to write (default: runs/<time>-<name>); "
                                                  "run again with the same --out to resume", metavar="DIR")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="dotted.key=value for every run",
                                                        metavar="KEY=VALUE")] = None,
    ray: Annotated[str | None, typer.Option("--ray", help="run the seeds as tasks on this Ray cluster: auto or "
                                            "HOST:PORT (pip install -e '.[cluster]')", metavar="ADDRESS")] = None,
) -> None:
    """The highest leverage (one for every account) whose bad debt stays within a budget of
    open interest with the stated confidence; one curve per value of --vary."""
    from msgstorm.runner import default_run_dir
    from msgstorm.scenario import ScenarioError
    from msgstorm.sweep import GridError, parse_grid
    from msgstorm.sweep.leverage import (
        check_search,
        default_range,
        fraction_note,
        parse_range,
        parse_share,
        safe_leverage,
    )
    from msgstorm.sweep.leverage_html import boundary_line, headline, leverage_text

    fixed = list(overrides or [])
    loaded = _load(scenario, fixed)
    try:
        budget_share, sure = parse_share(budget, "--budget"), parse_share(confidence, "--confidence")
        if (note := fraction_note(budget, "--budget")) is not None:
            err.print(note, highlight=False, markup=False)
        low, high = parse_range(leverage_range) if leverage_range is not None else default_range(loaded)
        varied = parse_grid(vary) if vary is not None else None
        check_search(scenario, budget=budget_share, confidence=sure, seeds=seeds, low=low, high=high, vary=varied,
                     sets=fixed)
    except (ValueError, GridError) as error:
        _error(f"safe-leverage: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except ScenarioError as error:
        for line in error.issues:
            _error(str(line), soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    out_dir = out_path if out_path is not None else default_run_dir(loaded)
    from msgstorm.report.live import SweepProgress

    started = time.monotonic()
    bar = SweepProgress(out, label="safe-leverage")
    try:
        with _sigterm_as_interrupt(), bar:
            document = safe_leverage(scenario, budget=budget_share, confidence=sure, seeds=seeds, low=low, high=high,
                                     vary=varied, sets=fixed, workers=workers, out_dir=out_dir, on_outcome=bar,
                                     on_start=lambda most: bar.start(most, at_most=True), ray=ray)
    except (ValueError, GridError, ScenarioError) as error:
        for line in getattr(error, "issues", None) or [error]:
            _error(str(line), soft_wrap=True)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except ImportError as error:
        if ray is None:
            raise
        _no_ray(error)
    except KeyboardInterrupt:
        _error(f"interrupted: the same command with --out {out_dir} resumes")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    out.print(f"safe leverage (one leverage for every account): the highest shown to keep bad debt <= "
              f"{budget_share:.3%} of open interest with {sure:.0%} confidence, {_count(seeds, 'seed')} a leverage "
              f"(a run without a bad-debt share counts as over budget):", highlight=False, markup=False)
    for curve in document["curves"]:
        label = "" if curve["vary"] is None else " " + ", ".join(f"{k} = {v}" for k, v in curve["vary"].items()) + ":"
        out.print(f"{label} {headline(curve, sure)}", highlight=False, markup=False)
        out.print(f"  {boundary_line(curve, sure)}", highlight=False, markup=False)
        if curve["note"] and curve["safe_leverage"] is not None:
            out.print(f"  {curve['note']}", highlight=False, markup=False)
        out.print("  " + "  ".join(f"{leverage_text(p['leverage'])}: {p['exceed']}/{p['runs']}"
                                   + (f" ({p['unmeasured']} unmeasured)" if p["unmeasured"] else "")
                                   for p in curve["points"]), highlight=False, markup=False)
        if curve.get("not_run"):
            out.print(f"  not run (above the lowest shown over, no bearing on the answer): "
                      f"{', '.join(leverage_text(leverage) for leverage in curve['not_run'])}",
                      highlight=False, markup=False)
    out.print(f"{bar.done} runs in {time.monotonic() - started:,.0f} s; {out_dir / 'safe_leverage.json'}, "
              f"{out_dir / 'safe_leverage.html'}", highlight=False, markup=False)


@app.command(cls=_Command)
def schema() -> None:
    """Print the JSON Schema of summary.json."""
    from msgstorm.report.schema import summary_schema_text

    sys.stdout.write(summary_schema_text())


def main() -> None:  # pragma: no cover - console entry (pyproject [project.scripts])
    # At exit the interpreter runs full cycle collections over every object the command left
    # (about 0.3 s after a million-message run). Every file is closed by then, so the objects
    # are frozen out of the collector's sight first; they are freed with the process.
    atexit.register(gc.freeze)
    keep_freed_memory()
    app()
