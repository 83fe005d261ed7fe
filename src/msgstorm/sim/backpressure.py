"""Backpressure at the sequencer's intake: what happens when messages arrive faster than served.

One class per mode behind ``Backpressure``; the sequencer asks ``admit`` on arrival,
``eligible`` when a worker takes a message (EIP-1559 may have raised the base fee since),
reports depth changes through ``on_depth`` (which may change state: suspend senders,
start shedding) and block fullness through ``on_block`` (fee escalation). State changes
are returned as strings and written as ``backpressure`` events.
"""

from __future__ import annotations

from typing import Protocol

from msgstorm.scenario.schema import (
    MESSAGE_KINDS,
    BackpressureSpec,
    DropTail,
    Eip1559,
    Shed,
    Suspend,
    Unbounded,
)

__all__ = ["ADMIT", "DROP", "HOLD", "REJECT", "Backpressure", "make_backpressure"]

ADMIT, DROP, REJECT, HOLD = 0, 1, 2, 3
# A mode that engages at a depth reports "normal" again only below this fraction of it, so
# a queue hovering at the threshold does not flood the history with state changes.
HYSTERESIS = 0.9


class Backpressure(Protocol):
    suspended: bool  # senders must hold new messages
    base_fee: float | None  # None unless the mode prices admission

    def admit(self, kind: int, fee: float, depth: int) -> int: ...

    def eligible(self, fee: float) -> bool: ...

    def on_depth(self, depth: int) -> str | None: ...

    def on_block(self, used: int, capacity: int) -> float | None: ...


class _Base:
    suspended = False
    base_fee: float | None = None

    def admit(self, kind: int, fee: float, depth: int) -> int:
        return ADMIT

    def eligible(self, fee: float) -> bool:
        return True

    def on_depth(self, depth: int) -> str | None:
        return None

    def on_block(self, used: int, capacity: int) -> float | None:
        return None


class UnboundedQueue(_Base):
    """Admit everything; the queue grows without limit."""


class DropTailQueue(_Base):
    """Drop arrivals while the queue holds ``capacity`` messages."""

    def __init__(self, spec: DropTail) -> None:
        self.capacity = spec.capacity
        self.full = False

    def admit(self, kind: int, fee: float, depth: int) -> int:
        return DROP if depth >= self.capacity else ADMIT

    def on_depth(self, depth: int) -> str | None:
        if not self.full and depth >= self.capacity:
            self.full = True
            return "dropping"
        if self.full and depth < HYSTERESIS * self.capacity:
            self.full = False
            return "normal"
        return None


class SuspendResume(_Base):
    """Circuit breaker: suspend senders at the high watermark, resume at the low one."""

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


class FeeEscalation(_Base):
    """EIP-1559: the base fee moves up to ``max_change`` per block toward ``target`` use.

    A message whose max fee is below the base fee waits (held until the fee falls) or is
    rejected, as configured.
    """

    def __init__(self, spec: Eip1559) -> None:
        self.base_fee = spec.initial_base_fee
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

    def on_block(self, used: int, capacity: int) -> float | None:
        assert self.base_fee is not None
        target_use = self.target * capacity
        delta = self.max_change * (used - target_use) / target_use if target_use > 0 else 0.0
        delta = max(-self.max_change, min(self.max_change, delta))
        self.base_fee = max(self.min_base_fee, self.base_fee * (1.0 + delta))
        return self.base_fee


class PriorityShedding(_Base):
    """Shed low-priority kinds first: each kind has a depth level (fraction of capacity)
    above which its arrivals are dropped; protected kinds are always admitted."""

    def __init__(self, spec: Shed) -> None:
        self.capacity = spec.capacity
        self.limit = [spec.capacity] * len(MESSAGE_KINDS)
        for kind, level in spec.levels.items():
            self.limit[MESSAGE_KINDS.index(kind)] = int(level * spec.capacity)
        self.protected = [kind in spec.protect for kind in MESSAGE_KINDS]
        # Shedding starts at the lowest level of a kind that can be shed at all.
        sheddable = [limit for limit, guarded in zip(self.limit, self.protected) if not guarded]
        self.lowest = min(sheddable) if sheddable else spec.capacity
        self.shedding = False

    def admit(self, kind: int, fee: float, depth: int) -> int:
        if self.protected[kind]:
            return ADMIT
        return DROP if depth >= self.limit[kind] else ADMIT

    def on_depth(self, depth: int) -> str | None:
        if not self.shedding and depth >= self.lowest:
            self.shedding = True
            return "shedding"
        if self.shedding and depth < HYSTERESIS * self.lowest:
            self.shedding = False
            return "normal"
        return None


def make_backpressure(spec: BackpressureSpec) -> Backpressure:
    if isinstance(spec, Unbounded):
        return UnboundedQueue()
    if isinstance(spec, DropTail):
        return DropTailQueue(spec)
    if isinstance(spec, Suspend):
        return SuspendResume(spec)
    if isinstance(spec, Eip1559):
        return FeeEscalation(spec)
    if isinstance(spec, Shed):
        return PriorityShedding(spec)
    raise TypeError(f"unknown backpressure mode {spec!r}")
