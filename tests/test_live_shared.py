"""The servers tests share (``shared_server`` in tests/conftest.py): two runs at once on one
server, each on its own subject or stream (``own_name``), see only their own messages.

No mocks: the session's real nats-server and redis-server; both runs are ``msgstorm run``
processes of their own, sending at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from conftest import run_in_process

# Two runs of different sizes: 1,000 and 1,500 messages in 2 s. A message of one run read by
# the other would be a duplicate there (the same msg_id twice) or one more received than sent.
RUNS = {"a": 500, "b": 750}

SCENARIO = """
target = "{target}"

[run]
name = "shared-{which}"
duration = "2s"
drain = "20s"

[live]
url = "{url}"
subject = "{subject}"
consumers = 2
{extra}

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "64B"
"""


def _both_at_once(tmp_path: Path, target: str, url: str, name: str, extra: Callable[[str], str]) -> dict[str, dict]:
    processes = {}
    for which, rate in RUNS.items():
        scenario = tmp_path / f"{which}.toml"
        scenario.write_text(SCENARIO.format(target=target, which=which, url=url, subject=f"{name}-{which}",
                                            extra=extra(f"{name}-{which}"), rate=rate))
        processes[which] = run_in_process(scenario, tmp_path / which)
    summaries = {}
    for which, process in processes.items():
        _, err = process.communicate(timeout=180)
        assert process.returncode in (0, 1), err.decode()[-2000:]  # 1: an SLO of the run's own, none here
        summaries[which] = json.loads((tmp_path / which / "summary.json").read_text())
    return summaries


def _only_its_own(summaries: dict[str, dict]) -> None:
    for which, rate in RUNS.items():
        messages, delivery = summaries[which]["messages"], summaries[which]["delivery"]
        sent = messages["sent"]
        assert sent + messages["unsent"] == 2 * rate and sent > rate  # a generator behind leaves a few unsent
        # Core NATS gives every consumer every message (fan-out); a Redis group, each to one.
        assert delivery["expected"] == sent * (delivery["consumers"] if delivery["fanout"] else 1), (which, delivery)
        assert delivery["received"] == delivery["expected"] and delivery["duplicated"] == 0, (which, delivery)
        assert delivery["lost"]["total"] == 0, (which, delivery)


@pytest.mark.slow
def test_two_runs_on_the_shared_nats_server_see_only_their_own_subjects(
        tmp_path: Path, shared_server: Callable[[str], str], own_name: str) -> None:
    _only_its_own(_both_at_once(tmp_path, "nats", shared_server("nats"), own_name, lambda _: ""))


@pytest.mark.slow
def test_two_runs_on_the_shared_redis_server_see_only_their_own_streams(
        tmp_path: Path, shared_server: Callable[[str], str], own_name: str) -> None:
    url = shared_server("redis")
    summaries = _both_at_once(tmp_path, "redis", url, own_name, lambda stream: f'\n[live.redis]\nstream = "{stream}"')
    _only_its_own(summaries)
    client = redis.Redis.from_url(url)
    try:  # each stream holds its own run's messages and no other's
        for which in RUNS:
            assert client.xlen(f"{own_name}-{which}") == summaries[which]["messages"]["sent"]
    finally:
        client.close()


def test_each_test_has_its_own_name(own_name: str, request: pytest.FixtureRequest) -> None:
    assert own_name.startswith("test-each-test-has-its-own-name-") and len(own_name.rsplit("-", 1)[1]) == 10
    assert own_name.replace("-", "").isalnum()
