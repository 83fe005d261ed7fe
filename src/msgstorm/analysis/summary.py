"""``analyse(history)``: every metric, checker and SLO of a run, as one ``Analysis``.

Place in the pipeline: between the history and the reports. It reads only the ``History``
(so a run is re-analysed offline and sim and live runs compare by the same code) and returns
``Analysis(result, verdicts, windows, steps, timelines)``: ``result`` is the typed summary
(``analysis.summary_model.Summary``), one field per section of the registry ``SECTIONS``
(``analysis/sections.py``) that ``analyse`` loops over, and ``summary`` is the same as
``summary.json`` holds it. Its keys are stable:

- ``scenario``, ``seed``, ``target``, ``msgstorm_version``, ``scenario_hash``: from the run row.
- ``duration_s``: the run's ``t_end`` (last time the target observed), in seconds.
- ``interrupted``: the run was stopped before its end (Ctrl-C, SIGTERM, or cut off).
- ``cut_off``: the run was killed (SIGKILL, power loss) before it could write its end: the
  history holds what was flushed, about a second short of the kill, without the messages
  that were still moving.
- ``offered_rate_per_s``: messages sent (rows, i.e. every message the schedule produced) /
  the scenario's ``run.duration`` (``t_end`` when absent); null without either.
- ``throughput_per_s``: committed messages / the span from the first intended send to the
  later of the traffic window's end and the last commit (so an outage after the last commit
  lowers it); 0 when nothing committed.
- ``latency_ms``: {p50, p90, p99, p999, max, mean} of ``t_committed - t_intended``, exact,
  nearest rank; ``latency_stages_ms``: {propagation, queue_wait, service, block_wait} each
  {p50, p99}; ``jitter_ms``: {stddev, p99_minus_p50, ipdv_mean, ipdv_p99} (see ``latency``).
- ``capacity``: {knee_rate_per_s, method} on a step ramp, else null, with ``knee_reached``
  false when every step passed (see ``capacity``).
- ``failure_threshold``: {rate_per_s, reason, t_ns} or null, with ``faults`` (those active
  in the interval) when there are some (reasons in ``failure``).
- ``queue``: {max_depth, mean_depth}: the messages in the queue-wait stage (received, not yet
  in service or in a block), the most at once and the mean over the run's time, from the
  messages table (``analysis/queue.py``; null without any), and max_block_backlog (samples).
- ``backpressure``: {events, first_engaged_s}; ``base_fee``: {min, max, last} or null.
- ``messages``: {sent, sequenced, committed, dropped, rejected, lost, pending, unsent}: sent
  counts rows but the unsent ones (a live generator's shortfall at the run's end), sequenced
  those with ``t_sequenced``, the rest count statuses.
- ``by_kind``, ``by_agent``: {name: {sent, committed, dropped, rejected, lost, pending,
  unsent, latency_ms: {p50, p99}}} (see ``breakdown``).
- ``gossip_backlog``: {max, node, mean, samples} of the gossip nodes' sampled validation
  backlog (receipts' worth of queued CPU work), or null without samples.
- ``generator``: {saturated, send_lag_ms: {p50, p99, max}} on a live target, null on the
  simulator (see ``generator``).
- ``delivery``: the audit of a live run's receipts: {fanout, consumers, expected, received,
  lost {total, prefix, middle, postfix, acked}, duplicated, unexpected, reordered, stream}
  (see ``audit``); null on the simulator.
- ``connections``: a live run's connection trouble: {disconnects, reconnects, errors,
  clients {client: {disconnects, down_s}}, servers_exited [{name, returncode}], incidents
  [{t_s, kind, client, error}]} (see ``connections``); null on the simulator and for a live
  run cut off before it wrote its events.
- ``desync``: {episodes, max_height_gap}; ``propagation_ms``: {region: {p50, p90, p99, count}}.
- ``crosschain``: a second chain's relay: fates, latency from source intent to destination
  commit and its split, the source's halt (``crosschain``); absent without ``[crosschain]``.
- ``collateral``: liquidations the source executed of positions on the destination: how many
  closed there and how many the relay left open, the wait and its split, bad debt across the
  relay against one chain (``collateral``); absent without ``positions = "destination"``.
- ``control``: what each self-healing controller decided and shed (``control``); absent
  without decisions.
- ``security``: the scheme and the verification cost per message used; ``integrity``:
  {tampered, replayed, detected, accepted} (``integrity``); absent without [security] or an
  adversary.
- ``forks``: stale blocks, fork and reorg counts and depths, and how fast blocks reach the
  nodes (``forks``); absent without ``[blocks.producers]``.
- ``relay``: payloads, announcements, requests, compact blocks' round trips and bytes
  uploaded per region (``relay``); absent unless a sim run relays by a protocol other than push.
- ``hop_split``: blocks' and sampled messages' time in announcement, request, transfer and
  validation, summed along each node's path (``hops``); absent when ``relay`` is.
- ``finality``: finality by votes against the quorum bound: byzantine voters and their
  stake, conflicting heights, the longest finality stall; absent without votes.
- ``byzantine``: the faults of byzantine nodes and the nodes each named, and what flooding
  nodes sent and their receivers validated (``byzantine``); absent without such a fault.
- ``faults``: [{fault_id, kind, start_s, end_s, pre_fault_p99_ms, recovery_s}] (``analysis/recovery.py``); ``checks``: [{name, verdict, detail}];
  ``slo``: [{name, verdict, value, threshold}] (see ``slo``).

Times in ms are rounded to 3 decimals; values are plain Python numbers; null where a metric
is not defined (an empty history gives nulls and zero counts, never an error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from msgstorm.analysis._common import NS_PER_S, MessageArrays, run_t_end_ns, scenario_section
from msgstorm.analysis.audit import delivery_summary
from msgstorm.analysis.breakdown import by_group
from msgstorm.analysis.capacity import capacity, find_step_ramp
from msgstorm.analysis.delivery import Verdict, run_checkers
from msgstorm.analysis.desync import desync_episodes
from msgstorm.analysis.failure import failure_over
from msgstorm.analysis.faults import fault_windows
from msgstorm.analysis.latency import ipdv_ms, latency_and_jitter_ms, stage_breakdown_ms
from msgstorm.analysis.propagation import propagation_by_region_ms
from msgstorm.analysis.queue import backpressure_timeline, base_fee_timeline
from msgstorm.analysis.sections import SECTIONS, SectionContext
from msgstorm.analysis.summary_model import SloVerdict, Summary
from msgstorm.analysis.windows import horizon_ns, window_table
from msgstorm.heap import release_freed_memory
from msgstorm.history.reader import History

__all__ = ["HANDED_BACK_FROM_MESSAGES", "Analysis", "analyse", "failing_slos", "slo_failed"]

# From this many messages on, the memory each step of ``analyse`` freed is handed back to the
# kernel before the next (``heap.release_freed_memory``) instead of kept for reuse, and so
# before each of the run's files is written (``report.write_run_files``). What the heap keeps
# is the holes a step's arrays leave between the steady ones, which the next step's arrays
# of other sizes do not fill: a third of the peak of a rollup day's analysis (17 million
# messages: ``docs/performance.md``, "A rollup day"), and at 3.5 million (a live-redis run,
# its columns of 28 MB under the heap's 32 MB mapping threshold, so in the heap) 140-260 MB
# free in a heap of 290-360 MB at the analysis' peak, where 100-150 MB was in use (glibc's
# ``mallinfo2``). Handing them back costs their pages' faults again when reused, a few
# tenths of a second of a minute's analysis. Below it, the kept memory is what saves a short
# run's analysis its page faults (``heap``), and what it holds is small.
HANDED_BACK_FROM_MESSAGES = 2**20


@dataclass(frozen=True)
class Analysis:
    """The analysis of one run: the summary as its typed sections (``result``, a ``Summary``;
    ``summary`` is the same as summary.json holds it), checker verdicts, per-window table,
    per-step table of a step ramp (else None), and event timelines
    (``{"backpressure": [{t_ns, state}], "base_fee": [{t_ns, base_fee}]}``) for reports."""

    result: Summary
    verdicts: list[Verdict]
    windows: pa.Table
    steps: pa.Table | None
    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summary: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Dumped once: what summary.json holds, only the keys the sections set.
        object.__setattr__(self, "summary", self.result.model_dump(mode="json", exclude_unset=True))


def _message_counts(messages: MessageArrays) -> dict[str, int]:
    counts = messages.status_counts()
    # ``unsent`` rows are the live generator's shortfall at the run's end: offered, never sent.
    return {"sent": messages.count - counts["unsent"], "sequenced": int(messages.t_sequenced.present.sum()),
            **counts}


def _duration_s(history: History) -> float | None:
    """The traffic window: ``run.duration``, or up to ``t_end`` when the run was cut short."""
    duration_ns = scenario_section(history, "run").get("duration") or run_t_end_ns(history)
    t_end = run_t_end_ns(history)
    if (history.run_info.get("interrupted") or history.cut_off) and t_end:
        duration_ns = min(int(duration_ns), int(t_end)) if duration_ns else t_end
    return int(duration_ns) / NS_PER_S if duration_ns else None


def analyse(history: History) -> Analysis:
    """Compute every metric, checker verdict and SLO verdict of a run from its history: the
    arrays and tables several sections share first, then each section of ``SECTIONS`` in
    order, each result validated against its type on ``Summary``."""
    # A live run's delivery audit first, before the columns every metric shares are held: it
    # holds a few of the run's largest columns of its own for a moment (sends against
    # receipts), and its result is kept for the ``delivery`` checker and the summary.
    delivery_summary(history)
    messages = MessageArrays.from_history(history)
    large = messages.count >= HANDED_BACK_FROM_MESSAGES

    def step_done() -> None:
        """A step's freed memory handed back before the next, for a run of millions of
        messages (``HANDED_BACK_FROM_MESSAGES``)."""
        if large:
            release_freed_memory()

    step_done()
    # Metrics over all latencies first, so the array is let go before the heavier steps:
    # peak memory at ten million messages is the steady arrays plus one step's temporaries.
    latency_ns = messages.latency_ns()  # analyse's own array: partitioned in place
    latency, jitter, taken = latency_and_jitter_ms(latency_ns, scratch=True)
    messages.keep_latency_percentiles(taken)  # by_kind and by_agent ask for p50 and p99 of it again
    del latency_ns
    step_done()
    episodes = desync_episodes(history)
    faults = fault_windows(history)
    windows, by_window = window_table(history, None, messages, episodes, faults)
    # With a ramp the failure threshold walks its steps: the windows' latencies go before capacity's come.
    window_load = by_window if find_step_ramp(history.scenario) is None else None
    del by_window
    step_done()
    knee, steps, step_load = capacity(history, messages)
    horizon = horizon_ns(history, messages)
    if step_load is not None:
        failure = failure_over(history, step_load, episodes, horizon, ramp=True, messages=messages, faults=faults)
    else:
        assert window_load is not None  # no ramp: capacity found no steps
        failure = failure_over(history, window_load, episodes, horizon, ramp=False, messages=messages, faults=faults)
    del window_load, step_load  # their per-window latencies are summarised in ``windows``
    step_done()
    bp_timeline = backpressure_timeline(history)
    fee_timeline = base_fee_timeline(history)
    # In this order, steps that read a column follow the one that read it just before (the
    # column budget keeps a few, see ``History.ints``): msg_id (of messages and deliveries) and
    # t_sent, then t_sequenced.
    propagation = propagation_by_region_ms(history, messages)
    step_done()
    verdicts = run_checkers(history)
    step_done()
    duration_s = _duration_s(history)
    stages = stage_breakdown_ms(messages)
    step_done()
    counts = _message_counts(messages)
    by_kind, by_agent = by_group(history, messages, "kind"), by_group(history, messages, "agent")
    step_done()
    ipdv = ipdv_ms(messages)
    step_done()
    context = SectionContext(
        messages=messages, duration_s=duration_s, latency=latency, jitter={**jitter, **ipdv}, stages=stages,
        counts=counts, by_kind=by_kind, by_agent=by_agent, knee=knee, failure=failure, episodes=episodes,
        faults=faults, propagation=propagation, verdicts=verdicts, bp_timeline=bp_timeline,
        fee_timeline=fee_timeline, history=history,
    )
    for key, section in SECTIONS.items():
        value = section.compute(history, context)
        if value is not None or not section.absent_when_none:
            context.summary[key] = value
        step_done()
    result = Summary.model_validate(context.summary)
    # The report draws the committed messages' latency from these again.
    history.retain("messages", ["t_committed", "t_intended"])
    return Analysis(
        result=result,
        verdicts=verdicts,
        windows=windows,
        steps=steps,
        timelines={"backpressure": bp_timeline, "base_fee": fee_timeline},
    )


def failing_slos(analysis: Analysis, strict: bool = False) -> list[SloVerdict]:
    """The typed SLO results whose verdict is "fail"; with ``strict``, also "unknown" (no data
    to judge, e.g. nothing committed), as a CI gate should."""
    failing = {"fail", "unknown"} if strict else {"fail"}
    return [entry for entry in analysis.result.slo if entry.verdict in failing]


def slo_failed(analysis: Analysis, strict: bool = False) -> bool:
    """Whether any SLO fails (``failing_slos``): what makes a run exit 1."""
    return bool(failing_slos(analysis, strict))
