"""Producer rules: when the next block comes and which producer makes it.

Place in the pipeline: inside the simulator, under ``sim/forks.py`` (the chain of views).
A rule is one small class registered in ``PRODUCER_RULES`` under the name a scenario gives
as ``blocks.producers.rule``; the chain asks it for the next block after each one, so a new
rule touches nothing else. Both rules here draw from the seeded generator they are given,
through ``draws`` (CPU-independent), so the same seed gives the same blocks everywhere.

- ``pow``: proof of work. Every producer mines as a Poisson process of rate
  share / ``blocks.interval``; together, one Poisson process of rate 1 / interval whose
  blocks each go to a producer drawn by hash share (the superposition of independent
  Poisson processes, thinned), which is how it is drawn.
- ``pos``: proof of stake. Time is cut in slots of ``blocks.interval``; the leader of each
  slot is drawn by stake from the seeded generator (the leader schedule, known to all), and
  it makes its block at the slot's start.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from math import fsum
from typing import Protocol

import numpy as np

from msgstorm.draws import exponential
from msgstorm.scenario.registry import PRODUCER_RULES

__all__ = ["ProducerRule", "ProofOfStake", "ProofOfWork", "draw_weighted"]


class ProducerRule(Protocol):
    """Built with ``(interval_ns, shares, rng)``; ``shares`` one positive weight per producer."""

    def next_block(self, t: int) -> tuple[int, int]:
        """The next block after time ``t``: ``(t_ns, producer index)``."""
        ...


def draw_weighted(cumulative: list[float], u: float) -> int:
    """The index drawn by a uniform ``u`` in [0, 1) from normalised cumulative weights."""
    return min(bisect_right(cumulative, u), len(cumulative) - 1)


def _cumulative(shares: list[float]) -> list[float]:
    total = fsum(shares)  # fsum: the same total whatever the order the shares came in
    return list(accumulate(share / total for share in shares))


@PRODUCER_RULES.register("pow")
class ProofOfWork:
    def __init__(self, interval_ns: int, shares: list[float], rng: np.random.Generator) -> None:
        self.interval_ns = interval_ns
        self.cumulative = _cumulative(shares)
        self.rng = rng

    def next_block(self, t: int) -> tuple[int, int]:
        gap = float(exponential(self.rng, float(self.interval_ns), 1)[0])
        producer = draw_weighted(self.cumulative, float(self.rng.random()))
        return t + max(1, round(gap)), producer


@PRODUCER_RULES.register("pos")
class ProofOfStake:
    def __init__(self, interval_ns: int, shares: list[float], rng: np.random.Generator) -> None:
        self.slot_ns = interval_ns
        self.cumulative = _cumulative(shares)
        self.rng = rng

    def next_block(self, t: int) -> tuple[int, int]:
        slot = t // self.slot_ns + 1  # the next slot's start, strictly after t
        return slot * self.slot_ns, self.leader()

    def leader(self) -> int:
        """The next slot's leader (the schedule is drawn slot by slot from the seed)."""
        return draw_weighted(self.cumulative, float(self.rng.random()))
