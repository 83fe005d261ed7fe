"""Reading a JetStream stream back after a run: the whole stream by an ephemeral pull
consumer, or one server's own copy by direct gets.

Place in the pipeline: under ``drivers/jetstream.py``, whose ``read_back`` and
``read_back_nodes`` call these (and say, as ``client_error`` events, why a read could not
happen); the copies become the ``deliveries`` rows of node ``stream`` (``live/target.py``).
"""

from __future__ import annotations

import asyncio

import nats
import nats.errors
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from msgstorm.live.payload import StoredCopy

__all__ = ["NODE_READ_BATCH", "READ_BACK_BATCH", "READ_BACK_FETCH_TIMEOUT_S", "await_caught_up", "read_node", "read_stream"]

NODE_READ_BATCH = 500  # direct gets in flight at once when a node's copy is read back
READ_BACK_BATCH = 10_000  # messages per pull request (1,000 made a 700,000-message read-back take 28 s)
READ_BACK_FETCH_TIMEOUT_S = 2.0
CAUGHT_UP_POLL_S = 0.1  # how often the stream's replicas are asked whether they caught up


async def read_stream(js: JetStreamContext, name: str, subject: str, deadline: float, patience_s: float,
                      pending_msgs: int, pending_bytes: int) -> StoredCopy:
    """One read of the whole stream by a new consumer, deleted once it has read it all:
    ``deadline`` for its first message, then ``patience_s`` for each next batch. The stream
    ``name`` holds ``subject``; the subscription keeps at most ``pending_msgs`` messages and
    ``pending_bytes`` bytes."""
    config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.NONE,
                                mem_storage=True, num_replicas=1)
    loop = asyncio.get_running_loop()
    stored = (await js.stream_info(name)).state.messages
    subscription = await js.pull_subscribe(subject, stream=name, config=config, pending_msgs_limit=pending_msgs,
                                           pending_bytes_limit=pending_bytes)
    payloads = StoredCopy()
    try:
        while len(payloads) < stored:
            if loop.time() >= deadline:
                raise TimeoutError(f"read {len(payloads)} of {stored}, then nothing for {patience_s:g} s "
                                   "(live.read_back_timeout)")
            try:
                batch = await subscription.fetch(min(READ_BACK_BATCH, stored - len(payloads)),
                                                 timeout=READ_BACK_FETCH_TIMEOUT_S)
            except nats.errors.TimeoutError:
                if not payloads:
                    raise  # nothing from this consumer yet: it may sit on a server that is down
                continue  # a slow server: this consumer has delivered, it goes on
            payloads.add(msg.data for msg in batch)
            deadline = loop.time() + patience_s  # it moves: the next batch gets as long
    finally:
        await subscription.unsubscribe()
    if config.name is not None:  # pull_subscribe named the ephemeral consumer
        try:
            await js.delete_consumer(name, config.name)
        except nats.errors.Error:
            pass  # the server deletes an ephemeral consumer nobody pulls from, a while later
    return payloads


async def await_caught_up(url: str, name: str, api_timeout_s: float, patience_s: float) -> str | None:
    """Wait, at most ``patience_s``, until every replica of stream ``name`` says it is current
    with no lag (the stream's leader answers, through the server at ``url``): a replica cut
    off by a fault catches up after the heal, and a copy read before that lacks what it has
    yet to fetch, which is lag, not loss. None once they all have; else which did not, and
    how far behind, for the event that explains the counts read after."""
    client = await nats.connect(url, allow_reconnect=False, connect_timeout=2, name="msgstorm-caught-up")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    try:
        js = client.jetstream(timeout=api_timeout_s)
        while True:
            cluster = (await js.stream_info(name)).cluster
            replicas = cluster.replicas or [] if cluster is not None else []
            behind = [f"{peer.name} (lag {peer.lag or 0}{', offline' if peer.offline else ''})"
                      for peer in replicas if not peer.current or peer.offline or (peer.lag or 0) > 0]
            if not behind:
                return None
            if loop.time() >= deadline:
                return f"replicas not caught up after {patience_s:g} s: {', '.join(behind)}"
            await asyncio.sleep(CAUGHT_UP_POLL_S)
    finally:
        await client.close()


async def read_node(url: str, name: str, api_timeout_s: float) -> StoredCopy:
    """Stream ``name`` as the one server at ``url`` stores it, in stream order, by direct gets
    (``NODE_READ_BATCH`` in flight at once; ``api_timeout_s`` each); a sequence this copy
    lacks is skipped."""
    client = await nats.connect(url, allow_reconnect=False, connect_timeout=2, name="msgstorm-read-node")
    try:
        js = client.jetstream(timeout=api_timeout_s)
        state = (await js.stream_info(name)).state
        payloads = StoredCopy()
        for first in range(state.first_seq, state.last_seq + 1, NODE_READ_BATCH):
            sequences = range(first, min(first + NODE_READ_BATCH, state.last_seq + 1))
            got = await asyncio.gather(*(js.get_msg(name, seq, direct=True) for seq in sequences),
                                       return_exceptions=True)
            page: list[bytes] = []
            for message in got:
                if isinstance(message, NotFoundError):
                    continue  # not in this copy
                if isinstance(message, BaseException):
                    raise message
                page.append(message.data or b"")
            payloads.add(page)
        return payloads
    finally:
        await client.close()
