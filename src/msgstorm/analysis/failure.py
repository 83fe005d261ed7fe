"""Failure threshold: the lowest offered load at which the layer first breaks, and how.

Place in the pipeline: after windows, capacity, desync and queue are known. With a step ramp
the ramp's steps are walked in increasing offered-rate order; otherwise the run's windows in
time order. The first interval where any criterion fires is the threshold:
``{rate_per_s: its offered rate, reason, t_ns: its start}``, and ``faults``: [{fault_id,
kind}] of the faults active in it (``analysis/faults.py``: spans ``[start, end)``, one never
ended to the horizon), written only when there are some; None when nothing fires. The
interval's time and its faults say which part of the run the threshold came from: a window
of a fault, or of the start, is not the layer's capacity.

Reasons, checked in this order (the first that fires is reported):

- ``"loss"``: a message intended in the interval ended dropped or lost. A throttle's own
  shedding is not loss: it drops a share of its non-essential kinds on purpose, and the
  summary's ``control`` says what it shed. The history does not tell its drops from
  backpressure's, so with a backpressure mode that may drop (any but ``unbounded``) every
  drop still counts.
- ``"desync"``: a desync episode overlaps the interval.
- ``"round"``: round-based BFT consensus (a ``heights`` table) committed a height in a round
  above 0 in the interval; ``"height_lag"``: some node was more than
  ``desync.max_height_gap`` heights behind the highest committed one in it
  (``analysis/consensus.py``).
- ``"overload"``: throughput below ``throughput_fraction`` x offered while the sequencer queue
  (last ``queue_depth`` sample at or before each end) is deeper at the interval's end than at
  its start. Commits lag intents by the latency, so right after a rise in load throughput
  trails offered even in a healthy layer. A ramp step counts its own messages committed
  within the latency bar (see ``capacity``), so it is compared with its own offered rate; a window is compared
  with the lower of its own and the previous window's offered rate (0 before the first), so
  the pipeline filling is not mistaken for overload and a sustained overload fires one window
  later.
- ``"fault"``: the overload criterion fired while a fault was active in the interval (a
  sequencer outage, a partition, a crash): the throughput fell short because of the fault,
  not because the load was more than the layer carries, so it is not called an overload.
- ``"slo"``: a latency or jitter SLO (``latency.*``, ``jitter.stddev``,
  ``jitter.p99_minus_p50``) fails on the interval's latencies (messages committed in a
  window; messages intended in a step).

A live target shows no queue inside the broker, so there the conditions are those a client
can see, checked in this order:

- ``"loss"``: as above (a publish dropped or refused, a message never received or acked);
- ``"desync"``: as above (a validator network's validator behind the highest, its target's
  ``desync_start`` / ``desync_end``);
- ``"generator"``: the generator was behind in the interval (median send lag over
  ``SATURATION_LAG_MS``, or messages it never sent): msgstorm's limit, not the broker's;
- ``"latency"``: the interval's p99 over ``knee_latency_factor`` x the low-load p99 (the
  least of the first ``BASELINE_STEPS`` intervals' p99s, as the knee takes it; those
  intervals themselves are not judged on it). Checked before overload: a ramp step counts
  only messages committed within that bar as its throughput, so a step whose latency climbed
  is short of its offered rate too, and the latency is the nearer cause;
- ``"overload"``: throughput below ``throughput_fraction`` x offered (compared as above):
  on a ramp, messages of the step not committed (pending, refused) or committed past the bar
  while its p99 stayed under it; ``"fault"`` instead while a fault was active (as above);
- ``"slo"``: as above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from msgstorm.analysis._common import I64, MessageArrays, analysis_settings, percentile, rounded
from msgstorm.analysis._intervals import IntervalLoad, bin_index, overlap_range
from msgstorm.analysis.capacity import capacity, low_load_p99, saturated_intervals
from msgstorm.analysis.consensus import consensus_marks
from msgstorm.analysis.control import backpressure_drops, throttle_sheds
from msgstorm.analysis.desync import DesyncEpisode, desync_episodes
from msgstorm.analysis.faults import FaultWindow, fault_windows
from msgstorm.analysis.latency import latency_and_jitter_ms
from msgstorm.analysis.queue import DepthSamples, depth_samples
from msgstorm.analysis.windows import horizon_ns, window_table
from msgstorm.history.reader import History
from msgstorm.scenario.slo import SloError, SloRule, parse_slo, slo_value

__all__ = ["REASONS", "failure_threshold", "find_failure"]

REASONS: tuple[str, ...] = ("loss", "desync", "round", "height_lag", "generator", "overload", "fault", "latency",
                            "slo")

_INTERVAL_SECTIONS = ("latency_ms", "jitter_ms")


def _slo_breached(latency_ns: np.ndarray, rules: list[SloRule]) -> bool:
    relevant = [rule for rule in rules if rule.path[0] in _INTERVAL_SECTIONS]
    if not relevant or latency_ns.size == 0:
        return False
    latency, jitter, _ = latency_and_jitter_ms(latency_ns)
    local = {"latency_ms": latency, "jitter_ms": jitter}
    for rule in relevant:
        value = slo_value(local, rule.name)
        if value is not None and not rule.holds(value):
            return True
    return False


def find_failure(
    load: IntervalLoad,
    order: list[int],
    *,
    episodes: list[DesyncEpisode],
    depth: DepthSamples,
    rules: list[SloRule],
    throughput_fraction: float,
    horizon_ns: int,
    clip_last: bool,
    own_messages: bool = False,
    live: LiveLimits | None = None,
    shed: I64 | None = None,
    consensus: tuple[np.ndarray, np.ndarray] | None = None,
    faults: Sequence[FaultWindow] = (),
) -> dict[str, Any] | None:
    """Walk ``load``'s intervals in ``order``; the first failing one as {rate_per_s, reason,
    t_ns} and, when any were active in it, ``faults``. ``live``: a live target's conditions
    (see the module docstring); ``shed``: per interval, the drops a throttle made on purpose
    (not loss); ``consensus``: per interval, a height committed in a round above 0, a node's
    height lag above the bound; ``faults``: the run's fault spans."""
    desynced = [bool(spans) for spans in _covering(load, episodes, horizon_ns, clip_last)]
    active = _covering(load, faults, horizon_ns, clip_last)
    offered, throughput = load.offered_per_s.tolist(), load.throughput_per_s.tolist()
    previous_offered = 0.0
    for index in order:
        start, end = int(load.edges[index]), int(load.edges[index + 1])
        # Ramp steps count their own messages; plain windows count commits in their span,
        # so a window is compared with the lesser of its own and the previous offered rate.
        compared = offered[index] if own_messages else min(offered[index], previous_offered)
        previous_offered = offered[index]
        reason: str | None = None
        short = throughput[index] < throughput_fraction * compared
        excused = int(shed[index]) if shed is not None else 0
        if load.dropped[index] - excused + load.lost[index] > 0:
            reason = "loss"
        elif desynced[index]:
            reason = "desync"
        elif consensus is not None and consensus[0][index]:
            reason = "round"
        elif consensus is not None and consensus[1][index]:
            reason = "height_lag"
        elif live is not None and live.saturated[index]:
            reason = "generator"
        elif live is not None and live.slow(index):
            reason = "latency"
        elif short and (live is not None or depth.waiting_at(end) > depth.waiting_at(start)):
            reason = "fault" if active[index] else "overload"
        elif _slo_breached(load.latencies_ns[index], rules):
            reason = "slo"
        if reason is not None:
            found: dict[str, Any] = {"rate_per_s": rounded(offered[index]), "reason": reason, "t_ns": start}
            if active[index]:
                found["faults"] = [{"fault_id": fault.fault_id, "kind": fault.kind} for fault in active[index]]
            return found
    return None


