"""The L1 under the rollup: a block every slot, its gas and blob fees, and finality.

Place in the pipeline: ``sim/rollup``, after the batcher. Slot ``k`` starts at ``k * slot``
(slot 0 at the run's start) and every slot has a block (none missed). A batch closed at
``t`` is sent then and lands in the first block after it, slot ``t // slot + 1``, unless
that block has no room left (blobs: the block's other blobs, ``background_blobs``, plus
the batches already in it, at most ``max_blobs``; calldata: gas, at most ``gas_limit``);
then in the next with room. Batches land in the order they closed.

Each block's fees follow the rules in ``rules/``: the base fee per gas moves with the gas
the block used (the rest of L1's ``background_gas`` plus the batches', EIP-1559,
``next_base_fee_wei``), and the blob base fee with its excess blob gas (EIP-4844,
``blob_fee``). A calldata batch is one transaction of 21,000 gas plus 16 gas per byte
(EIP-2028's price of a non-zero byte: compressed data is taken as all non-zero); a blob
batch is 21,000 gas plus ``ceil(bytes / 131,072)`` blobs of 131,072 blob gas each. Its
cost is its gas at the block's base fee plus its blob gas at the block's blob base fee
(tips left out).

Finality: with every validator attesting, epoch ``e + 1``'s checkpoint is justified at the
end of epoch ``e + 1`` and finalised at the end of epoch ``e + 2``; a block of epoch ``e``
is its ancestor and final then: ``t_final = (e + 1 + finality_epochs) * slots_per_epoch *
slot`` (Gasper; ethereum.org, "Proof-of-stake: finality").
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from msgstorm.rules.base_fee import next_base_fee_wei
from msgstorm.rules.blob_fee import GAS_PER_BLOB, blob_base_fee, next_excess_blob_gas
from msgstorm.rules.finality import final_slot_time
from msgstorm.scenario.rollup import L1Spec
from msgstorm.sim.rollup.batcher import Batches

__all__ = ["CALLDATA_GAS_PER_BYTE", "TX_GAS", "L1Blocks", "Landed", "batch_gas", "final_time", "land"]

TX_GAS = 21_000
CALLDATA_GAS_PER_BYTE = 16


def batch_gas(compressed_bytes: int, blobs: bool) -> tuple[int, int, int]:
    """A batch's (gas, blobs, blob gas) on L1."""
    if blobs:
        count = max(1, math.ceil(compressed_bytes / GAS_PER_BLOB))
        return TX_GAS, count, count * GAS_PER_BLOB
    return TX_GAS + CALLDATA_GAS_PER_BYTE * compressed_bytes, 0, 0


def final_time(slot_index: int, spec: L1Spec) -> int:
    """When the block of slot ``slot_index`` is final (see the module's docstring;
    ``rules.finality``)."""
    return final_slot_time(slot_index, spec.slots_per_epoch, spec.finality_epochs, spec.slot)


@dataclass
class L1Blocks:
    """Every L1 block from slot 1 to the last a batch landed in, as columns."""

    slot: list[int] = field(default_factory=list)
    t: list[int] = field(default_factory=list)
    gas_used: list[int] = field(default_factory=list)
    base_fee: list[int] = field(default_factory=list)  # wei per gas
    blobs: list[int] = field(default_factory=list)
    excess_blob_gas: list[int] = field(default_factory=list)
    blob_base_fee: list[int] = field(default_factory=list)  # wei per blob gas
    batches: list[int] = field(default_factory=list)


@dataclass
class Landed:
    """Per batch: its slot, gas, blobs, blob gas and cost in wei."""

    slot: list[int] = field(default_factory=list)
    gas: list[int] = field(default_factory=list)
    blobs: list[int] = field(default_factory=list)
    blob_gas: list[int] = field(default_factory=list)
    cost_wei: list[int] = field(default_factory=list)


def land(batches: Batches, spec: L1Spec, blobs: bool) -> tuple[Landed, L1Blocks]:
    """Each batch's L1 block and cost, and the L1 blocks."""
    count = len(batches.t_closed)
    needs = [batch_gas(size, blobs) for size in batches.compressed_bytes]
    landed = Landed(slot=[0] * count, gas=[g for g, _, _ in needs], blobs=[b for _, b, _ in needs],
                    blob_gas=[bg for _, _, bg in needs], cost_wei=[0] * count)
    blocks = L1Blocks()
    waiting: deque[int] = deque()
    base_fee, excess = spec.initial_base_fee, spec.initial_excess_blob_gas
    background_gas, background_blobs = spec.gas_in_background, spec.blobs_in_background
    for b in range(count):  # one L2 block over max_size alone makes a batch no block may hold
        if background_gas + landed.gas[b] > spec.gas_limit or background_blobs + landed.blobs[b] > spec.max_blobs:
            raise ValueError(f"batch {b} ({batches.compressed_bytes[b]:,} compressed bytes, one L2 block over "
                             "rollup.batcher.max_size) fits in no L1 block beside the rest of L1's use: lower "
                             "[blocks] max_messages or raise the L1's room")
    nxt = 0  # the next batch not yet sent
    k = 1
    while nxt < count or waiting:
        t = k * spec.slot
        while nxt < count and batches.t_closed[nxt] < t:  # sent before this block was built
            waiting.append(nxt)
            nxt += 1
        blob_fee = blob_base_fee(excess, spec.blob_update_fraction)
        gas, used_blobs, held = background_gas, background_blobs, 0
        while waiting:
            b = waiting[0]
            if gas + landed.gas[b] > spec.gas_limit or used_blobs + landed.blobs[b] > spec.max_blobs:
                break  # no room: it and the batches behind it wait for the next block
            waiting.popleft()
            gas += landed.gas[b]
            used_blobs += landed.blobs[b]
            held += 1
            landed.slot[b] = k
            landed.cost_wei[b] = landed.gas[b] * base_fee + landed.blob_gas[b] * blob_fee
        blocks.slot.append(k)
        blocks.t.append(t)
        blocks.gas_used.append(gas)
        blocks.base_fee.append(base_fee)
        blocks.blobs.append(used_blobs)
        blocks.excess_blob_gas.append(excess)
        blocks.blob_base_fee.append(blob_fee)
        blocks.batches.append(held)
        base_fee = next_base_fee_wei(base_fee, gas, spec.gas_limit)
        excess = next_excess_blob_gas(excess, used_blobs, spec.target_blobs)
        k += 1
    return landed, blocks
