"""The liquidation lane and the self-healing controllers: ``[sequencer.lane]`` and ``[[controllers]]``.

Place in the pipeline: part of the scenario schema (``schema.SequencerSpec.lane``,
``schema.Scenario.controllers``), read by the simulator (``sim/lane.py``, ``sim/control.py``).
Each controller kind is one spec class here, in the ``ControllerSpec`` union, and one
implementation registered under the same ``kind`` in ``CONTROLLERS`` (``scenario/registry.py``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from msgstorm.scenario.distributions import DurationNs
from msgstorm.scenario.spec import Fraction, Spec

__all__ = ["BlockTimeSpec", "ControllerSpec", "LaneSpec", "ThrottleSpec"]

LaneKind = Literal["order", "cancel", "quote", "liquidation", "price", "spam"]


class LaneSpec(Spec):
    """A share of the sequencer's workers and/or of each block reserved for some kinds
    (liquidations and prices); an unused share goes to the rest."""

    kinds: list[LaneKind] = Field(
        default_factory=lambda: list[LaneKind](["liquidation", "price"]), min_length=1,
        description="the kinds the lane serves")
    workers: int = Field(
        default=0, ge=0,
        description="workers reserved for the lane, out of `sequencer.workers` (the lane's share of the service "
                    "capacity is `workers / sequencer.workers`); the lane's kinds then skip the shared queue and "
                    "backpressure (they pay no base fee, though the block space they take counts toward its moves; "
                    "suspended senders do not hold them). 0: they queue with the rest")
    lend: bool = Field(
        default=True, description="an idle lane worker serves the rest (the unused share goes to them); "
                                  "false: the lane's workers serve only the lane")
    block_share: Fraction = Field(
        default=0.0, description="share of each block's messages (and gas, with `blocks.max_gas`) the lane's "
                                 "sequenced messages may take before the rest; what they leave goes to the rest")

    @model_validator(mode="after")
    def _reserves_something(self) -> LaneSpec:
        if not 0 <= self.block_share <= 1:
            raise ValueError("'block_share' must be in [0, 1]")
        if self.workers == 0 and self.block_share == 0:
            raise ValueError("a lane reserves 'workers', a 'block_share', or both")
        return self


class ThrottleSpec(Spec):
    """Adaptive throttling: a PI controller sheds non-essential kinds as the strain grows."""

    kind: Literal["throttle"] = Field(
        description="a PI controller on a strain signal (the sequencer's queue depth by default) sheds a share of "
                    "the `nonessential` kinds' arrivals (`dropped`) and lets them back as the strain falls; each "
                    "change a `control` event")
    nonessential: list[LaneKind] = Field(
        min_length=1, description="the kinds it may shed; no other kind is ever shed")
    signal: Literal["queue_depth", "block_backlog", "height_gap"] = Field(
        default="queue_depth",
        description="the strain it steers: `queue_depth` (messages in the sequencer's queue), `block_backlog` "
                    "(sequenced messages waiting for block space) or `height_gap` (blocks the furthest-behind "
                    "live node trails the leader by: desync)")
    target: float = Field(
        gt=0, description="the signal's set point, in its unit (messages, or blocks for `height_gap`)")
    kp: float = Field(default=0.05, ge=0, description="proportional gain: admitted share per unit of relative "
                                                     "error (signal / target - 1)")
    ki: float = Field(default=0.02, ge=0, description="integral gain: admitted share per second per unit of "
                                                     "relative depth error")
    step: Fraction = Field(default=0.05, gt=0, le=1,
                            description="the admitted share changes in steps of this size; a change is "
                                        "decided (and recorded) only when the controller's output has moved "
                                        "a whole step away from the current share")
    min_share: Fraction = Field(default=0.0, description="the least share of non-essential arrivals admitted")
    every: DurationNs = Field(default=100_000_000, gt=0,
                              description="how often it reads the signal and decides")

    @model_validator(mode="after")
    def _share(self) -> ThrottleSpec:
        if not 0 <= self.min_share < 1:
            raise ValueError("'min_share' must be in [0, 1)")
        return self


class BlockTimeSpec(Spec):
    """Adaptive block time: the block interval follows the block backlog within bounds."""

    kind: Literal["block_time"] = Field(
        description="the block interval shrinks while sequenced messages wait for block space and grows back "
                    "when they do not, within `[min_interval, max_interval]`; each change a `control` event")
    min_interval: DurationNs = Field(gt=0, description="the shortest block interval it may set")
    max_interval: DurationNs = Field(gt=0, description="the longest (and the interval it returns to when "
                                                       "blocks are not full)")
    factor: float = Field(default=0.8, gt=0, lt=1,
                          description="each decision multiplies the interval by this (backlog of more than "
                                      "`high` blocks) or divides it by this (backlog under `low` blocks)")
    high: float = Field(default=1.0, gt=0, description="backlog, in full blocks, above which blocks come faster")
    low: float = Field(default=0.25, ge=0, description="backlog, in full blocks, below which they slow again")
    every: DurationNs = Field(default=1_000_000_000, gt=0, description="how often it looks and decides")

    @model_validator(mode="after")
    def _bounds(self) -> BlockTimeSpec:
        if self.min_interval > self.max_interval:
            raise ValueError("'min_interval' must not exceed 'max_interval'")
        if self.low >= self.high:
            raise ValueError("'low' must be below 'high'")
        return self


ControllerSpec = Annotated[ThrottleSpec | BlockTimeSpec, Field(discriminator="kind")]
