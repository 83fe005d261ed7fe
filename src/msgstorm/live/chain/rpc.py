"""JSON-RPC to an EVM node: batches over HTTP, new heads over WebSocket.

Place in the pipeline: under ``live/chain/target.py``. A plain client on aiohttp rather
than web3.py: the sender posts one JSON-RPC batch for every set of transactions due at
once, laid out as text it builds itself, and web3.py's per-call middleware, formatters
and validation cost tens of microseconds a call (``benchmarks/live_anvil.py`` measures
the two on one node).

The sends themselves (``JsonRpc.send``) go over keep-alive connections of their own,
``Pipeline``, written to at once with the requests pipelined (HTTP/1.1: the next request
written before the last one's answer, answers in the order of the requests). Written by
hand, not through aiohttp's client: a request through it is a task that takes a pooled
connection when one is free, builds its headers and writes on a later turn of the event
loop, about 0.3 ms of the loop's time a request on the 2-core machine of
``docs/performance.md`` and up to tens of ms when every connection waits for an answer
(the send then leaves late, after the time stamped as its send). A pipeline writes the
request's bytes in the call that sends it, and reads its answers as ``data_received``
hands them over: a status line, headers, then a body of ``Content-Length`` bytes or in
chunks (``Transfer-Encoding: chunked``), which is all of HTTP/1.1 a JSON-RPC answer uses.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp

__all__ = ["HttpFramingError", "JsonRpc", "Pipeline", "RpcError"]


class RpcError(Exception):
    """The node answered a call with an error (``code``, ``message``)."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.code = int(error.get("code", 0))
        self.message = str(error.get("message", ""))
        super().__init__(f"{method}: {self.message} (code {self.code})")


class HttpFramingError(Exception):
    """An answer on a pipelined connection that is not HTTP/1.1 as a JSON-RPC node writes it."""


class Pipeline(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to the node: ``write`` sends a request at once
    and returns the future of its decoded answer; answers come back in request order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def write(self, request: bytes) -> asyncio.Future[Any]:
        """Send ``request`` (a whole HTTP request) now; its answer's JSON, decoded, later."""
        assert self.transport is not None
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(answer)
        self.transport.write(request)
        return answer

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            while self.waiting and (body := take_response(self._buffer)) is not None:
                decoded = json.loads(body)
                answer = self.waiting.popleft()
                if not answer.done():
                    answer.set_result(decoded)
        except (HttpFramingError, ValueError) as error:
            self._fail(error)
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc if exc is not None else ConnectionResetError("the node closed the connection"))

    def _fail(self, error: BaseException) -> None:
        self.closed = True
        while self.waiting:
            answer = self.waiting.popleft()
            if not answer.done():
                answer.set_exception(error)


