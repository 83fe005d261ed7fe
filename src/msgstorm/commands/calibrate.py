"""The ``calibrate`` command: fit a one-node sim twin to a step-ramp run (and, with
``--check``, run the twin against the measured knee), or measure what signing costs here.
A validator network's run (a ``heights`` table) gets its consensus's twin instead
(``analysis/comet_fit.py``), and ``--check`` compares it step by step.

A plain function; ``msgstorm.cli`` registers it on the typer app.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from msgstorm.commands.common import (
    err,
    out,
    say_error,
)
from msgstorm.errors import ExitCode

if TYPE_CHECKING:
    from msgstorm.analysis.calibrate import Calibration


def calibrate(
    run_dir: Annotated[Path, typer.Argument(help="a step-ramp run directory (live or sim); or `crypto`: measure "
                                            "what signing and verifying one message costs on this machine "
                                            "with each [security] scheme, and store it for runs to use",
                                            metavar="RUN_DIR|crypto")],
    output: Annotated[Path | None, typer.Option("--out", "-o", help="the twin scenario file to write (default: "
                                                "RUN_DIR/twin.toml); with `crypto`, the file the costs are stored "
                                                "in (default: $MSGSTORM_CRYPTO_COSTS, else the user's cache)",
                                                metavar="TWIN.toml")] = None,
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
    from msgstorm.scenario.units import parse_fraction

    try:
        fraction = parse_fraction(low_load)
        if not 0 < fraction < 1:
            raise ValueError(f"expected a share of the knee above 0% and below 100%, such as '50%', got {low_load!r}")
    except ValueError as error:
        say_error(f"--low-load: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    if output is None:
        output = run_dir / "twin.toml"  # beside the run it was fitted to, never in the working directory
    try:
        history = read_history(run_dir)
        if history.num_rows("heights"):  # a validator network (live cometbft, or sim tendermint)
            _calibrate_comet(history, run_dir, output, fraction, check)
            return
        calibration = fit_twin(history, fraction)
    except CalibrationError as error:
        say_error(f"{run_dir}: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except FileNotFoundError as error:
        say_error(str(error))
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except (pa.ArrowException, OSError) as error:
        say_error(f"{run_dir}: history unreadable: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    _write_twin_or_exit(calibration, output, run_dir)
    _print_fit(calibration)
    out.print(f"twin: {output} (its knee is the prediction: msgstorm run {output})", highlight=False, markup=False)
    if check:
        _check_twin(output, calibration, history)


def _print_fit(calibration: Calibration) -> None:
    """What the fit of a one-node or chain twin found: its steps, service or block figures,
    each server's CPU, and the doubts that keep its knee from being a prediction."""
    from msgstorm.report.text import duration_ms

    fit = calibration.service
    if calibration.low_load_note:
        err.print(f"note: {calibration.low_load_note}", highlight=False, markup=False)
    low, high = fit.capacity_range_per_s
    chain = calibration.chain
    if chain is not None:
        out.print(f"low-load step(s) {', '.join(str(s.step) for s in calibration.steps)} (measured knee "
                  f"{calibration.measured_knee_text}), {chain.blocks} blocks: every "
                  f"{duration_ms(chain.measured_interval_ns / 1e6)}, gas limit {chain.gas_limit:,d}, "
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


def _calibrate_comet(history: Any, run_dir: Path, output: Path, fraction: float, check: bool) -> None:
    """A validator network's twin (``analysis/comet_fit.py``): fit, write, and with ``--check``
    run it and compare the block interval and commit latency step by step."""
    from msgstorm.analysis.comet_costs import costs_lines
    from msgstorm.analysis.comet_fit import fit_comet
    from msgstorm.report.text import duration_ms

    try:
        fit = fit_comet(history, fraction)
    except ValueError as error:
        say_error(f"{run_dir}: the validator network gives no twin: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    _write_twin_or_exit(fit, output, run_dir)
    t = fit.timeouts
    out.print(f"{fit.validators} validators, timeout_commit {duration_ms(t['timeout_commit'] / 1e6)}, propose "
              f"{duration_ms(t['timeout_propose'] / 1e6)}, votes {duration_ms(t['timeout_prevote'] / 1e6)}: block "
              f"interval {duration_ms(fit.intercept_ns / 1e6)} + {fit.per_tx_ns / 1e3:,.1f} us a transaction "
              f"({fit.fit_heights} round-0 heights of steps {', '.join(str(s) for s in fit.fit_steps)}); execution "
              f"{duration_ms(fit.execution_ns / 1e6)}, links {duration_ms(fit.link_latency_ns / 1e6)} "
              f"({fit.link_source})", highlight=False, markup=False)
    if fit.costs is not None:
        for line in costs_lines(fit.costs):
            out.print(line, highlight=False, markup=False)
    for note in fit.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    out.print(f"twin: {output} (msgstorm run {output})", highlight=False, markup=False)
    if check:
        _check_comet(output, fit)


def _check_comet(twin: Path, fit: Any) -> None:
    """Run the validator network's twin; print each step's block interval (median) and commit
    latency (p50), measured against the twin's; exit 1 naming the steps off by more than the
    tolerance, or saying why it is not a prediction."""
    from msgstorm.analysis.calibrate import PREDICTION_TOLERANCE
    from msgstorm.analysis.comet_fit import check_comet, comet_steps
    from msgstorm.history import read_history
    from msgstorm.runner import run as run_scenario
    from msgstorm.scenario import load_scenario

    run_dir = twin.with_suffix("")
    if run_dir.exists() and any(run_dir.iterdir()):
        say_error(f"--check: {run_dir} is not empty; the twin's run goes there")
        raise typer.Exit(ExitCode.BAD_INPUT)
    run_scenario(load_scenario(twin), run_dir)
    try:
        twin_steps, _ = comet_steps(read_history(run_dir))
    except ValueError as error:  # the twin keeps the source's ramp and runs tendermint: a bug, but said plainly
        say_error(f"--check: the twin's run {run_dir}: {error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    verdict = check_comet(fit, twin_steps)

    def ms(ns: float | None) -> str:
        return "-" if ns is None else f"{ns / 1e6:,.0f}"

    def pct(error: float | None) -> str:
        return "-" if error is None else f"{error:+.0%}"

    out.print("step  offered/s   interval ms measured / twin  error   commit p50 ms measured / twin  error",
              highlight=False, markup=False)
    for s in verdict.steps:
        out.print(f"{s.step:4d}  {s.offered_per_s:9,.0f}   {ms(s.measured_interval_ns):>12} / {ms(s.twin_interval_ns):<6}"
                  f"  {pct(s.interval_error):>6}   {ms(s.measured_commit_ns):>14} / {ms(s.twin_commit_ns):<6}"
                  f"  {pct(s.commit_error):>6}" + (f"  not judged: {s.judged}" if s.judged else ""),
                  highlight=False, markup=False)
    if not verdict.predicted:
        say_error(f"--check: twin run {run_dir}: not a prediction:")
        for doubt in verdict.doubts:
            err.print(f"  - {doubt}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.CHECK_FAILED)
    if verdict.off:
        say_error(f"--check: twin run {run_dir}: step(s) {', '.join(str(s) for s in verdict.off)} off the measured "
                  f"block interval or commit latency by more than {PREDICTION_TOLERANCE:.0%}")
        raise typer.Exit(ExitCode.CHECK_FAILED)
    out.print(f"twin run: {run_dir}: every judged step within {PREDICTION_TOLERANCE:.0%} of the measured block interval "
              "and commit latency", highlight=False, markup=False)


def _calibrate_crypto(output: Path | None) -> None:
    """Time signing and verifying with each scheme, store it (``--out``, else the default
    place runs read) and print it."""
    from msgstorm.security.costs import costs_path, measure, save_costs

    target = costs_path() if output is None else output
    costs = measure()
    try:
        save_costs(costs, target)
    except OSError as error:
        say_error(f"{target}: cannot write: {error.strerror or error}")
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
        say_error(f"--check: {run_dir} is not empty; the twin's run goes there")
        raise typer.Exit(ExitCode.BAD_INPUT)
    result = run_scenario(load_scenario(twin), run_dir)
    capacity = result.analysis.result.capacity
    knee = None if capacity is None else capacity.knee_rate_per_s
    steps = result.analysis.steps
    if steps is None:  # the twin keeps the source's agents, so its ramp: a bug, but said plainly
        say_error(f"--check: the twin's run {run_dir} has no step ramp to find a knee on")
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
        say_error(f"--check: twin run {run_dir}: its {twin_knee} is not a prediction of the {measured}:")
        for doubt in verdict.doubts:
            err.print(f"  - {doubt}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.CHECK_FAILED)
    out.print(f"twin run: {run_dir}: predicted knee {verdict.twin_knee_per_s:,.0f}/s, {measured}: "
              f"{verdict.relative_error:+.0%}"
              + (" (the machine's cores were busy with other work at the measured limit, and the target's own limit "
                 "was there too)" if calibration.machine_limit else ""), highlight=False, markup=False)
    if not verdict.within_tolerance:
        say_error(f"--check: the twin's knee is off the measured one by more than {PREDICTION_TOLERANCE:.0%}")
        raise typer.Exit(ExitCode.CHECK_FAILED)


def _write_twin_or_exit(fit: Any, output: Path, run_dir: Path) -> None:
    """Write the twin scenario of ``fit`` (a ``Calibration`` or a ``CometFit``) to ``output``;
    a twin that would not load (validated before it is written: a bug, but said plainly) or a
    file that cannot be written exits with BAD_INPUT, saying why."""
    from msgstorm.report.twin import write_twin
    from msgstorm.runner import msgstorm_version
    from msgstorm.scenario import ScenarioError

    try:
        write_twin(fit, output, str(run_dir), msgstorm_version())
    except ScenarioError as error:
        for issue in error.issues:
            say_error(f"the twin scenario would not load, so it was not written: {issue}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    except OSError as error:
        say_error(f"{output}: cannot write: {error.strerror or error}")
        raise typer.Exit(ExitCode.BAD_INPUT) from None
