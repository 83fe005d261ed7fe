"""Self-healing controllers: adaptive throttling and adaptive block time.

Place in the pipeline: inside the simulator, beside the sequencer and the chain. Each
``[[controllers]]`` entry is one ``Controller``, registered under its ``kind`` in
``CONTROLLERS`` (``scenario/registry.py``) as a factory ``(spec, host) -> Controller``.
Every ``spec.every`` of virtual time the controller looks at the strain it reacts to (through
``ControlHost``: the sequencer and the chain) and may decide; each decision is a ``control``
event in the history (value: the new output; detail: the strain it saw and its terms), so the
report can show the controller's state over time beside the strain.

- ``throttle``: a PI controller on a strain signal (the sequencer's queue depth, the block
  backlog, or the height gap of the furthest-behind live node). Its output is the share of
  arrivals of the non-essential kinds that the sequencer admits (the rest are shed,
  ``dropped``); a kind not listed as non-essential is never shed. The share moves in steps
  of ``step`` down from 1 and only when the controller's continuous output is a whole step away from
  the current one, so queue noise around the set point does not flap it.
- ``block_time``: the block interval shrinks by ``factor`` while more than ``high`` full
  blocks of sequenced messages wait for block space, and grows back (to ``max_interval``)
  while fewer than ``low`` do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from msgstorm.history.events import EventKind
from msgstorm.scenario.control import BlockTimeSpec, ThrottleSpec
from msgstorm.scenario.registry import CONTROLLERS
from msgstorm.scenario.schema import MESSAGE_KINDS, Scenario
from msgstorm.sim.chain import Chain
from msgstorm.sim.context import Handler, SimContext
from msgstorm.sim.sequencer import Sequencer

__all__ = ["BlockTimeController", "ControlHost", "Controller", "ThrottleController", "build_controllers",
           "start_controllers"]

# The relative error is clipped above at this: a queue far beyond its set point does not
# make the controller slam the share shut in one look (the integral closes it over a few
# seconds), and small gains still react fast to a large overload. (Below, it cannot fall
# under -1: an empty queue.)
_ERROR_MAX = 10.0
_ERROR_EMPTY = -1.0


@dataclass(frozen=True)
class ControlHost:
    """What a controller may look at and steer."""

    ctx: SimContext
    sequencer: Sequencer
    chain: Chain


class Controller(Protocol):
    every_ns: int

    def decide(self, t: int) -> None:
        """Look at the strain at ``t`` and steer (recording a ``control`` event on a change)."""
        ...


def _record(host: ControlHost, t: int, name: str, output: float, detail: dict[str, Any]) -> None:
    ctx = host.ctx
    ctx.record.event(t, EventKind.CONTROL, ctx.cluster.leader, output,
                     detail={"controller": name, "output": output, **detail})


@CONTROLLERS.register("throttle")
class ThrottleController:
    """PI control of the admitted share of non-essential kinds, from a strain signal.

    Velocity form, so the output's bounds need no anti-windup: each look moves the
    continuous output ``u`` by ``-kp * (e - e_previous) - ki * e * dt`` where ``e`` is
    ``signal / target - 1``. The share admitted is ``u`` on a grid of ``step``,
    changed only when ``u`` is a whole step away from it. Which arrivals are admitted is
    deterministic: a credit grows by the share at each non-essential arrival and one is
    admitted whenever the credit reaches 1 (no random draw, so the run's streams are the
    same with and without the controller)."""

    def __init__(self, spec: ThrottleSpec, host: ControlHost) -> None:
        self.spec = spec
        self.host = host
        self.every_ns = spec.every
        self.nonessential = frozenset(MESSAGE_KINDS.index(kind) for kind in spec.nonessential)
        self.share = 1.0  # admitted share of non-essential arrivals
        self.output = 1.0  # the PI's continuous output
        self.error = _ERROR_EMPTY  # an empty queue before the first look
        self.credit = 0.0
        self.shed = 0
        host.sequencer.gate_with(self)  # it sheds at the sequencer's intake

    def sheds(self, kind: int) -> bool:
        if kind not in self.nonessential:
            return False
        self.credit += self.share
        if self.credit >= 1.0:
            self.credit -= 1.0
            return False
        self.shed += 1
        return True

    def decide(self, t: int) -> None:
        spec = self.spec
        cluster = self.host.ctx.cluster
        if not cluster.up[cluster.leader]:
            return  # a failover: the emptied queue is no sign the strain is gone, so hold the share
        strain = self.read()
        error = min(_ERROR_MAX, strain / spec.target - 1.0)
        dt_s = spec.every / 1e9
        self.output -= spec.kp * (error - self.error) + spec.ki * error * dt_s
        self.output = min(1.0, max(spec.min_share, self.output))
        self.error = error
        if abs(self.output - self.share) < spec.step - 1e-12:
            return
        # The grid counts down from 1 (1, 1 - step, ...), so a step that does not divide 1
        # still returns to it.
        steps = round((1.0 - self.output) / spec.step)
        share = min(1.0, max(spec.min_share, round(1.0 - steps * spec.step, 9)))  # 0.35, not 0.35000000000000003
        if share == self.share:
            return
        previous, self.share = self.share, share
        _record(self.host, t, "throttle", share, {"previous": previous, "strain": strain, "signal": spec.signal,
                                                 "error": error, "pi": self.output, "shed": self.shed})

    def read(self) -> float:
        """The signal now: messages queued, messages waiting for a block, or blocks behind."""
        host, signal = self.host, self.spec.signal
        if signal == "queue_depth":
            return float(host.sequencer.depth)
        if signal == "block_backlog":
            return float(host.sequencer.block_backlog())
        cluster, height = host.ctx.cluster, host.chain.height
        lead = height[cluster.leader]
        return float(max((lead - h for h, up in zip(height, cluster.up, strict=True) if up), default=0))


@CONTROLLERS.register("block_time")
class BlockTimeController:
    """The block interval follows the backlog of sequenced messages waiting for a block."""

    def __init__(self, spec: BlockTimeSpec, host: ControlHost) -> None:
        self.spec = spec
        self.host = host
        self.every_ns = spec.every
        # The scenario's check (scenario/refs.py) keeps blocks.interval within the bounds.

    def decide(self, t: int) -> None:
        spec, chain = self.spec, self.host.chain
        backlog_blocks = self.host.sequencer.block_backlog() / chain.max_messages
        interval = chain.block_interval
        if backlog_blocks > spec.high:
            interval = max(spec.min_interval, round(interval * spec.factor))
        elif backlog_blocks < spec.low:
            interval = min(spec.max_interval, round(interval / spec.factor))
        if interval == chain.block_interval:
            return
        previous, chain.block_interval = chain.block_interval, interval  # the next block tick uses it
        _record(self.host, t, "block_time", float(interval), {"previous": float(previous), "strain": backlog_blocks})


def build_controllers(scenario: Scenario, host: ControlHost) -> list[Controller]:
    """The scenario's controllers, from the registry, in the order it lists them."""
    return [CONTROLLERS[spec.kind](spec, host) for spec in scenario.controllers]


def start_controllers(controllers: list[Controller], ctx: SimContext) -> None:
    """Schedule each controller's looks, every ``every_ns`` until the run's hard stop."""
    for controller in controllers:
        ctx.events.push(controller.every_ns, _timer(controller, ctx))


def _timer(controller: Controller, ctx: SimContext) -> Handler:
    """The handler of one controller's looks: it decides, then schedules itself again. (A
    factory, so each controller's handler names itself, not the last one defined.)"""
    def look(t: int, _a: int, _b: int, _c: int, _d: int) -> None:
        controller.decide(t)
        if t + controller.every_ns <= ctx.hard_stop:
            ctx.events.push(t + controller.every_ns, look)

    return look