_Span = TypeVar("_Span", DesyncEpisode, FaultWindow)


def _covering(load: IntervalLoad, spans: Sequence[_Span], horizon_ns: int, clip_last: bool) -> list[list[_Span]]:
    """Per interval of ``load``, the spans (desync episodes or faults) that overlap it; a span
    still open at the end lasts to ``horizon_ns``."""
    covering: list[list[_Span]] = [[] for _ in range(load.count)]
    for span in spans:
        end = span.t_end_ns if span.t_end_ns is not None else horizon_ns
        overlap = overlap_range(load.edges, span.t_start_ns, end, clip_last)
        for index in range(overlap[0], overlap[1] + 1) if overlap is not None else ():
            covering[index].append(span)
    return covering


@dataclass(frozen=True)
class LiveLimits:
    """A live run's per-interval facts: the generator behind, and the latency bar."""

    saturated: list[bool]
    p99_ns: list[float | None]
    limit_ns: float | None  # knee_latency_factor x the low-load p99
    baseline: frozenset[int]  # the intervals the low-load p99 came from

    def slow(self, index: int) -> bool:
        p99 = self.p99_ns[index]
        return (self.limit_ns is not None and p99 is not None and p99 > self.limit_ns
                and index not in self.baseline)


def live_limits(history: History, messages: MessageArrays, load: IntervalLoad) -> LiveLimits | None:
    """The live conditions' facts for ``load``'s intervals; None on the simulator."""
    saturated = saturated_intervals(history, messages, load.edges)
    if saturated is None:
        return None
    factor, _ = analysis_settings(history)
    p99_ns = [percentile(v, 99.0) if v.size else None for v in load.latencies_ns]
    baseline, used = low_load_p99(p99_ns, saturated)
    return LiveLimits(saturated, p99_ns, factor * baseline if baseline is not None else None, frozenset(used))


