"""The market reactor's auctions: Dutch (Maker's clip: bark and take) and English (Maker's
flip: kick, bids and deal).

Place in the pipeline: parts of the market reactor (``market/reactor.py``), mixed into
``MarketReactor`` because each handler reads and writes the reactor's accounts, keepers and
rows (``market/reactor_state.py``). The auctions' own state and rules are
``market/dutch.py`` and ``market/flip.py``; here is what the keepers do with them. A keeper's
liquidation that commits under ``dutch_auction`` or ``english_auction`` reaches ``_bark`` or
``_kick`` from ``MarketReactor._execute``; the takes and bids they lead to are
``liquidation`` messages of their own, which ``MarketReactor.committed`` hands to ``_take`` and
``_bid_committed``. Each writes ``triggers`` and ``executions`` rows as the reactor's own
liquidations do (a take or a bid answers the trigger of the keeper's liquidation).
"""

from __future__ import annotations

from msgstorm.history.outcomes import Outcome
from msgstorm.market.accounts import Execution
from msgstorm.market.flip import flip_call
from msgstorm.market.liquidation import call
from msgstorm.market.reactor_state import Keeper, ReactorState

__all__ = ["DutchAuctionSteps", "EnglishAuctionSteps"]


class DutchAuctionSteps(ReactorState):
    """Dutch auctions (``market/dutch.py``): a keeper's liquidation starts one (``_bark``), the
    keeper takes when the price suits it (``_schedule_take``, ``_send_take``), and the first
    take to commit closes the position (``_take``)."""

    def _bark(self, t: int, account: int, keeper: Keeper, price: float,
              trigger: tuple[int, int, float]) -> tuple[Outcome, Execution]:
        """A keeper's liquidation (its ``trigger``) committed under ``dutch_auction``: it
        starts the account's auction (or finds it running), and the keeper takes when the
        price suits it."""
        assert self.auctions is not None
        if account not in self.auctions.running:
            self.auctions.start(account, self._side[account], t, price)
        self._take_trigger[(account, keeper.index)] = trigger
        self._schedule_take(t, account, keeper)
        return Outcome.AUCTION, Execution(price, 0.0, 0.0, 0.0, 0.0, float(self._collateral[account]), 0.0)

    def _schedule_take(self, t: int, account: int, keeper: Keeper) -> None:
        assert self.auctions is not None
        when = self.auctions.take_at_ns(self._side[account], self.auctions.running[account])
        if when is not None:
            keeper.pending.add(account)  # it takes; it sends no other liquidation for the account
            self.host.schedule_send(max(t, when), self._send_take, account, keeper.index, 0, 0)

    def _send_take(self, t: int, account: int, keeper_index: int, _c: int, _d: int) -> None:
        keeper = self.keepers[keeper_index]
        if self.liquidated[account]:
            keeper.pending.discard(account)
            return
        spec = keeper.spec
        fee = spec.fee_at(self.host.base_fee(), t)
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
            outcome = Outcome.ALREADY_LIQUIDATED
        elif self.auctions.stale(auction, t):
            outcome = Outcome.RESET
            self.auctions.start(account, self._side[account], t, chain)
            self._schedule_take(t, account, keeper)
        else:
            price = self.auctions.price(self._side[account], auction, t)
            taken = call(self.rule, self._side[account], float(self._size[account]), self._entry[account],
                         float(self._collateral[account]), price)
            bad_debt = self._book(t, msg_id, account, taken)
            del self.auctions.running[account]
            outcome = Outcome.EXECUTED
            done = Execution(price, taken.pnl, taken.penalty, taken.slippage, taken.slippage_bps,
                             taken.collateral_after, bad_debt)
        self._executions.append((t, msg_id, account, keeper.name, outcome, done.price, t_price, done.pnl, done.penalty,
                                 done.slippage, done.slippage_bps, done.collateral_after, done.bad_debt))


class EnglishAuctionSteps(ReactorState):
    """English auctions (``market/flip.py``): a keeper's liquidation starts one (``_kick``),
    its bidders bid (``_send_bid``, ``_bid_committed``) and the standing bid wins at the
    close (``_deal``)."""

    def _kick(self, t: int, account: int, keeper: Keeper, price: float,
              trigger: tuple[int, int, float]) -> tuple[Outcome, Execution]:
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
        self.host.schedule_send(t + keeper.reaction(), self._send_bid, account, keeper.index)
        return Outcome.AUCTION, Execution(price, 0.0, 0.0, 0.0, 0.0, float(self._collateral[account]), 0.0)

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
        fee = spec.fee_at(self.host.base_fee(), t)
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
            outcome = Outcome.ALREADY_LIQUIDATED
        elif self.flips.place(flip, keeper_index, msg_id, bid, lot, t):
            outcome = Outcome.BID
            if self.budgets is not None and standing[0] >= 0:
                self.budgets.release(standing[0], standing[1])  # the outbid keeper's quote is free again
            self.host.schedule(self.flips.closes_at(flip), self._deal, account)
            for other in sorted(flip.bidders - {keeper_index} - flip.in_flight):
                self.host.schedule_send(t + self.keepers[other].reaction(), self._send_bid, account,
                                        other)
        else:
            outcome = Outcome.OUTBID
            if self.flips.live(flip, t):
                self.host.schedule_send(t + keeper.reaction(), self._send_bid, account,
                                        keeper_index)
        if outcome != Outcome.BID and self.budgets is not None:
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
        self._executions.append((t, flip.msg_id, account, winner.name, Outcome.EXECUTED, done.price,
                                 self.chain_step[instrument] * self.paths.resolution_ns, done.pnl, done.penalty, 0.0,
                                 0.0, done.collateral_after, bad_debt))
