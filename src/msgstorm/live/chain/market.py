"""The market on a chain: the oracle's prices and the keepers' liquidations as transactions.

Place in the pipeline: under ``live/chain/target.py``, which builds a ``ChainMarket`` for a
scenario with ``[market]``. It is the chain's ``ReactorHost`` (``traffic/reactor.py``): the same
reactors the simulator drives (``market/reactor.py``: the price paths, the accounts, the
oracle's schedule, the keepers, the execution rules) are driven here by the node's blocks on
the run's wall clock, and write the same tables (``prices``, ``accounts``, ``oracle``,
``triggers``, ``executions``, ``topups``), so ``analysis/market.py`` reads an anvil run as a
sim run. One rule, two drivers: nothing of the market is written again here.

What the chain gives the reactors:

- the oracle's scheduled ``price`` messages are merged into the traffic (``traffic``) and
  numbered with it (``numbered``): each is a transaction sent at its intended time;
- each block, as its head arrives and its transactions are read (``on_block``): first
  ``committed`` with msgstorm's transactions in block order (a price becomes the on-chain
  price, a liquidation executes at the on-chain price then: the oracle price committed
  before it in block order), then ``validated`` for each of them at the one node
  (``PUBLISHER``): a keeper sees a price when it appears in a block, as a keeper reading
  the new heads does, and schedules its liquidation ``reaction`` later;
- ``schedule`` runs a handler at its time on the run's clock (``loop.call_later``), until
  ``run.duration + run.drain``, as the simulator drops events after its hard stop;
- ``send`` sends a message now, from the market's own dev accounts
  (``live.anvil.market_accounts``), so a keeper's transaction never waits behind a traffic
  transaction's nonce; the sends of one turn of the event loop go in one batch request;
- ``base_fee`` is the base fee of the next block (in fee units), computed from the newest
  head by EIP-1559's rule (``next_base_fee_wei``), which is what a fee-aware keeper
  multiplies and what the node checks a fee cap against;
- ``reverted`` (``final_commits`` is False: a node restarted from an older saved state may
  have lost its newest blocks): when the node is back, the commits its chain no longer holds
  and the messages it will never include (a pool the restart emptied, sends made while it
  was down) go to the reactors, which take the commits back and send again (the oracle its
  newest price the chain lacks, the keepers their liquidations).

A fee cap under the base fee: anvil refuses such a transaction where the simulator's
sequencer, under ``backpressure.underpriced = "wait"``, holds it until the base fee falls.
Under ``wait`` the market's agents do what a bot reading the heads does instead: a message
whose fee is under the next block's base fee is held by the sender and sent at the first
head that brings the base fee down to its fee. Its ``t_sent`` is when its agent sent it
(the hand-over to its sender), so the hold is not the generator's send lag but part of the
wait for the node's answer (``t_received``) and of its latency. One refused anyway (a block
came between), or dropped from the pool once the base fee passed its fee cap (anvil drops
such a transaction when it builds a block; ``ChainTarget`` looks for them after each block),
is held again the same way (``held_again``). A message still held when the run ends is
``pending``, as one waiting in the simulator's queue. Under ``reject`` it is sent and
the node refuses it (``rejected``), as the simulator's sequencer would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from msgstorm.live.chain.record import PENDING, Window
from msgstorm.live.recorder import PUBLISHER
from msgstorm.rules.base_fee import next_base_fee_wei
from msgstorm.scenario.schema import MESSAGE_KINDS, Eip1559, Scenario
from msgstorm.traffic.generate import MessageBatch
from msgstorm.traffic.reactor import Handler, Reactor, build_reactors, numbered

__all__ = ["ChainMarket"]

@dataclass
class _Outgoing:
    """A message the market created, not yet handed to the sender."""

    msg_id: int
    t_intended: int
    agent: int
    kind: int
    key: int
    size: int
    fee: float
    t_handed: int  # when its agent sent it: the sender's hold, if any, comes after


SendRows = Callable[[Window, list[int]], None]


class ChainMarket:
    """The reactors of one chain run and what they see of the chain (``ReactorHost``).

    Lifecycle: built before the sending (the reactors draw their paths and accounts then),
    ``start`` on the run's event loop, ``traffic``/``numbered`` while the traffic is sent,
    ``on_block`` for each block read, ``close`` when the drain ends (what is still held is
    kept as ``pending``), ``finish`` writes the reactors' tables."""

    final_commits = False  # the node may restart from a state older than the blocks read

    def __init__(self, scenario: Scenario, seed: np.random.SeedSequence, now: Callable[[], int],
                 fee_unit_wei: int) -> None:
        self.scenario = scenario
        self.node_names = [PUBLISHER]
        self.node_regions = ["local"]
        self._now = now
        self.unit = fee_unit_wei
        backpressure = scenario.backpressure
        self.holds = isinstance(backpressure, Eip1559) and backpressure.underpriced == "wait"
        self.hard_stop = scenario.run.duration + scenario.run.drain
        self.agent_names = [agent.name for agent in scenario.agents]
        self._agent_index: dict[str, int] = {}
        self._tables: list[tuple[str, dict[str, Any]]] = []  # written at the end, after the event log
        self.next_id = 0
        self.next_base_fee: int | None = None  # wei, from the newest head
        self._outbox: list[_Outgoing] = []
        self._held: list[_Outgoing] = []  # under the base fee, never sent yet
        self._held_again: list[tuple[Window, int]] = []  # sent and refused under the base fee
        self.held_again = 0  # refusals the market's agents answered by holding the message again
        self._timers = 0  # handlers scheduled, not yet run
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send_rows: SendRows | None = None
        self.windows: list[Window] = []  # one per batch of the market's sends, and the held at the end
        self.closed = False
        self.reactors: list[Reactor] = []
        self.reactors = build_reactors(scenario, self, seed)
        self.agent_names += [name for reactor in self.reactors for name in reactor.agents]
        self._agent_index = {name: i for i, name in enumerate(self.agent_names)}
        self._watched_kinds = {MESSAGE_KINDS.index(kind) for r in self.reactors for kind in r.watched_kinds}

    def start(self, send_rows: SendRows) -> None:
        """On the run's event loop: ``send_rows(window, rows)`` sends rows of one of the
        market's windows now (``t_sent`` stays when its agent handed each over)."""
        self._loop = asyncio.get_running_loop()
        self._send_rows = send_rows

    # --- the traffic ----------------------------------------------------------------------

    def traffic(self, batches: Iterable[MessageBatch]) -> Iterator[MessageBatch]:
        """The scenario's traffic with every reactor's scheduled messages merged in."""
        merged: Iterable[MessageBatch] = batches
        for reactor in self.reactors:
            merged = reactor.traffic(merged)
        return iter(merged)

    def numbered(self, batch: MessageBatch) -> MessageBatch:
        """A traffic batch given msg_ids after every message so far (the market's own sends
        take ids between batches, as in the simulator)."""
        batch = numbered(batch, self.next_id, self.reactors)
        self.next_id += len(batch)
        return batch

    # --- ReactorHost ------------------------------------------------------------------------

    def agent_index(self, name: str) -> int:
        return self._agent_index[name]

    def send(self, t: int, agent: int, kind: str, node: int, key: int, size: int, fee: float) -> int:
        del node  # one sending process
        msg_id = self.next_id
        self.next_id += 1
        message = _Outgoing(msg_id, t, agent, MESSAGE_KINDS.index(kind), key, size, fee, self._now())
        if self._under_base_fee(fee):
            self._held.append(message)
        else:
            if not self._outbox:
                assert self._loop is not None
                self._loop.call_soon(self._flush)
            self._outbox.append(message)
        return msg_id

    def schedule(self, t: int, handler: Handler, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> None:
        if self.closed or t > self.hard_stop:
            return
        assert self._loop is not None
        self._timers += 1
        self._loop.call_later(max(0, t - self._now()) / 1e9, self._fire, t, handler, a, b, c, d)

    def schedule_send(self, t: int, handler: Handler, a: int = 0, b: int = 0, c: int = 0,
                      d: int = 0) -> None:
        self.schedule(t, handler, a, b, c, d)  # a node's clock has nothing to run ahead of

    def _fire(self, t: int, handler: Handler, a: int, b: int, c: int, d: int) -> None:
        self._timers -= 1
        if not self.closed:
            handler(t, a, b, c, d)

    def base_fee(self) -> float | None:
        return None if self.next_base_fee is None else self.next_base_fee / self.unit

    def visible(self, msg_id: int) -> tuple[str, int, int, int, int, float] | None:
        return None  # no watcher of the pool here (front-runners are refused: AnvilNode.market_problems)

    def execution_rank(self, msg_id: int) -> int | None:
        return None  # no reactor here asks (wants_ranks: the batch auction's book is refused)

    def append(self, table: str, columns: dict[str, Any]) -> None:
        self._tables.append((table, columns))

    def batch(self, **columns: Any) -> MessageBatch:
        return MessageBatch(**columns)

    # --- sending ----------------------------------------------------------------------------

    def _under_base_fee(self, fee: float) -> bool:
        return self.holds and self.next_base_fee is not None and round(fee * self.unit) < self.next_base_fee

    def _flush(self) -> None:
        """The sends of this turn of the loop, in one batch."""
        outgoing, self._outbox = self._outbox, []
        if outgoing and not self.closed:
            assert self._send_rows is not None
            window = self._window(outgoing, -1)
            self.windows.append(window)
            self._send_rows(window, list(range(len(outgoing))))

    def _window(self, outgoing: list[_Outgoing], outcome: int) -> Window:
        n = len(outgoing)
        return Window(self._batch(outgoing), np.array([m.t_handed for m in outgoing], np.int64),
                      np.full(n, -1, np.int64), np.full(n, outcome, np.int8), market=True)

    def _batch(self, outgoing: list[_Outgoing]) -> MessageBatch:
        n = len(outgoing)
        return MessageBatch(
            np.array([m.msg_id for m in outgoing], np.int64), np.array([m.t_intended for m in outgoing], np.int64),
            np.array([m.agent for m in outgoing], np.int32), np.array([m.kind for m in outgoing], np.int8),
            np.zeros(n, np.int32), np.array([m.key for m in outgoing], np.int64),
            np.array([m.size for m in outgoing], np.int32), np.array([m.fee for m in outgoing], np.float64))

    def hold_again(self, window: Window, row: int) -> bool:
        """The node refused a market message for a fee cap under the base fee: held again
        (True) under ``underpriced = "wait"``, else it stays refused (False)."""
        if not self.holds or self.closed:
            return False
        self.held_again += 1
        self._held_again.append((window, row))
        return True

    def settled(self) -> bool:
        """Nothing scheduled, held or waiting to go: the drain need not wait for the market."""
        return not (self._timers or self._held or self._held_again or self._outbox)

    # --- the chain ----------------------------------------------------------------------------

    def on_block(self, t: int, base_fee_wei: int, gas_used: int, gas_limit: int,
                 ours: list[tuple[int, int]]) -> None:
        """A block read at ``t`` (its head's arrival), msgstorm's transactions newly on the
        chain in it ``(msg_id, kind)`` in block order: the reactors act on them, then what
        the new base fee lets go is sent."""
        self.next_base_fee = next_base_fee_wei(base_fee_wei, gas_used, gas_limit)
        ids = [msg_id for msg_id, _ in ours]
        seen = [msg_id for msg_id, kind in ours if kind in self._watched_kinds]
        for reactor in self.reactors:
            reactor.committed(t, ids)
            for msg_id in seen:
                for node in reactor.watched:
                    reactor.validated(t, node, msg_id)
        if self.closed:
            return
        self._release()

    def _release(self) -> None:
        """What is held and no longer under the next block's base fee is sent."""
        if self._held:
            go = [m for m in self._held if not self._under_base_fee(m.fee)]
            if go:
                self._held = [m for m in self._held if self._under_base_fee(m.fee)]
                if not self._outbox:
                    assert self._loop is not None
                    self._loop.call_soon(self._flush)
                self._outbox.extend(go)
        if self._held_again:
            go_again = [(w, k) for w, k in self._held_again if not self._under_base_fee(float(w.batch.fee[k]))]
            if go_again:
                self._held_again = [(w, k) for w, k in self._held_again
                                    if self._under_base_fee(float(w.batch.fee[k]))]
                assert self._send_rows is not None
                for window in {id(w): w for w, _ in go_again}.values():
                    self._send_rows(window, [k for w, k in go_again if w is window])

    def reverted(self, undone: list[int], gone: list[int]) -> None:
        """The node came back without the commits of ``undone`` (in block order) and without
        ``gone``: the reactors take the commits back and their agents send again now (not
        once the sending has ended: the commits are taken back all the same)."""
        t = self._now()
        for reactor in self.reactors:
            reactor.reverted(t, undone, [] if self.closed else gone)

    # --- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        """No more sends: what is held stays so (``pending``), scheduled handlers do nothing."""
        self.closed = True
        held = self._held + self._outbox
        self._held, self._outbox = [], []
        for window, row in self._held_again:
            window.outcome[row] = PENDING
        self._held_again = []
        if held:
            self.windows.append(self._window(held, PENDING))

    def finish(self, t_end: int, append: Callable[[str, dict[str, Any]], None]) -> None:
        """The reactors' tables, written through ``append`` (the history writer's)."""
        for reactor in self.reactors:
            reactor.finish(t_end)
        for table, columns in self._tables:
            append(table, columns)
        self._tables = []
