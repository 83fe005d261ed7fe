"""The fault proxy's process as the nemesis drives it: started, sent commands, closed.

Place in the pipeline: under the live nemesis (``live/nemesis.py``), which starts one for the
clients' links and one for a cluster's routes; the proxy itself is ``live/proxy.py``, run as
``python -m msgstorm.live.proxy`` in a process of its own so that its forwarding does not
take the generator's thread. It dies with msgstorm (``PR_SET_PDEATHSIG``), as servers do.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
from pathlib import Path
from typing import Any

from msgstorm.processes import die_with_parent

__all__ = ["ProxyProcess"]


class ProxyProcess:
    """The fault proxy in a process of its own (``python -m msgstorm.live.proxy``), so its
    forwarding does not take the generator's thread; commands and answers are JSON lines
    on its stdin and stdout."""

    def __init__(self, upstreams: dict[str, tuple[str, int]], directory: Path, listen: dict[str, int] | None = None,
                 name: str = "msgstorm-proxy") -> None:
        self.upstreams = upstreams
        self.listen = listen or {}  # a link's port, when it must be that one (routes planned ahead)
        self.directory = directory
        self.name = name
        self.process: asyncio.subprocess.Process | None = None
        self.ports: dict[str, int] = {}
        self._lock = asyncio.Lock()  # the commands written in order
        self._reading = asyncio.Lock()  # the answers read in order, each to its command
        self._waiting: collections.deque[asyncio.Future[dict[str, Any]]] = collections.deque()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, timeout_s: float) -> dict[str, int]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"{self.name}.log", "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "msgstorm.live.proxy",
                *(f"{name}={host}:{port}" + (f"@{self.listen[name]}" if name in self.listen else "")
                  for name, (host, port) in self.upstreams.items()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                preexec_fn=die_with_parent, process_group=0)
        answer = await asyncio.wait_for(self._read(), timeout_s)
        self.ports = {name: int(port) for name, port in answer["ready"].items()}
        return self.ports

    async def _read(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            log = self.directory / (self.name + ".log")
            said = _last_line(log)
            raise RuntimeError(f"the fault proxy exited (code {await self.process.wait()})"
                               + (f": {said}" if said else "") + f"; see {log}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def command(self, **command: Any) -> dict[str, Any]:
        """Send one command and read its answer. Shielded: a caller cancelled meanwhile (the
        sending ended) leaves the exchange to finish, so the next command never reads this
        one's answer."""
        return await asyncio.shield(self._exchange(command))

    async def _exchange(self, command: dict[str, Any]) -> dict[str, Any]:
        """Write ``command`` without waiting for the answers to those before it (pipelined:
        a command sent ahead of its time waits in the proxy, and the next one, due at the
        same moment, must be there too); the proxy answers in order, so answers go to the
        waiting commands first in, first out."""
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        async with self._lock:
            assert self.process is not None and self.process.stdin is not None
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            self._waiting.append(answer)
            await self.process.stdin.drain()
        async with self._reading:
            while not answer.done():
                try:
                    read = await asyncio.wait_for(self._read(), 10)
                except BaseException as error:
                    while self._waiting:  # no answer will come in order any more
                        waiting = self._waiting.popleft()
                        if not waiting.done():
                            waiting.set_exception(error if isinstance(error, Exception) else RuntimeError(str(error)))
                    raise
                self._waiting.popleft().set_result(read)
        return answer.result()

    async def close(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        try:
            await self.command(op="quit")
            await asyncio.wait_for(process.wait(), 5)
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - closing on every way out
            self.kill()
            raise
        finally:
            if process.returncode is None:
                self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass


def _last_line(log: Path) -> str:
    """The last line a process wrote to its log (why it exited), or "" when there is none."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""
