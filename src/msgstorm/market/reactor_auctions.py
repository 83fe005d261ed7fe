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
from msgstorm.market.flip import Flip, flip_call
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
    """English auctions (``market/flip.py``): a keeper's liquidation (a bite) starts one
    (``_kick``; with a ``lump``, a lot of the vault, and the keeper bites again), its bidders
    bid (``_send_bid``, ``_bid_committed``) and the standing bid wins at the close (``_deal``)."""

    def _kick(self, t: int, msg_id: int, account: int, keeper: Keeper, price: float,
              trigger: tuple[int, int, float]) -> tuple[Outcome, Execution]:
        """A keeper's liquidation committed under ``english_auction``: it starts an auction
        of the vault's next lot (or, the vault's rest already in one, finds its lots running),
        and the keeper bids on each of the vault's lots ``reaction`` later; the vault's
        earlier bidders bid on its new lot too."""
        flips = self.flips
        assert flips is not None
        lump = flips.lump(self._instrument[account])
        if account not in flips.emptied:
            size, collateral = float(self._size[account]), float(self._collateral[account])
            debt = size * self._entry[account] - collateral
            if lump is None or size <= lump:
                lot_id, flip = flips.kick(account, t, size, debt)
            else:
                lot_id, flip = self._bite(t, msg_id, account, keeper, size, collateral, debt, lump,
                                          trigger)
            self.host.schedule(flip.end, self._deal, lot_id)
            for other in sorted(flips.bidders_of.get(account, set()) - {keeper.index}):
                flip.bidders.add(other)
                self.host.schedule_send(t + self.keepers[other].reaction(), self._send_bid, lot_id,
                                        other)
        for lot_id in flips.lots_of(account):
            flip = flips.running[lot_id]
            if lump is not None and keeper.index in flip.bidders:
                continue  # it bids on this lot already
            flip.bidders.add(keeper.index)
            self.host.schedule_send(t + keeper.reaction(), self._send_bid, lot_id, keeper.index)
        if lump is not None:
            flips.bidders_of.setdefault(account, set()).add(keeper.index)
        keeper.pending.add(account)  # it bids; it sends no other liquidation for the account
        self._take_trigger[(account, keeper.index)] = trigger
        return Outcome.AUCTION, Execution(price, 0.0, 0.0, 0.0, 0.0, float(self._collateral[account]), 0.0)

    def _bite(self, t: int, msg_id: int, account: int, keeper: Keeper, size: float, collateral: float,
              debt: float, lump: float, trigger: tuple[int, int, float]) -> tuple[int, Flip]:
        """A bite of a vault holding more than ``lump``: ``lump`` units go into a lot with
        their share of the debt and of the collateral value, the vault keeps the rest (as
        unsafe as before: its line does not move; a ``bitten`` venue row), and the keeper
        bites again ``reaction`` later on the price it acted on."""
        assert self.flips is not None and self.venue is not None
        share = lump / size
        equity = share * collateral
        lot_id, flip = self.flips.kick(account, t, lump, share * debt, equity)
        self._size[account] = size - lump
        self._collateral[account] = collateral - equity
        self._reline([account])
        self._venue_rows.append((t, msg_id, account, "bitten", lump, float(self._size[account]),
                                 float(self._collateral[account]), self.venue.fund))
        row = self.price_of.get(trigger[1])
        if row is not None:
            self.host.schedule_send(t + keeper.reaction(), self._send, account, keeper.index, row,
                                    trigger[0])
        return lot_id, flip

    def _send_bid(self, t: int, lot_id: int, keeper_index: int, _c: int, _d: int) -> None:
        """The keeper's best bid now, if it beats the standing one (and it is not its own)."""
        assert self.flips is not None
        nonces = self.nonces
        if nonces is not None and nonces.holds(keeper_index, self.host.base_fee(), self._send_bid,
                                               lot_id, keeper_index, 0, 0):
            return  # behind its stuck transaction: decided again when that one is mined
        flip = self.flips.running.get(lot_id)
        if flip is None or not self.flips.live(flip, t) or flip.guy == keeper_index or keeper_index in flip.in_flight:
            return
        account = flip.account
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
        self.bid_of[msg_id] = (lot_id, keeper_index, *proposal)
        if self.nonces is not None:
            self.nonces.sent(keeper_index, msg_id, fee)
        t_seen, price_msg_id, price_seen = self._take_trigger[(account, keeper_index)]
        self._triggers.append((t_seen, t, keeper.name, self.host.node_names[keeper.node], account, msg_id,
                               price_msg_id, price_seen))

    def _bid_committed(self, t: int, msg_id: int, lot_id: int, keeper_index: int, bid: float,
                       lot: float) -> None:
        """A bid committed: it stands if still valid (outcome ``bid``; the auction's close
        moves to ``ttl`` from now and the other bidders answer), else ``outbid`` (the keeper
        tries again ``reaction`` later)."""
        assert self.flips is not None
        keeper = self.keepers[keeper_index]
        account = lot_id % self.flips.accounts
        instrument = self._instrument[account]
        t_price = self.chain_step[instrument] * self.paths.resolution_ns
        flip = self.flips.running.get(lot_id)
        if flip is not None:
            flip.in_flight.discard(keeper_index)
        standing = (flip.guy, flip.bid) if flip is not None else (-1, 0.0)
        if flip is None or self.liquidated[account]:
            outcome = Outcome.ALREADY_LIQUIDATED
        elif self.flips.place(flip, keeper_index, msg_id, bid, lot, t):
            outcome = Outcome.BID
            if self.budgets is not None and standing[0] >= 0:
                self.budgets.release(standing[0], standing[1])  # the outbid keeper's quote is free again
            self.host.schedule(self.flips.closes_at(flip), self._deal, lot_id)
            for other in sorted(flip.bidders - {keeper_index} - flip.in_flight):
                self.host.schedule_send(t + self.keepers[other].reaction(), self._send_bid, lot_id,
                                        other)
        else:
            outcome = Outcome.OUTBID
            if self.flips.live(flip, t):
                self.host.schedule_send(t + keeper.reaction(), self._send_bid, lot_id,
                                        keeper_index)
        if outcome != Outcome.BID and self.budgets is not None:
            self.budgets.release(keeper_index, bid)  # it did not stand: its quote is free again
        price = bid / lot if lot > 0 else 0.0
        self._executions.append((t, msg_id, account, keeper.name, outcome, price, t_price, 0.0, 0.0, 0.0, 0.0,
                                 float(self._collateral[account]), 0.0))

    def _deal(self, t: int, lot_id: int, _b: int, _c: int, _d: int) -> None:
        """The auction's close, when due: the standing bid wins (outcome ``executed`` on its
        message); without one it restarts for another ``tau`` (Maker's ``tick``). The
        vault's rest closes it whole (``flip_call``); a lot bitten with ``lump`` closes on its
        own share, the vault left as the bite left it (``Venue.book_lot``)."""
        flips = self.flips
        assert flips is not None and self.venue is not None
        flip = flips.running.get(lot_id)
        if flip is None or t < flips.closes_at(flip):
            return  # a later bid moved the close
        if flip.guy < 0:
            flip.end = t + flips.spec.tau
            self.host.schedule(flip.end, self._deal, lot_id)
            return
        flips.dealt(lot_id)
        account = flip.account
        instrument = self._instrument[account]
        price = self.chain_price[instrument]  # what the units given back are worth
        depth = self._depth(t, instrument)
        if flip.equity is None:
            done = flip_call(self.rule, float(self._size[account]), self._entry[account],
                             float(self._collateral[account]), flip.bid, flip.lot, price, depth)
            bad_debt = self._book(t, flip.msg_id, account, done)
            collateral_after = done.collateral_after
        else:
            done = flip_call(self.rule, flip.size, self._entry[account], flip.equity, flip.bid,
                             flip.lot, price, depth)
            moves, bad_debt = self.venue.book_lot(account, done)
            self._venue_rows.extend([(t, flip.msg_id, *row) for row in moves.rows])
            collateral_after = float(self._collateral[account])
        size_after = float(self._size[account]) if flip.equity is not None else 0.0
        fund = self.venue.fund
        rows = [("auctioned", flip.size * price), ("returned", (flip.size - flip.lot) * price)]
        if flips.lump(instrument) is not None:  # the lot's units and debt, for the analysis's lots
            rows += [("lot", flip.size), ("lot_debt", flip.debt)]
        # What the lot was worth at the close, and the owner's share of it back.
        for kind, amount in rows:
            self._venue_rows.append((t, flip.msg_id, account, kind, amount, size_after,
                                     float(self._collateral[account]), fund))
        winner = self.keepers[flip.guy]
        for bidder in flip.bidders:
            self.keepers[bidder].pending.discard(account)
        self._executions.append((t, flip.msg_id, account, winner.name, Outcome.EXECUTED, done.price,
                                 self.chain_step[instrument] * self.paths.resolution_ns, done.pnl, done.penalty, 0.0,
                                 0.0, collateral_after, bad_debt))
