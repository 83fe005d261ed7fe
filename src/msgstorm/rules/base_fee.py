"""The EIP-1559 base-fee rule written once: the next block's base fee from this block's use.

Place in the pipeline: below everything that moves or reads a base fee (``rules/``). The
simulator's ``eip1559`` backpressure mode (``sim/backpressure.py``) moves its base fee with
it after each block, and the chain calibration (``analysis/chain_fit.py``) recomputes a node's
base fees with it to judge the rule it fitted. It imports nothing, so the analysis loads no
simulator and no market layer to use it.

The rule: the fee moves by ``max_change`` times the block's use above or below ``target``
of its capacity, relative to that target, at most ``max_change`` either way, and never
below ``min_base_fee`` (EIP-1559: ``target`` 1/2, ``max_change`` 1/8). Written in floats:
an EVM node computes it in integer wei, so the two part by a rounding of at most one wei a
block, which ``analysis/chain_fit.py`` allows for. ``next_base_fee_wei`` is the same rule in
the node's integer wei with EIP-1559's own constants: what a fee-aware keeper on a live EVM
node bids by (``live/chain/market.py``).
"""

from __future__ import annotations

__all__ = ["next_base_fee", "next_base_fee_wei"]


def next_base_fee(base_fee: float, used: float, capacity: float, target: float, max_change: float,
                  min_base_fee: float) -> float:
    """The base fee of the block after one that used ``used`` of ``capacity`` (gas, or
    messages without a gas limit) under ``base_fee``."""
    target_use = target * capacity
    delta = max_change * (used - target_use) / target_use if target_use > 0 else 0.0
    delta = max(-max_change, min(max_change, delta))
    return max(min_base_fee, base_fee * (1.0 + delta))


# EIP-1559: a block's gas target is its limit over the elasticity; the base fee moves by at
# most 1/8 of itself a block towards it.
_ELASTICITY = 2
_CHANGE_DENOMINATOR = 8


def next_base_fee_wei(base_fee_wei: int, gas_used: int, gas_limit: int) -> int:
    """The base fee of the block after one with ``base_fee_wei``, ``gas_used`` of ``gas_limit``
    (EIP-1559, in integers as the node computes it; ``tests/test_live_anvil.py`` checks it
    against anvil's blocks)."""
    target = gas_limit // _ELASTICITY
    if target <= 0 or gas_used == target:
        return base_fee_wei
    if gas_used > target:
        return base_fee_wei + max(1, base_fee_wei * (gas_used - target) // target // _CHANGE_DENOMINATOR)
    return base_fee_wei - base_fee_wei * (target - gas_used) // target // _CHANGE_DENOMINATOR
