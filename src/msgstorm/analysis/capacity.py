"""Capacity: the knee of a step ramp, the highest offered rate the layer takes without degrading.

Place in the pipeline: runs when the scenario has a step ramp; reads the ramp's shape from
``History.scenario`` and the messages from the history, and feeds ``capacity`` in the summary
and the failure threshold (which walks the same steps).

Steps come from the first agent (in scenario order) whose arrival is a ``step_ramp``, directly
or as a phase: step k covers ``[t0 + k*every, t0 + (k+1)*every)`` where t0 is the agent's
``start`` plus the durations of earlier phases; steps are cut at the phase's end, the agent's
``stop`` and ``run.duration`` (traffic stops there). Per step, counting every agent's traffic:

- ``offered_per_s``: messages intended in the step / step length;
- ``throughput_per_s``: the step's own messages (intended in it) that committed within the
  latency bar (``knee_latency_factor`` x the low-load p99; in the low-load steps, which set
  the bar, every one that committed) / step length. A step is credited with its own messages,
  not with the commits that happen to fall in its time span: those lag the sends by the
  latency, and on a chain they come a block at a time, so a step's last block lands in the
  next step and a layer that keeps up would show a shortfall at every step edge. A message
  committed later than the bar was not carried at the rate offered, so an overload whose
  queue drains after the ramp still shows as a shortfall;
- ``p99_ms``: p99 latency of the messages intended in the step (null if none committed);
- ``committed_per_s``: the layer's throughput while the step lasted: messages committed in
  the step's span, whenever they were intended / step length (what the report plots as
  throughput; ``throughput_per_s`` is the knee's count, which drops to 0 past the knee while
  the layer still commits at its capacity).

The knee (DESIGN.md): walking steps in order, a step passes when throughput >=
``throughput_fraction`` x offered and p99 <= ``knee_latency_factor`` x the low-load p99;
the knee is the offered rate of the last step passing before the first failure (None when the
first step fails already). When no step failed, no knee was reached: ``knee_rate_per_s`` is
the highest step's offered rate, only a lower bound on the knee, and ``knee_reached`` is
false (written only then); an SLO on the knee is then judged on that bound
(``scenario/slo.py``). The low-load p99 is the least of the p99s of the first
``BASELINE_STEPS`` steps, leaving out a step where the generator was behind; those steps are
not judged on latency themselves. Noise only adds latency (a hiccup of the machine, a
process warming up, a generator straining at a rate it still keeps on average): none of it
makes a message faster than the layer carries it at low load, so the least p99 of the first
steps is the one such a start touches least: inflating any of them but the quietest moves
neither the bar nor the knee (their median would follow two inflated steps of three). A
ramp must start well below its knee: a knee among the low-load steps is an upper bound, and
the method says so. On a live target a step also fails when the generator could not keep its
schedule there (median send lag over ``SATURATION_LAG_MS``, or over a tenth of the low-load
median latency when that is longer: ``saturation_limit_ns``; or a message it never sent):
that step's load was not offered as asked, so what fails is the generator, and the method
says so.

On a live target the capacity also says what limited it (``limited_by``), judged at the
first failing step (the last step when every step passed), by one precedence for every
live target (``limit_cause``): ``"machine CPU"`` when the processes msgstorm sampled (its
own, its consumers', the servers it started) kept at least ``MACHINE_BUSY_SHARE`` of the
machine's CPUs busy, ``"machine"`` when they did not but the machine's cores were busy at
least ``MACHINE_SATURATED_SHARE`` of the step all the same (``machine_cpu_seconds``: work
outside the run held the CPUs the broker and msgstorm waited for), ``"generator"`` when the
machine had room but the generator was behind there, else ``"broker"``;
``at_limit`` gives that step's offered rate, median send lag, the CPUs each process kept
busy and the machine's busy CPUs, so a machine's limit is not taken for the broker's. Both
are null on the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from msgstorm.analysis._common import (
    I64,
    MessageArrays,
    analysis_settings,
    ms,
    percentile,
    rounded,
)
from msgstorm.analysis._intervals import IntervalLoad, bin_counts, bin_index, interval_load
from msgstorm.analysis.cpu import host_cpus, machine_cpu, process_cpu
from msgstorm.analysis.generator import SATURATION_LAG_MS
from msgstorm.history.reader import History

__all__ = ["BASELINE_STEPS", "MACHINE_BUSY_SHARE", "MACHINE_SATURATED_SHARE", "SATURATION_LATENCY_SHARE", "STEP_SCHEMA", "StepRamp", "capacity", "find_step_ramp", "limit_cause",
           "low_load", "low_load_p99", "ramp_steps", "saturated_intervals", "saturation_limit_ns", "step_p99_ns"]

# Steps (or, without a ramp, windows) whose p99s give the low-load p99 (their least).
BASELINE_STEPS = 3
# The share of the low-load median latency a send lag must pass (when over 1 ms) for the
# generator to count as behind: see ``saturation_limit_ns``.
SATURATION_LATENCY_SHARE = 0.1
# The share of the machine's CPUs the sampled processes keep busy at which the machine, not
# the broker, is what limits a live run (2 cores: 1.8 CPUs busy).
MACHINE_BUSY_SHARE = 0.9
# The share of the machine's CPUs busy (by anyone: /proc/stat) at which the machine counts as
# saturated, when msgstorm's sampled processes were not what kept it so: other work held the
# CPUs (2 cores: 1.9 busy). Short of all of it: a second of samples in clock ticks of 10 ms,
# and the idle moments between one runnable task and the next, never add up to every core.
MACHINE_SATURATED_SHARE = 0.95

STEP_SCHEMA = pa.schema(
    [
        pa.field("step", pa.int64(), nullable=False),  # 1-based
        pa.field("t_start_ns", pa.int64(), nullable=False),
        pa.field("t_end_ns", pa.int64(), nullable=False),
        pa.field("nominal_rate_per_s", pa.float64(), nullable=False),  # ramp agent x count
        pa.field("offered_per_s", pa.float64(), nullable=False),
        pa.field("throughput_per_s", pa.float64(), nullable=False),
        pa.field("p99_ms", pa.float64()),
        pa.field("passed", pa.bool_(), nullable=False),  # this step alone meets the criterion
        pa.field("committed_per_s", pa.float64(), nullable=False),  # commits in the step's span / its length
    ]
)


@dataclass(frozen=True)
class StepRamp:
    """Where the ramp's steps lie in time and the rate each asks for."""

    agent: str
    edges: I64  # step k is [edges[k], edges[k+1])
    nominal_rate_per_s: list[float]
    every_ns: int  # a step's length (the last step may be cut shorter)


