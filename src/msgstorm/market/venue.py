"""The venue's books: an insurance fund fed by liquidation penalties, and what covers a
bankrupt account's shortfall when the fund cannot.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), built when the
scenario's ``[market.liquidation]`` asks for more than today's whole liquidations without a
fund (``LiquidationSpec.keeps_today``). The reactor hands it each liquidation call
(``market/liquidation.py``); it applies the call to the account, then covers a shortfall
(the negative collateral a whole close leaves), in this order:

1. the insurance fund, up to its balance;
2. by ``on_empty``: ``adl``, auto-deleveraging: the open accounts on the other side of the
   same instrument with a profit at the price, ranked by profit x leverage (notional /
   equity; ties by account), highest first, each closed (up to the bankrupt's closed units
   in all) at the bankrupt position's price: each unit gives up ``shortfall / closed units``
   of what it would realise at the price, and at most its profit; ``socialise``: the open
   accounts of the instrument with a profit pay the rest pro rata to their profit, at most
   all of it;
3. what is left is bad debt.

The account's collateral then ends at 0. Every movement is a ``venue`` row (``kind``:
``keeper_fee``, ``insurance_fee``, ``insurance_used``, ``deleveraged``, ``socialised``,
``bad_debt``, ``partial``: a call that left the position open) with the account's size and
collateral after it and the fund's balance, so the analysis reads the books from the history
alone; a socialised loss is recorded once in a run without top-ups (``Moves.loss``: the
``socialised_losses`` table), and the analysis replays its rows (``analysis/market.py``,
``venue_table``). The books balance (docs/model.md, ``tests/test_market_venue.py``): over the accounts,
collateral change - realised PnL + penalties + slippage + what they paid to deleveraging and
socialised loss = insurance fund used + deleveraged + socialised + bad debt.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from msgstorm.market.liquidation import Call, Calls
from msgstorm.rules.liquidation import adl_price_per_unit
from msgstorm.rules.market import equity, notional, pnl
from msgstorm.scenario.market import LiquidationSpec

__all__ = ["Entry", "Moves", "Venue", "fund_draw", "moved_open", "unrounded"]


class Entry(NamedTuple):  # a tuple: a socialised loss makes one per account in profit
    """One movement of the books (a ``venue`` row without its time and message)."""

    kind: str
    account: int
    amount: float
    size_after: float
    collateral_after: float
    fund_after: float


class Moves:
    """A call's entries in order: ``Venue.book`` adds them as rows in the ``venue`` table's
    order without its time and message (``rows``: account, kind, amount, size_after,
    collateral_after, fund_after; ``entries`` gives them as ``Entry`` rows). A socialised
    loss's rows, one per account in profit, are one block of numpy columns (``block``, all
    of kind ``socialised``) placed after the first ``block_at`` rows; ``loss`` is that loss
    once: (price, charged, total), what the ``socialised_losses`` table records. ``others``:
    whether a row names an account other than the call's (deleveraging)."""

    __slots__ = ("block", "block_at", "loss", "others", "rows")

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, float, float, float, float]] = []
        # (account, amount, size_after, collateral_after): int64 and float64 columns of kind
        # ``socialised``, each row's fund_after the one ``fund_after`` of the block.
        self.block: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self.block_at = 0
        self.loss: tuple[float, float, float] | None = None
        self.others = False

    def __len__(self) -> int:
        return len(self.rows) + (0 if self.block is None else len(self.block[0]))

    def entries(self) -> list[Entry]:
        rows = [Entry(kind, account, amount, size_after, collateral_after, fund_after)
                for account, kind, amount, size_after, collateral_after, fund_after in self.rows]
        if self.block is not None:
            account, amount, size_after, collateral_after, fund = self.block
            rows[self.block_at:self.block_at] = [
                Entry("socialised", *row, fund) for row in zip(account.tolist(), amount.tolist(), size_after.tolist(),
                                                                collateral_after.tolist(), strict=True)]
        return rows


