"""The live sequencer's intake in an outage, and forced inclusion through the L1 anvil.

Place in the pipeline: under ``live/chain/target.py``, beside the batcher (``rollup.py``); the
live ``sequencer_outage`` fault (``live/faults/sequencer_outage.py``) turns it down and up. One anvil is both the
rollup's sequencer and its L2 node, so a paused process could not derive a forced inclusion
either; here the sequencer is down and the node goes on: while ``down``, the send loop hands
every due message to ``take`` instead of the L2 node. A message of the kinds ``via_l1`` goes
through L1: an L1 transaction from the L1's first account to ``FORCED_INBOX`` whose calldata is
the message's own transaction input; the L1's receipt gives its block,
and that block's head arrival (read by the batcher) is its ``t_l1``. The chain puts it in the L2
sequence by the simulator's rule (``rules/forced_inclusion.py``): at ``t_l1 + window`` msgstorm
replays it into the L2 node as an ordinary transaction, which lands in the next L2 block. Any
other message is held, in order, as a down sequencer's users wait. Either way its ``t_sent`` is
when it was due (the user sent it then; the generator kept its schedule), its ``t_received``
the L2 node's answer once sent to it. At the return (``up``) the ones whose window passed since
the last look are forced in first (the chain had them), then the held ones are sent at once, in
the order they were due, then the ones on L1 whose window has not passed, in their L1 order,
then the ones not yet in an L1 block: the backlog, drained at the node's rate. Each replay is a ``forced_inclusion`` event
(``forced``: by its window, or taken by the returning sequencer), as in the simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from msgstorm.history.events import EventKind
from msgstorm.live.chain.calldata import encode
from msgstorm.live.chain.record import Window
from msgstorm.rules.forced_inclusion import forced_time, sequencer_takes_first
from msgstorm.scenario.faults import SequencerOutageFault
from msgstorm.scenario.kinds import MESSAGE_KINDS

__all__ = ["FORCED_INBOX", "SequencerFront"]

# Where users' L1 transactions go (Arbitrum's delayed inbox, OP's portal): an address with no code.
FORCED_INBOX = "0xff00000000000000000000000000000000000043"
_POLL_S = 0.02

# (t, kind, node, value, detail): an event for the run's log
LogEvent = Callable[[tuple[int, str, str | None, float | None, dict[str, Any] | None]], None]


@dataclass
class _ViaL1:
    window: Window
    row: int
    msg_id: int
    tx_hash: str = ""
    l1_block: int = -1
    t_l1: int = -1
    replayed: bool = False


class SequencerFront:
    """The sequencer's intake: ``take`` while down, ``up`` at the return; ``run`` watches L1."""

    def __init__(self, l1: Any, now: Callable[[], int], replay: Callable[[Window, list[int]], None],
                 log: LogEvent) -> None:
        self.kinds: frozenset[int] = frozenset()
        self.window_ns = 0
        self.l1 = l1  # the batcher (live/chain/rollup.py): its L1 connection, account and heads
        self._now = now
        self._replay = replay
        self._log = log
        self.down = False
        self.held: list[tuple[Window, int]] = []
        self.via: list[_ViaL1] = []
        self.errors: list[str] = []
        self._sends: set[asyncio.Task[None]] = set()

    def take(self, window: Window, rows: range) -> None:
        """Rows of ``window`` due while the sequencer is down: through L1, or held."""
        batch = window.batch
        t = self._now()
        for k in rows:
            window.sent[k] = t  # the user sent it now, whoever takes it
            if int(batch.kind[k]) in self.kinds:
                via = _ViaL1(window, k, int(batch.msg_id[k]))
                self.via.append(via)
                task = asyncio.get_running_loop().create_task(self._send_l1(via))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
            else:
                self.held.append((window, k))

    async def _send_l1(self, via: _ViaL1) -> None:
        batch, k = via.window.batch, via.row
        data = encode(via.msg_id, int(batch.kind[k]), int(batch.agent[k]), int(batch.t_intended[k]), int(batch.size[k]))
        try:
            via.tx_hash = await self.l1.l1_rpc.call("eth_sendTransaction", {
                "from": self.l1.poster, "to": FORCED_INBOX, "data": data})
        except Exception as error:  # noqa: BLE001 - not on L1: the returning sequencer takes it
            self.errors.append(f"message {via.msg_id} to L1: {type(error).__name__}: {error}")

    async def run(self) -> None:
        """Each L1 transaction's block and its head's arrival; a message whose window has
        passed while the sequencer is down is replayed then. Until cancelled."""
        while True:
            await self.step()
            await asyncio.sleep(_POLL_S)

    async def step(self) -> None:
        waiting = [v for v in self.via if v.tx_hash and v.l1_block < 0]
        if waiting:
            found = await self.l1.l1_rpc.calls("eth_getTransactionReceipt", [[v.tx_hash] for v in waiting])
            for via, receipt in zip(waiting, found, strict=True):
                if receipt is not None and receipt.get("blockNumber") is not None:
                    via.l1_block = int(receipt["blockNumber"], 16)
        for via in self.via:
            if via.t_l1 < 0 and via.l1_block >= 0 and via.l1_block in self.l1.l1_blocks:
                via.t_l1 = self.l1.l1_blocks[via.l1_block].t
        if not self.down:
            return
        now = self._now()
        due = sorted((v for v in self.via if not v.replayed and v.t_l1 >= 0
                      and now >= forced_time(v.t_l1, self.window_ns)), key=lambda v: (v.t_l1, v.msg_id))
        for via in due:
            self._send(via, now, True)

    def _send(self, via: _ViaL1, t: int, forced: bool) -> None:
        via.replayed = True
        self._replay(via.window, [via.row])
        self._log((t, EventKind.FORCED_INCLUSION, None, float(via.msg_id),
                   {"t_l1": via.t_l1 if via.t_l1 >= 0 else None, "forced": forced}))

    def go_down(self, spec: SequencerOutageFault, window_ns: int) -> None:
        """The sequencer is down: from now on ``take`` gets the due messages; ``window_ns``:
        the forced-inclusion window (``SequencerOutageFault.window_ns``)."""
        self.kinds = frozenset(MESSAGE_KINDS.index(kind) for kind in spec.via_l1)
        self.window_ns = window_ns
        self.down = True

    async def up(self) -> tuple[int, int]:
        """The sequencer is back: the backlog sent in order (module docstring); (the time it
        returned, how many)."""
        await asyncio.gather(*self._sends, return_exceptions=True)  # the L1 sends under way answered
        await self.step()
        self.down = False
        t = self._now()
        held, self.held = self.held, []  # queued first, as the simulated sequencer's backlog
        by_window: dict[int, tuple[Window, list[int]]] = {}
        for window, k in held:
            by_window.setdefault(id(window), (window, []))[1].append(k)
        for window, rows in by_window.values():
            self._replay(window, rows)
        left = [v for v in self.via if not v.replayed]
        on_l1 = sorted((v for v in left if v.t_l1 >= 0), key=lambda v: (v.t_l1, v.msg_id))
        for via in on_l1:  # in their L1 order, behind the backlog
            self._send(via, t, not sequencer_takes_first(via.t_l1, self.window_ns, t))
        for via in left:
            if via.t_l1 < 0:  # not in an L1 block yet: sent to the sequencer again
                self._send(via, t, False)
        return t, len(left) + len(held)
