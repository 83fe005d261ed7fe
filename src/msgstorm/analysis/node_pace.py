"""The pace a chain node kept in a run: how late its blocks came and how long it took to accept.

Place in the pipeline: ``analysis/calibrate.py`` asks **node_pace(history, ...)** for the
twin of a chain node (``analysis/chain_fit.py`` reads the chain's rules: gas, base fee,
pool order); the twin's block timer is then the node's as it ran, not an ideal node's, so
a node slowed by its machine gives a twin slowed the same way. Like every analysis it reads only the history: the heads' arrivals (``block_produced`` events, with
their heights) and the messages' ``t_sent`` and ``t_received`` (the node's answer).

Measured over the ramp's steps that passed before its first failing one (the steps the
knee credited: the knee chose them, and nothing at or past the failure is read):

- the block timer: the mean time between heads, ``(t_last - t_first) / (height_last -
  height_first)`` over the heads that arrived in those steps. Not a median of the gaps: a
  head read late brings the blocks made meanwhile with it, all stamped at its arrival, so
  single gaps are 0 or twice the interval, while their sum is the time the heights took.
  Against the configured interval it is the node's block production delay (a node whose
  machine gives it no CPU builds its blocks late, and the chain holds less a second);
- the intake: each step's mean answer time (``t_received - t_sent``: the JSON-RPC batch's
  trip, the node's work on it and any wait for that work). Said in the twin's header, not
  modelled: fitted as one server (an M/G/1 on the answers' growth, as the twin's
  ``network.processing``), it throttled the twin's pool and moved its knee away from the
  node's (a run on a busy machine: answers 3 ms at 121/s, 243 ms at 235/s, fitted to fill at
  240/s; the twin then passed 288/s, +22%, where the node failed it and the twin without the
  intake matched, +0%). anvil answers a whole batch late without taking fewer of them (265/s
  included at 288/s offered with 330 ms answers): its late answers are latency, not a limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from msgstorm.analysis._common import MessageArrays
from msgstorm.analysis._intervals import IntervalLoad
from msgstorm.analysis.chain_fit import ChainBlocks

__all__ = ["NodePace", "configured_interval_ns", "node_pace"]


@dataclass(frozen=True)
class NodePace:
    """The node's block timer and intake over the steps ``steps`` (1-based)."""

    steps: tuple[int, ...]
    configured_interval_ns: int  # the block time the node was started with
    block_interval_ns: float  # the mean time between heads over those steps
    heads: int  # the heads it was measured on
    offered_per_s: tuple[float, ...]  # per step
    answer_mean_ns: tuple[float, ...]  # per step: the mean time from send to the node's answer
    answers: int  # messages answered in those steps

    @property
    def production_delay_ns(self) -> float:
        """How much later than configured a block came, on average."""
        return self.block_interval_ns - self.configured_interval_ns


def configured_interval_ns(scenario: dict[str, Any]) -> int:
    """The block time the node was started with: ``live.anvil.block_time``, else
    ``blocks.interval`` (the rule of ``AnvilNode.argv``, read from the stored scenario)."""
    own = ((scenario.get("live") or {}).get("anvil") or {}).get("block_time")
    return int(own or (scenario.get("blocks") or {}).get("interval") or 0)


def node_pace(scenario: dict[str, Any], blocks: ChainBlocks, messages: MessageArrays, load: IntervalLoad,
              steps: list[int]) -> NodePace:
    """The node's pace over the ramp steps ``steps`` (0-based, consecutive). ``ValueError``
    when they hold too few heads or answers to say it (the message says which)."""
    start, end = int(load.starts[steps[0]]), int(load.ends[steps[-1]])
    inside = np.flatnonzero((blocks.t >= start) & (blocks.t < end))
    if inside.size < 2 or blocks.height[inside[-1]] == blocks.height[inside[0]]:
        raise ValueError(f"only {inside.size} head(s) arrived during steps {steps[0] + 1}-{steps[-1] + 1}: "
                         "the node's block timer is unknown")
    first, last = int(inside[0]), int(inside[-1])
    interval = float(blocks.t[last] - blocks.t[first]) / float(blocks.height[last] - blocks.height[first])
    sent, received = messages.t_sent, messages.t_received
    answered = sent.present & received.present
    means: list[float] = []
    count = 0
    for index in steps:
        mine = answered & (messages.t_intended >= load.starts[index]) & (messages.t_intended < load.ends[index])
        answer = received.values[mine] - sent.values[mine]
        if answer.size == 0:
            raise ValueError(f"no message of step {index + 1} was answered by the node: its intake is unknown")
        means.append(float(answer.mean()))
        count += int(answer.size)
    return NodePace(steps=tuple(index + 1 for index in steps), configured_interval_ns=configured_interval_ns(scenario),
                    block_interval_ns=interval, heads=int(inside.size),
                    offered_per_s=tuple(float(load.offered_per_s[index]) for index in steps),
                    answer_mean_ns=tuple(means), answers=count)
