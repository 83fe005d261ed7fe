"""The entry node's rate for CometBFT's load tool: one websocket, ``broadcast_tx_sync``.

CometBFT's QA loads its testnet with ``test/loadtime``'s ``load`` (tm-load-test): each second,
on each connection, it writes that second's transactions back to back over one websocket
without waiting for replies. The node's websocket reader handles one request at a time
(v0.38 ``rpc/jsonrpc/server/ws_handler.go``: it calls ``broadcast_tx_sync``, which waits
for CheckTx, and writes the reply before reading the next), so one connection's
transactions enter the mempool one after another, each after the last one's CheckTx.

This starts four v0.38 validators (``cometbft testnet``, the built-in kvstore, direct links
on 127.0.59.x) and sends the load tool's batches to validator 0 from one websocket: a
batch of ``--rate`` transactions of ``--size`` bytes each second for ``--seconds`` seconds.
It prints the replies a second (the connection's rate when the batch is larger than it
takes) and, per batch, the time from its first write to its last reply over its size:
the spacing of the transactions entering the node's mempool (``burst`` ``spacing``).

    python benchmarks/cometbft_entry.py --rate 400 --seconds 20
    python benchmarks/cometbft_entry.py --rate 3000 --seconds 10    # the connection's rate
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import websockets

from msgstorm.live.chain.cometbft import find_cometbft

_HOST = "127.0.59.{}"


def _set(text: str, key: str, value: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{key} = "):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    raise KeyError(key)


def start(binary: str, homes: Path, count: int) -> list[subprocess.Popen[bytes]]:
    subprocess.run([binary, "testnet", "--v", str(count), "--o", str(homes), "--starting-ip-address",
                    _HOST.format(1), "--node-dir-prefix", "validator-"], check=True, capture_output=True)
    processes = []
    for i in range(count):
        config = homes / f"validator-{i}" / "config" / "config.toml"
        text = config.read_text(encoding="utf-8")
        text = _set(text, "proxy_app", '"kvstore"')
        text = _set(text, "laddr", f'"tcp://{_HOST.format(i + 1)}:26657"')  # the first laddr: rpc
        text = text.replace('laddr = "tcp://0.0.0.0:26656"', f'laddr = "tcp://{_HOST.format(i + 1)}:26656"')
        text = _set(text, "addr_book_strict", "false")
        text = _set(text, "log_level", '"error"')
        config.write_text(text, encoding="utf-8")
        log = (homes / f"validator-{i}.log").open("wb")
        processes.append(subprocess.Popen([binary, "node", "--home", str(homes / f"validator-{i}")],
                                          stdout=log, stderr=subprocess.STDOUT))
    return processes


async def load(url: str, rate: int, seconds: int, size: int) -> None:
    async with websockets.connect(url, max_size=None) as socket:
        replies: list[float] = []
        done = asyncio.Event()
        total = rate * seconds

        async def receive() -> None:
            while len(replies) < total:
                await socket.recv()
                replies.append(time.perf_counter())
            done.set()

        reader = asyncio.create_task(receive())
        t0 = time.perf_counter() + 0.5
        firsts: list[float] = []
        sent = 0
        for second in range(seconds):
            await asyncio.sleep(max(t0 + second - time.perf_counter(), 0.0))
            firsts.append(time.perf_counter())
            for _ in range(rate):
                head = f"load{sent}=".encode()
                tx = head + b"x" * (size - len(head))
                await socket.send(json.dumps({"jsonrpc": "2.0", "id": -1, "method": "broadcast_tx_sync",
                                              "params": {"tx": base64.b64encode(tx).decode()}}))
                sent += 1
        await asyncio.wait_for(done.wait(), timeout=120)
        reader.cancel()
    per_second = [sum(1 for r in replies if t0 + s <= r < t0 + s + 1) for s in range(seconds)]
    print("replies a second:", per_second)
    spans = []
    for second in range(seconds):
        last = replies[min((second + 1) * rate, len(replies)) - 1]
        spans.append((last - firsts[second]) / rate)
    print(f"overall {total / (replies[-1] - firsts[0]):.0f} tx/s; spacing a batch (first write to last reply "
          f"over its size): median {statistics.median(spans) * 1e6:.0f} us, "
          f"min {min(spans) * 1e6:.0f} us, max {max(spans) * 1e6:.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=400)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--validators", type=int, default=4)
    args = parser.parse_args()
    homes = Path(tempfile.mkdtemp(prefix="cometbft-entry-"))
    processes = start(find_cometbft(), homes, args.validators)
    try:
        time.sleep(8)  # the validators connect and commit their first heights
        asyncio.run(load(f"ws://{_HOST.format(1)}:26657/websocket", args.rate, args.seconds, args.size))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        shutil.rmtree(homes, ignore_errors=True)


if __name__ == "__main__":
    main()
