"""The messages waiting for the base fee to fall, kept in the order they came.

Place in the pipeline: inside the simulator, one part of the ``Sequencer`` (``waiting``).
Under a priced backpressure mode (EIP-1559, ``underpriced = "wait"``) a message under the
base fee waits here with its fee; a block that lowers the base fee lets in every one it now
admits, highest fee first, then the order they came (``admitted``); a crashed leader
empties it (``drain``).

Written by hand, in place of a sorted container, because of how this one is used: under a
base fee that swings around a flood's fees, the whole queue (tens of thousands of messages)
joins the list at once and comes back a few blocks later, while the arrivals priced out in
between join one at a time. The list is never sorted as a whole: it keeps its messages in
the order they came (an arrival is appended, a turned-away queue is appended in its pop
order), and a falling base fee takes out the ones it admits with a comparison over the fee
column and orders only those, by a stable sort on the fee (numpy's, on arrays: no Python
comparison per entry). A stable sort on the fee of entries in the order they came is the
order by (fee descending, arrival): the same history as any sorted container
(``tests/test_sim_fee_wait.py`` compares it with ``sortedcontainers``' ``SortedList`` on
random operations).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["FeeWaitList"]


class FeeWaitList:
    """Messages and their fees in the order they came; read highest fee first, then that
    order."""

    __slots__ = ("_best", "_fees", "_msgs", "_tail_fees", "_tail_msgs", "joined")

    def __init__(self) -> None:
        # What came before the last read, as arrays, and what came since, as lists (an
        # append per arrival costs no array copy).
        self._fees = np.empty(0, np.float64)
        self._msgs = np.empty(0, np.int64)
        self._tail_fees: list[float] = []
        self._tail_msgs: list[int] = []
        self._best: float | None = None  # the highest fee waiting
        self.joined = 0  # how many times a message joined the list, in all

    def add(self, fee: float, msg: int) -> None:
        self.joined += 1
        self._tail_fees.append(fee)
        self._tail_msgs.append(msg)
        if self._best is None or fee > self._best:
            self._best = fee

    def update(self, msgs: list[int], fees: list[float]) -> None:
        """Each of ``msgs`` with its fee, in that order (a queue turned away, in pop order)."""
        if not msgs:
            return
        self.joined += len(msgs)
        self._tail_fees.extend(fees)
        self._tail_msgs.extend(msgs)
        best = max(fees)
        if self._best is None or best > self._best:
            self._best = best

    def update_arrays(self, msgs: np.ndarray, fees: np.ndarray) -> None:
        """``update`` with the messages and fees as arrays (int64, float64; copied): a few
        join the tail's lists (no copy of the arrays), a queue turned away the arrays."""
        if len(msgs) < 256:
            self.update(msgs.tolist(), fees.tolist())
            return
        self.joined += len(msgs)
        old_fees, old_msgs = self._joined()
        self._fees = np.concatenate([old_fees, fees])
        self._msgs = np.concatenate([old_msgs, msgs])
        best = float(fees.max())
        if self._best is None or best > self._best:
            self._best = best

    def best_fee(self) -> float | None:
        """The highest fee waiting; None when none waits."""
        return self._best

    def admitted(self, base_fee: float) -> tuple[list[int], list[float]]:
        """Remove and return, in order, every message whose fee is at least ``base_fee``,
        and their fees."""
        msgs, fees = self.admitted_arrays(base_fee)
        return msgs.tolist(), fees.tolist()

    def admitted_arrays(self, base_fee: float) -> tuple[np.ndarray, np.ndarray]:
        """``admitted`` as arrays (int64, float64)."""
        fees, msgs = self._joined()
        admits = fees >= base_fee
        taken = np.flatnonzero(admits)
        if not len(taken):
            return msgs[:0], fees[:0]
        order = taken[np.argsort(-fees[taken], kind="stable")]
        out = msgs[order], fees[order]
        keep = ~admits  # the rest (a NaN fee among them: never admitted)
        self._fees, self._msgs = fees[keep], msgs[keep]
        self._best = float(self._fees.max()) if len(self._fees) else None
        return out

    def drain(self) -> list[int]:
        """Remove and return every message, in order."""
        fees, msgs = self._joined()
        order = np.argsort(-fees, kind="stable")
        self._fees, self._msgs = fees[:0], msgs[:0]
        self._best = None
        return list(msgs[order].tolist())

    def _joined(self) -> tuple[np.ndarray, np.ndarray]:
        """Every waiting message's fee and id, in the order they came (the tail moved into
        the arrays)."""
        if self._tail_msgs:
            self._fees = np.concatenate([self._fees, np.array(self._tail_fees, dtype=np.float64)])
            self._msgs = np.concatenate([self._msgs, np.array(self._tail_msgs, dtype=np.int64)])
            self._tail_fees.clear()
            self._tail_msgs.clear()
        return self._fees, self._msgs

    def __iter__(self) -> Iterator[tuple[float, int]]:
        """``(fee, msg)`` of every message, in order, without removing them."""
        fees, msgs = self._joined()
        order = np.argsort(-fees, kind="stable")
        return zip(fees[order].tolist(), msgs[order].tolist(), strict=True)

    def __len__(self) -> int:
        return len(self._msgs) + len(self._tail_msgs)

    def __bool__(self) -> bool:
        return self._best is not None
