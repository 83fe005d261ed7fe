"""A keeper's accounts to look at again (market/retry.py): what a look takes out, in account
order, one account at a time and as arrays alike."""

from __future__ import annotations

import numpy as np

from msgstorm.market.retry import Retry


def _book(accounts: int) -> tuple[list[int], np.ndarray, list[int]]:
    """Accounts alternating long (even) and short (odd), instrument 0 but every fifth on 1;
    each line at 100 + account."""
    side = [1 if account % 2 == 0 else -1 for account in range(accounts)]
    line = np.array([100.0 + account for account in range(accounts)])
    of = [1 if account % 5 == 4 else 0 for account in range(accounts)]
    return side, line, of


def _take(retry: Retry, instrument: int, price: float, side: list[int], line: np.ndarray, of: list[int]) -> list[int]:
    return retry.take_past(instrument, price, side, line, of, np.asarray(side, dtype=np.float64), np.asarray(of))


def test_a_look_takes_out_the_accounts_past_their_line_in_account_order() -> None:
    side, line, of = _book(8)
    retry = Retry(8)
    retry.update([6, 1, 3])  # three at once
    retry.add(0)
    retry.add(4)
    retry.add(0)  # twice: once held
    assert len(retry) == 5 and retry.accounts() == [0, 1, 3, 4, 6]
    # At 103 on instrument 0: longs with a line at or above 103 (account 6: 106; 0: 100 is
    # not), shorts with a line at or below 103 (1: 101, 3: 103); 4 is on instrument 1.
    assert _take(retry, 0, 103.0, side, line, of) == [1, 3, 6]
    assert retry.accounts() == [0, 4] and len(retry) == 2
    assert 0 in retry and 1 not in retry
    # Nothing at 99.5 on instrument 0 for account 0 (a long, line 100: 99.5 <= 100, so past).
    assert _take(retry, 0, 99.5, side, line, of) == [0]
    assert _take(retry, 1, 110.0, side, line, of) == []  # account 4 is long at 104: 110 is above it
    assert _take(retry, 1, 104.0, side, line, of) == [4]
    assert not retry and retry.accounts() == []


def test_a_look_over_many_accounts_takes_the_same_as_one_at_a_time() -> None:
    side, line, of = _book(200)
    held = np.arange(0, 200, 3)  # 67 accounts: above the one-at-a-time threshold (32)

    def rule(accounts: list[int]) -> list[int]:
        # At 150 on instrument 0: longs (even) with a line >= 150 (account >= 50), shorts
        # (odd) with a line <= 150 (account <= 50), none of instrument 1 (account % 5 == 4).
        return [a for a in accounts if a % 5 != 4 and ((a % 2 == 0 and a >= 50) or (a % 2 == 1 and a <= 50))]

    many = Retry(200)
    many.update(held)  # an array: a socialised loss's charged accounts
    assert len(many) == 67
    taken = _take(many, 0, 150.0, side, line, of)
    # by hand: the odd 3, 15, 21, 27, 33, 45 (9 and 39 are on instrument 1), the 25 even ones
    # from 54 to 198 but 54, 84, 114, 144, 174: 6 + 20
    assert taken == rule(held.tolist()) and len(taken) == 26
    assert many.accounts() == [a for a in held.tolist() if a not in taken] and len(many) == 41
    few = Retry(200)
    for account in reversed(held[:20].tolist()):  # added one at a time, out of order
        few.add(account)
    assert _take(few, 0, 150.0, side, line, of) == rule(held[:20].tolist()) == [3, 15, 21, 27, 33, 45]
    assert len(few) == 14
