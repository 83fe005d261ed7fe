"""The batcher's rule: L2 blocks, in order, into batches for L1, one step at a time.

Place in the pipeline: a rule both wings run. ``sim/rollup/batcher.py`` steps it over the
simulated L2 blocks, ``live/chain/rollup.py`` over the blocks it reads from the L2 node; both
read the closed batches it returns. The rule, as a batch poster applies it (Arbitrum's batch
poster, OP's batcher: both post when a batch is full or its oldest block has waited
``max_delay``):

- a batch opens with its first L2 block, at that block's time;
- its size is its blocks' message bytes times ``compression_ratio``, rounded up (one
  compression model for both wings: OP's batcher estimates a batch's compressed size by such
  a ratio too; the live wing posts the zlib-compressed bytes, whose real size its history
  records);
- a block that would take it past ``max_size`` closes it at that block's time (the batch is
  full: posted at once) and opens the next one;
- a batch still open ``max_delay`` after it opened closes then;
- a block bigger than ``max_size`` by itself is a batch of its own, closed at its time (the
  real batchers split it over several transactions; one here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BatchRule", "Closed"]


@dataclass(frozen=True)
class Closed:
    """A batch the rule closed: its first ``blocks`` L2 blocks of those not yet in a batch."""

    t_opened: int
    t_closed: int
    blocks: int
    messages: int
    raw_bytes: int
    compressed_bytes: int
    full: bool  # closed by its size (else by its delay, or by the end)


class BatchRule:
    """The batch being filled. ``add`` an L2 block (in order) and ``due`` at any time return
    the batches that closed, oldest first; ``close`` ends the open one (the run's end)."""

    def __init__(self, max_delay: int, max_size: int, compression_ratio: float) -> None:
        self.max_delay = max_delay
        self.max_size = max_size
        self.ratio = compression_ratio
        self.t_opened = -1  # -1: no batch open
        self._blocks = self._messages = self._raw = 0

    def compressed(self, raw_bytes: int) -> int:
        """The compression model: ``raw_bytes`` times the ratio, rounded up."""
        return math.ceil(raw_bytes * self.ratio)

    def due(self, t: int) -> list[Closed]:
        """The open batch, closed by its delay if ``t`` is ``max_delay`` or more after it opened."""
        if self.t_opened >= 0 and t >= self.t_opened + self.max_delay:
            return [self._close(self.t_opened + self.max_delay, False)]
        return []

    def add(self, t: int, raw_bytes: int, messages: int) -> list[Closed]:
        """An L2 block at ``t`` of ``raw_bytes`` message bytes and ``messages`` messages."""
        closed = self.due(t)
        if self.t_opened >= 0 and self.compressed(self._raw + raw_bytes) > self.max_size:
            closed.append(self._close(t, True))
        if self.t_opened < 0:
            self.t_opened = t
        self._raw += raw_bytes
        self._blocks += 1
        self._messages += messages
        if self._blocks == 1 and self.compressed(self._raw) > self.max_size:  # too big alone
            closed.append(self._close(t, True))
        return closed

    def close(self, t: int | None = None) -> list[Closed]:
        """The open batch closed at ``t`` (None: when its delay ends), not full."""
        if self.t_opened < 0:
            return []
        return [self._close(self.t_opened + self.max_delay if t is None else t, False)]

    def _close(self, t: int, full: bool) -> Closed:
        batch = Closed(self.t_opened, t, self._blocks, self._messages, self._raw, self.compressed(self._raw), full)
        self.t_opened = -1
        self._blocks = self._messages = self._raw = 0
        return batch
