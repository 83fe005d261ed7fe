"""Calibration: fit a one-node simulator twin to a step-ramp run, from its low-load steps only.

A chain node's run (its blocks carry gas limits: the ``anvil`` target) gets the twin of its
chain instead, its rules read from the low-load steps' blocks (``analysis/chain_fit.py``);
its blocks come at the node's own pace (``analysis/node_pace.py``), and its knee is a
prediction only when the measured one is the chain's, not msgstorm's sending limit or the
machine's (``_chain_doubts``; a machine busy with other work: ``machine_limit``, a doubt
when the twin misses). What follows is the one-queue model of the rest.

Place in the pipeline: ``msgstorm calibrate RUN_DIR`` -> **calibrate(history)** ->
``Calibration`` -> ``report/twin.py`` writes the twin scenario. Like every analysis it reads
only the history: the ramp's steps and knee come from ``capacity``, the messages' stage times
from the ``messages`` table.

The model (what the twin is): one serialising resource, ``workers`` servers with a service
time of mean ``s`` and squared coefficient of variation ``scv`` (an M/G/c queue), plus a
delay that does not queue. Which resource serialises depends on the target, and the history
shows its queue either way: a message's *wait* is the time it waited for a busy resource,

- ``t_sent - t_intended``: the send lag. Live, the generator, the client library and the
  consumers share one Python thread (one event loop), so a message whose send time has come
  waits while that thread works on earlier messages;
- ``t_dequeued - t_received``: the sequencer's queue wait, where the target observes it (sim).

The fit, over the low-load steps only (those offered at most ``low_load_fraction`` of the
measured knee; the knee chooses them and is otherwise not used, so the twin's knee is a
prediction, not a copy):

1. per step, the offered rate, the mean wait of its committed messages and, where the wait
   is a queue's (exactly 0 for a message that found a server free), the share that waited;
2. for each candidate ``workers`` c (1..``MAX_WORKERS``) and mean service s, the
   Allen-Cunneen M/G/c mean wait ``C(c, lambda*s) / (c/s - lambda) * (1 + scv) / 2`` (Erlang C),
   with ``scv`` solved in closed form (least squares on relative errors), and the share that
   waits, ``C(c, lambda*s)``; the pair with the smallest RMS relative error over both wins, the
   fewest workers among near-equal fits. The share pins the utilisation down far better than
   the mean wait's curvature does, but a live send lag is never exactly 0 (the generator's
   wake-up granularity), so there the mean wait alone has to do;
3. the delay that does not queue, as the twin's commit wait (blocks every ``interval``:
   uniform between 0 and the interval), sized so the twin's low-load p99 equals the measured
   one, because the knee's latency bar is a multiple of exactly that p99: the same rule
   (``capacity.low_load_p99``: the least of the first steps' p99s), over the same
   steps, each step's latency modelled as its measured waits + the fitted service + the
   commit wait. The interval then divides the ramp's step into whole blocks: the knee counts
   a step's throughput as the commits in a window one step long, and a window holds
   ``every / interval`` block ticks, rounded down or up by where the ticks fall. With 3 s
   steps and 203.6 ms blocks that is 14 or 15 blocks, so a step at 40% utilisation showed
   94.5% of its offered rate and failed the knee's 95% (the twin of ``examples/ramp.toml``,
   whose own 200 ms blocks divide its 3 s steps, came out at its first step, -80%).

Whether the twin's knee is a prediction (``doubts``; ``analysis/twin_check.py`` adds the
twin run's own): not when the low steps do not pin the capacity to within
``PREDICTION_TOLERANCE`` (the fits as good as the best span more than that either side of it,
or the queue is not identified), and not when the measured ramp passed every step (its knee
is a lower bound) or passed again after its first failing step (its knee was set by a stall
that passed, not by saturation: a live run on a busy machine, where the same run again puts
the knee elsewhere; nothing in the low steps says where a stall falls).

A second resource, where the history shows it: the CPU of each server msgstorm started for a
live run (``cpu_seconds`` events, ``analysis/cpu.py``). By the utilisation law a server's
busy CPUs grow linearly with the rate it carries, ``U = idle + rate * D`` (``D`` its CPU per
message), so a straight line through the low steps' mean CPUs says at which rate it would be
busy on every CPU it may run on (``cpus``, its GOMAXPROCS): ``(cpus - idle) / D``. That line
is visible at low load, where a queue's curvature is not: a broker whose ack latency turns
from milliseconds to hundreds within one step (a server on one core) shows no sign of it in
the low steps' waits, but its CPU does. The twin models whichever resource the fits say
saturates first (the lowest capacity): the wait's queue, or that server as ``cpus`` workers
with an exponential service time of mean ``cpus / capacity`` (the CPU samples give the mean
cost, not its spread). Only a line whose intercept is a small part of the CPU it explains
counts (``MAX_IDLE_SHARE``): a server whose CPU per message falls as load grows (batching,
a Go runtime that spins before it parks) idles hot on the line and keeps up well past the
rate where the line reaches its CPUs. nats-server is such a server (busy 0.6 CPU at
10,000/s and 0.9 at 50,000/s on a JetStream ramp whose knee was 100,000/s): for it the
samples say how busy it was, not where it ends.

How much the low steps pin down: the waits' growth is nearly linear in the rate at low
utilisation, and only its curvature (the ``1/(1 - rho)``) says where the queue saturates.
``capacity_range_per_s`` spans the fits whose error is within ``RANGE_TOLERANCE`` of the best.
When the best fit's utilisation at the highest low step stays under ``MIN_UTILISATION`` the
capacity is not identified (``identified`` false): the fit is then the lowest capacity in that
range, so the twin's knee is a lower estimate, and the twin's header says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from msgstorm.analysis._common import F64, I64, Bools, MessageArrays, percentile
from msgstorm.analysis._intervals import IntervalLoad
from msgstorm.analysis.capacity import (
    capacity,
    find_step_ramp,
    low_load_p99,
    saturated_intervals,
    step_p99_ns,
)
from msgstorm.analysis.chain_fit import ChainFit, chain_blocks, fit_chain
from msgstorm.analysis.cpu import process_cpu
from msgstorm.analysis.node_pace import NodePace, node_pace
from msgstorm.history.reader import History

__all__ = [
    "DEFAULT_LOW_LOAD_FRACTION",
    "MIN_LOW_LOAD_STEPS",
    "PREDICTION_TOLERANCE",
    "Calibration",
    "CalibrationError",
    "CpuFit",
    "LowLoadStep",
    "ServiceFit",
    "calibrate",
    "commensurate_interval_ns",
    "erlang_c",
    "machine_limit",
    "mgc_mean_wait_ns",
    "service_table",
]

DEFAULT_LOW_LOAD_FRACTION = 0.5
# Two unknowns of the queue (mean service and its variability) and one degree of freedom
# left to judge the fit by.
MIN_LOW_LOAD_STEPS = 3
MAX_WORKERS = 8
# A server's CPU line is believed when its intercept (CPUs busy at no load) is at most this
# share of the CPUs busy at the highest low step.
MAX_IDLE_SHARE = 0.25
# Under 5% utilisation at the highest low step, the curvature of the waits (1/(1 - rho) is
# at most 1.05) is below the noise of a live run: the steps do not say where the queue ends.
MIN_UTILISATION = 0.05
_GRID_MIN_UTILISATION = 0.01
# Fits this close to the best (in RMS relative error) are as good given a run's noise.
RANGE_TOLERANCE = 0.02
# How far the twin's knee may be from the measured one (either way) and still count as
# predicted; the capacities the low steps allow must lie this close to the fit's for the
# twin's knee to be a prediction at all.
PREDICTION_TOLERANCE = 0.15
# A fit with more workers replaces one with fewer only when clearly better.
PARSIMONY_TOLERANCE = 0.005
# Squared coefficients of variation written as a constant / an exponential service time
# (within a factor 1.5 of an exponential's 1: Allen-Cunneen is approximate for several
# workers, and a step's mean wait is noisy); anything else is a lognormal with the fitted
# mean and scv.
CONSTANT_SCV, EXPONENTIAL_SCV = 0.05, (1 / 1.5, 1.5)
# The shortest commit interval the twin gets: every block is two events in its history.
MIN_BLOCK_INTERVAL_NS = 200_000
_GRID_POINTS = 400
_MONTE_CARLO_DRAWS = 200_000
_MONTE_CARLO_SEED = 20240601  # a fixed stream: the same history gives the same twin


class CalibrationError(ValueError):
    """The history cannot give a twin; the message says why and what would."""


@dataclass(frozen=True)
class LowLoadStep:
    """One ramp step used by the fit."""

    step: int  # 1-based, as in ``analysis.steps``
    offered_per_s: float
    messages: int  # committed messages intended in the step
    mean_wait_ns: float  # measured
    fitted_wait_ns: float  # the M/G/c model's
    waited_share: float | None  # measured share of messages that queued (None: not observable)
    fitted_waited_share: float | None  # the model's (Erlang C)
    mean_latency_ns: float
    p99_latency_ns: float


@dataclass(frozen=True)
class ServiceFit:
    """The serialising resource: ``workers`` servers, service mean and scv."""

    workers: int
    mean_service_ns: float
    scv: float  # squared coefficient of variation of the service time
    rms_relative_error: float  # of the fitted mean waits over the low-load steps
    capacity_range_per_s: tuple[float, float]  # fits within RANGE_TOLERANCE of the best
    # False: the best fit's utilisation at the highest low step is under MIN_UTILISATION (the
    # waits grow about linearly), and the fit is the lowest capacity in the range.
    identified: bool

    @property
    def capacity_per_s(self) -> float:
        return self.workers * 1e9 / self.mean_service_ns

    def utilisation(self, rate_per_s: float) -> float:
        return rate_per_s * self.mean_service_ns / 1e9 / self.workers


@dataclass(frozen=True)
class CpuFit:
    """A server's busy CPUs over the low-load steps, fitted by the utilisation law
    ``cores = idle_cores + rate * cpu_per_message``; it saturates at ``cpus``."""

    server: str
    cpus: int  # how many CPUs it may run on at once (its GOMAXPROCS; 1 for redis-server)
    idle_cores: float  # CPUs busy at no load (the line's intercept; timers, GC, the store's flushes)
    cpu_per_message_ns: float  # the line's slope
    step_cores: tuple[float, ...]  # measured, per low-load step
    rms_error_cores: float  # of the line over those steps
    # False: the intercept is more than MAX_IDLE_SHARE of the CPUs busy at the highest low step.
    # A server that idles that hot is one whose CPU per message falls as the load grows (it
    # batches reads and writes, its runtime spins before it sleeps: nats-server on this ramp
    # is 0.14 CPU busy at 500/s and 0.6 at 10,000/s), so the line does not say where it
    # saturates, and the twin does not model it.
    linear: bool

    @property
    def capacity_per_s(self) -> float:
        return (self.cpus - self.idle_cores) / self.cpu_per_message_ns * 1e9

    def cores(self, rate_per_s: float) -> float:
        return self.idle_cores + rate_per_s * self.cpu_per_message_ns / 1e9


@dataclass(frozen=True)
class Calibration:
    """What ``calibrate`` found: the fit, the steps it used and the twin's settings."""

    @property
    def measured_knee_text(self) -> str:
        """The measured knee as the command and the twin's header say it."""
        knee = self.measured_knee_per_s
        return "none (the first step failed)" if knee is None else f"{knee:,.0f}/s"

    scenario_name: str
    target: str
    seed: int
    # None: the measured ramp's first step already failed (a chain's twin is still fitted:
    # its blocks show its rules at any load; its doubts then say why there is no prediction).
    measured_knee_per_s: float | None
    low_load_fraction: float
    wait_source: str  # which stage columns measured the wait
    steps: tuple[LowLoadStep, ...]
    service: ServiceFit  # the wait's queue
    cpu: tuple[CpuFit, ...]  # each server's CPU line (live runs whose servers msgstorm started)
    # What the twin models: None, the wait's queue (``service``); else the server of ``cpu``
    # whose line saturates first, at a lower rate than the wait's queue.
    bottleneck: CpuFit | None
    workers: int  # the twin's sequencer workers
    service_dist: dict[str, Any]  # the twin's service time, a DurationDist table in ns: {"dist": "lognormal", ...}
    block_interval_ns: int  # the twin's commit wait: uniform in [0, interval); divides step_ns
    step_ns: int  # the ramp's step length
    baseline_steps: tuple[int, ...]  # 1-based: the steps whose p99s give the low-load p99
    low_load_p99_ns: float  # measured (the knee's rule); the twin's block interval is sized to it
    twin_low_load_p99_ns: float  # the model's, by the same rule over the same steps' draws
    twin_low_load_mean_latency_ns: float  # the model's mean at the first step
    scenario: dict[str, Any]  # the source run's validated scenario (normalised units)
    low_load_note: str = ""  # how the low-load steps were chosen, when not by the share alone
    # Why the twin's knee is not a prediction of the measured one (empty: it is), from the fit
    # and the measured ramp; ``analysis/twin_check.py`` adds the twin run's own.
    doubts: tuple[str, ...] = ()
    # A chain node's run: the twin is its simulated EIP-1559 chain (``analysis/chain_fit.py``),
    # not the one-queue model (``service`` then describes msgstorm's sender only).
    chain: ChainFit | None = None
    # A chain node's pace as it ran (``analysis/node_pace.py``): its block timer (the twin's
    # blocks), and its answers (said, not modelled: the module says why).
    pace: NodePace | None = None
    # Not empty: the measured ramp's first failing step found the machine's cores busy with
    # other work (``capacity``'s ``limited_by`` "machine"), and this says so. A doubt only when
    # the twin's knee misses the measured one (``analysis/twin_check.py``): a twin that agrees
    # shows the target's own limit was there too.
    machine_limit: str = ""


