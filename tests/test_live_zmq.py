"""Live target over real ZeroMQ sockets on loopback (pyzmq; no server, no mocks).

Each run binds a real port, drives it open loop and checks every delivery against the
history; after each run the port no longer listens.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from msgstorm.errors import TargetError
from msgstorm.live.drivers.base import Callbacks
from msgstorm.live.drivers.zmq import PROBE, ZmqDriver
from msgstorm.live.payload import HEADER
from msgstorm.live.servers import ServerError, free_port
from msgstorm.runner import run
from msgstorm.scenario import ScenarioError, parse_scenario
from msgstorm.scenario.live import LiveSpec, ZmqSpec
from msgstorm.scenario.schema import Scenario

LIVE = """
target = "zmq"

[run]
name = "live-zmq"
duration = "{duration}"
drain = "{drain}"

[live]
consumers = {consumers}
{live}

[live.zmq]
pattern = "{pattern}"
hwm = {hwm}
burst = {burst}

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "{size}B"
"""


def _scenario(pattern: str, consumers: int = 1, duration: str = "1s", rate: int = 1000, size: int = 64,
              hwm: int = 1_000_000, live: str = "", drain: str = "30s", burst: int = 1024) -> Scenario:
    text = LIVE.format(pattern=pattern, consumers=consumers, duration=duration, rate=rate, size=size, hwm=hwm,
                       live=live, drain=drain, burst=burst)
    return parse_scenario(text, source="live.toml")


def _listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _receipts_by_consumer(deliveries: Any) -> dict[str, list[int]]:
    by_consumer: dict[str, list[int]] = {}
    for node, msg_id in zip(deliveries["node"].to_pylist(), deliveries["msg_id"].to_pylist()):
        by_consumer.setdefault(node, []).append(msg_id)
    return by_consumer


@pytest.mark.parametrize("burst", [1, 1024])  # an awaited send per message; staged bursts
def test_push_pull_gives_each_message_to_exactly_one_consumer_and_unbinds(tmp_path: Path, burst: int) -> None:
    port = free_port()
    result = run(_scenario("push-pull", consumers=3, rate=2000, live=f'url = "tcp://127.0.0.1:{port}"',
                           burst=burst), tmp_path / "run")
    summary = result.summary
    assert summary["target"] == "zmq"
    # A generator behind at the run's end on a loaded machine leaves the rest unsent (never sent late).
    sent = summary["messages"]["sent"]
    assert sent + summary["messages"]["unsent"] == 2000 and summary["messages"]["committed"] == sent >= 500
    assert summary["messages"]["lost"] == 0
    assert summary["delivery"]["fanout"] is False and summary["delivery"]["duplicated"] == 0
    assert {c["name"]: c["verdict"] for c in summary["checks"]}["delivery"] == "valid"
    # ZeroMQ keeps nothing to read back: no read-back phase, rather than one "not done".
    assert summary["delivery"]["read_back"] is None and summary["delivery"]["stream"] is None
    by_consumer = _receipts_by_consumer(result.history.deliveries)
    assert sorted(by_consumer) == ["consumer-0", "consumer-1", "consumer-2"]
    assert all(len(ids) > 100 for ids in by_consumer.values())  # round robin: about 667 each
    received = [msg_id for ids in by_consumer.values() for msg_id in ids]
    messages = result.history.messages
    committed = [m for m, s in zip(messages["msg_id"].to_pylist(), messages["status"].to_pylist()) if s == "committed"]
    assert sorted(received) == sorted(committed) and len(committed) == sent  # each once
    assert not _listens(port)


@pytest.mark.parametrize("burst", [1, 1024])
def test_pub_sub_gives_every_consumer_every_message_from_the_first(tmp_path: Path, burst: int) -> None:
    result = run(_scenario("pub-sub", consumers=2, rate=2000, burst=burst), tmp_path / "run")
    summary = result.summary
    # A generator behind on a loaded machine leaves the schedule's last few unsent (never sent
    # late): every message sent reaches both consumers.
    assert summary["messages"]["sent"] + summary["messages"]["unsent"] == 2000 and summary["messages"]["sent"] >= 500
    assert summary["messages"]["lost"] == 0
    assert summary["delivery"]["fanout"] is True and summary["delivery"]["lost"]["total"] == 0
    messages = result.history.messages
    sent = [m for m, t in zip(messages["msg_id"].to_pylist(), messages["t_sent"].to_pylist()) if t is not None]
    assert sent == list(range(summary["messages"]["sent"]))
    by_consumer = _receipts_by_consumer(result.history.deliveries)
    # No slow joiner: the very first message reaches both; no probe or duplicate is recorded.
    assert by_consumer == {"consumer-0": sent, "consumer-1": sent}
    assert {c["name"]: c["verdict"] for c in summary["checks"]}["delivery"] == "valid"


def test_pub_at_its_high_water_mark_drops_and_the_history_counts_each_drop(tmp_path: Path) -> None:
    result = run(_scenario("pub-sub", consumers=2, rate=40_000, size=16_384, hwm=10, drain="1s"), tmp_path / "run")
    messages = result.history.messages
    sent = {m for m, t in zip(messages["msg_id"].to_pylist(), messages["t_sent"].to_pylist()) if t is not None}
    received = set(result.history.deliveries["msg_id"].to_pylist())
    never_received = len(sent - received)
    assert never_received > 0, "a PUB with hwm 10 kept up with 40,000 x 16 KiB/s: raise the rate"
    assert result.summary["messages"]["lost"] == never_received
    assert received <= sent
    assert result.summary["delivery"]["lost"]["middle"] > 0  # gaps, not a consumer that stopped


@pytest.mark.parametrize("burst", [1, 1024])
def test_push_at_its_high_water_mark_waits_and_loses_nothing(tmp_path: Path, burst: int) -> None:
    # 40,000/s of 16 KiB (650 MB/s) through a PUSH that holds one message: more than msgstorm's
    # one thread moves on a fast machine too (at 20,000/s one run on a quiet machine kept up).
    result = run(_scenario("push-pull", consumers=2, rate=40_000, size=16_384, hwm=1, drain="5s", burst=burst),
                 tmp_path / "run")
    counts = result.summary["messages"]
    # What the generator could not send by the run's end stays unsent (never sent late), and
    # nothing sent is lost.
    assert counts["sent"] + counts["unsent"] == 40_000 and counts["lost"] == 0
    # The wait shows as send lag (about 0.7 s here), where PUB at the same load drops instead.
    assert result.summary["generator"]["saturated"] is True
    # ...and not as transport: a message of a burst that left after the wait is stamped when it
    # left (stamped at the burst's start, the median send-to-receipt time was 40 ms, not 0.5;
    # the bound leaves a slow machine room).
    messages = result.history.messages
    transport = (np.asarray(messages["t_received"].to_numpy(zero_copy_only=False))
                 - np.asarray(messages["t_sent"].to_numpy(zero_copy_only=False)))
    assert float(np.nanmedian(transport)) < 25_000_000  # unsent messages have neither time


def test_a_remote_url_is_refused_without_allow_remote(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"live.url: tcp://10.1.2.3:5555: not a loopback address"):
        _scenario("push-pull", live='url = "tcp://10.1.2.3:5555"')
    remote = LiveSpec(url="tcp://10.1.2.3:5555")  # built directly: the driver checks too
    with pytest.raises(ServerError, match="not a loopback address"):
        ZmqDriver(remote, tmp_path, lambda kind, detail: None).start_servers()
    allowed = LiveSpec(url="tcp://10.1.2.3:5555", allow_remote=True)
    assert ZmqDriver(allowed, tmp_path, lambda kind, detail: None).start_servers() == []
    with pytest.raises(ServerError, match="tcp://host:port"):
        ZmqDriver(LiveSpec(url="ipc:///tmp/msgstorm"), tmp_path,
                  lambda kind, detail: None).start_servers()


def test_a_port_already_bound_is_an_error_not_a_run(tmp_path: Path) -> None:
    """The publisher binds (it connects to nothing): the error says it cannot bind, and
    names the address another process holds."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TargetError) as caught:
            run(_scenario("push-pull", live=f'url = "tcp://127.0.0.1:{port}"'), tmp_path / "run")
    assert str(caught.value) == (f"zmq: cannot bind tcp://127.0.0.1:{port}: 127.0.0.1:{port} is in use (another "
                                 "process listens on it): stop that process or choose another port")


