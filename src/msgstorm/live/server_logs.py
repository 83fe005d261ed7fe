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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ServerSaid", "nats_slow_consumers", "report_slow_consumers"]

# [pid] 2026/11/23 20:23:59.876924 [INF] 127.0.0.1:57796 - cid:6 - "v1:python-msgstorm-wire:msgstorm-consumer-1" - Slow Consumer Detected: ...
# The quoted part is "version:lang" and, when the client gave one, ":name" (which may hold
# colons, and quotes escaped with a backslash).
_SLOW = re.compile(r'^\[\d+\] (\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) \[\w+\] .*? - cid:(\d+) - '
                   r'(?:"[^:"]*:[^:"]*(?::((?:[^"\\]|\\.)*))?" - )?(Slow Consumer Detected[^\r\n]*)')
# Only the tail a run can have written is read: a log that grew huge is not read whole.
_MAX_BYTES = 8 << 20


@dataclass(frozen=True)
class ServerSaid:
    at_wall_ns: int  # when the server logged it (time.time_ns scale: its log is in local time)
    client: str | None  # the client's connection name, when it gave one
    text: str


def _wall_ns(stamp: str, since_ns: int) -> int:
    """A log time (the server's local time, this process's too: same host and environment)
    as time.time_ns. In the hour a clock goes back, a local time names two instants: the
    one at or after ``since_ns`` and nearest now is the one a line of this run means."""
    local = datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f")
    now = time.time_ns()
    readings = [round(local.replace(fold=fold).timestamp() * 1e6) * 1000 for fold in (0, 1)]
    return min(readings, key=lambda t: (t < since_ns, abs(now - t)))


def nats_slow_consumers(log: Path, since_ns: int = 0) -> list[ServerSaid]:
    """The slow-consumer lines of a nats-server log logged at or after ``since_ns``
    (time.time_ns; the log is appended to by every run into the same directory), oldest
    first, one per connection (a client cut off for falling behind can be logged again
    when its write deadline passes); [] without a log."""
    try:
        with open(log, "rb") as file:
            size = file.seek(0, 2)
            file.seek(max(0, size - _MAX_BYTES))
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return []
    found = []
    seen: set[str] = set()
    for line in text.splitlines():
        if "Slow Consumer" not in line:
            continue
        match = _SLOW.match(line)
        if match is None:
            continue
        stamp, cid, client, said = match.groups()
        at = _wall_ns(stamp, since_ns)
        if at < since_ns or cid in seen:
            continue
        seen.add(cid)
        name = client.replace('\\"', '"') if client else None
        found.append(ServerSaid(at, name, said.strip()))
    return found


class _Logged(Protocol):
    name: str
    directory: Path
    started_wall_ns: int


def report_slow_consumers(servers: Sequence[_Logged], on_event: Callable[[str, dict[str, Any]], None]) -> None:
    """A ``client_error`` event for each slow consumer the nats-servers msgstorm started
    (their log ``<directory>/<name>.log``) cut off since each was started, at the time each
    logged it."""
    for server in servers:
        for said in nats_slow_consumers(server.directory / f"{server.name}.log", server.started_wall_ns):
            on_event("client_error", {"client": said.client, "error": f"{server.name}: {said.text}",
                                      "at_wall_ns": said.at_wall_ns})