def erlang_c(workers: int, offered_erlangs: F64) -> F64:
    """Probability that an arrival waits in M/M/c (Erlang C), by the stable Erlang B recursion."""
    blocking = np.ones_like(offered_erlangs)
    for k in range(1, workers + 1):
        blocking = offered_erlangs * blocking / (k + offered_erlangs * blocking)
    rho = offered_erlangs / workers
    result: F64 = blocking / (1.0 - rho * (1.0 - blocking))
    return result


def mgc_mean_wait_ns(rate_per_s: F64, workers: int, mean_service_ns: float, scv: float) -> F64:
    """Allen-Cunneen mean wait in queue of M/G/c (exact for c = 1: Pollaczek-Khinchine)."""
    service_s = mean_service_ns / 1e9
    offered = rate_per_s * service_s
    mmc_s = erlang_c(workers, offered) / (workers / service_s - rate_per_s)
    wait: F64 = mmc_s * (1.0 + scv) / 2.0 * 1e9
    return wait


def calibrate(history: History, low_load_fraction: float = DEFAULT_LOW_LOAD_FRACTION) -> Calibration:
    """Fit the twin from the history's step ramp; ``CalibrationError`` when it cannot."""
    if not 0.0 < low_load_fraction < 1.0:
        raise CalibrationError(f"the low-load fraction must be between 0 and 1 (e.g. 50%), got {low_load_fraction:g}")
    if history.num_rows("messages") == 0:
        raise CalibrationError("the history holds no messages")
    messages = MessageArrays.from_history(history)
    # A chain node's blocks show its rules at any load: one low step is enough for its twin.
    on_chain = chain_blocks(history) is not None
    knee, chosen, load, note, passed = _low_load_steps(history, messages, low_load_fraction,
                                                       1 if on_chain else MIN_LOW_LOAD_STEPS)
    wait_ns, queued, wait_source = _waits(messages)
    measured = [_measure_step(messages, load, index, wait_ns, queued) for index in chosen]
    rates = np.asarray([m.offered_per_s for m in measured], dtype=np.float64)
    mean_waits = np.asarray([m.mean_wait_ns for m in measured], dtype=np.float64)
    if not np.any(mean_waits > 0):
        raise CalibrationError(f"no message of the low-load steps waited ({wait_source} is zero throughout): "
                               "nothing shows a queue to fit")
    shares = None if queued is None else np.asarray([m.waited_share for m in measured], dtype=np.float64)
    service = _fit_service(rates, mean_waits, shares)
    fitted = mgc_mean_wait_ns(rates, service.workers, service.mean_service_ns, service.scv)
    fitted_shares = erlang_c(service.workers, rates * service.mean_service_ns / 1e9)
    steps = tuple(replace(m, fitted_wait_ns=float(wait), fitted_waited_share=None if shares is None else float(share))
                  for m, wait, share in zip(measured, fitted, fitted_shares))
    cpu = _fit_cpu(history, load, chosen, rates)
    try:
        chain = fit_chain(history, int(load.starts[chosen[0]]), int(load.ends[chosen[-1]]))
    except ValueError as error:
        raise CalibrationError(f"the chain node's blocks give no twin: {error}") from None
    ramp = find_step_ramp(history.scenario)
    if chain is not None and ramp is not None:
        return _chain_calibration(history, chain, ramp.every_ns, knee, low_load_fraction, wait_source, steps, service,
                                  cpu, load, chosen, messages, note, passed)
    bottleneck = min((fit for fit in cpu if fit.linear), key=lambda fit: fit.capacity_per_s, default=None)
    if bottleneck is not None and bottleneck.capacity_per_s >= service.capacity_per_s:
        bottleneck = None
    if bottleneck is None:
        workers = service.workers
        dist, draw = _service_dist(service.mean_service_ns, service.scv)
    else:
        workers = min(bottleneck.cpus, MAX_WORKERS)
        dist, draw = _service_dist(workers / bottleneck.capacity_per_s * 1e9, 1.0)
    # The knee's own low-load p99: the same rule over the same steps (capacity.py).
    saturated = saturated_intervals(history, messages, load.edges)
    measured_p99_ns, baseline = low_load_p99(step_p99_ns(load), saturated or [False] * load.count)
    if measured_p99_ns is None or ramp is None:  # capacity found a knee, so neither happens
        raise CalibrationError("the ramp has no low-load p99 to size the twin's commit wait to")
    interval, twin_p99, twin_mean = _block_interval(
        [wait_ns[_inside(messages, load, index)] for index in baseline], draw, measured_p99_ns, ramp.every_ns)
    scenario = history.scenario
    run = scenario.get("run") or {}
    return Calibration(
        scenario_name=str(run.get("name", "")), target=str(history.run_info.get("target") or scenario.get("target")),
        seed=int(run.get("seed") or 0), measured_knee_per_s=float(knee["knee_rate_per_s"]),
        low_load_fraction=low_load_fraction,
        wait_source=wait_source, steps=steps, service=service, cpu=cpu, bottleneck=bottleneck, workers=workers,
        service_dist=dist, block_interval_ns=interval, step_ns=ramp.every_ns,
        baseline_steps=tuple(index + 1 for index in baseline), low_load_p99_ns=measured_p99_ns,
        twin_low_load_p99_ns=twin_p99, twin_low_load_mean_latency_ns=twin_mean, scenario=scenario,
        low_load_note=note, doubts=_fit_doubts(service, bottleneck) + _ramp_doubts(passed),
        machine_limit=machine_limit(knee))


