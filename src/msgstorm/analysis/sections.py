"""The summary's sections as a registry, as the checkers are (``analysis/delivery.py``).

Place in the pipeline: between the history and ``analysis.summary.analyse``, which loops
over ``SECTIONS`` in order. A section is one key of summary.json: its ``compute`` function of
the history (and of the ``SectionContext``: the arrays and tables several sections share,
computed once by ``analyse``), whose JSON-ready result is checked against the section's
typed model, the field of the same name on ``analysis.summary_model.Summary``. Validation
fails naming the section when a result does not fit its type, and ``analyse`` writes
summary.json from the typed models (``Summary.model_dump``), so the model is the contract
and not a description beside it; ``summary.schema.json`` is generated from the same model.

A new section is one function decorated with ``@section("key")`` (``absent_when_none`` for a
section that is left out of summary.json when it does not apply) plus its model as a field
of ``Summary``; ``tests/test_analysis_sections.py`` fails when the registry's keys and the
model's fields differ. Sections run in registration order, which is summary.json's key
order; ``slo`` comes last, since it reads the sections before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pyarrow as pa

from msgstorm.analysis._common import NS_PER_S, MessageArrays, rounded, run_t_end_ns, seconds
from msgstorm.analysis.auction import auction_summary
from msgstorm.analysis.audit import delivery_summary
from msgstorm.analysis.breakdown import gossip_backlog_summary
from msgstorm.analysis.byzantine import byzantine_summary
from msgstorm.analysis.collateral import collateral_summary
from msgstorm.analysis.connections import connections_summary
from msgstorm.analysis.consensus import consensus_summary
from msgstorm.analysis.control import control_summary
from msgstorm.analysis.cross import cross_summary
from msgstorm.analysis.crosschain import crosschain_summary, crosschain_table
from msgstorm.analysis.delivery import Verdict
from msgstorm.analysis.desync import desync_summary
from msgstorm.analysis.fairness import fairness_summary
from msgstorm.analysis.faults import faults_summary
from msgstorm.analysis.forks import forks_summary
from msgstorm.analysis.generator import generator_summary
from msgstorm.analysis.hops import hop_split
from msgstorm.analysis.integrity import integrity_summary, security_summary
from msgstorm.analysis.market import market_summary
from msgstorm.analysis.outage import outage_summary
from msgstorm.analysis.probes import probe_summary
from msgstorm.analysis.queue import (
    backpressure_summary,
    base_fee_summary,
    depth_samples,
    fee_unit,
    queue_summary,
)
from msgstorm.analysis.recovery import recovery_times
from msgstorm.analysis.relay import relay_summary
from msgstorm.analysis.rollup import rollup_summary
from msgstorm.analysis.safety import finality_summary
from msgstorm.analysis.sentinel import sentinel_summary
from msgstorm.analysis.summary_model import ProbePoint, Summary
from msgstorm.analysis.validators import validators_summary
from msgstorm.history.reader import History
from msgstorm.scenario.slo import evaluate_slos

__all__ = ["SECTIONS", "Section", "SectionContext", "SectionError", "section"]


class SectionError(ValueError):
    """A section that cannot be registered (a key ``Summary`` lacks, or one registered twice)."""


@dataclass
class SectionContext:
    """What several sections share, computed once by ``analyse`` before the sections run
    (in the order the column budget wants, see ``analyse``), and the summary so far."""

    messages: MessageArrays
    duration_s: float | None
    latency: dict[str, Any]
    jitter: dict[str, Any]
    stages: dict[str, Any]
    counts: dict[str, int]
    by_kind: dict[str, Any]
    by_agent: dict[str, Any]
    knee: dict[str, Any] | None
    failure: dict[str, Any] | None
    episodes: list[Any]
    faults: list[Any]
    propagation: dict[str, Any]
    verdicts: list[Verdict]
    bp_timeline: list[dict[str, Any]]
    fee_timeline: list[dict[str, Any]]
    history: History
    summary: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def crosschain(self) -> pa.Table | None:
        """The destination chain's table, read once for ``crosschain`` and ``collateral``."""
        return crosschain_table(self.history)


Compute = Callable[[History, SectionContext], Any]


@dataclass(frozen=True)
class Section:
    """One key of summary.json: how it is computed and whether it is left out when None."""

    key: str
    compute: Compute
    absent_when_none: bool = False

    @property
    def model(self) -> Any:
        """The section's typed result: the annotation of ``Summary``'s field of that key."""
        return Summary.model_fields[self.key].annotation


