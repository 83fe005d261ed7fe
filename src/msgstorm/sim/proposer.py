"""Proposer rotation by voting power: CometBFT's proposer-priority rule.

Place in the pipeline: inside the simulator, read by ``sim/tendermint.py`` (round-based
BFT consensus, ``blocks.producers.consensus = "tendermint"``) to name the proposer of
each height and round. Written from CometBFT's specification of the rule (the
``proposer-selection`` document of ``spec/consensus`` and ``types/validator_set.go``'s
documented behaviour), not copied:

- every validator holds an integer priority, 0 at genesis;
- one *increment call* first rescales the priorities when their spread (max - min)
  exceeds ``2 × total voting power`` (each divided by ``ceil(spread / (2 × total))``,
  truncated toward zero), then centres them (each minus the average, rounded down);
- then, once per step: every validator adds its voting power; the one with the highest
  priority (a tie goes to the lower address, here the lower validator index) proposes,
  and its priority drops by the total voting power.

The set at genesis is incremented once (height 1's proposer), and once more for each
height after (the state's next validator set); round ``r`` of a height is that height's
set incremented ``r`` more times, one call per round (a validator entering rounds one by
one, as the timeouts move it). Over ``total`` consecutive steps from genesis each
validator proposes exactly its voting power's number of times (the sum of priorities is
always 0, and after ``total`` steps they are all 0 again), which ``tests/test_sim_tendermint.py``
checks against a sequence worked by hand.

Integer arithmetic throughout (Python integers: no clipping is ever needed).
"""

from __future__ import annotations

__all__ = ["PRIORITY_WINDOW_FACTOR", "ProposerSchedule", "increment"]

PRIORITY_WINDOW_FACTOR = 2  # the spread of priorities is kept within 2 × total voting power


def _trunc_div(a: int, b: int) -> int:
    """Division truncated toward zero (the specification's integer division), b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def increment(priorities: list[int], powers: list[int], times: int = 1) -> int:
    """One increment call on ``priorities`` (changed in place): rescale, centre, then
    ``times`` steps. Returns the proposer of the last step (a validator index)."""
    total = sum(powers)
    window = PRIORITY_WINDOW_FACTOR * total
    spread = max(priorities) - min(priorities)
    if spread > window:
        ratio = -(-spread // window)  # ceil
        for i, p in enumerate(priorities):
            priorities[i] = _trunc_div(p, ratio)
    average = sum(priorities) // len(priorities)  # rounded down, as a big-integer division is
    for i in range(len(priorities)):
        priorities[i] -= average
    proposer = -1
    for _ in range(times):
        best = 0
        for i, power in enumerate(powers):
            priorities[i] += power
            if priorities[i] > priorities[best]:
                best = i  # strictly higher: a tie keeps the lower index (the lower address)
        priorities[best] -= total
        proposer = best
    return proposer


class ProposerSchedule:
    """The proposer of each (height, round), computed once and kept (heights in order)."""

    def __init__(self, powers: list[int]) -> None:
        if not powers or any(p <= 0 for p in powers):
            raise ValueError("voting powers must be positive integers")
        self.powers = list(powers)
        self._priorities = [0] * len(powers)  # after the last height computed
        self._height_sets: list[list[int]] = []  # priorities of each height's set, from height 1
        self._height_proposers: list[int] = []
        self._rounds: dict[tuple[int, int], int] = {}

    def _reach(self, height: int) -> None:
        while len(self._height_sets) < height:
            proposer = increment(self._priorities, self.powers)
            self._height_sets.append(list(self._priorities))
            self._height_proposers.append(proposer)

    def proposer(self, height: int, round_: int) -> int:
        """The validator index proposing at ``height`` (from 1) and ``round_`` (from 0)."""
        if height < 1 or round_ < 0:
            raise ValueError(f"no proposer at height {height}, round {round_}")
        self._reach(height)
        if round_ == 0:
            return self._height_proposers[height - 1]
        key = (height, round_)
        found = self._rounds.get(key)
        if found is None:
            priorities = list(self._height_sets[height - 1])
            for _ in range(round_):
                found = increment(priorities, self.powers)
            assert found is not None
            self._rounds[key] = found
        return found
