"""The ``[[faults]]`` tables: what goes wrong, when, and where.

Place in the pipeline: the scenario layer, beside ``scenario/schema.py`` (which holds the
``Scenario`` that lists them and re-exports every name here). ``faults/schedule.py`` expands
the composite kinds (a nemesis's draws, a script's steps) into one timed fault each; the
simulator's ``FaultInjector`` and the live targets' nemesis apply them. Cross-references
(node and region names) are checked in ``scenario/refs.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from msgstorm.scenario.distributions import DurationNs
from msgstorm.scenario.kinds import MessageKind
from msgstorm.scenario.registry import TOXICS
from msgstorm.scenario.rollup import ARBITRUM_FORCED_WINDOW_NS, RollupSpec
from msgstorm.scenario.spec import BandwidthBps, Fraction, RatePerS, Spec

__all__ = [
    "BridgeFault",
    "COMPOSITE_FAULT_KINDS",
    "CensorFault",
    "CensorNodesFault",
    "CrashFault",
    "DegradeFault",
    "DelayNodesFault",
    "DoubleSignFault",
    "EclipseFault",
    "SequencerOutageFault",
    "EquivocateFault",
    "EquivocateVotesFault",
    "FaultSpec",
    "FloodInvalidFault",
    "MAX_FAULT_DRAWS",
    "MixEntry",
    "NemesisFault",
    "OneFault",
    "OracleFault",
    "PartitionFault",
    "PauseFault",
    "ReorderNodesFault",
    "ReplayFault",
    "RestartFault",
    "ScriptFault",
    "TOXIC_SETTINGS",
    "TamperFault",
    "ToxicFault",
    "TwinsFault",
    "WithholdVotesFault",
    "nemesis_draws",
]

# --- faults ------------------------------------------------------------------------------


class PartitionFault(Spec):
    """Cut every link between groups (region or node names); unnamed nodes form one more group."""

    kind: Literal["partition"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    groups: list[list[str]] = Field(min_length=1)


class CrashFault(Spec):
    """Crash a node ("sequencer" means whichever node leads at that moment)."""

    kind: Literal["crash"]
    at: DurationNs
    node: str
    restart_after: Annotated[DurationNs, Field(gt=0)] | None = None


class DegradeFault(Spec):
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


class BridgeFault(Spec):
    """Live: split a cluster msgstorm started into two sides that reach each other only
    through one server, the ``bridge`` (it keeps its routes to both)."""

    kind: Literal["bridge"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    groups: tuple[list[str], list[str]]
    bridge: str


class PauseFault(Spec):
    """Live: pause a server msgstorm started (SIGSTOP), and resume it (SIGCONT) after ``duration``."""

    kind: Literal["pause"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)]
    node: str


class RestartFault(Spec):
    """Live: stop a server msgstorm started gracefully (SIGTERM, as an operator would) and
    start it again ``down`` later on the same port and data directory."""

    kind: Literal["restart"]
    at: DurationNs
    node: str
    down: DurationNs = 0


class DoubleSignFault(Spec):
    """Live, a validator network msgstorm starts: from ``at`` (for ``duration``, else to the
    run's end) a second node signs with validator ``node``'s key beside it (a home of its own,
    a propose timeout of 1 ms so that it prevotes nil before a proposal reaches it while the
    validator itself prevotes the block): the validator double-signs, and the others commit
    the evidence in later blocks."""

    kind: Literal["double_sign"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    node: str


class TamperFault(Spec):
    """An adversary on the link into the sequencer alters the contents of messages (of
    ``kinds``, all when not given) with ``probability`` each, from ``at`` for ``duration``:
    a scheme that authenticates rejects every one, ``none`` accepts them (``[security]``)."""

    kind: Literal["tamper"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    kinds: list[MessageKind] | None = Field(default=None, min_length=1)
    probability: Annotated[Fraction, Field(gt=0, le=1)] = 1.0


class ReplayFault(Spec):
    """An adversary copies messages (of ``kinds``) it sees reach the sequencer, with
    ``probability`` each, and sends each copy again ``delay`` later from the original's node,
    whence it travels to the sequencer as any message does: as signed on this chain
    (``chain = "same"``: its nonce was seen) or on another chain (``"other"``: another chain
    id). A scheme that authenticates rejects every copy, ``none`` accepts them."""

    kind: Literal["replay"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    kinds: list[MessageKind] | None = Field(default=None, min_length=1)
    probability: Annotated[Fraction, Field(gt=0, le=1)] = 1.0
    delay: Annotated[DurationNs, Field(gt=0)] = 1_000_000
    chain: Literal["same", "other"] = "same"


class OracleFault(Spec):
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


class CensorFault(Spec):
    """A censoring producer (sim): from ``at`` for ``duration`` the sequencer's leader keeps
    messages of ``kinds`` that reach it out of its queue: until the window ends
    (``mode = "delay"``) or for good (``"drop"``: dropped)."""

    kind: Literal["censor"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)]
    kinds: list[MessageKind] = Field(default=["liquidation"], min_length=1)
    mode: Literal["delay", "drop"] = "delay"


class EquivocateFault(Spec):
    """A byzantine producer (sim, ``[blocks.producers]``): from ``at`` for ``duration`` each
    block the producer ``node`` makes is made twice, two conflicting blocks on one parent at
    one height, and each is sent to one half of its gossip peers (the first half in the
    order the topology lists them gets the first block)."""

    kind: Literal["equivocate"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    node: str


class _ByzantineVoters(Spec):
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


class CensorNodesFault(Spec):
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


class _ByzantineNodes(Spec):
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


class SequencerOutageFault(Spec):
    """A sequencer outage (sim; on anvil with ``[rollup]``, ``live/faults/sequencer_outage.py``): from
    ``at`` for ``duration`` the sequencer takes no message
    (the ones it is executing finish); messages keep arriving and queue, in order, and when it
    returns its workers drain the backlog at their service rate (``sim/rollup/outage.py``).
    Messages of the kinds ``via_l1`` arriving while it is down go through L1 instead: each is in
    the next L1 block and enters the L2 sequence ``window`` after it (forced inclusion), or when
    the sequencer returns, whichever is first. With ``lose_unposted`` (a ``[rollup]`` run) the
    sequencer loses, at ``at``, what it accepted that no batch on L1 holds: its queue and its
    sequenced messages in no block at once, the soft-confirmed ones whose batch was not in an L1
    block by then when the rollup stage has run (``sim/rollup/unposted.py``); each ends
    ``dropped``."""

    kind: Literal["sequencer_outage"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)]
    via_l1: list[MessageKind] = Field(default_factory=list)
    # None: the rollup's forced-inclusion window (``window_ns``); left out of the dump then.
    window: Annotated[DurationNs, Field(gt=0)] | None = Field(default=None, exclude_if=lambda window: window is None)
    # Left out of the dump when false, so that scenarios without it keep their hash.
    lose_unposted: bool = Field(default=False, exclude_if=lambda lose: not lose)

    def window_ns(self, rollup: RollupSpec | None) -> int:
        """The forced-inclusion window: this fault's ``window``, else the rollup's
        (``rollup.forced_inclusion_window``, its preset's), else Arbitrum One's 24 h."""
        if self.window is not None:
            return self.window
        return ARBITRUM_FORCED_WINDOW_NS if rollup is None else rollup.forced_inclusion_window


class EclipseFault(Spec):
    """An eclipse (sim): from ``at`` for ``duration`` an attacker holds every connection of
    the target ``node``: it passes nothing either way (its view halts), or, with ``delay``,
    passes everything ``delay`` late (its view lags). Surrounded (``attackers`` named, or
    ``count`` of them drawn with the run's seed): the target's gossip peers are replaced by
    the attackers, which withhold the messages of ``kinds`` (none when not given) and hold
    every item they forward ``delay``, so the target sees only what they let through."""

    kind: Literal["eclipse"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    node: str
    delay: Annotated[DurationNs, Field(gt=0)] | None = None
    attackers: list[str] = Field(default_factory=list)
    count: int | None = Field(default=None, ge=1)
    kinds: list[MessageKind] = Field(default_factory=list)

    @property
    def surrounds(self) -> bool:
        """Whether attacker nodes replace the target's peers (else its links are cut or slowed)."""
        return bool(self.attackers) or self.count is not None

    @model_validator(mode="after")
    def _attackers_one_way(self) -> EclipseFault:
        if self.attackers and self.count is not None:
            raise ValueError("name the attackers (attackers) or say how many to draw (count), not both")
        if len(set(self.attackers)) != len(self.attackers):
            raise ValueError("an attacker is named twice in attackers")
        if self.node in self.attackers:
            raise ValueError(f"the target {self.node!r} is among its attackers")
        if self.kinds and not self.surrounds:
            raise ValueError("kinds are what attackers withhold: name them (attackers) or draw them (count)")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_attackers(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without attackers the fault dumps (in its events, and hashes) as it did before they existed."""
        data: dict[str, Any] = handler(self)
        if not self.surrounds:
            for name in ("attackers", "count", "kinds"):
                data.pop(name, None)
        return data


class TwinsFault(Spec):
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


class ToxicFault(Spec):
    """Live: a toxic on the links between msgstorm's clients and the broker (the fault proxy,
    ``live/proxy.py``): ``link`` says whose connections, ``direction`` which way
    (``upstream``: client to server), ``probability`` the share of reads (of connections, for
    reset_peer, timeout and slow_close) it acts on. ``link = "routes"``: on the links between
    the servers of a cluster msgstorm starts (the validators of target ``cometbft``), all of
    them, or with ``between`` (two groups of servers) those from either group to the other
    (``upstream``: from the server that dialled): one toxic a pair of regions makes a latency
    matrix."""

    kind: Literal["toxic"]
    at: DurationNs
    duration: Annotated[DurationNs, Field(gt=0)] | None = None
    toxic: str  # a name in TOXICS
    link: Literal["publisher", "consumers", "clients", "routes"] = "clients"
    # link = "routes": the two groups of servers whose links between them get the toxic (none: every route).
    between: list[list[str]] | None = Field(default=None, exclude_if=lambda groups: groups is None)
    direction: Literal["upstream", "downstream", "both"] = "both"
    probability: Annotated[Fraction, Field(gt=0, le=1)] = 1.0
    latency: DurationNs | None = None  # latency: added to every chunk
    jitter: DurationNs | None = None  # latency: ± this, uniform
    rate: BandwidthBps | None = Field(default=None, gt=0)  # bandwidth, bits/s
    timeout: DurationNs | None = None  # reset_peer: reset after; timeout: close after (0: hold until the end)
    slice_size: int | None = Field(default=None, ge=1)  # slicer: bytes a piece
    slice_delay: DurationNs | None = None  # slicer: between pieces
    close_delay: DurationNs | None = None  # slow_close: a close held this long

    @field_validator("between")
    @classmethod
    def _two_groups(cls, groups: list[list[str]] | None, info: ValidationInfo) -> list[list[str]] | None:
        if groups is None:
            return None
        if info.data.get("link") != "routes":
            raise ValueError('names groups of servers: it needs link = "routes"')
        if len(groups) != 2 or not all(groups):
            raise ValueError('two non-empty groups of servers, such as [["validator-0"], ["validator-1", '
                             '"validator-2"]]')
        if set(groups[0]) & set(groups[1]):
            raise ValueError(f"{sorted(set(groups[0]) & set(groups[1]))} in both groups")
        return groups

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
_OneFaultKinds: TypeAlias = (
    PartitionFault | CrashFault | DegradeFault | PauseFault | RestartFault | DoubleSignFault | ToxicFault
    | BridgeFault | TamperFault | ReplayFault | OracleFault | CensorFault | EquivocateFault | EquivocateVotesFault
    | WithholdVotesFault | CensorNodesFault | DelayNodesFault | ReorderNodesFault | FloodInvalidFault
    | EclipseFault | TwinsFault | SequencerOutageFault
)
OneFault = Annotated[_OneFaultKinds, Field(discriminator="kind")]


class MixEntry(Spec):
    """One fault a nemesis may draw, and how likely it is against the others."""

    weight: float = Field(default=1.0, gt=0)
    fault: OneFault


# The most faults one nemesis or script entry stands for (each is built at validation).
MAX_FAULT_DRAWS = 10_000


def nemesis_draws(at_ns: int, until_ns: int, every_ns: int) -> int:
    """How many faults a nemesis draws: one at ``at``, then every ``every``, before ``until``."""
    return max(0, -(-(until_ns - at_ns) // every_ns))


class NemesisFault(Spec):
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


class ScriptFault(Spec):
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

FaultSpec = Annotated[_OneFaultKinds | NemesisFault | ScriptFault, Field(discriminator="kind")]
