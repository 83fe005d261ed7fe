"""Arrival processes: when an agent's messages are intended to be sent.

traffic: scenario ``ArrivalSpec`` -> **make_arrival** -> ``times``/``events`` per window ->
``generate`` (attaches agent, node, kind, key, size, fee) -> ``MessageBatch``.

A process is a small object built once per agent and asked for consecutive,
non-overlapping windows ``[start_ns, end_ns)`` in increasing order. It holds its own
``np.random.Generator`` and whatever must carry from one window to the next (a Hawkes
cluster's pending children), so generating window by window draws from the same
distribution as one long generation while memory stays bounded by one window.

One process stands for ``instances`` independent copies of the same arrival (an agent's
``count``), superposed exactly: ``events`` returns each event's instance index. Poisson
copies merge into one Poisson process of summed rate with uniformly drawn instances;
Hawkes copies merge into one Hawkes process (baseline × instances) whose children keep
their immigrant's instance; deterministic copies each get their own phase.

Each ``process`` of the scenario is built by a function registered under its name in
``ARRIVAL_PROCESSES`` (``scenario/registry.py``); a new process is one such builder and
its spec class in the scenario schema.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from msgstorm import draws
from msgstorm.scenario.registry import ARRIVAL_PROCESSES
from msgstorm.scenario.replay import read_replay_offsets_ns
from msgstorm.scenario.traffic import (
    ArrivalSpec,
    BurstArrival,
    ConstantArrival,
    HawkesArrival,
    LinearRampArrival,
    PhasesArrival,
    PoissonArrival,
    ReplayArrival,
    StepRampArrival,
)
from msgstorm.traffic.intensity import Intensity, LinearIntensity, PiecewiseConstantIntensity

__all__ = [
    "ArrivalProcess",
    "BurstProcess",
    "DeterministicProcess",
    "HawkesProcess",
    "PhasesProcess",
    "PoissonProcess",
    "ReplayProcess",
    "ArrivalBuilder",
    "make_arrival",
]

_NS_PER_S = 1e9
Events = tuple[np.ndarray, np.ndarray]


class ArrivalProcess(Protocol):
    """Intended send times, asked for window by window."""

    instances: int

    def times(self, start_ns: int, end_ns: int) -> np.ndarray:
        """Sorted int64 times in ``[start_ns, end_ns)``."""
        ...

    def events(self, start_ns: int, end_ns: int) -> Events:
        """``times`` plus the instance (0 .. instances-1, int64) that sends each one."""
        ...


def _empty() -> Events:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)


class _Window:
    """Shared clipping of a requested window to the process's own ``[t0_ns, t_end_ns)``."""

    def __init__(self, t0_ns: int, t_end_ns: int, instances: int) -> None:
        if instances < 1:
            raise ValueError(f"instances must be at least 1, got {instances}")
        self.t0_ns = int(t0_ns)
        self.t_end_ns = int(t_end_ns)
        self.instances = int(instances)

    def _clip(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        return max(int(start_ns), self.t0_ns), min(int(end_ns), self.t_end_ns)

    def events(self, start_ns: int, end_ns: int) -> Events:
        raise NotImplementedError

    def times(self, start_ns: int, end_ns: int) -> np.ndarray:
        return self.events(start_ns, end_ns)[0]


def _instances_uniform(rng: np.random.Generator, instances: int, n: int) -> np.ndarray:
    if instances == 1:
        return np.zeros(n, dtype=np.int64)
    return rng.integers(0, instances, n, dtype=np.int64)


def _sorted_uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """n sorted U(0,1) draws in O(n): normalised partial sums of n+1 exponentials."""
    sums = np.cumsum(draws.exponential(rng, 1.0, n + 1))
    result: np.ndarray = sums[:n] / sums[n]
    return result


class PoissonProcess(_Window):
    """(Non-)homogeneous Poisson arrivals by time change: uniform points in Λ-space, mapped
    back through Λ⁻¹. Disjoint windows are independent, so nothing carries over."""

    def __init__(
        self,
        intensity: Intensity,
        rng: np.random.Generator,
        t0_ns: int,
        t_end_ns: int,
        instances: int = 1,
    ) -> None:
        super().__init__(t0_ns, t_end_ns, instances)
        self._intensity = intensity
        self._rng = rng

    def events(self, start_ns: int, end_ns: int) -> Events:
        lo, hi = self._clip(start_ns, end_ns)
        if hi <= lo:
            return _empty()
        x_lo = self._intensity.cumulative_at(lo - self.t0_ns)
        x_hi = self._intensity.cumulative_at(hi - self.t0_ns)
        expected = self.instances * (x_hi - x_lo)
        n = draws.poisson(self._rng, expected) if expected > 0 else 0
        if n == 0:
            return _empty()
        x = x_lo + _sorted_uniform(self._rng, n) * (x_hi - x_lo)
        t = self.t0_ns + self._intensity.inverse(x)
        # Clip guards the float round-trip at the window edges (a 1 ns nudge at most);
        # in place, with two ufuncs (np.clip's wrapper costs more than the work here).
        times = np.floor(t).astype(np.int64)
        np.maximum(times, lo, out=times)
        np.minimum(times, hi - 1, out=times)
        return times, _instances_uniform(self._rng, self.instances, n)


class DeterministicProcess(_Window):
    """Evenly spaced in Λ-space: instance i sends at Λ⁻¹(k + phase_i), k = 0, 1, ...

    phase_i ~ U(0, 1) is drawn once per instance, so copies do not fire in lockstep; for
    a constant rate the first event is at t0 + phase_i / rate. Each event's time depends
    only on (i, k), so every event lands in exactly one window whatever the windows are.
    """

    def __init__(
        self,
        intensity: Intensity,
        rng: np.random.Generator,
        t0_ns: int,
        t_end_ns: int,
        instances: int = 1,
    ) -> None:
        super().__init__(t0_ns, t_end_ns, instances)
        self._intensity = intensity
        self._phase = rng.random(self.instances)

    def events(self, start_ns: int, end_ns: int) -> Events:
        lo, hi = self._clip(start_ns, end_ns)
        if hi <= lo:
            return _empty()
        phase = self._phase
        # Candidate k per instance, one extra on each side: flooring to whole ns can move
        # an event across a window edge, and the exact test below settles it.
        x_lo = self._intensity.cumulative_at(lo - self.t0_ns - 1)
        x_hi = self._intensity.cumulative_at(hi - self.t0_ns)
        k_lo = np.maximum(np.floor(x_lo - phase) - 1.0, 0.0)
        k_end = np.minimum(np.ceil(x_hi - phase) + 1.0, np.ceil(self._intensity.total - phase))
        counts = np.clip(k_end - k_lo, 0.0, None).astype(np.int64)
        n = int(counts.sum())
        if n == 0:
            return _empty()
        instance = np.repeat(np.arange(self.instances, dtype=np.int64), counts)
        first = np.cumsum(counts) - counts
        k = k_lo[instance] + (np.arange(n, dtype=np.int64) - first[instance])
        t = self.t0_ns + self._intensity.inverse(k, phase[instance])
        times = np.floor(t).astype(np.int64)
        keep = (times >= lo) & (times < hi)
        times, instance = times[keep], instance[keep]
        if self.instances > 1:
            # Stable: equal times stay in instance order.
            order = np.argsort(times, kind="stable")
            times, instance = times[order], instance[order]
        return times, instance


class BurstProcess(_Window):
    """Batch k starts at ``t0 + k × every``; its message j is sent at ``+ j × spacing``
    for j below ``batch`` and below ``ceil(every / spacing)``: a sender writing back to back
    that stops a batch once its writes have reached the period's end (the one in flight
    finishes). Copies send together, instance by instance at equal times.
    """

    def __init__(self, batch: int, every_ns: int, spacing_ns: int, t0_ns: int, t_end_ns: int,
                 instances: int = 1) -> None:
        super().__init__(t0_ns, t_end_ns, instances)
        if every_ns <= 0 or spacing_ns < 0 or batch < 0:
            raise ValueError(f"need every > 0, spacing >= 0, batch >= 0; got {every_ns}, {spacing_ns}, {batch}")
        self.every_ns = int(every_ns)
        self.spacing_ns = int(spacing_ns)
        fits = batch if spacing_ns == 0 else -(-every_ns // spacing_ns)
        self.sent_per_batch = min(int(batch), int(fits))

    def events(self, start_ns: int, end_ns: int) -> Events:
        lo, hi = self._clip(start_ns, end_ns)
        if hi <= lo or self.sent_per_batch == 0:
            return _empty()
        # A batch ends inside its own period (the cut), so only these batches can reach it.
        k_first = (lo - self.t0_ns) // self.every_ns
        k_last = (hi - 1 - self.t0_ns) // self.every_ns
        k = np.arange(k_first, k_last + 1, dtype=np.int64)
        offsets = np.arange(self.sent_per_batch, dtype=np.int64) * self.spacing_ns
        times = (self.t0_ns + k[:, None] * self.every_ns + offsets[None, :]).ravel()
        times = times[(times >= lo) & (times < hi)]
        times.sort(kind="stable")
        if self.instances == 1:
            return times, np.zeros(times.size, dtype=np.int64)
        instance = np.tile(np.arange(self.instances, dtype=np.int64), times.size)
        return np.repeat(times, self.instances), instance


class HawkesProcess(_Window):
    """Self-exciting arrivals by the cluster (branching) representation.

    Immigrants are Poisson at ``baseline_per_s`` (× instances); every event has
    Poisson(``branching``) children at Exp(mean ``decay_ns``) delays after it, in the same
    instance as its parent. Children due after the current window are kept in
    ``_pending`` and released (and allowed to branch) in the window they fall in.
    Expected rate: baseline / (1 - branching).
    """

    def __init__(
        self,
        baseline_per_s: float,
        branching: float,
        decay_ns: float,
        rng: np.random.Generator,
        t0_ns: int,
        t_end_ns: int,
        instances: int = 1,
    ) -> None:
        super().__init__(t0_ns, t_end_ns, instances)
        if not 0 <= branching < 1:
            raise ValueError(f"hawkes branching must be in [0, 1), got {branching}")
        if not decay_ns > 0:
            raise ValueError(f"hawkes decay must be above 0 ns, got {decay_ns}")
        self._baseline_per_s = float(baseline_per_s)
        self._branching = float(branching)
        self._decay_ns = float(decay_ns)
        self._rng = rng
        # Float ns: children branch off their parent's exact time, not its floored ns.
        self._pending_t = np.empty(0, dtype=np.float64)
        self._pending_i = np.empty(0, dtype=np.int64)

    def events(self, start_ns: int, end_ns: int) -> Events:
        lo, hi = self._clip(start_ns, end_ns)
        if hi <= lo:
            if start_ns >= self.t_end_ns:
                # Past the end nothing more is sent: let go of the carried children.
                self._pending_t = self._pending_t[:0]
                self._pending_i = self._pending_i[:0]
            return _empty()
        rng = self._rng
        expected = self.instances * self._baseline_per_s * (hi - lo) / _NS_PER_S
        n = draws.poisson(rng, expected) if expected > 0 else 0
        gen_t = lo + _sorted_uniform(rng, n) * (hi - lo)
        gen_i = _instances_uniform(rng, self.instances, n)

        # Carried children due in this window are parents now; later ones stay pending.
        due = self._pending_t < hi
        gen_t = np.concatenate((gen_t, self._pending_t[due]))
        gen_i = np.concatenate((gen_i, self._pending_i[due]))
        carried_t = [self._pending_t[~due]]
        carried_i = [self._pending_i[~due]]
        out_t, out_i = [gen_t], [gen_i]

        while gen_t.size and self._branching > 0:
            n_children = draws.poisson_many(rng, self._branching, gen_t.size)
            total = int(n_children.sum())
            if total == 0:
                break
            child_t = np.repeat(gen_t, n_children) + draws.exponential(rng, self._decay_ns, total)
            child_i = np.repeat(gen_i, n_children)
            # Children at or past the end are never sent, and neither are their (later)
            # descendants, so they are dropped rather than carried.
            alive = child_t < self.t_end_ns
            child_t, child_i = child_t[alive], child_i[alive]
            now = child_t < hi
            carried_t.append(child_t[~now])
            carried_i.append(child_i[~now])
            gen_t, gen_i = child_t[now], child_i[now]
            out_t.append(gen_t)
            out_i.append(gen_i)

        self._pending_t = np.concatenate(carried_t)
        self._pending_i = np.concatenate(carried_i)
        all_t = np.concatenate(out_t)
        all_i = np.concatenate(out_i)
        # Carried parents from a skipped stretch (start_ns past their time) branch but
        # are not sent: they belong to a window nobody asked for.
        keep = all_t >= lo
        all_t, all_i = all_t[keep], all_i[keep]
        order = np.argsort(all_t, kind="stable")
        return np.floor(all_t[order]).astype(np.int64), all_i[order]


class ReplayProcess(_Window):
    """Offsets from a trace, played from t0; every instance replays the whole trace."""

    def __init__(
        self, offsets_ns: np.ndarray, t0_ns: int, t_end_ns: int, instances: int = 1
    ) -> None:
        super().__init__(t0_ns, t_end_ns, instances)
        self._times = self.t0_ns + np.asarray(offsets_ns, dtype=np.int64)

    def events(self, start_ns: int, end_ns: int) -> Events:
        lo, hi = self._clip(start_ns, end_ns)
        if hi <= lo:
            return _empty()
        first, last = np.searchsorted(self._times, [lo, hi], side="left")
        times = self._times[first:last]
        if self.instances == 1:
            return times.copy(), np.zeros(times.size, dtype=np.int64)
        instance = np.tile(np.arange(self.instances, dtype=np.int64), times.size)
        return np.repeat(times, self.instances), instance


class PhasesProcess(_Window):
    """Consecutive phases from t0, each its own process over ``[phase start, phase end)``."""

    def __init__(
        self,
        phases: list[tuple[int, int, ArrivalProcess]],
        t0_ns: int,
        t_end_ns: int,
        instances: int = 1,
    ) -> None:
        super().__init__(t0_ns, t_end_ns, instances)
        self._phases = phases

    def events(self, start_ns: int, end_ns: int) -> Events:
        lo, hi = self._clip(start_ns, end_ns)
        parts = [
            process.events(max(lo, phase_start), min(hi, phase_end))
            for phase_start, phase_end, process in self._phases
            if phase_start < hi and lo < phase_end
        ]
        if not parts:
            return _empty()
        # Phases do not overlap and come in order, so concatenation stays sorted.
        return (
            np.concatenate([times for times, _ in parts]),
            np.concatenate([instance for _, instance in parts]),
        )


def make_arrival(
    spec: ArrivalSpec,
    rng: np.random.Generator,
    t0_ns: int,
    t_end_ns: int,
    instances: int = 1,
) -> ArrivalProcess:
    """Build the process for ``spec``, active over ``[t0_ns, t_end_ns)``.

    ``t_end_ns`` is the end of the agent's window: a linear ramp spans it, and nothing is
    sent at or after it. ``instances`` independent copies are superposed (see module doc).
    Random choices made once (constant phases) are drawn from ``rng`` here. The builder
    is the one registered under ``spec.process`` in ``ARRIVAL_PROCESSES``.
    """
    process: ArrivalProcess = ARRIVAL_PROCESSES[spec.process](spec, rng, t0_ns, t_end_ns, instances)
    return process


class ArrivalBuilder(Protocol):
    """Builds the process for one kind of arrival spec (the arguments of ``make_arrival``)."""

    def __call__(self, spec: Any, rng: np.random.Generator, t0_ns: int, t_end_ns: int,
                 instances: int) -> ArrivalProcess: ...


@ARRIVAL_PROCESSES.register("constant")
def _constant(spec: ConstantArrival, rng: np.random.Generator, t0_ns: int, t_end_ns: int,
              instances: int) -> ArrivalProcess:
    constant = PiecewiseConstantIntensity.constant(spec.rate, max(t_end_ns - t0_ns, 0))
    return DeterministicProcess(constant, rng, t0_ns, t_end_ns, instances)


@ARRIVAL_PROCESSES.register("poisson")
def _poisson(spec: PoissonArrival, rng: np.random.Generator, t0_ns: int, t_end_ns: int,
             instances: int) -> ArrivalProcess:
    constant = PiecewiseConstantIntensity.constant(spec.rate, max(t_end_ns - t0_ns, 0))
    return PoissonProcess(constant, rng, t0_ns, t_end_ns, instances)


@ARRIVAL_PROCESSES.register("burst")
def _burst(spec: BurstArrival, rng: np.random.Generator, t0_ns: int, t_end_ns: int,
           instances: int) -> ArrivalProcess:
    return BurstProcess(spec.batch, spec.every, spec.spacing, t0_ns, t_end_ns, instances)


@ARRIVAL_PROCESSES.register("hawkes")
def _hawkes(spec: HawkesArrival, rng: np.random.Generator, t0_ns: int, t_end_ns: int,
            instances: int) -> ArrivalProcess:
    return HawkesProcess(spec.baseline, spec.branching, spec.decay, rng, t0_ns, t_end_ns, instances)


@ARRIVAL_PROCESSES.register("step_ramp")
def _step_ramp(spec: StepRampArrival, rng: np.random.Generator, t0_ns: int, t_end_ns: int,
               instances: int) -> ArrivalProcess:
    steps = np.arange(spec.steps, dtype=np.float64)
    ramp_end_ns = t0_ns + spec.steps * spec.every
    steps_intensity = PiecewiseConstantIntensity(
        steps * spec.every, spec.start + steps * spec.step, spec.steps * spec.every
    )
    process_type = PoissonProcess if spec.poisson else DeterministicProcess
    return process_type(steps_intensity, rng, t0_ns, min(t_end_ns, ramp_end_ns), instances)


@ARRIVAL_PROCESSES.register("linear_ramp")
def _linear_ramp(spec: LinearRampArrival, rng: np.random.Generator, t0_ns: int, t_end_ns: int,
                 instances: int) -> ArrivalProcess:
    ramp = LinearIntensity(spec.start, spec.end, max(t_end_ns - t0_ns, 0))
    process_type = PoissonProcess if spec.poisson else DeterministicProcess
    return process_type(ramp, rng, t0_ns, t_end_ns, instances)


@ARRIVAL_PROCESSES.register("replay")
def _replay(spec: ReplayArrival, rng: np.random.Generator, t0_ns: int, t_end_ns: int,
            instances: int) -> ArrivalProcess:
    offsets_ns = read_replay_offsets_ns(spec.path, spec.column, spec.time_unit, spec.speed)
    return ReplayProcess(offsets_ns, t0_ns, t_end_ns, instances)


@ARRIVAL_PROCESSES.register("phases")
def _phases(spec: PhasesArrival, rng: np.random.Generator, t0_ns: int, t_end_ns: int,
            instances: int) -> ArrivalProcess:
    phases: list[tuple[int, int, ArrivalProcess]] = []
    phase_start = t0_ns
    for phase in spec.phases:
        if phase_start >= t_end_ns:
            break  # never reached: skip building it (a replay phase would read its file)
        phase_end = phase_start + phase.duration
        # A ramp inside a phase spans the phase; the agent's end still clips it.
        sub = make_arrival(phase.arrival, rng, phase_start, phase_end, instances)
        phases.append((phase_start, min(phase_end, t_end_ns), sub))
        phase_start = phase_end
    return PhasesProcess(phases, t0_ns, t_end_ns, instances)
