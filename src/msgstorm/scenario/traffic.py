"""The scenario's traffic: ``[[agents]]`` and their arrival processes (``constant``,
``poisson``, ``burst``, ``hawkes``, ``step_ramp``, ``linear_ramp``, ``replay``, ``phases``).

Part of the scenario schema (``msgstorm.scenario.schema.Scenario`` holds the agents);
``msgstorm.traffic`` turns them into message batches.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from msgstorm.scenario.distributions import Constant, DurationNs, NumberDist, SizeDist
from msgstorm.scenario.kinds import MessageKind
from msgstorm.scenario.spec import RatePerS, Spec

__all__ = [
    "ROLE_MIX",
    "AgentSpec",
    "ArrivalSpec",
    "BurstArrival",
    "ConstantArrival",
    "HawkesArrival",
    "LinearRampArrival",
    "Phase",
    "PhasesArrival",
    "PoissonArrival",
    "ReplayArrival",
    "SimpleArrival",
    "StepRampArrival",
]


class ConstantArrival(Spec):
    process: Literal["constant"]
    rate: RatePerS


class PoissonArrival(Spec):
    process: Literal["poisson"]
    rate: RatePerS


class BurstArrival(Spec):
    """A batch each period: ``rate × every`` messages from the period's start, one every
    ``spacing``, as a sender that writes each batch back to back (CometBFT's load tool, one
    batch a second on each connection); a batch still going at the period's end is cut
    there, as that tool cuts it."""

    process: Literal["burst"]
    rate: RatePerS
    every: DurationNs = Field(default=1_000_000_000, gt=0)
    spacing: DurationNs = Field(default=0, ge=0)

    @property
    def batch(self) -> int:
        """Messages due in each batch."""
        return round(self.rate * self.every / 1e9)

    @model_validator(mode="after")
    def _check(self) -> BurstArrival:
        due = self.rate * self.every / 1e9
        if self.batch < 1 or abs(due - self.batch) > 1e-6 * max(due, 1.0):
            raise ValueError(f"'rate' × 'every' is {due:g} messages a batch: make it a whole number of at least 1 "
                             f"(e.g. rate = \"{max(self.batch, 1) * 1e9 / self.every:g}/s\")")
        return self


class HawkesArrival(Spec):
    """Self-exciting arrivals, exponential kernel: each event spawns Poisson(branching)
    children at Exp(decay) delays. branching >= 1 would explode and is rejected."""

    process: Literal["hawkes"]
    baseline: RatePerS
    branching: float = Field(ge=0, lt=1)
    decay: DurationNs = Field(gt=0)


class StepRampArrival(Spec):
    process: Literal["step_ramp"]
    start: RatePerS
    step: RatePerS
    every: DurationNs = Field(gt=0)
    steps: int = Field(ge=1, le=10_000)
    poisson: bool = True


class LinearRampArrival(Spec):
    process: Literal["linear_ramp"]
    start: RatePerS
    end: RatePerS
    poisson: bool = True


class ReplayArrival(Spec):
    process: Literal["replay"]
    path: str
    column: str = "t"
    time_unit: Literal["ns", "us", "ms", "s"] = "ns"
    speed: float = Field(default=1.0, gt=0)


SimpleArrival = Annotated[
    ConstantArrival | PoissonArrival | BurstArrival | HawkesArrival | StepRampArrival | LinearRampArrival | ReplayArrival,
    Field(discriminator="process"),
]


class Phase(Spec):
    duration: DurationNs = Field(gt=0)
    arrival: SimpleArrival


class PhasesArrival(Spec):
    process: Literal["phases"]
    phases: list[Phase] = Field(min_length=1)


ArrivalSpec = Annotated[
    ConstantArrival | PoissonArrival | BurstArrival | HawkesArrival | StepRampArrival | LinearRampArrival | ReplayArrival | PhasesArrival,
    Field(discriminator="process"),
]

ROLE_MIX: dict[str, dict[str, float]] = {
    "trader": {"order": 0.7, "cancel": 0.3},
    "market_maker": {"quote": 0.8, "cancel": 0.2},
    "flooder": {"spam": 1.0},
    "liquidator": {"liquidation": 1.0},
    "oracle": {"price": 1.0},
}


class AgentSpec(Spec):
    name: str = Field(min_length=1)
    role: Literal["trader", "market_maker", "flooder", "liquidator", "oracle"] = "trader"
    count: int = Field(default=1, ge=1, le=1_000_000)
    region: str | None = None
    node: str | None = None
    arrival: ArrivalSpec
    mix: dict[MessageKind, Annotated[float, Field(ge=0)]] | None = None
    size: SizeDist = Field(default_factory=lambda: Constant(value=250))
    fee: NumberDist = Field(default_factory=lambda: Constant(value=1.0))
    # The fees through the day from a file (``scenario/fee_file.py``: columns t, fee): a message's
    # fee is the file's at its intended time times its drawn ``fee``. Left out of the dump when
    # not given, so that scenarios without it keep their hash.
    fee_file: str | None = Field(default=None, exclude_if=lambda path: path is None)
    keys: int = Field(default=100, ge=1)
    start: DurationNs = 0
    stop: DurationNs | None = None

    @model_validator(mode="after")
    def _check(self) -> AgentSpec:
        if self.region is not None and self.node is not None:
            raise ValueError("give 'region' or 'node', not both")
        if self.mix is not None and sum(self.mix.values()) <= 0:
            raise ValueError("'mix' weights must add up to more than 0")
        if self.stop is not None and self.stop <= self.start:
            raise ValueError("'stop' must be after 'start'")
        return self

    @property
    def kind_mix(self) -> dict[str, float]:
        """The message mix as normalised weights (the role's default when not given)."""
        mix = self.mix if self.mix is not None else ROLE_MIX[self.role]
        total = sum(mix.values())
        return {kind: weight / total for kind, weight in mix.items() if weight > 0}
