"""The cross-margin accounts' rows (summary.json's ``cross``): the terminal summary's and
report.html's section "Cross margin".

Place in the pipeline: report, from the typed summary (``analysis/cross.py`` computes it);
the market section's rows are the isolated accounts'.
"""

from __future__ import annotations

from msgstorm.analysis.summary_chain import CrossResult
from msgstorm.analysis.summary_model import Summary
from msgstorm.report.page import esc, table
from msgstorm.report.text import duration_ms, number

__all__ = ["cross_rows", "cross_section"]


def cross_rows(cross: CrossResult) -> list[tuple[str, str]]:
    """Two rows: the accounts and their liquidations; the delay and what the calls cost."""
    delay = " / ".join("—" if value is None else duration_ms(value) for value in (cross.delay_ms.p50,
                                                                                   cross.delay_ms.p99))
    return [("cross accounts",
             f"{number(cross.accounts)} ({number(cross.hedged)} hedged): eligible {number(cross.eligible)} "
             f"({number(cross.eligible_hedged)} hedged), executed {number(cross.executed)}, partial calls "
             f"{number(cross.partial_calls)}, no-op {number(cross.recovered + cross.already_liquidated)}"),
            ("cross delay p50 / p99, losses",
             f"{delay}; penalties {cross.penalties:,.2f}, fund used {cross.insurance_used:,.2f}, bad debt "
             f"{cross.bad_debt:,.2f} ({number(cross.bad_debt_accounts)} accounts)")]


def cross_section(summary: Summary) -> list[tuple[str, str, str]]:
    """report.html's section "Cross margin" (none without cross accounts): the terminal's rows."""
    if summary.cross is None:
        return []
    rows = [[esc(label), esc(text)] for label, text in cross_rows(summary.cross)]
    return [("cross", "Cross margin", table(["metric", "value"], rows, attrs='id="cross-table"'))]
