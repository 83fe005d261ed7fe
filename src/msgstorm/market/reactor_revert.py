"""The market reactor on a chain that lost its newest blocks.

Place in the pipeline: a part of the market reactor (``market/reactor.py``), mixed into
``MarketReactor`` because it takes back what the reactor's commits changed
(``market/reactor_state.py``). Only a host whose commits are not final calls ``reverted``:
the chain target on an EVM node restarted from an older saved state
(``live/chain/target.py``); the simulator's commits are final (a canonical reorg deeper than
``confirmations`` is only counted, ``sim/forks.py``).

The commits the chain no longer holds are taken back newest first, as a reorg takes back a
branch: the on-chain price goes back to the one before (``_price_before``, kept by
``MarketReactor.committed`` only where commits are not final), an executed account is open
again and its ``executions`` row says ``reverted``. What will never reach the chain is sent
again by its agent, as its real counterpart reading the reloaded head would: the oracle its
newest price of an instrument the chain lacks (one more ``oracle`` row for the same price), a
keeper its account's liquidation at the chain's price.
"""

from __future__ import annotations

import numpy as np

from msgstorm.history.outcomes import Outcome
from msgstorm.market.reactor_state import ReactorState

__all__ = ["RevertedChain"]


class RevertedChain(ReactorState):
    """``reverted`` (``traffic/reactor.py``'s ``Reactor.reverted``) for the market reactor."""

    def reverted(self, t: int, undone: list[int], gone: list[int]) -> None:
        """The chain lost blocks (see the module's docstring): ``undone``, the messages whose
        commits it no longer holds, in block order; ``gone``, messages that will never reach
        it (its pool emptied, or sent while its node was down), which their agents send again."""
        for msg_id in reversed(undone):
            before = self._price_before.pop(msg_id, None)
            if before is not None:
                instrument = int(self.updates.instrument[self.price_of[msg_id]])
                self.chain_step[instrument], self.chain_price[instrument], self.chain_row[instrument] = before
                continue
            at = self._execution_at(msg_id)
            if at is not None:
                execution = self._executions[at]
                account, keeper = int(execution[2]), self._keeper_named[execution[3]]
                if execution[4] == Outcome.EXECUTED:
                    self.liquidated[account] = False
                self._executions[at] = (*execution[:4], Outcome.REVERTED, *execution[5:])
                self.liquidation_of[msg_id] = (account, keeper.index)  # it executes again if the chain takes it again
                keeper.pending.add(account)
        newest: dict[int, int] = {}  # instrument -> the newest update row among the gone prices
        for msg_id in gone:
            update = self.price_of.get(msg_id)
            if update is not None:
                instrument = int(self.updates.instrument[update])
                newest[instrument] = max(update, newest.get(instrument, -1))
                continue
            owner = self.liquidation_of.pop(msg_id, None)
            if owner is not None:
                account, keeper_index = owner
                keeper = self.keepers[keeper_index]
                keeper.pending.discard(account)
                keeper.retry.add(account)  # sent again at the chain's price, below, or a later one
        for keeper in self.keepers:  # it knows the reloaded head: a price the chain lost is new again
            keeper.known_step = [min(known, chain) for known, chain in zip(keeper.known_step, self.chain_step,
                                                                            strict=True)]
        self._resend_prices(t, newest)
        for keeper in self.keepers:
            for instrument, row in enumerate(self.chain_row):
                if keeper.retry and row >= 0:
                    self._look(t, keeper, row, instrument, self.chain_price[instrument])

    def _execution_at(self, msg_id: int) -> int | None:
        """The index of ``msg_id``'s ``executions`` row still held (the newest first: a
        reverted commit is among the last)."""
        for at in range(len(self._executions) - 1, -1, -1):
            if self._executions[at][1] == msg_id and self._executions[at][4] != Outcome.REVERTED:
                return at
        return None

    def _resend_prices(self, t: int, newest: dict[int, int]) -> None:
        """The oracle sends again each instrument's price in ``newest`` (update rows) when it
        is still its newest published one and newer than the chain's."""
        if not newest:
            return
        spec = self.market.oracle
        updates = self.updates
        due = int(np.searchsorted(updates.t, t, side="right"))
        for instrument, row in sorted(newest.items()):
            published = np.flatnonzero(updates.instrument[:due] == instrument)
            if not published.size or int(published[-1]) != row or int(updates.step[row]) <= self.chain_step[instrument]:
                continue
            msg_id = self.host.send(t, self.host.agent_index(spec.name), "price", self.oracle_node, instrument,
                                    spec.size, spec.fee)
            self.price_of[msg_id] = row
            self.resent.append((msg_id, row))
            self.resends += 1
