"""What the shadow network's roles share: the event queue, the nodes, the message records.

Place in the pipeline: inside the simulator, under every role. ``ShadowNetwork`` builds one
``SimContext`` and hands it to the ``Sequencer``, the ``Chain``, the ``FaultInjector`` and
the ``LoneCpu``; each role keeps its own state and reads or changes the shared part only
through this object, so a new rule has one room to go to and still sees the same clock,
leader and records as the others.

Python events are plain tuples ``(t_ns, eid, handler, a, b, c, d)`` on a ``heapq``; ``eid``
(insertion order) makes same-time order deterministic, as in SimPy's environment. Tuples
and four int arguments, not objects: the loop pops millions of them, and a tuple compare
on ``(t, eid)`` is the cheapest order Python has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from heapq import heappush
from itertools import count
from typing import Any

from msgstorm.scenario.schema import Scenario
from msgstorm.sim.recorder import Recorder
from msgstorm.sim.state import MessageState

__all__ = ["Cluster", "Event", "EventQueue", "SimContext", "Tally"]

Handler = Callable[[int, int, int, int, int], None]
Event = tuple[Any, ...]  # (t_ns, eid, handler, a, b, c, d)


class EventQueue:
    """The Python events' heap: handlers called as ``handler(t, a, b, c, d)``."""

    __slots__ = ("ahead", "eid", "heap")

    def __init__(self) -> None:
        self.heap: list[Event] = []
        self.eid = count()
        # Handlers that only send (``ReactorHost.schedule_send``): the loop may run their
        # events before the leader's intake logged in the kernel is replayed.
        self.ahead: set[Handler] = set()

    def push(self, t: int, handler: Handler, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> None:
        heappush(self.heap, (t, next(self.eid), handler, a, b, c, d))

    def push_send(self, t: int, handler: Handler, a: int = 0, b: int = 0, c: int = 0,
                  d: int = 0) -> None:
        """``push`` an event whose handler only sends (``ReactorHost.schedule_send``)."""
        self.ahead.add(handler)
        heappush(self.heap, (t, next(self.eid), handler, a, b, c, d))

    def pending(self, handler: Handler) -> bool:
        """Whether an event for ``handler`` is still due."""
        return any(event[2] == handler for event in self.heap)


@dataclass
class Cluster:
    """The nodes: names in index order, which are up, who leads and in which epoch.

    ``epoch`` rises whenever the leader crashes or changes; anything scheduled under an
    older epoch (a service completion, a vote, a catch-up) is ignored when it comes due.
    """

    names: list[str]
    up: list[bool]
    leader: int
    standby: list[int]
    isolated: list[bool]  # nodes without gossip peers (their CPU is accounted by LoneCpu)
    epoch: int = 0
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {name: i for i, name in enumerate(self.names)}

    @property
    def size(self) -> int:
        return len(self.names)


@dataclass
class Tally:
    """Running counts for progress snapshots (the history is the record; these are views)."""

    committed: int = 0
    dropped: int = 0
    rejected: int = 0
    emitted: int = 0  # messages whose send time has come (held ones included)


@dataclass
class SimContext:
    scenario: Scenario
    events: EventQueue
    cluster: Cluster
    msgs: MessageState
    record: Recorder
    tally: Tally
    hard_stop: int  # run.duration + run.drain: nothing is scheduled after it
    # Nodes whose validations reactors see (``traffic/reactor.py``): the kernel hands them back.
    watched: set[int] = field(default_factory=set)
