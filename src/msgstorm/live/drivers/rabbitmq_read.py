"""Reading RabbitMQ's audit queue (or stream) back after a run, on one connection.

Place in the pipeline: under ``drivers/rabbitmq.py``, whose ``read_back`` opens the
connection, closes it after each read (what a queue read took unacked goes back to the
queue) and makes the read again when the connection drops (``live/read_back.py``); the copy
becomes the ``deliveries`` rows of node ``stream`` (``live/target.py``).
"""

from __future__ import annotations

import asyncio

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.common import FieldValue

from msgstorm.live.payload import StoredCopy

__all__ = ["READ_IDLE_S", "read_queue"]

# A read-back that gets nothing for this long has read everything the broker holds.
READ_IDLE_S = 1.0
PAGE = 10_000  # payloads taken into the copy at a time


async def read_queue(connection: aiormq.abc.AbstractConnection, name: str,
                     stream: bool) -> StoredCopy:
    """Every message queue (or stream, ``stream``) ``name`` holds, in its order, read on
    ``connection`` and acked to none."""
    copy = StoredCopy()
    channel = await connection.channel(publisher_confirms=False)
    # A queue's messages are never acked (an auto-ack, ``no_ack``, would take each from the
    # queue as it is delivered): all are delivered at once (no prefetch limit) and go back
    # to the queue, whole and in order, when the connection closes. A stream keeps what is
    # read whatever the acks; its consumer acks to get more (its credit).
    await channel.basic_qos(prefetch_count=5000 if stream else 0)
    page: list[bytes] = []
    got = asyncio.Event()

    async def take(message: DeliveredMessage) -> None:
        page.append(message.body)
        got.set()
        if stream:
            await channel.basic_ack(message.delivery_tag or 0, multiple=True, wait=False)

    arguments: dict[str, FieldValue] = {"x-stream-offset": "first"} if stream else {}
    await channel.basic_consume(name, take, no_ack=False, arguments=arguments)
    while True:
        got.clear()
        try:
            await asyncio.wait_for(got.wait(), READ_IDLE_S)
        except TimeoutError:
            break
        if len(page) >= PAGE:
            copy.add(page)
            page = []
    if page:
        copy.add(page)
    return copy
