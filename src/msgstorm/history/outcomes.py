"""What a committed liquidation message did: the ``outcome`` column of ``executions`` and
``cross_executions`` (``history/schema.py``), one name each.

Place in the pipeline: the history's contract. The market's reactors write these
(``market/reactor.py``, ``market/reactor_auctions.py``, ``market/cross_margin.py``) and the
analysis reads them (``analysis/market.py``, ``analysis/cross.py``); both name an outcome
through ``Outcome``, never as a string of their own.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CLOSING", "Outcome", "TOOK_PART"]


class Outcome(StrEnum):
    EXECUTED = "executed"  # the position closed whole (a cross account: every position)
    PARTIAL = "partial"  # some of it closed, the rest left open
    RECOVERED = "recovered"  # the account was above its line again at the on-chain price
    ALREADY_LIQUIDATED = "already_liquidated"  # another keeper's call came first
    REVERTED = "reverted"  # live chain: a restarted node lost the commit
    AUCTION = "auction"  # an auction started (``market/dutch.py``, ``market/flip.py``)
    RESET = "reset"  # a Dutch auction restarted at a new top price
    BID = "bid"  # an English auction's bid
    OUTBID = "outbid"  # a bid that did not beat the standing one
    BLOCKED = "blocked"  # held by the uptime guard (``[market.sentinel]``)


# Calls that closed a position (whole or in part).
CLOSING = frozenset({Outcome.EXECUTED, Outcome.PARTIAL})
# Calls that did something (any other was a no-op: recovered, already liquidated, outbid).
TOOK_PART = frozenset({Outcome.EXECUTED, Outcome.REVERTED, Outcome.PARTIAL, Outcome.AUCTION,
                       Outcome.RESET, Outcome.BID, Outcome.BLOCKED})
