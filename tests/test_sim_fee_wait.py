"""The waiting list of a priced sequencer against a general sorted container.

``FeeWaitList`` keeps its messages in the order they came and orders only those a base fee
lets in; ``sortedcontainers.SortedList`` (what the sequencer used before) keeps its order at
every insertion. Hypothesis draws sequences of the
sequencer's operations (an arrival priced out, a whole queue turned away in pop order, a
base fee that lets some in, a crash that empties it) with fees that often tie: every read
must give the same entries in the same order.
"""

from __future__ import annotations

from math import inf

from hypothesis import given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedList

from msgstorm.sim.fee_wait import FeeWaitList

_fee = st.one_of(st.sampled_from([0.5, 1.0, 2.0, 0.0]), st.floats(0.1, 10.0))
_operation = st.one_of(
    st.tuples(st.just("add"), _fee),
    st.tuples(st.just("queue"), st.lists(_fee, max_size=30)),
    st.tuples(st.just("base_fee"), _fee),
    st.tuples(st.just("crash"), st.just(0.0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_operation, max_size=60))
def test_every_read_gives_what_a_sorted_container_gives(operations: list[tuple[str, object]]) -> None:
    waiting, reference = FeeWaitList(), SortedList()  # the reference holds (-fee, arrival, msg)
    arrivals = msg = 0
    for name, value in operations:
        if name == "add":
            arrivals, msg = arrivals + 1, msg + 1
            waiting.add(float(value), msg)  # type: ignore[arg-type]
            reference.add((-float(value), arrivals, msg))  # type: ignore[arg-type]
        elif name == "queue":  # a queue turned away: highest fee first, then its own arrival order
            fees = sorted(value, reverse=True)  # type: ignore[call-overload]
            msgs = list(range(msg + 1, msg + 1 + len(fees)))
            reference.update((-fee, arrivals + 1 + i, m) for i, (fee, m) in enumerate(zip(fees, msgs)))
            arrivals, msg = arrivals + len(fees), msg + len(fees)
            waiting.update(msgs, fees)
        elif name == "base_fee":
            best = None if not reference else -reference[0][0]
            assert waiting.best_fee() == best
            if best is not None and best >= value:  # type: ignore[operator]
                cut = reference.bisect_right((-value, inf))  # type: ignore[operator]
                expected = list(reference[:cut])
                del reference[:cut]
                assert waiting.admitted(value) == ([m for _, _, m in expected],  # type: ignore[arg-type]
                                                   [-neg_fee for neg_fee, _, _ in expected])
        else:
            assert waiting.drain() == [m for _, _, m in reference]
            reference.clear()
        assert len(waiting) == len(reference) and bool(waiting) == bool(reference)
        assert waiting.joined == arrivals
        assert list(waiting) == [(-neg_fee, m) for neg_fee, _, m in reference]


def test_a_base_fee_above_every_fee_lets_none_in_and_keeps_the_best() -> None:
    """Hand-made: fees 1, 3, 2 (in that order) and 3 again; a base fee of 2.5 lets in the
    two at 3 (the earlier first), then 2 lets in the 2, and the 1 stays."""
    waiting = FeeWaitList()
    waiting.add(1.0, 10)
    waiting.update([11, 12], [3.0, 2.0])
    waiting.add(3.0, 13)
    assert waiting.best_fee() == 3.0
    assert waiting.admitted(4.0) == ([], []) and len(waiting) == 4
    assert waiting.admitted(2.5) == ([11, 13], [3.0, 3.0])
    assert waiting.best_fee() == 2.0
    assert waiting.admitted(2.0) == ([12], [2.0])
    assert waiting.best_fee() == 1.0 and waiting.drain() == [10]
    assert not waiting and waiting.best_fee() is None
