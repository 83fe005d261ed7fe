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
``live/chain/target.py``) says so with ``reverted``: the commits it no longer holds are taken
back and what will never reach it is sent again (``market/reactor_revert.py``). The
simulator's commits are final: it never calls ``reverted``.

Liquidation messages compete in the same queues as every other message; nothing here
changes the network. Everything here acts when a message commits, in block order, whatever
the queue policy's ``execution_rank`` says (the ordering protocols decide the front-runners'
races, ``market/frontrun.py``). The analysis computes the market's numbers from these tables and the
messages alone.

The reactor's parts, by role: here, the keepers' looks and sends and the commits (the
per-message path, kept in one class: nothing between a handler and the state it changes);
the auctions' steps (``market/reactor_auctions.py``: Dutch bark and take, English kick, bids
and deal), a chain that lost blocks (``market/reactor_revert.py``) and the history's rows and
their flush (``market/reactor_rows.py``), mixed in, sharing the state ``market/reactor_state.py``
declares; the oracle's messages in the traffic (``oracle.with_oracle``), top-ups
(``market/topups.py``), the venue's books, funding, the mark, cross accounts and probe books
as the objects it holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from msgstorm.faults.schedule import concrete_faults
from msgstorm.history.outcomes import Outcome
from msgstorm.market.accounts import (
    Accounts,
    Execution,
    draw_accounts,
    execute,
    past_line,
    relined,
)
from msgstorm.market.auction_book import AuctionBook
from msgstorm.market.cross_margin import CrossMargin
from msgstorm.market.dutch import DutchAuctions
from msgstorm.market.flip import EnglishAuctions
from msgstorm.market.funding import Funding
from msgstorm.market.keepers_budget import Budgets
from msgstorm.market.liquidation import Call, Mechanism, call, mechanism_of
from msgstorm.market.mark import Mark
from msgstorm.market.nonces import Nonces
from msgstorm.market.oracle import OracleUpdates, oracle_updates, with_oracle
from msgstorm.market.oracle_attack import attacked_updates
from msgstorm.market.prices import PricePaths, horizon_ns, price_paths
from msgstorm.market.probes import ProbeBook
from msgstorm.market.reactor_auctions import DutchAuctionSteps, EnglishAuctionSteps
from msgstorm.market.reactor_revert import RevertedChain
from msgstorm.market.reactor_rows import HistoryRows
from msgstorm.market.reactor_state import Keeper, build_keepers
from msgstorm.market.sentinel import Sentinel, health_factor
from msgstorm.market.topups import TopUps
from msgstorm.market.venue import Venue, moved_open
from msgstorm.rules.market import realised_volatility, thinned_depth
from msgstorm.scenario.market import MarketSpec, impact_exponent
from msgstorm.scenario.registry import REACTORS
from msgstorm.scenario.schema import MESSAGE_KINDS, OracleFault, Scenario

__all__ = ["MarketReactor", "market_reactor"]

PRICE = MESSAGE_KINDS.index("price")
LIQUIDATION = MESSAGE_KINDS.index("liquidation")
# Rows of triggers and executions gathered before they go to the history writer.
_FLUSH_ROWS = 4096
# The probe books' seed: a child key of the reactor's seed beyond any ``spawn`` it makes.
_PROBE_KEY = 0x7072


@REACTORS.register("market")
def market_reactor(scenario: Scenario, host: Any, seed: np.random.SeedSequence) -> MarketReactor | None:
    return None if scenario.market is None else MarketReactor(scenario, scenario.market, host, seed)


def _simulated_only(host: Any, said: str) -> None:
    """Refuse a part of the market on a host whose commits may be taken back (a chain node):
    ``said`` names the field and what it does, up to "simulated runs only"."""
    if not host.final_commits:
        raise ValueError(f"{said} simulated runs only (this host's commits may be taken back)")


def _english_auctions(market: MarketSpec, rule: Mechanism, accounts: int,
                      keepers: list[Keeper]) -> tuple[EnglishAuctions | None, Nonces | None]:
    """The English auctions' state (none under another mechanism) and the keepers' nonces
    (none unless a keeper group sets ``nonce_order``)."""
    flips = None
    if rule.english and market.liquidation is not None:
        names = [instrument.name for instrument in market.instruments]
        flips = EnglishAuctions(market.liquidation, market.liquidation_penalty, names, accounts)
    nonces = (Nonces([keeper.spec.nonce_order for keeper in keepers])
              if any(spec.nonce_order for spec in market.keepers) else None)
    return flips, nonces


