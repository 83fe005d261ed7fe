"""JetStream's wire path: the compiled framing and parsers against plain-Python forms on
random inputs, streams split at every size (as ``test_live_nats_wire.py`` does for MSGs)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import reset_at_first_ping

from msgstorm.live import payload
from msgstorm.live.drivers import jetstream_wire, nats_wire
from msgstorm.live.drivers.base import Callbacks, DriverState
from msgstorm.live.drivers.jetstream_wire import AckWindow, WireConsumer, read_acks
from msgstorm.live.drivers.nats_wire import (
    HEADER_LENGTH,
    PAYLOAD_LENGTH,
    PAYLOAD_START,
    REPLY_LENGTH,
    REPLY_START,
    SUBJECT_LENGTH,
    SUBJECT_START,
    FrameConnection,
    pack_replies,
    pack_request_pubs,
    reply_frames,
    request_frames,
)


class _Transport(asyncio.Transport):
    """What the connection writes (PONGs, replies), kept instead of sent."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


def _connection(on_table: Any) -> FrameConnection:
    connection = FrameConnection("nats://127.0.0.1:1", "test", on_table)
    connection.connection_made(_Transport())
    return connection


def _written(connection: FrameConnection) -> bytes:
    transport: Any = connection.transport
    return b"".join(transport.written)


