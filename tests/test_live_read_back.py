"""A read-back's bounded retry: made again on a dropped connection, never on another error,
and, against real servers, a read-back whose connection the fault proxy resets still reads
every message stored."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import require_program

from msgstorm.live.drivers.base import Callbacks
from msgstorm.live.payload import payload as message_payload
from msgstorm.live.proxy import FaultProxy
from msgstorm.live.read_back import READ_BACK_ATTEMPTS, read_with_retries
from msgstorm.live.toxics import ResetPeer, ToxicTarget
from msgstorm.scenario.live import LiveSpec, RabbitMqSpec, RedisSpec


def _reads(failures: list[BaseException]) -> tuple[list[int], Any]:
    calls: list[int] = []

    async def read() -> str:
        calls.append(len(calls))
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "stored"

    return calls, read


def test_a_read_whose_connection_drops_is_made_again_and_returns_what_the_next_one_read() -> None:
    calls, read = _reads([ConnectionResetError(104, "reset"), BrokenPipeError(32, "pipe")])
    assert asyncio.run(read_with_retries(read, (OSError,))) == "stored"
    assert calls == [0, 1, 2]


def test_a_read_is_made_at_most_three_times_and_the_last_error_is_raised() -> None:
    calls, read = _reads([ConnectionResetError(104, f"reset {i}") for i in range(5)])
    with pytest.raises(ConnectionResetError, match="reset 2"):
        asyncio.run(read_with_retries(read, (OSError,)))
    assert READ_BACK_ATTEMPTS == 3 and calls == [0, 1, 2]


@pytest.mark.parametrize("error", [ValueError("a reply that does not parse"), TimeoutError("no answer")])
def test_an_error_that_is_no_dropped_connection_ends_the_read_at_once(error: Exception) -> None:
    """Not a dropped connection: an error of another type, or a timeout (an OSError too, but
    a server that does not answer would cost each attempt the whole wait)."""
    calls, read = _reads([error])
    with pytest.raises(type(error)):
        asyncio.run(read_with_retries(read, (OSError,)))
    assert calls == [0]


@dataclass(frozen=True)
class _ResetTheFirst(ResetPeer):
    """``reset_peer`` on the first connection the link opens only (as it opens)."""

    met: list[int] = field(default_factory=list)

    def meet(self, connection: ToxicTarget, toxic_id: int) -> None:
        self.met.append(toxic_id)
        if len(self.met) == 1:
            connection.reset()


@pytest.mark.slow
def test_a_rabbitmq_read_back_whose_first_connection_is_reset_reads_the_audit_queue_whole(tmp_path: Path) -> None:
    """The read-back after the run connects through the fault proxy, which resets its first
    connection: the read is made again on a second one and finds every confirmed message."""
    require_program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install="apt-get install rabbitmq-server")
    from msgstorm.live.drivers.rabbitmq import RabbitMqDriver

    events: list[tuple[str, dict[str, Any]]] = []
    spec = LiveSpec(consumers=1, rabbitmq=RabbitMqSpec(queue_type="quorum"))
    driver = RabbitMqDriver(spec, tmp_path / "run", lambda kind, detail: events.append((kind, detail)))
    toxic = _ResetTheFirst()
    count = 200

    async def go() -> list[int] | None:
        acked: list[int] = []
        confirmed = asyncio.Event()

        def on_ack(msg_id: int, order: int) -> None:
            acked.append(msg_id)
            if len(acked) == count:
                confirmed.set()

        await driver.connect(Callbacks(lambda index, data: None, on_ack))
        proxy = FaultProxy()
        try:
            for msg_id in range(count):
                await driver.publish(msg_id, message_payload(msg_id, 0, 64))
            await driver.flush()
            await asyncio.wait_for(confirmed.wait(), 60)
            assert driver.url is not None and not driver.node_urls
            broker = urlsplit(driver.url)
            assert broker.port is not None
            port = await proxy.listen("read-back", "127.0.0.1", broker.port)
            proxy.set(1, "read-back", toxic, seed=0)
            driver.url = broker._replace(netloc=f"127.0.0.1:{port}").geturl()
            copy = await driver.read_back()
            return None if copy is None else sorted(copy.ids.tolist())
        finally:
            await proxy.close()
            await driver.close()

    driver.start_servers()
    try:
        read = asyncio.run(go())
    finally:
        driver.stop_servers()
    assert len(toxic.met) == 2  # the first connection reset, the second read
    assert read == list(range(count)), [event for event in events if event[0] == "client_error"]


def test_a_redis_read_back_whose_connection_is_reset_reads_the_stream_whole(tmp_path: Path) -> None:
    """Every connection of the run goes through the fault proxy, which resets them all once
    after the last XADD is acked: the read-back's first page meets the reset, is asked again
    on a new connection, and the stream is read whole."""
    require_program("redis-server", install="apt-get install redis-server")
    from msgstorm.live.drivers.redis import RedisDriver

    events: list[tuple[str, dict[str, Any]]] = []
    driver = RedisDriver(LiveSpec(consumers=1, redis=RedisSpec(burst=1)), tmp_path / "run",
                         lambda kind, detail: events.append((kind, detail)))
    count = 300

    async def go() -> list[int] | None:
        acked: list[int] = []
        confirmed = asyncio.Event()

        def on_ack(msg_id: int, order: int) -> None:
            acked.append(msg_id)
            if len(acked) == count:
                confirmed.set()

        assert driver.url is not None
        proxy = FaultProxy()
        port = await proxy.listen("redis", "127.0.0.1", int(driver.url.rsplit(":", 1)[1]))
        driver.url = f"redis://127.0.0.1:{port}"
        await driver.connect(Callbacks(lambda index, data: None, on_ack))
        try:
            for msg_id in range(count):
                await driver.publish(msg_id, message_payload(msg_id, 0, 64))
            await driver.flush()
            await asyncio.wait_for(confirmed.wait(), 60)
            proxy.set(1, "redis", ResetPeer(), seed=0)  # every open connection reset, now
            proxy.clear(1)  # and none after
            copy = await driver.read_back()
            return None if copy is None else sorted(copy.ids.tolist())
        finally:
            await driver.close()
            await proxy.close()

    driver.start_servers()
    try:
        read = asyncio.run(go())
    finally:
        driver.stop_servers()
    assert read == list(range(count)), [event for event in events if event[0] == "client_error"]