class MarketReactor(DutchAuctionSteps, EnglishAuctionSteps, RevertedChain, HistoryRows):
    """The market's agents during a run (the module's docstring); its parts are the mixins
    above (``market/reactor_state.py`` says what they share) and the objects it holds."""

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
        self.keepers: list[Keeper] = build_keepers(market, host, self.accounts, keeper_seed)
        self.agents = [market.oracle.name, *(spec.name for spec in market.keepers)]
        self._keeper_named: dict[str, Keeper] = {keeper.name: keeper for keeper in self.keepers}
        self.watched = {keeper.node for keeper in self.keepers}
        self.keepers_at: dict[int, list[Keeper]] = {}
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
        self.msg_of_update: list[int] = []  # update row -> its msg_id
        self._start_rows(losses_once=market.topups is None)  # the history's rows (market/reactor_rows.py)
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
        # Traders who top up (``market/topups.py``): they watch prices at their node too.
        self.topups: TopUps | None = None
        if market.topups is not None and len(self.accounts):
            self.topups = TopUps(market.topups, market, self.accounts, host, topup_seed, self._side, self._size,
                                 self._entry, self._collateral, self._line, self._bankruptcy, self._instrument,
                                 self.liquidated, self.chain_price)
            self.agents.append(market.topups.name)
            self.watched.add(self.topups.node)
        self.watched_kinds = {"price"} if self.watched else set()
        # The liquidation mechanism (``market/liquidation.py``) and the venue's books
        # (``market/venue.py``): none for today's whole liquidations without a fund.
        self.rule = mechanism_of(market)
        self.venue: Venue | None = None
        if market.liquidation is not None and not market.liquidation.keeps_today():
            _simulated_only(host, "market.liquidation: a mechanism other than whole, or venue accounting, "
                                  "runs on")
            self.venue = Venue(market.liquidation, self._side, self._size, self._entry, self._collateral,
                               self._instrument, self.liquidated)
        # Cross-margin accounts (``market/cross_margin.py``): ids after the isolated accounts'.
        self.cross: CrossMargin | None = None
        if any(group.margin == "cross" for group in market.accounts):
            _simulated_only(host, "market.accounts: cross-margin accounts run on")
            self.cross = CrossMargin(market, self.rule, len(self.accounts), self.paths.prices[:, 0].tolist(),
                                     len(self.keepers), account_seed)
        # Funding (``market/funding.py``): paid every interval up to the horizon.
        self.funding: Funding | None = None
        if market.funding is not None:
            _simulated_only(host, "market.funding: funding is paid on")
            self.funding = Funding(market.funding, market, self._side, self._size, self._collateral,
                                   self._instrument, self.liquidated)  # its clock starts with the traffic
        # The mark (``market/mark.py``): liquidations judged on it, settled on the index.
        self.mark: Mark | None = None
        # The sequencer uptime guard (market/sentinel.py): none without [market.sentinel].
        self.sentinel = None if market.sentinel is None else Sentinel.of(scenario, market.sentinel)
        self._paused: list[tuple[int, int, int, int]] = []  # (pause end, msg_id, account, keeper) it blocked
        if market.mark is not None:
            _simulated_only(host, "market.mark: a mark price runs on")
            self.mark = Mark(market.mark, market, self._side, self._size, self._instrument, self.liquidated)
        # A book that thins with the on-chain price's realised volatility (``[market.liquidity]``):
        # per instrument, the times and log returns of its on-chain price changes.
        self.thinning = market.liquidity is not None and market.liquidity.sensitivity > 0
        if self.thinning:
            _simulated_only(host, "market.liquidity.sensitivity: a thinning book runs on")
        self._move_t: list[list[int]] = [[] for _ in market.instruments]
        self._move_r: list[list[float]] = [[] for _ in market.instruments]
        # Dutch auctions (``market/dutch.py``): the running ones, the keepers' takes in flight
        # (msg_id -> (account, keeper)) and what each keeper's take answers (its liquidation's trigger).
        self.auctions = (DutchAuctions(market.liquidation) if self.rule.auction and not self.rule.english
                         and market.liquidation else None)
        # English auctions (``market/flip.py``): the running ones and the bids in flight
        # (msg_id -> (lot, keeper, quote, units)); keepers in nonce order (``market/nonces.py``).
        self.flips, self.nonces = _english_auctions(market, self.rule, len(self.accounts),
                                                    self.keepers)
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
            _simulated_only(host, "market.probes: probe books ride along")
            probe_seed = np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, _PROBE_KEY))
            self.probes = ProbeBook(market.probes, market, self.accounts, self.keepers, len(market.instruments),
                                    host, probe_seed)
        self._write_start()

    # --- before the run: the oracle's messages in the traffic ------------------------------

    def traffic(self, batches: Iterable[Any]) -> Iterator[Any]:
        """The traffic with the oracle's messages merged in (``oracle.with_oracle``); msg_ids
        are given by the simulator as it takes each batch. Funding's clock starts here, with
        the run's clock."""
        if self.funding is not None:
            self.host.schedule(self.funding.spec.interval, self._fund)
        yield from with_oracle(batches, self.updates, self.market.oracle, self.oracle_node, self.host)

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
        topups = self.topups
        if topups is not None and node == topups.node:
            topups.near_line(t, instrument, price)
        for keeper in self.keepers_at.get(node, ()):
            if step <= keeper.known_step[instrument]:
                continue  # an older price than one it has (gossip need not keep order)
            keeper.known_step[instrument] = step
            self._look(t, keeper, row, instrument, price)
            if self.cross is not None:
                self._look_cross(t, keeper, row, instrument, price)
            if self.probes is not None:
                self.probes.seen(t, keeper.index, instrument, price)

    def _look(self, t: int, keeper: Keeper, row: int, instrument: int, price: float) -> None:
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
            self.host.schedule_send(t + keeper.reaction(), self._send, account, keeper.index, row,
                                    t)

    def _look_cross(self, t: int, keeper: Keeper, row: int, instrument: int, price: float) -> None:
        """``keeper`` at ``price``: a liquidation for each cross account below its requirement
        at the prices it has seen (``market/cross_margin.py``)."""
        assert self.cross is not None
        split = None if keeper.spec.race else keeper.spec.count
        for account in self.cross.due(keeper.index, instrument, price):
            if split is not None and account % split != keeper.member:
                continue  # another keeper of the group takes it
            self.cross.hold(keeper.index, account)
            self.host.schedule_send(t + keeper.reaction(), self._send_cross, account, keeper.index,
                                    row, t)

    def _send_cross(self, t: int, account: int, keeper_index: int, row: int, t_seen: int) -> None:
        assert self.cross is not None
        keeper = self.keepers[keeper_index]
        if self.cross.closed[account - self.cross.first]:  # it reads the chain before it sends
            self.cross.gave_up(keeper_index, account)
            return
        spec = keeper.spec
        fee = spec.fee_at(self.host.base_fee(), t)
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

    def _send(self, t: int, account: int, keeper_index: int, row: int, t_seen: int) -> None:
        nonces = self.nonces
        if nonces is not None and nonces.holds(keeper_index, self.host.base_fee(), self._send, account,
                                               keeper_index, row, t_seen):
            return  # behind its stuck transaction: decided again when that one is mined
        keeper = self.keepers[keeper_index]
        if self.liquidated[account]:  # it reads the chain before it sends
            keeper.pending.discard(account)
            return
        spec = keeper.spec
        fee = spec.fee_at(self.host.base_fee(), t)
        if self.budgets is not None and not self.budgets.pay_fee(keeper_index, fee):
            keeper.pending.discard(account)  # out of gas: it sends nothing more
            return
        msg_id = self.host.send(t, self.host.agent_index(spec.name), "liquidation", keeper.node, account,
                                spec.size, fee)
        self.liquidation_of[msg_id] = (account, keeper_index)
        if self.nonces is not None:
            self.nonces.sent(keeper_index, msg_id, fee)
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
        probes, topups = self.probes, self.topups
        before = list(self.chain_price) if probes is not None else []
        changes: list[tuple[int, int, float]] = []  # (position in the block, instrument, new on-chain price)
        nonces = self.nonces
        for position, msg_id in enumerate(msg_ids):
            if nonces is not None:
                mined = nonces.mined(msg_id)
                if mined is not None:  # its keeper's next transaction may go now
                    self.host.schedule_send(t, self._release, mined)
            row = price_of.get(msg_id)
            if row is not None:
                moved = self._price_committed(t, msg_id, row)
                if moved is not None and probes is not None:
                    changes.append((position, moved, self.chain_price[moved]))
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
            if topups is not None:
                account = topups.sent.pop(msg_id, None)
                if account is not None:
                    topups.committed(t, msg_id, account)
        if self._paused and t >= min(entry[0] for entry in self._paused):
            self._unpause(t)
        if probes is not None:
            probes.committed(t, msg_ids, before, changes)

    def _price_committed(self, t: int, msg_id: int, row: int) -> int | None:
        """An oracle update of ``row`` committed: the on-chain price moves to it unless a later
        step of its instrument is already there; the instrument it moved, else None."""
        instrument, step = int(self.updates.instrument[row]), int(self.updates.step[row])
        if step <= self.chain_step[instrument]:
            return None
        if not self.host.final_commits:
            self._price_before[msg_id] = (self.chain_step[instrument], self.chain_price[instrument],
                                          self.chain_row[instrument])
        self.chain_step[instrument] = step
        if self.thinning:
            self._moved(t, instrument, float(self.updates.price[row]))
        self.chain_price[instrument] = float(self.updates.price[row])
        self.chain_row[instrument] = row
        return instrument

    def _release(self, t: int, keeper_index: int, _b: int, _c: int, _d: int) -> None:
        """A nonce-ordered keeper's transaction out was mined: its waiting sends are decided
        again in order while none of its transactions out is stuck."""
        assert self.nonces is not None
        waiting = self.nonces.next(keeper_index, self.host.base_fee())
        while waiting is not None:
            handler, a, b, c, d = waiting
            handler(t, a, b, c, d)
            waiting = self.nonces.next(keeper_index, self.host.base_fee())

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
                self._executions.append((t, msg_id, account, keeper.name, Outcome.BLOCKED, price, t_price, 0.0, 0.0, 0.0,
                                         0.0, float(self._collateral[account]), 0.0))
                self._paused.append((until, msg_id, account, keeper_index))
                return
        done: Execution
        if self.liquidated[account] or not past_line(self._side[account], float(self._line[account]), judged):
            if self.liquidated[account]:
                outcome = Outcome.ALREADY_LIQUIDATED
            else:
                outcome = Outcome.RECOVERED
                keeper.retry.add(account)
            # A no-op realises nothing: the account keeps its collateral.
            done = Execution(price, 0.0, 0.0, 0.0, 0.0, float(self._collateral[account]), 0.0)
        elif self.venue is None:
            market = self.market
            outcome = Outcome.EXECUTED
            done = execute(self._side[account], float(self._size[account]), self._entry[account],
                           float(self._collateral[account]), price, market.liquidation_penalty, market.slippage_bps, self._depth(t, instrument),
                           impact_exponent(market))
            self.liquidated[account] = True
        elif self.auctions is not None and trigger is not None:
            outcome, done = self._bark(t, account, keeper, price, trigger)
        elif self.flips is not None and trigger is not None:
            outcome, done = self._kick(t, msg_id, account, keeper, price, trigger)
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

    def _call(self, t: int, msg_id: int, account: int, keeper: Keeper, price: float) -> tuple[Outcome, Execution]:
        """A liquidation call by the scenario's mechanism, through the venue's books: its
        outcome (``executed``: closed whole; ``partial``: left open; ``recovered``: nothing
        to close) and its ``executions`` row's account."""
        assert self.venue is not None
        collateral = float(self._collateral[account])
        done = call(self.rule, self._side[account], float(self._size[account]), self._entry[account],
                    collateral, price, self._depth(t, self._instrument[account]))
        if done.closed <= 0:
            keeper.retry.add(account)
            return Outcome.RECOVERED, Execution(price, 0.0, 0.0, 0.0, 0.0, collateral, 0.0)
        bad_debt = self._book(t, msg_id, account, done)
        instrument = self._instrument[account]
        row = self.chain_row[instrument]
        if (not done.whole and self.rule.repeats and row >= 0
                and past_line(self._side[account], float(self._line[account]), self._judged(instrument, price))):
            self._look(t, keeper, row, instrument, price)  # a lending market's keeper calls again
        return (Outcome.EXECUTED if done.whole else Outcome.PARTIAL), Execution(
            price, done.pnl, done.penalty, done.slippage, done.slippage_bps, done.collateral_after, bad_debt)

    def _book(self, t: int, msg_id: int, account: int, done: Call) -> float:
        """The venue's books take a call (``venue`` rows); the accounts they moved get new
        lines and every keeper looks at them again. The bad debt left."""
        assert self.venue is not None
        moves, bad_debt = self.venue.book(account, done)
        rows = len(moves.rows)
        self._venue_rows.extend([(t, msg_id, *row) for row in moves.rows])
        block = moves.block
        if block is not None:  # a socialised loss: a row for every account in profit, as columns
            charged, amount, size_after, collateral_after, fund = block
            at = len(self._venue_rows) - rows + moves.block_at
            if self._losses_once:
                assert moves.loss is not None
                price, shared, total = moves.loss
                self._losses.append((t, msg_id, account, self.paths.names[self._instrument[account]], price,
                                     shared, total, len(charged), fund, self._venue_written + at))
            else:
                self._venue_blocks.append((at, t, msg_id, fund, charged, amount, size_after, collateral_after))
        touched = moved_open(moves, account, self.liquidated)
        if len(touched):  # a partial close, deleveraging or a socialised charge moved their lines
            self._reline(touched)
            for watcher in self.keepers:
                watcher.retry.update(touched)
        return bad_debt

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
        relined(self._side, self._size, self._entry, self._collateral,
                self.market.maintenance_margin, accounts, self._line, self._bankruptcy)

    def finish(self, t_end: int) -> None:
        self._flush()
        if self.probes is not None:
            self.probes.finish(t_end)
        if self.book is not None:
            self.book.finish(self.host)
