"""The scenario schema: one frozen, validated description of a stress test.

``scenario.toml`` is parsed by ``msgstorm.scenario.loader`` into these pydantic models.
Every quantity is converted to a fixed unit here (ns, messages/s, bytes, bits/s,
fractions), so traffic, faults, the simulator and analysis never parse strings.
Cross-references (region and node names) are checked in ``msgstorm.scenario.refs``.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from msgstorm.scenario.control import ControllerSpec, LaneSpec
from msgstorm.scenario.crosschain import CrosschainSpec
from msgstorm.scenario.distributions import (
    Constant,
    DurationDist,
    DurationNs,
    Exponential,
    NumberDist,
    SizeDist,
)
from msgstorm.scenario.kinds import MESSAGE_KINDS, MessageKind
from msgstorm.scenario.market import MarketSpec
from msgstorm.scenario.network import RelaySpec
from msgstorm.scenario.registry import PRODUCER_RULES, TOXICS
from msgstorm.scenario.security import SecuritySpec
from msgstorm.scenario.units import parse_bandwidth_bps, parse_fraction, parse_rate_per_s

__all__ = [
    "COMPOSITE_FAULT_KINDS",
    "MAX_FAULT_DRAWS",
    "MESSAGE_KINDS",
    "AgentSpec",
    "AnvilSpec",
    "AnalysisSpec",
    "ArrivalSpec",
    "BackpressureSpec",
    "BatchAuctionSpec",
    "BlocksSpec",
    "BridgeFault",
    "CensorFault",
    "CensorNodesFault",
    "DelayNodesFault",
    "EclipseFault",
    "EquivocateFault",
    "EquivocateVotesFault",
    "WithholdVotesFault",
    "CommitRevealSpec",
    "DesyncSpec",
    "FairOrderSpec",
    "FloodInvalidFault",
    "FaultSpec",
    "GossipSpec",
    "HistorySpec",
    "JetStreamSpec",
    "LimitsSpec",
    "LinkModel",
    "LiveSpec",
    "MarketSpec",
    "MixEntry",
    "ReorderNodesFault",
    "NemesisFault",
    "NetworkSpec",
    "OneFault",
    "OracleFault",
    "PauseFault",
    "ProducersSpec",
    "RestartFault",
    "RedisSpec",
    "RelaySpec",
    "ReplayFault",
    "RunSpec",
    "Scenario",
    "ScriptFault",
    "SecuritySpec",
    "SequencerSpec",
    "TamperFault",
    "TOXIC_SETTINGS",
    "ToxicFault",
    "TwinsFault",
    "ZmqSpec",
    "fault_entries",
    "nemesis_draws",
]


RatePerS = Annotated[float, BeforeValidator(parse_rate_per_s), Field(ge=0)]
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
BandwidthBps = Annotated[float, BeforeValidator(parse_bandwidth_bps)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- run ---------------------------------------------------------------------------------


class RunSpec(_Spec):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(default=1, ge=0, lt=2**63)  # the history's int64 seed column
    duration: DurationNs = Field(gt=0)
    drain: DurationNs = 5_000_000_000
    window: DurationNs = Field(default=1_000_000_000, gt=0)
    sample_interval: DurationNs = Field(default=100_000_000, gt=0)


# --- network -----------------------------------------------------------------------------


class LinkModel(_Spec):
    """How one link's delay varies around its base one-way latency.

    constant: base; uniform: base + U(0, jitter); normal: base + N(0, jitter) truncated at 0;
    lognormal: base x LN(0, sigma); pareto: base x Pareto(1, alpha) (heavy tail);
    empirical: a delay drawn from ``column`` of the CSV or Parquet file ``samples`` (in
    ``unit``), the base unused; plus ``overhead``, a fixed delay every transmission pays on top.
    """

    dist: Literal["constant", "uniform", "normal", "lognormal", "pareto", "empirical"] = "constant"
    jitter: DurationNs = 0
    sigma: float = Field(default=0.1, ge=0, le=3)
    alpha: float = Field(default=3.0, gt=1)
    overhead: DurationNs = Field(default=0, ge=0, le=(1 << 40))
    samples: str | None = None
    column: str | None = None
    unit: Literal["ns", "us", "ms", "s"] = "ms"

    @model_validator(mode="after")
    def _empirical_needs_samples(self) -> LinkModel:
        if (self.dist == "empirical") != (self.samples is not None and self.column is not None):
            raise ValueError("dist = \"empirical\" needs samples (a CSV or Parquet file) and column, and only "
                             "it takes them")
        return self

    @model_serializer(mode="wrap")
    def _without_samples(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without samples a link model dumps (and hashes) as it did before they existed."""
        data: dict[str, Any] = handler(self)
        if self.dist != "empirical":
            for name in ("samples", "column", "unit"):
                data.pop(name, None)
        return data


class LinkOverride(_Spec):
    between: tuple[str, str]
    latency: DurationNs
    dist: LinkModel | None = None
    one_way: bool = False