def _ramp_edges(t0: int, every: int, steps: int, stop: int) -> tuple[I64, int]:
    edges = [t0 + k * every for k in range(steps + 1)]
    kept = [edge for edge in edges if edge < stop]
    if not kept:
        return np.zeros(0, dtype=np.int64), 0
    if len(kept) < len(edges):
        kept.append(stop)
    return np.asarray(kept, dtype=np.int64), len(kept) - 1


def find_step_ramp(scenario: dict[str, Any]) -> StepRamp | None:
    """The first step ramp among the agents (directly or in phases), or None."""
    run = scenario.get("run") or {}
    duration = int(run.get("duration") or 0) or None
    for agent in scenario.get("agents") or []:
        arrival = agent.get("arrival") or {}
        start = int(agent.get("start") or 0)
        stops = [t for t in (agent.get("stop"), duration) if t is not None]
        agent_stop = min(int(t) for t in stops) if stops else None
        if arrival.get("process") == "phases":
            candidates: list[tuple[int, int | None, dict[str, Any]]] = []
            t = start
            for phase in arrival.get("phases") or []:
                candidates.append((t, t + int(phase["duration"]), phase.get("arrival") or {}))
                t += int(phase["duration"])
        else:
            candidates = [(start, None, arrival)]
        for t0, phase_end, ramp in candidates:
            if ramp.get("process") != "step_ramp":
                continue
            ends = [t for t in (phase_end, agent_stop) if t is not None]
            every, steps = int(ramp["every"]), int(ramp["steps"])
            stop = min(ends) if ends else t0 + every * steps
            edges, kept = _ramp_edges(t0, every, steps, stop)
            if kept == 0:
                continue
            count = int(agent.get("count") or 1)
            rates = [(float(ramp["start"]) + k * float(ramp["step"])) * count for k in range(kept)]
            return StepRamp(str(agent.get("name")), edges, rates, every)
    return None


