"""Dutch auctions (Maker's clip): what a ``dutch_auction`` liquidation starts, and its takes.

Place in the pipeline: a part of the market reactor (``market/reactor.py``; its keepers' steps
in ``market/reactor_auctions.py``), built when
``[market.liquidation] mechanism = "dutch_auction"`` (``market/liquidation.py``). A keeper's
liquidation that commits for an account past its line starts an auction of the whole
position (Maker's ``bark``; an ``executions`` row with outcome ``auction``) at the on-chain
price P0 x ``buffer``; its price then follows ``rules.liquidation.auction_price`` with the
multiplier ``rules.liquidation.decay`` of its age (linear, stair-step or exponential). Each
keeper whose liquidation committed (the first starts it, the others find it running) sends a
*take* as soon as the price is acceptable to it: at most the on-chain price P0 x ``take_at``
for a long (at least P0 / ``take_at`` for a short), at the age ``decay_age_ns`` gives. A
take is a ``liquidation`` message like any other: it travels the network, pays its fee and
takes effect when it commits, at the auction's price at that moment. The first to commit
closes the position (``executed``); later ones are no-ops (``already_liquidated``). A take
that finds the auction too old (``tail``) or its multiplier below ``cusp`` resets it
(Maker's ``redo``: outcome ``reset``): it starts again from the on-chain price then, and the
keeper takes again.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgstorm.rules.liquidation import auction_price, decay, decay_age_ns
from msgstorm.scenario.market import LiquidationSpec

__all__ = ["Auction", "DutchAuctions"]


@dataclass
class Auction:
    t_start: int
    start_price: float  # the on-chain price at the start x buffer (for a short: / buffer)
    chain_price: float  # the on-chain price at the start
    resets: int = 0


class DutchAuctions:
    """The running auctions, by account."""

    def __init__(self, spec: LiquidationSpec) -> None:
        self.spec = spec
        self.running: dict[int, Auction] = {}

    def start(self, account: int, side: int, t: int, chain_price: float) -> Auction:
        buffered = chain_price * self.spec.buffer if side > 0 else chain_price / self.spec.buffer
        auction = Auction(t, buffered, chain_price, self.running[account].resets + 1 if account in self.running else 0)
        self.running[account] = auction
        return auction

    def multiplier(self, auction: Auction, t: int) -> float:
        spec = self.spec
        return decay(spec.decay, t - auction.t_start, spec.tau, spec.step, spec.cut)

    def price(self, side: int, auction: Auction, t: int) -> float:
        return auction_price(side, auction.start_price, self.multiplier(auction, t))

    def stale(self, auction: Auction, t: int) -> bool:
        """Too old (``tail``) or fallen too far (multiplier below ``cusp``): reset it."""
        return t - auction.t_start > self.spec.tail or self.multiplier(auction, t) < self.spec.cusp

    def take_at_ns(self, side: int, auction: Auction) -> int | None:
        """When a keeper's take becomes acceptable: the auction's price at most P0 x
        ``take_at`` for a long, at least P0 / ``take_at`` for a short (None: never)."""
        spec = self.spec
        accept = auction.chain_price * spec.take_at if side > 0 else auction.chain_price / spec.take_at
        at_most = accept / auction.start_price if side > 0 else auction.start_price / accept
        age = decay_age_ns(spec.decay, at_most, spec.tau, spec.step, spec.cut)
        return None if age is None else auction.t_start + age