def _chain_calibration(history: History, chain: ChainFit, step_ns: int, knee: dict[str, Any], fraction: float,
                       wait_source: str, steps: tuple[LowLoadStep, ...], service: ServiceFit, cpu: tuple[CpuFit, ...],
                       load: IntervalLoad, chosen: list[int], messages: MessageArrays, note: str,
                       passed: list[bool]) -> Calibration:
    """The twin of a chain node: its fitted chain, blocks at the node's pace over the steps
    the knee credited, the pool as one worker at the chain's rate. At low load a transaction
    waits for the next block, so the model's latency is the worker's service plus a uniform
    wait up to the interval: its p99 is that service plus 99% of the interval."""
    blocks = chain_blocks(history)
    assert blocks is not None  # fit_chain found them
    first_failing = next((index for index, ok in enumerate(passed) if not ok), len(passed))
    try:
        pace = node_pace(history.scenario, blocks, messages, load, list(range(first_failing)) or chosen)
    except ValueError as error:
        raise CalibrationError(f"the chain node's pace gives no twin: {error}") from None
    # The node's own block timer, not a length that divides the step: the knee credits each
    # step with its own messages (capacity.py), so a block landing in the next step costs none.
    interval = max(1, round(pace.block_interval_ns / 1_000) * 1_000)
    service_ns = chain.service_ns(interval)
    saturated = saturated_intervals(history, messages, load.edges)
    p99s = step_p99_ns(load)
    measured_p99_ns, baseline = low_load_p99(p99s, saturated or [False] * load.count)
    if measured_p99_ns is None:  # the generator was behind at every step: the first step's, for the header
        measured_p99_ns, baseline = p99s[0], [0]
    if measured_p99_ns is None:
        raise CalibrationError("the ramp's first step committed nothing: no latency to compare the twin's with")
    scenario = history.scenario
    run = scenario.get("run") or {}
    return Calibration(
        scenario_name=str(run.get("name", "")), target=str(history.run_info.get("target") or scenario.get("target")),
        seed=int(run.get("seed") or 0), low_load_fraction=fraction,
        measured_knee_per_s=None if knee["knee_rate_per_s"] is None else float(knee["knee_rate_per_s"]),
        wait_source=wait_source, steps=steps, service=service, cpu=cpu, bottleneck=None, workers=1,
        service_dist={"dist": "constant", "value": service_ns}, block_interval_ns=interval, step_ns=step_ns,
        baseline_steps=tuple(index + 1 for index in baseline), low_load_p99_ns=measured_p99_ns,
        twin_low_load_p99_ns=service_ns + 0.99 * interval, twin_low_load_mean_latency_ns=service_ns + 0.5 * interval,
        scenario=scenario, low_load_note=note, doubts=_chain_doubts(knee) + _ramp_doubts(passed), chain=chain,
        pace=pace, machine_limit=machine_limit(knee))


