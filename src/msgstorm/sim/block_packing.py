"""Block packing: which waiting messages the next block takes, written once.

Place in the pipeline: inside the simulator, under every block maker: the one sequencer's
blocks (``Sequencer.take_block`` and a lane's block share, ``sim/lane.py``), the producers'
blocks (``ForkChain._fill``, ``sim/forks.py``) and the compiled one-node loop
(``sim/solo_loop.py``).

The rule: messages are offered in order (sequence order, or a producer's mempool oldest
first); a block takes each while it holds fewer than its message limit and the message's gas
keeps it within its gas limit, and stops at the first message that does not fit. It does not
reach past that message for a smaller one: a block is filled in order, never out of it, so a
large message is not starved by later small ones. (Messages a producer would not take at all,
those already on its branch or that it censors, are not offered.)

``fits`` is the rule; the compiled loop calls the same function compiled by numba
(``fits_compiled``), so the rule has one text. ``BlockFill`` is the block being filled for the
Python engines: its messages, gas and bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from msgstorm.jit import nb
from msgstorm.sim.state import KIND, SIZE

__all__ = ["NO_GAS_LIMIT", "BlockFill", "fits", "fits_compiled"]

NO_GAS_LIMIT = -1  # a block without a gas limit (the compiled loop's int64 parameters have no None)


def fits(taken: int, gas_used: int, gas: int, max_messages: int, max_gas: int) -> bool:
    """Whether a block holding ``taken`` messages and ``gas_used`` gas takes one more of
    ``gas`` gas: fewer than ``max_messages`` so far, and within ``max_gas`` after it
    (``NO_GAS_LIMIT``: any gas)."""
    return taken < max_messages and (max_gas < 0 or gas_used + gas <= max_gas)


fits_compiled = nb.njit(cache=True, inline="always")(fits)


class BlockFill:
    """A block being filled: its messages in the order taken, its gas and its bytes (the
    header's included)."""

    __slots__ = ("gas", "messages", "size_bytes")

    def __init__(self, header_bytes: int) -> None:
        self.messages: list[int] = []
        self.gas = 0
        self.size_bytes = header_bytes

    def has_room(self, max_messages: int) -> bool:
        """Whether the block takes another message of no gas (its message limit only)."""
        return fits(len(self.messages), self.gas, 0, max_messages, NO_GAS_LIMIT)

    def offer(self, m: int, record: Sequence[Any], gas_of: Sequence[int], max_messages: int,
              max_gas: int | None) -> bool:
        """Take message ``m`` (its ``record``) if it fits; ``False`` (nothing taken) when it
        does not: the caller stops there."""
        gas = gas_of[record[KIND]]
        if not fits(len(self.messages), self.gas, gas, max_messages, NO_GAS_LIMIT if max_gas is None else max_gas):
            return False
        self.messages.append(m)
        self.gas += gas
        self.size_bytes += record[SIZE]
        return True

    def take_in_order(self, waiting: Iterable[int], records: Any, gas_of: Sequence[int], max_messages: int,
                      max_gas: int | None) -> int:
        """Offer ``waiting``'s messages in order (``records[m]`` is message ``m``'s record)
        until one does not fit; the number taken. ``offer`` for each in turn, with the
        block's totals kept in locals (a block offers hundreds at each tick)."""
        limit = NO_GAS_LIMIT if max_gas is None else max_gas
        messages = self.messages
        first = held = len(messages)
        gas_used = self.gas
        size_bytes = self.size_bytes
        for m in waiting:
            record = records[m]
            gas = gas_of[record[KIND]]
            if not fits(held, gas_used, gas, max_messages, limit):
                break
            messages.append(m)
            held += 1
            gas_used += gas
            size_bytes += record[SIZE]
        self.gas = gas_used
        self.size_bytes = size_bytes
        return held - first
