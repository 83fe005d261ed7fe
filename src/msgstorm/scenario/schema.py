"""The scenario schema: one frozen, validated description of a stress test.

``scenario.toml`` is parsed by ``msgstorm.scenario.loader`` into these pydantic models.
Every quantity is converted to a fixed unit here (ns, messages/s, bytes, bits/s,
fractions), so traffic, faults, the simulator and analysis never parse strings.
Cross-references (region and node names) are checked in ``msgstorm.scenario.refs``.
Sections live beside it, each in its own module: ``traffic`` (agents, arrivals), ``live``
(``[live]`` and its drivers' settings), ``faults``, ``market``, ``network`` (relay),
``security``, ``control``, ``crosschain``.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

from pydantic import (
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
)
from msgstorm.scenario.faults import (
    COMPOSITE_FAULT_KINDS,
    MAX_FAULT_DRAWS,
    TOXIC_SETTINGS,
    BridgeFault,
    CensorFault,
    CensorNodesFault,
    CrashFault,
    DegradeFault,
    DelayNodesFault,
    DoubleSignFault,
    EclipseFault,
    EquivocateFault,
    EquivocateVotesFault,
    FaultSpec,
    FloodInvalidFault,
    MixEntry,
    NemesisFault,
    OneFault,
    OracleFault,
    PartitionFault,
    PauseFault,
    ReorderNodesFault,
    ReplayFault,
    RestartFault,
    ScriptFault,
    TamperFault,
    ToxicFault,
    TwinsFault,
    WithholdVotesFault,
    nemesis_draws,
)
from msgstorm.scenario.kinds import MESSAGE_KINDS, MessageKind
from msgstorm.scenario.live import LiveSpec
from msgstorm.scenario.market import MarketSpec
from msgstorm.scenario.network import RelaySpec
from msgstorm.scenario.registry import DEFAULT_TARGET, PRODUCER_RULES
from msgstorm.scenario.rollup import RollupSpec
from msgstorm.scenario.security import SecuritySpec
from msgstorm.scenario.spec import BandwidthBps, Fraction, Spec
from msgstorm.scenario.traffic import AgentSpec

__all__ = [
    "COMPOSITE_FAULT_KINDS",
    "CrashFault",
    "DegradeFault",
    "PartitionFault",
    "MAX_FAULT_DRAWS",
    "MESSAGE_KINDS",
    "AnalysisSpec",
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
    "LimitsSpec",
    "LinkModel",
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
    "DoubleSignFault",
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
    "fault_entries",
    "nemesis_draws",
]


_Spec = Spec


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


class TendermintSpec(_Spec):
    """``[blocks.producers.tendermint]``: the round-based BFT protocol's timeouts and costs
    (``consensus = "tendermint"``, sim/tendermint.py). Defaults: CometBFT v0.38's."""

    timeout_propose: DurationNs = Field(default=3_000_000_000, gt=0)
    timeout_propose_delta: DurationNs = Field(default=500_000_000, ge=0)
    timeout_prevote: DurationNs = Field(default=1_000_000_000, gt=0)
    timeout_prevote_delta: DurationNs = Field(default=500_000_000, ge=0)
    timeout_precommit: DurationNs = Field(default=1_000_000_000, gt=0)
    timeout_precommit_delta: DurationNs = Field(default=500_000_000, ge=0)
    timeout_commit: DurationNs = Field(default=1_000_000_000, ge=0)
    # The proposer's application building its block (PrepareProposal) after its round starts.
    prepare: DurationNs = Field(default=0, ge=0)
    # A validator's application executing a proposal (ProcessProposal) before it prevotes.
    execution: DurationNs = Field(default=0, ge=0)
    # Added to ``execution`` for each transaction of the proposal (a calibrated twin's per-transaction cost).
    # (Left out of the dump at 0, so a scenario without it hashes as it did before it existed.)
    execution_per_tx: DurationNs = Field(default=0, ge=0, exclude_if=lambda cost: cost == 0)
    # After a commit, a node applies the block (FinalizeBlock and Commit) and rechecks what its
    # mempool still holds (CometBFT's ``recheck``) before its next height starts: the start is
    # the later of ``timeout_commit`` and that work (CometBFT: ``StartTime = CommitTime +
    # timeout_commit``, the apply running in between). Left out of the dump at 0.
    finalize_per_tx: DurationNs = Field(default=0, ge=0, exclude_if=lambda cost: cost == 0)
    recheck_per_tx: DurationNs = Field(default=0, ge=0, exclude_if=lambda cost: cost == 0)
    vote_size: Annotated[int, Field(ge=1)] = 200  # bytes of one prevote, precommit or proposal message
    # Transactions a validator's mempool holds (CometBFT's mempool ``size``); a full one turns arrivals away.
    mempool_size: Annotated[int, Field(ge=1)] = 5000


