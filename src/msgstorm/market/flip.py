"""English auctions (Maker's flip, liquidation 1.0 as on 12 March 2020): what an
``english_auction`` liquidation starts, its bids and its close.

Place in the pipeline: a part of the market reactor (``market/reactor.py``; its keepers' steps
in ``market/reactor_auctions.py``), built when
``[market.liquidation] mechanism = "english_auction"`` (``market/liquidation.py``). A keeper's
liquidation that commits for an account past its line starts (Maker's ``bite`` and ``kick``;
an ``executions`` row with outcome ``auction``) an auction of the whole position: the lot is
its units, the ``tab`` its debt with the penalty (``rules.liquidation.flip_tab``), and it
ends ``tau`` later at the latest. Each keeper whose liquidation committed becomes a bidder:
``reaction`` later it sends a bid, a ``liquidation`` message that travels the network and pays
its fee like any other, at the best it will pay: the market's price then x (1 - its
``discount``) a unit (``KeeperSpec.bid_value``). Two phases:

- *tend*: a bid raises the quote paid for the whole lot, up to the tab; it must beat the
  standing bid by ``beg`` (or reach the tab); the first bid may be anything, zero included;
- *dent*: once a bid reached the tab, a bid lowers the units taken for it, each at most the
  standing lot / (1 + ``beg``); the rest goes back to the owner.

A bid checked when it commits (the state may have moved while it travelled): a valid one
stands (outcome ``bid``) and the auction then closes ``ttl`` later, unless another bid
comes, but never after its end; an invalid or late one is outcome ``outbid``. The other
bidders answer a standing bid ``reaction`` later while they can beat it. At the close the
standing bid wins (Maker's ``deal``, here at the close itself: outcome ``executed`` on the
winning bid's message): the position closes by ``rules.liquidation.flip_close``, the units
given back valued at the on-chain price then. An auction
without any bid at its end restarts for another ``tau`` (Maker's ``tick``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msgstorm.market.liquidation import Call, Mechanism
from msgstorm.rules.liquidation import flip_close, flip_tab, split_fee
from msgstorm.rules.market import liquidation_costs, pnl
from msgstorm.scenario.market import LiquidationSpec, impact_exponent

__all__ = ["EnglishAuctions", "Flip", "flip_call"]


@dataclass
class Flip:
    """One running auction: its lot (units), tab, end, and the standing bid (``guy`` -1:
    none yet; ``tic`` when it expires)."""

    t_start: int
    size: float
    lot: float
    tab: float
    end: int
    bid: float = 0.0
    guy: int = -1
    tic: int = 0
    msg_id: int = -1
    bidders: set[int] = field(default_factory=set)
    in_flight: set[int] = field(default_factory=set)


class EnglishAuctions:
    """The running auctions, by account."""

    def __init__(self, spec: LiquidationSpec, penalty_rate: float) -> None:
        self.spec = spec
        self.penalty_rate = penalty_rate
        self.running: dict[int, Flip] = {}

    def kick(self, account: int, t: int, size: float, debt: float) -> Flip:
        flip = Flip(t, size, size, flip_tab(debt, self.penalty_rate), t + self.spec.tau)
        self.running[account] = flip
        return flip

    def closes_at(self, flip: Flip) -> int:
        """When it closes: its end, or earlier when the standing bid expires."""
        return flip.end if flip.guy < 0 else min(flip.tic, flip.end)

    def live(self, flip: Flip, t: int) -> bool:
        return t < flip.end and (flip.guy < 0 or t < flip.tic)

    def proposal(self, flip: Flip, value: float) -> tuple[float, float] | None:
        """The best bid ``(quote, lot)`` of a keeper who pays at most ``value`` a unit (None:
        it cannot beat the standing bid)."""
        beg = self.spec.beg
        if flip.bid < flip.tab:  # tend
            bid = min(flip.tab, flip.lot * max(value, 0.0))
            if flip.guy < 0 or (bid > flip.bid and (bid >= flip.bid * (1.0 + beg) or bid == flip.tab)):
                return bid, flip.lot
            return None
        if value <= 0:
            return None
        lot = flip.tab / value  # dent: the fewest units it takes for the tab
        return (flip.tab, lot) if lot * (1.0 + beg) <= flip.lot else None

    def place(self, flip: Flip, keeper: int, msg_id: int, bid: float, lot: float, t: int) -> bool:
        """A bid that committed at ``t``: it stands if still valid (Maker's ``tend``/``dent`` checks)."""
        if not self.live(flip, t):
            return False
        beg = self.spec.beg
        if lot == flip.lot and flip.bid < flip.tab:
            valid = bid <= flip.tab and (flip.guy < 0 or (bid > flip.bid and (bid >= flip.bid * (1.0 + beg)
                                                                             or bid == flip.tab)))
        else:
            valid = bid == flip.tab == flip.bid and lot * (1.0 + beg) <= flip.lot
        if valid:
            flip.bid, flip.lot, flip.guy, flip.msg_id, flip.tic = bid, lot, keeper, msg_id, t + self.spec.ttl
        return valid


def flip_call(rule: Mechanism, size: float, entry: float, collateral: float, bid: float, lot: float,
              price: float, depth: float | None = None) -> Call:
    """The close of a long's auction (``rules.liquidation.flip_close``) as a liquidation
    call: closed whole at the effective price, the penalty split as any. The equity at that
    price goes through the market's one rule (``rules.market.liquidation_costs``, on the
    book's curve at ``depth``) with no slippage, as a Dutch take's: the bids priced the lot,
    the book did not; the flip's penalty (what the bid raised above the debt) is then taken
    from it, the same number ``flip_close`` gives."""
    market = rule.market
    effective, penalty, _ = flip_close(size, entry, collateral, bid, lot, price, market.liquidation_penalty)
    _, slippage, bps, equity_there = liquidation_costs(1.0, size, entry, collateral, effective, 0.0, 0.0,
                                                       market.depth if depth is None else depth,
                                                       impact_exponent(market))
    keeper_fee, fund_fee = split_fee(penalty, rule.spec.keeper_share)
    return Call(effective, size, True, pnl(1.0, size, entry, effective), penalty, keeper_fee, fund_fee, slippage, bps,
                0.0, equity_there - penalty)
