"""What the sequencer uptime guard did (summary.json's ``sentinel``).

Place in the pipeline: analysis, from the ``executions`` table (the reactor writes a
``blocked`` row for each liquidation the guard paused, then the row of its execution when the
pause lifted: ``market/sentinel.py``), the outages' fault events and the scenario's
``[market.sentinel]``. ``let_through``: liquidations executed while paused (the account below
the bound); ``after_pause``: the blocked ones, executed when the pause lifted; bad debt: over
every execution, as the market section's.
"""

from __future__ import annotations

from math import fsum
from typing import Any

from msgstorm.analysis.outage import outage_windows_ns
from msgstorm.history.outcomes import Outcome
from msgstorm.history.reader import History

__all__ = ["sentinel_summary"]


def sentinel_summary(history: History) -> dict[str, Any] | None:
    """The ``sentinel`` section; ``None`` for a run without ``[market.sentinel]``."""
    spec = (history.scenario.get("market") or {}).get("sentinel")
    if spec is None:
        return None
    grace = int(spec["grace"])
    windows = [(down, (up if up is not None else 2**62) + grace) for down, up in outage_windows_ns(history)]
    rows = history.table("executions").select(["t", "msg_id", "outcome", "bad_debt"]).to_pylist()
    blocked = {row["msg_id"] for row in rows if row["outcome"] == Outcome.BLOCKED}
    executed = [row for row in rows if row["outcome"] == Outcome.EXECUTED]

    def paused(t: int) -> bool:
        return any(down <= t < until for down, until in windows)

    return {
        "grace_s": grace / 1e9,
        "health_factor_bound": spec.get("health_factor_bound"),
        "blocked": len(blocked),
        "after_pause": sum(1 for row in executed if row["msg_id"] in blocked),
        "let_through": sum(1 for row in executed if row["msg_id"] not in blocked and paused(row["t"])),
        "bad_debt": fsum(row["bad_debt"] for row in executed),
    }
