"""What positions on the other chain cost: headline rows and the report's section "Collateral across chains".

Place in the pipeline: reports, from the summary's typed ``collateral`` section alone
(``analysis.summary_chain.Collateral``; computed by ``analysis/collateral.py``). The terminal summary and
report.html show the same rows, made here once: the liquidations the source executed, how many closed on the destination and
how many the relay left open (the first accounts named), how long the close waited and
where that time went, and the bad debt across the relay beside the same positions
liquidated on one chain. With positions on the destination the market section's bad debt is
the source's own executions at its on-chain oracle price, not what the positions lost:
``market_bad_debt_label`` names it so wherever it is shown.
"""

from __future__ import annotations

from msgstorm.analysis.summary_chain import Collateral
from msgstorm.analysis.summary_model import Summary
from msgstorm.report.crosschain import STAGE_NAMES
from msgstorm.report.page import esc, table
from msgstorm.report.text import duration_ms, number

__all__ = ["SOURCE_BAD_DEBT", "collateral_rows", "collateral_section", "market_bad_debt_label"]

# The market section's bad debt when the positions live on the destination.
SOURCE_BAD_DEBT = "bad debt on the source (oracle price)"


def market_bad_debt_label(summary: Summary) -> str:
    """The label of summary.json's ``market.bad_debt``: "bad debt", or, with positions on the
    destination (a ``collateral`` section), the source's own executions at its on-chain
    oracle price (the positions' bad debt is the collateral rows' ``bad debt across``)."""
    return SOURCE_BAD_DEBT if summary.collateral is not None else "bad debt"


def collateral_rows(section: Collateral) -> list[tuple[str, str]]:
    """(label, text) rows of the summary's typed ``collateral`` section."""
    left = section.open
    wait = section.wait_ms
    bad = section.bad_debt
    split = section.split_ms
    shown = section.open_accounts
    left_total = left.censored + left.never_final + left.undelivered
    rows = [
        ("liquidations across chains", f"{number(section.positions)}: closed {number(section.closed)} "
                                       f"({number(section.closed_reverted_on_source)} reverted on source), "
                                       f"open {number(left_total)}: censored {number(left.censored)}, never final "
                                       f"{number(left.never_final)}, undelivered {number(left.undelivered)}"),
        ("close after source p50 / max", f"{duration_ms(wait['p50'])} / {duration_ms(wait['max'])}"),
        ("close split (mean)", ", ".join(f"{label} {duration_ms(split[stage].mean)}"
                                         for stage, label in STAGE_NAMES.items())),
        ("bad debt across / one chain", f"{number(bad.across)} / {number(bad.one_chain)} "
                                        f"({number(bad.open)} left open)"),
    ]
    if shown:
        more = f" and {number(left_total - len(shown))} more" if left_total > len(shown) else ""
        rows.append(("accounts left open", ", ".join(str(account) for account in shown) + more))
    return rows


def collateral_section(summary: Summary) -> list[tuple[str, str, str]]:
    """report.html's section "Collateral across chains" (none without it): the headline rows."""
    collateral = summary.collateral
    if collateral is None:
        return []
    head = table(["metric", "value"], [[esc(label), esc(text)] for label, text in collateral_rows(collateral)],
                 attrs='id="collateral-table"')
    return [("collateral", "Collateral across chains", head)]