def _payload(msg_id: int, size: int = 64) -> bytes:
    return HEADER.pack(msg_id, 0) + bytes(size - HEADER.size)


def test_connect_returns_with_every_subscriber_receiving_and_no_probe_passed_on(tmp_path: Path) -> None:
    """Publish right after connect, without a pause: every SUB gets all of it, and
    on_receipt never sees a probe."""
    receipts: list[tuple[int, bytes]] = []
    driver = ZmqDriver(LiveSpec(consumers=3, zmq=ZmqSpec(pattern="pub-sub")), tmp_path, lambda kind, detail: None)
    assert driver.fanout is True and driver.acks is False

    async def go() -> None:
        try:
            await driver.connect(Callbacks(lambda consumer, payload: receipts.append((consumer, payload)), lambda m, o: None))
            for msg_id in range(200):
                await driver.publish(msg_id, _payload(msg_id))
            deadline = time.monotonic() + 5
            while len(receipts) < 600 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert await driver.read_back() is None
        finally:
            await driver.close()

    asyncio.run(go())
    assert PROBE not in {payload for _, payload in receipts}
    for consumer in range(3):
        assert [HEADER.unpack_from(p)[0] for c, p in receipts if c == consumer] == list(range(200))
    assert driver.endpoint is not None and not _listens(urlsplit(driver.endpoint).port or 0)


