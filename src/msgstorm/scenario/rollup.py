"""The ``[rollup]`` section: the run's chain is a rollup's L2, with a batcher and an L1 behind it.

Place in the pipeline: the scenario layer. The scenario's own sequencer and ``[blocks]`` are
the rollup's sequencer and its L2 blocks (``blocks.interval`` is the L2 block time, taken
from ``rollup.block_time`` when ``[blocks]`` does not give one); this section adds what stands
behind them: the batcher that compresses L2 blocks into batches and posts them to L1
(``[rollup.batcher]``), and the L1 with its 12 s slots, its EIP-1559 calldata fee, its blob
fee market (EIP-4844) and its finality (``[rollup.l1]``). The simulator derives every
batch, L1 block and commit time from the run's history (``sim/rollup/``), so a run with the
section is the same L2 run as one without it, plus three tables.
On ``target = "anvil"`` the L1 is a second anvil with a block every ``l1.slot`` and the
batcher msgstorm's own, posting calldata (``live/chain/rollup.py``).

``preset`` fills every field the file does not give with a chain's published parameters
(``PRESETS``; each value's source is in docs/networks.md).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from msgstorm.rules.blob_fee import (
    BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN,
    BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE,
    GAS_PER_BLOB,
)
from msgstorm.scenario.distributions import DurationNs
from msgstorm.scenario.spec import Fraction, Spec

__all__ = ["ARBITRUM_BLOB_BATCH_SIZE", "ARBITRUM_FORCED_WINDOW_NS", "OP_SEQUENCING_WINDOW_NS", "PRESETS", "BatcherSpec",
           "L1Spec", "RollupSpec", "TimeboostSpec"]

# Ethereum after Pectra (May 2025), shared by both presets: EIP-7691's 6/9 blobs and fraction.
_ETHEREUM: dict[str, Any] = {
    "slot": "12s", "slots_per_epoch": 32, "finality_epochs": 2,
    "target_blobs": 6, "max_blobs": 9, "blob_update_fraction": BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE,
}

# Arbitrum's batch poster with `max-4844-batch-size` unset (Nitro, arbnode/batch_poster.go): a blob batch
# fills under half the L1's most blobs, each of 130,048 encodable bytes (254 bits of every 32-byte field
# element), less 2,000 bytes of encoding margin: 583,216 bytes under Pectra's 9.
NITRO_BLOB_BYTES = 254 * 4096 // 8
NITRO_BLOB_BATCH_MARGIN = 2_000
ARBITRUM_BLOB_BATCH_SIZE = NITRO_BLOB_BYTES * int(_ETHEREUM["max_blobs"]) // 2 - NITRO_BLOB_BATCH_MARGIN

# The forced-inclusion window: how long after its L1 block the chain puts a message sent
# through L1 in the L2 sequence by itself. Arbitrum One: the sequencer inbox's delaySeconds,
# 86,400; the OP Stack: the sequencing window, 3,600 L1 blocks (seq_window_size) of 12 s.
ARBITRUM_FORCED_WINDOW_NS = 24 * 3600 * 1_000_000_000
OP_SEQUENCING_WINDOW_NS = 3600 * 12 * 1_000_000_000

# Each value's source: docs/networks.md ("Rollups").
PRESETS: dict[str, dict[str, Any]] = {
    "arbitrum-one": {
        "block_time": "250ms",
        "batcher": {"max_delay": "1h", "max_size": ARBITRUM_BLOB_BATCH_SIZE, "compression_ratio": 0.4,
                    "data": "blobs"},
        "l1": _ETHEREUM,
        "forced_inclusion_window": "24h",
    },
    "op-stack": {
        "block_time": "2s",
        "batcher": {"max_delay": "1h", "max_size": 6 * GAS_PER_BLOB, "compression_ratio": 0.6, "data": "blobs"},
        "l1": _ETHEREUM,
        "forced_inclusion_window": "12h",  # OP_SEQUENCING_WINDOW_NS
    },
}


class BatcherSpec(Spec):
    """``[rollup.batcher]``: how L2 blocks become batches posted to L1."""

    max_delay: DurationNs = Field(default=60_000_000_000, gt=0, description="a batch is posted at most this "
                                  "long after its first L2 block")
    max_size: int = Field(default=100_000, ge=1, le=1 << 30, description="compressed bytes a batch holds at most; "
                          "the L2 block that would pass it starts the next batch, which posts the first at once")
    compression_ratio: Fraction = Field(default=0.6, gt=0, le=1, description="compressed bytes per byte of L2 "
                                        "messages")
    data: Literal["calldata", "blobs"] = Field(default="calldata", description="calldata: the batch is an L1 "
                                               "transaction's data (16 gas a byte); blobs: EIP-4844 blobs of "
                                               "131,072 bytes, priced by the blob fee market")


class L1Spec(Spec):
    """``[rollup.l1]``: the chain batches land on (a block every slot, none missed)."""

    slot: DurationNs = Field(default=12_000_000_000, gt=0, description="time between L1 blocks")
    slots_per_epoch: int = Field(default=32, ge=1, le=1 << 20, description="slots in an epoch (Ethereum: 32)")
    finality_epochs: int = Field(default=2, ge=0, le=1000, description="a block of epoch e is final at the end "
                                 "of epoch e + this (with every validator voting: the next epoch's checkpoint, "
                                 "which descends from it, is justified then finalised)")
    gas_limit: int = Field(default=30_000_000, ge=2, le=1 << 40, description="L1 block gas limit; EIP-1559's "
                           "target is half")
    background_gas: int | None = Field(default=None, ge=0, description="gas the rest of L1 uses in every block "
                                       "(default: the target, so the base fee moves only by the batches)")
    initial_base_fee: int = Field(default=10_000_000_000, ge=1, description="wei per gas of the first L1 block")
    target_blobs: int = Field(default=6, ge=1, le=1 << 10, description="blobs a block aims at: above it the blob "
                              "base fee rises, below it falls (EIP-4844: 3; EIP-7691: 6)")
    max_blobs: int = Field(default=9, ge=1, le=1 << 10, description="blobs a block holds at most (EIP-4844: 6; "
                           "EIP-7691: 9)")
    blob_update_fraction: int = Field(default=BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE, ge=1, description=(
        f"EIP-4844's BLOB_BASE_FEE_UPDATE_FRACTION ({BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN:,} with 3/6 blobs, "
        f"{BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE:,} with 6/9)"))
    background_blobs: int | None = Field(default=None, ge=0, description="blobs other rollups post in every "
                                         "block (default: half the target, rounded down, an assumption that "
                                         "leaves a 6-blob batch room beside them under 6/9)")
    initial_excess_blob_gas: int = Field(default=0, ge=0, le=1 << 40, description="the first block's excess "
                                         "blob gas (0: the blob base fee starts at its 1 wei floor)")

    @model_validator(mode="after")
    def _within_limits(self) -> L1Spec:
        if self.target_blobs > self.max_blobs:
            raise ValueError(f"target_blobs {self.target_blobs} is above max_blobs {self.max_blobs}")
        if self.background_blobs is not None and self.background_blobs > self.max_blobs:
            raise ValueError(f"background_blobs {self.background_blobs} is above max_blobs {self.max_blobs}")
        if self.background_gas is not None and self.background_gas > self.gas_limit:
            raise ValueError(f"background_gas {self.background_gas} is above gas_limit {self.gas_limit}")
        return self

    @property
    def blobs_in_background(self) -> int:
        return self.target_blobs // 2 if self.background_blobs is None else self.background_blobs

    @property
    def gas_in_background(self) -> int:
        return self.gas_limit // 2 if self.background_gas is None else self.background_gas


class TimeboostSpec(Spec):
    """``[rollup.timeboost]``: an express lane as Arbitrum's Timeboost sells it: time is cut into
    rounds, each round's lane held by the winner of its auction, whose messages go to the
    sequencer at once while everyone else's wait ``delay`` first. The auction itself is not
    modelled: ``express`` names each round's winner (an agent), in turn."""

    round: DurationNs = Field(default=60_000_000_000, gt=0, description="a round's length (Timeboost: 60 s)")
    delay: DurationNs = Field(default=200_000_000, ge=0, description="what every message but the express "
                              "lane's waits before the sequencer takes it (Timeboost: 200 ms)")
    express: list[str] = Field(min_length=1, description="the agent holding the lane in each round, in turn "
                               "(round k: express[k mod its length]); \"\" for a round nobody bought")


