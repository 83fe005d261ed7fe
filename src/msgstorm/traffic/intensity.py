"""Cumulative intensities: the rate shapes behind the ramp, constant and Poisson arrivals.

traffic: scenario arrival spec -> **intensity** -> arrival process (``arrivals``) -> batches.

An intensity is a rate r(t) in messages/s over ``[0, span_ns)`` relative to an arrival's
origin, seen through its cumulative form Λ(t) = ∫ r (expected events up to t) and the
inverse Λ⁻¹. Every rate-shaped process is built from these two functions: a Poisson
process is uniform points in Λ-space mapped back through Λ⁻¹ (the time-change theorem),
a deterministic one puts events at Λ⁻¹(k + phase). So constant, step and linear ramps
share one implementation of each process instead of six.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = ["Intensity", "LinearIntensity", "PiecewiseConstantIntensity"]

_NS_PER_S = 1e9


class Intensity(Protocol):
    """A rate over ``[0, span_ns)``; zero outside it."""

    @property
    def span_ns(self) -> float: ...

    @property
    def total(self) -> float:
        """Λ(span_ns): expected events over the whole span."""
        ...

    def cumulative(self, t_rel_ns: np.ndarray | float) -> np.ndarray:
        """Λ(t), with t clipped to the span."""
        ...

    def cumulative_at(self, t_rel_ns: float) -> float:
        """Λ(t) at one point, as a float (equal to ``float(cumulative(t))``)."""
        ...

    def inverse(self, whole: np.ndarray, frac: np.ndarray | None = None) -> np.ndarray:
        """Λ⁻¹(whole + frac) in ns from the origin, for ``0 <= whole + frac <= total``."""
        ...


class PiecewiseConstantIntensity:
    """Rate ``rates_per_s[j]`` from ``starts_ns[j]`` until the next start (or ``span_ns``)."""

    def __init__(
        self,
        starts_ns: Sequence[float] | np.ndarray,
        rates_per_s: Sequence[float] | np.ndarray,
        span_ns: float,
    ) -> None:
        starts = np.asarray(starts_ns, dtype=np.float64)
        rates = np.asarray(rates_per_s, dtype=np.float64)
        if starts.ndim != 1 or starts.shape != rates.shape or starts.size == 0:
            raise ValueError("starts_ns and rates_per_s must be equal-length, non-empty")
        if starts[0] != 0 or np.any(np.diff(starts) < 0) or np.any(rates < 0):
            raise ValueError("segments must start at 0, in order, with non-negative rates")
        self._span_ns = max(float(span_ns), 0.0)
        self._starts = starts
        self._rates = rates
        ends = np.append(starts[1:], max(self._span_ns, starts[-1]))
        counts = rates * np.clip(ends - starts, 0.0, None) / _NS_PER_S
        # Λ at each segment start; repeated values mark zero-rate segments, which
        # searchsorted(side="right") then skips when inverting.
        self._cum = np.concatenate(([0.0], np.cumsum(counts)[:-1]))
        self._starts_list: list[float] = starts.tolist()
        self._rates_list: list[float] = rates.tolist()
        self._cum_list: list[float] = self._cum.tolist()
        self._total = float(counts.sum())
        # ns per event; 0 (not inf) on zero-rate segments so no NaN can ever appear.
        self._period_ns = np.divide(
            _NS_PER_S, rates, out=np.zeros_like(rates), where=rates > 0
        )

    @classmethod
    def constant(cls, rate_per_s: float, span_ns: float) -> PiecewiseConstantIntensity:
        return cls([0.0], [rate_per_s], span_ns)

    @property
    def span_ns(self) -> float:
        return self._span_ns

    @property
    def total(self) -> float:
        return self._total

    def cumulative(self, t_rel_ns: np.ndarray | float) -> np.ndarray:
        t = np.clip(np.asarray(t_rel_ns, dtype=np.float64), 0.0, self._span_ns)
        j = np.searchsorted(self._starts, t, side="right") - 1
        result: np.ndarray = self._cum[j] + self._rates[j] * (t - self._starts[j]) / _NS_PER_S
        return result

    def cumulative_at(self, t_rel_ns: float) -> float:
        # One point (a window edge, twice per window): the same float64 arithmetic as
        # ``cumulative`` in plain Python, without numpy's per-call cost on 0-d arrays.
        x = min(max(float(t_rel_ns), 0.0), self._span_ns)
        j = bisect_right(self._starts_list, x) - 1
        start, rate, cum = self._starts_list[j], self._rates_list[j], self._cum_list[j]
        return cum + rate * (x - start) / _NS_PER_S

    def inverse(self, whole: np.ndarray, frac: np.ndarray | None = None) -> np.ndarray:
        x = whole if frac is None else whole + frac
        j = np.searchsorted(self._cum, x, side="right") - 1
        period = self._period_ns[j]
        # whole and frac are scaled separately: for an integer period and integer ``whole``
        # the first product is exact, so evenly spaced events stay exactly evenly spaced.
        t: np.ndarray = self._starts[j] + (whole - self._cum[j]) * period
        if frac is not None:
            t += frac * period
        return t


class LinearIntensity:
    """Rate going linearly from ``start_per_s`` at 0 to ``end_per_s`` at ``span_ns``."""

    def __init__(self, start_per_s: float, end_per_s: float, span_ns: float) -> None:
        if start_per_s < 0 or end_per_s < 0:
            raise ValueError("linear ramp rates must not be negative")
        self._span_ns = max(float(span_ns), 0.0)
        self._start = float(start_per_s)
        # Rate change per ns of time (messages/s per ns).
        self._slope = (end_per_s - start_per_s) / self._span_ns if self._span_ns > 0 else 0.0
        self._total = float(self.cumulative(self._span_ns))

    @property
    def span_ns(self) -> float:
        return self._span_ns

    @property
    def total(self) -> float:
        return self._total

    def cumulative(self, t_rel_ns: np.ndarray | float) -> np.ndarray:
        t = np.clip(np.asarray(t_rel_ns, dtype=np.float64), 0.0, self._span_ns)
        result: np.ndarray = (self._start * t + 0.5 * self._slope * t * t) / _NS_PER_S
        return result

    def cumulative_at(self, t_rel_ns: float) -> float:
        return float(self.cumulative(t_rel_ns))

    def inverse(self, whole: np.ndarray, frac: np.ndarray | None = None) -> np.ndarray:
        q = (whole if frac is None else whole + frac) * _NS_PER_S
        # Root of slope/2·t² + start·t − q = 0 written as 2q / (start + √disc): no
        # cancellation when the slope is tiny, and no division by a zero slope.
        disc = np.clip(self._start * self._start + 2.0 * self._slope * q, 0.0, None)
        denominator = self._start + np.sqrt(disc)
        t: np.ndarray = np.divide(
            2.0 * q, denominator, out=np.zeros_like(q), where=denominator > 0
        )
        return t
