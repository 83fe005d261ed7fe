"""Cross-margin accounts in a run: drawn, watched by the keepers, liquidated at commit.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), built when a
``[[market.accounts]]`` group says ``margin = "cross"``; ``market/cross.py`` holds the margin
rule and the books. Account ids follow the isolated accounts' (``first`` on), so a
liquidation message's key names either kind; the isolated accounts and their tables are
untouched by these.

- Drawing: each cross group from the same child of the accounts' seed an isolated group of
  that place would use; per account a collateral, and per position (one on each of the
  group's ``instruments``) a leverage and a side drawn as an isolated account's are, and size
  ``leverage x collateral / (positions x price)``: the account's gross leverage is the mean
  of its positions'.
- Watching: a keeper keeps the newest price it has seen of each instrument; a price of
  instrument i makes it check every open cross account holding i at those prices (a scan:
  cross accounts are few beside the isolated ones, whose lines are indexed) and send a
  liquidation for each one whose equity is below its requirement.
- Executing: a committed liquidation is judged at the on-chain prices then; liquidatable, it
  is called by the scenario's mechanism (``whole`` or ``partial``) and booked; else it is
  ``recovered`` (the keeper looks again on its next price) or ``already_liquidated``. The
  cross accounts' books are their own: an insurance fund starting at ``insurance_fund`` and
  fed by their penalties' fund share, apart from the isolated accounts' (``market/venue.py``),
  so each kind's books read from its own tables.

Tables: ``cross_accounts`` (one row per position, at the start) and ``cross_executions``
(one row per committed liquidation), read by ``analysis/cross.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from msgstorm.history.outcomes import Outcome
from msgstorm.market.accounts import drawn_leverage
from msgstorm.market.cross import CrossAccount, CrossBooks
from msgstorm.market.liquidation import Mechanism
from msgstorm.sampling import sample_array
from msgstorm.scenario.market import MarketSpec, cross_margin_problems

__all__ = ["CrossMargin", "draw_cross_accounts"]


def draw_cross_accounts(market: MarketSpec, initial_prices: list[float],
                        seed: np.random.SeedSequence) -> list[CrossAccount]:
    """Every cross group's accounts in order (see the module's docstring)."""
    names = [instrument.name for instrument in market.instruments]
    accounts: list[CrossAccount] = []
    for index, group in enumerate(market.accounts):
        if group.margin != "cross":
            continue
        # The child ``seed.spawn`` gives this group in ``draw_accounts`` (spawned there first).
        rng = np.random.default_rng(np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, index)))
        chosen = [names.index(name) for name in (names if group.instruments is None else group.instruments)]
        n, m = group.count, len(chosen)
        leverage = drawn_leverage(group, rng, n * m).reshape(n, m)
        collateral = np.maximum(sample_array(group.collateral, rng, n), 1e-9)
        side = np.where(rng.random(n * m) < group.long_share, 1, -1).reshape(n, m)
        prices = np.array([initial_prices[i] for i in chosen], dtype=np.float64)
        size = leverage * collateral[:, None] / (m * prices[None, :])
        for a in range(n):
            accounts.append(CrossAccount(float(collateral[a]), list(chosen), side[a].tolist(), size[a].tolist(),
                                         prices.tolist()))
    return accounts


class CrossMargin:
    """The run's cross accounts (ids ``first`` on), what each keeper has seen and sent, and
    the rows of the two tables."""

    def __init__(self, market: MarketSpec, rule: Mechanism, first: int, initial_prices: list[float], keepers: int,
                 seed: np.random.SeedSequence) -> None:
        problems = cross_margin_problems(market)
        if problems:  # a scenario not read by the loader
            location, message = problems[0]
            raise ValueError(f"{'.'.join(str(part) for part in location)}: {message}")
        self.accounts = draw_cross_accounts(market, initial_prices, seed)
        self.books = CrossBooks(rule, self.accounts)
        self.first = first
        self.names = [instrument.name for instrument in market.instruments]
        self.holding: list[list[int]] = [[] for _ in market.instruments]
        for index, account in enumerate(self.accounts):
            for instrument in sorted(set(account.instrument)):
                self.holding[instrument].append(index)
        self.seen = [list(initial_prices) for _ in range(keepers)]
        self.pending: list[set[int]] = [set() for _ in range(keepers)]
        self.closed = [False] * len(self.accounts)
        self.trigger_of: dict[int, tuple[int, int]] = {}  # msg_id -> (t seen, t sent)
        self._rows: list[tuple[Any, ...]] = []

    def owns(self, account: int) -> bool:
        return account >= self.first

    def due(self, keeper: int, instrument: int, price: float) -> list[int]:
        """The account ids ``keeper`` sends for after seeing ``price`` of ``instrument``."""
        seen = self.seen[keeper]
        seen[instrument] = price
        pending = self.pending[keeper]
        return [self.first + index for index in self.holding[instrument]
                if not self.closed[index] and index not in pending and self.books.liquidatable(index, seen)]

    def hold(self, keeper: int, account: int) -> None:
        """``keeper`` will send for ``account``: it looks no more until that commits or it gives up."""
        self.pending[keeper].add(account - self.first)

    def sent(self, msg_id: int, t_seen: int, t_sent: int) -> None:
        self.trigger_of[msg_id] = (t_seen, t_sent)

    def gave_up(self, keeper: int, account: int) -> None:
        self.pending[keeper].discard(account - self.first)

    def execute(self, t: int, msg_id: int, account: int, keeper: int, keeper_name: str, prices: list[float],
                depths: list[float]) -> None:
        """A committed liquidation of ``account`` at the on-chain ``prices``: a row."""
        index = account - self.first
        self.pending[keeper].discard(index)
        t_seen, t_sent = self.trigger_of.pop(msg_id, (t, t))
        held = self.accounts[index]
        closed = 0
        pnl = penalty = slippage = bad_debt = used = 0.0
        if self.closed[index]:
            outcome = Outcome.ALREADY_LIQUIDATED
        elif not self.books.liquidatable(index, prices):
            outcome = Outcome.RECOVERED
        else:
            done = self.books.call(index, prices, depths)
            used_before = self.books.insurance_used
            bad_debt = self.books.apply(index, done)
            used = self.books.insurance_used - used_before
            closed = len(done.closed)
            pnl, penalty, slippage = math.fsum(done.pnl), math.fsum(done.penalty), math.fsum(done.slippage)
            self.closed[index] = done.whole
            outcome = Outcome.EXECUTED if done.whole else Outcome.PARTIAL
        self._rows.append((t, msg_id, account, keeper_name, outcome, t_seen, t_sent, closed, pnl, penalty,
                           slippage, held.collateral, used, bad_debt, self.books.fund))

    def start_columns(self) -> dict[str, list[Any]]:
        """The ``cross_accounts`` table: one row per position."""
        rows = [(self.first + index, position, self.names[account.instrument[position]], account.side[position],
                 account.size[position], account.entry[position], account.collateral)
                for index, account in enumerate(self.accounts) for position in range(len(account.size))]
        names = ("account", "position", "instrument", "side", "size", "entry", "collateral")
        return {name: [row[at] for row in rows] for at, name in enumerate(names)}

    def take_rows(self) -> dict[str, list[Any]] | None:
        """The ``cross_executions`` rows gathered since the last call (None: none)."""
        if not self._rows:
            return None
        names = ("t", "msg_id", "account", "keeper", "outcome", "t_seen", "t_sent", "positions_closed", "pnl",
                 "penalty", "slippage", "collateral_after", "insurance_used", "bad_debt", "fund_after")
        rows, self._rows = self._rows, []
        return {name: [row[at] for row in rows] for at, name in enumerate(names)}