class NetworkSpec(_Spec):
    regions: list[str] = Field(default_factory=lambda: ["us-east"], min_length=1)
    nodes_per_region: int = Field(default=4, ge=1, le=100_000)
    nodes: dict[str, Annotated[int, Field(ge=0, le=100_000)]] = Field(default_factory=dict)
    shares: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    total_nodes: int | None = Field(default=None, ge=1, le=1_000_000)
    intra_region_latency: DurationNs = 500_000
    latency: dict[str, DurationNs] = Field(default_factory=dict)
    links: list[LinkOverride] = Field(default_factory=list)
    link: LinkModel = LinkModel()
    bandwidth: BandwidthBps = 1e9
    upload: dict[str, BandwidthBps] = Field(default_factory=dict)
    download: dict[str, BandwidthBps] = Field(default_factory=dict)
    uplink: Literal["serial", "fair_share", "held"] = "serial"
    processing: DurationDist = Field(default_factory=lambda: Constant(value=20_000))
    relay: RelaySpec = RelaySpec()

    @model_validator(mode="after")
    def _unique_regions(self) -> NetworkSpec:
        if len(set(self.regions)) != len(self.regions):
            raise ValueError("region names must be unique")
        if (self.total_nodes is None) != (not self.shares):
            raise ValueError("give shares and total_nodes together (or neither)")
        if self.shares and self.nodes:
            raise ValueError("give nodes (counts per region) or shares with total_nodes, not both")
        if self.shares and abs(math.fsum(self.shares.values()) - 1.0) > 1e-6:
            raise ValueError(f"shares must add up to 1, not {math.fsum(self.shares.values()):g}")
        if sum(self.region_counts()) == 0:
            raise ValueError("the network has no nodes")
        for field in ("nodes", "shares", "upload", "download"):
            unknown = sorted(set(getattr(self, field)) - set(self.regions))
            if unknown:
                raise ValueError(f"{field} names regions not in network.regions: {unknown} (regions: {self.regions})")
        return self

    def region_counts(self) -> list[int]:
        """Nodes in each region, in ``regions`` order: ``nodes`` (others ``nodes_per_region``),
        or ``total_nodes`` split by ``shares`` (largest remainder: the counts add up to the
        total, and a region takes an extra node before one whose remainder is smaller, ties
        to the region listed first; regions without a share get none)."""
        if not self.shares or self.total_nodes is None:
            return [self.nodes.get(region, self.nodes_per_region) for region in self.regions]
        exact = [self.shares.get(region, 0.0) * self.total_nodes for region in self.regions]
        counts = [math.floor(x) for x in exact]
        left = self.total_nodes - sum(counts)
        by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
        for i in by_remainder[:left]:
            counts[i] += 1
        return counts

    def upload_bps(self, region: str) -> float:
        """A region's nodes' upload bandwidth (bits/s, 0: unlimited)."""
        return self.upload.get(region, self.bandwidth)

    def download_bps(self, region: str) -> float:
        """A region's nodes' download bandwidth (bits/s, 0: unlimited)."""
        return self.download.get(region, 0.0)


class GossipSpec(_Spec):
    mode: Literal["mesh", "flood"] = "mesh"
    degree: int = Field(default=8, ge=1)
    peers: int = Field(default=16, ge=1)
    outbound_cdf: list[Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=list)
    max_inbound: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _a_distribution(self) -> GossipSpec:
        cdf = self.outbound_cdf
        if cdf and (any(b < a for a, b in itertools.pairwise(cdf)) or cdf[-1] != 1.0):
            raise ValueError("outbound_cdf must not decrease and must end at 1.0 (P(outbound <= i + 1) for entry i)")
        return self


# --- sequencer, blocks, backpressure -------------------------------------------------------


class BatchAuctionSpec(_Spec):
    """``policy = "batch_auction"``: the sequencer serves what arrived in each ``interval``
    as one batch when the interval closes, in an order that does not depend on arrival;
    every message of a batch takes effect at once (one uniform price)."""

    interval: DurationNs = Field(default=100_000_000, gt=0)


class CommitRevealSpec(_Spec):
    """``policy = "commit_reveal"``: a message of ``kinds`` is a commitment (its content
    hidden) until it is sequenced; its sender then reveals it, ``reveal_delay`` later, in
    a second message; a commitment not revealed (sequenced) within ``window`` of its own
    sequencing expires. The order takes effect at its commitment's place."""

    kinds: list[MessageKind] = Field(default_factory=lambda: list[MessageKind](["order"]), min_length=1)
    reveal_delay: DurationNs = Field(default=0, ge=0)
    window: DurationNs = Field(default=2_000_000_000, gt=0)

    @model_validator(mode="after")
    def _reveal_within_window(self) -> CommitRevealSpec:
        if self.reveal_delay >= self.window:
            raise ValueError(f"reveal_delay ({self.reveal_delay} ns) must be shorter than window ({self.window} ns): "
                             "every commitment would expire before its reveal is sequenced")
        return self


class FairOrderSpec(_Spec):
    """``policy = "fair_order"`` (gamma-batch-order-fairness, as Aequitas and Themis): every
    node (or those in ``nodes``) reports its receive order; every ``granularity`` the
    leader orders the messages all of them have reported (or that waited ``timeout``): a
    before b when at least a ``gamma`` share of the nodes received a first; messages whose
    preferences form a cycle are one batch, ordered within by ``batch_order``."""

    gamma: float = Field(default=1.0, gt=0.5, le=1.0)
    granularity: DurationNs = Field(default=10_000_000, gt=0)
    timeout: DurationNs = Field(default=1_000_000_000, gt=0)
    nodes: list[str] | None = None
    batch_order: Literal["median", "leader"] = "median"


ORDERING_SETTINGS = ("batch_auction", "commit_reveal", "fair_order")


