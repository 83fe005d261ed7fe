"""The ``[crosschain]`` section: a second chain, and relayers carrying messages to it.

Place in the pipeline: the scenario layer. The scenario itself is the *source* chain; the
section names the *destination* chain as a scenario fragment (``[crosschain.destination]``:
its own network, sequencer, blocks and producers, agents, faults; a table it does not give
is the source's), which kinds of message cross, and the relayers that carry them. The
runner runs the source first; each relayer reads the source's history (``sim/relayers.py``)
and relays every crossing message it sees final (or, ``wait = "included"``, merely in a
block its node holds); the destination then runs with its own traffic plus the relayed
messages as timed arrivals (``scenario/destination.py`` builds its scenario), and the
analysis joins the two histories (``analysis/crosschain.py``).

With ``positions = "destination"`` the market's positions live on the destination while
their collateral, the oracle and the keepers stay on the source: a liquidation the source
executes is only the decision to close, and the position closes when that liquidation
message is relayed and commits on the destination (``analysis/collateral.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from msgstorm.scenario.distributions import DurationNs
from msgstorm.scenario.kinds import MessageKind
from msgstorm.scenario.spec import Fraction, Spec

__all__ = ["DESTINATION_TABLES", "CrosschainSpec", "RelayerSpec"]

Share = Annotated[Fraction, Field(ge=0, le=1)]

# The tables a destination fragment may give (each replaces the source's table of that name).
DESTINATION_TABLES = frozenset({"run", "network", "gossip", "sequencer", "blocks", "backpressure", "desync",
                                "agents", "faults", "slo", "security", "analysis", "history", "limits"})


class RelayerSpec(Spec):
    """``[[crosschain.relayers]]``: ``count`` relayers with these settings (``<name>-<i>``)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$", description="the relayers' name: "
                      "letters, digits and `_-`; each is `<name>-<i>`, its destination agents `<name>-<i>.<kind>`")
    count: int = Field(default=1, ge=1, le=1000, description="relayers with these settings, each drawing its "
                       "own refusals")
    source_node: str | None = Field(
        default=None, description="the source node whose view the relayer reads (default: the source "
        "sequencer's node, or the first node)")
    node: str | None = Field(default=None, description="the destination node it submits through (default: "
                             "the destination sequencer's node, or the first node)")
    wait: Literal["final", "included"] = Field(
        default="final", description="final: it relays a message once its node finalised a block holding it "
        "(the source's own finality: `blocks.producers.confirmations` deep, or votes; one sequencer: the "
        "commit); included: as soon as its node holds a block with it (0 confirmations; a reorg can take "
        "the message back after it was relayed)")
    delay: DurationNs = Field(default=0, description="from seeing a message final to submitting it")
    fee: float = Field(default=1.0, ge=0, description="the fee its destination messages offer")
    size: int = Field(default=1000, ge=1, le=1 << 30, description="bytes of one relayed message with its proof")
    censor: Share = Field(default=0.0, description="the share of crossing messages it refuses (each drawn "
                          "with the seed)")


class CrosschainSpec(Spec):
    """``[crosschain]``: the destination chain, what crosses, and who carries it."""

    kinds: list[MessageKind] = Field(default_factory=lambda: list[MessageKind](["order"]), min_length=1,
                                     description="the kinds of source message that cross")
    agents: list[str] = Field(default_factory=list, description="the source agents whose messages cross "
                              "(empty: every agent)")
    relayers: list[RelayerSpec] = Field(min_length=1, description="who carries the messages across: "
                                        "[`[[crosschain.relayers]]`](#crosschainrelayers)")
    proof_check: DurationNs = Field(default=0, description="the destination's check of a relayed message's "
                                    "proof, before the message enters its network")
    destination: dict[str, Any] = Field(description="the destination chain: scenario tables (run, network, "
                                        "sequencer, blocks, agents, faults, ...) replacing the source's")
    positions: Literal["source", "destination"] = Field(
        default="source", description="where the market's positions live. source: a liquidation closes its "
        "position when it commits on the source; destination: the collateral is accounted on the source, where "
        "the oracle and keepers act, and a liquidation the source executes closes the position only once it is "
        "relayed and committed on the destination, at the true price then (needs [market] and `liquidation` "
        "among `kinds`)")

    @model_serializer(mode="wrap")
    def _without_default_positions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Positions on the source (the default) are not written: a section without the
        setting dumps (and hashes) as it did before the setting existed."""
        data: dict[str, Any] = handler(self)
        if data.get("positions") == "source":
            data.pop("positions")
        return data

    @field_validator("destination")
    @classmethod
    def _known_tables(cls, destination: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(destination) - DESTINATION_TABLES)
        if unknown:
            raise ValueError(f"destination tables {unknown} are not allowed; one of {sorted(DESTINATION_TABLES)}")
        if not destination.get("agents"):
            raise ValueError("the destination needs agents of its own ([[crosschain.destination.agents]])")
        return destination

    @model_validator(mode="after")
    def _distinct_relayers(self) -> CrosschainSpec:
        names = [relayer.name for relayer in self.relayers]
        if len(set(names)) != len(names):
            raise ValueError("two relayers share a name")
        return self

    def relayer_names(self) -> list[tuple[str, RelayerSpec]]:
        """Every relayer instance in order: ``(<name>-<i>, its spec)``."""
        return [(f"{spec.name}-{i}", spec) for spec in self.relayers for i in range(spec.count)]
