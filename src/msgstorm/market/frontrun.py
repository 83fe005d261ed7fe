"""Front-runners in the simulator: agents that race the orders they see at their node.

Place in the pipeline: registered in ``REACTORS`` and built by the simulator for a scenario
with ``[[market.frontrunners]]`` (``sim/reactor.py`` says what a reactor may do). During the
run:

- a front-runner sees each message validated at the node it watches; what it sees is what the queue
  policy lets it see (``visible``: nothing of an unrevealed commitment). A message of its
  victim ``kind``, at least ``min_size``, from an agent that is not a front-runner, is a
  victim: ``reaction`` later it sends an order of its own from its ``node`` (its fee the
  victim's x ``fee_multiple``); watching near the victims and sending from next to the
  sequencer is a latency advantage;
- when both have committed it compares when each takes effect (``execution_rank``: the
  sequence number under fifo or fee priority; the batch under a batch auction, where a race
  into the same batch wins nothing; the commitment's place under commit-reveal). It won if
  its order took effect strictly first: it then earns its notional x the price impact of
  the victim's order in the market's linear depth model (``slippage_bps`` basis points per
  ``depth`` of notional), which its position holds when the victim's order has moved the
  price. Fees are not subtracted (they are in the chain's fee unit, not the market's money).

Each race is a ``frontruns`` row. Its messages compete in the same queues as every other
message; nothing here changes the network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from msgstorm.sampling import Sampler
from msgstorm.scenario.market import FrontRunnerSpec, MarketSpec
from msgstorm.scenario.registry import REACTORS
from msgstorm.scenario.schema import Scenario

__all__ = ["FrontRunReactor", "frontrun_reactor", "price_impact"]

_COLUMNS = ("t", "t_sent", "frontrunner", "node", "victim_msg_id", "msg_id", "victim_notional", "notional",
            "outcome", "value")


@REACTORS.register("frontrun")
def frontrun_reactor(scenario: Scenario, host: Any, seed: np.random.SeedSequence) -> FrontRunReactor | None:
    market = scenario.market
    if market is None or not market.frontrunners:
        return None
    return FrontRunReactor(scenario, market, host, seed)


def price_impact(notional: float, slippage_bps: float, depth: float) -> float:
    """The fraction an order of ``notional`` moves the price (the linear depth model of
    ``market.accounts.execute``: ``slippage_bps`` per ``depth`` of notional)."""
    return slippage_bps * notional / depth / 1e4


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
        self._specs = market.frontrunners
        for spec, child in zip(market.frontrunners, seeds, strict=True):
            node = names.index(spec.node) if spec.node is not None else default_node
            watch = names.index(spec.watch) if spec.watch is not None else node
            self.runners.append(_Runner(spec, -1, node, watch, Sampler(spec.reaction, np.random.default_rng(child))))
        self.watched = {runner.watch for runner in self.runners}
        self.watched_kinds = {runner.spec.kind for runner in self.runners}
        self.runners_at: dict[int, list[int]] = {}
        for index, runner in enumerate(self.runners):
            self.runners_at.setdefault(runner.watch, []).append(index)
        self.own_agents: set[int] | None = None  # known once the host has numbered the agents
        self.targeted: set[tuple[int, int]] = set()  # (runner, victim) raced already
        self.victims: dict[int, int] = {}  # victim msg -> races against it still open
        self.races: dict[int, _Race] = {}  # the runner's msg -> its race
        self.rank: dict[int, int | None] = {}  # committed msg of an open race -> when it took effect
        self._pending_fee: dict[tuple[int, int], tuple[float, int]] = {}  # (runner, victim) -> its fee, key
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
        at = self.runners_at.get(node)
        if not at:
            return
        seen = self.host.visible(msg_id)
        if seen is None:
            return  # settled, or a commitment whose content it cannot see
        kind, agent, _origin, key, size, fee = seen
        if agent in self._own():
            return
        for index in at:
            spec = self.runners[index].spec
            if kind != spec.kind or size < spec.min_size or (index, msg_id) in self.targeted:
                continue
            self.targeted.add((index, msg_id))
            self.victims[msg_id] = self.victims.get(msg_id, 0) + 1
            self.host.schedule(t + self.runners[index].reaction(), self._race, index, msg_id, size, t)
            self._pending_fee[(index, msg_id)] = (fee, key)

    def _race(self, t: int, index: int, victim: int, victim_size: int, t_seen: int) -> None:
        runner = self.runners[index]
        spec = runner.spec
        fee, key = self._pending_fee.pop((index, victim))
        victim_notional = victim_size * spec.notional_per_byte
        msg = self.host.send(t, runner.agent, spec.kind, runner.node, key, spec.size, fee * spec.fee_multiple)
        self.races[msg] = _Race(index, t_seen, t, victim, msg, victim_notional, spec.share * victim_notional)

    def committed(self, t: int, msg_ids: list[int]) -> None:
        races, victims, rank = self.races, self.victims, self.rank
        settled: list[_Race] = []
        for msg in msg_ids:
            if msg in races or msg in victims:
                rank[msg] = self.host.execution_rank(msg)
                race = races.get(msg)
                if race is not None and race.victim in rank:
                    settled.append(race)
                elif msg in victims:
                    settled.extend(r for r in races.values() if r.victim == msg and r.msg in rank)
        for race in settled:
            self._settle(race)

    def _settle(self, race: _Race) -> None:
        mine, theirs = self.rank.pop(race.msg), self.rank.get(race.victim)
        del self.races[race.msg]
        left = self.victims[race.victim] - 1
        if left:
            self.victims[race.victim] = left
        else:
            del self.victims[race.victim]
            self.rank.pop(race.victim, None)
        if mine is None or theirs is None:
            self._row(race, "unfinished", 0.0)
        elif mine < theirs:
            market = self.market
            value = race.notional * price_impact(race.victim_notional, market.slippage_bps, market.depth)
            self._row(race, "won", value)
        else:
            self._row(race, "lost", 0.0)

    def _row(self, race: _Race, outcome: str, value: float) -> None:
        runner = self.runners[race.runner]
        self._rows.append((race.t_seen, race.t_sent, runner.spec.name, self.host.node_names[runner.node], race.victim,
                           race.msg, race.victim_notional, race.notional, outcome, value))

    # --- the end -----------------------------------------------------------------------------

    def finish(self, t_end: int) -> None:
        """Races whose orders did not both take effect are unfinished."""
        for race in sorted(self.races.values(), key=lambda r: r.msg):
            self._row(race, "unfinished", 0.0)
        self.races.clear()
        if self._rows:
            columns = list(zip(*self._rows, strict=True))
            self.host.append("frontruns", {name: list(column) for name, column in zip(_COLUMNS, columns, strict=True)})
            self._rows = []
