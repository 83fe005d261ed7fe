"""The ``batch_auction`` queue policy: a frequent batch auction's sequencing.

Place in the pipeline: a queue policy (``sim/policies.py``) of the leader's ``Sequencer``,
with a clock (``PolicyHost.schedule``). Time is cut into intervals of
``sequencer.batch_auction.interval`` from 0; what the sequencer admits during an interval
is one batch, held until the interval closes, then released to the workers all at once,
in an order drawn from each message's id by a bit mixer (not by arrival: within a batch,
arriving first gives no place). Every message of a batch takes effect at once
(``execution_rank`` is the batch's number): its orders clear at one uniform price
(``market/auction.py`` is the clearing rule; ``market/auction_book.py`` draws the limit
orders of a scenario with ``[market.orders]`` and clears each batch).

Lifecycle: built per run; ``attach`` starts the clock; the clock stops at the run's hard
stop (the host drops later events).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from msgstorm.scenario.registry import QUEUE_POLICIES
from msgstorm.scenario.schema import BatchAuctionSpec
from msgstorm.sim.policies import PolicyHost
from msgstorm.sim.state import MSG_ID

__all__ = ["BatchAuctionPolicy", "within_batch_key"]

_MASK = (1 << 64) - 1


def within_batch_key(msg_id: int) -> int:
    """A message's place within its batch: splitmix64's finaliser of its id (a fixed
    permutation of ids that scatters neighbours, so neither sending first nor last helps)."""
    z = (msg_id + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@QUEUE_POLICIES.register("batch_auction")
class BatchAuctionPolicy:
    """Admitted messages wait for their interval to close; then the batch is served."""

    work_conserving = False  # a message waits for its batch even when a worker is idle

    def __init__(self) -> None:
        self.interval_ns = BatchAuctionSpec().interval
        self.forming: list[int] = []  # this interval's messages
        self.released: deque[int] = deque()  # closed batches, in service order
        self.batch_of: dict[int, int] = {}  # msg -> its batch's number, until it commits
        self.batch = 0  # the number of the batch forming
        self.host: PolicyHost | None = None

    def attach(self, host: PolicyHost) -> None:
        spec = host.scenario.sequencer.batch_auction or BatchAuctionSpec()
        self.interval_ns = spec.interval
        self.host = host
        host.schedule(self.interval_ns, self._close)

    def push(self, msg: int, fee: float, t_ns: int) -> None:
        self.forming.append(msg)
        self.batch_of[msg] = self.batch

    def _close(self, t: int, _a: int, _b: int, _c: int, _d: int) -> None:
        """The interval ends: its batch goes to the workers; the next one starts forming."""
        assert self.host is not None
        if self.forming:
            self.released.extend(sorted(self.forming, key=within_batch_key))
            self.forming = []
            self.host.wake(t)
        self.batch += 1
        self.host.schedule(t + self.interval_ns, self._close)

    def ready(self) -> int:
        return len(self.released)

    def pop(self) -> int:
        if self.released:
            return self.released.popleft()
        return self.forming.pop()  # a crashed leader empties the queue

    def __len__(self) -> int:
        return len(self.released) + len(self.forming)

    def execution_rank(self, record: list[Any]) -> int | None:
        return self.batch_of.pop(record[MSG_ID], None)
