"""Headline terms that would read wrong without their definition, written once with it.

Place in the pipeline: reports, from the typed summary alone; the terminal summary
(``report/terminal.py``) and report.html's headline (``report/run_headline.py``) show the
same words. Each term stands beside a number it could be mistaken for, so it carries what it
counts: ``late`` beside a long liquidation delay is the executions past the bankruptcy
price, not the slow ones; bad debt beside a venue's cover is what is left after it; a
message ``lost`` is a message no one got, apart from the receipts one consumer missed.
"""

from __future__ import annotations

from msgstorm.analysis.summary_model import Liquidations, Market, VenueLosses
from msgstorm.report.text import amount, number

__all__ = ["LOST_MESSAGES_LIVE", "bad_debt_text", "covered_first", "liquidations_text", "past_bankruptcy"]

# A live run's message status ``lost`` beside the delivery audit's lost receipts: no consumer
# received the message and the broker never acked it (``live/recorder.py``).
LOST_MESSAGES_LIVE = "neither acked nor received"


def past_bankruptcy(liquidations: Liquidations) -> str:
    """``late`` as it reads: executed after the true price first crossed the bankruptcy price."""
    return f"{number(liquidations.late)} past their bankruptcy price"


def liquidations_text(liquidations: Liquidations) -> str:
    """The liquidations' counts, ``late`` named by what it counts."""
    return (f"eligible {number(liquidations.eligible)}, triggered {number(liquidations.triggered)}, "
            f"executed {number(liquidations.executed)} ({past_bankruptcy(liquidations)}), "
            f"no-op {number(liquidations.no_op)}, not attempted {number(liquidations.not_attempted)}")


def covered_first(venue: VenueLosses | None, currency: str | None = None) -> str:
    """What the venue's books covered before any bad debt was left, in the market's
    ``currency``: ``"1,129,163 socialised"``, ``"127,769.3 DAI from the fund, 22,108.22 DAI
    deleveraged"``; "" when nothing was covered."""
    if venue is None:
        return ""
    covers = ((venue.insurance_fund.used, "from the fund"), (venue.deleveraged, "deleveraged"),
              (venue.socialised, "socialised"))
    return ", ".join(f"{amount(value, currency)} {what}" for value, what in covers if value > 0)


def bad_debt_text(market: Market) -> str:
    """Bad debt with its share of open interest and accounts, and what the venue covered
    before it, in the market's currency where it names one: ``0 (after 1,129,163 socialised;
    0% of open interest 231,468,852), 0 accounts``."""
    bad, currency = market.bad_debt, market.currency
    covered = covered_first(market.venue, currency)
    after = f"after {covered}; " if covered else ""
    return (f"{amount(bad.absolute, currency)} ({after}{number(bad.pct_of_open_interest)}% of open interest "
            f"{amount(market.open_interest, currency)}), {number(bad.accounts)} accounts")
