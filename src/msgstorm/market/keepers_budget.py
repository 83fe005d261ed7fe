"""Keepers' budgets: the capital a keeper bids with and the fees it can pay, per keeper.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), built from the
keepers' ``capital`` and ``gas_budget`` (``KeeperSpec``; unset: without limit). A keeper
pays a message's fee from its gas budget when it sends it (a pending transaction holds its
gas in the wallet as a mined one spends it), and sends nothing it cannot pay: out of gas, it
stops liquidating, bidding and taking (a fee-aware keeper's next, smaller fee may still fit). An English auction's bid (``market/flip.py``) locks
its quote from the keeper's capital when sent; a bid that does not stand, or is outbid, gives
it back; a winning bid spends it (the units won are not sold back within the run). A keeper
whose free capital is below its bid does not bid: out of capital, it stops bidding, as
Maker's keepers did on 12 March 2020.
"""

from __future__ import annotations

import math

from msgstorm.scenario.market import KeeperSpec

__all__ = ["Budgets"]


class Budgets:
    """Each keeper's gas left and free capital (infinite: no limit), in the reactor's keeper order."""

    def __init__(self, specs: list[KeeperSpec]) -> None:
        self.gas = [math.inf if spec.gas_budget is None else spec.gas_budget for spec in specs]
        self.capital = [math.inf if spec.capital is None else spec.capital for spec in specs]
        self.gas_spent = [0.0] * len(specs)
        self.out_of_gas = [False] * len(specs)
        self.out_of_capital = [False] * len(specs)

    def pay_fee(self, keeper: int, fee: float) -> bool:
        """Pay a message's ``fee`` (False: the keeper cannot, and does not send it)."""
        if not self.can_pay(keeper, fee):
            return False
        self.gas[keeper] -= fee
        self.gas_spent[keeper] += fee
        return True

    def can_pay(self, keeper: int, fee: float) -> bool:
        """Whether its gas left covers ``fee`` (if not, it is marked out of gas)."""
        if fee > self.gas[keeper]:
            self.out_of_gas[keeper] = True
            return False
        return True

    def lock(self, keeper: int, amount: float) -> bool:
        """Lock a bid's quote (False: not enough free capital; it does not bid)."""
        if amount > self.capital[keeper]:
            self.out_of_capital[keeper] = True
            return False
        self.capital[keeper] -= amount
        return True

    def release(self, keeper: int, amount: float) -> None:
        """A bid that did not stand, or was outbid: its quote is free again."""
        self.capital[keeper] += amount