def machine_limit(knee: dict[str, Any]) -> str:
    """Why a measured knee may be the machine's (``capacity``'s ``limited_by`` "machine": its
    cores busy with work outside the run at the first failing step; "" when it is not). Such
    a target waited for CPUs others held, which nothing in the run's own traffic decides and
    no twin predicts."""
    if knee.get("limited_by") != "machine":
        return ""
    at_limit = knee.get("at_limit") or {}
    ours = sum(float(cores) for cores in (at_limit.get("cpu_busy") or {}).values())
    return (f"the measured knee is this machine's, not the target's: at step {at_limit.get('step')} "
            f"({float(at_limit.get('offered_per_s') or 0):,.0f}/s offered) its cores were busy "
            f"{float(at_limit.get('machine_busy') or 0):.2f} of {at_limit.get('machine_cpus')}, msgstorm's processes "
            f"and the servers it started only {ours:.2f} of them: other work held the CPUs they waited for, and the "
            "twin's knee does not predict that (run again on a quieter machine)")


def _chain_doubts(knee: dict[str, Any]) -> tuple[str, ...]:
    """A chain twin predicts the chain's knee; a measured knee set by msgstorm's sending (the
    generator behind at the first failing step) or by the machine's CPUs busy with the run's
    processes is not the chain's (busy with other work: ``machine_limit``)."""
    limited_by, at_limit = knee.get("limited_by"), knee.get("at_limit") or {}
    if limited_by not in ("generator", "machine CPU"):
        return ()
    busy = ", ".join(f"{name} {cores:.2f}" for name, cores in (at_limit.get("cpu_busy") or {}).items())
    where = (f"at step {at_limit.get('step')} ({float(at_limit.get('offered_per_s') or 0):,.0f}/s offered; median "
             f"send lag {at_limit.get('send_lag_p50_ms')} ms; CPUs busy: {busy or 'not sampled'} of "
             f"{at_limit.get('machine_cpus') or '?'})")
    if limited_by == "generator":
        return (f"the measured knee is msgstorm's sending limit on this machine, not the chain's: the generator "
                f"could not keep the schedule {where}; the twin models the chain, so its knee does not predict that",)
    return (f"the measured knee is this machine's: its CPUs were busy {where}, not the chain's limit; the twin "
            "models the chain, so its knee does not predict that",)