def step_p99_ns(load: IntervalLoad) -> list[float | None]:
    """Each step's p99 latency (ns; None where no message committed): what the knee judges."""
    return [percentile(latencies, 99.0) if latencies.size else None for latencies in load.latencies_ns]


def low_load(values: list[float]) -> float:
    """The low-load value of a latency statistic over the first intervals: their least.
    Noise and a saturated start only add latency, so the least is the one they touch least."""
    return min(values)


def low_load_p99(p99_ns: list[float | None], saturated: list[bool]) -> tuple[float | None, list[int]]:
    """The low-load p99 (ns) and the intervals (0-based) it is taken over: the least of the
    first ``BASELINE_STEPS`` p99s of intervals where the generator kept its schedule."""
    usable = [i for i, (p99, late) in enumerate(zip(p99_ns, saturated)) if p99 is not None and not late]
    usable = usable[:BASELINE_STEPS]
    if not usable:
        return None, []
    return low_load([float(p99_ns[i]) for i in usable]), usable  # type: ignore[arg-type]


def _knee(
    load: IntervalLoad, p99_ns: list[float | None], factor: float, fraction: float,
    saturated: list[bool] | None = None,
) -> tuple[dict[str, Any], list[bool], int | None]:
    """({knee_rate_per_s, method}, per-step pass, the first failing step's index or None)."""
    offered, throughput = load.offered_per_s.tolist(), load.throughput_per_s.tolist()
    saturated = saturated if saturated is not None else [False] * len(offered)
    baseline, used = low_load_p99(p99_ns, saturated)
    # The low-load steps define the bar: their own latency is not judged against it (one of
    # them with a hiccup would otherwise end the ramp before it starts).
    passed = [
        baseline is not None
        and p99 is not None
        and thr >= fraction * off
        and (p99 <= factor * baseline or index in used)
        and not late
        for index, (off, thr, p99, late) in enumerate(zip(offered, throughput, p99_ns, saturated))
    ]
    last_passing: int | None = None
    for index, ok in enumerate(passed):
        if not ok:
            break
        last_passing = index
    first_failing = next((i + 1 for i, ok in enumerate(passed) if not ok), None)
    baseline_ms = ms(baseline) if baseline is not None else None
    steps = ", ".join(str(i + 1) for i in used)
    method = (
        f"step ramp: highest step offered rate with throughput >= {fraction:.0%} of offered "
        f"and p99 <= {factor:g} x low-load p99 ({baseline_ms} ms, least of step{'s' if len(used) > 1 else ''} "
        f"{steps or 'none'}); "
        + (f"first failing step {first_failing}" if first_failing else "every step passed")
        + (" (there the generator could not keep the schedule: the knee is msgstorm's own, not the target's)"
           if first_failing and saturated[first_failing - 1] else "")
        + ("; the knee lies among the low-load steps: start the ramp lower for a knee that is not an upper bound"
           if first_failing is not None and _knee_among_low_load(first_failing - 1, last_passing, used, p99_ns,
                                                                 factor * baseline if baseline else None) else "")
    )
    knee_rate = rounded(offered[last_passing]) if last_passing is not None else None
    failing = first_failing - 1 if first_failing is not None else None
    knee: dict[str, Any] = {"knee_rate_per_s": knee_rate}
    if first_failing is None and knee_rate is not None:
        knee["knee_reached"] = False  # every step passed: the knee lies above the ramp
    return {**knee, "method": method}, passed, failing


def _knee_among_low_load(failing: int, last_passing: int | None, used: list[int], p99_ns: list[float | None],
                         bar_ns: float | None) -> bool:
    """Whether the knee is only an upper bound: the first failing step is one of the low-load
    steps, or the knee's step is one whose p99 is over the bar (it passed only because the
    low-load steps are not judged on latency)."""
    if not used:
        return False
    if failing <= max(used):
        return True
    p99 = p99_ns[last_passing] if last_passing is not None else None
    return last_passing in used and bar_ns is not None and p99 is not None and p99 > bar_ns


