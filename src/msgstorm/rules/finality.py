"""When an L1 block is final: the one rule the simulated and the live rollup share.

Place in the pipeline: a formula below every engine; ``sim/rollup/l1.py`` (the simulated
L1) and ``live/chain/rollup.py`` (the live batcher on an L1 anvil) both time ``t_final`` by it.
"""

from __future__ import annotations

__all__ = ["final_slot_time"]


def final_slot_time(slot_index: int, slots_per_epoch: int, finality_epochs: int, slot_ns: int) -> int:
    """When the block of slot ``slot_index`` (slot 0 at time 0) is final: at the end of the
    ``finality_epochs``-th epoch after its own (Ethereum's Casper FFG: two epochs)."""
    epoch = slot_index // slots_per_epoch
    return (epoch + 1 + finality_epochs) * slots_per_epoch * slot_ns