def _fit_doubts(service: ServiceFit, bottleneck: CpuFit | None) -> tuple[str, ...]:
    """Why the fit does not pin the twin's capacity down to ``PREDICTION_TOLERANCE``. Where
    the twin models a server's CPU line instead (believed only when ``linear``), the wait's
    range says nothing of that capacity."""
    if bottleneck is not None:
        return ()
    low, high = service.capacity_range_per_s
    fitted = service.capacity_per_s
    if not service.identified:
        return (f"the low-load steps' waits grow about linearly with the rate (utilisation under "
                f"{MIN_UTILISATION:.0%} at the highest low step), so they do not show where the queue saturates: "
                f"fits as good as the best put its capacity anywhere from {low:,.0f} to {high:,.0f}/s",)
    if low < (1 - PREDICTION_TOLERANCE) * fitted or high > (1 + PREDICTION_TOLERANCE) * fitted:
        return (f"fits as good as the best (RMS error within {RANGE_TOLERANCE:.0%} of it) put the capacity anywhere "
                f"from {low:,.0f} to {high:,.0f}/s, beyond {PREDICTION_TOLERANCE:.0%} either side of the fit's "
                f"{fitted:,.0f}/s: the low-load steps do not pin it down that closely",)
    return ()


def _ramp_doubts(passed: list[bool]) -> tuple[str, ...]:
    """A measured ramp that passed every step (its knee is a lower bound), or that passed
    again after its first failing step: then its knee was set by a stall that passed, not by
    a queue that saturated, and nothing in the low steps says where a stall falls."""
    first_failing = next((index for index, ok in enumerate(passed) if not ok), None)
    if first_failing == 0:
        return ("the measured ramp's first step already failed: it has no knee to predict",)
    if first_failing is None:
        return ("the measured ramp passed every step: its knee lies past the ramp's last step, so the measured "
                "knee is only a lower bound (a longer ramp would find it)",)
    again = [index + 1 for index in range(first_failing + 1, len(passed)) if passed[index]]
    if not again:
        return ()
    return (f"the measured ramp passed again after its first failing step {first_failing + 1} "
            f"(step{'s' if len(again) > 1 else ''} {', '.join(str(step) for step in again)}): its knee was set "
            "by a stall that passed (a busy machine), not by a queue that saturated, and the same run again "
            "would put it elsewhere",)


