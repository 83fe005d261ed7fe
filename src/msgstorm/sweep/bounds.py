"""One-sided and two-sided Clopper-Pearson bounds of a share, and the seeds a bound needs.

Place in the pipeline: under the safe-leverage searches (``sweep/leverage.py``, by whole
runs, and ``sweep/leverage_probes.py``, by probe books), which judge P(over budget) at a
leverage by these bounds only.
"""

from __future__ import annotations

import functools
import math

__all__ = ["clopper_pearson", "one_sided_bounds", "seeds_to_show"]


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval of a binomial proportion."""
    from scipy.stats import beta

    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


@functools.lru_cache(maxsize=65536)  # pure, and asked the same counts again and again
def one_sided_bounds(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The one-sided Clopper-Pearson bounds at ``confidence``: p is at least the first, and at
    most the second, each with that confidence."""
    from scipy.stats import beta

    low = 0.0 if k == 0 else float(beta.ppf(1.0 - confidence, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(confidence, k + 1, n - k))
    return low, high


def seeds_to_show(confidence: float, limit: float | None = None) -> int:
    """The fewest seeds, none over budget, that show a leverage within budget: the upper
    bound at ``confidence``, 1 - (1 - c)^(1/N), at most ``limit`` (default 1 - c), from
    N = ln(1 - c) / ln(1 - limit) on (checked against the bound itself, so the count and the
    test the search applies never disagree by a rounding)."""
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"a confidence in [50%, 100%), got {confidence!r}")
    limit = 1.0 - confidence if limit is None else limit
    seeds = max(1, math.ceil(math.log(1.0 - confidence) / math.log(1.0 - limit)))
    while one_sided_bounds(0, seeds, confidence)[1] > limit:
        seeds += 1
    while seeds > 1 and one_sided_bounds(0, seeds - 1, confidence)[1] <= limit:
        seeds -= 1
    return seeds