class SectionRegistry(Mapping[str, Section]):
    """Keys of summary.json to their sections, in registration order (summary.json's order)."""

    def __init__(self) -> None:
        self._entries: dict[str, Section] = {}

    def register(self, key: str, *, absent_when_none: bool = False) -> Callable[[Compute], Compute]:
        """Decorator: register the decorated compute function as the section ``key``."""
        if key not in Summary.model_fields:
            raise SectionError(f"summary section {key!r} has no field on Summary (analysis/summary_model.py)")
        if key in self._entries:
            raise SectionError(f"summary section {key!r} is registered twice")

        def add(compute: Compute) -> Compute:
            self._entries[key] = Section(key, compute, absent_when_none)
            return compute

        return add

    def __getitem__(self, key: str) -> Section:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


SECTIONS = SectionRegistry()
section = SECTIONS.register


def _run(history: History) -> Mapping[str, Any]:
    return history.run_info


def _run_column(column: str) -> Compute:
    """A section that is one column of the run row, as the run wrote it."""
    def compute(history: History, ctx: SectionContext) -> Any:
        return _run(history).get(column)
    return compute


for _key, _column in (("scenario", "scenario_name"), ("seed", "seed"), ("target", "target"),
                      ("msgstorm_version", "msgstorm_version"), ("scenario_hash", "scenario_hash")):
    section(_key)(_run_column(_column))


@section("duration_s")
def _duration(history: History, ctx: SectionContext) -> float | None:
    return seconds(run_t_end_ns(history))


@section("interrupted")
def _interrupted(history: History, ctx: SectionContext) -> bool:
    return bool(_run(history).get("interrupted", False)) or history.cut_off


@section("cut_off")
def _cut_off(history: History, ctx: SectionContext) -> bool:
    return history.cut_off


@section("offered_rate_per_s")
def _offered(history: History, ctx: SectionContext) -> float | None:
    return rounded(ctx.messages.count / ctx.duration_s) if ctx.duration_s else None


@section("throughput_per_s")
def _throughput(history: History, ctx: SectionContext) -> float | None:
    return _throughput_per_s(ctx.messages, ctx.duration_s)


def _throughput_per_s(messages: MessageArrays, duration_s: float | None) -> float | None:
    """Committed messages over the span from the first intended send to the later of the
    traffic window's end and the last commit: an outage after the last commit counts."""
    commits = messages.t_committed.values[messages.committed]
    if commits.size == 0:
        return 0.0 if messages.count or duration_s else None
    first_ns = int(messages.t_intended.min())
    end_ns = max(int(commits.max()), int(duration_s * NS_PER_S) if duration_s else 0)
    if end_ns > first_ns:
        return rounded(commits.size / ((end_ns - first_ns) / NS_PER_S))
    return rounded(commits.size / duration_s) if duration_s else None


@section("latency_ms")
def _latency(history: History, ctx: SectionContext) -> dict[str, Any]:
    return ctx.latency


@section("latency_stages_ms")
def _stages(history: History, ctx: SectionContext) -> dict[str, Any]:
    return ctx.stages


@section("jitter_ms")
def _jitter(history: History, ctx: SectionContext) -> dict[str, Any]:
    return ctx.jitter


@section("capacity")
def _capacity(history: History, ctx: SectionContext) -> dict[str, Any] | None:
    return ctx.knee


@section("failure_threshold")
def _failure(history: History, ctx: SectionContext) -> dict[str, Any] | None:
    return ctx.failure


@section("queue")
def _queue(history: History, ctx: SectionContext) -> Any:
    return queue_summary(depth_samples(history), ctx.messages, run_t_end_ns(history))


@section("backpressure")
def _backpressure(history: History, ctx: SectionContext) -> Any:
    return backpressure_summary(ctx.bp_timeline)


@section("base_fee")
def _base_fee(history: History, ctx: SectionContext) -> Any:
    return base_fee_summary(ctx.fee_timeline, fee_unit(history.scenario))


@section("messages")
def _messages(history: History, ctx: SectionContext) -> dict[str, int]:
    return ctx.counts


@section("by_kind")
def _by_kind(history: History, ctx: SectionContext) -> dict[str, Any]:
    return ctx.by_kind


