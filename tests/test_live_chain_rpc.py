"""The chain target's pipelined sends (live/chain/rpc.py): answers framed from the bytes as
they come, in request order, and a connection lost fails what waits on it. Against a real
node in tests/test_live_anvil.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from msgstorm.live.chain.rpc import HttpFramingError, JsonRpc, Pipeline, take_response


def _answer(body: bytes, chunked: bool = False) -> bytes:
    if chunked:
        half = len(body) // 2
        parts = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]) if p)
        return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + parts + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_response_is_taken_whole_whatever_pieces_it_comes_in(chunked: bool) -> None:
    bodies = [b'{"jsonrpc":"2.0","id":1,"result":"0x1"}', b'[{"id":0,"result":"0xab"},{"id":1,"error":{}}]']
    stream = b"".join(_answer(body, chunked) for body in bodies)
    for cut in range(1, len(stream)):
        buffer = bytearray()
        taken = []
        for piece in (stream[:cut], stream[cut:]):
            buffer += piece
            while (body := take_response(buffer)) is not None:
                taken.append(body)
        assert taken == bodies, cut
        assert buffer == b""


def test_an_answer_that_is_not_a_200_with_a_length_is_refused_naming_it() -> None:
    with pytest.raises(HttpFramingError, match="503 Service Unavailable"):
        take_response(bytearray(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"))
    with pytest.raises(HttpFramingError, match="neither Content-Length nor chunked"):
        take_response(bytearray(b"HTTP/1.1 200 OK\r\n\r\n{}"))
    with pytest.raises(HttpFramingError, match="not an HTTP/1.1 response"):
        take_response(bytearray(b"SSH-2.0-OpenSSH\r\n\r\n"))


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True


def test_pipelined_answers_go_to_their_requests_in_order_and_a_lost_connection_fails_the_rest() -> None:
    async def main() -> None:
        pipeline = Pipeline()
        transport = _Transport()
        pipeline.connection_made(transport)
        rpc = JsonRpc("http://127.0.0.1:8545/rpc")
        try:
            first, second, third = (pipeline.write(rpc.request_bytes(f'{{"id":{k}}}')) for k in range(3))
            assert len(transport.written) == 3  # each written in its call, none waiting for an answer
            assert transport.written[1] == (b"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:8545\r\n"
                                            b"Content-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"id\":1}")
            stream = _answer(b'{"id":0}') + _answer(b'{"id":1}')
            pipeline.data_received(stream[:30])
            assert not first.done()
            pipeline.data_received(stream[30:])
            assert (first.result(), second.result()) == ({"id": 0}, {"id": 1})
            pipeline.connection_lost(None)
            with pytest.raises(ConnectionResetError):
                third.result()
            assert pipeline.closed
        finally:
            await rpc.close()

    asyncio.run(main())


def test_a_garbled_answer_fails_the_waiting_requests_and_closes_the_connection() -> None:
    async def main() -> None:
        pipeline = Pipeline()
        transport = _Transport()
        pipeline.connection_made(transport)
        answer = pipeline.write(b"POST / HTTP/1.1\r\n\r\n")
        pipeline.data_received(_answer(b"{not json"))
        with pytest.raises(json.JSONDecodeError):
            answer.result()
        assert transport.closed and pipeline.closed

    asyncio.run(main())