def saturation_limit_ns(messages: MessageArrays, step: npt.NDArray[np.int32]) -> float:
    """The send lag over which a message left late: ``SATURATION_LAG_MS``, or
    ``SATURATION_LATENCY_SHARE`` of the low-load median latency when that is longer (the
    least of the p50 latencies of the first ``BASELINE_STEPS`` intervals, ``step`` giving
    each message's interval: a saturated start, whose late sends add to its latency, does
    not raise the limit it is judged by). A lag that small beside the latency measured changes
    neither the load the target sees nor the latency (measured from ``t_intended``, it
    includes the lag): a chain with 500 ms blocks is not offered less by a sender a few ms
    late, while a broker's sub-millisecond latency keeps the 1 ms limit."""
    p50s = []
    for index in range(BASELINE_STEPS):
        latency = messages.latency_ns(step == index)
        if latency.size:
            p50s.append(percentile(latency, 50.0, scratch=True))
    low_load_p50 = low_load(p50s) if p50s else 0.0
    return max(SATURATION_LAG_MS * 1e6, SATURATION_LATENCY_SHARE * low_load_p50)


def saturated_intervals(history: History, messages: MessageArrays, edges: I64) -> list[bool] | None:
    """Per interval, whether the generator was behind there: most of its messages (by
    ``t_intended``) left later than the saturation limit (``saturation_limit_ns``) or were
    never sent (``unsent``). The median send lag, not the p99, because a hiccup of a few ms
    delays a few messages and shows in the interval's p99 latency, which the latency
    criterion judges, while an interval whose bulk left late was not offered as asked. None
    on the simulator, whose sends leave exactly on time."""
    if history.is_simulated:
        return None
    step = bin_index(messages.t_intended, np.ones(messages.count, dtype=np.bool_), edges, clip_last=False)
    n = len(edges) - 1
    limit_ns = saturation_limit_ns(messages, step)
    unsent = bin_counts(step, n, messages.status["unsent"])
    counted, late_counted = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    # Send times a Parquet part at a time: the lags are a part long, and the run's t_sent is never held.
    for rows, (sent,) in messages.stamp_parts(["t_sent"]):
        counted += bin_counts(step[rows], n, sent.present)
        late = sent.values - messages.t_intended[rows] > limit_ns
        late_counted += bin_counts(step[rows], n, late & sent.present)
    # Unsent messages count as later than any: the bulk left late, or never.
    return [int(late_counted[k] + unsent[k]) * 2 > int(counted[k] + unsent[k]) for k in range(n)]


def limit_cause(generator_behind: bool, processes_busy: float | None, machine_busy: float | None,
                machine_cpus: int | None) -> str:
    """What limited a live ramp's step, the one precedence for every live target (brokers
    and chain nodes): the machine first, since a generator behind on a saturated machine is
    behind because of it. ``"machine CPU"`` when the processes msgstorm sampled kept at least
    ``MACHINE_BUSY_SHARE`` of the machine's CPUs busy (``processes_busy``), ``"machine"``
    when the machine's cores were busy at least ``MACHINE_SATURATED_SHARE`` of the step all
    the same (``machine_busy``: work outside the run held them), ``"generator"`` when the
    generator was behind while the machine had room, else ``"broker"``."""
    if machine_cpus is not None and processes_busy is not None and processes_busy >= MACHINE_BUSY_SHARE * machine_cpus:
        return "machine CPU"
    if machine_cpus is not None and machine_busy is not None and machine_busy >= MACHINE_SATURATED_SHARE * machine_cpus:
        return "machine"
    return "generator" if generator_behind else "broker"


