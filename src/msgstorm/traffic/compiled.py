"""Many traffic windows of a Poisson agent in one compiled call.

traffic: ``generate`` asks each agent for a run of consecutive windows -> an agent whose
arrivals are Poisson with a piecewise-constant rate (``poisson``, or a ``step_ramp`` with
``poisson = true``) draws them all **here** -> columns for every window, cut per window.

Drawn window by window through numpy, such an agent pays interpreter work per window (a
Poisson count, its exponentials, the time change, four attribute columns) that dominates a
one-node queue's run (docs/dev/performance-log.md, "Costs the docstrings name"). This loop makes
exactly the same draws from the same two generators in the same order, and the same float
arithmetic, so every message is the same to the bit (``tests/test_traffic_compiled.py``
compares the two paths column by column over every supported distribution and arrival):

- arrivals (the process's generator): per window with a positive expected count, a
  Poisson count from numpy-sized blocks of 4096 uniforms (``draws.poisson`` draws a block
  and drops what it does not use; here the unused rest is jumped over), n + 1 exponentials
  made into n sorted uniforms, Λ⁻¹ by segment, floor and clip to the window, then the
  instance of each message when the agent has several;
- attributes (the agent's generator), for a window with messages: kinds (a uniform each,
  looked up in the mix's cumulative weights, when the mix has more than one kind), keys
  (numpy's bounded integers), size and fee uniforms (when not constant), each ``n`` long,
  in that order.

The generators are numpy ``Generator``s whose PCG64 state is stepped by ``pcg64`` and
written back after the call, so a later draw through numpy goes on from the same place.
Uniforms become sizes and fees outside the loop, by ``sampling.sample_from_uniforms``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from msgstorm import pcg64, poisson_kernel
from msgstorm.traffic.arrivals import PoissonProcess
from msgstorm.traffic.intensity import PiecewiseConstantIntensity

__all__ = ["Chunk", "PoissonWindows"]

_NS_PER_S = 1e9
_SPAN_LIMIT = (1 << 32) - 1  # integers(0, span) on 32-bit draws for span below this


@dataclass
class Chunk:
    """A run of windows drawn at once: per-message columns for all of them and the number
    of messages in each window (a window with none has 0)."""

    times: np.ndarray  # int64
    instance: np.ndarray  # int64
    kind: np.ndarray  # int8 codes into MESSAGE_KINDS
    key: np.ndarray  # int64
    size_u: np.ndarray
    fee_u: np.ndarray
    counts: np.ndarray  # int64 per window


class PoissonWindows:
    """Draws runs of windows for one agent whose arrivals this loop covers (``of``)."""

    MIN_CAPACITY = 1 << 12  # messages the output arrays hold at least

    def __init__(self, process: PoissonProcess, intensity: PiecewiseConstantIntensity,
                 attribute_rng: np.random.Generator, kind_cdf: np.ndarray, kind_codes: np.ndarray, keys: int,
                 size_draw: bool, fee_draw: bool) -> None:
        self.process = process
        self.intensity = intensity
        self.arrival_rng: np.random.Generator = process._rng
        self.attribute_rng = attribute_rng
        self.kind_cdf = np.ascontiguousarray(kind_cdf, dtype=np.float64)
        self.kind_codes = np.ascontiguousarray(kind_codes, dtype=np.int8)
        self.keys, self.size_draw, self.fee_draw = keys, size_draw, fee_draw
        rates = intensity._rates
        # Messages a window of one ns may expect at most: sizes the output arrays.
        self.peak_per_ns = process.instances * float(rates.max()) / _NS_PER_S
        self.capacity = self.MIN_CAPACITY
        self.scratch = np.empty(poisson_kernel.SCRATCH_MAX, dtype=np.float64)

    @classmethod
    def of(cls, process: Any, attribute_rng: np.random.Generator, kind_cdf: np.ndarray, kind_codes: np.ndarray,
           keys: int, size_draw: bool, fee_draw: bool) -> PoissonWindows | None:
        """The loop for this agent, or None when it draws in a way this loop does not make
        (another arrival process or bit generator, keys beyond 32 bits)."""
        if type(process) is not PoissonProcess:
            return None
        intensity = process._intensity
        if type(intensity) is not PiecewiseConstantIntensity:
            return None
        if not np.all(np.isfinite(intensity._rates)) or not math.isfinite(intensity.total):
            return None  # draws.poisson refuses such a mean: leave the error to it
        if keys >= _SPAN_LIMIT or process.instances >= _SPAN_LIMIT:
            return None
        for rng in (process._rng, attribute_rng):
            if type(rng.bit_generator) is not np.random.PCG64:
                return None
        return cls(process, intensity, attribute_rng, kind_cdf, kind_codes, keys, size_draw, fee_draw)

    @staticmethod
    def room(expected: float) -> int:
        """Output arrays for a run expecting ``expected`` messages: eight standard deviations
        of slack, so a run rarely has to go on into a second set of arrays."""
        return int(expected * 1.05 + 8 * math.sqrt(expected)) + 64

    def expected_per_window(self, window_ns: int) -> float:
        return self.peak_per_ns * window_ns

    def draw(self, lo: np.ndarray, hi: np.ndarray) -> Chunk:
        """Windows ``[lo[w], hi[w])`` (already clipped to the agent; empty when hi <= lo)."""
        process, intensity = self.process, self.intensity
        # The process clips to its own span too (a ramp may end before the agent stops).
        lo = np.maximum(lo, process.t0_ns)
        hi = np.minimum(hi, process.t_end_ns)
        windows = lo.shape[0]
        counts = np.zeros(windows, dtype=np.int64)
        parts: list[tuple[np.ndarray, ...]] = []
        arrival = pcg64.load(self.arrival_rng)
        attribute = pcg64.load(self.attribute_rng)
        assert arrival is not None and attribute is not None  # PCG64, checked by ``of``
        # Room for the messages the run may expect, with slack: a run that draws more stops
        # at a window edge and goes on into new arrays.
        # Λ at the window edges, as PoissonProcess.events takes it (``cumulative`` is
        # ``cumulative_at`` elementwise, the same float operations).
        x_lo = intensity.cumulative(lo - process.t0_ns)
        x_hi = intensity.cumulative(hi - process.t0_ns)
        expected = process.instances * float(np.sum(np.maximum(x_hi - x_lo, 0.0)))
        self.capacity = max(self.capacity, self.room(expected))
        done = 0
        try:
            while done < windows:
                capacity = self.capacity
                out = (np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.int64),
                       np.empty(capacity, dtype=np.int8),
                       np.empty(capacity, dtype=np.int64),
                       np.empty(capacity if self.size_draw else 0, dtype=np.float64),
                       np.empty(capacity if self.fee_draw else 0, dtype=np.float64))
                sums = np.empty(capacity + 1, dtype=np.float64)
                upto, filled = poisson_kernel.windows(
                    arrival, attribute, lo[done:], hi[done:], x_lo[done:], x_hi[done:], process.t0_ns,
                    intensity._starts, intensity._cum, intensity._period_ns, process.instances,
                    self.kind_cdf, self.kind_codes, self.keys, self.size_draw, self.fee_draw,
                    out[0], out[1], out[2], out[3], out[4], out[5], sums, counts[done:],
                    self.scratch, np.empty_like(arrival), np.empty_like(attribute))
                parts.append(tuple(column[:filled] for column in out))
                if upto == 0:
                    # One window holds more messages than the arrays: larger arrays.
                    self.capacity *= 2
                done += upto
        finally:
            # Whatever was drawn is reflected in the generators, even on an exception.
            pcg64.store(self.arrival_rng, arrival)
            pcg64.store(self.attribute_rng, attribute)
        times, instance, kind, key, size_u, fee_u = (
            part[0] if len(parts) == 1 else np.concatenate(part) for part in zip(*parts))
        return Chunk(times, instance, kind, key, size_u, fee_u, counts)