class SequencerSpec(_Spec):
    node: str | None = None
    workers: int = Field(default=1, ge=1, le=1024)
    service: DurationDist = Field(default_factory=lambda: Exponential(dist="exponential", mean=100_000))
    policy: str = "fifo"
    standby: list[str] = Field(default_factory=list)
    failover_timeout: DurationNs = 1_000_000_000
    # Settings of the ordering protocols, read only when ``policy`` names them.
    batch_auction: BatchAuctionSpec | None = None
    commit_reveal: CommitRevealSpec | None = None
    fair_order: FairOrderSpec | None = None
    lane: LaneSpec | None = Field(default=None, description="a share of the workers reserved for liquidations and "
                                                              "prices (sim): [`[sequencer.lane]`](#sequencerlane)")

    @model_serializer(mode="wrap")
    def _without_unset_settings(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Settings left unset (the ordering protocols', the lane) are not written: a scenario
        without them dumps (and hashes, ``scenario_hash``) as it did before they existed."""
        data: dict[str, Any] = handler(self)
        for name in (*ORDERING_SETTINGS, "lane"):
            if data.get(name) is None:
                data.pop(name, None)
        return data

    @model_validator(mode="after")
    def _lane_leaves_workers(self) -> SequencerSpec:
        if self.lane is not None and self.lane.workers >= self.workers:
            raise ValueError(f"lane.workers ({self.lane.workers}) must be below workers ({self.workers}): "
                             "the rest keep at least one worker")
        return self


class ProducersSpec(_Spec):
    """``[blocks.producers]``: blocks come from producers drawn across the nodes (sim), each
    node keeping its own view of the chain, instead of from the one sequencer."""

    rule: str  # a name in PRODUCER_RULES: "pow" (Poisson, by hash share) or "pos" (slots, by stake)
    nodes: list[str] = Field(default_factory=list)  # the producers by name; empty: drawn (``count``)
    count: int | None = Field(default=None, ge=1)  # producers drawn across the nodes (seeded); none: every node
    # Hash share / stake per producer (empty: equal), or a distribution each producer's share is
    # drawn from (seeded, in producer order), as SimBlock draws its miners' hash rates.
    shares: list[Annotated[float, Field(gt=0)]] | NumberDist = Field(default_factory=list)
    confirmations: int = Field(default=1, ge=1, le=1000)
    # What makes a block final at a node: "depth", its own longest chain holds
    # ``confirmations`` blocks at and above it; "votes", it has seen votes for it from more
    # than two thirds of the producers' stake (the producers are the validators; sim/votes.py).
    finality: Literal["depth", "votes"] = "depth"
    vote_size: Annotated[int, Field(ge=1)] = 128  # bytes of one vote on the wire (finality = "votes")
    # When a partition heals, each validator sends again the votes it cast while it lasted.
    resend_votes: bool = False
    # Shares of the nodes the analysis times each block's reach to (summary.json's forks.reach_ms).
    reach: list[Annotated[Fraction, Field(gt=0, le=1)]] = Field(default_factory=lambda: [0.5, 0.9, 1.0],
                                                                 min_length=1, max_length=10)

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, rule: str) -> str:
        if rule not in PRODUCER_RULES:
            raise ValueError(f"unknown producer rule {rule!r}; one of {PRODUCER_RULES.names()}")
        return rule

    @model_validator(mode="after")
    def _one_way_to_name_them(self) -> ProducersSpec:
        if self.nodes and self.count is not None:
            raise ValueError("give the producers by name (nodes) or how many to draw (count), not both")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError("a producer is named twice in nodes")
        expected = len(self.nodes) if self.nodes else self.count
        if isinstance(self.shares, list) and self.shares and expected is not None and len(self.shares) != expected:
            raise ValueError(f"shares has {len(self.shares)} entries for {expected} producers")
        if not isinstance(self.shares, list) and self.shares.mean <= 0:
            raise ValueError("shares drawn from a distribution need a positive mean")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_resend(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without ``resend_votes`` the producers dump (and hash) as they did before it existed."""
        data: dict[str, Any] = handler(self)
        if not self.resend_votes:
            data.pop("resend_votes", None)
        return data


class BlocksSpec(_Spec):
    interval: DurationNs = Field(default=500_000_000, gt=0)
    max_messages: int = Field(default=5000, ge=1)
    max_gas: int | None = Field(default=None, ge=1)
    gas: dict[MessageKind, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    quorum: Fraction = 0.67
    header_size: int = Field(default=500, ge=0)
    producers: ProducersSpec | None = Field(
        default=None, description="producers drawn across the nodes, forks and per-node chain views (sim): "
                                  "[`[blocks.producers]`](#blocksproducers)")

    @model_serializer(mode="wrap")
    def _without_producers(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without producers the section dumps (and hashes) as it did before they existed."""
        data: dict[str, Any] = handler(self)
        if data.get("producers") is None:
            data.pop("producers", None)
        return data


class Unbounded(_Spec):
    mode: Literal["unbounded"] = "unbounded"


class DropTail(_Spec):
    mode: Literal["drop_tail"]
    capacity: int = Field(ge=1)


class Suspend(_Spec):
    mode: Literal["suspend"]
    high: int = Field(ge=1)
    low: int = Field(ge=0)

    @model_validator(mode="after")
    def _watermarks(self) -> Suspend:
        if self.low >= self.high:
            raise ValueError("'low' watermark must be below 'high'")
        return self


class Eip1559(_Spec):
    mode: Literal["eip1559"]
    initial_base_fee: float = Field(default=1.0, gt=0)
    min_base_fee: float = Field(default=0.01, gt=0)
    target: Fraction = 0.5
    max_change: Fraction = 0.125
    underpriced: Literal["wait", "reject"] = "wait"


def _default_levels() -> dict[MessageKind, float]:
    return {"spam": 0.5, "quote": 0.75}


def _default_protect() -> list[MessageKind]:
    return ["liquidation"]


class Shed(_Spec):
    mode: Literal["shed"]
    capacity: int = Field(ge=1)
    levels: dict[MessageKind, Fraction] = Field(default_factory=lambda: _default_levels())
    protect: list[MessageKind] = Field(default_factory=lambda: _default_protect())


BackpressureSpec = Annotated[
    Unbounded | DropTail | Suspend | Eip1559 | Shed, Field(discriminator="mode")
]


class DesyncSpec(_Spec):
    max_height_gap: int = Field(default=2, ge=0)
    min_duration: DurationNs = 1_000_000_000


# --- traffic -------------------------------------------------------------------------------


class ConstantArrival(_Spec):
    process: Literal["constant"]
    rate: RatePerS


class PoissonArrival(_Spec):
    process: Literal["poisson"]
    rate: RatePerS


class HawkesArrival(_Spec):
    """Self-exciting arrivals, exponential kernel: each event spawns Poisson(branching)
    children at Exp(decay) delays. branching >= 1 would explode and is rejected."""

    process: Literal["hawkes"]
    baseline: RatePerS
    branching: float = Field(ge=0, lt=1)
    decay: DurationNs = Field(gt=0)


class StepRampArrival(_Spec):
    process: Literal["step_ramp"]
    start: RatePerS
    step: RatePerS
    every: DurationNs = Field(gt=0)
    steps: int = Field(ge=1, le=10_000)
    poisson: bool = True


class LinearRampArrival(_Spec):
    process: Literal["linear_ramp"]
    start: RatePerS
    end: RatePerS
    poisson: bool = True


class ReplayArrival(_Spec):
    process: Literal["replay"]
    path: str
    column: str = "t"
    time_unit: Literal["ns", "us", "ms", "s"] = "ns"
    speed: float = Field(default=1.0, gt=0)


SimpleArrival = Annotated[
    ConstantArrival | PoissonArrival | HawkesArrival | StepRampArrival | LinearRampArrival | ReplayArrival,
    Field(discriminator="process"),
]


class Phase(_Spec):
    duration: DurationNs = Field(gt=0)
    arrival: SimpleArrival


class PhasesArrival(_Spec):
    process: Literal["phases"]
    phases: list[Phase] = Field(min_length=1)


ArrivalSpec = Annotated[
    ConstantArrival | PoissonArrival | HawkesArrival | StepRampArrival | LinearRampArrival | ReplayArrival | PhasesArrival,
    Field(discriminator="process"),
]

ROLE_MIX: dict[str, dict[str, float]] = {
    "trader": {"order": 0.7, "cancel": 0.3},
    "market_maker": {"quote": 0.8, "cancel": 0.2},
    "flooder": {"spam": 1.0},
    "liquidator": {"liquidation": 1.0},
    "oracle": {"price": 1.0},
}


class AgentSpec(_Spec):
    name: str = Field(min_length=1)
    role: Literal["trader", "market_maker", "flooder", "liquidator", "oracle"] = "trader"
    count: int = Field(default=1, ge=1, le=1_000_000)
    region: str | None = None
    node: str | None = None
    arrival: ArrivalSpec
    mix: dict[MessageKind, Annotated[float, Field(ge=0)]] | None = None
    size: SizeDist = Field(default_factory=lambda: Constant(value=250))
    fee: NumberDist = Field(default_factory=lambda: Constant(value=1.0))
    keys: int = Field(default=100, ge=1)
    start: DurationNs = 0
    stop: DurationNs | None = None

    @model_validator(mode="after")
    def _check(self) -> AgentSpec:
        if self.region is not None and self.node is not None:
            raise ValueError("give 'region' or 'node', not both")
        if self.mix is not None and sum(self.mix.values()) <= 0:
            raise ValueError("'mix' weights must add up to more than 0")
        if self.stop is not None and self.stop <= self.start:
            raise ValueError("'stop' must be after 'start'")
        return self

    @property
    def kind_mix(self) -> dict[str, float]:
        """The message mix as normalised weights (the role's default when not given)."""
        mix = self.mix if self.mix is not None else ROLE_MIX[self.role]
        total = sum(mix.values())
        return {kind: weight / total for kind, weight in mix.items() if weight > 0}


# --- faults ------------------------------------------------------------------------------


class PartitionFault(_Spec):
    """Cut every link between groups (region or node names); unnamed nodes form one more group."""

    kind: Literal["partition"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    groups: list[list[str]] = Field(min_length=1)


class CrashFault(_Spec):
    """Crash a node ("sequencer" means whichever node leads at that moment)."""

    kind: Literal["crash"]
    at: DurationNs
    node: str
    restart_after: Annotated[DurationNs, Field(gt=0)] | None = None


class DegradeFault(_Spec):
    """Add latency, jitter and loss to links between two groups, or touching some nodes."""

    kind: Literal["degrade"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    between: tuple[str, str] | None = None
    nodes: list[str] | None = None
    latency: DurationNs = 0
    jitter: DurationNs = 0
    loss: Fraction = 0.0

    @model_validator(mode="after")
    def _scope(self) -> DegradeFault:
        if (self.between is None) == (self.nodes is None):
            raise ValueError("give exactly one of 'between' or 'nodes'")
        return self


class BridgeFault(_Spec):
    """Live: split a cluster msgstorm started into two sides that reach each other only
    through one server, the ``bridge`` (it keeps its routes to both)."""

    kind: Literal["bridge"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    groups: tuple[list[str], list[str]]
    bridge: str


class PauseFault(_Spec):
    """Live: pause a server msgstorm started (SIGSTOP), and resume it (SIGCONT) after ``duration``."""

    kind: Literal["pause"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)]
    node: str


class RestartFault(_Spec):
    """Live: stop a server msgstorm started gracefully (SIGTERM, as an operator would) and
    start it again ``down`` later on the same port and data directory."""

    kind: Literal["restart"]
    at: DurationNs
    node: str
    down: DurationNs = 0


class TamperFault(_Spec):
    """An adversary on the link into the sequencer alters the contents of messages (of
    ``kinds``, all when not given) with ``probability`` each, from ``at`` for ``duration``:
    a scheme that authenticates rejects every one, ``none`` accepts them (``[security]``)."""

    kind: Literal["tamper"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    kinds: list[MessageKind] | None = Field(default=None, min_length=1)
    probability: Annotated[Fraction, Field(gt=0, le=1)] = 1.0


class ReplayFault(_Spec):
    """An adversary copies messages (of ``kinds``) it sees reach the sequencer, with
    ``probability`` each, and sends each copy again ``delay`` later: as signed on this chain
    (``chain = "same"``: its nonce was seen) or on another chain (``"other"``: another chain
    id). A scheme that authenticates rejects every copy, ``none`` accepts them."""

    kind: Literal["replay"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    kinds: list[MessageKind] | None = Field(default=None, min_length=1)
    probability: Annotated[Fraction, Field(gt=0, le=1)] = 1.0
    delay: Annotated[DurationNs, Field(gt=0)] = 1_000_000
    chain: Literal["same", "other"] = "same"


class OracleFault(_Spec):
    """A byzantine oracle (sim, ``[market]``): from ``at`` for ``duration`` the oracle's
    ``price`` messages (of ``instrument``, every one when not given) go ``stale`` (none is
    published; at the window's end it publishes the price then), are ``delay``ed (each sent
    ``delay`` late, with the price of when it was due) or ``manipulate``d (each carries the
    true price moved by ``band``, ``bias`` down or up)."""

    kind: Literal["oracle"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)]
    mode: Literal["stale", "delay", "manipulate"]
    instrument: str | None = None
    delay: Annotated[DurationNs, Field(gt=0)] | None = None
    band: Annotated[Fraction, Field(gt=0, lt=1)] | None = None
    bias: Literal["down", "up"] = "down"

    @model_validator(mode="after")
    def _settings(self) -> OracleFault:
        if (self.mode == "delay") != (self.delay is not None):
            raise ValueError("'delay' is given with mode = \"delay\", and only then")
        if (self.mode == "manipulate") != (self.band is not None):
            raise ValueError("'band' is given with mode = \"manipulate\", and only then")
        return self


class CensorFault(_Spec):
    """A censoring producer (sim): from ``at`` for ``duration`` the sequencer's leader keeps
    messages of ``kinds`` that reach it out of its queue: until the window ends
    (``mode = "delay"``) or for good (``"drop"``: dropped)."""

    kind: Literal["censor"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)]
    kinds: list[MessageKind] = Field(default=["liquidation"], min_length=1)
    mode: Literal["delay", "drop"] = "delay"


class EquivocateFault(_Spec):
    """A byzantine producer (sim, ``[blocks.producers]``): from ``at`` for ``duration`` each
    block the producer ``node`` makes is made twice, two conflicting blocks on one parent at
    one height, and each is sent to one half of its gossip peers (the first half in the
    order the topology lists them gets the first block)."""

    kind: Literal["equivocate"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    node: str


class _ByzantineVoters(_Spec):
    """Validators made byzantine voters from ``at`` for ``duration``: ``nodes``, or ``count``
    of them drawn with the run's seed (sim, ``blocks.producers.finality = "votes"``)."""

    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    nodes: list[str] = Field(default_factory=list)
    count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_way_to_name_them(self) -> _ByzantineVoters:
        if bool(self.nodes) == (self.count is not None):
            raise ValueError("name the byzantine voters (nodes) or say how many to draw (count), one of the two")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError("a voter is named twice in nodes")
        return self


class EquivocateVotesFault(_ByzantineVoters):
    """Equivocating voters: each votes for every block made at each height, both of two
    conflicting blocks included, and their votes reach every node over paths a partition
    does not cut (the adversary's)."""

    kind: Literal["equivocate_votes"]


class WithholdVotesFault(_ByzantineVoters):
    """Withholding voters: they cast no vote (a quorum then needs more of the honest stake)."""

    kind: Literal["withhold_votes"]


class CensorNodesFault(_Spec):
    """Censoring nodes (sim): from ``at`` for ``duration`` the nodes ``nodes`` (or ``count``
    of them drawn with the run's seed) validate messages of ``kinds`` (sent by ``agents``,
    by anyone when not given) but forward none of them, and as producers include none in
    their blocks; other messages pass as before."""

    kind: Literal["censor_nodes"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    nodes: list[str] = Field(default_factory=list)
    count: int | None = Field(default=None, ge=0)
    kinds: list[MessageKind] = Field(default=["liquidation"], min_length=1)
    agents: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_way_to_name_them(self) -> CensorNodesFault:
        if bool(self.nodes) == (self.count is not None):
            raise ValueError("name the censoring nodes (nodes) or say how many to draw (count), one of the two")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError("a node is named twice in nodes")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_agents(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without ``agents`` the fault dumps (in its events, and hashes) as it did before they existed."""
        data: dict[str, Any] = handler(self)
        if self.agents is None:
            data.pop("agents", None)
        return data


class _ByzantineNodes(_Spec):
    """Nodes made byzantine from ``at`` for ``duration``: ``nodes``, or ``count`` of them
    drawn with the run's seed (sim)."""

    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    nodes: list[str] = Field(default_factory=list)
    count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_way_to_name_them(self) -> _ByzantineNodes:
        if bool(self.nodes) == (self.count is not None):
            raise ValueError("name the byzantine nodes (nodes) or say how many to draw (count), one of the two")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError("a node is named twice in nodes")
        return self


class DelayNodesFault(_ByzantineNodes):
    """Delaying nodes: each holds every item it validated (message, block, vote) ``delay``
    plus a uniform draw in [0, ``jitter``) before it forwards it."""

    kind: Literal["delay_nodes"]
    delay: Annotated[DurationNs, Field(gt=0)]
    jitter: DurationNs = 0


class ReorderNodesFault(_ByzantineNodes):
    """Reordering nodes: each holds every item it validated a uniform draw in [0, ``window``)
    before it forwards it, so items it validated less than ``window`` apart leave in a
    shuffled order."""

    kind: Literal["reorder_nodes"]
    window: Annotated[DurationNs, Field(gt=0)]


class FloodInvalidFault(_ByzantineNodes):
    """Flooding nodes: each sends invalid messages of ``size`` bytes at ``rate`` to its
    gossip peers; every receiver spends a validation on each and drops it (not forwarded)."""

    kind: Literal["flood_invalid"]
    rate: Annotated[RatePerS, Field(gt=0)]
    size: int = Field(default=200, ge=1)  # bytes


class EclipseFault(_Spec):
    """An eclipse (sim): from ``at`` for ``duration`` an attacker holds every connection of
    the target ``node``: it passes nothing either way (its view halts), or, with ``delay``,
    passes everything ``delay`` late (its view lags)."""

    kind: Literal["eclipse"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    node: str
    delay: Annotated[DurationNs, Field(gt=0)] | None = None


class TwinsFault(_Spec):
    """Twins (sim, ``finality = "votes"``): from ``at`` for ``duration`` a second instance of
    each validator of ``nodes`` runs at the node of ``hosts`` in the same place, with the
    validator's identity and stake. Each instance is honest on its own (one vote per height,
    for the first block it holds with its branch); placed on two sides of a partition, the
    two vote for different blocks at one height."""

    kind: Literal["twins"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    nodes: list[str] = Field(min_length=1)
    hosts: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_host_each(self) -> TwinsFault:
        if len(self.hosts) != len(self.nodes):
            raise ValueError(f"give one host per twinned validator ({len(self.nodes)} nodes, {len(self.hosts)} hosts)")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError("a validator is named twice in nodes")
        for node, host in zip(self.nodes, self.hosts, strict=True):
            if node == host:
                raise ValueError(f"{node!r}'s twin runs at {host!r}, the validator's own node: give another host")
        return self


# The settings of a toxic entry; each kind reads some of them (``TOXICS[kind].settings``,
# ``live/toxics.py``) and the others must be left unset.
TOXIC_SETTINGS = ("latency", "jitter", "rate", "timeout", "slice_size", "slice_delay", "close_delay")


class ToxicFault(_Spec):
    """Live: a toxic on the links between msgstorm's clients and the broker (the fault proxy,
    ``live/proxy.py``): ``link`` says whose connections, ``direction`` which way
    (``upstream``: client to server), ``probability`` the share of reads (of connections, for
    reset_peer, timeout and slow_close) it acts on."""

    kind: Literal["toxic"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    toxic: str  # a name in TOXICS
    link: Literal["publisher", "consumers", "clients"] = "clients"
    direction: Literal["upstream", "downstream", "both"] = "both"
    probability: Annotated[Fraction, Field(gt=0, le=1)] = 1.0
    latency: DurationNs | None = None  # latency: added to every chunk
    jitter: DurationNs | None = None  # latency: ± this, uniform
    rate: BandwidthBps | None = Field(default=None, gt=0)  # bandwidth, bits/s
    timeout: DurationNs | None = None  # reset_peer: reset after; timeout: close after (0: hold until the end)
    slice_size: int | None = Field(default=None, ge=1)  # slicer: bytes a piece
    slice_delay: DurationNs | None = None  # slicer: between pieces
    close_delay: DurationNs | None = None  # slow_close: a close held this long

    @field_validator("toxic")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in TOXICS:
            raise ValueError(f"unknown toxic {name!r}; one of {', '.join(TOXICS)}")
        return name

    @model_validator(mode="after")
    def _settings(self) -> ToxicFault:
        toxic = TOXICS[self.toxic]
        reads = toxic.settings
        for name in TOXIC_SETTINGS:
            if getattr(self, name) is not None and name not in reads:
                raise ValueError(f"'{name}' does not apply to toxic {self.toxic!r} "
                                 f"(it reads {', '.join(repr(r) for r in reads) or 'no setting'})")
        toxic.from_spec(self)  # what the kind needs to be built (a ValueError naming it)
        return self


# One fault (what the simulator or a live target applies), as a nemesis's mix or a script lists them.
OneFault = Annotated[
    PartitionFault | CrashFault | DegradeFault | PauseFault | RestartFault | ToxicFault | BridgeFault
    | TamperFault | ReplayFault | OracleFault | CensorFault | EquivocateFault | EquivocateVotesFault
    | WithholdVotesFault | CensorNodesFault | DelayNodesFault | ReorderNodesFault | FloodInvalidFault | EclipseFault | TwinsFault,
    Field(discriminator="kind"),
]


class MixEntry(_Spec):
    """One fault a nemesis may draw, and how likely it is against the others."""

    weight: float = Field(default=1.0, gt=0)
    fault: OneFault


# The most faults one nemesis or script entry stands for (each is built at validation).
MAX_FAULT_DRAWS = 10_000


def nemesis_draws(at_ns: int, until_ns: int, every_ns: int) -> int:
    """How many faults a nemesis draws: one at ``at``, then every ``every``, before ``until``."""
    return max(0, -(-(until_ns - at_ns) // every_ns))


class NemesisFault(_Spec):
    """Faults drawn from a seeded mix: from ``at``, one every ``every`` until ``until``
    (each drawn from ``mix`` by weight; its own ``at`` is an offset from the draw's time)."""

    kind: Literal["nemesis"]
    at: DurationNs
    every: DurationNs = Field(gt=0)
    until: DurationNs | None = None
    seed: int = Field(default=1, ge=0, lt=2**63)
    mix: list[MixEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _until(self) -> NemesisFault:
        if self.until is not None and self.until <= self.at:
            raise ValueError("'until' must be after 'at'")
        if self.until is not None and (draws := nemesis_draws(self.at, self.until, self.every)) > MAX_FAULT_DRAWS:
            raise ValueError(f"draws {draws} faults ('at' to 'until', one every 'every'); at most {MAX_FAULT_DRAWS}: "
                             "make 'every' longer or 'until' sooner")
        return self


class ScriptFault(_Spec):
    """A compound script: ``steps`` (faults whose ``at`` are offsets from the script's
    start), run from ``at``, and again every ``every`` (``times`` in all)."""

    kind: Literal["script"]
    at: DurationNs
    steps: list[OneFault] = Field(min_length=1)
    every: DurationNs | None = Field(default=None, gt=0)
    times: int = Field(default=1, ge=1, le=MAX_FAULT_DRAWS)

    @model_validator(mode="after")
    def _repeat(self) -> ScriptFault:
        if self.times > 1 and self.every is None:
            raise ValueError("'times' > 1 needs 'every'")
        return self


# Kinds that stand for several faults, expanded by ``faults/schedule.py``.
COMPOSITE_FAULT_KINDS = ("nemesis", "script")

FaultSpec = Annotated[
    PartitionFault | CrashFault | DegradeFault | PauseFault | RestartFault | ToxicFault | BridgeFault | TamperFault
    | ReplayFault | OracleFault | CensorFault | EquivocateFault | EquivocateVotesFault | WithholdVotesFault
    | CensorNodesFault | DelayNodesFault | ReorderNodesFault | FloodInvalidFault | EclipseFault | TwinsFault | NemesisFault | ScriptFault,
    Field(discriminator="kind"),
]


def fault_entries(scenario: Scenario) -> list[tuple[tuple[str | int, ...], OneFault]]:
    """Every fault the scenario names, with where (for errors): a plain entry, and each
    fault of a nemesis's mix or of a script's steps."""
    entries: list[tuple[tuple[str | int, ...], OneFault]] = []
    for index, spec in enumerate(scenario.faults):
        if isinstance(spec, NemesisFault):
            entries += [(("faults", index, "mix", k, "fault"), entry.fault) for k, entry in enumerate(spec.mix)]
        elif isinstance(spec, ScriptFault):
            entries += [(("faults", index, "steps", k), step) for k, step in enumerate(spec.steps)]
        else:
            entries.append((("faults", index), spec))
    return entries


# --- analysis, history ---------------------------------------------------------------------


class AnalysisSpec(_Spec):
    knee_latency_factor: float = Field(default=3.0, gt=1)
    throughput_fraction: Fraction = 0.95


class HistorySpec(_Spec):
    delivery_sample: Fraction = 1.0
    max_deliveries: int = Field(default=5_000_000, ge=0)
    row_group_size: int = Field(default=65_536, ge=1024)


class LimitsSpec(_Spec):
    """What a run may ask of this machine; ``scenario.budget`` refuses a scenario whose
    estimated work exceeds one. Raise a limit deliberately, e.g.
    ``--set limits.max_messages=500_000_000``."""

    max_messages: int = Field(default=100_000_000, ge=1)
    max_window_messages: int = Field(default=20_000_000, ge=1)  # one traffic window in memory
    max_instances: int = Field(default=100_000, ge=1)  # agent instances, each with its own stream
    max_windows: int = Field(default=1_000_000, ge=1)  # analysis windows
    max_samples: int = Field(default=10_000_000, ge=1)  # queue-depth samples
    max_blocks: int = Field(default=10_000_000, ge=1)
    max_receipts: float = Field(default=2e10, gt=0)  # gossip receipts (about an hour of kernel time)
    max_accounts: int = Field(default=20_000_000, ge=1)  # [market] accounts
    max_price_steps: int = Field(default=50_000_000, ge=1)  # [market] price steps over all instruments
    memory: Fraction = 0.8  # share of the memory available when the run starts


SLO_PATTERN = r"^\s*(<=|>=|==|!=|<|>)\s*(\S.*)$"


class NatsSpec(_Spec):
    """``[live.nats]``: the client a ``target = "nats"`` run uses."""

    # "wire": msgstorm's own core-NATS client (PUB frames built and MSG reads parsed in
    # compiled passes, every message due at once sent as one burst; plain nats:// only);
    # "nats-py": the nats-py client (TLS, credentials).
    client: Literal["wire", "nats-py"] = "wire"
    # Messages due at once that go out as one burst (a slice of the staged frames), at most.
    burst: int = Field(default=1024, ge=1, le=100_000)
    # Each consumer reads in a process of its own (wire client only), so the generator's
    # thread only sends: for machines with a core to spare per consumer.
    consumer_processes: bool = False
    # Processes that publish (wire client only): process k sends the messages whose key is k
    # modulo this count, so each key's messages leave in order from one connection.
    generator_processes: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _processes_need_wire(self) -> NatsSpec:
        for name, used in (("consumer_processes", self.consumer_processes),
                           ("generator_processes", self.generator_processes > 1)):
            if used and self.client != "wire":
                raise ValueError(f'{name} needs client = "wire" (the nats-py client runs in the generator\'s '
                                 "process)")
        return self


class JetStreamSpec(_Spec):
    """``[live.jetstream]``: the stream a ``target = "jetstream"`` run publishes to."""

    stream: str = Field(default="MSGSTORM", pattern=r"^[A-Za-z0-9_-]+$")
    # 1: one server; 3 or 5: msgstorm starts a cluster of that many on loopback (R3 / R5 stream).
    replicas: int = Field(default=1, ge=1, le=5)
    storage: Literal["file", "memory"] = "file"
    # Publishes in flight (sent, ack not yet back); the publisher waits when the window is full.
    max_pending_acks: int = Field(default=4096, ge=1, le=1_000_000)
    # Consumers ack each message ("explicit") or not at all ("none").
    ack: Literal["explicit", "none"] = "explicit"
    # "wire": publishes, acks and consumers' messages on msgstorm's own client (framed and
    # parsed in compiled passes, every publish due sent as one burst; plain nats:// only);
    # "nats-py": one message at a time through nats-py (TLS, credentials). Either way nats-py
    # makes the stream and the consumers and reads the stream back.
    client: Literal["wire", "nats-py"] = "wire"


class RedisSpec(_Spec):
    """``[live.redis]``: the Redis Stream a ``target = "redis"`` run XADDs to."""

    stream: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9_.:-]+$")
    group: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9_.:-]+$")
    # Consumers share the stream through one consumer group ("group") or each reads it all ("fanout").
    mode: Literal["group", "fanout"] = "group"
    read_count: int = Field(default=512, ge=1, le=100_000)  # XREADGROUP / XREAD COUNT
    maxlen: int | None = Field(default=None, ge=1)  # XADD MAXLEN ~ (None: the stream keeps everything)
    # XADDs sent in one pipelined round trip, at most (one round trip in flight at a time).
    pipeline: int = Field(default=1024, ge=1, le=100_000)
    # XADDs buffered or awaiting their reply; the publisher waits when this many are outstanding.
    max_pending: int = Field(default=8192, ge=1, le=10_000_000)
    # Messages due at once handed to the publisher together, at most: their XADDs are laid
    # out ahead of time and written on a connection of its own, replies parsed by hiredis
    # (plain redis:// only); 1: one publish per message through redis-py's pipeline.
    burst: int = Field(default=1024, ge=1, le=100_000)


class ZmqSpec(_Spec):
    """``[live.zmq]``: brokerless ZeroMQ sockets on loopback for ``target = "zmq"``."""

    # PUSH/PULL shares messages among consumers; PUB/SUB gives every consumer every message.
    pattern: Literal["push-pull", "pub-sub"] = "push-pull"
    hwm: int = Field(default=1_000_000, ge=0)  # send and receive high-water marks (0: none)
    # PUSH at its high-water mark waits this long for a consumer to take a message, then
    # drops it (and drops at once until one does): the run stays bounded. PUB never waits.
    send_timeout: DurationNs = Field(default=1_000_000_000, gt=0)
    # Messages due at once that are sent in one pass (a frame each, payloads laid out ahead
    # of time, no future per message), at most; 1: one awaited send per message.
    burst: int = Field(default=1024, ge=1, le=100_000)


class AnvilSpec(_Spec):
    """``[live.anvil]``: the EVM node a ``target = "anvil"`` run sends transactions to.

    The chain's own settings come from the scenario where they mean the same thing:
    ``blocks.interval`` is the node's block time, ``blocks.max_gas`` its block gas limit,
    ``backpressure.initial_base_fee`` (mode ``eip1559``) its first base fee, and
    ``sequencer.policy`` its pool order (``fifo``, or ``fee_priority`` for fee order). A fee
    (an agent's ``fee``, a base fee) is in units of ``fee_unit_wei`` wei: 1.0 is one gwei."""

    # Funded dev accounts that send, each with its own nonces: a message goes from one with
    # no transaction in the pool (rate x time to inclusion of them are busy at once).
    accounts: int = Field(default=1000, ge=1, le=10_000)
    # With ``[market]``: more dev accounts, the market's own (the oracle's, the keepers' and the
    # top-ups' transactions), so none waits behind a traffic transaction's nonce.
    market_accounts: int = Field(default=64, ge=1, le=10_000)
    balance_eth: int = Field(default=1_000_000, ge=1)  # each dev account's starting balance
    fee_unit_wei: int = Field(default=1_000_000_000, ge=1)
    # Transactions due at once sent in one JSON-RPC batch request, at most.
    batch: int = Field(default=256, ge=1, le=10_000)
    # Keep-alive connections the sends are pipelined on (another opened when every one waits
    # for an answer), and the chain's reads in flight at once.
    connections: int = Field(default=4, ge=1, le=64)
    # The node's block time when it is not the scenario's ``blocks.interval`` (whole
    # milliseconds; anvil takes it in seconds).
    block_time: DurationNs | None = Field(default=None, gt=0)


class LiveSpec(_Spec):
    """How a live target is reached (``target`` other than "sim").

    Without ``url`` msgstorm starts the server itself on a free loopback port, with its data
    and log under the run directory, and stops it on every exit. With ``url`` it uses a
    server the user runs; load goes only to loopback addresses unless ``allow_remote``.
    """

    url: str | None = None
    allow_remote: bool = False
    subject: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9_.-]+$")  # subject / stream key prefix
    consumers: int = Field(default=1, ge=1, le=64)
    flush_interval: DurationNs = Field(default=1_000_000, gt=0)  # the publisher flushes at least this often
    start_timeout: DurationNs = Field(default=10_000_000_000, gt=0)  # a started server must listen within
    # Write messages and deliveries this often while the run goes (a SIGKILL then keeps the
    # rows settled up to about this long before it); unset: at the end of the run. Off by
    # default: on a small machine the rows made beside the generator cost it its headroom
    # (docs/live.md, "Recording while the run goes").
    record_every: DurationNs | None = Field(default=None, gt=0)
    # After the run, reading the stream back (JetStream) waits at most this for its
    # connection and for each next batch; a read-back that cannot finish is reported, and
    # the run ends.
    read_back_timeout: DurationNs = Field(default=10_000_000_000, gt=0)
    nats: NatsSpec = NatsSpec()
    jetstream: JetStreamSpec = JetStreamSpec()
    redis: RedisSpec = RedisSpec()
    zmq: ZmqSpec = ZmqSpec()
    # Left out of the scenario's dump when default, so that scenarios without it keep their hash.
    anvil: AnvilSpec = Field(default_factory=AnvilSpec, exclude_if=lambda spec: spec == AnvilSpec())


class Scenario(_Spec):
    """A whole stress test: what runs, what is sent, what goes wrong, what must hold."""

    run: RunSpec
    # "sim" (the shadow network) or a live driver registered in LIVE_DRIVERS ("nats", ...).
    target: str = "sim"
    live: LiveSpec = LiveSpec()
    network: NetworkSpec = NetworkSpec()
    gossip: GossipSpec = GossipSpec()
    sequencer: SequencerSpec = SequencerSpec()
    blocks: BlocksSpec = BlocksSpec()
    backpressure: BackpressureSpec = Unbounded()
    desync: DesyncSpec = DesyncSpec()
    agents: list[AgentSpec] = Field(min_length=1)
    faults: list[FaultSpec] = Field(default_factory=list)
    market: MarketSpec | None = None
    # Left out of the scenario's dump when not given, so that scenarios without it keep their hash.
    security: SecuritySpec | None = Field(
        default=None, exclude_if=lambda security: security is None,
        description="message authentication and its cost: [`[security]`](#security)")
    # Left out of the scenario's dump when empty, so that scenarios without it keep their hash.
    controllers: list[ControllerSpec] = Field(
        default_factory=list, exclude_if=lambda controllers: not controllers,
        description="self-healing controllers that steer the run under strain (sim): [`[[controllers]]`](#controllers)")
    # Left out of the scenario's dump when not given, so that scenarios without it keep their hash.
    crosschain: CrosschainSpec | None = Field(
        default=None, exclude_if=lambda crosschain: crosschain is None,
        description="a second chain and relayers carrying messages to it (sim): [`[crosschain]`](#crosschain)")
    slo: dict[str, Annotated[str, Field(pattern=SLO_PATTERN)]] = Field(default_factory=dict)
    analysis: AnalysisSpec = AnalysisSpec()
    history: HistorySpec = HistorySpec()
    limits: LimitsSpec = LimitsSpec()
