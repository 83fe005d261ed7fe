"""Distribution specs used across a scenario: service times, processing times, sizes, fees.

A distribution is written either as a bare quantity ("50us" means constant 50us) or as a
table with a ``dist`` tag: ``{dist = "lognormal", median = "50us", sigma = 0.5}``. The same
model is instantiated for three quantities: durations (integer ns), sizes (bytes) and plain
numbers (fees). ``msgstorm.sampling`` turns a spec into a fast sampler.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, model_validator

from msgstorm.scenario.spec import Spec
from msgstorm.scenario.units import parse_duration_ns, parse_size_bytes

__all__ = [
    "Constant",
    "Dist",
    "DurationDist",
    "DurationNs",
    "Exponential",
    "Lognormal",
    "Normal",
    "NumberDist",
    "Pareto",
    "PositiveFloat",
    "SizeBytes",
    "SizeDist",
    "Uniform",
]


def _duration(value: object) -> int:
    ns = parse_duration_ns(value)
    if ns < 0:
        raise ValueError(f"a duration must not be negative, got {value!r}")
    return ns


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range
        raise ValueError(f"number {value!r} is too large") from None


DurationNs = Annotated[int, BeforeValidator(_duration)]
SizeBytes = Annotated[int, BeforeValidator(parse_size_bytes)]
PlainNumber = Annotated[float, BeforeValidator(_number)]
PositiveFloat = Annotated[float, Field(gt=0)]


class _Spec(Spec):

    @property
    def upper(self) -> float | None:
        """The largest value a draw can take; None when the distribution has no bound."""
        return None


class Constant(_Spec):
    dist: Literal["constant"] = "constant"
    value: float = Field(ge=0)

    @property
    def mean(self) -> float:
        return self.value

    @property
    def upper(self) -> float | None:
        return self.value


class Uniform(_Spec):
    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError("'high' must be at least 'low'")
        return self

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def upper(self) -> float | None:
        return self.high


class Normal(_Spec):
    """Normal, truncated at zero (negative draws become 0)."""

    dist: Literal["normal"]
    mean_value: float = Field(alias="mean", ge=0)
    std: float = Field(ge=0)

    @property
    def mean(self) -> float:
        return self.mean_value


class Lognormal(_Spec):
    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(ge=0, le=5)

    @property
    def mean(self) -> float:
        import math

        return self.median * math.exp(self.sigma**2 / 2)


class Pareto(_Spec):
    """Pareto type I: ``scale`` is the minimum, ``alpha`` the tail index (> 1 for a finite mean)."""

    dist: Literal["pareto"]
    scale: float = Field(gt=0)
    alpha: float = Field(gt=1)

    @property
    def mean(self) -> float:
        return self.alpha * self.scale / (self.alpha - 1)


class Exponential(_Spec):
    dist: Literal["exponential"]
    mean_value: float = Field(alias="mean", gt=0)

    @property
    def mean(self) -> float:
        return self.mean_value


Dist = Union[Constant, Uniform, Normal, Lognormal, Pareto, Exponential]
_QUANTITY_FIELDS = ("value", "low", "high", "mean", "std", "median", "scale")


def _coerce(parse: Any) -> Any:
    """Build a before-validator that parses unit strings inside a distribution table."""

    def coerce(value: object) -> object:
        if not isinstance(value, dict):
            return {"dist": "constant", "value": parse(value)}
        table = dict(value)
        table.setdefault("dist", "constant")
        for name in _QUANTITY_FIELDS:
            if name in table:
                table[name] = parse(table[name])
        return table

    return coerce


_Tagged = Annotated[Dist, Field(discriminator="dist")]
DurationDist = Annotated[_Tagged, BeforeValidator(_coerce(_duration))]
SizeDist = Annotated[_Tagged, BeforeValidator(_coerce(parse_size_bytes))]
NumberDist = Annotated[_Tagged, BeforeValidator(_coerce(_number))]
