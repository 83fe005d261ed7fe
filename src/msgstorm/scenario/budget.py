"""The work a scenario asks for, estimated before anything runs, and the limits it must fit.

Place in the pipeline: the last step of loading (``loader.parse_scenario``), after validation
and the cross-checks, so ``msgstorm validate`` and ``msgstorm run`` refuse a scenario that
cannot finish on this machine before they create anything, with file:line:field and the
estimate. The estimate is closed-form (expected counts from each arrival process), cheap, and
errs high: a Hawkes burst or a Poisson fluctuation is covered by ``_PEAK_MARGIN``.

The limits are the ``[limits]`` table of the scenario (defaults below, documented in
docs/scenario.md); a user raises one deliberately, e.g. ``--set limits.max_messages=500_000_000``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from msgstorm.scenario.errors import Loc
from msgstorm.scenario.registry import TARGETS
from msgstorm.scenario.schema import CommitRevealSpec, Scenario
from msgstorm.scenario.traffic import (
    AgentSpec,
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

__all__ = ["STAGED_MESSAGES", "WorkEstimate", "check_budget", "estimate_live", "estimate_simulated", "estimate_work",
           "memory_available_bytes",
           "forwarding_degree", "messages_per_agent", "sim_wall_s", "wall_time"]

_NS_PER_S = 1e9
_DRAIN_SLACK_NS = 60 * 1e9
# A live generator builds the payloads of this many messages at once (and their frames, a
# second copy): with messages of many MB that alone can outgrow the machine.
STAGED_MESSAGES = 2048
# A size with no upper bound (lognormal, ...) is budgeted at this multiple of its mean.
_UNBOUNDED_SIZE_FACTOR = 3.0
# A traffic window's count can exceed its expectation (Poisson noise, Hawkes clusters).
_PEAK_MARGIN = 3.0
# Memory coefficients, measured on the examples with /usr/bin/time -v (peak RSS) and rounded
# up: the interpreter, numpy, pyarrow, numba and the loaded kernels; a message of a traffic
# window in its batch arrays and Python list; a message waiting in the sequencer's queue;
# an agent instance (its random stream and arrival state); a node (gossip arrays, mempool);
# a message row held by the analysis (every column of the messages table).
_BASE_BYTES = 350 * 2**20
_WINDOW_MESSAGE_BYTES = 200
_QUEUED_MESSAGE_BYTES = 400
_INSTANCE_BYTES = 10_000
_NODE_BYTES = 64 * 2**10
_ANALYSED_MESSAGE_BYTES = 700
# A live run's peak is the largest of three processes, each measured whole (peak RSS of
# the examples and of an OpenMessaging Benchmark workload sending every message, sampled
# per process, docs/performance.md "Live memory against its estimate") and rounded up:
# msgstorm's own, which waits (190-225 MB: the interpreter, the live drivers, numba;
# ``_LIVE_BASE_BYTES``); the recording, forked from it (the same start) and growing by the
# send time of each message and the receipts and acks held to the last intake, which adds
# each message's first time and seq_no (50-80 bytes a message sent with its receipt); and
# the analysis, in a fresh interpreter (under 100 MB at its start), with compact columns a
# message and a delivery row. A traffic window held by the generator and the recorder (its
# columns, up to four windows at once) costs ``_LIVE_WINDOW_MESSAGE_BYTES`` a message.
_LIVE_BASE_BYTES = 300 * 2**20
_LIVE_WINDOW_MESSAGE_BYTES = 80
_RECORDED_MESSAGE_BYTES = 80
_RECORDED_DELIVERY_BYTES = 16
_LIVE_ANALYSED_MESSAGE_BYTES = 60
_LIVE_ANALYSED_DELIVERY_BYTES = 10
# A market account: its columns, sorted line index and the analysis's copies; a price step.
_ACCOUNT_BYTES = 400
_PRICE_STEP_BYTES = 100
# Wall-time coefficients: this engine's measured cost of each kind of work, on the 2-core VM
# of docs/performance.md ("Wall time before the run", where each is derived and checked with
# benchmarks/wall_estimate.py). Start-up, analysis and report files of a small run; a message
# through the one-node compiled loop; a message through the many-node engine (the sequencer
# and the kernel's returns to Python); a gossip receipt in the compiled kernel; with
# producers, a block at a node (its view, validation, desync) and a message at a node (its
# mempool), both in Python.
_START_S = 2.5
_SOLO_MESSAGE_S = 0.6e-6
_MESSAGE_S = 10e-6
_RECEIPT_S = 0.1e-6
_PRODUCER_BLOCK_NODE_S = 40e-6
_PRODUCER_MESSAGE_NODE_S = 10e-6
# Round-based consensus (``blocks.producers.consensus``): a proposal or vote at a node (its
# receipts in the kernel, which counts it, and its share of the few handed back to the Python
# state machine, sim/tendermint.py); a height lasts about timeout_commit + execution + the
# proposal's and two vote rounds' trips, taken as _CONSENSUS_TRIPS_S.
_CONSENSUS_VOTE_NODE_S = 6.4e-6
_CONSENSUS_TRIPS_S = 0.3
# A live run lasts its duration and its drain at most, after the servers start.
_LIVE_START_S = 5.0


@dataclass(frozen=True)
class WorkEstimate:
    """Expected work of one run (counts are expectations, memory a peak)."""

    messages: float
    peak_window_messages: float
    instances: int
    nodes: int
    traffic_windows: int
    analysis_windows: int
    queue_samples: int
    blocks: int
    gossip_receipts: float
    delivery_rows: float
    queued_messages: float
    memory_bytes: float
    live_consumers: int = 0  # a live target's consumers (0: the simulator)
    generator_processes: int = 1  # processes that build and send messages (a live target's)
    accounts: int = 0  # [market] accounts (a file's rows counted)
    price_steps: int = 0  # [market] steps of every instrument's price path
    wall_s: float = 0.0  # expected wall time of the run on the machine of docs/performance.md

    @property
    def leaves_out(self) -> str:
        """What ``wall_s`` does not count, as a clause after it ("" when it counts it all):
        the market's work (its accounts marked at each price step, its liquidations) has no
        coefficient, and a market replay spends most of its time there."""
        if not (self.accounts or self.price_steps):
            return ""
        return " before the market's work (not estimated: a market run can take many times longer)"

    def describe(self) -> str:
        if self.live_consumers:  # a live run has no simulated nodes, gossip, queue or blocks
            return (f"about {self.messages:,.0f} messages ({self.peak_window_messages:,.0f} in the busiest "
                    f"window), {self.live_consumers:,} consumer{'s' if self.live_consumers != 1 else ''}, {self.analysis_windows:,} windows, "
                    f"{self.delivery_rows:,.0f} delivery rows, peak memory about {_gib(self.memory_bytes)}, "
                    f"wall time about {wall_time(self.wall_s)}")
        market = (f", {self.accounts:,} accounts, {self.price_steps:,} price steps"
                  if self.accounts or self.price_steps else "")
        return (f"about {self.messages:,.0f} messages ({self.peak_window_messages:,.0f} in the busiest "
                f"window), {self.nodes:,} nodes, {self.gossip_receipts:,.0f} gossip receipts, "
                f"{self.analysis_windows:,} windows, {self.queue_samples:,} queue samples, "
                f"{self.blocks:,} blocks, {self.delivery_rows:,.0f} delivery rows{market}, "
                f"peak memory about {_gib(self.memory_bytes)}, "
                f"wall time about {wall_time(self.wall_s)}{self.leaves_out}")


def wall_time(seconds: float) -> str:
    """An estimated wall time as a person reads it: ``12 s``, ``4 min``, ``1.7 h``."""
    if seconds < 90:
        return f"{seconds:,.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"


def sim_wall_s(scenario: Scenario, messages: float, relayed: float, receipts: float, blocks: int,
               nodes: int) -> float:
    """The simulator's expected wall time for this work (the coefficients above): start-up
    and report, each message through its engine, each gossip receipt, and with producers each
    block and each relayed message at each node. Under a relay sample only the ``relayed``
    messages go through the engine one by one; the rest cost about what a message of the
    one-node loop does (traffic, the pool's columns, their rows)."""
    if nodes <= 1:
        return _START_S + messages * _SOLO_MESSAGE_S
    wall = (_START_S + relayed * _MESSAGE_S + (messages - relayed) * _SOLO_MESSAGE_S
            + receipts * _RECEIPT_S)
    producers = scenario.blocks.producers
    if producers is not None:
        wall += nodes * (blocks * _PRODUCER_BLOCK_NODE_S + relayed * _PRODUCER_MESSAGE_NODE_S)
    if producers is not None and producers.consensus is not None:
        tendermint = producers.tendermint
        height_s = (tendermint.timeout_commit + tendermint.execution) / _NS_PER_S + _CONSENSUS_TRIPS_S
        heights = (scenario.run.duration + scenario.run.drain) / _NS_PER_S / height_s
        validators = len(producers.nodes) or producers.count or nodes
        wall += heights * 2 * validators * nodes * _CONSENSUS_VOTE_NODE_S
    return wall


def _gib(size: float) -> str:
    return f"{size / 2**30:,.1f} GiB" if size >= 2**30 else f"{size / 2**20:,.0f} MiB"


def _replay_rows(path: str) -> float:
    """Rows of a replay file: Parquet metadata, or the lines of a CSV (no parsing)."""
    file = Path(path)
    try:
        if file.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return float(pq.ParquetFile(file).metadata.num_rows)
        with file.open("rb") as handle:
            return float(sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")))
    except (OSError, ValueError):
        return 0.0  # the traffic layer reports an unreadable file when it opens it


def _arrival(spec: ArrivalSpec, span_ns: float) -> tuple[float, float, str]:
    """(expected messages per instance over ``span_ns``, peak rate per s, the field that sets
    the rate) for one arrival process."""
    span_s = span_ns / _NS_PER_S
    if isinstance(spec, (ConstantArrival, PoissonArrival)):
        return spec.rate * span_s, spec.rate, "rate"
    if isinstance(spec, BurstArrival):
        return spec.rate * span_s, spec.rate, "rate"
    if isinstance(spec, HawkesArrival):
        mean_rate = spec.baseline / (1.0 - spec.branching)
        return mean_rate * span_s, mean_rate, "baseline"
    if isinstance(spec, StepRampArrival):
        total, peak = 0.0, 0.0
        for k in range(spec.steps):
            begins = k * spec.every
            if begins >= span_ns:
                break
            level = spec.start + k * spec.step
            total += level * min(spec.every, span_ns - begins) / _NS_PER_S
            peak = max(peak, level)
        return total, peak, "step"
    if isinstance(spec, LinearRampArrival):
        return (spec.start + spec.end) / 2 * span_s, max(spec.start, spec.end), "end"
    if isinstance(spec, ReplayArrival):
        rows = _replay_rows(spec.path)
        return rows, rows / max(span_s, 1e-9), "path"
    if isinstance(spec, PhasesArrival):
        total, peak, left, field = 0.0, 0.0, span_ns, "phases"
        for phase in spec.phases:
            if left <= 0:
                break
            count, rate, _ = _arrival(phase.arrival, min(phase.duration, left))
            total, peak, left = total + count, max(peak, rate), left - phase.duration
        return total, peak, field
    raise TypeError(f"unknown arrival process {spec!r}")  # pragma: no cover - schema is closed


def _agent_span_ns(agent: AgentSpec, duration_ns: int) -> float:
    stop = duration_ns if agent.stop is None else min(agent.stop, duration_ns)
    return float(max(0, stop - agent.start))


def forwarding_degree(scenario: Scenario, nodes: int) -> int:
    """The peers a node forwards to, before the overlay is drawn (a mesh's degree, or its
    peers when it floods), at most the other nodes."""
    gossip = scenario.gossip
    return min(gossip.degree if gossip.mode == "mesh" else gossip.peers, gossip.peers, max(nodes - 1, 0))


def messages_per_agent(scenario: Scenario) -> list[float]:
    """The messages each agent is expected to send over the run (its instances together)."""
    return [messages for messages, _, _ in _per_agent(scenario)]


def _per_agent(scenario: Scenario) -> list[tuple[float, float, Loc]]:
    """(messages, peak rate, the field to blame) for each agent."""
    rows: list[tuple[float, float, Loc]] = []
    for index, agent in enumerate(scenario.agents):
        per_instance, peak, field = _arrival(agent.arrival, _agent_span_ns(agent, scenario.run.duration))
        # Under commit-reveal each committed kind's message is followed by its reveal.
        doubled = 1.0 + _revealed_share(scenario, agent)
        rows.append((per_instance * agent.count * doubled, peak * agent.count * doubled,
                     ("agents", index, "arrival", field)))
    return rows


def _revealed_share(scenario: Scenario, agent: AgentSpec) -> float:
    """The share of an agent's messages a ``commit_reveal`` sequencer reveals in a second message."""
    if scenario.sequencer.policy != "commit_reveal":
        return 0.0
    kinds = (scenario.sequencer.commit_reveal or CommitRevealSpec()).kinds
    return sum(weight for kind, weight in agent.kind_mix.items() if kind in kinds)


def _service_capacity_per_s(scenario: Scenario) -> float:
    mean_ns = scenario.sequencer.service.mean
    return math.inf if mean_ns <= 0 else scenario.sequencer.workers * _NS_PER_S / mean_ns


def _queue_bound(scenario: Scenario) -> float:
    """The most messages backpressure lets wait in the queue (inf when it does not bound it)."""
    backpressure = scenario.backpressure
    for name in ("capacity", "high"):
        bound = getattr(backpressure, name, None)
        if isinstance(bound, int):
            return float(bound)
    return math.inf


def estimate_work(scenario: Scenario) -> WorkEstimate:
    """The work and memory a run of ``scenario`` takes, by its target's model (``Target.estimate``)."""
    estimate: WorkEstimate = TARGETS[scenario.target].estimate(scenario)
    return estimate


def estimate_live(scenario: Scenario, generator_processes: int = 1) -> WorkEstimate:
    """A live target's estimate (``_estimate_live``), its generator sending from
    ``generator_processes`` processes (the target's driver says how many)."""
    agents = _per_agent(scenario)
    return _estimate_live(scenario, sum(count for count, _, _ in agents), sum(rate for _, rate, _ in agents),
                          generator_processes)


def estimate_simulated(scenario: Scenario) -> WorkEstimate:
    """The simulator's estimate: the sequencer's backlog, the relay's receipts, the market."""
    run = scenario.run
    agents = _per_agent(scenario)
    messages = sum(count for count, _, _ in agents)
    peak_rate = sum(rate for _, rate, _ in agents)
    # An overloaded sequencer holds the excess of offered over service capacity in memory.
    excess_per_s = max(0.0, peak_rate - _service_capacity_per_s(scenario))
    queued = min(messages, excess_per_s * run.duration / _NS_PER_S, _queue_bound(scenario))
    # The run stops once every message is settled or stranded, so a long drain (even one
    # meaning "never") lasts about as long as the backlog takes to serve, plus slack.
    backlog_ns = queued * scenario.sequencer.service.mean / scenario.sequencer.workers
    horizon_ns = run.duration + min(run.drain, backlog_ns + _DRAIN_SLACK_NS)
    peak_window = min(messages, peak_rate * run.window / _NS_PER_S * _PEAK_MARGIN)
    nodes = sum(scenario.network.region_counts())
    fanout = forwarding_degree(scenario, nodes)
    blocks = math.ceil(horizon_ns / scenario.blocks.interval)
    # Under a relay sample only that share of the messages is relayed receipt by receipt.
    relayed = messages if scenario.network.relay.sample is None else messages / scenario.network.relay.sample_stride
    receipts = (relayed + blocks) * nodes * max(fanout, 1) if nodes > 1 else 0.0
    deliveries = min(float(scenario.history.max_deliveries), relayed * nodes * scenario.history.delivery_sample)
    instances = sum(agent.count for agent in scenario.agents)
    accounts, price_steps = _market_work(scenario)
    memory = (_BASE_BYTES + peak_window * _WINDOW_MESSAGE_BYTES + queued * _QUEUED_MESSAGE_BYTES
              + instances * _INSTANCE_BYTES + nodes * _NODE_BYTES + messages * _ANALYSED_MESSAGE_BYTES
              + accounts * _ACCOUNT_BYTES + price_steps * _PRICE_STEP_BYTES)
    return WorkEstimate(
        accounts=accounts, price_steps=price_steps,
        messages=messages, peak_window_messages=peak_window, instances=instances, nodes=nodes,
        traffic_windows=math.ceil(run.duration / run.window),
        analysis_windows=math.ceil(horizon_ns / run.window),
        queue_samples=math.ceil(horizon_ns / run.sample_interval), blocks=blocks,
        gossip_receipts=receipts, delivery_rows=deliveries, queued_messages=queued, memory_bytes=memory,
        wall_s=sim_wall_s(scenario, messages, relayed, receipts, blocks, nodes),
    )


def _market_work(scenario: Scenario) -> tuple[int, int]:
    """(accounts, price steps over every instrument) of the scenario's market."""
    market = scenario.market
    if market is None:
        return 0, 0
    accounts = sum(int(_replay_rows(group.file)) - (0 if group.file.endswith(".parquet") else 1)
                   if group.file is not None else group.count
                   for group in market.accounts)
    steps = -(-(scenario.run.duration + scenario.run.drain) // market.resolution) + 1
    return max(accounts, 0), steps * len(market.instruments)


def _estimate_live(scenario: Scenario, messages: float, peak_rate: float,
                   generator_processes: int = 1) -> WorkEstimate:
    """A live run: the broker, not msgstorm, holds the backlog; every consumer may write a
    delivery row per message (fan-out); the run lasts its duration and drain at most."""
    run = scenario.run
    horizon_ns = run.duration + run.drain
    peak_window = min(messages, peak_rate * run.window / _NS_PER_S * _PEAK_MARGIN)
    consumers = scenario.live.consumers
    deliveries = min(float(scenario.history.max_deliveries), messages * consumers)
    instances = sum(agent.count for agent in scenario.agents)
    recording = messages * _RECORDED_MESSAGE_BYTES + deliveries * _RECORDED_DELIVERY_BYTES
    analysis = messages * _LIVE_ANALYSED_MESSAGE_BYTES + deliveries * _LIVE_ANALYSED_DELIVERY_BYTES
    memory = (_LIVE_BASE_BYTES + peak_window * _LIVE_WINDOW_MESSAGE_BYTES + instances * _INSTANCE_BYTES
              + max(recording, analysis))
    return WorkEstimate(
        messages=messages, peak_window_messages=peak_window, instances=instances, nodes=0,
        traffic_windows=math.ceil(run.duration / run.window),
        analysis_windows=math.ceil(horizon_ns / run.window), queue_samples=0, blocks=0,
        gossip_receipts=0.0, delivery_rows=deliveries, queued_messages=0.0, memory_bytes=memory,
        live_consumers=consumers, generator_processes=generator_processes,
        wall_s=_LIVE_START_S + horizon_ns / _NS_PER_S,
    )


def memory_available_bytes() -> float:
    """Memory this process can still use: MemAvailable from /proc/meminfo, else physical."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def _staged_bytes(scenario: Scenario, processes: int) -> tuple[float, int]:
    """What one staged slice of the largest messages takes in each of the ``processes``
    generator processes, payloads and frames, over all of them; and the agent whose
    messages are largest."""
    sizes = [agent.size.upper if agent.size.upper is not None else _UNBOUNDED_SIZE_FACTOR * agent.size.mean
             for agent in scenario.agents]
    index = max(range(len(sizes)), key=lambda i: sizes[i])
    return STAGED_MESSAGES * sizes[index] * 2 * processes, index


def _largest(agents: list[tuple[float, float, Loc]], by: int) -> Loc:
    return max(agents, key=lambda row: row[by])[2] if agents else ("agents",)


def check_budget(scenario: Scenario, estimate: WorkEstimate | None = None) -> list[tuple[Loc, str]]:
    """Every limit the scenario's estimate exceeds, as (field to blame, message)."""
    work = estimate or estimate_work(scenario)
    limits = scenario.limits
    agents = _per_agent(scenario)
    found: list[tuple[Loc, str]] = []

    def over(value: float, limit: float, what: str, name: str, blame: Loc) -> None:
        if value > limit:
            found.append((blame, f"{what}: about {value:,.0f}, over limits.{name} = {limit:,.0f}; "
                                 f"shorten or slow the run, or raise the limit with "
                                 f"--set limits.{name}=N if this machine can take it"))

    over(work.messages, limits.max_messages, "messages", "max_messages", _largest(agents, 0))
    over(work.peak_window_messages, limits.max_window_messages, "messages in one traffic window",
         "max_window_messages", _largest(agents, 1))
    biggest_count = max(range(len(scenario.agents)), key=lambda i: scenario.agents[i].count)
    over(work.instances, limits.max_instances, "agent instances", "max_instances", ("agents", biggest_count, "count"))
    over(work.analysis_windows, limits.max_windows, "analysis windows", "max_windows", ("run", "window"))
    over(work.queue_samples, limits.max_samples, "queue samples", "max_samples", ("run", "sample_interval"))
    over(work.blocks, limits.max_blocks, "blocks", "max_blocks", ("blocks", "interval"))
    receipts_blame = ("blocks", "interval") if work.blocks > work.messages else _largest(agents, 0)
    over(work.gossip_receipts, limits.max_receipts, "gossip receipts", "max_receipts", receipts_blame)
    market = scenario.market
    if market is not None:
        steps = -(-(scenario.run.duration + scenario.run.drain) // market.resolution) + 1
        over(steps * len(market.instruments), limits.max_price_steps, "price steps", "max_price_steps",
             ("market", "resolution"))
        biggest = max(range(len(market.accounts)), key=lambda i: market.accounts[i].count, default=None)
        over(work.accounts, limits.max_accounts, "accounts", "max_accounts",
             ("market", "accounts", biggest, "count") if biggest is not None else ("market", "accounts"))
    if work.wall_s > limits.max_wall_time / _NS_PER_S:
        found.append((("limits", "max_wall_time"),
                      f"wall time: about {wall_time(work.wall_s)}{work.leaves_out} "
                      "on the machine of docs/performance.md, over "
                      f"limits.max_wall_time = {wall_time(limits.max_wall_time / _NS_PER_S)}; shorten or shrink "
                      "the run, or allow it with --max-time (e.g. --max-time 3h) or --set "
                      "limits.max_wall_time=... if you mean to wait"))
    available = memory_available_bytes()
    if work.live_consumers and scenario.agents:
        staged, index = _staged_bytes(scenario, work.generator_processes)
        if staged > available * limits.memory:
            found.append((("agents", index, "size"), f"message size: the live generator builds {STAGED_MESSAGES:,} "
                          f"messages' payloads and frames at once, about {_gib(staged)}, over limits.memory = "
                          f"{limits.memory:.0%} of the {_gib(available)} available now; use smaller messages"))
    if work.memory_bytes > available * limits.memory:
        found.append((_largest(agents, 1), f"memory: about {_gib(work.memory_bytes)}, over limits.memory = "
                      f"{limits.memory:.0%} of the {_gib(available)} available now; shorten or slow the run, "
                      "or raise the limit with --set limits.memory=... if you know better"))
    if found:
        found.append(((), f"estimated work: {work.describe()}"))
    return found
