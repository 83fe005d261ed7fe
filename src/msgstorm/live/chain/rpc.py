"""JSON-RPC to an EVM node: batches over HTTP, new heads over WebSocket.

Place in the pipeline: under ``live/chain/target.py``. A plain client on aiohttp rather
than web3.py: the sender posts one JSON-RPC batch for every set of transactions due at
once, laid out as text it builds itself, and web3.py's per-call middleware, formatters
and validation cost tens of microseconds a call (``benchmarks/live_anvil.py`` measures
the two on one node)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

__all__ = ["JsonRpc", "RpcError"]


class RpcError(Exception):
    """The node answered a call with an error (``code``, ``message``)."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.code = int(error.get("code", 0))
        self.message = str(error.get("message", ""))
        super().__init__(f"{method}: {self.message} (code {self.code})")


class JsonRpc:
    """One node's HTTP endpoint (``url``), with at most ``connections`` requests in flight."""

    def __init__(self, url: str, connections: int = 4, timeout_s: float = 30.0) -> None:
        self.url = url
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=timeout_s), headers={"Content-Type": "application/json"})
        self._next_id = 0

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
        await self._session.close()
        await asyncio.sleep(0)  # aiohttp closes its transports on the next turn of the loop