def test_push_with_no_consumer_reading_drops_after_send_timeout_and_stays_bounded(tmp_path: Path) -> None:
    """Consumers that stop reading: the first send at the HWM waits send_timeout, the rest
    drop at once, and the publisher says so once."""
    events: list[tuple[str, dict[str, Any]]] = []
    spec = LiveSpec(consumers=1, zmq=ZmqSpec(pattern="push-pull", hwm=1, send_timeout="50ms"))
    driver = ZmqDriver(spec, tmp_path, lambda kind, detail: events.append((kind, detail)))
    assert driver.fanout is False

    async def go() -> float:
        try:
            await driver.connect(Callbacks(lambda consumer, payload: None, lambda m, o: None))
            for task in driver._receivers:  # the consumers stop reading (the socket stays connected)
                task.cancel()
            started = time.monotonic()
            for msg_id in range(2000):
                await driver.publish(msg_id, _payload(msg_id, 65_536))
            return time.monotonic() - started
        finally:
            await driver.close()

    elapsed_s = asyncio.run(go())
    # Each of the 2,000 waiting its 50 ms would take 100 s; the first alone waits, and the rest
    # take what a loaded machine gives their copies of 64 KiB (0.7 s on a quiet one).
    assert driver.state.lost_publishes > 0 and elapsed_s < 10.0
    assert [kind for kind, _ in events] == ["client_error"]
    assert "high-water mark" in events[0][1]["error"]
    assert driver.endpoint is not None and not _listens(urlsplit(driver.endpoint).port or 0)