def _low_load_steps(history: History, messages: MessageArrays, fraction: float,
                    minimum: int) -> tuple[dict[str, Any], list[int], IntervalLoad, str, list[bool]]:
    """(measured knee as ``capacity`` gives it, indices of the low-load steps, the ramp's steps, a note, whether each
    step passed): the passing steps offered at most ``fraction`` of the knee; when fewer than
    ``minimum`` are, the lowest passing steps below the knee, and the note says so."""
    knee, table, load = capacity(history, messages)
    if knee is None or table is None or load is None:
        raise CalibrationError("the run has no step ramp (an agent with arrival process 'step_ramp'): "
                               "calibration reads the capacity knee and the steps below it")
    knee_rate = knee["knee_rate_per_s"]
    passed_steps = [bool(ok) for ok in table.column("passed").to_pylist()]
    if minimum == 1 and (knee_rate is None or not (passed_steps[0] and table.column("offered_per_s")[0].as_py()
                                                   <= fraction * knee_rate)):
        # A chain's rules show in the first step's blocks whatever the knee: a ramp whose
        # knee came out at or before its first step (a busy machine) still gives its twin.
        return knee, [0], load, ("the ramp's first step is not offered under the share of a knee (a first step that "
                                 "failed, or the knee): the fit reads its blocks"), passed_steps
    if knee_rate is None:
        behind = (" (there the generator could not keep the schedule: the knee is msgstorm's sending limit on this "
                  "machine, not the target's, and no twin predicts it)" if knee.get("limited_by") == "generator" else "")
        raise CalibrationError(f"the ramp's first step already fails the knee criterion{behind}, so there are no "
                               "low-load steps: start the ramp lower")
    chosen: list[int] = []
    below: list[int] = []  # passing steps offered below the knee, in order
    for index, (rate, passed) in enumerate(zip(table.column("offered_per_s").to_pylist(),
                                               table.column("passed").to_pylist())):
        if not passed:
            break
        if rate < knee_rate:
            below.append(index)
        if rate <= fraction * knee_rate:
            chosen.append(index)
    note = ""
    if len(chosen) < minimum <= len(below):
        # A knee that came out low (a busy machine) leaves too few steps under the share: the
        # lowest passing steps below the knee still show the queue's growth, nearer saturation.
        note = (f"only {len(chosen)} step(s) offered at most {fraction:.0%} of the measured knee "
                f"({knee_rate:,.0f}/s): the fit uses the lowest {minimum} passing steps below it")
        chosen = below[:minimum]
    if len(chosen) < minimum:
        raise CalibrationError(
            f"only {len(chosen)} step(s) offered at most {fraction:.0%} of the measured knee "
            f"({knee_rate:,.0f}/s), and {len(below)} passing below it; the fit needs at least "
            f"{minimum}: use a finer ramp (smaller 'step', lower 'start') or a higher --low-load fraction")
    return knee, chosen, load, note, passed_steps


