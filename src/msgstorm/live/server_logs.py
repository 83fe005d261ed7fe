"""What a server msgstorm started said about its clients, read from its log after the run.

Place in the pipeline: under the NATS and JetStream drivers, at their ``close``. A client
sees a server drop it only as a closed connection; the server's log says why. nats-server
cuts off a client that falls more than its ``max_pending`` (64 MB by default) or its write
deadline behind, a *slow consumer*, and drops what was queued for it: the history's lost
messages then have their cause. ``nats_slow_consumers`` finds those lines; the driver
reports each as a ``client_error`` event at the time the server logged it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ServerSaid", "nats_slow_consumers", "report_slow_consumers"]

# [pid] 2026/11/23 20:23:59.876924 [INF] 127.0.0.1:57796 - cid:6 - "v1:python-...:name" - Slow Consumer Detected: ...
_SLOW = re.compile(r'^\[\d+\] (\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) \[\w+\] .*? - cid:\d+ - '
                   r'(?:"(?:[^"]*:)?([^":]*)" - )?(Slow Consumer Detected[^\r\n]*)')
# Only the tail a run can have written is read: a log that grew huge is not read whole.
_MAX_BYTES = 8 << 20


@dataclass(frozen=True)
class ServerSaid:
    at_wall_ns: int  # when the server logged it (time.time_ns scale: its log is in local time)
    client: str | None  # the client's connection name, when it gave one
    text: str


def nats_slow_consumers(log: Path) -> list[ServerSaid]:
    """The slow-consumer lines of a nats-server log, oldest first ([] without a log)."""
    try:
        with open(log, "rb") as file:
            size = file.seek(0, 2)
            file.seek(max(0, size - _MAX_BYTES))
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        if "Slow Consumer" not in line:
            continue
        match = _SLOW.match(line)
        if match is None:
            continue
        stamp, client, said = match.groups()
        # The server runs on this host with this process's environment: its local time is ours.
        at = datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
        found.append(ServerSaid(int(at * 1e9), client or None, said.strip()))
    return found


class _Logged(Protocol):
    name: str
    directory: Path


def report_slow_consumers(servers: Sequence[_Logged], on_event: Callable[[str, dict[str, Any]], None]) -> None:
    """A ``client_error`` event for each slow consumer the nats-servers msgstorm started
    (their log ``<directory>/<name>.log``) cut off, at the time each logged it."""
    for server in servers:
        for said in nats_slow_consumers(server.directory / f"{server.name}.log"):
            on_event("client_error", {"client": said.client, "error": f"{server.name}: {said.text}",
                                      "at_wall_ns": said.at_wall_ns})
