"""Keepers' nonces: a keeper whose transactions are mined in nonce order.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), built when a
keeper group sets ``nonce_order`` (``KeeperSpec``). An Ethereum account's transactions are
mined in the order of their nonces, so one stuck in the pool (priced below the going gas
price, under ``backpressure.underpriced = "wait"``) holds back every later one of the same
account until it is mined. Here a send a nonce-ordered keeper decides on while one of its
transactions out is stuck (its fee below the base fee then), or while earlier sends already
wait, waits in the keeper's own queue, in order; the queue moves when one of its
transactions out is mined (commits, with any outcome: a no-op's too) and none left out is
stuck. Each waiting send is decided again when its turn comes (the keeper's handler runs
then: a lot already closed, or an account already liquidated, sends nothing, and the next
goes). Transactions out that are not stuck do not hold anything back: they are mined in the
next blocks, in the order the queue policy gives (a keeper's own are sent in nonce order and
priced alike). A stuck transaction is not replaced here (no keeper re-prices one it has out):
it holds the queue until it is mined.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable

__all__ = ["Nonces"]

Handler = Callable[[int, int, int, int, int], None]
Send = tuple[Handler, int, int, int, int]  # a send: the reactor's handler and its arguments


class Nonces:
    """Per nonce-ordered keeper (by its index): its transactions out with their fees and the
    sends waiting behind a stuck one (handler and arguments, as the reactor schedules them)."""

    def __init__(self, ordered: list[bool]) -> None:
        self.ordered = ordered
        self.out: dict[int, dict[int, float]] = {}  # keeper -> {msg_id: fee}: its transactions out
        self.keeper_of: dict[int, int] = {}  # msg_id out -> its keeper
        # keeper -> (fee, msg_id) of its transactions out, lowest fee first; a mined one stays
        # until it reaches the top (``stuck`` drops it there), so a send reads the lowest fee
        # out without a pass over all of them.
        self._lowest: dict[int, list[tuple[float, int]]] = {}
        self.waiting: dict[int, deque[Send]] = {}
        self.held = 0  # sends that waited behind a stuck transaction
        self.turn = -1  # the keeper whose waiting send is being decided (``next`` gave it its turn)

    def stuck(self, keeper: int, base_fee: float | None) -> bool:
        """Whether one of ``keeper``'s transactions out is priced below ``base_fee``."""
        out = self.out.get(keeper)
        if not out or base_fee is None:
            return False
        lowest = self._lowest[keeper]
        while lowest[0][1] not in out:  # mined
            heapq.heappop(lowest)
        return lowest[0][0] < base_fee

    def holds(self, keeper: int, base_fee: float | None, handler: Handler, a: int, b: int, c: int,
              d: int) -> bool:
        """Whether ``keeper``'s send (``handler`` with its arguments) waits: it is
        nonce-ordered and a transaction of it out is stuck, or sends wait already (the send
        then joins its queue)."""
        if not self.ordered[keeper]:
            return False
        if self.stuck(keeper, base_fee):
            return self._wait(keeper, (handler, a, b, c, d))
        if keeper == self.turn or not self.waiting.get(keeper):
            return False  # nothing stuck, and its turn (or none waits before it)
        return self._wait(keeper, (handler, a, b, c, d))

    def _wait(self, keeper: int, send: Send) -> bool:
        self.waiting.setdefault(keeper, deque()).append(send)
        self.held += 1
        return True

    def sent(self, keeper: int, msg_id: int, fee: float) -> None:
        """``keeper`` sent ``msg_id`` at ``fee`` (a nonce-ordered keeper's: out until mined)."""
        if self.ordered[keeper]:
            self.out.setdefault(keeper, {})[msg_id] = fee
            self.keeper_of[msg_id] = keeper
            heapq.heappush(self._lowest.setdefault(keeper, []), (fee, msg_id))

    def mined(self, msg_id: int) -> int | None:
        """``msg_id`` committed: its keeper when sends wait (its queue may move), else None."""
        keeper = self.keeper_of.pop(msg_id, None)
        if keeper is None:
            return None
        del self.out[keeper][msg_id]
        return keeper if self.waiting.get(keeper) else None

    def next(self, keeper: int, base_fee: float | None) -> Send | None:
        """The next send waiting for ``keeper``, whose turn it is now (None: nothing waits, or
        a transaction out is stuck)."""
        queue = self.waiting.get(keeper)
        if not queue or self.stuck(keeper, base_fee):
            self.turn = -1
            return None
        self.turn = keeper
        return queue.popleft()
