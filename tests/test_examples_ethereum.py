"""The Ethereum preset (examples/ethereum.toml) carries its sources' numbers and runs as
docs/networks.md says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import msgstorm

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "examples" / "ethereum.toml"
DOCS = ROOT / "docs" / "networks.md"

# ethernodes.org's crawl of 9 March 2021 (as Finbold reports it): 6,806 nodes, of them the
# United States 2,559, Germany 1,467, France 380, Singapore 329, Ireland 123.
CRAWL = {"north-america": 2559, "europe": 1467 + 380 + 123, "asia-pacific": 329}


def test_the_preset_carries_the_crawls_geography_and_slots() -> None:
    scenario = msgstorm.load_scenario(PRESET)
    network = scenario.network
    assert network.total_nodes == 6806
    known = sum(CRAWL.values())
    for region, nodes in CRAWL.items():
        assert network.shares[region] == pytest.approx(nodes / known, abs=5e-5), region
    producers = scenario.blocks.producers
    assert producers is not None and producers.rule == "pos"
    assert scenario.blocks.interval == 12_000_000_000
    relay = network.relay
    assert relay.protocol == "push_sqrt" and relay.kinds == {}  # blocks and transactions alike


def test_a_small_preset_gives_every_node_each_block(tmp_path) -> None:
    scenario = msgstorm.load_scenario(PRESET, ["network.total_nodes=400", "agents.0.count=400",
                                               'run.duration="36s"', 'run.drain="10s"'])
    result = msgstorm.run(scenario, tmp_path / "run")
    blocks = result.history.table("blocks").to_pydict()
    arrivals = result.history.table("block_arrivals").to_pydict()
    assert len(blocks["block"]) == 3  # slots at 12, 24 and 36 s
    assert all(arrivals["block"].count(block) == 400 for block in blocks["block"])
    # A 100 kB block crosses at least one 40 Mbit/s download and a 6 ms link: over 20 ms.
    made = dict(zip(blocks["block"], blocks["t_produced"], strict=True))
    assert min(t - made[b] for b, t in zip(arrivals["block"], arrivals["t"], strict=True) if t > made[b]) > 20e6


@pytest.mark.slow
def test_the_preset_gives_the_numbers_docs_networks_md_shows(tmp_path) -> None:
    summary = msgstorm.run(msgstorm.load_scenario(PRESET), tmp_path / "run").summary
    text = DOCS.read_text()
    arrival = summary["forks"]["arrival_ms"]
    shown = re.search(r"^\| block arrival after its making, p50 / p90 / p99 \| ([\d.]+) s / ([\d.]+) s / ([\d.]+) s \|",
                      text, re.M)
    assert shown is not None
    for value, key in zip(shown.groups(), ("p50", "p90", "p99"), strict=True):
        assert float(value) == pytest.approx(arrival[key] / 1e3, abs=0.005), key
    blocks = summary["forks"]["blocks"]
    shown = re.search(r"^\| blocks made / stale \| (\d+) / (\d+) \|", text, re.M)
    assert shown is not None and (int(shown.group(1)), int(shown.group(2))) == (blocks["made"], blocks["stale"])