def _fit_cpu(history: History, load: IntervalLoad, chosen: list[int], rates: F64) -> tuple[CpuFit, ...]:
    """Each sampled server's CPU line over the low-load steps (by least squares); a server
    whose CPU does not grow with the rate, or that is busier at no load than it can be at
    all, has no line (it does not saturate with the load, or the samples are not of it)."""
    fits: list[CpuFit] = []
    for name, samples in process_cpu(history).items():
        if samples.cpus is None or samples.cpus < 1:
            continue  # msgstorm's own process, or a server that did not say its CPUs
        cores = [samples.cores(int(load.starts[index]), int(load.ends[index])) for index in chosen]
        if any(c is None for c in cores):
            continue  # the samples do not cover every low step (the server died, a short run)
        measured = np.asarray(cores, dtype=np.float64)
        slope, intercept = np.polyfit(rates, measured, 1)
        if not slope > 0 or intercept >= samples.cpus:
            continue
        residual = measured - (intercept + slope * rates)
        fits.append(CpuFit(server=name, cpus=samples.cpus, idle_cores=float(intercept),
                           cpu_per_message_ns=float(slope) * 1e9, step_cores=tuple(float(c) for c in measured),
                           rms_error_cores=float(np.sqrt(np.mean(residual**2))),
                           linear=bool(intercept <= MAX_IDLE_SHARE * measured[-1])))
    return tuple(fits)


def _inside(messages: MessageArrays, load: IntervalLoad, index: int) -> Bools:
    """Committed messages intended in step ``index``."""
    intended = messages.t_intended
    inside: Bools = messages.committed & (intended >= load.starts[index]) & (intended < load.ends[index])
    return inside


def _measure_step(messages: MessageArrays, load: IntervalLoad, index: int, wait_ns: I64,
                  queued: Bools | None) -> LowLoadStep:
    inside = _inside(messages, load, index)
    latency = messages.t_committed.values[inside] - messages.t_intended[inside]
    if latency.size == 0:
        raise CalibrationError(f"step {index + 1} committed no message")
    return LowLoadStep(
        step=index + 1, offered_per_s=float(load.offered_per_s[index]), messages=int(latency.size),
        mean_wait_ns=float(wait_ns[inside].mean()), fitted_wait_ns=math.nan,
        waited_share=None if queued is None else float(queued[inside].mean()), fitted_waited_share=None,
        mean_latency_ns=float(latency.mean()), p99_latency_ns=percentile(latency, 99.0))


def _waits(messages: MessageArrays) -> tuple[I64, Bools | None, str]:
    """Each message's wait for a serialising resource (ns; 0 where no stage shows one), and
    whether it waited at all when that is observable: a queue's wait is exactly 0 for a
    message that found a server free, while a live generator's send lag never is (its
    wake-up granularity), so there only the mean wait counts."""
    wait = np.zeros(messages.count, dtype=np.int64)
    sources = []
    sent = messages.t_sent
    lagged = bool(np.any(sent.present & (sent.values > messages.t_intended)))
    if lagged:
        wait += np.where(sent.present, np.maximum(sent.values - messages.t_intended, 0), 0)
        sources.append("send lag (t_sent - t_intended)")
    dequeued, received = messages.t_dequeued, messages.t_received
    both = dequeued.present & received.present
    queued: Bools | None = None
    if np.any(both):
        queue_wait = np.where(both, np.maximum(dequeued.values - received.values, 0), 0)
        wait += queue_wait
        sources.append("sequencer queue wait (t_dequeued - t_received)")
        if not lagged:
            queued = queue_wait > 0
    return wait, queued, " + ".join(sources) or "no wait column"


