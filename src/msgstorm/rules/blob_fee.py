"""The EIP-4844 blob fee rule written once: a block's blob base fee from its excess blob gas.

Place in the pipeline: beside ``base_fee`` (EIP-1559) in ``rules/``. The rollup's L1
(``sim/rollup/l1.py``) prices each block's blobs with it, and the tests recompute every
block's blob fee from the history with it. It imports nothing.

The rule (EIP-4844, https://eips.ethereum.org/EIPS/eip-4844): a blob is ``GAS_PER_BLOB``
= 2**17 blob gas (131,072 bytes, 4096 field elements of 32 bytes); each block carries
``excess_blob_gas``, the blob gas used above the target summed over the chain and floored
at zero (``calc_excess_blob_gas``); the blob base fee is ``fake_exponential(MIN_BASE_FEE_PER_BLOB_GAS
= 1, excess_blob_gas, BLOB_BASE_FEE_UPDATE_FRACTION)``, an integer approximation of
``1 * e**(excess / fraction)``. Cancun: target 3 and maximum 6 blobs a block, fraction
3,338,477 (EIP-4844); Prague: 6 and 9, fraction 5,007,716 (EIP-7691,
https://eips.ethereum.org/EIPS/eip-7691). Written in Python's integers, as a node computes it.
"""

from __future__ import annotations

__all__ = [
    "BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN",
    "BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE",
    "GAS_PER_BLOB",
    "MIN_BASE_FEE_PER_BLOB_GAS",
    "blob_base_fee",
    "fake_exponential",
    "next_excess_blob_gas",
]

GAS_PER_BLOB = 1 << 17
MIN_BASE_FEE_PER_BLOB_GAS = 1
BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN = 3_338_477
BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE = 5_007_716


def fake_exponential(factor: int, numerator: int, denominator: int) -> int:
    """``factor * e ** (numerator / denominator)`` in integers, EIP-4844's Taylor series as
    the EIP writes it."""
    i = 1
    output = 0
    numerator_accum = factor * denominator
    while numerator_accum > 0:
        output += numerator_accum
        numerator_accum = (numerator_accum * numerator) // (denominator * i)
        i += 1
    return output // denominator


def next_excess_blob_gas(excess_blob_gas: int, blobs_used: int, target_blobs: int) -> int:
    """The excess blob gas of the block after one with ``excess_blob_gas`` that held
    ``blobs_used`` blobs (EIP-4844's ``calc_excess_blob_gas``)."""
    used = excess_blob_gas + blobs_used * GAS_PER_BLOB
    target = target_blobs * GAS_PER_BLOB
    return used - target if used >= target else 0


def blob_base_fee(excess_blob_gas: int, update_fraction: int) -> int:
    """The blob base fee in wei per blob gas of a block with ``excess_blob_gas``."""
    return fake_exponential(MIN_BASE_FEE_PER_BLOB_GAS, excess_blob_gas, update_fraction)
