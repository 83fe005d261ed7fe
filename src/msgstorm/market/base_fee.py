"""The EIP-1559 base-fee rule written once: the next block's base fee from this block's use.

Place in the pipeline: below everything that moves or reads a base fee. The simulator's
``eip1559`` backpressure mode (``sim/backpressure.py``) moves its base fee with it after
each block, and the chain calibration (``analysis/chain_fit.py``) recomputes a node's
base fees with it to judge the rule it fitted. It imports nothing, so the analysis loads no
simulator to use it.

The rule: the fee moves by ``max_change`` times the block's use above or below ``target``
of its capacity, relative to that target, at most ``max_change`` either way, and never
below ``min_base_fee`` (EIP-1559: ``target`` 1/2, ``max_change`` 1/8). Written in floats:
an EVM node computes it in integer wei, so the two part by a rounding of at most one wei a
block, which ``analysis/chain_fit.py`` allows for.
"""

from __future__ import annotations

__all__ = ["next_base_fee"]


def next_base_fee(base_fee: float, used: float, capacity: float, target: float, max_change: float,
                  min_base_fee: float) -> float:
    """The base fee of the block after one that used ``used`` of ``capacity`` (gas, or
    messages without a gas limit) under ``base_fee``."""
    target_use = target * capacity
    delta = max_change * (used - target_use) / target_use if target_use > 0 else 0.0
    delta = max(-max_change, min(max_change, delta))
    return max(min_base_fee, base_fee * (1.0 + delta))
