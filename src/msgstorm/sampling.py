"""Fast draws from scenario distributions, vectorised and one at a time.

``sample_array`` draws many values at once (traffic generation). ``Sampler`` serves the
simulator's hot loop one value per call from a refilled buffer: numpy's per-call overhead
(about a microsecond) would dominate the event loop, a list index does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msgstorm import draws
from msgstorm.scenario.distributions import (
    Constant,
    Dist,
    Exponential,
    Lognormal,
    Normal,
    Pareto,
    Uniform,
)

__all__ = ["Drawn", "Shifted", "Sampler", "sample_array", "sample_from_uniforms", "shifted"]


@dataclass(frozen=True)
class Shifted:
    """A distribution's draws plus a fixed amount (a node's processing time plus the
    verification of a signed message, ``sim/integrity.py``): the same uniforms as the base,
    so adding the amount moves no other stream."""

    base: Dist
    offset: int

    @property
    def mean(self) -> float:
        return self.base.mean + self.offset


Drawn = Dist | Shifted


def shifted(dist: Dist, offset: int) -> Drawn:
    """``dist`` plus ``offset``: ``dist`` itself for 0 and a constant for a constant (the
    compiled loops take a constant's value as a parameter)."""
    if offset == 0:
        return dist
    if isinstance(dist, Constant):
        return Constant(value=dist.value + offset)
    return Shifted(dist, offset)


def sample_array(dist: Drawn, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws as float64 (non-negative; normal is truncated at zero). Every draw goes
    through ``msgstorm.draws``, so the values are the same on every CPU. A constant draws
    nothing; every other distribution takes exactly one uniform per value, so
    ``sample_from_uniforms(dist, rng.random(n))`` gives the same values from the same
    stream (compiled traffic generation draws the uniforms itself)."""
    if isinstance(dist, Shifted):
        moved: np.ndarray = sample_array(dist.base, rng, n) + dist.offset
        return moved
    if isinstance(dist, Constant):
        return np.full(n, dist.value, dtype=np.float64)
    if isinstance(dist, Uniform):
        # numpy computes uniform(low, high) as low + (high - low) * U with basic operations.
        return rng.uniform(dist.low, dist.high, n)
    return sample_from_uniforms(dist, rng.random(n))


def sample_from_uniforms(dist: Dist, u: np.ndarray) -> np.ndarray:
    """One draw of a non-constant ``dist`` per uniform in ``u``, as ``sample_array`` makes
    them (``tests/test_traffic_compiled.py`` checks the two agree bit for bit)."""
    if isinstance(dist, Uniform):
        result: np.ndarray = dist.low + (dist.high - dist.low) * u
        return result
    if isinstance(dist, Normal):
        truncated: np.ndarray = np.maximum(draws.normal_from(u, float(dist.mean_value), float(dist.std)), 0.0)
        return truncated
    if isinstance(dist, Lognormal):
        return draws.lognormal_from(u, float(dist.median), float(dist.sigma))
    if isinstance(dist, Pareto):
        return dist.scale * draws.pareto_from(u, float(dist.alpha))
    if isinstance(dist, Exponential):
        return draws.exponential_from(u, float(dist.mean_value))
    raise TypeError(f"no uniform-per-value draw for {dist!r}")


class Sampler:
    """Integer draws (e.g. nanoseconds) one at a time, ``block`` drawn per refill.

    A constant distribution never touches the RNG, so adding a constant stage does not
    shift other streams.
    """

    __slots__ = ("_block", "_dist", "_rng", "buffer", "constant", "index")

    def __init__(self, dist: Drawn, rng: np.random.Generator, block: int = 4096) -> None:
        self._dist = dist
        self._rng = rng
        self._block = block
        self.buffer: list[int] = []
        self.index = 0
        self.constant: int | None = round(dist.value) if isinstance(dist, Constant) else None

    def __call__(self) -> int:
        if self.constant is not None:
            return self.constant
        if self.index >= len(self.buffer):
            self.refill()
        index = self.index
        self.index = index + 1
        return self.buffer[index]

    def refill(self) -> None:
        """The next block of draws into ``buffer``, read from its start."""
        self.buffer = self.draw_block().tolist()
        self.index = 0

    def draw_block(self, blocks: int = 1) -> np.ndarray:
        """The next ``blocks`` blocks of draws as int64, exactly as refills of ``buffer`` take
        them (the compiled one-node loop consumes the same stream in the same order). Several
        blocks drawn at once are the blocks drawn one after the other: every distribution
        takes one uniform per value from the sampler's own generator."""
        draws: np.ndarray = np.rint(sample_array(self._dist, self._rng, self._block * blocks)).astype(np.int64)
        return draws
