"""Front-runners in the simulator: agents that race the orders they see at their node.

Place in the pipeline: registered in ``REACTORS`` and built by the simulator for a scenario
with ``[[market.frontrunners]]`` (``traffic/reactor.py`` says what a reactor may do). During the
run:

- a front-runner sees each message validated at the node it watches; what it sees is what
  the queue policy lets it see (``visible``: nothing of an unrevealed commitment). A message of its
  victim ``kind``, at least ``min_size``, from an agent that is not a front-runner, is a
  victim: ``reaction`` later it sends an order of its own from its ``node`` (its fee the
  victim's x ``fee_multiple``); watching near the victims and sending from next to the
  sequencer is a latency advantage;
- when both have committed it compares when each takes effect (``execution_rank``: the
  sequence number under fifo or fee priority; the batch under a batch auction, where a race
  into the same batch wins nothing; the commitment's place under commit-reveal). It won if
  its order took effect strictly first: it then earns its notional x the price impact of
  the victim's order in the market's linear depth model (``accounts.impact_bps``:
  ``slippage_bps`` basis points per ``depth`` of notional), which its position holds when the victim's order has moved the
  price. Fees are not subtracted (they are in the chain's fee unit, not the market's money);
- a sandwicher (``sandwich``) also sends the opposite order, the back-run, when the
  victim's order reaches the node it sends from (at ``back_fee_multiple`` x the victim's
  fee, to come after it under fee priority); its race is won when its front-run takes
  effect before the victim's and its back-run after it (the back-run realises the gain).
  A race whose victim has settled (committed, or dropped) before its order leaves is lost
  at once; one whose orders have not all taken effect by the end is unfinished.

Each race is a ``frontruns`` row. Its messages compete in the same queues as every other
message; nothing here changes the network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from msgstorm.market.accounts import impact_bps
from msgstorm.sampling import Sampler
from msgstorm.scenario.market import FrontRunnerSpec, MarketSpec, impact_exponent
from msgstorm.scenario.registry import REACTORS
from msgstorm.scenario.schema import Scenario

__all__ = ["FrontRunReactor", "frontrun_reactor"]

# Races gathered before they go to the history writer.
_FLUSH_ROWS = 4096
_COLUMNS = ("t", "t_sent", "frontrunner", "node", "victim_msg_id", "msg_id", "back_msg_id", "victim_notional",
            "notional", "outcome", "value")


@REACTORS.register("frontrun")
def frontrun_reactor(scenario: Scenario, host: Any, seed: np.random.SeedSequence) -> FrontRunReactor | None:
    market = scenario.market
    if market is None or not market.frontrunners:
        return None
    return FrontRunReactor(scenario, market, host, seed)


@dataclasses.dataclass
class _Runner:
    spec: FrontRunnerSpec
    agent: int
    node: int  # where its orders enter
    watch: int  # where it watches
    reaction: Sampler


@dataclasses.dataclass
class _Race:
    runner: int
    t_seen: int
    t_sent: int
    victim: int
    msg: int
    victim_notional: float
    notional: float
    back: int | None = None  # a sandwich's back-run, once sent

    def members(self, sandwich: bool) -> list[int] | None:
        """The messages whose ranks decide it (None: the back-run is not sent yet)."""
        if not sandwich:
            return [self.msg, self.victim]
        return None if self.back is None else [self.msg, self.victim, self.back]


class FrontRunReactor:
    wants_ranks = True

    def __init__(self, scenario: Scenario, market: MarketSpec, host: Any, seed: np.random.SeedSequence) -> None:
        self.market = market
        self.host = host
        names = host.node_names
        leader = scenario.sequencer.node
        default_node = names.index(leader) if leader is not None else 0
        self.agents = [spec.name for spec in market.frontrunners]
        seeds = seed.spawn(len(market.frontrunners))
        self.runners: list[_Runner] = []
        for spec, child in zip(market.frontrunners, seeds, strict=True):
            node = names.index(spec.node) if spec.node is not None else default_node
            watch = names.index(spec.watch) if spec.watch is not None else node
            self.runners.append(_Runner(spec, -1, node, watch, Sampler(spec.reaction, np.random.default_rng(child))))
        self.runners_at: dict[int, list[int]] = {}  # node -> the runners watching there for victims
        self.backing_at: dict[int, list[int]] = {}  # node -> the sandwiching runners sending from there
        for index, runner in enumerate(self.runners):
            self.runners_at.setdefault(runner.watch, []).append(index)
            if runner.spec.sandwich:
                self.backing_at.setdefault(runner.node, []).append(index)
        self.watched = set(self.runners_at) | set(self.backing_at)
        self.watched_kinds = {runner.spec.kind for runner in self.runners}
        self.own_agents: set[int] | None = None  # known once the host has numbered the agents
        self.targeted: set[tuple[int, int]] = set()  # (runner, victim) raced already
        self.victim_fee: dict[tuple[int, int], tuple[float, int]] = {}  # (runner, victim) -> its fee, key
        self.race_of: dict[tuple[int, int], _Race] = {}  # (runner, victim) -> its race, once sent
        self.back_due: set[tuple[int, int]] = set()  # the victim reached the runner's node before its race left
        self.waiting_on: dict[int, list[_Race]] = {}  # msg -> the open races its rank decides
        self.rank: dict[int, int | None] = {}  # committed msg of an open race -> when it took effect
        self.open: dict[int, _Race] = {}  # the runner's msg -> its race, until settled
        self._rows: list[tuple[Any, ...]] = []

    # --- before the run ----------------------------------------------------------------------

    def traffic(self, batches: Iterable[Any]) -> Iterator[Any]:
        return iter(batches)

    def numbered(self, batch: Any) -> None:
        pass

    # --- during the run ------------------------------------------------------------------------

    def _own(self) -> set[int]:
        if self.own_agents is None:
            self.own_agents = {self.host.agent_index(name) for name in self.agents}
            for runner in self.runners:
                runner.agent = self.host.agent_index(runner.spec.name)
        return self.own_agents

    def validated(self, t: int, node: int, msg_id: int) -> None:
        seen = self.host.visible(msg_id)
        if seen is None:
            return  # settled, or a commitment whose content it cannot see
        kind, agent, _origin, key, size, fee = seen
        if agent in self._own():
            return
        for index in self.runners_at.get(node, ()):
            spec = self.runners[index].spec
            if kind != spec.kind or size < spec.min_size or (index, msg_id) in self.targeted:
                continue
            self.targeted.add((index, msg_id))
            self.victim_fee[(index, msg_id)] = (fee, key)
            self.host.schedule(t + self.runners[index].reaction(), self._race, index, msg_id, size, t)
        for index in self.backing_at.get(node, ()):
            if (index, msg_id) in self.targeted:
                # The victim reached the node it sends from: the back-run follows it from here.
                race = self.race_of.get((index, msg_id))
                if race is None:
                    self.back_due.add((index, msg_id))
                elif race.back is None:
                    self._back_run(t, index, race)

    def _race(self, t: int, index: int, victim: int, victim_size: int, t_seen: int) -> None:
        runner = self.runners[index]
        spec = runner.spec
        fee, key = self.victim_fee[(index, victim)]
        victim_notional = victim_size * spec.notional_per_byte
        msg = self.host.send(t, runner.agent, spec.kind, runner.node, key, spec.size, fee * spec.fee_multiple)
        race = _Race(index, t_seen, t, victim, msg, victim_notional, spec.share * victim_notional)
        if self.host.visible(victim) is None:
            # The victim was visible when seen: it has settled (committed, or dropped) before
            # this order left, which can no longer take effect first. No back-run follows.
            del self.victim_fee[(index, victim)]
            self.back_due.discard((index, victim))
            self._row(race, "lost", 0.0)
            return
        self.open[msg] = race
        # Both legs' ranks are recorded from now on: either may commit before the back-run leaves.
        self._wait(race, [msg, victim])
        if spec.sandwich:
            self.race_of[(index, victim)] = race
            if (index, victim) in self.back_due:
                self.back_due.discard((index, victim))
                self._back_run(t, index, race)
        else:
            del self.victim_fee[(index, victim)]

    def _back_run(self, t: int, index: int, race: _Race) -> None:
        """A sandwich's second leg: the opposite order, priced to come after the victim."""
        runner = self.runners[index]
        spec = runner.spec
        fee, key = self.victim_fee.pop((index, race.victim))
        del self.race_of[(index, race.victim)]
        race.back = self.host.send(t, runner.agent, spec.kind, runner.node, key, spec.size,
                                   fee * spec.back_fee_multiple)
        self._wait(race, [race.back])

    def _wait(self, race: _Race, messages: list[int]) -> None:
        for msg in messages:
            self.waiting_on.setdefault(msg, []).append(race)

    def committed(self, t: int, msg_ids: list[int]) -> None:
        waiting_on, rank = self.waiting_on, self.rank
        for msg in msg_ids:
            races = waiting_on.get(msg)
            if races is None:
                continue
            rank[msg] = self.host.execution_rank(msg)
            for race in list(races):
                members = race.members(self.runners[race.runner].spec.sandwich)
                if members is not None and all(m in rank for m in members):
                    self._settle(race, members)

    def reverted(self, t: int, undone: list[int], gone: list[int]) -> None:
        pass  # front-runners run in the simulator only, whose commits are final (AnvilNode.market_problems)

    def _settle(self, race: _Race, members: list[int]) -> None:
        found = [self.rank[m] for m in members]
        for m in members:
            races = self.waiting_on[m]
            races.remove(race)
            if not races:
                del self.waiting_on[m]
                self.rank.pop(m, None)
        del self.open[race.msg]
        ranks = [r for r in found if r is not None]
        if len(ranks) < len(found):
            self._row(race, "unfinished", 0.0)
        elif all(a < b for a, b in zip(ranks, ranks[1:], strict=False)):  # first, the victim, (the back-run)
            market = self.market
            impact = impact_bps(race.victim_notional, market.slippage_bps, market.depth, impact_exponent(market))
            value = race.notional * (impact / 1e4)
            self._row(race, "won", value)
        else:
            self._row(race, "lost", 0.0)

    def _row(self, race: _Race, outcome: str, value: float) -> None:
        runner = self.runners[race.runner]
        self._rows.append((race.t_seen, race.t_sent, runner.spec.name, self.host.node_names[runner.node], race.victim,
                           race.msg, -1 if race.back is None else race.back, race.victim_notional, race.notional,
                           outcome, value))
        if len(self._rows) >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            columns = list(zip(*self._rows, strict=True))
            self.host.append("frontruns", {name: list(column) for name, column in zip(_COLUMNS, columns, strict=True)})
            self._rows = []

    # --- the end -----------------------------------------------------------------------------

    def finish(self, t_end: int) -> None:
        """Races whose orders did not both take effect are unfinished."""
        for race in sorted(self.open.values(), key=lambda r: r.msg):
            self._row(race, "unfinished", 0.0)
        self.open.clear()
        self.waiting_on.clear()
        self.rank.clear()
        self._flush()