def slo_rules(history: History) -> list[SloRule]:
    """The scenario's SLO entries that parse (the others show as unknown in the summary)."""
    rules = []
    for name, expression in (history.scenario.get("slo") or {}).items():
        try:
            rules.append(parse_slo(str(name), str(expression)))
        except SloError:
            continue
    return rules


def failure_threshold(
    history: History, messages: MessageArrays | None = None
) -> dict[str, Any] | None:
    """The failure threshold of a run (see the module docstring)."""
    messages = messages if messages is not None else MessageArrays.from_history(history)
    episodes = desync_episodes(history)
    _, _, steps = capacity(history, messages)
    faults = fault_windows(history)
    _, load = window_table(history, None, messages, episodes, faults)
    horizon = horizon_ns(history, messages)
    return failure_over(
        history, steps if steps is not None else load, episodes, horizon, ramp=steps is not None, messages=messages,
        faults=faults,
    )


def failure_over(
    history: History,
    load: IntervalLoad,
    episodes: list[DesyncEpisode],
    horizon_ns: int,
    *,
    ramp: bool,
    messages: MessageArrays | None = None,
    faults: list[FaultWindow] | None = None,
) -> dict[str, Any] | None:
    """The threshold over ramp steps (``ramp``: by offered rate) or windows (by time);
    ``faults``: the run's fault spans (``fault_windows``, read from the history when None)."""
    messages = messages if messages is not None else MessageArrays.from_history(history)
    _, fraction = analysis_settings(history)
    indices = list(range(load.count))
    if ramp:
        offered = load.offered_per_s.tolist()
        indices.sort(key=lambda i: offered[i])  # stable: equal rates stay in time order
    return find_failure(
        load,
        indices,
        episodes=episodes,
        depth=depth_samples(history),
        rules=slo_rules(history),
        throughput_fraction=fraction,
        horizon_ns=horizon_ns,
        clip_last=not ramp,
        own_messages=ramp,
        live=live_limits(history, messages, load),
        shed=throttled_drops(history, messages, load, clip_last=not ramp),
        consensus=consensus_marks(history, load.edges, clip_last=not ramp),
        faults=faults if faults is not None else fault_windows(history),
    )


def throttled_drops(history: History, messages: MessageArrays, load: IntervalLoad, *, clip_last: bool) -> I64:
    """Per interval (by intended time), the drops a throttle made on purpose: the dropped
    messages of the kinds it may shed, when no backpressure could have dropped them too."""
    kinds = throttle_sheds(history)
    if not kinds or backpressure_drops(history) or messages.count == 0:
        return np.zeros(load.count, dtype=np.int64)
    codes, names = history.codes("messages", "kind")
    shed = messages.status["dropped"] & np.isin(codes, [names.index(kind) for kind in kinds if kind in names])
    index = bin_index(messages.t_intended, shed, load.edges, clip_last)
    index = index[index >= 0]
    return np.bincount(index, minlength=load.count).astype(np.int64)[: load.count]
