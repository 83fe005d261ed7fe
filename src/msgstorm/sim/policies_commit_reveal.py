"""The ``commit_reveal`` queue policy: an order's place is fixed before its content is seen.

Place in the pipeline: a queue policy (``sim/policies.py``) of the leader's ``Sequencer``
that sends messages (``PolicyHost.send``). A message of ``sequencer.commit_reveal.kinds``
(default: orders) is a commitment: watchers at the nodes see that it exists, not what it
holds (``hides``). When a worker sequences it, its place is taken; ``reveal_delay`` later
its sender reveals it in a second message (same agent, node, kind, key, size and fee) that
crosses the network like any other. The order takes effect at its commitment's place
(``execution_rank``: the commitment's sequence number) when its reveal is sequenced within
``window`` of the commitment; later, the commitment has expired and the order never takes
effect. Everything is served first come, first served.

A front-runner that sees a reveal can only commit after it: its order's place comes after
the victim's, whatever its fee or latency.

Lifecycle: built per run; state per commitment lives from its sequencing until its reveal
settles (dropped in sweeps, so it follows the messages in flight). A commitment sequenced
again after a leader's crash takes its new place and is not revealed twice.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from msgstorm.scenario.registry import QUEUE_POLICIES
from msgstorm.scenario.schema import MESSAGE_KINDS, CommitRevealSpec
from msgstorm.sim.policies import PolicyHost
from msgstorm.sim.state import AGENT, FEE, KEY, KIND, MSG_ID, ORIGIN, SEQ_NO, SIZE

__all__ = ["CommitRevealPolicy"]


# Reveals kept before the first sweep drops those that settled (``_sweep``).
_SWEEP_FLOOR = 1024


@QUEUE_POLICIES.register("commit_reveal")
class CommitRevealPolicy:
    """First come, first served; commitments take their place, reveals follow."""

    work_conserving = True

    def __init__(self) -> None:
        self.queue: deque[int] = deque()
        self.host: PolicyHost | None = None
        self.spec = CommitRevealSpec()
        self.kinds: set[int] = set()
        self.committed_at: dict[int, tuple[int, int]] = {}  # commitment -> (its place, t sequenced), latest
        self.reveal_of: dict[int, int] = {}  # reveal msg -> its commitment, until the reveal settles
        self.on_time: dict[int, bool] = {}  # sequenced reveal -> within its commitment's window
        self.expired = 0  # reveals sequenced after their commitment's window
        self._pending: dict[int, tuple[Any, ...]] = {}  # commitment -> what its reveal carries
        self._sweep_at = _SWEEP_FLOOR

    def attach(self, host: PolicyHost) -> None:
        self.host = host
        self.spec = host.scenario.sequencer.commit_reveal or CommitRevealSpec()
        self.kinds = {MESSAGE_KINDS.index(kind) for kind in self.spec.kinds}

    def push(self, msg: int, fee: float, t_ns: int) -> None:
        self.queue.append(msg)

    def pop(self) -> int:
        return self.queue.popleft()

    def __len__(self) -> int:
        return len(self.queue)

    def hides(self, record: list[Any]) -> bool:
        return record[KIND] in self.kinds and record[MSG_ID] not in self.reveal_of

    def sequenced(self, t: int, msg: int) -> None:
        assert self.host is not None
        commitment = self.reveal_of.get(msg)
        if commitment is not None:
            _, t_committed = self.committed_at[commitment]
            on_time = t - t_committed <= self.spec.window
            if msg not in self.on_time:  # (not again after a leader's crash)
                self.expired += not on_time
            self.on_time[msg] = on_time
            return
        record = self.host.message(msg)
        if record is None or record[KIND] not in self.kinds:
            return  # not a commitment
        again = msg in self.committed_at  # sequenced again after a leader's crash: its new place counts
        self.committed_at[msg] = (record[SEQ_NO], t)
        if again:
            return  # its reveal is on its way (or sequenced) already: one reveal per commitment
        content = (record[AGENT], record[KIND], record[ORIGIN], record[KEY], record[SIZE])
        self._pending[msg] = (*content, record[FEE])
        self.host.schedule(t + self.spec.reveal_delay, self._reveal, msg)

    def _reveal(self, t: int, commitment: int, _b: int, _c: int, _d: int) -> None:
        """The sender reveals its committed order: a second message from its node, known
        as a reveal before it is injected (watchers at its own node may see it at once)."""
        assert self.host is not None
        agent, kind, node, key, size, fee = self._pending.pop(commitment)

        def named(reveal: int) -> None:
            self.reveal_of[reveal] = commitment

        self.host.send(t, agent, MESSAGE_KINDS[kind], node, key, size, fee, named)
        if len(self.reveal_of) >= self._sweep_at:
            self._sweep()

    def _sweep(self) -> None:
        """Forget reveals that settled, with their commitments: state follows the messages
        in flight, not the run's length (amortised: the next sweep waits for as many new)."""
        assert self.host is not None
        for reveal in [r for r in self.reveal_of if self.host.message(r) is None]:
            self.committed_at.pop(self.reveal_of.pop(reveal), None)
            self.on_time.pop(reveal, None)
        self._sweep_at = max(_SWEEP_FLOOR, 2 * len(self.reveal_of))

    def execution_rank(self, record: list[Any]) -> int | None:
        """A reveal's order takes effect at its commitment's place, or never when it came
        after the window; a commitment holds that place (its own order's fate is known
        only at its reveal); other kinds take effect as sequenced."""
        msg = record[MSG_ID]
        commitment = self.reveal_of.get(msg)
        if commitment is None:
            seq_no: int | None = record[SEQ_NO]
            return seq_no
        return self.committed_at[commitment][0] if self.on_time.get(msg, False) else None
