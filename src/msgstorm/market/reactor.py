"""The market: oracle messages, reactive keepers, liquidations at commit.

Place in the pipeline: registered in ``REACTORS`` and built by the simulator, or by the
chain target on an EVM node (``live/chain/market.py``), for a scenario with ``[market]``
(``traffic/reactor.py`` says what a reactor may do and what its two hosts give it). Before the run it draws
the price paths and the accounts and writes them (``prices``, ``accounts``), and merges the
oracle's scheduled ``price`` messages into the traffic (``oracle`` maps each to its price),
published until the market's horizon (``prices.horizon_ns``: the span the analysis judges
every run over).
During the run:

- a keeper sees a price when its message is validated at the keeper's node; it finds the
  accounts that price puts past their maintenance line (``LineCursor``: only the accounts
  it crosses) and, ``reaction`` later, sends a ``liquidation`` message for each one not yet
  liquidated on chain (key: the account), its fee fixed or ``fee_multiple`` x the base fee
  then (capped); each is a ``triggers`` row;
- a committed ``price`` message becomes the on-chain price of its instrument (if newer);
- a committed ``liquidation`` executes at the on-chain price then (``accounts.execute``),
  or is a counted no-op: the account already liquidated, or not past its line at that price
  (recovered; the keeper may send again on a later price). Each is an ``executions`` row.

A host whose chain can lose its newest blocks (a node restarted from an older saved state,
``live/chain/target.py``) says so with ``reverted``: the commits the chain no longer holds are
taken back newest first, as a reorg takes back a branch (the on-chain price goes back to the
one before, an executed account is open again and its ``executions`` row says ``reverted``),
and what will never reach the chain is sent again by its agent, as its real counterpart
reading the reloaded head would: the oracle its newest price of an instrument the chain
lacks (one more ``oracle`` row for the same price), a keeper its account's liquidation at the
chain's price. The simulator's commits are final (a canonical reorg deeper than
``confirmations`` is only counted, ``sim/forks.py``): it never calls ``reverted``.

Liquidation messages compete in the same queues as every other message; nothing here
changes the network. Everything here acts when a message commits, in block order, whatever
the queue policy's ``execution_rank`` says (the ordering protocols decide the front-runners'
races, ``market/frontrun.py``). The analysis computes the market's numbers from these tables and the
messages alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from msgstorm.faults.schedule import concrete_faults
from msgstorm.market.accounts import (
    Accounts,
    Execution,
    LineCursor,
    LineIndex,
    draw_accounts,
    equity,
    execute,
    line_price_pair,
    line_prices,
    notional,
    past_line,
)
from msgstorm.market.auction_book import AuctionBook
from msgstorm.market.cross_margin import CrossMargin
from msgstorm.market.dutch import DutchAuctions
from msgstorm.market.flip import EnglishAuctions, flip_call
from msgstorm.market.funding import Funding
from msgstorm.market.keepers_budget import Budgets
from msgstorm.market.liquidation import Call, call, mechanism_of
from msgstorm.market.mark import Mark
from msgstorm.market.oracle import OracleUpdates, oracle_updates
from msgstorm.market.oracle_attack import attacked_updates
from msgstorm.market.prices import PricePaths, horizon_ns, price_paths
from msgstorm.market.probes import ProbeBook
from msgstorm.market.retry import Retry
from msgstorm.market.sentinel import Sentinel, health_factor
from msgstorm.market.venue import Venue
from msgstorm.rules.market import realised_volatility, thinned_depth
from msgstorm.rules.socialised import reline
from msgstorm.sampling import Sampler
from msgstorm.scenario.market import KeeperSpec, MarketSpec, impact_exponent
from msgstorm.scenario.registry import REACTORS
from msgstorm.scenario.schema import MESSAGE_KINDS, OracleFault, Scenario

__all__ = ["MarketReactor", "market_reactor"]

PRICE = MESSAGE_KINDS.index("price")
LIQUIDATION = MESSAGE_KINDS.index("liquidation")
# Rows of triggers and executions gathered before they go to the history writer.
_FLUSH_ROWS = 4096
# The ``venue`` table's columns, in order.
_VENUE_COLUMNS = ("t", "msg_id", "account", "kind", "amount", "size_after", "collateral_after", "fund_after")
# The probe books' seed: a child key of the reactor's seed beyond any ``spawn`` it makes.
_PROBE_KEY = 0x7072


@REACTORS.register("market")
def market_reactor(scenario: Scenario, host: Any, seed: np.random.SeedSequence) -> MarketReactor | None:
    return None if scenario.market is None else MarketReactor(scenario, scenario.market, host, seed)


@dataclasses.dataclass
class _Keeper:
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


class MarketReactor:
    wants_ranks = False  # True with a batch auction's book (below)

    def __init__(self, scenario: Scenario, market: MarketSpec, host: Any, seed: np.random.SeedSequence) -> None:
        self.scenario = scenario
        self.market = market
        self.host = host
        price_seed, account_seed, keeper_seed, topup_seed = seed.spawn(4)
        run = scenario.run
        self.paths: PricePaths = price_paths(market, run.duration + run.drain, price_seed)
        self.accounts: Accounts = draw_accounts(market, self.paths.prices[:, 0].tolist(), account_seed)
        self.updates: OracleUpdates = oracle_updates(self.paths, market.oracle, horizon_ns(run.duration))
        attacks = [spec for spec, _ in concrete_faults(scenario) if isinstance(spec, OracleFault)]
        if attacks:  # a byzantine oracle (market/oracle_attack.py)
            self.updates = attacked_updates(self.updates, self.paths, attacks)
        names = host.node_names
        self.oracle_node = 0 if market.oracle.node is None else names.index(market.oracle.node)
        index = LineIndex(self.accounts, len(market.instruments))
        self.keepers: list[_Keeper] = []
        keeper_seeds = keeper_seed.spawn(max(1, sum(spec.count for spec in market.keepers)))
        for group, spec in enumerate(market.keepers):
            nodes = self._nodes(spec)
            for i in range(spec.count):
                rng = np.random.default_rng(keeper_seeds[len(self.keepers)])
                self.keepers.append(_Keeper(f"{spec.name}-{i}", len(self.keepers), i, group, spec, nodes[i % len(nodes)], index.cursor(),
                                            Sampler(spec.reaction, rng), [0] * len(market.instruments),
                                            retry=Retry(len(self.accounts))))
        self.agents = [market.oracle.name, *(spec.name for spec in market.keepers)]
        self._keeper_named: dict[str, _Keeper] = {keeper.name: keeper for keeper in self.keepers}
        self.watched = {keeper.node for keeper in self.keepers}
        self._setup_topups(market, topup_seed)
        self.watched_kinds = {"price"} if self.watched else set()
        self.keepers_at: dict[int, list[_Keeper]] = {}
        for keeper in self.keepers:
            self.keepers_at.setdefault(keeper.node, []).append(keeper)
        # On chain: each instrument's price and the step of the true price behind it.
        self.chain_price = self.paths.prices[:, 0].tolist()
        self.chain_step = [0] * len(market.instruments)
        self.chain_row = [-1] * len(market.instruments)  # the update row of the on-chain price (-1: the first)
        # A committed price's msg_id -> the on-chain (step, price, row) it replaced, so a
        # reverted commit puts it back; kept only where commits are not final.
        self._price_before: dict[int, tuple[int, float, int]] = {}
        self.resent: list[tuple[int, int]] = []  # (msg_id, update row) of the oracle's re-sends not yet written
        self.resends = 0  # the oracle's re-sends so far
        self.liquidated = np.zeros(len(self.accounts), dtype=bool)
        self.price_of: dict[int, int] = {}  # oracle msg_id -> its row in updates
        self.liquidation_of: dict[int, tuple[int, int]] = {}  # msg_id -> (account, keeper)
        self._triggers: list[tuple[Any, ...]] = []
        self._executions: list[tuple[Any, ...]] = []
        self.msg_of_update: list[int] = []  # update row -> its msg_id
        self._oracle_written = 0  # rows of msg_of_update in the history
        # What no handler changes as plain lists (the handlers read one account at a time);
        # what they change (size, collateral, the lines) as float64 arrays, copies of the
        # drawn accounts': a socialised loss or a funding interval moves hundreds of accounts
        # at once, and a handler of one account reads its values as floats (``float(...)``).
        self._side = self.accounts.side.tolist()
        self._entry = self.accounts.entry.tolist()
        self._instrument = self.accounts.instrument.tolist()
        self._size = self.accounts.size.astype(np.float64, copy=True)
        self._collateral = self.accounts.collateral.astype(np.float64, copy=True)
        self._line = self.accounts.liquidation.astype(np.float64, copy=True)
        self._bankruptcy = self.accounts.bankruptcy.astype(np.float64, copy=True)
        self._side_array = self.accounts.side.astype(np.float64)
        self._entry_array = self.accounts.entry.astype(np.float64)
        self._instrument_array = self.accounts.instrument.astype(np.int64)
        # The liquidation mechanism (``market/liquidation.py``) and the venue's books
        # (``market/venue.py``): none for today's whole liquidations without a fund.
        self.rule = mechanism_of(market)
        self.venue: Venue | None = None
        self._venue_rows: list[tuple[Any, ...]] = []
        # A socialised loss's rows, one per account in profit, as a block of columns: (the
        # number of ``_venue_rows`` before it, t, msg_id, fund_after, and the ``Moves.block``
        # columns account, amount, size_after, collateral_after); ``_venue_columns`` puts
        # the rows and the blocks in order.
        self._venue_blocks: list[tuple[Any, ...]] = []
        # Without top-ups a socialised loss is written once (``socialised_losses``), and the
        # analysis replays its rows; ``_venue_written``: the ``venue`` rows flushed so far.
        self._losses: list[tuple[Any, ...]] = []
        self._losses_once = market.topups is None
        self._venue_written = 0
        if market.liquidation is not None and not market.liquidation.keeps_today():
            if not host.final_commits:
                raise ValueError("market.liquidation: a mechanism other than whole, or venue accounting, runs on "
                                 "simulated runs only (this host's commits may be taken back)")
            self.venue = Venue(market.liquidation, self._side, self._size, self._entry, self._collateral,
                               self._instrument, self.liquidated)
        # Cross-margin accounts (``market/cross_margin.py``): ids after the isolated accounts'.
        self.cross: CrossMargin | None = None
        if any(group.margin == "cross" for group in market.accounts):
            if not host.final_commits:
                raise ValueError("market.accounts: cross-margin accounts run on simulated runs only (this host's "
                                 "commits may be taken back)")
            self.cross = CrossMargin(market, self.rule, len(self.accounts), self.paths.prices[:, 0].tolist(),
                                     len(self.keepers), account_seed)
        # Funding (``market/funding.py``): paid every interval up to the horizon.
        self.funding: Funding | None = None
        if market.funding is not None:
            if not host.final_commits:
                raise ValueError("market.funding: funding is paid on simulated runs only (this host's commits may "
                                 "be taken back)")
            self.funding = Funding(market.funding, market, self._side, self._size, self._collateral,
                                   self._instrument, self.liquidated)  # its clock starts with the traffic
        # The mark (``market/mark.py``): liquidations judged on it, settled on the index.
        self.mark: Mark | None = None
        # The sequencer uptime guard (market/sentinel.py): none without [market.sentinel].
        self.sentinel = None if market.sentinel is None else Sentinel.of(scenario, market.sentinel)
        self._paused: list[tuple[int, int, int, int]] = []  # (pause end, msg_id, account, keeper) it blocked
        self._marks: list[tuple[int, int, int, float, float]] = []
        if market.mark is not None:
            if not host.final_commits:
                raise ValueError("market.mark: a mark price runs on simulated runs only (this host's commits may "
                                 "be taken back)")
            self.mark = Mark(market.mark, market, self._side, self._size, self._instrument, self.liquidated)
        # A book that thins with the on-chain price's realised volatility (``[market.liquidity]``):
        # per instrument, the times and log returns of its on-chain price changes.
        self.thinning = market.liquidity is not None and market.liquidity.sensitivity > 0
        if self.thinning and not host.final_commits:
            raise ValueError("market.liquidity.sensitivity: a thinning book runs on simulated runs only (this "
                             "host's commits may be taken back)")
        self._move_t: list[list[int]] = [[] for _ in market.instruments]
        self._move_r: list[list[float]] = [[] for _ in market.instruments]
        # Dutch auctions (``market/dutch.py``): the running ones, the keepers' takes in flight
        # (msg_id -> (account, keeper)) and what each keeper's take answers (its liquidation's trigger).
        self.auctions = (DutchAuctions(market.liquidation) if self.rule.auction and not self.rule.english
                         and market.liquidation else None)
        # English auctions (``market/flip.py``): the running ones and the bids in flight
        # (msg_id -> (account, keeper, quote, lot)).
        self.flips = (EnglishAuctions(market.liquidation, market.liquidation_penalty)
                      if self.rule.english and market.liquidation else None)
        self.bid_of: dict[int, tuple[int, int, float, float]] = {}
        # Keepers' gas and capital (``market/keepers_budget.py``): none when every keeper is unlimited.
        self.budgets = (Budgets([keeper.spec for keeper in self.keepers])
                        if any(spec.gas_budget is not None or spec.capital is not None for spec in market.keepers)
                        else None)
        if self.flips is not None and any(side < 0 for side in self._side):
            raise ValueError("market.liquidation: english_auction sells a long's collateral (a vault), but some "
                             "accounts are short (a loaded accounts file's side column)")
        self.take_of: dict[int, tuple[int, int]] = {}
        self._trigger_of: dict[int, tuple[int, int, float]] = {}  # liquidation msg_id -> (t seen, price msg, price)
        self._take_trigger: dict[tuple[int, int], tuple[int, int, float]] = {}
        # The batch auction's book: drawn only when a batch auction clears it.
        self.book: AuctionBook | None = None
        if market.orders is not None and scenario.sequencer.policy == "batch_auction":
            self.book = AuctionBook(scenario, market.orders, self.paths, seed.spawn(1)[0])
            self.wants_ranks = True  # committed orders learn their batch
        # Probe books (``market/probes.py``): their seed a child no spawn of ``seed`` gives,
        # so every stream above is the same with and without them.
        self.probes: ProbeBook | None = None
        if market.probes is not None:
            if not host.final_commits:
                raise ValueError("market.probes: probe books ride along simulated runs only (this host's "
                                 "commits may be taken back)")
            probe_seed = np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, _PROBE_KEY))
            self.probes = ProbeBook(market.probes, market, self.accounts, self.keepers, len(market.instruments),
                                    host, probe_seed)
        self._write_start()

    def _setup_topups(self, market: MarketSpec, seed: np.random.SeedSequence) -> None:
        """Traders who top up: each account's coin is tossed once; they watch prices at their
        node through a cursor over lines moved ``near`` towards the price (the others' lines
        are out of reach)."""
        spec = market.topups
        self.topup_node = -1
        self.topup_cursor: LineCursor | None = None
        self.topup_of: dict[int, int] = {}  # top-up msg_id -> account
        self.topping_up: set[int] = set()  # accounts that have sent theirs
        self._topups: list[tuple[Any, ...]] = []
        if spec is None or len(self.accounts) == 0:
            return
        rng = np.random.default_rng(seed)
        tops = rng.random(len(self.accounts)) < spec.probability
        self.topup_reaction = Sampler(spec.reaction, rng)
        long = self.accounts.side > 0
        near = np.where(long, self.accounts.liquidation * (1.0 + spec.near),
                        self.accounts.liquidation * (1.0 - spec.near))
        near = np.where(tops, near, np.where(long, -np.inf, np.inf))
        self.topup_cursor = LineIndex(dataclasses.replace(self.accounts, liquidation=near),
                                      len(market.instruments)).cursor()
        self.topup_node = 0 if spec.node is None else self.host.node_names.index(spec.node)
        self.agents.append(spec.name)
        self.watched.add(self.topup_node)

    def _nodes(self, spec: KeeperSpec) -> list[int]:
        names, regions = self.host.node_names, self.host.node_regions
        if spec.node is not None:
            return [names.index(spec.node)]
        if spec.region is not None:
            return [i for i, region in enumerate(regions) if region == spec.region]
        return list(range(len(names)))

    def _write_start(self) -> None:
        paths, instruments = self.paths, self.paths.names
        times = paths.times()
        self.host.append("prices", {
            "t": np.tile(times, len(instruments)),
            "instrument": [name for name in instruments for _ in range(len(times))],
            "price": paths.prices.reshape(-1)})
        columns = self.accounts.columns()
        columns["instrument"] = [instruments[i] for i in self.accounts.instrument.tolist()]
        self.host.append("accounts", columns)
        if self.cross is not None:
            self.host.append("cross_accounts", self.cross.start_columns())

    # --- before the run: the oracle's messages in the traffic ------------------------------

    def traffic(self, batches: Iterable[Any]) -> Iterator[Any]:
        """The traffic with the oracle's messages merged in by time (traffic first at equal
        times); msg_ids are given by the simulator as it takes each batch. Funding's clock
        starts here, with the run's clock."""
        if self.funding is not None:
            self.host.schedule(self.funding.spec.interval, self._fund)
        updates = self.updates
        oracle_agent = self.host.agent_index(self.market.oracle.name)
        spec = self.market.oracle
        at = 0
        held = None
        for batch in batches:
            if held is not None:
                cut = int(np.searchsorted(updates.t, int(batch.t_intended[0]), side="left"))
                yield self._merged(held, at, cut, oracle_agent, spec)
                at = cut
            held = batch
        if held is not None:
            yield self._merged(held, at, len(updates), oracle_agent, spec)
        elif len(updates):
            yield self.host.batch(**self._oracle_columns(0, len(updates), oracle_agent, spec))

    def _oracle_columns(self, first: int, end: int, agent: int, spec: Any) -> dict[str, np.ndarray]:
        n = end - first
        return {"msg_id": np.zeros(n, dtype=np.int64), "t_intended": self.updates.t[first:end],
                "agent": np.full(n, agent, dtype=np.int32), "kind": np.full(n, PRICE, dtype=np.int8),
                "node": np.full(n, self.oracle_node, dtype=np.int32),
                "key": self.updates.instrument[first:end].astype(np.int64),
                "size": np.full(n, spec.size, dtype=np.int32), "fee": np.full(n, spec.fee, dtype=np.float64)}

    def _merged(self, batch: Any, first: int, end: int, agent: int, spec: Any) -> Any:
        if end <= first:
            return batch
        oracle = self._oracle_columns(first, end, agent, spec)
        columns = {name: np.concatenate([getattr(batch, name), oracle[name]]) for name in oracle}
        order = np.argsort(columns["t_intended"], kind="stable")
        return dataclasses.replace(batch, **{name: values[order] for name, values in columns.items()})

    def numbered(self, batch: Any) -> None:
        """Map the oracle rows of a batch, in order, to the updates they carry; draw the
        limit orders of its order messages for the batch auction's book."""
        if self.book is not None:
            self.book.numbered(batch)
        oracle_agent = self.host.agent_index(self.market.oracle.name)
        ids = batch.msg_id[(batch.agent == oracle_agent) & (batch.kind == PRICE)].tolist()
        for msg_id in ids:
            self.price_of[msg_id] = len(self.msg_of_update)
            self.msg_of_update.append(msg_id)

    # --- during the run ---------------------------------------------------------------------

    def validated(self, t: int, node: int, msg_id: int) -> None:
        row = self.price_of.get(msg_id)
        if row is None:
            return
        updates = self.updates
        instrument, step = int(updates.instrument[row]), int(updates.step[row])
        price = float(updates.price[row])
        if node == self.topup_node and self.topup_cursor is not None:
            self._near_line(t, instrument, price)
        for keeper in self.keepers_at.get(node, ()):
            if step <= keeper.known_step[instrument]:
                continue  # an older price than one it has (gossip need not keep order)
            keeper.known_step[instrument] = step
            self._look(t, keeper, row, instrument, price)
            if self.cross is not None:
                self._look_cross(t, keeper, row, instrument, price)
            if self.probes is not None:
                self.probes.seen(t, keeper.index, instrument, price)

    def _look(self, t: int, keeper: _Keeper, row: int, instrument: int, price: float) -> None:
        """``keeper`` at ``price`` (update ``row``): a liquidation for each account it finds past its line
        (at the mark that index makes, with ``[market.mark]``)."""
        price = self._judged(instrument, price)
        found = keeper.cursor.past(instrument, price)
        if keeper.retry:  # the accounts to look at again that ``price`` puts past their line, in account order
            found.extend(keeper.retry.take_past(instrument, price, self._side, self._line, self._instrument,
                                                self._side_array, self._instrument_array))
        split = None if keeper.spec.race else keeper.spec.count
        for account in found:
            if self.liquidated[account] or account in keeper.pending:
                continue
            if not past_line(self._side[account], float(self._line[account]), price):
                keeper.retry.add(account)  # its line moved (a top-up): not yet
                continue
            if split is not None and account % split != keeper.member:
                continue  # another keeper of the group takes it
            keeper.pending.add(account)
            self.host.schedule(t + keeper.reaction(), self._send, account, keeper.index, row, t)

    def _look_cross(self, t: int, keeper: _Keeper, row: int, instrument: int, price: float) -> None:
        """``keeper`` at ``price``: a liquidation for each cross account below its requirement
        at the prices it has seen (``market/cross_margin.py``)."""
        assert self.cross is not None
        split = None if keeper.spec.race else keeper.spec.count
        for account in self.cross.due(keeper.index, instrument, price):
            if split is not None and account % split != keeper.member:
                continue  # another keeper of the group takes it
            self.cross.hold(keeper.index, account)
            self.host.schedule(t + keeper.reaction(), self._send_cross, account, keeper.index, row, t)

    def _send_cross(self, t: int, account: int, keeper_index: int, row: int, t_seen: int) -> None:
        assert self.cross is not None
        keeper = self.keepers[keeper_index]
        if self.cross.closed[account - self.cross.first]:  # it reads the chain before it sends
            self.cross.gave_up(keeper_index, account)
            return
        spec = keeper.spec
        fee = spec.fee_at(self.host.base_fee())
        if self.budgets is not None and not self.budgets.pay_fee(keeper_index, fee):
            self.cross.gave_up(keeper_index, account)  # out of gas: it sends nothing more
            return
        msg_id = self.host.send(t, self.host.agent_index(spec.name), "liquidation", keeper.node, account,
                                spec.size, fee)
        self.liquidation_of[msg_id] = (account, keeper_index)
        self.cross.sent(msg_id, t_seen, t)

    def _moved(self, t: int, instrument: int, price: float) -> None:
        """The on-chain price of ``instrument`` changed to ``price`` at ``t``: one more log return."""
        before = self.chain_price[instrument]
        if before > 0 and price > 0:
            self._move_t[instrument].append(t)
            self._move_r[instrument].append(math.log(price / before))

    def _depth(self, t: int, instrument: int) -> float:
        """The book's depth for a close at ``t``: the market's, thinned by the on-chain price's
        realised volatility over ``[market.liquidity] window`` (``rules.market.thinned_depth``)."""
        spec = self.market.liquidity
        if not self.thinning or spec is None:
            return self.market.depth
        volatility = realised_volatility(self._move_t[instrument], self._move_r[instrument], t, spec.window)
        return thinned_depth(self.market.depth, volatility, spec.sensitivity)

    def _judged(self, instrument: int, index_price: float) -> float:
        """The price liquidations are judged on: the mark of ``index_price`` with
        ``[market.mark]``, else the index itself."""
        return index_price if self.mark is None else self.mark.price(instrument, index_price)

    def _near_line(self, t: int, instrument: int, price: float) -> None:
        assert self.topup_cursor is not None
        for account in self.topup_cursor.past(instrument, price):
            if not self.liquidated[account] and account not in self.topping_up:
                self.topping_up.add(account)
                self.host.schedule(t + self.topup_reaction(), self._send_topup, account)

    def _send_topup(self, t: int, account: int, _b: int, _c: int, _d: int) -> None:
        spec = self.market.topups
        assert spec is not None
        if self.liquidated[account]:
            return
        msg_id = self.host.send(t, self.host.agent_index(spec.name), "order", self.topup_node, account, spec.size,
                                spec.fee)
        self.topup_of[msg_id] = account

    def _top_up(self, t: int, msg_id: int, account: int) -> None:
        """A committed top-up: collateral for ``to_leverage`` at the on-chain price, new lines."""
        spec = self.market.topups
        assert spec is not None
        amount = 0.0
        if not self.liquidated[account]:
            price = self.chain_price[self._instrument[account]]
            size, side = float(self._size[account]), self._side[account]
            now = equity(side, size, self._entry[account], float(self._collateral[account]), price)
            amount = max(0.0, notional(size, price) / spec.to_leverage - now)
            self._collateral[account] = float(self._collateral[account]) + amount
            line, bankrupt = line_prices(np.array([side]), np.array([size]), np.array([self._entry[account]]),
                                         np.array([float(self._collateral[account])]), self.market.maintenance_margin)
            self._line[account] = float(line[0])
            self._bankruptcy[account] = float(bankrupt[0])
        self._topups.append((t, msg_id, account, amount, float(self._collateral[account]),
                             float(self._line[account]), float(self._bankruptcy[account])))

    def _send(self, t: int, account: int, keeper_index: int, row: int, t_seen: int) -> None:
        keeper = self.keepers[keeper_index]
        if self.liquidated[account]:  # it reads the chain before it sends
            keeper.pending.discard(account)
            return
        spec = keeper.spec
        fee = spec.fee_at(self.host.base_fee())
        if self.budgets is not None and not self.budgets.pay_fee(keeper_index, fee):
            keeper.pending.discard(account)  # out of gas: it sends nothing more
            return
        msg_id = self.host.send(t, self.host.agent_index(spec.name), "liquidation", keeper.node, account,
                                spec.size, fee)
        self.liquidation_of[msg_id] = (account, keeper_index)
        self._triggers.append((t_seen, t, keeper.name, self.host.node_names[keeper.node], account, msg_id,
                               self.msg_of_update[row], float(self.updates.price[row])))
        if self.auctions is not None or self.flips is not None:
            self._trigger_of[msg_id] = (t_seen, self.msg_of_update[row], float(self.updates.price[row]))
        if len(self._triggers) >= _FLUSH_ROWS and self.host.final_commits:
            self._flush()

    def committed(self, t: int, msg_ids: list[int]) -> None:
        if self.book is not None:
            self.book.committed(msg_ids, self.host)
        price_of, liquidation_of = self.price_of, self.liquidation_of
        probes = self.probes
        before = list(self.chain_price) if probes is not None else []
        changes: list[tuple[int, int, float]] = []  # (position in the block, instrument, new on-chain price)
        for position, msg_id in enumerate(msg_ids):
            row = price_of.get(msg_id)
            if row is not None:
                instrument, step = int(self.updates.instrument[row]), int(self.updates.step[row])
                if step > self.chain_step[instrument]:
                    if not self.host.final_commits:
                        self._price_before[msg_id] = (self.chain_step[instrument], self.chain_price[instrument],
                                                      self.chain_row[instrument])
                    self.chain_step[instrument] = step
                    if self.thinning:
                        self._moved(t, instrument, float(self.updates.price[row]))
                    self.chain_price[instrument] = float(self.updates.price[row])
                    self.chain_row[instrument] = row
                    if probes is not None:
                        changes.append((position, instrument, self.chain_price[instrument]))
                continue
            owner = liquidation_of.pop(msg_id, None)
            if owner is not None:
                self._execute(t, msg_id, *owner)
                continue
            owner = self.take_of.pop(msg_id, None)
            if owner is not None:
                self._take(t, msg_id, *owner)
                continue
            bid = self.bid_of.pop(msg_id, None)
            if bid is not None:
                self._bid_committed(t, msg_id, *bid)
                continue
            account = self.topup_of.pop(msg_id, None)
            if account is not None:
                self._top_up(t, msg_id, account)
        if self._paused and t >= min(entry[0] for entry in self._paused):
            self._unpause(t)
        if probes is not None:
            probes.committed(t, msg_ids, before, changes)

    def _execute(self, t: int, msg_id: int, account: int, keeper_index: int) -> None:
        keeper = self.keepers[keeper_index]
        if self.cross is not None and self.cross.owns(account):
            depths = [self._depth(t, instrument) for instrument in range(len(self.chain_price))]
            self.cross.execute(t, msg_id, account, keeper_index, keeper.name, self.chain_price, depths)
            return
        keeper.pending.discard(account)
        instrument = self._instrument[account]
        price = self.chain_price[instrument]
        t_price = self.chain_step[instrument] * self.paths.resolution_ns
        trigger = self._trigger_of.pop(msg_id, None)  # what a Dutch auction's take will answer
        judged = price
        if self.mark is not None and not self.liquidated[account]:
            judged = self.mark.price(instrument, price)
            self._marks.append((t, msg_id, account, price, judged))
        sentinel = self.sentinel
        if sentinel is not None and not self.liquidated[account] and past_line(self._side[account],
                                                                                float(self._line[account]), judged):
            until = sentinel.blocked_until(t, health_factor(float(self._line[account]),
                                                            float(self._bankruptcy[account]), price))
            if until is not None:  # paused by the uptime guard: the keeper calls again when it lifts
                self._executions.append((t, msg_id, account, keeper.name, "blocked", price, t_price, 0.0, 0.0, 0.0,
                                         0.0, float(self._collateral[account]), 0.0))
                self._paused.append((until, msg_id, account, keeper_index))
                return
        done: Execution
        if self.liquidated[account] or not past_line(self._side[account], float(self._line[account]), judged):
            if self.liquidated[account]:
                outcome = "already_liquidated"
            else:
                outcome = "recovered"
                keeper.retry.add(account)
            # A no-op realises nothing: the account keeps its collateral.
            done = Execution(price, 0.0, 0.0, 0.0, 0.0, float(self._collateral[account]), 0.0)
        elif self.venue is None:
            market = self.market
            outcome = "executed"
            done = execute(self._side[account], float(self._size[account]), self._entry[account],
                           float(self._collateral[account]), price, market.liquidation_penalty, market.slippage_bps, self._depth(t, instrument),
                           impact_exponent(market))
            self.liquidated[account] = True
        elif self.auctions is not None and trigger is not None:
            outcome, done = self._bark(t, account, keeper, price, trigger)
        elif self.flips is not None and trigger is not None:
            outcome, done = self._kick(t, account, keeper, price, trigger)
        else:
            outcome, done = self._call(t, msg_id, account, keeper, price)
        self._executions.append((t, msg_id, account, keeper.name, outcome, price, t_price, done.pnl, done.penalty,
                                 done.slippage, done.slippage_bps, done.collateral_after, done.bad_debt))
        if len(self._executions) >= _FLUSH_ROWS and self.host.final_commits:
            self._flush()

    def _unpause(self, t: int) -> None:
        """The first block at or after the uptime guard's pause ends: the liquidations it
        blocked execute in it, in the order they were blocked, after its price updates."""
        due = [entry for entry in self._paused if entry[0] <= t]
        self._paused = [entry for entry in self._paused if entry[0] > t]
        for _until, msg_id, account, keeper_index in due:
            self._execute(t, msg_id, account, keeper_index)

    def _call(self, t: int, msg_id: int, account: int, keeper: _Keeper, price: float) -> tuple[str, Execution]:
        """A liquidation call by the scenario's mechanism, through the venue's books: its
        outcome (``executed``: closed whole; ``partial``: left open; ``recovered``: nothing
        to close) and its ``executions`` row's account."""
        assert self.venue is not None
        collateral = float(self._collateral[account])
        done = call(self.rule, self._side[account], float(self._size[account]), self._entry[account],
                    collateral, price, self._depth(t, self._instrument[account]))
        if done.closed <= 0:
            keeper.retry.add(account)
            return "recovered", Execution(price, 0.0, 0.0, 0.0, 0.0, collateral, 0.0)
        bad_debt = self._book(t, msg_id, account, done)
        instrument = self._instrument[account]
        row = self.chain_row[instrument]
        if (not done.whole and self.rule.repeats and row >= 0
                and past_line(self._side[account], float(self._line[account]), self._judged(instrument, price))):
            self._look(t, keeper, row, instrument, price)  # a lending market's keeper calls again
        return ("executed" if done.whole else "partial"), Execution(
            price, done.pnl, done.penalty, done.slippage, done.slippage_bps, done.collateral_after, bad_debt)

    def _bark(self, t: int, account: int, keeper: _Keeper, price: float,
              trigger: tuple[int, int, float]) -> tuple[str, Execution]:
        """A keeper's liquidation (its ``trigger``) committed under ``dutch_auction``: it
        starts the account's auction (or finds it running), and the keeper takes when the
        price suits it."""
        assert self.auctions is not None
        if account not in self.auctions.running:
            self.auctions.start(account, self._side[account], t, price)
        self._take_trigger[(account, keeper.index)] = trigger
        self._schedule_take(t, account, keeper)
        return "auction", Execution(price, 0.0, 0.0, 0.0, 0.0, float(self._collateral[account]), 0.0)

    def _schedule_take(self, t: int, account: int, keeper: _Keeper) -> None:
        assert self.auctions is not None
        when = self.auctions.take_at_ns(self._side[account], self.auctions.running[account])
        if when is not None:
            keeper.pending.add(account)  # it takes; it sends no other liquidation for the account
            self.host.schedule(max(t, when), self._send_take, account, keeper.index, 0, 0)

    def _send_take(self, t: int, account: int, keeper_index: int, _c: int, _d: int) -> None:
        keeper = self.keepers[keeper_index]
        if self.liquidated[account]:
            keeper.pending.discard(account)
            return
        spec = keeper.spec
        fee = spec.fee_at(self.host.base_fee())
        if self.budgets is not None and not self.budgets.pay_fee(keeper_index, fee):
            keeper.pending.discard(account)
            return
        msg_id = self.host.send(t, self.host.agent_index(spec.name), "liquidation", keeper.node, account, spec.size,
                                fee)
        self.take_of[msg_id] = (account, keeper_index)
        t_seen, price_msg_id, price_seen = self._take_trigger[(account, keeper_index)]
        self._triggers.append((t_seen, t, keeper.name, self.host.node_names[keeper.node], account, msg_id,
                               price_msg_id, price_seen))

    def _take(self, t: int, msg_id: int, account: int, keeper_index: int) -> None:
        """A keeper's take committed: the auction's price now closes the position, unless
        another take did first, or the auction is stale (it resets, and the keeper takes again)."""
        assert self.auctions is not None and self.venue is not None
        keeper = self.keepers[keeper_index]
        keeper.pending.discard(account)
        instrument = self._instrument[account]
        chain = self.chain_price[instrument]
        t_price = self.chain_step[instrument] * self.paths.resolution_ns
        auction = self.auctions.running.get(account)
        done = Execution(chain, 0.0, 0.0, 0.0, 0.0, float(self._collateral[account]), 0.0)
        if self.liquidated[account] or auction is None:
            outcome = "already_liquidated"
        elif self.auctions.stale(auction, t):
            outcome = "reset"
            self.auctions.start(account, self._side[account], t, chain)
            self._schedule_take(t, account, keeper)
        else:
            price = self.auctions.price(self._side[account], auction, t)
            taken = call(self.rule, self._side[account], float(self._size[account]), self._entry[account],
                         float(self._collateral[account]), price)
            bad_debt = self._book(t, msg_id, account, taken)
            del self.auctions.running[account]
            outcome = "executed"
            done = Execution(price, taken.pnl, taken.penalty, taken.slippage, taken.slippage_bps,
                             taken.collateral_after, bad_debt)
        self._executions.append((t, msg_id, account, keeper.name, outcome, done.price, t_price, done.pnl, done.penalty,
                                 done.slippage, done.slippage_bps, done.collateral_after, done.bad_debt))

    # --- English auctions (market/flip.py) ---------------------------------------------------

    def _kick(self, t: int, account: int, keeper: _Keeper, price: float,
              trigger: tuple[int, int, float]) -> tuple[str, Execution]:
        """A keeper's liquidation committed under ``english_auction``: it starts the
        account's auction (or finds it running), and the keeper bids ``reaction`` later."""
        assert self.flips is not None
        flip = self.flips.running.get(account)
        if flip is None:
            size, collateral = float(self._size[account]), float(self._collateral[account])
            flip = self.flips.kick(account, t, size, size * self._entry[account] - collateral)
            self.host.schedule(flip.end, self._deal, account)
        flip.bidders.add(keeper.index)
        keeper.pending.add(account)  # it bids; it sends no other liquidation for the account
        self._take_trigger[(account, keeper.index)] = trigger
        self.host.schedule(t + keeper.reaction(), self._send_bid, account, keeper.index)
        return "auction", Execution(price, 0.0, 0.0, 0.0, 0.0, float(self._collateral[account]), 0.0)

    def _send_bid(self, t: int, account: int, keeper_index: int, _c: int, _d: int) -> None:
        """The keeper's best bid now, if it beats the standing one (and it is not its own)."""
        assert self.flips is not None
        flip = self.flips.running.get(account)
        if flip is None or not self.flips.live(flip, t) or flip.guy == keeper_index or keeper_index in flip.in_flight:
            return
        keeper = self.keepers[keeper_index]
        spec = keeper.spec
        proposal = self.flips.proposal(flip, spec.bid_value(self.paths.at(self._instrument[account], t)))
        if proposal is None:
            return
        fee = spec.fee_at(self.host.base_fee())
        budgets = self.budgets
        if budgets is not None:  # it bids only what it can pay for and lock
            if not budgets.can_pay(keeper_index, fee) or not budgets.lock(keeper_index, proposal[0]):
                return
            budgets.pay_fee(keeper_index, fee)
        msg_id = self.host.send(t, self.host.agent_index(spec.name), "liquidation", keeper.node, account, spec.size,
                                fee)
        flip.in_flight.add(keeper_index)
        self.bid_of[msg_id] = (account, keeper_index, *proposal)
        t_seen, price_msg_id, price_seen = self._take_trigger[(account, keeper_index)]
        self._triggers.append((t_seen, t, keeper.name, self.host.node_names[keeper.node], account, msg_id,
                               price_msg_id, price_seen))

    def _bid_committed(self, t: int, msg_id: int, account: int, keeper_index: int, bid: float, lot: float) -> None:
        """A bid committed: it stands if still valid (outcome ``bid``; the auction's close
        moves to ``ttl`` from now and the other bidders answer), else ``outbid`` (the keeper
        tries again ``reaction`` later)."""
        assert self.flips is not None
        keeper = self.keepers[keeper_index]
        instrument = self._instrument[account]
        t_price = self.chain_step[instrument] * self.paths.resolution_ns
        flip = self.flips.running.get(account)
        if flip is not None:
            flip.in_flight.discard(keeper_index)
        standing = (flip.guy, flip.bid) if flip is not None else (-1, 0.0)
        if flip is None or self.liquidated[account]:
            outcome = "already_liquidated"
        elif self.flips.place(flip, keeper_index, msg_id, bid, lot, t):
            outcome = "bid"
            if self.budgets is not None and standing[0] >= 0:
                self.budgets.release(standing[0], standing[1])  # the outbid keeper's quote is free again
            self.host.schedule(self.flips.closes_at(flip), self._deal, account)
            for other in sorted(flip.bidders - {keeper_index} - flip.in_flight):
                self.host.schedule(t + self.keepers[other].reaction(), self._send_bid, account, other)
        else:
            outcome = "outbid"
            if self.flips.live(flip, t):
                self.host.schedule(t + keeper.reaction(), self._send_bid, account, keeper_index)
        if outcome != "bid" and self.budgets is not None:
            self.budgets.release(keeper_index, bid)  # it did not stand: its quote is free again
        price = bid / lot if lot > 0 else 0.0
        self._executions.append((t, msg_id, account, keeper.name, outcome, price, t_price, 0.0, 0.0, 0.0, 0.0,
                                 float(self._collateral[account]), 0.0))

    def _deal(self, t: int, account: int, _b: int, _c: int, _d: int) -> None:
        """The auction's close, when due: the standing bid wins (outcome ``executed`` on its
        message); without one it restarts for another ``tau`` (Maker's ``tick``)."""
        assert self.flips is not None
        flip = self.flips.running.get(account)
        if flip is None or t < self.flips.closes_at(flip):
            return  # a later bid moved the close
        if flip.guy < 0:
            flip.end = t + self.flips.spec.tau
            self.host.schedule(flip.end, self._deal, account)
            return
        del self.flips.running[account]
        instrument = self._instrument[account]
        price = self.chain_price[instrument]  # what the units given back are worth
        done = flip_call(self.rule, float(self._size[account]), self._entry[account], float(self._collateral[account]),
                         flip.bid,
                         flip.lot, price, self._depth(t, instrument))
        bad_debt = self._book(t, flip.msg_id, account, done)
        assert self.venue is not None  # what the lot was worth at the close, and the owner's share of it back
        for kind, amount in (("auctioned", flip.size * price), ("returned", (flip.size - flip.lot) * price)):
            self._venue_rows.append((t, flip.msg_id, account, kind, amount, 0.0, float(self._collateral[account]),
                                     self.venue.fund))
        winner = self.keepers[flip.guy]
        for bidder in flip.bidders:
            self.keepers[bidder].pending.discard(account)
        self._executions.append((t, flip.msg_id, account, winner.name, "executed", done.price,
                                 self.chain_step[instrument] * self.paths.resolution_ns, done.pnl, done.penalty, 0.0,
                                 0.0, done.collateral_after, bad_debt))

    def _book(self, t: int, msg_id: int, account: int, done: Call) -> float:
        """The venue's books take a call (``venue`` rows); the accounts they moved get new
        lines and every keeper looks at them again. The bad debt left."""
        assert self.venue is not None
        moves, bad_debt = self.venue.book(account, done)
        rows = len(moves.rows)
        self._venue_rows.extend([(t, msg_id, *row) for row in moves.rows])
        liquidated = self.liquidated
        block = moves.block
        touched: list[int] | np.ndarray
        if block is None and not moves.others:  # only the call's own account's rows
            touched = [] if liquidated[account] else [account]
        elif block is None:  # a call's own rows and deleveraged accounts': as rows
            touched = sorted({row[0] for row in moves.rows if not liquidated[row[0]]})
        else:  # a socialised loss: a row for every account in profit, a block of columns
            charged, amount, size_after, collateral_after, fund = block
            at = len(self._venue_rows) - rows + moves.block_at
            if self._losses_once:
                assert moves.loss is not None
                price, shared, total = moves.loss
                self._losses.append((t, msg_id, account, self.paths.names[self._instrument[account]], price,
                                     shared, total, len(charged), fund, self._venue_written + at))
            else:
                self._venue_blocks.append((at, t, msg_id, fund, charged, amount, size_after, collateral_after))
            # The charged accounts (open, by account) and any other the call's rows name still open.
            touched = charged[~liquidated[charged]]
            others = sorted({row[0] for row in moves.rows if not liquidated[row[0]]})
            if others:
                touched = np.union1d(touched, np.asarray(others, dtype=np.int64))
        if len(touched):  # a partial close, deleveraging or a socialised charge moved their lines
            self._reline(touched)
            for watcher in self.keepers:
                watcher.retry.update(touched)
        return bad_debt

    def _venue_columns(self) -> dict[str, Any]:
        """The rows and the blocks in order as one set of ``venue`` columns (numpy, and
        ``kind`` an Arrow string array), both emptied."""
        import pyarrow as pa  # here: a run without a venue loads no Arrow (tests/test_startup.py)

        rows, self._venue_rows = self._venue_rows, []
        blocks, self._venue_blocks = self._venue_blocks, []
        if rows and not blocks:  # rows only (a run that records its socialised losses once): the columns as they are
            by_column = list(zip(*rows, strict=True))
            plain: dict[str, Any] = {name: np.asarray(column, dtype=dtype) for name, column, dtype in zip(
                _VENUE_COLUMNS, by_column, (np.int64, np.int64, np.int64, None, np.float64, np.float64, np.float64,
                                            np.float64), strict=True) if dtype is not None}
            plain["kind"] = pa.array(by_column[3], pa.string())
            return plain
        sizes = np.array([len(block[4]) for block in blocks], dtype=np.int64)
        before = np.array([block[0] for block in blocks], dtype=np.int64)  # rows before each block
        # Where each row and each block goes: past the rows and the blocks before it.
        blocks_before = np.concatenate([[0], np.cumsum(sizes)])
        row_at = np.arange(len(rows), dtype=np.int64)
        row_at += blocks_before[np.searchsorted(before, row_at, side="right")]
        block_at = (before + blocks_before[:-1]).tolist()
        total = len(rows) + int(blocks_before[-1])
        names = ["socialised"]
        code = {"socialised": 0}
        kinds = np.zeros(total, dtype=np.int32)
        columns: dict[str, Any] = {}
        by_name = dict(zip(_VENUE_COLUMNS, zip(*rows, strict=True), strict=True)) if rows else {}
        for name, dtype, at in (("t", np.int64, 1), ("msg_id", np.int64, 2), ("account", np.int64, 4),
                                ("amount", np.float64, 5), ("size_after", np.float64, 6),
                                ("collateral_after", np.float64, 7), ("fund_after", np.float64, 3)):
            column = np.empty(total, dtype=dtype)
            if rows:
                column[row_at] = np.asarray(by_name[name], dtype=dtype)
            for block, start, size in zip(blocks, block_at, sizes.tolist(), strict=True):
                column[start:start + size] = block[at]
            columns[name] = column
        if rows:
            kinds[row_at] = [code.setdefault(kind, len(code)) for kind in by_name["kind"]]
            names = list(code)
        columns["kind"] = pa.DictionaryArray.from_arrays(pa.array(kinds), pa.array(names, pa.string())).cast(
            pa.string())
        return columns

    def _fund(self, t: int, _a: int, _b: int, _c: int, _d: int) -> None:
        """An interval's funding at the on-chain (index) prices: ``venue`` rows of kind
        ``funding`` (no message: ``msg_id`` -1); the accounts it moved get new lines."""
        assert self.funding is not None
        if t > horizon_ns(self.scenario.run.duration):
            return
        fund = self.venue.fund if self.venue is not None else 0.0
        payments = self.funding.pay(self.chain_price)
        for paid in payments:
            self._venue_rows.append((t, -1, paid.account, "funding", paid.amount, paid.size_after,
                                     paid.collateral_after, fund))
        if payments:
            touched = sorted({paid.account for paid in payments})
            self._reline(touched)
            for watcher in self.keepers:
                watcher.retry.update([paid.account for paid in payments if paid.amount < 0])
        self.host.schedule(t + self.funding.spec.interval, self._fund)

    def _reline(self, accounts: list[int] | np.ndarray) -> None:
        """``accounts``' lines from their size and collateral now (open accounts: size above 0)."""
        maintenance = self.market.maintenance_margin
        if len(accounts) > 16:  # a socialised loss moves every account in profit: at once, compiled
            reline(self._side_array, self._size, self._entry_array, self._collateral, maintenance,
                   np.asarray(accounts, dtype=np.int64), self._line, self._bankruptcy)
            return
        side, size, entry, collateral = self._side, self._size, self._entry, self._collateral
        for account in accounts:  # one account (a partial close): plain floats cost less than numpy's
            self._line[account], self._bankruptcy[account] = line_price_pair(
                side[account], float(size[account]), entry[account], float(collateral[account]), maintenance)

    # --- a chain that lost its newest blocks ------------------------------------------------

    def reverted(self, t: int, undone: list[int], gone: list[int]) -> None:
        """The chain lost blocks (see the module's docstring): ``undone``, the messages whose
        commits it no longer holds, in block order; ``gone``, messages that will never reach
        it (its pool emptied, or sent while its node was down), which their agents send again."""
        for msg_id in reversed(undone):
            before = self._price_before.pop(msg_id, None)
            if before is not None:
                instrument = int(self.updates.instrument[self.price_of[msg_id]])
                self.chain_step[instrument], self.chain_price[instrument], self.chain_row[instrument] = before
                continue
            at = self._execution_at(msg_id)
            if at is not None:
                execution = self._executions[at]
                account, keeper = int(execution[2]), self._keeper_named[execution[3]]
                if execution[4] == "executed":
                    self.liquidated[account] = False
                self._executions[at] = (*execution[:4], "reverted", *execution[5:])
                self.liquidation_of[msg_id] = (account, keeper.index)  # it executes again if the chain takes it again
                keeper.pending.add(account)
        newest: dict[int, int] = {}  # instrument -> the newest update row among the gone prices
        for msg_id in gone:
            update = self.price_of.get(msg_id)
            if update is not None:
                instrument = int(self.updates.instrument[update])
                newest[instrument] = max(update, newest.get(instrument, -1))
                continue
            owner = self.liquidation_of.pop(msg_id, None)
            if owner is not None:
                account, keeper_index = owner
                keeper = self.keepers[keeper_index]
                keeper.pending.discard(account)
                keeper.retry.add(account)  # sent again at the chain's price, below, or a later one
        for keeper in self.keepers:  # it knows the reloaded head: a price the chain lost is new again
            keeper.known_step = [min(known, chain) for known, chain in zip(keeper.known_step, self.chain_step,
                                                                            strict=True)]
        self._resend_prices(t, newest)
        for keeper in self.keepers:
            for instrument, row in enumerate(self.chain_row):
                if keeper.retry and row >= 0:
                    self._look(t, keeper, row, instrument, self.chain_price[instrument])

    def _execution_at(self, msg_id: int) -> int | None:
        """The index of ``msg_id``'s ``executions`` row still held (the newest first: a
        reverted commit is among the last)."""
        for at in range(len(self._executions) - 1, -1, -1):
            if self._executions[at][1] == msg_id and self._executions[at][4] != "reverted":
                return at
        return None

    def _resend_prices(self, t: int, newest: dict[int, int]) -> None:
        """The oracle sends again each instrument's price in ``newest`` (update rows) when it
        is still its newest published one and newer than the chain's."""
        if not newest:
            return
        spec = self.market.oracle
        updates = self.updates
        due = int(np.searchsorted(updates.t, t, side="right"))
        for instrument, row in sorted(newest.items()):
            published = np.flatnonzero(updates.instrument[:due] == instrument)
            if not published.size or int(published[-1]) != row or int(updates.step[row]) <= self.chain_step[instrument]:
                continue
            msg_id = self.host.send(t, self.host.agent_index(spec.name), "price", self.oracle_node, instrument,
                                    spec.size, spec.fee)
            self.price_of[msg_id] = row
            self.resent.append((msg_id, row))
            self.resends += 1

    # --- the end -----------------------------------------------------------------------------

    def _flush(self) -> None:
        host = self.host
        if self._triggers:
            columns = list(zip(*self._triggers, strict=True))
            host.append("triggers", dict(zip(
                ("t", "t_sent", "keeper", "node", "account", "msg_id", "price_msg_id", "price_seen"),
                (list(column) for column in columns), strict=True)))
            self._triggers = []
        if self._executions:
            columns = list(zip(*self._executions, strict=True))
            host.append("executions", dict(zip(
                ("t", "msg_id", "account", "keeper", "outcome", "price", "t_price", "pnl", "penalty", "slippage",
                 "slippage_bps", "collateral_after", "bad_debt"), (list(column) for column in columns), strict=True)))
            self._executions = []
        if self._venue_rows or self._venue_blocks:
            venue = self._venue_columns()
            self._venue_written += len(venue["t"])
            host.append("venue", venue)
        if self._losses:
            host.append("socialised_losses", dict(zip(
                ("t", "msg_id", "account", "instrument", "price", "charged", "total", "accounts", "fund_after",
                 "venue_row"), (list(column) for column in zip(*self._losses, strict=True)), strict=True)))
            self._losses = []
        cross = self.cross.take_rows() if self.cross is not None else None
        if cross is not None:
            host.append("cross_executions", cross)
        if self._marks:
            columns = list(zip(*self._marks, strict=True))
            host.append("marks", dict(zip(("t", "msg_id", "account", "index", "mark"),
                                          (list(column) for column in columns), strict=True)))
            self._marks = []
        if self._topups:
            columns = list(zip(*self._topups, strict=True))
            host.append("topups", dict(zip(
                ("t", "msg_id", "account", "amount", "collateral_after", "liquidation_price", "bankruptcy_price"),
                (list(column) for column in columns), strict=True)))
            self._topups = []
        first, end = self._oracle_written, len(self.msg_of_update)
        if end > first:
            names = self.paths.names
            # The true price behind each message and its time (what a byzantine oracle
            # publishes may differ in both; an honest one publishes exactly these).
            instruments, steps = self.updates.instrument[first:end], self.updates.step[first:end]
            self.host.append("oracle", {
                "msg_id": self.msg_of_update[first:end],
                "instrument": [names[i] for i in instruments.tolist()],
                "price": self.paths.prices[instruments, steps], "t_price": steps * np.int64(self.paths.resolution_ns),
                "published": self.updates.price[first:end], "t_published": self.updates.t[first:end]})
            self._oracle_written = end
        if self.resent:  # the oracle's re-sends: the same update, another message
            rows = np.array([row for _, row in self.resent], dtype=np.int64)
            instruments, steps = self.updates.instrument[rows], self.updates.step[rows]
            self.host.append("oracle", {
                "msg_id": [msg_id for msg_id, _ in self.resent],
                "instrument": [self.paths.names[i] for i in instruments.tolist()],
                "price": self.paths.prices[instruments, steps], "t_price": steps * np.int64(self.paths.resolution_ns),
                "published": self.updates.price[rows], "t_published": self.updates.t[rows]})
            self.resent = []

    def finish(self, t_end: int) -> None:
        self._flush()
        if self.probes is not None:
            self.probes.flush()
        if self.book is not None:
            self.book.finish(self.host)
