"""True price paths: what each instrument is worth at every step of the run.

Place in the pipeline: the first step of the market layer. The paths are drawn before the
run from the run's seed (``market_seed``, one child stream per instrument) and written to
the history's ``prices`` table; the oracle publishes from them, accounts are checked and
marked against them, and the analysis reads them back.

Per instrument, on the grid ``t_k = k x resolution`` (k = 0 .. steps), the log price is a
sum of independent increments per step of length dt (seconds):

- geometric Brownian motion: ``(drift - volatility**2 / 2) dt + volatility sqrt(dt) Z_k``;
- jumps (compound Poisson): ``N_k`` ~ Poisson(rate dt) jumps of log size normal(mean,
  stddev) each: ``N_k mean + sqrt(N_k) stddev Z'_k``;
- correlated shocks (``[market] correlation``, a matrix C): every modelled instrument's
  normals ``Z_k`` are drawn first from its own stream, then mixed, ``Z' = L Z`` with ``L L^T
  = C`` (Cholesky, ``rules/correlation.py``), so instruments i and j's Brownian increments
  have correlation ``C[i][j]``; jumps and shocks stay each instrument's own. Without the
  matrix nothing changes (not one draw moves);
- shocks: a fall of X% over T from t adds ``log(1 - X)`` spread evenly over the steps
  whose end lies in (t, t + T] (T = 0: all of it in the step that ends at or after t).

A replayed series replaces the model: the price at ``t_k`` is the last row's at or before it.
Every draw and every ``exp``/``log`` is portable (``msgstorm.draws``), so the same seed gives
the same path on every x86-64 CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from msgstorm import draws
from msgstorm.errors import DataFileError
from msgstorm.rules.correlation import cholesky, mix
from msgstorm.rules.market import horizon_ns
from msgstorm.scenario.market import InstrumentSpec, MarketSpec

__all__ = ["PricePaths", "horizon_ns", "price_paths", "steps_for"]


@dataclass(frozen=True)
class PricePaths:
    """``prices[i, k]``: instrument i's true price at ``t_k = k x resolution_ns``."""

    names: list[str]
    resolution_ns: int
    prices: np.ndarray  # float64 [instruments, steps + 1]

    @property
    def steps(self) -> int:
        return int(self.prices.shape[1]) - 1

    def times(self) -> np.ndarray:
        return np.arange(self.prices.shape[1], dtype=np.int64) * np.int64(self.resolution_ns)

    def at(self, instrument: int, t_ns: int) -> float:
        """The true price at ``t_ns`` (the last step at or before it)."""
        k = min(max(t_ns, 0) // self.resolution_ns, self.steps)
        return float(self.prices[instrument, k])




def steps_for(horizon_ns: int, resolution_ns: int) -> int:
    return max(1, -(-int(horizon_ns) // int(resolution_ns)))


def price_paths(market: MarketSpec, horizon_ns: int, seed: np.random.SeedSequence) -> PricePaths:
    """Every instrument's path over ``[0, horizon_ns]``, from its own child of ``seed``."""
    steps = steps_for(horizon_ns, market.resolution)
    seeds = seed.spawn(len(market.instruments))
    rngs = [np.random.default_rng(child) for child in seeds]
    shocks = None if market.correlation is None else _correlated_shocks(market, steps, rngs)
    prices = np.empty((len(market.instruments), steps + 1), dtype=np.float64)
    for index, (instrument, rng) in enumerate(zip(market.instruments, rngs, strict=True)):
        if instrument.replay is not None:
            prices[index] = _replayed(instrument.replay, steps, market.resolution)
        else:
            prices[index] = _modelled(instrument, steps, market.resolution, rng,
                                      None if shocks is None else shocks[index])
    return PricePaths([instrument.name for instrument in market.instruments], market.resolution, prices)


def _correlated_shocks(market: MarketSpec, steps: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Each modelled instrument's ``steps`` standard normals, drawn first from its own
    stream (a replayed one's are zeros: the schema keeps it uncorrelated), mixed by the
    Cholesky factor of ``[market] correlation``: ``Z' = L Z`` (``rules/correlation.py``)."""
    assert market.correlation is not None
    independent = np.zeros((len(market.instruments), steps), dtype=np.float64)
    for index, (instrument, rng) in enumerate(zip(market.instruments, rngs, strict=True)):
        if instrument.replay is None:
            independent[index] = draws.standard_normal(rng, steps)
    return mix(cholesky(market.correlation), independent)


def _modelled(spec: InstrumentSpec, steps: int, resolution_ns: int, rng: np.random.Generator,
              shocks: np.ndarray | None = None) -> np.ndarray:
    """One instrument's path; ``shocks``: its correlated standard normals (drawn here from
    ``rng`` when none, only with a volatility, as before correlations existed)."""
    dt = resolution_ns / 1e9
    increments = np.full(steps, (spec.drift - spec.volatility * spec.volatility / 2.0) * dt, dtype=np.float64)
    if shocks is not None:
        increments += (spec.volatility * math.sqrt(dt)) * shocks
    elif spec.volatility > 0:
        increments += (spec.volatility * math.sqrt(dt)) * draws.standard_normal(rng, steps)
    if spec.jumps is not None and spec.jumps.rate > 0:
        jumps = spec.jumps
        counts = draws.poisson_many(rng, jumps.rate * dt, steps).astype(np.float64)
        sizes = counts * jumps.mean
        if jumps.stddev > 0:
            sizes += np.sqrt(counts) * jumps.stddev * draws.standard_normal(rng, steps)
        increments += sizes
    ends = np.arange(1, steps + 1, dtype=np.int64) * np.int64(resolution_ns)
    for shock in spec.shocks:
        fall = draws.log(1.0 - shock.fall)
        if shock.over == 0:
            hit = np.flatnonzero(ends >= shock.at)[:1]
        else:
            hit = np.flatnonzero((ends > shock.at) & (ends <= shock.at + shock.over))
            if hit.size == 0:  # shorter than a step: the step it falls in
                hit = np.flatnonzero(ends > shock.at)[:1]
        if hit.size:
            increments[hit] += fall / hit.size
    log_path = np.empty(steps + 1, dtype=np.float64)
    log_path[0] = 0.0
    np.cumsum(increments, out=log_path[1:])  # sequential adds: the same on every CPU
    return spec.price * draws.exp_array(log_path)


def _replayed(path: str, steps: int, resolution_ns: int) -> np.ndarray:
    """The replay file's price at each step: its last row at or before the step's time."""
    from msgstorm.scenario.replay import read_column, read_replay_offsets_ns

    times = read_replay_offsets_ns(path, "t", "s", 1.0)
    values = np.asarray(read_column(path, "price").to_numpy(zero_copy_only=False), dtype=np.float64)
    if len(values) != len(times):
        raise DataFileError(f"price file {path}: columns t and price differ in length")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise DataFileError(f"price file {path}: every price must be a number above 0")
    grid = np.arange(steps + 1, dtype=np.int64) * np.int64(resolution_ns)
    order = np.argsort(times, kind="stable")
    at = np.searchsorted(times[order], grid, side="right") - 1
    return values[order][np.maximum(at, 0)]
