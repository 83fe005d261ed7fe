"""Forced inclusion in a sequencer outage: the one rule the simulated and the live rollup share.

Place in the pipeline: a formula below every engine. While the sequencer is down, a user of
the kinds ``via_l1`` goes through L1 (Arbitrum's delayed inbox, OP's deposits): the message is
in an L1 block at ``t_l1`` and the chain puts it in the L2 sequence ``window`` after that
block, by itself; if the sequencer returns first, it takes the ones already on L1 then, in
their L1 order. ``sim/rollup/outage.py`` schedules the simulator's by it (its L1 blocks every
``rollup.l1.slot``: ``l1_block_time``); ``live/chain/forced.py`` replays the live ones into the
L2 anvil by it (``t_l1`` the arrival of the L1 head holding the user's L1 transaction).
"""

from __future__ import annotations

__all__ = ["forced_time", "l1_block_time", "sequencer_takes_first"]


def l1_block_time(t_ns: int, slot_ns: int) -> int:
    """The time of the first L1 block after ``t_ns`` (slot 0 at time 0, a block every slot)."""
    return (t_ns // slot_ns + 1) * slot_ns


def forced_time(t_l1_ns: int, window_ns: int) -> int:
    """When the chain puts a message that reached L1 at ``t_l1_ns`` in the L2 sequence by itself."""
    return t_l1_ns + window_ns


def sequencer_takes_first(t_l1_ns: int, window_ns: int, t_up_ns: int) -> bool:
    """Whether the sequencer, back at ``t_up_ns``, takes the message before the chain forces it
    in: its window has not passed by then (at the same instant the return comes first)."""
    return t_up_ns <= forced_time(t_l1_ns, window_ns)