class Venue:
    """The books over the reactor's own account state and its ``liquidated`` flags (shared,
    changed in place), so the reactor and the venue see one state: ``size`` and
    ``collateral`` are float64 arrays (a socialised loss charges hundreds of accounts with a
    few array operations), ``side``, ``entry`` and ``instrument`` lists that no call changes."""

    def __init__(self, spec: LiquidationSpec, side: list[int], size: np.ndarray, entry: list[float],
                 collateral: np.ndarray, instrument: list[int], closed: np.ndarray) -> None:
        if size.dtype != np.float64 or collateral.dtype != np.float64:
            raise TypeError("Venue: size and collateral must be float64 arrays (changed in place)")
        self.spec = spec
        self.fund = spec.insurance_fund
        self.side, self.size, self.entry, self.collateral = side, size, entry, collateral
        self.instrument, self.closed = instrument, closed
        # The columns no call changes, as arrays once.
        self._side_array = np.asarray(side, dtype=np.float64)
        self._entry_array = np.asarray(entry, dtype=np.float64)
        self._instrument_array = np.asarray(instrument)
        # (instrument, 0 or the side it is the other side of) -> its accounts, as a mask
        self._of: dict[tuple[int, int], np.ndarray] = {}
        # A socialised loss's (accounts, shares, sizes, collateral after), written by its pass.
        self._buffers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def apply(self, account: int, done: Call) -> tuple[list[Entry], float]:
        """Apply a liquidation call to ``account``: its books' entries, and the bad debt left."""
        moves, bad_debt = self.book(account, done)
        return moves.entries(), bad_debt

    def book(self, account: int, done: Call) -> tuple[Moves, float]:
        """``apply`` with the entries as columns (the reactor's ``venue`` rows)."""
        size, collateral, fund = done.size_after, done.collateral_after, self.fund
        self.size[account] = size
        self.collateral[account] = collateral
        entries = Moves()
        # The account's size and collateral after, as ``_entry`` reads them back (a float
        # through a float64 array and back is the same float). Each row's ``fund_after`` is
        # the fund once that row's movement is in: the insurance fee reaches it on its own
        # row, not before.
        self.fund += done.fund_fee
        entries.rows += [(account, "keeper_fee", done.keeper_fee, size, collateral, fund),
                         (account, "insurance_fee", done.fund_fee, size, collateral, self.fund)]
        if not done.whole:
            entries.rows.append((account, "partial", notional(done.closed, done.price), size, collateral, self.fund))
            return entries, 0.0
        self.closed[account] = True
        shortfall = max(0.0, -done.collateral_after)
        if shortfall <= 0:
            return entries, 0.0
        used, left = fund_draw(self.fund, shortfall)
        self.fund -= used
        self.collateral[account] += used
        self._entry(entries, "insurance_used", account, used)
        if left > 0 and self.spec.on_empty == "adl":
            left = self._deleverage(account, done, left, entries)
        elif left > 0 and self.spec.on_empty == "socialise":
            left = self._socialise(account, done.price, left, entries)
        left = unrounded(left, shortfall)
        self.collateral[account] = 0.0  # covered, or the rest is the venue's bad debt
        self._entry(entries, "bad_debt", account, left)
        return entries, left

    def book_many(self, accounts: np.ndarray, done: Calls) -> tuple[int, np.ndarray]:
        """``book`` of calls on distinct ``accounts``, in order, as far as the fund covers each
        shortfall: a cover beyond it (``on_empty``) moves other accounts, so the caller books
        that call with ``book`` and the rest after it again. How many calls it booked, and the
        bad debt each left (the same numbers as ``book``'s, call by call: the fund's sums in
        the same order). The probe books book a block's calls so (``market/probes.py``)."""
        covers = self.spec.on_empty != "none"
        fund = self.fund
        bad = [0.0] * len(accounts)
        count = len(accounts)
        for at, (fee, whole, after) in enumerate(zip(done.fund_fee.tolist(), done.whole.tolist(),
                                                      done.collateral_after.tolist(), strict=True)):
            held = fund + fee
            if whole and after < 0.0:  # a shortfall: the fund first
                shortfall = -after
                used, left = fund_draw(held, shortfall)
                if left > 0 and covers:
                    count = at
                    break
                held -= used
                bad[at] = unrounded(left, shortfall)
            fund = held
        self.fund = fund
        booked = accounts[:count]
        whole = done.whole[:count]
        after = done.collateral_after[:count]
        self.size[booked] = done.size_after[:count]
        self.collateral[booked] = np.where(whole & (after < 0.0), 0.0, after)
        self.closed[booked[whole]] = True
        return count, np.asarray(bad[:count], dtype=np.float64)

    def book_lot(self, account: int, done: Call) -> tuple[Moves, float]:
        """A lot bitten from ``account`` with a ``lump`` (``market/flip.py``) closed by
        ``done``, a close of the lot's own units and share of the collateral value: its
        penalty to the fund as any call's, what it left above the debt (``done.collateral_after``
        above 0: the units given back) to the owner outside the vault (a ``to_owner`` row, as
        Maker's flip moved them to the owner's address, not into the vault), and its shortfall
        (``done.collateral_after`` below 0: the debt its bid did not cover) from the fund, the
        rest bad debt. The vault's own
        size and collateral stay as the bite left them (each row carries them). The entries,
        and the bad debt left."""
        size, collateral = float(self.size[account]), float(self.collateral[account])
        entries = Moves()
        fund = self.fund
        self.fund += done.fund_fee
        entries.rows += [(account, "keeper_fee", done.keeper_fee, size, collateral, fund),
                         (account, "insurance_fee", done.fund_fee, size, collateral, self.fund)]
        if done.collateral_after > 0:  # the units given back: the owner's, outside the vault
            entries.rows.append((account, "to_owner", done.collateral_after, size, collateral,
                                 self.fund))
        shortfall = max(0.0, -done.collateral_after)
        if shortfall <= 0:
            return entries, 0.0
        used, left = fund_draw(self.fund, shortfall)
        self.fund -= used
        entries.rows.append((account, "insurance_used", used, size, collateral, self.fund))
        left = unrounded(left, shortfall)
        entries.rows.append((account, "bad_debt", left, size, collateral, self.fund))
        return entries, left

    def _profitable(self, account: int, price: float, other_side: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(accounts, profit at ``price``, size) of the open accounts of ``account``'s
        instrument with a profit (on the other side only with ``other_side``), by account.

        One pass over every account's arrays: at a few thousand accounts a handful of numpy
        operations over all of them costs less than finding the few in profit first (sorted
        by entry, the candidates a prefix of the longs and a suffix of the shorts: 1.5 to 2
        times the time, docs/performance.md), as the accounts in profit in a crash are a
        third to a half of the instrument's."""
        size = self.size
        of = self._mask_of(account, other_side)
        made = self._side_array * size * (price - self._entry_array)  # ``pnl``, the price a scalar: the same numbers
        eligible = made > 0
        eligible &= size > 0
        eligible &= of
        eligible &= ~self.closed
        eligible[account] = False
        found = np.flatnonzero(eligible)
        return found, made[found], size[found]

    def _mask_of(self, account: int, other_side: bool) -> np.ndarray:
        """The accounts of ``account``'s instrument (on the other side only with
        ``other_side``), as a mask (made once for each)."""
        key = (self.instrument[account], self.side[account] if other_side else 0)
        of = self._of.get(key)
        if of is None:
            of = self._instrument_array == key[0]
            if other_side:
                of &= self._side_array != key[1]
            self._of[key] = of
        return of

    def _deleverage(self, account: int, done: Call, left: float, entries: Moves) -> float:
        price = done.price
        found, profits, sizes = self._profitable(account, price, other_side=True)
        # Ranked by profit x leverage (notional / equity), highest first, ties by account.
        others = found.tolist()
        prices = np.full_like(sizes, price)
        held = equity(self._side_array[found], sizes, self._entry_array[found], self.collateral[found], prices)
        with np.errstate(divide="ignore"):  # an equity of 0: the highest leverage
            score = -profits * (notional(sizes, prices) / held)
        order = np.lexsort((found, score)).tolist()
        made_of = profits.tolist()
        per_unit = adl_price_per_unit(left, done.closed)
        units = done.closed
        for at in order:  # the ranking's head: a few of them take the closed units
            if units <= 0 or left <= 0:
                break
            other, made = others[at], made_of[at]
            size = float(self.size[other])
            taken = min(size, units)
            transfer = min(taken * per_unit, made * taken / size, left)
            # It closes ``taken`` units at the bankrupt price: its PnL at the price, less the transfer.
            self.collateral[other] = (float(self.collateral[other])
                                      + (pnl(float(self.side[other]), taken, self.entry[other], price) - transfer))
            self.size[other] = size - taken
            if self.size[other] <= 0:
                self.closed[other] = True
            self.collateral[account] += transfer
            units -= taken
            left -= transfer
            self._entry(entries, "deleveraged", other, transfer)
            entries.others = True
        return left

    def _socialise(self, account: int, price: float, left: float, entries: Moves) -> float:
        """The open accounts of the instrument in profit pay ``left`` pro rata to their profit,
        at most all of it (``rules/socialised.py``: one compiled pass; each share
        ``charged x profit / total``, the total summed in account order); what is left."""
        from msgstorm.rules.socialised import socialise  # here: the analysis imports no numba

        if self._buffers is None:
            n = len(self.size)
            self._buffers = (np.empty(n, dtype=np.int64), np.empty(n), np.empty(n), np.empty(n))
        found, shares, sizes, after = self._buffers
        count, total, charged = socialise(self._side_array, self.size, self._entry_array, self.collateral,
                                          self.closed, self._mask_of(account, False), account, float(price),
                                          float(left), found, shares, sizes, after)
        if total <= 0:
            return left
        entries.block_at = len(entries.rows)
        entries.block = (found[:count].copy(), shares[:count].copy(), sizes[:count].copy(), after[:count].copy(),
                         self.fund)
        entries.loss = (price, charged, total)
        self.collateral[account] += charged
        return left - charged

    def _entry(self, entries: Moves, kind: str, account: int, amount: float) -> None:
        entries.rows.append((account, kind, amount, float(self.size[account]), float(self.collateral[account]), self.fund))


def fund_draw(fund: float, shortfall: float) -> tuple[float, float]:
    """What the insurance fund pays of a ``shortfall`` (all it holds, at most the shortfall),
    and what is left of it: the first cover of every book (``book``, ``book_lot``,
    ``book_many``)."""
    used = min(fund, shortfall)
    return used, shortfall - used


def unrounded(left: float, shortfall: float) -> float:
    """What is left of a ``shortfall`` once covered, 0 where it is what the cover's sums leave
    of rounding (at most 1e-12 of the shortfall)."""
    return 0.0 if left <= shortfall * 1e-12 else left


def moved_open(moves: Moves, account: int, closed: np.ndarray) -> list[int] | np.ndarray:
    """The accounts still open whose size or collateral a call's books moved (``account``'s
    own partial close, the deleveraged, the charged of a socialised loss), by account: their
    lines move, and every keeper looks at them again (the reactor, and each probe book)."""
    block = moves.block
    if block is None and not moves.others:  # only the call's own account's rows
        return [] if closed[account] else [account]
    others = sorted({row[0] for row in moves.rows if not closed[row[0]]})
    if block is None:  # a call's own rows and deleveraged accounts': as rows
        return others
    charged = block[0]  # a socialised loss: a row for every account in profit
    touched: np.ndarray = charged[~closed[charged]]
    return np.union1d(touched, np.asarray(others, dtype=np.int64)) if others else touched
