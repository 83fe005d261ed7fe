"""The driver Protocol: what the live target asks of a messaging system.

Place in the pipeline: between ``live/target.py`` (the open-loop generator and the
history) and a broker. A driver starts its server when the scenario names no URL
(``servers.ManagedServer``), connects one publisher and ``live.consumers`` consumers,
publishes payloads in the order given, calls ``on_receipt(consumer, payload)`` for every
message a consumer gets, ``on_ack(msg_id, order)`` when the broker acknowledges a publish
(drivers with ``acks``; ``order`` is the broker's serialization order: a stream sequence, an
entry id's rank), and reports connection trouble through ``on_event``. The callbacks come
with ``connect``, in one ``Callbacks`` record (as OpenMessaging Benchmark's
``createConsumer`` takes its consumer's callback), never set on the driver afterwards; a
driver keeps them, its counts and its outages in one ``DriverState``. Times are taken by
the target, on one monotonic clock, not by the driver.

``fanout`` says how consumers share the messages: True when every consumer gets every
message (subscriptions, PUB/SUB), False when each message goes to one consumer of a group
(consumer groups, PUSH/PULL). A driver that can read the stored stream back after the run
(``read_back``) lets the delivery check compare what the broker kept with what it acked.

What a driver can do beyond this interface (bursts, bulk acks, servers of its own a fault
acts on, consumer processes, counts of what it took and lost, ...) it declares once, in its
``capabilities`` class attribute: a ``Capabilities`` of ``live/drivers/capabilities.py``,
whose docstring names each capability and its parts. A driver declaring nothing is driven
through ``Driver`` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.live.payload import StoredCopy
from msgstorm.scenario.live import LiveSpec

if TYPE_CHECKING:  # the capabilities' Protocols take this module's callbacks
    from msgstorm.live.drivers.capabilities import Capabilities

__all__ = ["NOT_CONNECTED", "STOP_GRACE_NS", "Callbacks", "Driver", "DriverState", "OnAck", "OnAcks", "OnEvent",
           "OnReceipt", "OnReceipts", "OnTimedReceipts", "Outages"]

# A message due before ``run.duration`` still leaves up to this long after it (a wake-up a
# few ms late at the end is no backlog); a generator further behind stops there, and what
# it has not sent is ``unsent``: a backlog is never sent late.
STOP_GRACE_NS = 10_000_000

OnReceipt = Callable[[int, bytes], None]  # (consumer index, payload)
# (consumer index, the ids of the messages one read brought (int64), payloads in it too
# short to carry an id)
OnReceipts = Callable[[int, np.ndarray, int], None]
OnAck = Callable[[int, int], None]  # (msg_id, the broker's order for it)
# (msg_ids, the broker's order for each): the acks one read brought, int64 arrays
OnAcks = Callable[[np.ndarray, np.ndarray], None]
# (EventKind value, detail); the event happened now, or at ``detail["at_wall_ns"]`` (time.time_ns
# scale) when the detail has it: something learned later, such as a line of a server's log.
OnEvent = Callable[[str, dict[str, Any]], None]
# (consumer index, msg ids (int64), each read's time (int64, CLOCK_MONOTONIC ns), how many of
# the ids each read brought (int64), payloads too short to carry an id)
OnTimedReceipts = Callable[[int, np.ndarray, np.ndarray, np.ndarray, int], None]


@dataclass(frozen=True)
class Callbacks:
    """What a driver hands its receipts and acks to, given to ``connect``. ``on_receipt``
    and ``on_ack`` always; each bulk one only to a driver declaring the part that takes it
    (``live/drivers/capabilities.py``'s ``callbacks_for``): ``on_receipts`` with
    ``Sending.bursts`` (the ids one read brought, instead of ``on_receipt`` with each
    payload), ``on_acks`` with ``Sending.bulk_acks`` (the acks one read brought, instead of
    ``on_ack`` each), ``on_timed_receipts`` with ``Sending.timed_receipts`` (receipts
    stamped in consumer processes). A bulk one given None: the driver calls the single one."""

    on_receipt: OnReceipt
    on_ack: OnAck
    on_receipts: OnReceipts | None = None
    on_acks: OnAcks | None = None
    on_timed_receipts: OnTimedReceipts | None = None


def _before_connect(*_: object) -> None:
    raise RuntimeError("a driver handed over a receipt or an ack before connect gave it its callbacks")


# A driver's callbacks until ``connect`` gives it the target's.
NOT_CONNECTED = Callbacks(_before_connect, _before_connect)


class Driver(Protocol):
    """One messaging system. ``__init__(spec, run_dir, on_event)`` does no I/O."""

    fanout: bool  # every consumer gets every message (else consumers share them)
    acks: bool  # publishes are acknowledged with an order (``on_ack`` is called)
    capabilities: ClassVar[Capabilities]  # what it can do beyond this (``live/drivers/capabilities.py``)

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None: ...

    def start_servers(self) -> list[dict[str, Any]]:
        """Start what the run needs when ``spec.url`` is None; describe each server
        started ({"name", "pid", "url"}). Blocking; called before the event loop runs."""
        ...

    def stop_servers(self) -> None:
        """Stop every server started (safe to call twice, and after a failed start)."""
        ...

    async def connect(self, callbacks: Callbacks) -> None:
        """Connect the publisher and the consumers, which hand what they get to
        ``callbacks`` from then on; consumers are subscribed on return."""
        ...

    async def publish(self, msg_id: int, payload: bytes) -> None:
        """Hand one message to the client (it may buffer: ``flush`` sends what is buffered).
        Must not wait for the broker's ack: acks arrive through ``on_ack``."""
        ...

    async def flush(self) -> None:
        """Send what is buffered and wait for the acks outstanding (bounded by the driver)."""
        ...

    async def read_back(self) -> StoredCopy | None:
        """After the run: the ids of the payloads the broker stored, in its order (taken a
        page at a time: ``StoredCopy``); None when the target keeps nothing to read (core
        NATS, ZeroMQ)."""
        ...

    async def close(self) -> None:
        """Close every connection (what was received before is kept)."""
        ...


class Outages:
    """One ``disconnected`` and one ``reconnected`` event an outage, however long it lasts.

    A client library that retries every 100 ms reports each failed attempt as an error: a
    68 s outage would be 600 ``client_error`` events. Here the attempts while a client is
    down are counted into its outage: ``reconnected`` carries ``attempts`` and the last
    error; an outage still open when the run closes ends in one ``client_error`` saying so
    (with the same detail). An error of a client that is connected is reported as it comes.
    """

    def __init__(self, on_event: OnEvent) -> None:
        self.on_event = on_event
        self._open: dict[str, list[Any]] = {}  # client -> [attempts, last error]

    def down(self, client: str, detail: dict[str, Any] | None = None) -> None:
        if client not in self._open:
            self._open[client] = [0, None]
            self.on_event(EventKind.DISCONNECTED, {**(detail or {}), "client": client})

    def error(self, client: str, error: str) -> None:
        outage = self._open.get(client)
        if outage is None:
            self.on_event(EventKind.CLIENT_ERROR, {"client": client, "error": error})
        else:
            outage[0] += 1
            outage[1] = error

    def _said(self, client: str) -> dict[str, Any]:
        attempts, last = self._open.pop(client)
        return {"client": client, "attempts": attempts, **({"last_error": last} if last is not None else {})}

    def up(self, client: str, detail: dict[str, Any] | None = None) -> None:
        if client in self._open:
            self.on_event(EventKind.RECONNECTED, {**self._said(client), **(detail or {})})

    def close(self) -> None:
        """Report the outages the run's end found open."""
        for client in list(self._open):
            self.on_event(EventKind.CLIENT_ERROR, {**self._said(client), "error": "still disconnected at the run's end"})


class DriverState:
    """What a broker driver keeps of its run, in one record (its ``state``): the counts of
    the messages it was given (``Accounting``, whose docstring says what each means; they
    only grow), its clients' outages, and the callbacks ``connect`` gave it."""

    __slots__ = ("callbacks", "handed_over", "lost_publishes", "outages", "unacked_publishes")

    def __init__(self, on_event: OnEvent) -> None:
        self.handed_over = 0  # taken through ``publish`` and ``publish_staged``
        self.lost_publishes = 0  # never reached the broker, or refused by it
        self.unacked_publishes = 0  # may have reached the broker; their acks will not come
        self.outages = Outages(on_event)
        self.callbacks = NOT_CONNECTED
