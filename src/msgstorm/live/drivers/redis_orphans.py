"""XADDs whose replies died with the publisher's connection, acked by the reads that find them.

Place in the pipeline: kept by the Redis driver (``drivers/redis.py``). An XADD whose reply
was lost with its connection has no ack, yet Redis may have appended it; a consumer that
reads its entry reads its entry id, the broker's order for it. So the driver notes the
entries its consumers read of the round trip in flight (``read``), and when the connection
dies (``lost``) acks those at once with their orders, keeping the rest as orphans that a
later read acks (``read`` again). A message a consumer received is then a sequenced one, as
every committed message is (``analysis/delivery.py``'s committed-implies-sequenced).
"""

from __future__ import annotations

import numpy as np

from msgstorm.live.drivers.redis_wire import entry_orders

__all__ = ["Orphans", "orphans_read"]


def orphans_read(orphans: np.ndarray, ids: np.ndarray, entry_ids: list[bytes]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of the entries one read brought (message ``ids[i]`` in entry ``entry_ids[i]``), those
    of the messages ``orphans``: their message ids, their entries' orders (``entry_order``),
    and the orphans left unread. An entry read twice (fan-out) counts at its first read."""
    found = np.isin(ids, orphans)
    if not found.any():
        return ids[:0], np.zeros(0, dtype=np.int64), orphans
    read_ids, at = np.unique(ids[found], return_index=True)
    chosen = np.flatnonzero(found)[at]
    orders = entry_orders([entry_ids[i] for i in chosen.tolist()])
    return read_ids, orders, orphans[~np.isin(orphans, read_ids)]


class Orphans:
    """The round trip in flight (``flying``), the orders of its entries read so far, and the
    orphans: XADDs of a lost round trip that no read has found yet."""

    def __init__(self) -> None:
        self.flying = np.zeros(0, dtype=np.int64)
        self.orphans = np.zeros(0, dtype=np.int64)
        self._read_flying: dict[int, int] = {}

    @property
    def watched(self) -> bool:
        """Whether a read must be looked at: a round trip in flight, or orphans."""
        return bool(self.flying.size or self.orphans.size)

    def send(self, ids: np.ndarray) -> None:
        """A round trip of the XADDs of messages ``ids`` is in flight."""
        self.flying, self._read_flying = ids, {}

    def answered(self) -> None:
        """The round trip in flight got its replies: its acks are the replies'."""
        self.flying, self._read_flying = self.flying[:0], {}

    def lost(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The round trip in flight lost its connection: the messages a consumer has read and
        their entries' orders (acked now), and how many are orphans now."""
        seen = self._read_flying
        read = np.isin(self.flying, np.fromiter(seen, dtype=np.int64, count=len(seen)))
        done = self.flying[read]
        orders = np.array([seen[m] for m in done.tolist()], dtype=np.int64)
        self.orphans = np.concatenate([self.orphans, self.flying[~read].astype(np.int64)])
        unread = int((~read).sum())
        self.answered()
        return done, orders, unread

    def read(self, ids: np.ndarray, entry_ids: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """One read's entries (message ``ids[i]`` in ``entry_ids[i]``): note the orders of
        those in flight; the orphans among them, with their orders, to be acked now."""
        if self.flying.size:
            flying, orders, _ = orphans_read(self.flying, ids, entry_ids)
            self._read_flying.update(zip(flying.tolist(), orders.tolist(), strict=True))
        if not self.orphans.size:
            return ids[:0], np.zeros(0, dtype=np.int64)
        read_ids, orders, self.orphans = orphans_read(self.orphans, ids, entry_ids)
        return read_ids, orders