@pytest.mark.parametrize("seed", range(5))
def test_packed_request_pubs_are_request_frames(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.choice([0, 1, 9, 10, 99, 100, 999, 1000, 70_000], size=60)
    payloads = [rng.bytes(int(n)) for n in sizes]
    msg_ids = rng.choice([0, 1, 9, 10, 12_345, 10**15, 10**18 - 1], size=60).astype(np.int64)
    ends = np.cumsum([len(p) for p in payloads]).astype(np.int64)
    data = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    subject, prefix = "orders.eu-west", "_INBOX.AbC123."
    head = np.frombuffer(f"PUB {subject} ".encode(), dtype=np.uint8)
    reply = np.frombuffer(prefix.encode(), dtype=np.uint8)
    frames, frame_ends = pack_request_pubs(head, reply, msg_ids, data, ends)
    assert frames.tobytes() == request_frames(subject, prefix, msg_ids.tolist(), payloads)
    assert [frames[a:b].tobytes() for a, b in zip([0, *frame_ends[:-1]], frame_ends)] == [
        request_frames(subject, prefix, [i], [p]) for i, p in zip(msg_ids.tolist(), payloads)]


@pytest.mark.parametrize("seed", range(3))
def test_packed_replies_are_reply_frames(seed: int) -> None:
    rng = np.random.default_rng(seed)
    subjects = [b"" if rng.random() < 0.2 else b"$JS.ACK.S.c.1.%d.%d.1700000000.0" % (i, i) for i in range(50)]
    data = np.frombuffer(b"".join(subjects), dtype=np.uint8)
    lengths = np.array([len(s) for s in subjects], dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    assert pack_replies(data, starts, lengths).tobytes() == reply_frames(subjects)
    assert reply_frames([b"a", b""]) == b"PUB a 0\r\n\r\n"


def _reference_seq(payload: bytes) -> int:
    """The ack a JSON payload gives, by the json module: its ``seq`` when it is an object
    without ``error`` whose ``seq`` is a whole number; -1 otherwise."""
    try:
        reply = json.loads(payload)
    except ValueError:
        return -1
    if not isinstance(reply, dict) or "error" in reply:
        return -1
    seq = reply.get("seq")
    return seq if type(seq) is int and seq >= 0 else -1


def _reference_frames(stream: bytes) -> list[dict[str, Any]]:
    """The MSG and HMSG frames of a whole stream, split by plain Python."""
    frames = []
    position = 0
    while position < len(stream):
        line_end = stream.index(b"\r\n", position)
        line = stream[position:line_end]
        position = line_end + 2
        if not line.startswith((b"MSG ", b"HMSG ")):
            continue  # a control line
        fields = line.split(b" ")
        headers = fields[0] == b"HMSG"
        total = int(fields[-1])
        header = int(fields[-2]) if headers else 0
        replied = len(fields) == (6 if headers else 5)
        body = stream[position:position + total]
        frames.append({"subject": fields[1], "reply": fields[3] if replied else b"", "headers": body[:header],
                       "payload": body[header:]})
        position += total + 2
    return frames


def _reference_acks(stream: bytes) -> list[tuple[int, int]]:
    acks = []
    for frame in _reference_frames(stream):
        token = frame["subject"].rsplit(b".", 1)[-1]
        msg_id = int(token) if token.isdigit() and len(token) <= 18 else -1
        acks.append((msg_id, -1 if frame["headers"] else _reference_seq(frame["payload"])))
    return acks


def _random_ack(rng: np.random.Generator) -> bytes:
    """A publish ack's payload as a server writes it, or one of its variants and refusals."""
    seq = int(rng.choice([1, 9, 10, 4096, 10**9, 10**18 - 1]))
    fields: list[tuple[str, object]] = [("stream", str(rng.choice(["MSGSTORM", 'odd "seq":9 name', "s\\"]))),
                                        ("seq", seq)]
    roll = rng.random()
    if roll < 0.15:
        fields.append(("duplicate", True))
    elif roll < 0.3:
        fields = [("error", {"code": 503, "err_code": 10077, "description": 'no "seq": 5 here'})]
    elif roll < 0.35:
        fields = [fields[0], ("error", {"code": 400, "description": "wrong last sequence"}), fields[1]]
    elif roll < 0.45:
        fields.insert(1, ("meta", {"seq": 3, "list": [1, {"seq": 2}]}))
    elif roll < 0.5:
        fields = [fields[0], ("meta", {"seq": 3})]  # "seq" only nested: no ack
    elif roll < 0.6:
        fields[1] = ("seq", [1.5, "7", None, -3, 1e3, True, {"n": 1}][int(rng.integers(7))])
    elif roll < 0.65:
        fields.append(("domain", "hub"))
    if rng.random() < 0.3:
        fields.reverse()
    separators = [(",", ":"), (", ", ": "), (" ,\t", " :\n ")][int(rng.integers(3))]
    text = json.dumps(dict(fields), separators=separators)
    if rng.random() < 0.05:
        text = ["", "not json", "[1, 2]", '{"seq": 5', " \r\n"][int(rng.integers(5))]
    return (" " + text + "\n").encode() if rng.random() < 0.1 else text.encode()


_STATUSES = [b"NATS/1.0 503\r\n\r\n", b"NATS/1.0 408 Request Timeout\r\n\r\n"]


def _random_ack_stream(rng: np.random.Generator, frames: int) -> bytes:
    parts = []
    for _ in range(frames):
        roll = rng.random()
        msg_id = int(rng.integers(10**6))
        token = b"%d" % msg_id if rng.random() < 0.95 else b"x%d" % msg_id
        subject = b"_INBOX.K7wZ." + token
        if roll < 0.1:
            parts.append([b"PING\r\n", b"+OK\r\n", b"PONG\r\n"][int(rng.integers(3))])
        elif roll < 0.2:
            status = _STATUSES[int(rng.integers(2))]
            body = b"" if rng.random() < 0.7 else b'{"seq":5}'
            parts.append(b"HMSG %s 1 %d %d\r\n%s%s\r\n" % (subject, len(status), len(status) + len(body), status, body))
        else:
            payload = _random_ack(rng)
            parts.append(b"MSG %s 1 %d\r\n%s\r\n" % (subject, len(payload), payload))
    return b"".join(parts)


@pytest.mark.parametrize("seed", range(6))
def test_the_ack_parser_reads_random_streams_as_json_does_at_every_split(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stream = _random_ack_stream(rng, 400)
    expected = _reference_acks(stream)
    seqs = [seq for _, seq in expected]
    assert sum(seq >= 0 for seq in seqs) > 150 and sum(seq < 0 for seq in seqs) > 50
    assert any(msg_id < 0 for msg_id, _ in expected)

    def parse(cuts: list[int]) -> list[tuple[int, int]]:
        acks: list[tuple[int, int]] = []

        def on_table(data: np.ndarray, frames: np.ndarray) -> None:
            msg_ids, seqs = read_acks(data, frames)
            acks.extend(zip(msg_ids.tolist(), seqs.tolist()))

        connection = _connection(on_table)
        for start, end in zip([0, *cuts], [*cuts, len(stream)]):
            connection.feed(stream[start:end])
        assert connection.errors == []
        return acks

    for chunk in [1, 2, 3, 5, 8, 13, 100, 1000, 4096, len(stream)]:
        assert parse(list(range(chunk, len(stream), chunk))) == expected, chunk
    assert parse(np.sort(rng.choice(len(stream), size=300, replace=False)).tolist()) == expected


@pytest.mark.parametrize("seed", range(3))
def test_the_frame_table_holds_what_each_frame_holds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stream = _random_ack_stream(rng, 200) + b"HMSG d 2 r.1 12 12\r\nNATS/1.0\r\n\r\n\r\nMSG d 3 r.2 0\r\n\r\n"
    seen: list[dict[str, Any]] = []

    def on_table(data: np.ndarray, frames: np.ndarray) -> None:
        for i in range(frames.shape[1]):
            def field(start: int, length: int, i: int = i) -> bytes:
                return data[frames[start, i]:frames[start, i] + frames[length, i]].tobytes()

            header = int(frames[HEADER_LENGTH, i])
            payload_start = int(frames[PAYLOAD_START, i])
            seen.append({"subject": field(SUBJECT_START, SUBJECT_LENGTH), "reply": field(REPLY_START, REPLY_LENGTH),
                         "headers": data[payload_start - header:payload_start].tobytes(),
                         "payload": field(PAYLOAD_START, PAYLOAD_LENGTH)})

    connection = _connection(on_table)
    for start in range(0, len(stream), 7):
        connection.feed(stream[start:start + 7])
    assert seen == _reference_frames(stream)


def test_acks_error_payloads_and_statuses() -> None:
    def msg(subject: bytes, payload: bytes) -> bytes:
        return b"MSG %s 1 %d\r\n%s\r\n" % (subject, len(payload), payload)

    stream = (msg(b"_INBOX.a.7", b'{"stream":"S", "seq": 42}')
              + msg(b"_INBOX.a.8", b'{"stream":"S","seq":43,"duplicate":true}')
              + msg(b"_INBOX.a.9", b'{"error":{"code":503,"err_code":10077,"description":"no seq"}}')
              + b"HMSG _INBOX.a.10 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
              + msg(b"_INBOX.a.ten", b'{"stream":"S","seq":1}'))
    acks: list[tuple[int, int]] = []
    connection = _connection(lambda data, frames: acks.extend(zip(*(a.tolist() for a in read_acks(data, frames)))))
    connection.feed(stream)
    assert acks == [(7, 42), (8, 43), (9, -1), (10, -1), (-1, 1)]


def test_a_consumer_acks_each_message_and_answers_flow_control_not_heartbeats() -> None:
    receipts: list[tuple[int, list[int], int]] = []
    consumer = WireConsumer(3, "d.0", explicit=True, on_receipts=lambda i, ids, bad: receipts.append((i, ids.tolist(), bad)),
                            on_receipt=lambda i, data: None)
    consumer.connection = _connection(consumer.on_table)
    flow = b"NATS/1.0 100 FlowControl Request\r\n\r\n"
    heartbeat = b"NATS/1.0 100 Idle Heartbeat\r\nNats-Consumer-Stalled: $JS.FC.S.x.1\r\n\r\n"
    message = (5).to_bytes(8, "little") + bytes(8)
    consumer.connection.feed(
        b"MSG d.0 1 $JS.ACK.S.c.1.1.1.0.0 16\r\n%s\r\n" % message
        + b"HMSG d.0 1 $JS.FC.S.y.2 %d %d\r\n%s\r\n" % (len(flow), len(flow), flow)
        + b"HMSG d.0 1 %d %d\r\n%s\r\n" % (len(heartbeat), len(heartbeat), heartbeat)
        + b"MSG d.0 1 $JS.ACK.S.c.1.2.2.0.0 3\r\nabc\r\n")
    assert receipts == [(3, [5], 1)], "statuses are not receipts; a payload too short to carry an id is unreadable"
    assert consumer.statuses == 2
    assert _written(consumer.connection) == (b"PUB $JS.FC.S.y.2 0\r\n\r\nPUB $JS.FC.S.x.1 0\r\n\r\n"
                                             b"PUB $JS.ACK.S.c.1.1.1.0.0 0\r\n\r\nPUB $JS.ACK.S.c.1.2.2.0.0 0\r\n\r\n")


def test_the_ack_window_holds_its_limit_and_gives_up_overdue_acks() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        warm = AckWindow(limit=1, timeout_s=1)  # compiled before the clock matters
        warm.sent(np.zeros(1, dtype=np.int64), loop.time())
        warm.answered(np.zeros(1, dtype=np.int64))
        window = AckWindow(limit=4, timeout_s=3.0)  # long beside the steps below, on a busy machine too
        first_sent = loop.time()
        window.sent(np.arange(3, dtype=np.int64), first_sent)
        assert window.room() == 1
        window.sent(np.array([3], dtype=np.int64), loop.time())
        waiter = loop.create_task(window.wait_for_room())
        await asyncio.sleep(0.05)
        assert not waiter.done(), "full: the burst waits"
        window.answered(np.array([1, 1, 99, -5], dtype=np.int64))  # a repeat, an id never sent
        await asyncio.wait_for(waiter, 0.5)  # an ack made room
        assert window.unanswered == 3 and window.room() == 1
        # A second later (so that a stalled event loop on a busy machine cannot make it overdue
        # together with the oldest), one more: the flags grow.
        await asyncio.sleep(1.0)
        window.sent(np.array([70_000], dtype=np.int64), loop.time())
        await window.wait_for_room()
        assert loop.time() - first_sent >= 2.95, "nothing answered: room once the oldest acks are overdue"
        assert window.timed_out == 3 and window.unanswered == 1
        window.answered(np.array([0, 70_000], dtype=np.int64))  # 0 came too late: not counted again
        assert window.unanswered == 0 and window.timed_out == 3

    asyncio.run(scenario())


def test_a_run_compiles_nothing_the_warm_up_did_not() -> None:
    """The driver warms these up before the run's clock starts: a signature first met
    during the run would stall the generator while numba compiles it."""
    compiled = [nats_wire.scan_frames, nats_wire.pack_request_pubs, nats_wire.pack_replies, payload.pack_payloads,
                payload.read_ids, jetstream_wire.read_acks, jetstream_wire._settle, jetstream_wire._mark_sent]
    nats_wire.warm_up_frames()
    payload.warm_up()
    jetstream_wire.warm_up()
    before = [len(function.signatures) for function in compiled]
    window = AckWindow(limit=10, timeout_s=10)
    state = DriverState(lambda kind, detail: None)
    state.callbacks = Callbacks(lambda i, data: None, lambda msg_id, seq: None, on_acks=lambda msg_ids, seqs: None)
    publisher = jetstream_wire.WirePublisher("s", "_INBOX.a.", window, jetstream_wire.PublishTrouble(), state)
    batch = np.arange(100, dtype=np.int64)
    publisher.stage(batch[10:20], batch[10:20], np.full(10, 64, dtype=np.int32))
    window.sent(batch[10:20], 0.0)
    ack = b'{"stream":"S","seq":1}'
    _connection(publisher.on_table).feed(b"".join(b"MSG _INBOX.a.%d 1 %d\r\n%s\r\n" % (i, len(ack), ack)
                                                  for i in range(10, 20)))
    consumer = WireConsumer(0, "d", True, lambda i, ids, bad: None, lambda i, data: None)
    consumer.connection = _connection(consumer.on_table)
    message = (7).to_bytes(8, "little") + bytes(8)
    consumer.connection.feed(b"MSG d 1 $JS.ACK.S.c.1.1.1.0.0 16\r\n%s\r\n" % message)
    assert [len(function.signatures) for function in compiled] == before


def test_a_lost_publisher_connection_frees_the_window_at_once() -> None:
    """The acks pending on a lost connection will not come on it: the window gives them up
    (counted as timed out) and a burst waiting for room goes on, not ACK_TIMEOUT_S later."""

    async def scenario() -> tuple[float, int, int]:
        window = AckWindow(limit=2, timeout_s=60.0)
        window.sent(np.array([0, 1], dtype=np.int64), asyncio.get_running_loop().time())
        waiting = asyncio.ensure_future(window.wait_for_room())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        started = asyncio.get_running_loop().time()
        window.give_up()
        await asyncio.wait_for(waiting, 5.0)
        return asyncio.get_running_loop().time() - started, window.unanswered, window.timed_out

    waited, unanswered, timed_out = asyncio.run(scenario())
    assert waited < 1.0 and (unanswered, timed_out) == (0, 2)


def test_a_failed_open_leaves_no_subscribed_connection_and_reconnects_once(tmp_path: Path) -> None:
    """A server that completes the handshake and then answers no PING (the SUB's check times
    out): the half-open, subscribed connection is closed; reconnecting against it for a while
    leaves at most one subscribed connection, and none after close."""
    from msgstorm.live.drivers.jetstream import JetStreamDriver
    from msgstorm.scenario import parse_scenario

    connections: list[dict[str, Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        entry: dict[str, Any] = {"subs": 0, "pings": 0, "closed": False}
        connections.append(entry)
        writer.write(b'INFO {"server_id":"x","version":"2.10.0","headers":true,"max_payload":1048576,"proto":1}\r\n')
        while line := await reader.readline():
            if line.startswith(b"PING"):
                entry["pings"] += 1
                if entry["pings"] == 1:
                    writer.write(b"PONG\r\n")  # the handshake's only
            elif line.startswith(b"SUB"):
                entry["subs"] += 1
        entry["closed"] = True
        writer.close()

    def subscribed() -> int:
        return sum(1 for c in connections if c["subs"] and not c["closed"])

    async def scenario() -> tuple[int, int, int]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        spec = parse_scenario(f"""target = "jetstream"
[run]
name = "x"
duration = "1s"
[live]
url = "nats://127.0.0.1:{port}"
start_timeout = "300ms"
[[agents]]
name = "a"
arrival = {{ process = "constant", rate = "10/s" }}
""", source="x.toml").live
        driver = JetStreamDriver(spec, tmp_path, lambda kind, detail: None)
        with pytest.raises(TimeoutError):
            await driver._open_wire("msgstorm-consumer-0", lambda data, table: None, "D.0")
        await asyncio.sleep(0.05)
        after_failed_open = subscribed()
        consumer = WireConsumer(0, "D.0", False, lambda index, ids, bad: None, None)

        class Lost:
            name = "msgstorm-consumer-0"
            errors: list[str] = []

            def close(self) -> None:
                pass

        consumer.connection = Lost()  # type: ignore[assignment]
        driver.wire_consumers.append(consumer)
        reconnecting = asyncio.get_running_loop().create_task(driver._reconnect(consumer.connection))  # type: ignore[arg-type]
        await asyncio.sleep(2.0)
        while_reconnecting = subscribed()
        driver._closing = True
        reconnecting.cancel()
        await driver.close()
        await asyncio.sleep(0.1)
        server.close()
        return after_failed_open, while_reconnecting, subscribed()

    after_failed_open, while_reconnecting, after_close = asyncio.run(scenario())
    assert after_failed_open == 0 and while_reconnecting <= 1 and after_close == 0


def test_a_publisher_the_server_resets_while_it_flushes_leaves_its_acks_to_the_drain() -> None:
    """The end of a run flushes the publisher (a PING round trip, then the acks outstanding).
    A server that resets the connection then fails the round trip with the connection: the
    flush goes on to wait for the acks, as for a publisher already lost (the messages without
    an ack show as such), instead of failing the run."""
    async def scenario() -> bool:
        loop = asyncio.get_running_loop()

        server = await asyncio.start_server(reset_at_first_ping, "127.0.0.1", 0)  # at the flush's PING
        port = server.sockets[0].getsockname()[1]
        window = AckWindow(limit=10, timeout_s=10)
        publisher = jetstream_wire.WirePublisher("s", "_INBOX.a.", window, jetstream_wire.PublishTrouble(),
                                                 DriverState(lambda kind, detail: None))
        connection = nats_wire.FrameConnection(f"nats://127.0.0.1:{port}", "msgstorm-publisher")
        publisher.connection = connection
        try:
            await loop.create_connection(lambda: connection, "127.0.0.1", port)
            await publisher.flush(0.2)
            return connection.lost
        finally:
            connection.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(scenario())
