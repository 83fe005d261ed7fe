"""Traffic made ahead on a worker thread (``sim/ahead.py``): the same items in the same
order, the source's error raised where the loop asks, and no thread left behind on any
exit path of a run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from msgstorm.history import read_history
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario
from msgstorm.sim.ahead import Ahead


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "msgstorm-traffic-ahead"]


def test_items_come_in_order_and_the_thread_ends_with_them() -> None:
    ahead = Ahead(iter(range(1000)), depth=2)
    assert list(ahead) == list(range(1000))
    assert not _workers()


def test_an_error_of_the_source_is_raised_where_the_consumer_asks() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("replay file unreadable")

    ahead = Ahead(source())
    assert next(ahead) == 1
    assert next(ahead) == 2
    with pytest.raises(ValueError, match="replay file unreadable"):
        next(ahead)
    assert not _workers()


def test_close_stops_a_thread_waiting_for_room_and_one_making_an_item() -> None:
    made: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            time.sleep(0.001)
            made.append(n)
            yield n
            n += 1

    ahead = Ahead(endless(), depth=1)
    assert next(ahead) == 0
    time.sleep(0.05)  # the thread has filled the queue and waits for room
    ahead.close()
    assert not _workers()
    count = len(made)
    time.sleep(0.05)
    assert len(made) == count  # nothing made after close
    with pytest.raises(StopIteration):
        next(ahead)


ONE_NODE = """
[run]
name = "ahead"
duration = "3s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = 0

[sequencer]
service = { dist = "exponential", mean = "100us" }

[[agents]]
name = "traders"
arrival = { process = "poisson", rate = "20000/s" }
"""


def test_a_one_node_run_leaves_no_worker_thread_and_the_same_history_twice(tmp_path: Path) -> None:
    scenario = parse_scenario(ONE_NODE, source="ahead.toml")
    first = run(scenario, tmp_path / "a")
    assert not _workers()
    second = run(scenario, tmp_path / "b")
    assert not _workers()
    a, b = read_history(tmp_path / "a").messages, read_history(tmp_path / "b").messages
    assert a.num_rows == b.num_rows > 40_000  # several pieces of traffic, each made ahead
    assert a.equals(b)
    assert first.summary["messages"] == second.summary["messages"]


def test_ctrl_c_mid_run_stops_the_worker_thread(tmp_path: Path) -> None:
    import _thread

    long_run = ONE_NODE.replace('duration = "3s"', 'duration = "600s"')
    scenario = parse_scenario(long_run, source="ahead.toml")
    timer = threading.Timer(1.0, _thread.interrupt_main)  # Ctrl-C, as the terminal sends it
    timer.start()
    try:
        result = run(scenario, tmp_path / "run")
    finally:
        timer.cancel()
    assert result.summary["interrupted"] is True
    assert not _workers()
    assert read_history(tmp_path / "run").messages.num_rows > 0
