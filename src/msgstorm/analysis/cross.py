"""What happened to the cross-margin accounts (summary.json's ``cross``).

Place in the pipeline: analysis, from the ``cross_accounts`` and ``cross_executions`` tables
(``market/cross_margin.py``) and the ``prices`` table; read beside the market section, whose
numbers are the isolated accounts'. A cross account's margin is judged on every instrument
it holds (docs/model.md, "Cross margin"): equity ``collateral + sum side x size x (p -
entry)``, requirement ``maintenance x sum size x p``, both from ``rules/market.py``.

- ``eligible``: accounts the true prices took below their requirement within the horizon (as
  opened: a partial call's later book is not replayed); ``hedged``: accounts holding a long
  and a short, and ``eligible_hedged`` those of them eligible;
- ``executed``: calls that closed every position; ``partial_calls``: calls that left some
  open; ``recovered`` and ``already_liquidated``: calls that did nothing;
- ``delay_ms``: {p50, p99} over the calls that closed something, from the price the keeper
  acted on reaching it to the commit;
- ``penalties``, ``insurance_used``, ``bad_debt`` (and ``bad_debt_accounts``) summed over the calls.
"""

from __future__ import annotations

from collections import Counter
from math import fsum
from typing import Any

import numpy as np

from msgstorm.analysis._common import percentiles, rounded
from msgstorm.history.outcomes import CLOSING, Outcome
from msgstorm.history.reader import History
from msgstorm.rules.market import horizon_ns, notional, pnl

__all__ = ["cross_summary"]


def cross_summary(history: History) -> dict[str, Any] | None:
    """The ``cross`` section; ``None`` for a run without cross-margin accounts."""
    market = history.scenario.get("market") or {}
    if not any(group.get("margin") == "cross" for group in market.get("accounts", [])):
        return None
    positions = history.table("cross_accounts").to_pydict()
    calls = history.table("cross_executions").to_pydict()
    eligible, hedged, eligible_hedged = _eligible(history, positions, float(market["maintenance_margin"]),
                                                  horizon_ns(int(history.scenario["run"]["duration"])))
    outcomes = Counter(calls["outcome"])
    closing = [i for i, outcome in enumerate(calls["outcome"]) if outcome in CLOSING]
    delays = np.array([(calls["t"][i] - calls["t_seen"][i]) / 1e6 for i in closing], dtype=np.float64)
    p50, p99 = percentiles(delays, [50, 99]) if delays.size else (None, None)
    return {
        "accounts": len(set(positions["account"])),
        "positions": len(positions["account"]),
        "hedged": hedged,
        "eligible": eligible,
        "eligible_hedged": eligible_hedged,
        "executed": outcomes[Outcome.EXECUTED],
        "partial_calls": outcomes[Outcome.PARTIAL],
        "recovered": outcomes[Outcome.RECOVERED],
        "already_liquidated": outcomes[Outcome.ALREADY_LIQUIDATED],
        "positions_closed": int(sum(calls["positions_closed"])),
        "delay_ms": {"p50": rounded(p50), "p99": rounded(p99)},
        "penalties": fsum(calls["penalty"]),
        "insurance_used": fsum(calls["insurance_used"]),
        "bad_debt": fsum(calls["bad_debt"]),
        "bad_debt_accounts": len({calls["account"][i] for i in closing if calls["bad_debt"][i] > 0}),
    }


def _eligible(history: History, positions: dict[str, list[Any]], maintenance: float,
              horizon: int) -> tuple[int, int, int]:
    """(eligible, hedged, eligible and hedged) over the accounts as opened."""
    prices = history.table("prices")
    names = np.array(prices.column("instrument").to_pylist(), dtype=object)
    within = prices.column("t").to_numpy() <= horizon
    values = prices.column("price").to_numpy()
    paths = {str(name): values[within & (names == name)] for name in set(names.tolist())}
    held: dict[int, list[int]] = {}
    for row, account in enumerate(positions["account"]):
        held.setdefault(account, []).append(row)
    eligible = hedged = eligible_hedged = 0
    for rows in held.values():
        equity = np.full_like(paths[positions["instrument"][rows[0]]], positions["collateral"][rows[0]])
        required = np.zeros_like(equity)
        for row in rows:
            path = paths[positions["instrument"][row]]
            equity = equity + pnl(float(positions["side"][row]), positions["size"][row], positions["entry"][row], path)
            required = required + maintenance * notional(positions["size"][row], path)
        is_hedged = len({positions["side"][row] for row in rows}) > 1
        is_eligible = bool(np.any(equity < required))
        hedged += is_hedged
        eligible += is_eligible
        eligible_hedged += is_hedged and is_eligible
    return eligible, hedged, eligible_hedged