def _limit(history: History, messages: MessageArrays, load: IntervalLoad, index: int,
           saturated: list[bool]) -> dict[str, Any]:
    """What limited a live ramp at step ``index``: {limited_by, at_limit}."""
    start, end = int(load.edges[index]), int(load.edges[index + 1])
    intended = messages.t_intended
    sent = messages.t_sent
    mine = (intended >= start) & (intended < end) & sent.present
    lag = sent.values[mine] - intended[mine]
    del sent, mine
    cpu = {name: round(cores, 2) for name, process in process_cpu(history).items()
           if (cores := process.cores(start, end)) is not None}
    machine = host_cpus(history)
    whole = machine_cpu(history)
    machine_busy = None if whole is None else whole.cores(start, end)
    limited_by = limit_cause(saturated[index], sum(cpu.values()) if cpu else None, machine_busy, machine)
    return {"limited_by": limited_by, "at_limit": {
        "step": index + 1, "offered_per_s": rounded(float(load.offered_per_s[index])),
        "send_lag_p50_ms": ms(percentile(lag, 50.0)) if lag.size else None,
        "cpu_busy": cpu, "machine_cpus": machine,
        "machine_busy": None if machine_busy is None else round(machine_busy, 2)}}


def ramp_steps(ramp: StepRamp, messages: MessageArrays, factor: float,
               saturated: list[bool] | None) -> tuple[IntervalLoad, list[float | None]]:
    """The ramp's steps as intervals, latency attributed by ``t_intended``, and each step's
    p99 (ns). A step's ``committed`` is its own messages committed within the latency bar
    (every one committed in the low-load steps): the throughput the knee judges."""
    load = interval_load(messages, ramp.edges, latency_by="intended", clip_last=False)
    p99_ns = step_p99_ns(load)
    late = saturated if saturated is not None else [False] * load.count
    baseline, used = low_load_p99(p99_ns, late)
    bar_ns = factor * baseline if baseline is not None else None
    in_time = [
        int(latencies.size) if index in used or bar_ns is None else int(np.count_nonzero(latencies <= bar_ns))
        for index, latencies in enumerate(load.latencies_ns)
    ]
    return replace(load, committed=np.asarray(in_time, dtype=np.int64).reshape(load.count)), p99_ns


def _committed_per_s(messages: MessageArrays, starts: I64, ends: I64) -> np.ndarray:
    """Messages committed in each ``[start, end)``, per second of it."""
    commits = messages.t_committed.values[messages.t_committed.present]
    commits.sort()  # in place: the selection is a copy already (a second would be the run's commits again)
    counts = np.searchsorted(commits, ends, side="left") - np.searchsorted(commits, starts, side="left")
    return counts / np.maximum((ends - starts) / 1e9, 1e-9)


def capacity(
    history: History, messages: MessageArrays | None = None
) -> tuple[dict[str, Any] | None, pa.Table | None, IntervalLoad | None]:
    """({knee_rate_per_s, method}, per-step table, step intervals), or Nones without a ramp."""
    ramp = find_step_ramp(history.scenario)
    if ramp is None:
        return None, None, None
    messages = messages if messages is not None else MessageArrays.from_history(history)
    factor, fraction = analysis_settings(history)
    saturated = saturated_intervals(history, messages, ramp.edges)
    load, p99_ns = ramp_steps(ramp, messages, factor, saturated)
    knee, passed, failing = _knee(load, p99_ns, factor, fraction, saturated)
    if saturated is not None and load.count:  # a live target: what limited it
        knee.update(_limit(history, messages, load, failing if failing is not None else load.count - 1, saturated))
    else:
        knee.update({"limited_by": None, "at_limit": None})
    table = pa.table(
        {
            "step": np.arange(1, load.count + 1, dtype=np.int64),
            "t_start_ns": load.starts,
            "t_end_ns": load.ends,
            "nominal_rate_per_s": ramp.nominal_rate_per_s,
            "offered_per_s": [rounded(v) for v in load.offered_per_s.tolist()],
            "throughput_per_s": [rounded(v) for v in load.throughput_per_s.tolist()],
            "p99_ms": [ms(v) for v in p99_ns],
            "passed": passed,
            "committed_per_s": [rounded(v) for v in _committed_per_s(messages, load.starts, load.ends).tolist()],
        },
        schema=STEP_SCHEMA,
    )
    return knee, table, load
