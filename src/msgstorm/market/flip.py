"""English auctions (Maker's flip, liquidation 1.0 as on 12 March 2020): what an
``english_auction`` liquidation starts, its bids and its close.

Place in the pipeline: a part of the market reactor (``market/reactor.py``; its keepers' steps
in ``market/reactor_auctions.py``), built when
``[market.liquidation] mechanism = "english_auction"`` (``market/liquidation.py``). A keeper's
liquidation that commits for an account past its line starts (Maker's ``bite`` and ``kick``;
an ``executions`` row with outcome ``auction``) an auction of the whole position: the lot is
its units, the ``tab`` its debt with the penalty (``rules.liquidation.flip_tab``), and it
ends ``tau`` later at the latest. With a ``lump`` for the vault's collateral (Maker's cat,
``[market.liquidation] lump``) a bite of a vault holding more takes ``lump`` units into the
auction and their share of the debt (the same share of the vault's collateral value), and
the vault, as unsafe as before, stays bitable: its next bite takes the next lot, and the one
that finds at most ``lump`` left takes the rest, as a bite without ``lump`` takes it all. An
auction is a lot (``Flip``), numbered ``account + accounts x k`` for the account's ``k``-th
(``lot_id``): the whole vault's is numbered by its account. Each keeper whose liquidation
committed becomes a bidder:
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
    """One running auction: its vault, lot (units), tab, end, and the standing bid (``guy`` -1:
    none yet; ``tic`` when it expires). ``debt`` is the lot's share of the vault's debt at the
    bite; ``equity`` its share of the vault's collateral value (None: the whole vault, whose
    own size and collateral the close reads)."""

    account: int
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
    debt: float = 0.0
    equity: float | None = None


class EnglishAuctions:
    """The running auctions, by lot (``lot_id``); per vault, its lots kicked and whether the
    rest of it is in one (``emptied``: no bite takes more)."""

    def __init__(self, spec: LiquidationSpec, penalty_rate: float,
                 instruments: list[str] | None = None, accounts: int = 0) -> None:
        self.spec = spec
        self.penalty_rate = penalty_rate
        self.running: dict[int, Flip] = {}
        lump = spec.lump or {}
        self.lump_of: list[float | None] = [lump.get(name) for name in instruments or []]
        self.accounts = accounts
        self.kicked: dict[int, int] = {}  # account -> its lots kicked so far
        self.emptied: set[int] = set()  # accounts whose rest is in a lot
        self.of_account: dict[int, list[int]] = {}  # account -> its running lots, as kicked
        self.bidders_of: dict[int, set[int]] = {}  # with a lump: account -> the keepers that bit it

    def lot_id(self, account: int, k: int) -> int:
        """The ``k``-th lot of ``account`` (0: the first, numbered by the account)."""
        return account + self.accounts * k

    def lump(self, instrument: int) -> float | None:
        return self.lump_of[instrument] if instrument < len(self.lump_of) else None

    def kick(self, account: int, t: int, size: float, debt: float,
             equity: float | None = None) -> tuple[int, Flip]:
        """A bite's lot of ``size`` units owing ``debt`` (``equity``: the lot's share of the
        vault's collateral value; None: the whole vault's rest): its number and auction."""
        k = self.kicked.get(account, 0)
        self.kicked[account] = k + 1
        lot_id = self.lot_id(account, k)
        flip = Flip(account, t, size, size, flip_tab(debt, self.penalty_rate), t + self.spec.tau,
                    debt=debt, equity=equity)
        self.running[lot_id] = flip
        self.of_account.setdefault(account, []).append(lot_id)
        if equity is None:
            self.emptied.add(account)
        return lot_id, flip

    def dealt(self, lot_id: int) -> Flip:
        """The lot's auction closed: no longer running."""
        flip = self.running.pop(lot_id)
        lots = self.of_account[flip.account]
        lots.remove(lot_id)
        if not lots:
            del self.of_account[flip.account]
        return flip

    def lots_of(self, account: int) -> list[int]:
        """The account's running lots, in the order kicked."""
        return self.of_account.get(account, [])

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