def test_a_push_that_stalls_again_after_a_send_got_through_says_the_cause_once(tmp_path: Path) -> None:
    """The consumer stops reading and the PUSH drops; the consumer takes a few, a send gets
    through, the consumer stops again and the PUSH drops again (as sockets' buffers free
    room now and then on a busy machine): one cause, one client_error, every drop counted."""
    events: list[tuple[str, dict[str, Any]]] = []
    spec = LiveSpec(consumers=1, zmq=ZmqSpec(pattern="push-pull", hwm=1, send_timeout="50ms"))
    driver = ZmqDriver(spec, tmp_path, lambda kind, detail: events.append((kind, detail)))
    ids = iter(range(100_000))

    async def until_a_drop() -> None:
        dropped = driver.state.lost_publishes
        while driver.state.lost_publishes == dropped:
            msg_id = next(ids)
            await driver.publish(msg_id, _payload(msg_id, 65_536))

    async def go() -> tuple[int, int]:
        try:
            await driver.connect(Callbacks(lambda consumer, payload: None, lambda m, o: None))
            for task in driver._receivers:  # the consumer stops reading (the socket stays connected)
                task.cancel()
            await until_a_drop()
            first = driver.state.lost_publishes
            consumer = driver._sockets[1]
            while driver._stalled:  # the consumer takes one at a time until a send gets through
                await consumer.recv()
                msg_id = next(ids)
                await driver.publish(msg_id, _payload(msg_id, 65_536))
            await until_a_drop()
            return first, driver.state.lost_publishes
        finally:
            await driver.close()

    first, dropped = asyncio.run(asyncio.wait_for(go(), 60))
    assert dropped > first > 0
    assert [kind for kind, _ in events] == ["client_error"], events


def test_staged_bursts_at_a_push_with_no_consumer_drop_after_send_timeout_and_say_so(tmp_path: Path) -> None:
    """The burst path when the PUSH has no consumer left (their sockets closed): the first
    message that finds no room waits send_timeout and is dropped, and the call returns how
    many it took, that one included; the PUSH then drops at once (no wait, no early return)
    until a send gets through. Every drop is counted; the error is said once."""
    events: list[tuple[str, dict[str, Any]]] = []
    spec = LiveSpec(consumers=1, zmq=ZmqSpec(pattern="push-pull", hwm=1, send_timeout="50ms", burst=1024))
    driver = ZmqDriver(spec, tmp_path, lambda kind, detail: events.append((kind, detail)))
    count = 4096

    async def go() -> float:
        try:
            await driver.connect(Callbacks(lambda consumer, payload: None, lambda m, o: None))
            for task in driver._receivers:
                task.cancel()
            await asyncio.gather(*driver._receivers, return_exceptions=True)
            assert driver._publisher is not None
            monitor = driver._publisher.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            consumers = [sock for sock in driver._sockets if sock is not driver._publisher]
            for sock in consumers:  # the consumers go away
                sock.close(linger=0)
            gone = 0
            while gone < len(consumers):  # until the PUSH has seen each peer go
                message = await asyncio.wait_for(recv_monitor_message(monitor), 30)
                gone += message["event"] == zmq.EVENT_DISCONNECTED
            driver._publisher.disable_monitor()
            monitor.close(linger=0)
            started = time.monotonic()
            ids = np.arange(count, dtype=np.int64)
            driver.stage(ids, ids, np.full(count, 1024, dtype=np.int32))
            while driver._staged and len(published) < 100:
                remaining = sum(staged.count - staged.taken for staged in driver._staged)
                published.append(await driver.publish_staged(min(1024, remaining)))
            return time.monotonic() - started
        finally:
            await driver.close()

    published: list[int | None] = []
    elapsed_s = asyncio.run(go())
    assert not driver._staged, "every staged message was taken"
    assert published[0] == 1, "the first message waited, was dropped, and the call returned"
    assert published[1:] == [None] * 4  # 4095 more: 1023, then 1024 three times, each dropped at once
    assert driver.state.lost_publishes == count and elapsed_s < 10.0  # 205 s if each waited its 50 ms
    assert [kind for kind, _ in events] == ["client_error"]
    assert "high-water mark" in events[0][1]["error"]


def test_the_driver_module_imports_pyzmq_not_itself() -> None:
    import msgstorm.live.drivers.zmq as driver_module

    assert driver_module.zmq.__name__ == "zmq" and hasattr(driver_module.zmq, "zmq_version")
