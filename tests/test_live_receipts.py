"""What a live run receives (live/receipts.py): distinct receipts, which the drain waits for."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from msgstorm.live.receipts import _FIRST_IDS, _REACH, Acks, Receipts, Received
from msgstorm.live.target import LiveTarget


def _ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_a_copy_received_again_is_not_counted_again() -> None:
    received = Received(by_consumer=True)
    received.add(0, _ids(0, 1, 2))
    received.add(0, _ids(1, 2, 2))  # replayed copies, one twice in one read
    received.add(1, _ids(0))  # another consumer's receipt of the same message is its own
    assert received.count == 4


def test_without_fan_out_a_message_counts_once_whichever_consumer_has_it() -> None:
    received = Received(by_consumer=False)
    received.add(0, _ids(0, 1))
    received.add(1, _ids(1, 2))  # redelivered to another consumer
    assert received.count == 3


def test_ids_far_beyond_the_largest_received_are_not_counted() -> None:
    received = Received(by_consumer=True)
    received.add(0, _ids(-1, _FIRST_IDS))  # before any receipt: ids below _FIRST_IDS only
    assert received.count == 0
    received.add(0, _ids(_FIRST_IDS - 1))
    reach = _REACH * _FIRST_IDS
    received.add(0, _ids(reach - 1, reach, 2**62))  # the first within reach, the others not
    assert received.count == 2
    received.add(1, _ids(reach - 1, 7))  # grown for consumer 1 alone
    assert received.count == 4


def _drain_state(consumers: int, sent: int, received: Received, receipts: Receipts) -> SimpleNamespace:
    """What ``LiveTarget.drained`` reads, for a target without acks or accounting."""
    sender = SimpleNamespace(dropped_elsewhere=0, received=received, receipts=receipts, acks=Acks())
    return SimpleNamespace(sender=sender, _to_drain=sent, consumer_names=[f"consumer-{i}" for i in range(consumers)],
                           driver=SimpleNamespace(fanout=True, acks=False), can=SimpleNamespace(accounting=None))


def test_the_drain_waits_for_the_tail_when_copies_outnumber_it() -> None:
    """10 messages sent, 3 replayed: the first 8 and the 3 copies are 11 receipts, more
    than were sent, but the last 2 are still in flight and the drain goes on."""
    receipts, received = Receipts(), Received(by_consumer=True)

    def read(*ids: int) -> None:
        receipts.add_read(0, _ids(*ids), 0)
        received.add(0, _ids(*ids))

    read(0, 1, 2, 2, 3, 4, 4, 5, 5, 6, 7)
    state = _drain_state(consumers=1, sent=10, received=received, receipts=receipts)
    assert receipts.count == 11 and not LiveTarget.drained(state)  # type: ignore[arg-type]
    read(8, 9)
    assert LiveTarget.drained(state)  # type: ignore[arg-type]


def test_receipts_one_at_a_time_count_as_in_reads() -> None:
    """``add_one`` (a driver's single receipts) against ``add`` on the same ids, copies,
    growth past the bits held and ids out of reach included."""
    rng = np.random.default_rng(5)
    ids = [*rng.integers(0, 20_000, 3_000).tolist(), 0, 0, -1, 2**62, _FIRST_IDS - 1, 40_000]
    consumers = rng.integers(0, 3, len(ids)).tolist()
    for by_consumer in (True, False):
        one, read = Received(by_consumer), Received(by_consumer)
        for consumer, msg_id in zip(consumers, ids, strict=True):
            one.add_one(consumer, msg_id)
            read.add(consumer, _ids(msg_id))
        distinct = {(c if by_consumer else 0, m) for c, m in zip(consumers, ids, strict=True)
                    if 0 <= m < _FIRST_IDS}
        assert one.count == read.count == len(distinct)
