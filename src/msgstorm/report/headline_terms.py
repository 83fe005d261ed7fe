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
from msgstorm.report.text import number

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


def covered_first(venue: VenueLosses | None) -> str:
    """What the venue's books covered before any bad debt was left: ``"1,129,163 socialised"``,
    ``"127,769.3 from the fund, 22,108.22 deleveraged"``; "" when nothing was covered."""
    if venue is None:
        return ""
    covers = ((venue.insurance_fund.used, "from the fund"), (venue.deleveraged, "deleveraged"),
              (venue.socialised, "socialised"))
    return ", ".join(f"{number(amount)} {what}" for amount, what in covers if amount > 0)


def bad_debt_text(market: Market) -> str:
    """Bad debt with its share of open interest and accounts, and what the venue covered
    before it: ``0 (after 1,129,163 socialised; 0% of open interest 231,468,852), 0 accounts``."""
    bad = market.bad_debt
    covered = covered_first(market.venue)
    after = f"after {covered}; " if covered else ""
    return (f"{number(bad.absolute)} ({after}{number(bad.pct_of_open_interest)}% of open interest "
            f"{number(market.open_interest)}), {number(bad.accounts)} accounts")