def _fit_service(rates: F64, mean_waits: F64, waited: F64 | None) -> ServiceFit:
    """The M/G/c (workers, mean service, scv) whose Allen-Cunneen waits (and, where the wait
    column is a queue's, Erlang C shares of messages that waited) fit the steps best."""
    top = float(rates.max())
    # Relative errors, with a floor so a step that barely waited does not dominate.
    scale = np.maximum(mean_waits, 0.01 * float(mean_waits.max()))
    fits: list[tuple[float, int, float, float]] = []  # (error, workers, mean service ns, scv)
    for workers in range(1, MAX_WORKERS + 1):
        for rho_top in np.geomspace(_GRID_MIN_UTILISATION, 0.98, _GRID_POINTS):
            service_ns = float(rho_top) * workers / top * 1e9
            base = mgc_mean_wait_ns(rates, workers, service_ns, 1.0)  # the M/M/c wait
            ratio = base / scale
            factor = float(np.dot(ratio, mean_waits / scale) / np.dot(ratio, ratio))  # (1 + scv) / 2
            factor = max(factor, 0.5)  # scv >= 0
            errors = (factor * base - mean_waits) / scale
            if waited is not None:
                share = erlang_c(workers, rates * service_ns / 1e9)
                errors = np.concatenate([errors, (share - waited) / np.maximum(waited, 0.01)])
            fits.append((float(np.sqrt(np.mean(errors**2))), workers, service_ns, 2.0 * factor - 1.0))
    best_error = min(f[0] for f in fits)
    good = [f for f in fits if f[0] <= best_error + PARSIMONY_TOLERANCE]
    fewest = min(f[1] for f in good)
    chosen = min(f for f in good if f[1] == fewest)
    near = [f for f in fits if f[0] <= best_error + RANGE_TOLERANCE]
    capacities = [f[1] * 1e9 / f[2] for f in near]
    identified = chosen[2] / 1e9 * top / chosen[1] >= MIN_UTILISATION
    if not identified:
        # The waits are explained as well by a queue that never fills: take the lowest capacity
        # they allow, so the twin's knee is a lower estimate rather than a guess.
        chosen = min(near, key=lambda f: f[1] * 1e9 / f[2])
    error, workers, service_ns, scv = chosen
    return ServiceFit(workers=workers, mean_service_ns=service_ns, scv=scv, rms_relative_error=error,
                      capacity_range_per_s=(min(capacities), max(capacities)), identified=identified)


Sampler = Callable[[np.random.Generator, int], F64]


def service_table(mean_ns: float, scv: float) -> dict[str, Any]:
    """The scenario table of a service time with this mean and scv."""
    return _service_dist(mean_ns, scv)[0]


def _service_dist(mean_ns: float, scv: float) -> tuple[dict[str, Any], Sampler]:
    """The scenario table of a service time with this mean and scv, and a numpy sampler of it."""
    mean = round(mean_ns)
    if scv < CONSTANT_SCV:
        return {"dist": "constant", "value": mean}, lambda rng, n: np.full(n, float(mean))
    if EXPONENTIAL_SCV[0] <= scv <= EXPONENTIAL_SCV[1]:
        return {"dist": "exponential", "mean": mean}, lambda rng, n: rng.exponential(float(mean), n)
    sigma = math.sqrt(math.log1p(scv))
    median = mean / math.sqrt(1.0 + scv)
    return ({"dist": "lognormal", "median": round(median), "sigma": round(sigma, 4)},
            lambda rng, n: rng.lognormal(math.log(median), sigma, n))


def commensurate_interval_ns(interval_ns: float, step_ns: int) -> int:
    """The block interval nearest ``interval_ns`` that cuts a ramp step of ``step_ns`` into a
    whole number of blocks, no shorter than ``MIN_BLOCK_INTERVAL_NS`` unless the step is: then
    every window one step long holds the same number of block ticks wherever they fall (but
    for the step's remainder after integer division, under one ns a block: a window gains a
    tick only when one falls in that sliver)."""
    blocks = min(max(1, round(step_ns / interval_ns)), max(1, step_ns // MIN_BLOCK_INTERVAL_NS))
    return step_ns // blocks


def _block_interval(baseline_waits: list[I64], draw: Sampler, target_p99_ns: float,
                    step_ns: int) -> tuple[int, float, float]:
    """The commit interval whose uniform wait, added to each baseline step's measured waits
    and the fitted service, gives the measured low-load p99 by the knee's rule (bisection on
    common random draws), made to divide the ramp's step. Returns (interval ns, the model's
    low-load p99, its first-step mean latency)."""
    rng = np.random.default_rng(_MONTE_CARLO_SEED)
    bases = [rng.choice(waits.astype(np.float64), _MONTE_CARLO_DRAWS) + draw(rng, _MONTE_CARLO_DRAWS)
             for waits in baseline_waits]
    unit = rng.random(_MONTE_CARLO_DRAWS)

    def p99(interval: float) -> float:
        p99s: list[float | None] = [percentile(base + unit * interval, 99.0) for base in bases]
        value, _ = low_load_p99(p99s, [False] * len(p99s))
        assert value is not None  # every baseline step has draws
        return value

    low, high = float(MIN_BLOCK_INTERVAL_NS), max(2.0 * target_p99_ns, 2.0 * MIN_BLOCK_INTERVAL_NS)
    if p99(low) < target_p99_ns:
        for _ in range(60):
            middle = (low + high) / 2
            if p99(middle) < target_p99_ns:
                low = middle
            else:
                high = middle
    interval = commensurate_interval_ns(low, step_ns)
    return interval, p99(interval), float(np.mean(bases[0] + unit * interval))