class ProducersSpec(_Spec):
    """``[blocks.producers]``: blocks come from producers drawn across the nodes (sim), each
    node keeping its own view of the chain, instead of from the one sequencer."""

    # A name in PRODUCER_RULES: "pow" (Poisson, by hash share) or "pos" (slots, by stake);
    # none with ``consensus = "tendermint"`` (the protocol's proposer rotation makes the blocks).
    rule: str | None = None
    # "tendermint": round-based BFT consensus among the producers (the validators, their
    # shares the voting power), sim/tendermint.py; none: the rule's blocks and ``finality``.
    consensus: Literal["tendermint"] | None = None
    tendermint: TendermintSpec = Field(default_factory=TendermintSpec)
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
    def _known_rule(cls, rule: str | None) -> str | None:
        if rule is not None and rule not in PRODUCER_RULES:
            raise ValueError(f"unknown producer rule {rule!r}; one of {PRODUCER_RULES.names()}")
        return rule

    @model_validator(mode="after")
    def _rule_or_consensus(self) -> ProducersSpec:
        if self.consensus is None:
            if self.rule is None:
                raise ValueError(f"give a producer rule (rule = one of {PRODUCER_RULES.names()}) "
                                 'or consensus = "tendermint"')
            if "tendermint" in self.model_fields_set:
                raise ValueError('[blocks.producers.tendermint] needs consensus = "tendermint"')
            return self
        if self.rule is not None:
            raise ValueError(f'consensus = "tendermint" rotates its proposers by voting power: drop rule = {self.rule!r}')
        if self.finality != "depth" or self.confirmations != 1:
            raise ValueError('consensus = "tendermint" commits a block once, by its own precommits: '
                             "drop finality and confirmations")
        return self

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
        if self.consensus is None:  # as before consensus existed
            data.pop("consensus", None)
            data.pop("tendermint", None)
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
    # The fee market from a file (``scenario/fee_file.py``): columns t, base_fee; the base fee
    # follows it instead of the rule above.
    base_fee_file: str | None = None


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
    max_wall_time: DurationNs = Field(default=1800 * 1_000_000_000, gt=0)  # estimated (budget.sim_wall_s)

    @model_serializer(mode="wrap")
    def _without_default_wall_time(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """At its default the wall-time limit dumps (and hashes) as before it existed."""
        data: dict[str, Any] = handler(self)
        if self.max_wall_time == LimitsSpec.model_fields["max_wall_time"].default:
            data.pop("max_wall_time", None)
        return data


SLO_PATTERN = r"^\s*(<=|>=|==|!=|<|>)\s*(\S.*)$"


class Scenario(_Spec):
    """A whole stress test: what runs, what is sent, what goes wrong, what must hold."""

    run: RunSpec
    # A name in TARGETS (scenario/registry.py): the shadow network by default, or a live target.
    target: str = DEFAULT_TARGET
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
    # Left out of the scenario's dump when not given, so that scenarios without it keep their hash.
    rollup: RollupSpec | None = Field(
        default=None, exclude_if=lambda rollup: rollup is None,
        description="the chain as a rollup's L2: its batcher, its L1 and three commit levels (sim; anvil: two anvils): "
                    "[`[rollup]`](#rollup)")
    slo: dict[str, Annotated[str, Field(pattern=SLO_PATTERN)]] = Field(default_factory=dict)
    analysis: AnalysisSpec = AnalysisSpec()
    history: HistorySpec = HistorySpec()
    limits: LimitsSpec = LimitsSpec()

    @model_validator(mode="after")
    def _rollup_block_time(self) -> Scenario:
        """The L2 block time is ``[blocks] interval``: taken from ``[rollup]`` when the file
        gives no interval, refused when it gives another."""
        if self.rollup is None:  # which targets run it: ``Target.sections`` (scenario/refs.py)
            return self
        timeboost = self.rollup.timeboost
        if timeboost is not None:
            names = {agent.name for agent in self.agents}
            unknown = [name for name in timeboost.express if name and name not in names]
            if unknown:
                raise ValueError(f"rollup.timeboost.express: {unknown} are not agents; one of {sorted(names)}, "
                                 f"or \"\" for a round nobody bought")
        if "interval" not in self.blocks.model_fields_set:
            object.__setattr__(self, "blocks", self.blocks.model_copy(update={"interval": self.rollup.block_time}))
        elif self.blocks.interval != self.rollup.block_time:
            if "block_time" not in self.rollup.model_fields_set:
                rollup = self.rollup.model_copy(update={"block_time": self.blocks.interval})
                object.__setattr__(self, "rollup", rollup)
                return self
            raise ValueError(f"[blocks] interval {self.blocks.interval} ns differs from rollup.block_time "
                             f"{self.rollup.block_time} ns: give one of them, or the same value")
        return self
