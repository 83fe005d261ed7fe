"""How nodes relay what they forward: the ``[network.relay]`` section of a scenario.

Place in the pipeline: scenario validation; the simulator's gossip kernel
(``sim/kernel.py``) runs the protocols. ``RELAY_PROTOCOLS`` is the list of protocols and
their codes in the kernel's arrays (a protocol's position is its code).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from msgstorm.scenario.distributions import DurationNs
from msgstorm.scenario.kinds import MESSAGE_KINDS
from msgstorm.scenario.spec import Fraction, Spec

__all__ = ["BLOCK_KIND", "RELAY_PROTOCOLS", "RelayProtocol", "RelaySpec"]

RelayProtocol = Literal["push", "announce", "push_sqrt", "compact"]
RELAY_PROTOCOLS: tuple[str, ...] = get_args(RelayProtocol)
# The name ``kinds`` gives the blocks the sequencer produces, beside the message kinds.
BLOCK_KIND = "block"


_COMPACT_FIELDS = ("compact_header", "short_id", "high_bandwidth", "rebuild_failure", "compact_share")
# The share of compact blocks a node cannot rebuild from what it holds and must ask its
# peer for (getblocktxn, one more round trip): SimBlock's CBR_FAILURE_RATE_FOR_CONTROL_NODE
# (dsg-titech/simblock, SimulationConfiguration.java; from the measurements of Imtiaz et
# al., "Churn in the Bitcoin Network", IEEE ICBC 2019), the rate of a node that stays
# connected (SimBlock's churning nodes: 0.27).
REBUILD_FAILURE = 0.13


class RelaySpec(Spec):
    """How a node passes an item it validated to its peers.

    ``push`` sends the whole item to every peer (duplicates included); ``announce`` sends an
    announcement, and a peer that lacks the item asks for it (one request in flight per
    item; after ``timeout`` without it, it asks another peer that holds it); ``push_sqrt``
    pushes the item to the square root of the node's peers (rounded up) and announces it to
    the rest; ``compact`` (blocks only, BIP 152) sends a compact block (``compact_header``
    bytes plus ``short_id`` bytes per message) unasked to ``high_bandwidth`` peers and
    announces it to the rest, and a peer rebuilds the block from the messages it has
    validated, asking for the missing ones (one more round trip); ``compact_share`` of the
    nodes speak it, and a link where either end does not carries the full block (announced,
    then asked for). ``protocol`` applies to every
    kind not named in ``kinds`` (message kinds and ``block``). ``control_overhead`` is a fixed
    delay each announcement and request pays on top of its link delay (payloads do not)."""

    protocol: RelayProtocol = "push"
    kinds: dict[str, RelayProtocol] = Field(default_factory=dict)
    timeout: DurationNs = Field(default=10_000_000_000, gt=0)
    control_overhead: DurationNs = Field(default=0, ge=0, le=(1 << 40))
    compact_header: int = Field(default=88, ge=0, le=1 << 30)
    short_id: int = Field(default=6, ge=1, le=64)
    high_bandwidth: int = Field(default=3, ge=0, le=1 << 20)
    rebuild_failure: Fraction = REBUILD_FAILURE
    compact_share: Fraction = 1.0
    # Opt-in (sim/sampled_pool.py): the share of messages relayed receipt by receipt; none: all of them.
    sample: float | None = Field(default=None, gt=0, le=1)
    # What the unsampled messages cost the nodes (scenario/sample_load.py): "derate" gives the
    # sample what their load leaves of each uplink, downlink and CPU; "none" leaves it out.
    sample_load: Literal["derate", "none"] = "derate"

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: dict[str, str]) -> dict[str, str]:
        known = (*MESSAGE_KINDS, BLOCK_KIND)
        unknown = sorted(set(kinds) - set(known))
        if unknown:
            raise ValueError(f"unknown kinds {unknown}: relay kinds are {list(known)}")
        compact = sorted(kind for kind, protocol in kinds.items() if protocol == "compact" and kind != BLOCK_KIND)
        if compact:
            raise ValueError(f"compact relays blocks only, not {compact}: kinds = {{ block = \"compact\" }}")
        return kinds

    @model_serializer(mode="wrap")
    def _without_compact_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Compact relay's settings at their defaults dump (and hash) as before they existed."""
        data: dict[str, Any] = handler(self)
        for name in _COMPACT_FIELDS:
            if name in data and getattr(self, name) == RelaySpec.model_fields[name].default:
                data.pop(name)
        if data.get("sample") is None:  # without a sample the section dumps as before it existed
            data.pop("sample", None)
        if data.get("sample_load") == "derate":
            data.pop("sample_load")
        return data

    @property
    def sample_stride(self) -> int:
        """Every how many msg_ids a message is relayed receipt by receipt (1: all of them)."""
        return 1 if self.sample is None else max(1, round(1 / self.sample))

    @field_validator("protocol")
    @classmethod
    def _compact_for_blocks(cls, protocol: str) -> str:
        if protocol == "compact":
            raise ValueError("compact relays blocks only: kinds = { block = \"compact\" }")
        return protocol

    def code(self, kind: str) -> int:
        """The kernel's code of the protocol relaying ``kind``."""
        return RELAY_PROTOCOLS.index(self.kinds.get(kind, self.protocol))

    @property
    def pushes_only(self) -> bool:
        return self.protocol == "push" and all(p == "push" for p in self.kinds.values())
