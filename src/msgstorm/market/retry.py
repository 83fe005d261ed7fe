"""A keeper's accounts to look at again, as a mask over the accounts.

Place in the pipeline: each keeper of the market reactor (``market/reactor.py``) holds one.
An account goes in when a call found it recovered, when a partial close, deleveraging, a
socialised charge or funding moved its line, or when its liquidation will never reach the
chain; the keeper's next look at a price of its instrument (``MarketReactor._look``) takes
out the ones that price puts past their line, in account order, and liquidates them.

A socialised loss puts hundreds of accounts here at once, and a lending market's keeper looks
again after every call: as a set, each look turned the set into an array; as a mask, a
charge is one assignment and a look one compiled pass over the mask (``_take_past``).
"""

from __future__ import annotations

import numpy as np

from msgstorm.jit import borrowing

__all__ = ["Retry"]

# Up to this many accounts a look tests them one at a time (plain floats cost less than
# numpy's calls); above it, as arrays.
_ONE_AT_A_TIME = 32


class Retry:
    """The accounts (ids below ``accounts``) a keeper looks at again."""

    __slots__ = ("_count", "_mask", "_taken")

    def __init__(self, accounts: int) -> None:
        self._mask = np.zeros(accounts, dtype=bool)
        self._count = 0
        self._taken = np.empty(0, dtype=np.int64)  # the compiled pass's output, made at its first use

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __contains__(self, account: int) -> bool:
        return bool(self._mask[account])

    def accounts(self) -> list[int]:
        """Every account held, in account order."""
        held: list[int] = np.flatnonzero(self._mask).tolist()
        return held

    def add(self, account: int) -> None:
        if not self._mask[account]:
            self._mask[account] = True
            self._count += 1

    def update(self, accounts: list[int] | np.ndarray) -> None:
        if isinstance(accounts, list) and len(accounts) <= 4:  # a call's own account or a few
            for account in accounts:
                self.add(account)
        elif len(accounts):
            self._mask[accounts] = True
            self._count = int(np.count_nonzero(self._mask))

    def take_past(self, instrument: int, price: float, side: list[int], line: np.ndarray, of: list[int],
                  side_array: np.ndarray, of_array: np.ndarray) -> list[int]:
        """Take out and return, in account order, the accounts of ``instrument`` that
        ``price`` puts past their ``line`` (``accounts.past_line``: longs at or below it,
        shorts at or above it); ``side`` and ``of`` (side and instrument per account) as lists
        and as arrays."""
        if not self._count:
            return []
        if self._count > _ONE_AT_A_TIME:
            if self._taken.size != self._mask.size:
                self._taken = np.empty(self._mask.size, dtype=np.int64)
            taken = _take_past(self._mask, instrument, float(price), line, side_array, of_array, self._taken)
            self._count -= taken
            again: list[int] = self._taken[:taken].tolist()
            return again
        again = [a for a in np.flatnonzero(self._mask).tolist()
                 if of[a] == instrument and (price <= line[a] if side[a] > 0 else price >= line[a])]
        if again:
            self._mask[again] = False
            self._count -= len(again)
        return again


@borrowing()
def _take_past(mask: np.ndarray, instrument: int, price: float, line: np.ndarray, side: np.ndarray, of: np.ndarray,
               taken: np.ndarray) -> int:
    """``Retry.take_past`` over the mask: the accounts held, of ``instrument``, that ``price``
    puts past their ``line``, written to ``taken`` in account order and cleared from
    ``mask``; how many."""
    count = 0
    for i in range(mask.size):
        if mask[i] and of[i] == instrument and (price <= line[i] if side[i] > 0 else price >= line[i]):
            mask[i] = False
            taken[count] = i
            count += 1
    return count
