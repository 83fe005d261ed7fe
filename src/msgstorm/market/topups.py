"""Traders who top up their collateral before a keeper liquidates them.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), built with
``[market.topups]``; it writes the ``topups`` table. Each account's coin is tossed once (with
``probability`` it tops up). Its trader watches prices at the top-ups' node through a cursor
over lines moved ``near`` towards the price (the others' lines are out of reach): when a price
validated there crosses one, ``reaction`` later the trader sends an ``order`` message (unless
the account was liquidated by then). When that message commits, the account's collateral
grows by what brings it to ``to_leverage`` at the on-chain price then (``accounts.equity``:
nothing if it is there already), and its lines move (``accounts.line_prices``). A trader sends
one top-up in a run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from msgstorm.market.accounts import Accounts, LineIndex, equity, line_prices, notional
from msgstorm.sampling import Sampler
from msgstorm.scenario.market import MarketSpec, TopUpSpec

__all__ = ["TopUps"]


class TopUps:
    """The top-ups of one run. The reactor calls ``near_line`` with each price validated at
    ``node``, ``committed`` with each top-up message that commits (``sent``: msg_id ->
    account) and ``take_rows`` when it writes its history. The arrays are the reactor's
    working copies of the accounts (``market/reactor.py``), changed in place; ``chain_price``
    is its on-chain price per instrument."""

    def __init__(self, spec: TopUpSpec, market: MarketSpec, accounts: Accounts, host: Any,
                 seed: np.random.SeedSequence, side: list[int], size: np.ndarray, entry: list[float],
                 collateral: np.ndarray, line: np.ndarray, bankruptcy: np.ndarray, instrument: list[int],
                 liquidated: np.ndarray, chain_price: list[float]) -> None:
        self.spec = spec
        self.maintenance = market.maintenance_margin
        self.host = host
        self._side, self._size, self._entry, self._collateral = side, size, entry, collateral
        self._line, self._bankruptcy, self._instrument = line, bankruptcy, instrument
        self.liquidated = liquidated
        self.chain_price = chain_price
        self.sent: dict[int, int] = {}  # top-up msg_id -> account
        self.topping_up: set[int] = set()  # accounts that have sent theirs
        self._rows: list[tuple[Any, ...]] = []
        rng = np.random.default_rng(seed)
        tops = rng.random(len(accounts)) < spec.probability
        self.reaction = Sampler(spec.reaction, rng)
        long = accounts.side > 0
        near = np.where(long, accounts.liquidation * (1.0 + spec.near), accounts.liquidation * (1.0 - spec.near))
        near = np.where(tops, near, np.where(long, -np.inf, np.inf))
        self.cursor = LineIndex(dataclasses.replace(accounts, liquidation=near), len(market.instruments)).cursor()
        self.node = 0 if spec.node is None else host.node_names.index(spec.node)

    def near_line(self, t: int, instrument: int, price: float) -> None:
        """A price validated at the top-ups' node: the traders whose moved line it crosses
        send their top-up ``reaction`` later."""
        for account in self.cursor.past(instrument, price):
            if not self.liquidated[account] and account not in self.topping_up:
                self.topping_up.add(account)
                self.host.schedule_send(t + self.reaction(), self._send, account)

    def _send(self, t: int, account: int, _b: int, _c: int, _d: int) -> None:
        spec = self.spec
        if self.liquidated[account]:
            return
        msg_id = self.host.send(t, self.host.agent_index(spec.name), "order", self.node, account, spec.size,
                                spec.fee)
        self.sent[msg_id] = account

    def committed(self, t: int, msg_id: int, account: int) -> None:
        """A committed top-up: collateral for ``to_leverage`` at the on-chain price, new lines."""
        amount = 0.0
        if not self.liquidated[account]:
            price = self.chain_price[self._instrument[account]]
            size, side = float(self._size[account]), self._side[account]
            now = equity(side, size, self._entry[account], float(self._collateral[account]), price)
            amount = max(0.0, notional(size, price) / self.spec.to_leverage - now)
            self._collateral[account] = float(self._collateral[account]) + amount
            line, bankrupt = line_prices(np.array([side]), np.array([size]), np.array([self._entry[account]]),
                                         np.array([float(self._collateral[account])]), self.maintenance)
            self._line[account] = float(line[0])
            self._bankruptcy[account] = float(bankrupt[0])
        self._rows.append((t, msg_id, account, amount, float(self._collateral[account]),
                           float(self._line[account]), float(self._bankruptcy[account])))

    def take_rows(self) -> dict[str, list[Any]] | None:
        """The ``topups`` rows gathered since the last call (None: none)."""
        if not self._rows:
            return None
        columns = list(zip(*self._rows, strict=True))
        self._rows = []
        return dict(zip(("t", "msg_id", "account", "amount", "collateral_after", "liquidation_price",
                         "bankruptcy_price"), (list(column) for column in columns), strict=True))