class RollupSpec(Spec):
    """``[rollup]``: the L2's block time, its batcher and its L1."""

    preset: Literal["arbitrum-one", "op-stack"] | None = Field(
        default=None, description="fill every field not given with a chain's published parameters "
        "(docs/networks.md cites each)")
    block_time: DurationNs = Field(default=250_000_000, gt=0, description="L2 block time: `[blocks] interval` "
                                   "unless that is given (then the two must agree)")
    batcher: BatcherSpec = Field(default=BatcherSpec(), description="[`[rollup.batcher]`](#rollupbatcher)")
    l1: L1Spec = Field(default=L1Spec(), description="[`[rollup.l1]`](#rollupl1)")
    timeboost: TimeboostSpec | None = Field(default=None, description="an express lane sold by rounds: "
                                            "[`[rollup.timeboost]`](#rolluptimeboost)")
    # Left out of the dump at Arbitrum One's 24 h, the window before the field: those scenarios keep their hash.
    forced_inclusion_window: DurationNs = Field(
        default=ARBITRUM_FORCED_WINDOW_NS, gt=0, exclude_if=lambda window: window == ARBITRUM_FORCED_WINDOW_NS,
        description="how long after its L1 block a message sent through L1 enters the L2 sequence by itself: a "
                    "`sequencer_outage`'s `window` unless it gives one (Arbitrum One: 24h, its delayed inbox; OP "
                    "Stack: 12h, the sequencing window of 3,600 L1 blocks)")

    @model_validator(mode="before")
    @classmethod
    def _preset_fills(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        preset = PRESETS.get(str(data["preset"]))
        if preset is None:
            return data  # the Literal names the presets
        filled = {key: value for key, value in preset.items() if key not in data}
        for table in ("batcher", "l1"):
            given = data.get(table)
            if isinstance(given, dict):
                filled[table] = {**preset[table], **given}
        return {**data, **filled}

    @model_validator(mode="after")
    def _batch_fits_a_block(self) -> RollupSpec:
        """A full batch must fit in an L1 block beside the rest of L1's use, or it would wait forever."""
        l1 = self.l1
        if self.batcher.data == "blobs":
            room = l1.max_blobs - l1.blobs_in_background
            if self.batcher.max_size > room * GAS_PER_BLOB:
                raise ValueError(f"batcher.max_size {self.batcher.max_size} bytes is more than the {room} blobs an "
                                 f"L1 block has room for ({l1.max_blobs} blobs, {l1.blobs_in_background} of other "
                                 f"rollups: l1.background_blobs): at most {room * GAS_PER_BLOB} bytes")
        else:
            room = l1.gas_limit - l1.gas_in_background
            if 21_000 + 16 * self.batcher.max_size > room:
                raise ValueError(f"batcher.max_size {self.batcher.max_size} bytes of calldata needs more gas "
                                 f"(21,000 + 16 a byte) than an L1 block has room for: gas_limit {l1.gas_limit} "
                                 f"less background_gas {l1.gas_in_background}")
        return self
