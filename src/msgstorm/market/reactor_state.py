"""What the market reactor's parts share: the keepers and the reactor's state.

Place in the pipeline: below the market reactor (``market/reactor.py``) and its parts, which
are mixins of it because each reads and writes much of its state: the Dutch and English
auctions (``market/reactor_auctions.py``), a chain that lost its newest blocks
(``market/reactor_revert.py``) and the history rows (``market/reactor_rows.py``).
``ReactorState`` declares, typed, what they share (the reactor's constructor sets all of it)
and the handlers of the reactor's they call, so each part type-checks on its own and none
holds a copy (``tests/test_market_reactor_state.py`` checks the reactor sets every name
declared). Top-ups, funding, the mark and the cross accounts are parts the reactor holds
(``market/topups.py``, ``market/funding.py``, ...), given the arrays they change. The
keepers are built here (``build_keepers``), beside their record.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from msgstorm.market.accounts import Accounts, LineCursor, LineIndex
from msgstorm.market.cross_margin import CrossMargin
from msgstorm.market.dutch import DutchAuctions
from msgstorm.market.flip import EnglishAuctions
from msgstorm.market.keepers_budget import Budgets
from msgstorm.market.liquidation import Call, Mechanism
from msgstorm.market.nonces import Nonces
from msgstorm.market.oracle import OracleUpdates
from msgstorm.market.prices import PricePaths
from msgstorm.market.retry import Retry
from msgstorm.market.topups import TopUps
from msgstorm.market.venue import Venue
from msgstorm.sampling import Sampler
from msgstorm.scenario.market import KeeperSpec, MarketSpec

__all__ = ["Keeper", "ReactorState", "build_keepers"]


@dataclasses.dataclass
class Keeper:
    name: str  # "<group>-<i>"
    index: int  # in MarketReactor.keepers
    member: int  # its number in its group
    group: int
    spec: KeeperSpec
    node: int
    cursor: LineCursor
    reaction: Sampler
    known_step: list[int]  # per instrument: the step of the newest price it has seen
    pending: set[int] = dataclasses.field(default_factory=set)  # accounts it has a message out for
    retry: Retry = dataclasses.field(default_factory=lambda: Retry(0))  # accounts to look at again (market/retry.py)


def build_keepers(market: MarketSpec, host: Any, accounts: Accounts, seed: np.random.SeedSequence) -> list[Keeper]:
    """The keepers of every group in order: keeper ``i`` of a group at its node, else the
    ``i``-th (in turn) of its region's nodes or of all nodes; each with its own cursor over
    the accounts' lines and its reaction drawn from a child of ``seed`` of its own."""
    index = LineIndex(accounts, len(market.instruments))
    keepers: list[Keeper] = []
    seeds = seed.spawn(max(1, sum(spec.count for spec in market.keepers)))
    for group, spec in enumerate(market.keepers):
        nodes = _nodes(spec, host.node_names, host.node_regions)
        for i in range(spec.count):
            rng = np.random.default_rng(seeds[len(keepers)])
            keepers.append(Keeper(f"{spec.name}-{i}", len(keepers), i, group, spec, nodes[i % len(nodes)],
                                  index.cursor(), Sampler(spec.reaction, rng), [0] * len(market.instruments),
                                  retry=Retry(len(accounts))))
    return keepers


def _nodes(spec: KeeperSpec, names: list[str], regions: list[str]) -> list[int]:
    if spec.node is not None:
        return [names.index(spec.node)]
    if spec.region is not None:
        return [i for i, region in enumerate(regions) if region == spec.region]
    return list(range(len(names)))


class ReactorState:
    """The reactor's state its parts read (``MarketReactor.__init__`` says what each is)."""

    market: MarketSpec
    host: Any
    paths: PricePaths
    accounts: Accounts
    updates: OracleUpdates
    oracle_node: int
    keepers: list[Keeper]
    _keeper_named: dict[str, Keeper]
    # On chain: each instrument's price, the step of the true price behind it, its update row.
    chain_price: list[float]
    chain_step: list[int]
    chain_row: list[int]
    _price_before: dict[int, tuple[int, float, int]]
    liquidated: np.ndarray
    price_of: dict[int, int]
    liquidation_of: dict[int, tuple[int, int]]
    msg_of_update: list[int]
    resent: list[tuple[int, int]]
    resends: int
    # The accounts' working copies (lists: what no handler changes; arrays: what they change).
    _side: list[int]
    _entry: list[float]
    _instrument: list[int]
    _size: np.ndarray
    _collateral: np.ndarray
    rule: Mechanism
    venue: Venue | None
    cross: CrossMargin | None
    topups: TopUps | None
    budgets: Budgets | None
    auctions: DutchAuctions | None
    flips: EnglishAuctions | None
    take_of: dict[int, tuple[int, int]]
    bid_of: dict[int, tuple[int, int, float, float]]
    nonces: Nonces | None
    _take_trigger: dict[tuple[int, int], tuple[int, int, float]]
    # The rows gathered for the history (``market/reactor_rows.py``).
    _triggers: list[tuple[Any, ...]]
    _executions: list[tuple[Any, ...]]
    _venue_rows: list[tuple[Any, ...]]
    _venue_blocks: list[tuple[Any, ...]]
    _venue_written: int
    _losses: list[tuple[Any, ...]]
    _marks: list[tuple[int, int, int, float, float]]
    _oracle_written: int

    if TYPE_CHECKING:  # the reactor's own handlers the parts call (``market/reactor.py``)
        def _look(self, t: int, keeper: Keeper, row: int, instrument: int, price: float) -> None: ...

        def _depth(self, t: int, instrument: int) -> float: ...

        def _book(self, t: int, msg_id: int, account: int, done: Call) -> float: ...

        def _reline(self, accounts: list[int] | np.ndarray) -> None: ...

        def _send(self, t: int, account: int, keeper_index: int, row: int, t_seen: int) -> None: ...
