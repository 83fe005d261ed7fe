"""The open-loop sender's pacing (live/pacing.py) on a fake clock: when it sleeps, yields or
holds before a send time, what that costs, and which rows leave together."""

from __future__ import annotations

import asyncio

import pytest

from msgstorm.live.pacing import HOLD_NS, SPIN_NS, due_through, wait_step, wait_until


class FakeClock:
    """A clock that moves only when read (``tick_ns`` a read) or slept on: a sleep of s
    seconds wakes ``late_ns`` after s (a timer's lateness), a yield (0 s) costs ``yield_ns``."""

    def __init__(self, tick_ns: int = 1_000, late_ns: int = 0, yield_ns: int = 20_000) -> None:
        self.t = 0
        self.tick_ns, self.late_ns, self.yield_ns = tick_ns, late_ns, yield_ns
        self.sleeps: list[float] = []
        self.reads = 0

    def now(self) -> int:
        self.reads += 1
        self.t += self.tick_ns
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += round(seconds * 1e9) + (self.late_ns if seconds > 0 else self.yield_ns)


def test_the_three_stretches_before_a_send_time() -> None:
    assert wait_step(SPIN_NS + 5_000_000) == pytest.approx(0.005)  # sleeps until SPIN_NS before it
    assert wait_step(SPIN_NS + 1) == pytest.approx(1e-9)
    assert wait_step(SPIN_NS) == 0.0  # yields to the event loop
    assert wait_step(HOLD_NS + 1) == 0.0
    assert wait_step(HOLD_NS) is None  # holds the thread
    assert wait_step(1) is None


@pytest.mark.parametrize("late_ns", [0, 300_000, SPIN_NS - HOLD_NS - 30_000])
def test_a_timer_late_by_less_than_the_spin_still_sends_on_time(late_ns: int) -> None:
    clock = FakeClock(late_ns=late_ns)
    due = 50_000_000
    woke = asyncio.run(wait_until(due, clock.now, clock.sleep))
    assert due <= woke <= due + clock.tick_ns  # on time to a read of the clock
    # One sleep to the spin's start, then yields only while more than HOLD_NS remains.
    assert clock.sleeps[0] == pytest.approx((due - clock.tick_ns - SPIN_NS) / 1e9, abs=1e-9)
    assert all(s == 0.0 for s in clock.sleeps[1:])
    assert len(clock.sleeps) - 1 <= (SPIN_NS - HOLD_NS) // clock.yield_ns + 1


def test_a_timer_later_than_the_spin_makes_a_late_send_not_an_early_one() -> None:
    clock = FakeClock(late_ns=SPIN_NS + 700_000)
    due = 50_000_000
    woke = asyncio.run(wait_until(due, clock.now, clock.sleep))
    assert woke - due == pytest.approx(700_000, abs=2 * clock.tick_ns)  # what the send lag shows
    assert clock.sleeps == [pytest.approx((due - clock.tick_ns - SPIN_NS) / 1e9, abs=1e-9)]


def test_the_hold_costs_at_most_its_stretch_of_clock_reads() -> None:
    clock = FakeClock(tick_ns=1_000, yield_ns=HOLD_NS + 1)  # the last yield lands just inside the hold
    due = 10_000_000
    asyncio.run(wait_until(due, clock.now, clock.sleep))
    reads_after_sleeps = clock.reads - len(clock.sleeps) - 1
    assert reads_after_sleeps <= HOLD_NS // clock.tick_ns + 1


def test_a_send_already_due_does_not_wait() -> None:
    clock = FakeClock()
    clock.t = 5_000_000
    assert asyncio.run(wait_until(1_000_000, clock.now, clock.sleep)) == 5_001_000
    assert clock.sleeps == []


def test_rows_due_together_leave_in_one_request_up_to_the_batch() -> None:
    times = [10, 20, 20, 30, 40, 50]
    assert due_through(times, 0, 6, 5, batch=256) == 1  # woke early (never: at least the one awaited)
    assert due_through(times, 0, 6, 10, batch=256) == 1
    assert due_through(times, 0, 6, 20, batch=256) == 3  # both rows due at 20 with the one at 10
    assert due_through(times, 0, 6, 45, batch=256) == 5  # behind: every row due by now
    assert due_through(times, 0, 6, 45, batch=2) == 2  # at most a batch
    assert due_through(times, 3, 5, 100, batch=256) == 5  # never past the window's end
    assert due_through(times, 3, 6, 100, batch=256) == 6
