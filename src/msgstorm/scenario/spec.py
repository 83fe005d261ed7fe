"""The base of every scenario table, and the unit-converting number types they share.

Place in the pipeline: under ``scenario/schema.py`` and the section modules beside it
(``distributions``, ``network``, ``faults``, ``market``, ``control``, ``crosschain``,
``security``). Every table is frozen, refuses fields it does not know (so a misspelt key is
an error naming it, not a silent default) and refuses NaN and infinity; the loader turns
pydantic's errors into file, line and field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from msgstorm.scenario.units import parse_bandwidth_bps, parse_fraction, parse_rate_per_s

__all__ = ["BandwidthBps", "Fraction", "RatePerS", "Spec"]

RatePerS = Annotated[float, BeforeValidator(parse_rate_per_s), Field(ge=0)]
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
BandwidthBps = Annotated[float, BeforeValidator(parse_bandwidth_bps)]


class Spec(BaseModel):
    """A scenario table: frozen, no unknown fields, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
