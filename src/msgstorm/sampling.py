"""Fast draws from scenario distributions, vectorised and one at a time.

``sample_array`` draws many values at once (traffic generation). ``Sampler`` serves the
simulator's hot loop one value per call from a refilled buffer: numpy's per-call overhead
(about a microsecond) would dominate the event loop, a list index does not.
"""

from __future__ import annotations

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

__all__ = ["Sampler", "sample_array"]


def sample_array(dist: Dist, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws as float64 (non-negative; normal is truncated at zero). Every draw goes
    through ``msgstorm.draws``, so the values are the same on every CPU (uniform needs no
    help: numpy computes it as low + (high - low) * U with basic operations)."""
    if isinstance(dist, Constant):
        return np.full(n, dist.value, dtype=np.float64)
    if isinstance(dist, Uniform):
        return rng.uniform(dist.low, dist.high, n)
    if isinstance(dist, Normal):
        truncated: np.ndarray = np.maximum(draws.normal(rng, dist.mean_value, dist.std, n), 0.0)
        return truncated
    if isinstance(dist, Lognormal):
        return draws.lognormal(rng, dist.median, dist.sigma, n)
    if isinstance(dist, Pareto):
        return dist.scale * draws.pareto_multiplier(rng, dist.alpha, n)
    if isinstance(dist, Exponential):
        return draws.exponential(rng, dist.mean_value, n)
    raise TypeError(f"unknown distribution {dist!r}")


class Sampler:
    """Integer draws (e.g. nanoseconds) one at a time, ``block`` drawn per refill.

    A constant distribution never touches the RNG, so adding a constant stage does not
    shift other streams.
    """

    __slots__ = ("_block", "_dist", "_rng", "buffer", "constant", "index")

    def __init__(self, dist: Dist, rng: np.random.Generator, block: int = 4096) -> None:
        self._dist = dist
        self._rng = rng
        self._block = block
        self.buffer: list[int] = []
        self.index = 0
        self.constant: int | None = round(dist.value) if isinstance(dist, Constant) else None

    def __call__(self) -> int:
        if self.constant is not None:
            return self.constant
        index = self.index
        if index >= len(self.buffer):
            self.buffer = self.draw_block().tolist()
            index = 0
        self.index = index + 1
        return self.buffer[index]

    def draw_block(self) -> np.ndarray:
        """The next ``block`` draws as int64, exactly as a refill of ``buffer`` takes them
        (the compiled one-node loop consumes the same stream in the same order)."""
        draws: np.ndarray = np.rint(sample_array(self._dist, self._rng, self._block)).astype(np.int64)
        return draws
