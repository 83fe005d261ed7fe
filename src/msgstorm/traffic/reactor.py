"""Reactive agents: the extension point for agents that act on what the network does.

Place in the pipeline: beside the traffic, which its reactors add to while a run goes; used
inside the simulator, beside the roles, and inside the chain target (both import it from
here, below either). Traffic agents decide every message before the run; a reactor creates messages *during* the
run, in reaction to the network's state (a keeper liquidates an account when a price reaches
its node). Each factory registered in ``scenario.registry.REACTORS`` is asked once per run,
``factory(scenario, host, seed)``, and returns a ``Reactor`` or None when the scenario has
none of its agents. The market (``market/reactor.py``) is the built-in one.

Two hosts drive the same reactors: the simulator (``sim/host.py``, virtual time) and an EVM
node (``live/chain/market.py``, the run's wall clock: a message is a transaction, a
validation is the block that brings it to the one sending process, a commit the block in
block order). Times are nanoseconds from the run's start either way; nothing here assumes
which clock.

What the simulator gives a reactor (``ReactorHost``, implemented by ``SimHost``):
``final_commits`` (True: a commit is never taken back; the chain host's is False, and a
reactor keeps what a revert may change until ``finish``), node names, the agent index of each of its agents, ``send`` (a message that enters the
network now, through the same path and queues as all traffic), ``schedule`` (a Python
event), the base fee, ``visible`` and ``execution_rank`` (below), and ``append`` to its own
history tables.

What a reactor gives the simulator: ``agents`` (names it sends as, added to the history's
agent names after the scenario's), ``watched`` and ``watched_kinds`` (the nodes and the
message kinds whose validations it sees: the gossip kernel comes back to Python for those
messages at those nodes only), ``traffic`` (the run's traffic
with any messages it schedules before the run merged in, in time order), ``numbered``
(the msg_ids a traffic batch was given), ``validated``, ``committed``, ``reverted`` (commits
taken back, newest blocks lost: only a host without ``final_commits`` calls it) and
``finish``; and,
optionally, ``wants_ranks = True``: inside ``committed`` it may ask ``execution_rank``,
when each message takes effect under the queue policy (front-runners judge their races
by it). ``visible`` is what a watcher sees of a message (nothing of a commitment).
The compiled one-node loop has no room for reactions: a run with a reactor takes the
Python loop (``solo_plan``), with the same rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import numpy as np

from msgstorm.scenario.registry import REACTORS
from msgstorm.scenario.schema import Scenario

__all__ = ["Reactor", "ReactorHost", "build_reactors", "numbered"]

Handler = Callable[[int, int, int, int, int], None]


class ReactorHost(Protocol):
    node_names: list[str]
    node_regions: list[str]
    final_commits: bool  # False: ``Reactor.reverted`` may take commits back

    def agent_index(self, name: str) -> int: ...

    def send(self, t: int, agent: int, kind: str, node: int, key: int, size: int, fee: float) -> int:
        """A message sent now (``t`` is the current time); returns its msg_id."""
        ...

    def schedule(self, t: int, handler: Handler, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> None: ...

    def schedule_send(self, t: int, handler: Handler, a: int = 0, b: int = 0, c: int = 0,
                      d: int = 0) -> None:
        """``schedule`` a handler that only sends: it reads its reactor's own state, what
        commits changed and the base fee, may ``send`` and ``append``, and schedules
        nothing. The simulator may run such an event before the sequencer's work due
        before it (the two commute: ``sim/intake_log.py``)."""
        ...

    def base_fee(self) -> float | None: ...

    def visible(self, msg_id: int) -> tuple[str, int, int, int, int, float] | None:
        """What a watcher sees of a live message: ``(kind, agent, node, key, size, fee)``;
        None once settled or while the queue policy hides its content (a commitment)."""
        ...

    def execution_rank(self, msg_id: int) -> int | None:
        """Inside ``committed`` (for a reactor with ``wants_ranks = True``): when a message
        of the block takes effect, by the queue policy's rule; None: never."""
        ...

    def append(self, table: str, columns: dict[str, Any]) -> None: ...

    def batch(self, **columns: Any) -> Any:
        """A traffic batch (``traffic.MessageBatch``) of the given columns."""
        ...


class Reactor(Protocol):
    agents: list[str]
    watched: set[int]
    watched_kinds: set[str]  # message kinds whose validations at ``watched`` nodes it sees

    def traffic(self, batches: Iterable[Any]) -> Iterator[Any]: ...

    def numbered(self, batch: Any) -> None: ...

    def validated(self, t: int, node: int, msg_id: int) -> None: ...

    def committed(self, t: int, msg_ids: list[int]) -> None: ...

    def reverted(self, t: int, undone: list[int], gone: list[int]) -> None:
        """The chain lost its newest blocks: ``undone`` the messages whose commits it no
        longer holds (in block order), ``gone`` messages sent that will never reach it."""
        ...

    def finish(self, t_end: int) -> None: ...


def build_reactors(scenario: Scenario, host: ReactorHost, seed: np.random.SeedSequence) -> list[Reactor]:
    """Every registered reactor the scenario has agents for, each with its own child of ``seed``."""
    reactors = []
    names = list(REACTORS)
    for name, child in zip(names, seed.spawn(len(names)), strict=True):
        reactor = REACTORS[name](scenario, host, child)
        if reactor is not None:
            reactors.append(reactor)
    return reactors


def numbered(batch: Any, first: int, reactors: list[Reactor]) -> Any:
    """A traffic batch (``traffic.MessageBatch``) given msg_ids from ``first`` on, which
    continue from every message so far (reactors create messages between batches); every
    reactor learns them (``Reactor.numbered``)."""
    batch = dataclasses.replace(batch, msg_id=np.arange(first, first + len(batch), dtype=np.int64))
    for reactor in reactors:
        reactor.numbered(batch)
    return batch
