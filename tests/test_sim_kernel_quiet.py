"""Quiet announcements against the heap: the same histories, fewer kernel events.

An announcement sent to a peer that already holds the payload only counts itself and
releases its item's slot when it arrives; the gossip kernel keeps such announcements out of
its heap (``kernel.Q_T``) and settles them once it has passed their time.
``quiet_announcements = False`` puts every one through the heap, the reference: from the
same seed both must write the same history, row for row (the ``relay`` event's count of
announcements received included), with nodes crashing while announcements travel to them, a
region cut off, push to sqrt(n) peers, and drawn small networks relaying by announcement.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from conftest import EXAMPLES
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sim_runs import Tables, simulate_tables

from msgstorm.history.events import EventKind
from msgstorm.scenario import Scenario, parse_scenario

# Nodes crash while blocks and transactions travel (announcements to them are not
# received), one restarting; a region is cut off for a while.
FAULTS = """
[[faults]]
kind = "crash"
node = "europe-3"
at = "2min"
restart_after = "90s"

[[faults]]
kind = "crash"
node = "north-america-5"
at = "4min"

[[faults]]
kind = "partition"
at = "6min"
duration = "2min"
groups = [["asia-pacific"]]
"""


def _scenario(name: str, overrides: list[str], extra: str = "") -> Scenario:
    text = (EXAMPLES / f"{name}.toml").read_text() + extra
    return parse_scenario(text, source=f"{name}.toml", base_dir=EXAMPLES, overrides=overrides)


def _same_both_ways(scenario: Scenario) -> tuple[Tables, int, int]:
    """Run with and without quiet announcements; assert equal histories; return the
    reference's tables, how many kernel events the quiet ones saved, and how many quiet
    announcements went back into the heap because their node forgot its request."""
    with tempfile.TemporaryDirectory() as tmp:
        reference, t_reference, heap = simulate_tables(scenario, Path(tmp) / "heap", quiet_announcements=False)
        quiet, t_quiet, kernel = simulate_tables(scenario, Path(tmp) / "quiet")
    assert t_quiet == t_reference
    for table in reference:
        assert quiet[table] == reference[table], table
    assert kernel.steps <= heap.steps
    assert heap.woken == 0
    return reference, heap.steps - kernel.steps, kernel.woken


def _announcements(tables: Tables) -> int:
    events = tables["events"]
    relay = [detail for kind, detail in zip(events["kind"], events["detail"], strict=True) if kind == EventKind.RELAY]
    assert len(relay) == 1
    return int(json.loads(relay[0])["announcements"])


def test_bitcoin_with_crashes_and_a_partition_writes_the_same_history() -> None:
    tables, saved, _ = _same_both_ways(_scenario("bitcoin", [
        "network.total_nodes=200", "agents.0.count=200", 'agents.0.arrival.rate="9/h"',
        'blocks.interval="1min"', 'run.duration="10min"'], FAULTS))
    kinds = tables["events"]["kind"]
    assert EventKind.NODE_DOWN in kinds and EventKind.FAULT_START in kinds
    assert _announcements(tables) > 10_000
    assert saved > 1_000
    assert len(tables["blocks"]["block"]) >= 5


@pytest.mark.slow
def test_ethereum_push_sqrt_writes_the_same_history() -> None:
    _, saved, _ = _same_both_ways(_scenario("ethereum", [
        "network.total_nodes=300", "agents.0.count=300", 'run.duration="40s"', 'run.drain="10s"']))
    assert saved > 1_000


@st.composite
def announce_networks(draw: st.DrawFn) -> dict[str, Any]:
    """A few nodes relaying messages (and the sequencer's blocks) by announcement, with
    bandwidth limits so that payloads take a while, and a crash with or without restart."""
    regions = draw(st.sampled_from([["us-east", "eu-west"], ["us-east", "us-west", "ap-northeast"]]))
    per_region = draw(st.integers(min_value=2, max_value=5))
    crash: dict[str, Any] = {"kind": "crash", "node": f"{regions[-1]}-1",
                             "at": draw(st.sampled_from(["500ms", "1s", "1500ms"]))}
    if draw(st.booleans()):
        crash["restart_after"] = draw(st.sampled_from(["200ms", "700ms"]))
    return {
        "run": {"name": "quiet", "seed": draw(st.integers(min_value=0, max_value=2**31)), "duration": "2s",
                "drain": "1s"},
        "network": {"regions": regions, "nodes_per_region": per_region, "processing": "100us",
                    "bandwidth": draw(st.sampled_from(["2Mbit/s", "20Mbit/s"])),
                    "relay": {"protocol": draw(st.sampled_from(["announce", "push_sqrt"])),
                              "timeout": draw(st.sampled_from(["50ms", "1s"]))}},
        "gossip": {"mode": "flood", "degree": 4, "peers": draw(st.integers(min_value=2, max_value=4))},
        "blocks": {"interval": "250ms"},
        "history": {"delivery_sample": 1.0},
        "agents": [{"name": "traders", "count": 10, "size": draw(st.sampled_from([200, 5000])),
                    "arrival": {"process": "poisson", "rate": f"{draw(st.integers(20, 200))}/s"}}],
        "faults": [crash],
    }


def _quiet_network(protocol: str, size: int) -> dict[str, Any]:
    """Five nodes a region on slow links, relaying by ``protocol``: many announcements go
    quiet (an item asked for already), whatever the drawn cases hold."""
    regions = ["us-east", "us-west", "ap-northeast"]
    return {"run": {"name": "quiet", "seed": 7, "duration": "2s", "drain": "1s"},
            "network": {"regions": regions, "nodes_per_region": 5, "processing": "100us", "bandwidth": "2Mbit/s",
                        "relay": {"protocol": protocol, "timeout": "1s"}},
            "gossip": {"mode": "flood", "degree": 4, "peers": 3}, "blocks": {"interval": "250ms"},
            "history": {"delivery_sample": 1.0},
            "agents": [{"name": "traders", "count": 10, "size": size,
                        "arrival": {"process": "poisson", "rate": "200/s"}}],
            "faults": [{"kind": "crash", "node": "ap-northeast-1", "at": "1s", "restart_after": "700ms"}]}


@pytest.mark.slow
def test_drawn_announce_networks_write_the_same_history() -> None:
    saved = []

    @settings(max_examples=8, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(announce_networks())
    @example(_quiet_network("announce", 5000))
    @example(_quiet_network("push_sqrt", 200))
    def check(spec: dict[str, Any]) -> None:
        _, events_saved, woken = _same_both_ways(parse_scenario(tomli_w.dumps(spec), source="quiet.toml"))
        saved.append(events_saved)
        wakes.append(woken)

    wakes: list[int] = []
    check()
    # The cases include quiet announcements: the two given ones, run first, whatever the
    # drawn ones hold (which cases hypothesis draws is its own: a two-node region has few).
    assert saved[0] > 0 and saved[1] > 0 and len(saved) >= 8, saved


def test_a_forgotten_request_puts_its_quiet_announcements_back() -> None:
    """A node forgets its request when it times out with no other peer of its list up and
    holding the item: here a peer that announced the item crashes (at 1 s) before the
    asking node's 50 ms timeout, while its announcement, quiet since the node had asked
    already, is still on its way. It goes back into the heap with its key."""
    spec: dict[str, Any] = {
        "run": {"name": "forgotten", "seed": 4, "duration": "2s", "drain": "1s"},
        "network": {"regions": ["us-east", "us-west", "ap-northeast"], "nodes_per_region": 4,
                    "processing": "100us", "bandwidth": "20Mbit/s",
                    "relay": {"protocol": "announce", "timeout": "50ms"}},
        "gossip": {"mode": "flood", "degree": 4, "peers": 2},
        "blocks": {"interval": "250ms"},
        "history": {"delivery_sample": 1.0},
        "agents": [{"name": "traders", "count": 10, "size": 5000,
                    "arrival": {"process": "poisson", "rate": "106/s"}}],
        "faults": [{"kind": "crash", "node": "ap-northeast-1", "at": "1s"}],
    }
    tables, saved, woken = _same_both_ways(parse_scenario(tomli_w.dumps(spec), source="forgotten.toml"))
    assert saved > 0 and woken > 0
    assert EventKind.NODE_DOWN in tables["events"]["kind"]
