"""The fault proxy's toxics: one small class each, registered by name in ``TOXICS``.

Place in the pipeline: between a scenario's ``toxic`` fault and the fault proxy. Validation
(``scenario/schema.py``) asks ``TOXICS`` which kinds exist and which settings each reads;
the nemesis (``live/nemesis.py``) builds a toxic from its scenario entry (``from_spec``) and
sends it to the proxy as a plain dict (``wire``); the proxy (``live/proxy.py``) rebuilds it
(``from_wire``) and calls it on its pipes and connections. The reference (``docs/scenario.md``)
lists the kinds from here too. A new toxic is one class registered with ``@toxic(name)``
(here, or in an extension module, ``scenario/registry.py``): its parameters, the entry's
settings it reads (``settings``, ``parameters``), and ``pipe`` (what it does to a chunk of
data) or ``meet`` (what it does to a connection); nothing else names it.

Toxiproxy's shape: a data toxic transforms each chunk it acts on into pieces, each with the
delay it adds; the proxy keeps every delay beside the toxic that added it, so when a toxic
ends what it held back is re-timed as the link without it would carry it (at once, unless
another toxic still holds it), and what is read next does not queue behind it. A connection
toxic acts on each connection it meets, through ``ToxicTarget``; what it schedules or holds
on a connection ends with it.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from msgstorm.scenario.registry import TOXICS
from msgstorm.scenario.schema import ToxicFault

__all__ = ["DIRECTIONS", "TOXICS", "Bandwidth", "Blackhole", "Corrupt", "Latency", "ResetPeer", "SlowClose",
           "Slicer", "Timeout", "Toxic", "ToxicState", "ToxicStats", "ToxicTarget", "from_wire", "toxic", "toxic_rng"]

DIRECTIONS = ("upstream", "downstream")
Direction = Literal["upstream", "downstream", "both"]


@dataclass
class ToxicStats:
    """What one toxic did while it was active (the ``fault_end`` event's detail)."""

    chunks: int = 0  # chunks it acted on
    bytes: int = 0  # bytes in them
    dropped_bytes: int = 0
    corrupted_chunks: int = 0
    connections: int = 0  # connections a connection toxic acted on
    tampered_messages: int = 0  # messages a tamper toxic altered (``live/adversary_toxics.py``)
    replayed_messages: int = 0  # copies a replay toxic sent again


@dataclass
class ToxicState:
    """One toxic on one direction of one connection while it is active: the toxic's random
    stream on its link (seeded from the run's seed and the fault's id, ``toxic_rng``), what
    it did there (shared by the link's connections), and ``free_ns``: when a bandwidth cap
    lets the next byte go."""

    rng: random.Random
    stats: ToxicStats
    free_ns: int = 0
    frames: Any = None  # a toxic that reads the protocol's frames: where it is in them on this connection


def toxic_rng(seed: int, toxic_id: int, link: str) -> random.Random:
    """The random stream of toxic ``toxic_id`` on ``link`` in a run seeded ``seed``: the same
    seed draws the same, another seed other draws (a str seed is hashed with SHA-512, so it
    does not depend on the interpreter's hash seed)."""
    return random.Random(f"{seed}:{toxic_id}:{link}")


class ToxicTarget(Protocol):
    """A proxied connection as a connection toxic acts on it (``proxy._Connection``). What
    a toxic schedules or holds here ends when the toxic ends."""

    def later(self, toxic_id: int, delay_ns: int, action: Callable[[], None]) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...

    def hold(self, toxic_id: int, directions: tuple[str, ...]) -> None:
        """Hold the data of these directions until the toxic ends (then it goes at once)."""

    def hold_close(self, toxic_id: int, delay_ns: int) -> None:
        """Hold the connection's close this long (while the toxic lasts)."""


@dataclass(frozen=True)
class Toxic:
    """One toxic: the direction it acts on and how often (``probability``: the share of
    chunks a data toxic acts on, of connections a connection toxic acts on). Subclasses add
    their parameters, and ``pipe`` or ``meet``."""

    kind: ClassVar[str]
    summary: ClassVar[str]  # what it does, for the reference
    settings: ClassVar[tuple[str, ...]] = ()  # the scenario entry's settings it reads
    on_connections: ClassVar[bool] = False  # acts on connections, not on chunks
    changes_bytes: ClassVar[bool] = False  # delivers changed bytes (payloads must carry a check byte)
    # Acts on whole messages it reads out of the stream: sees every read, draws ``probability``
    # per message itself (``live/adversary_toxics.py``)
    per_message: ClassVar[bool] = False

    direction: Direction = "both"
    probability: float = 1.0

    def acts_on(self, direction: str) -> bool:
        return self.direction in ("both", direction)

    def directions(self) -> tuple[str, ...]:
        return tuple(d for d in DIRECTIONS if self.acts_on(d))

    @classmethod
    def from_spec(cls, spec: ToxicFault) -> Toxic:
        """The toxic of a scenario entry (a ValueError naming what it misses)."""
        return cls(direction=spec.direction, probability=spec.probability, **cls.parameters(spec))

    @classmethod
    def parameters(cls, spec: ToxicFault) -> dict[str, Any]:
        """This kind's parameters from the entry's settings, in ns and bytes."""
        return {}

    def wire(self) -> dict[str, Any]:
        """As the proxy's ``set`` command carries it."""
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def pipe(self, t_ns: int, chunk: bytes, state: ToxicState) -> list[tuple[int, bytes]]:
        """What a chunk read at ``t_ns`` (plus the delays of the toxics before this one)
        becomes: pieces, each with the delay this toxic adds (none: dropped)."""
        return [(0, chunk)]

    def meet(self, connection: ToxicTarget, toxic_id: int) -> None:
        """Act on a connection (open when the toxic starts, or opened while it is active)."""


T = TypeVar("T", bound=type[Toxic])


def toxic(kind: str) -> Callable[[T], T]:
    """Class decorator: register a toxic under ``kind`` (its name in scenarios and on the wire)."""

    def add(cls: T) -> T:
        cls.kind = kind
        TOXICS.register(kind)(cls)
        return cls

    return add


def from_wire(wire: dict[str, Any]) -> Toxic:
    """A toxic from the proxy's ``set`` command (``Toxic.wire``)."""
    parameters = dict(wire)
    kind = parameters.pop("kind")
    toxic: Toxic = TOXICS[kind](**parameters)
    return toxic


@toxic("latency")
@dataclass(frozen=True)
class Latency(Toxic):
    summary: ClassVar[str] = "each read held `latency` ± `jitter` (uniform), in order"
    settings: ClassVar[tuple[str, ...]] = ("latency", "jitter")

    latency_ns: int = 0
    jitter_ns: int = 0

    @classmethod
    def parameters(cls, spec: ToxicFault) -> dict[str, Any]:
        if not spec.latency and not spec.jitter:
            raise ValueError("toxic 'latency' needs 'latency' (and optionally 'jitter')")
        return {"latency_ns": spec.latency or 0, "jitter_ns": spec.jitter or 0}

    def pipe(self, t_ns: int, chunk: bytes, state: ToxicState) -> list[tuple[int, bytes]]:
        jitter = state.rng.uniform(-self.jitter_ns, self.jitter_ns) if self.jitter_ns else 0.0
        return [(max(0, int(self.latency_ns + jitter)), chunk)]


@toxic("bandwidth")
@dataclass(frozen=True)
class Bandwidth(Toxic):
    summary: ClassVar[str] = "at most `rate`"
    settings: ClassVar[tuple[str, ...]] = ("rate",)

    rate_bytes_per_s: float = 0.0

    @classmethod
    def parameters(cls, spec: ToxicFault) -> dict[str, Any]:
        if spec.rate is None:
            raise ValueError("toxic 'bandwidth' needs 'rate' (e.g. \"1Mbit/s\")")
        return {"rate_bytes_per_s": spec.rate / 8.0}

    def pipe(self, t_ns: int, chunk: bytes, state: ToxicState) -> list[tuple[int, bytes]]:
        state.free_ns = max(t_ns, state.free_ns) + int(len(chunk) * 1e9 / self.rate_bytes_per_s)
        return [(state.free_ns - t_ns, chunk)]


@toxic("blackhole")
@dataclass(frozen=True)
class Blackhole(Toxic):
    summary: ClassVar[str] = "bytes dropped, the connection left open"

    def pipe(self, t_ns: int, chunk: bytes, state: ToxicState) -> list[tuple[int, bytes]]:
        state.stats.dropped_bytes += len(chunk)
        return []


@dataclass(frozen=True)
class _OnConnectionsAfterTimeout(Toxic):
    """A toxic that acts on connections, ``timeout`` after it starts or they open."""

    settings: ClassVar[tuple[str, ...]] = ("timeout",)
    on_connections: ClassVar[bool] = True

    timeout_ns: int = 0

    @classmethod
    def parameters(cls, spec: ToxicFault) -> dict[str, Any]:
        return {"timeout_ns": spec.timeout or 0}


@toxic("reset_peer")
@dataclass(frozen=True)
class ResetPeer(_OnConnectionsAfterTimeout):
    summary: ClassVar[str] = "connections reset (RST) `timeout` after it starts or they open"

    def meet(self, connection: ToxicTarget, toxic_id: int) -> None:
        if self.timeout_ns:
            connection.later(toxic_id, self.timeout_ns, connection.reset)
        else:
            connection.reset()


@toxic("timeout")
@dataclass(frozen=True)
class Timeout(_OnConnectionsAfterTimeout):
    summary: ClassVar[str] = "data held, the connection closed after `timeout` (0: held to the end, then delivered)"

    def meet(self, connection: ToxicTarget, toxic_id: int) -> None:
        connection.hold(toxic_id, self.directions())
        if self.timeout_ns:
            connection.later(toxic_id, self.timeout_ns, connection.close)


@toxic("slicer")
@dataclass(frozen=True)
class Slicer(Toxic):
    summary: ClassVar[str] = "reads cut into `slice_size` pieces `slice_delay` apart"
    settings: ClassVar[tuple[str, ...]] = ("slice_size", "slice_delay")

    slice_bytes: int = 64
    slice_delay_ns: int = 0

    @classmethod
    def parameters(cls, spec: ToxicFault) -> dict[str, Any]:
        return {"slice_bytes": spec.slice_size or 64, "slice_delay_ns": spec.slice_delay or 0}

    def pipe(self, t_ns: int, chunk: bytes, state: ToxicState) -> list[tuple[int, bytes]]:
        size = max(1, self.slice_bytes)
        return [(k * self.slice_delay_ns, chunk[first:first + size]) for k, first in enumerate(range(0, len(chunk), size))]


@toxic("slow_close")
@dataclass(frozen=True)
class SlowClose(Toxic):
    summary: ClassVar[str] = "a connection's close held `close_delay`"
    settings: ClassVar[tuple[str, ...]] = ("close_delay",)
    on_connections: ClassVar[bool] = True

    close_delay_ns: int = 0

    @classmethod
    def parameters(cls, spec: ToxicFault) -> dict[str, Any]:
        if spec.close_delay is None:
            raise ValueError("toxic 'slow_close' needs 'close_delay'")
        return {"close_delay_ns": spec.close_delay}

    def meet(self, connection: ToxicTarget, toxic_id: int) -> None:
        connection.hold_close(toxic_id, self.close_delay_ns)


@toxic("corrupt")
@dataclass(frozen=True)
class Corrupt(Toxic):
    summary: ClassVar[str] = "one byte of a read changed"
    changes_bytes: ClassVar[bool] = True

    def pipe(self, t_ns: int, chunk: bytes, state: ToxicState) -> list[tuple[int, bytes]]:
        if not chunk:
            return [(0, chunk)]
        changed = bytearray(chunk)
        at = state.rng.randrange(len(changed))
        changed[at] ^= state.rng.randrange(1, 256)
        state.stats.corrupted_chunks += 1
        return [(0, bytes(changed))]
