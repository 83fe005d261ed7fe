"""Keepers' nonces: a keeper whose transactions go out in nonce order, one after the other.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), built when a
keeper group sets ``nonce_order`` (``KeeperSpec``). An Ethereum account's transactions are
mined in the order of their nonces, so one stuck in the pool (priced below the going gas
price, under ``backpressure.underpriced = "wait"``) holds back every later one of the same
account until it is mined. Here a nonce-ordered keeper has at most one transaction out: a
send it decides on while one is out waits in its own queue, in order, and the queue moves
when the one out commits (is mined: any outcome, a no-op's included). Each waiting send is
decided again when its turn comes (the keeper's handler runs then: a lot already closed, or
an account already liquidated, sends nothing, and the next in the queue goes). A stuck
transaction is not replaced here (no keeper re-prices one it has out): it leaves the queue
only when mined.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["Nonces"]

Handler = Callable[[int, int, int, int, int], None]


class Nonces:
    """Per nonce-ordered keeper (by its index): the transaction it has out and the sends
    waiting behind it (handler and arguments, as the reactor schedules them)."""

    def __init__(self, ordered: list[bool]) -> None:
        self.ordered = ordered
        self.out: dict[int, int] = {}  # keeper -> the msg_id of its transaction out
        self.keeper_of: dict[int, int] = {}  # msg_id out -> its keeper
        self.waiting: dict[int, deque[tuple[Handler, int, int, int, int]]] = {}
        self.held = 0  # sends that waited behind a transaction out

    def holds(self, keeper: int, handler: Handler, a: int, b: int, c: int, d: int) -> bool:
        """Whether ``keeper``'s send (``handler`` with its arguments) waits: it is
        nonce-ordered and has a transaction out (the send then joins its queue)."""
        if not self.ordered[keeper] or keeper not in self.out:
            return False
        self.waiting.setdefault(keeper, deque()).append((handler, a, b, c, d))
        self.held += 1
        return True

    def sent(self, keeper: int, msg_id: int) -> None:
        """``keeper`` sent ``msg_id`` (a nonce-ordered keeper's: now its transaction out)."""
        if self.ordered[keeper]:
            self.out[keeper] = msg_id
            self.keeper_of[msg_id] = keeper

    def mined(self, msg_id: int) -> int | None:
        """``msg_id`` committed: the keeper whose transaction out it was (its queue may move), or None."""
        keeper = self.keeper_of.pop(msg_id, None)
        if keeper is not None:
            del self.out[keeper]
        return keeper

    def next(self, keeper: int) -> tuple[Handler, int, int, int, int] | None:
        """The next send waiting for ``keeper``, if it has none out (None: nothing waits, or one is out)."""
        queue = self.waiting.get(keeper)
        if not queue or keeper in self.out:
            return None
        return queue.popleft()