def take_response(buffer: bytearray) -> bytes | None:
    """The body of the first whole HTTP/1.1 response in ``buffer`` (removed from it), or
    None when it has not all come yet. HttpFramingError when it is not a response with a
    ``Content-Length`` or chunked body, or its status is not 200."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = bytes(buffer[:head_end]).split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1."):
        raise HttpFramingError(f"not an HTTP/1.1 response: {lines[0][:80]!r}")
    if status[1] != b"200":
        raise HttpFramingError(f"the node answered {lines[0][:80].decode(errors='replace')}")
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    start = head_end + 4
    if chunked:
        return _take_chunked(buffer, start)
    if length is None:
        raise HttpFramingError("an answer with neither Content-Length nor chunked encoding")
    if len(buffer) < start + length:
        return None
    body = bytes(buffer[start:start + length])
    del buffer[:start + length]
    return body


def _take_chunked(buffer: bytearray, at: int) -> bytes | None:
    """A chunked body from ``at`` (and the response before it) taken from ``buffer``; None
    when its last chunk has not come."""
    parts: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        at = line_end + 2
        if size == 0:
            end = buffer.find(b"\r\n", at)  # no trailers from a JSON-RPC node: an empty line ends it
            if end < 0:
                return None
            del buffer[:end + 2]
            return b"".join(parts)
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at:at + size]))
        at += size + 2


class JsonRpc:
    """One node's HTTP endpoint (``url``), with at most ``connections`` requests in flight
    through aiohttp (the calls) and ``connections`` pipelined connections (the sends)."""

    def __init__(self, url: str, connections: int = 4, timeout_s: float = 30.0) -> None:
        self.url = url
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=timeout_s), headers={"Content-Type": "application/json"})
        self._next_id = 0
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._secure = parts.scheme == "https"
        self._head = (f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
                      f"Host: {parts.netloc}\r\nContent-Type: application/json\r\nContent-Length: ").encode()
        self._pipelines: list[Pipeline] = []
        self._connections = connections
        self._opening: asyncio.Task[None] | None = None

    def request_bytes(self, body: str) -> bytes:
        """The whole HTTP request that posts ``body``."""
        data = body.encode()
        return self._head + str(len(data)).encode() + b"\r\n\r\n" + data

    def send_now(self, body: str) -> asyncio.Future[Any] | None:
        """Post ``body`` in this call on the least busy open pipelined connection; the
        future of its decoded answer (a connection lost fails it: ConnectionError). None
        when no connection is open (``send`` connects first). Opens another connection, up
        to ``connections``, when every open one waits for an answer."""
        self._pipelines = [p for p in self._pipelines if not p.closed]
        if (len(self._pipelines) < self._connections and self._opening is None
                and all(p.waiting for p in self._pipelines)):
            self._opening = asyncio.get_running_loop().create_task(self._open())
            # Its failure is raised to a ``send`` that waits for it, and otherwise shows at the next send.
            self._opening.add_done_callback(lambda task: task.cancelled() or task.exception())
        if not self._pipelines:
            return None
        return min(self._pipelines, key=lambda p: len(p.waiting)).write(self.request_bytes(body))

    async def send(self, body: str) -> Any:
        """As ``send_now``, once a connection is open (connecting when none is)."""
        answer = self.send_now(body)
        if answer is None:
            assert self._opening is not None
            await asyncio.shield(self._opening)
            answer = self.send_now(body)
            if answer is None:
                raise ConnectionResetError(f"{self.url}: the connection closed as it opened")
        return await answer

    async def _open(self) -> None:
        try:
            _, pipeline = await asyncio.get_running_loop().create_connection(
                Pipeline, self._host, self._port, ssl=self._secure or None)
            self._pipelines.append(pipeline)
        finally:
            self._opening = None

    async def post(self, body: str) -> Any:
        """Post a request (or a batch) written out as JSON text; the decoded answer."""
        async with self._session.post(self.url, data=body.encode()) as response:
            return json.loads(await response.read())

    async def call(self, method: str, *params: Any) -> Any:
        """One call's result; RpcError when the node answers with an error."""
        self._next_id += 1
        answer = await self.post(json.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": method,
                                             "params": list(params)}))
        if "error" in answer:
            raise RpcError(method, answer["error"])
        return answer["result"]

    async def calls(self, method: str, params: list[list[Any]]) -> list[Any]:
        """The results of ``method`` called with each of ``params``, in one batch request."""
        if not params:
            return []
        body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in enumerate(params)])
        answers = {int(a["id"]): a for a in await self.post(body)}
        results = []
        for i in range(len(params)):
            if "error" in answers[i]:
                raise RpcError(method, answers[i]["error"])
            results.append(answers[i]["result"])
        return results

    async def new_heads(self, ws_url: str) -> AsyncIterator[dict[str, Any]]:
        """Each new block header as the node announces it (``eth_subscribe`` newHeads); ends
        when the connection closes."""
        async with self._session.ws_connect(ws_url, heartbeat=None, max_msg_size=0) as ws:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["newHeads"]}))
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(message.data)
                if "error" in data:
                    raise RpcError("eth_subscribe", data["error"])
                if data.get("method") == "eth_subscription":
                    yield data["params"]["result"]

    async def close(self) -> None:
        for pipeline in self._pipelines:
            if pipeline.transport is not None:
                pipeline.transport.close()
        if self._opening is not None:
            self._opening.cancel()
        await self._session.close()
        await asyncio.sleep(0)  # aiohttp closes its transports on the next turn of the loop
