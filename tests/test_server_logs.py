"""Lines of a nats-server log that say a client was cut off as a slow consumer, read back
with the client's name and the time on the wall clock: as nats-server writes them (its
client names quoted as "version:lang:name"), one per connection, this run's only."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from msgstorm.live.server_logs import nats_slow_consumers

LOG = r"""[7] 2026/11/23 20:23:16.978948 [INF] Starting nats-server
[7] 2026/11/23 20:23:59.876924 [INF] 127.0.0.1:57796 - cid:6 - "v1:python-msgstorm-wire:msgstorm-consumer-1" - Slow Consumer Detected: MaxPending of 67108864 Exceeded
[7] 2026/11/23 20:24:00.000001 [INF] 127.0.0.1:57797 - cid:7 - "v2.6.0:python3" - Slow Consumer Detected: WriteDeadline of 10s exceeded with 3 chunks of 196608 total bytes.
[7] 2026/11/23 20:24:00.100000 [INF] 127.0.0.1:57798 - cid:8 - "v1:go:na:me" - Slow Consumer Detected: MaxPending of 67108864 Exceeded
[7] 2026/11/23 20:24:00.200000 [INF] 127.0.0.1:57799 - cid:9 - "v1:go:say \"hi\"" - Slow Consumer Detected: MaxPending of 67108864 Exceeded
[7] 2026/11/23 20:24:09.876924 [INF] 127.0.0.1:57796 - cid:6 - "v1:python-msgstorm-wire:msgstorm-consumer-1" - Slow Consumer Detected: WriteDeadline of 10s exceeded with 1 chunks of 65536 total bytes.
[7] 2026/11/23 20:24:01.5 [WRN] a line that mentions a Slow Consumer but is not one
not a log line at all
"""


def test_slow_consumer_lines_name_the_client_and_the_time(tmp_path: Path) -> None:
    log = tmp_path / "nats-server.log"
    log.write_text(LOG, encoding="utf-8")
    found = nats_slow_consumers(log)
    assert [(s.client, s.text) for s in found] == [
        ("msgstorm-consumer-1", "Slow Consumer Detected: MaxPending of 67108864 Exceeded"),
        (None, "Slow Consumer Detected: WriteDeadline of 10s exceeded with 3 chunks of 196608 total bytes."),
        ("na:me", "Slow Consumer Detected: MaxPending of 67108864 Exceeded"),
        ('say "hi"', "Slow Consumer Detected: MaxPending of 67108864 Exceeded"),
    ]  # cid 6's later write-deadline line is the same cut-off: once
    expected = datetime(2026, 11, 23, 20, 23, 59, 876924).timestamp()
    assert abs(found[0].at_wall_ns - expected * 1e9) < 1_000


def test_lines_of_an_earlier_run_into_the_same_directory_are_not_this_runs(tmp_path: Path) -> None:
    log = tmp_path / "nats-server.log"
    log.write_text(LOG, encoding="utf-8")
    since = int(datetime(2026, 11, 23, 20, 24, 0, 50000).timestamp() * 1e9)
    assert [s.client for s in nats_slow_consumers(log, since)] == ["na:me", 'say "hi"', "msgstorm-consumer-1"]


def test_no_log_is_nothing_said(tmp_path: Path) -> None:
    assert nats_slow_consumers(tmp_path / "missing.log") == []
