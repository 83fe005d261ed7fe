"""Backpressure at the sequencer's intake: what happens when messages arrive faster than served.

One class per mode behind ``Backpressure``, registered under its ``mode`` name in
``BACKPRESSURE_MODES`` (``scenario/registry.py``); the sequencer asks ``admit`` on arrival,
``eligible`` when a worker takes a message (EIP-1559 may have raised the base fee since),
reports depth changes through ``on_depth`` (which may change state: suspend senders,
start shedding) and block fullness through ``on_block`` (fee escalation). State changes
are returned as strings and written as ``backpressure`` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from msgstorm.rules.base_fee import next_base_fee
from msgstorm.scenario.fee_file import read_fee_series
from msgstorm.scenario.registry import BACKPRESSURE_MODES
from msgstorm.scenario.schema import (
    MESSAGE_KINDS,
    BackpressureSpec,
    DropTail,
    Eip1559,
    Shed,
    Suspend,
    Unbounded,
)
from msgstorm.sim import seq_core

__all__ = ["ADMIT", "DROP", "HOLD", "NEVER_DEPTH", "REJECT", "Backpressure", "DropRule", "DroppingMode",
           "make_backpressure"]

ADMIT, DROP, REJECT, HOLD = 0, 1, 2, 3
# The core's rules as Python runs them: the same functions the compiled loops inline.
_drops = seq_core.drops.py_func
_engaged_after = seq_core.engaged_after.py_func


class Backpressure(Protocol):
    suspended: bool  # senders must hold new messages
    holds_senders: bool  # whether ``suspended`` can ever be set (the mode suspends senders)
    base_fee: float | None  # None unless the mode prices admission
    drop_rule: DropRule | None  # the mode as drop tables, when it only drops

    def admit(self, kind: int, fee: float, depth: int) -> int: ...

    def eligible(self, fee: float) -> bool:
        """Whether a queued message with this fee may still be served: monotone in the
        fee (any fee at least an eligible one's is eligible; the sequencer relies on it)."""
        ...

    def priced_out(self) -> int:
        """What happens to a queued message ``eligible`` turned away: HOLD (it waits for
        the fee to fall) or REJECT, as ``admit`` answers an underpriced arrival."""
        ...

    def on_depth(self, depth: int) -> str | None: ...

    def on_block(self, used: int, capacity: int, t: int = 0) -> float | None: ...

    def room(self, depth: int) -> int | None:
        """How many held messages may be sent again now (None: no bound)."""
        ...


@dataclass(frozen=True)
class DropRule:
    """A mode that only ever admits or drops, as tables: arrivals of kind k are dropped at
    depth ``limit[k]`` unless ``protected[k]``; the mode engages (the ``states[1]``
    backpressure event) at depth ``engage_at`` and is released (``states[0]``) below
    ``HYSTERESIS * engage_at``. The Python sequencer, the block step and the compiled
    one-node loop all decide from this one object, by the core's rules (``sim/seq_core.py``:
    ``drops``, ``engaged_after``)."""

    limit: tuple[int, ...]
    protected: tuple[bool, ...]
    engage_at: int
    states: tuple[str, str]


class _Base:
    suspended = False
    holds_senders = False
    base_fee: float | None = None
    # The mode as drop tables, when it only drops (the compiled one-node loop replays it);
    # None for modes that hold senders or price admission.
    drop_rule: DropRule | None = None

    def admit(self, kind: int, fee: float, depth: int) -> int:
        return ADMIT

    def eligible(self, fee: float) -> bool:
        return True

    def priced_out(self) -> int:
        return HOLD

    def on_depth(self, depth: int) -> str | None:
        return None

    def on_block(self, used: int, capacity: int, t: int = 0) -> float | None:
        return None

    def room(self, depth: int) -> int | None:
        return None


# Depths beyond any queue: "never" for an unbounded queue (int64 arithmetic stays exact).
NEVER_DEPTH = 1 << 62


@BACKPRESSURE_MODES.register("unbounded")
class UnboundedQueue(_Base):
    """Admit everything; the queue grows without limit."""

    drop_rule: DropRule | None = DropRule((NEVER_DEPTH,) * len(MESSAGE_KINDS), (False,) * len(MESSAGE_KINDS), NEVER_DEPTH,
                                          ("normal", "normal"))

    def __init__(self, spec: Unbounded | None = None) -> None:
        pass


class DroppingMode(_Base):
    """Admit or drop by the ``DropRule`` table; report engaging and releasing."""

    def __init__(self, rule: DropRule) -> None:
        self.rule = rule
        self.drop_rule = rule
        self.limit = list(rule.limit)
        self.protected = list(rule.protected)
        self.engage_at = rule.engage_at
        self.engaged = False

    def admit(self, kind: int, fee: float, depth: int) -> int:
        return DROP if _drops(self.limit, self.protected, kind, depth) else ADMIT

    def on_depth(self, depth: int) -> str | None:
        engaged = _engaged_after(self.engaged, depth, self.engage_at)
        if engaged == self.engaged:
            return None
        self.engaged = bool(engaged)
        return self.rule.states[engaged]


@BACKPRESSURE_MODES.register("drop_tail")
class DropTailQueue(DroppingMode):
    """Drop arrivals while the queue holds ``capacity`` messages."""

    def __init__(self, spec: DropTail) -> None:
        kinds = len(MESSAGE_KINDS)
        super().__init__(DropRule((spec.capacity,) * kinds, (False,) * kinds, spec.capacity, ("normal", "dropping")))


@BACKPRESSURE_MODES.register("suspend")
class SuspendResume(_Base):
    """Circuit breaker: suspend senders at the high watermark, resume at the low one.

    On resume the held messages are sent again only as the queue has room: up to ``high``
    minus the depth at once, then one for each message a worker takes from the queue, so
    the queue never exceeds ``high`` plus what was already on its way."""

    holds_senders = True

    def __init__(self, spec: Suspend) -> None:
        self.high = spec.high
        self.low = spec.low

    def on_depth(self, depth: int) -> str | None:
        if not self.suspended and depth >= self.high:
            self.suspended = True
            return "suspended"
        if self.suspended and depth <= self.low:
            self.suspended = False
            return "resumed"
        return None

    def room(self, depth: int) -> int | None:
        return max(0, self.high - depth)


@BACKPRESSURE_MODES.register("eip1559")
class FeeEscalation(_Base):
    """EIP-1559: the base fee moves up to ``max_change`` per block toward ``target`` use
    (the rule: ``rules/base_fee.py``).

    A message whose max fee is below the base fee waits (held until the fee falls) or is
    rejected, as configured. With ``base_fee_file`` the base fee follows the file's series
    instead (``scenario/fee_file.py``): from each block at t on, its last row's at or before t.
    """

    def __init__(self, spec: Eip1559) -> None:
        self.series = None if spec.base_fee_file is None else read_fee_series(spec.base_fee_file)
        self.base_fee = spec.initial_base_fee if self.series is None else self.series.at(0)
        self.min_base_fee = spec.min_base_fee
        self.target = spec.target
        self.max_change = spec.max_change
        self.underpriced = HOLD if spec.underpriced == "wait" else REJECT

    def admit(self, kind: int, fee: float, depth: int) -> int:
        assert self.base_fee is not None
        return ADMIT if fee >= self.base_fee else self.underpriced

    def eligible(self, fee: float) -> bool:
        assert self.base_fee is not None
        return fee >= self.base_fee

    def priced_out(self) -> int:
        return self.underpriced

    def on_block(self, used: int, capacity: int, t: int = 0) -> float | None:
        assert self.base_fee is not None
        if self.series is not None:
            self.base_fee = self.series.at(t)
            return self.base_fee
        self.base_fee = next_base_fee(self.base_fee, used, capacity, self.target, self.max_change, self.min_base_fee)
        return self.base_fee


@BACKPRESSURE_MODES.register("shed")
class PriorityShedding(DroppingMode):
    """Shed low-priority kinds first: each kind has a depth level (fraction of capacity)
    above which its arrivals are dropped; protected kinds are always admitted. Shedding
    starts at the lowest level of a kind that can be shed at all."""

    def __init__(self, spec: Shed) -> None:
        limit = [spec.capacity] * len(MESSAGE_KINDS)
        for kind, level in spec.levels.items():
            limit[MESSAGE_KINDS.index(kind)] = int(level * spec.capacity)
        protected = tuple(kind in spec.protect for kind in MESSAGE_KINDS)
        sheddable = [lim for lim, guarded in zip(limit, protected) if not guarded]
        lowest = min(sheddable) if sheddable else spec.capacity
        super().__init__(DropRule(tuple(limit), protected, lowest, ("normal", "shedding")))


def make_backpressure(spec: BackpressureSpec) -> Backpressure:
    """The mode the spec names, from the registry (``scenario/registry.py``)."""
    mode: Backpressure = BACKPRESSURE_MODES[spec.mode](spec)
    return mode
