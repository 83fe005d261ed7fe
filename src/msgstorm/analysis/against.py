"""Against the day: a replay's figures beside the ones published for the day it replays.

Place in the pipeline: analysis, read by the terminal summary (one run) and by
``msgstorm against`` (several runs of the same scenario, e.g. over seeds). A run's
``english_auction`` lots (``EnglishLots``) and its deficit give the measured figures; the
scenario's ``[market.liquidation.published]`` section gives, per figure, the published
value, its source, its band and its role. A figure the scenario was ``fitted`` to is shown
with its band but never counted as agreement (``within`` is None for it); a ``checked``
figure agrees when the mean over the runs falls inside its band. The role and band are the
scenario's own, so the table cannot call a fit a check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from msgstorm.analysis.summary_model import EnglishLots, PublishedFigures

__all__ = ["FIGURE_LABELS", "AgainstRow", "against_rows", "measured_figures"]

# What each figure is, as the table names it (the keys are PublishedSpec's figure fields).
FIGURE_LABELS: dict[str, str] = {
    "zero_bid_share": "zero-bid share of lots",
    "zero_bid_units": "collateral won at a zero bid",
    "zero_bid_value": "value won at a zero bid",
    "zero_bid_lots": "lots won at a zero bid",
    "top_zero_bidder_share": "largest zero bidder's share",
    "returned_share": "collateral returned (all lots)",
    "returned_share_won": "collateral returned (lots won above 0)",
    "deficit": "deficit",
}

Role = Literal["fitted", "checked", "shown"]


@dataclass(frozen=True)
class AgainstRow:
    """One figure: the runs' values, the published one with its source, its band and role."""

    figure: str
    measured: tuple[float, ...]
    published: float
    source: str
    band: tuple[float, float] | None
    role: Role

    @property
    def mean(self) -> float:
        return math.fsum(self.measured) / len(self.measured)

    @property
    def low(self) -> float:
        return min(self.measured)

    @property
    def high(self) -> float:
        return max(self.measured)

    @property
    def within(self) -> bool | None:
        """Whether the mean is inside the band; None for a fitted figure (a fit is not an
        agreement) or one without a band."""
        if self.role == "fitted" or self.band is None:
            return None
        return self.band[0] <= self.mean <= self.band[1]


def measured_figures(lots: EnglishLots, deficit: float) -> dict[str, float | None]:
    """One run's value of each figure (None: the run has none, e.g. no lot won above 0)."""
    return {"zero_bid_share": lots.zero_bid_lots / lots.lots if lots.lots else None,
            "zero_bid_units": lots.zero_bid_units, "zero_bid_value": lots.zero_bid_value,
            "zero_bid_lots": float(lots.zero_bid_lots),
            "top_zero_bidder_share": lots.top_zero_bidder_share,
            "returned_share": lots.returned_share, "returned_share_won": lots.returned_share_won,
            "deficit": deficit}


def against_rows(published: PublishedFigures, runs: list[dict[str, float | None]]) -> list[AgainstRow]:
    """A row per figure the section publishes that every run measured, in the figures' order:
    fitted ones first, then checked, then any shown without a role."""
    rows = []
    for figure in FIGURE_LABELS:
        value = getattr(published, figure)
        values = [run.get(figure) for run in runs]
        if value is None or not runs or any(v is None for v in values):
            continue
        role: Role = "fitted" if figure in published.fitted else "checked" if figure in published.checked else "shown"
        rows.append(AgainstRow(figure, tuple(float(v) for v in values if v is not None), float(value),
                               published.sources.get(figure, published.source), published.bands.get(figure), role))
    order = {"fitted": 0, "checked": 1, "shown": 2}
    return sorted(rows, key=lambda row: order[row.role])