@section("by_agent")
def _by_agent(history: History, ctx: SectionContext) -> dict[str, Any]:
    return ctx.by_agent


@section("gossip_backlog")
def _gossip_backlog(history: History, ctx: SectionContext) -> Any:
    return gossip_backlog_summary(history)


@section("generator")
def _generator(history: History, ctx: SectionContext) -> Any:
    return generator_summary(history)


@section("delivery")
def _delivery(history: History, ctx: SectionContext) -> Any:
    return delivery_summary(history)


@section("connections")
def _connections(history: History, ctx: SectionContext) -> Any:
    return connections_summary(history)


@section("market")
def _market(history: History, ctx: SectionContext) -> Any:
    """The market's summary, with its probe books' curve (``market.probes``) when the run had some."""
    market = market_summary(history)
    probes = probe_summary(history)
    if market is not None and probes is not None:
        return market.model_copy(update={"probes": [ProbePoint.model_validate(point) for point in probes]})
    return market


@section("desync")
def _desync(history: History, ctx: SectionContext) -> Any:
    return desync_summary(ctx.episodes)


@section("propagation_ms")
def _propagation(history: History, ctx: SectionContext) -> dict[str, Any]:
    return ctx.propagation


@section("faults")
def _faults(history: History, ctx: SectionContext) -> Any:
    return faults_summary(ctx.faults, recovery_times(ctx.messages, ctx.faults, run_t_end_ns(history)))


@section("checks")
def _checks(history: History, ctx: SectionContext) -> list[dict[str, Any]]:
    return [{"name": v.name, "verdict": v.status, "detail": v.detail} for v in ctx.verdicts]


# Only runs with front-runners or an ordering protocol have one.
section("fairness", absent_when_none=True)(lambda history, ctx: fairness_summary(history))
# Only runs whose batch auction cleared limit orders have one.
section("auction", absent_when_none=True)(lambda history, ctx: auction_summary(history))
# Only runs with producers across the nodes have one.
section("forks", absent_when_none=True)(lambda history, ctx: forks_summary(history))
# Only sim runs with a relay protocol other than push have one; hop_split: the same runs.
section("relay", absent_when_none=True)(lambda history, ctx: relay_summary(history))
section("hop_split", absent_when_none=True)(lambda history, ctx: hop_split(history))
# Only runs with finality by votes have one.
section("finality", absent_when_none=True)(lambda history, ctx: finality_summary(history))
# Only runs with round-based BFT consensus (a heights table) have one.
section("consensus", absent_when_none=True)(lambda history, ctx: consensus_summary(history))
# Only runs whose commits are per validator with their rounds (target cometbft) have one.
section("validators", absent_when_none=True)(lambda history, ctx: validators_summary(history))
# Only [crosschain] runs (whose history holds the destination's) have one; collateral: with
# positions = "destination".
section("crosschain", absent_when_none=True)(lambda history, ctx: crosschain_summary(history, ctx.crosschain))
# Only [rollup] runs write the commits, batches and l1_blocks tables (sim/rollup/).
section("rollup", absent_when_none=True)(lambda history, ctx: rollup_summary(history))
# Only runs with a sequencer_outage fault (sim/rollup/outage.py).
section("outages", absent_when_none=True)(lambda history, ctx: outage_summary(history))
# Only runs with [market.sentinel] (market/sentinel.py).
section("sentinel", absent_when_none=True)(lambda history, ctx: sentinel_summary(history))
# Only runs with cross-margin accounts (market/cross_margin.py).
section("cross", absent_when_none=True)(lambda history, ctx: cross_summary(history))
section("collateral", absent_when_none=True)(lambda history, ctx: collateral_summary(history, ctx.crosschain))
# Only runs whose self-healing controllers decided something have one.
section("control", absent_when_none=True)(lambda history, ctx: control_summary(history))
# security: only runs with [security]; integrity: with [security] or an adversary.
section("security", absent_when_none=True)(lambda history, ctx: security_summary(history))
section("integrity", absent_when_none=True)(lambda history, ctx: integrity_summary(history))
# Only runs with a fault of byzantine nodes have one.
section("byzantine", absent_when_none=True)(lambda history, ctx: byzantine_summary(history))


@section("slo")
def _slo(history: History, ctx: SectionContext) -> list[dict[str, Any]]:
    """Last: an SLO reads the sections before it."""
    return evaluate_slos(ctx.summary, dict(history.scenario.get("slo") or {}))
