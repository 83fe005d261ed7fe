"""The Bitcoin preset (examples/bitcoin.toml) runs as docs/networks.md says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import msgstorm

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "examples" / "bitcoin.toml"


def _arrivals(history) -> dict[int, np.ndarray]:  # type: ignore[no-untyped-def]
    messages = history.messages.to_pydict()
    sent = dict(zip(messages["msg_id"], messages["t_sent"], strict=True))
    deliveries = history.deliveries.to_pydict()
    by_block: dict[int, list[int]] = {}
    for msg, t in zip(deliveries["msg_id"], deliveries["t_delivered"], strict=True):
        by_block.setdefault(msg, []).append(t - sent[msg])
    return {msg: np.asarray(times) / 1e9 for msg, times in by_block.items()}


def test_the_preset_carries_simblocks_population() -> None:
    network = msgstorm.load_scenario(PRESET).network
    assert network.region_counts() == [2322, 3095, 68, 344, 71, 100]
    assert "2,322 / 3,095 / 68 / 344 / 71 / 100" in (ROOT / "docs" / "networks.md").read_text()


def test_a_small_preset_gives_every_node_each_block_once(tmp_path) -> None:
    scenario = msgstorm.load_scenario(PRESET, [
        "network.total_nodes=300", 'run.duration="3min"',
        'agents=[{name="miner", count=300, arrival={process="poisson", rate="0.4/h"}, size=535000, '
        'mix={order=1.0}}]'])
    result = msgstorm.run(scenario, tmp_path / "run")
    arrivals = _arrivals(result.history)
    assert len(arrivals) >= 1
    assert all(len(times) == 300 for times in arrivals.values())
    # A hop costs at least an announcement, a request and a 535 kB transfer at <= 25 Mbit/s.
    assert min(float(np.sort(t)[1]) for t in arrivals.values()) > 0.17


# SimBlock's block propagation for the same configuration, in seconds: dsg-titech/simblock at
# commit 5fc7f9f, its 2015 settings selected (LATENCY_2015, UPLOAD_/DOWNLOAD_BANDWIDTH_2015,
# REGION_DISTRIBUTION_BITCOIN_2015, DEGREE_DISTRIBUTION_BITCOIN_2015), NUM_OF_NODES = 6000,
# BLOCK_SIZE = 535000, compact blocks off (CBR_USAGE_RATE = 0), END_BLOCK_HEIGHT = 30: the
# arrival time at every node of blocks 1-30 (its printPropagation output). docs/networks.md
# shows the same numbers and how they were obtained.
SIMBLOCK = {"median block arrival": 10.01, "90th percentile": 15.79,
            "time to reach every node (mean over blocks)": 27.41}


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The whole preset: its block arrival statistics and its propagation by region."""
    result = msgstorm.run(msgstorm.load_scenario(PRESET), tmp_path_factory.mktemp("bitcoin") / "run")
    arrivals = _arrivals(result.history)
    assert all(len(times) == 6000 for times in arrivals.values())
    every = np.concatenate(list(arrivals.values()))
    measured = {"median block arrival": float(np.median(every)), "90th percentile": float(np.percentile(every, 90)),
                "time to reach every node (mean over blocks)": float(np.mean([t.max() for t in arrivals.values()]))}
    return measured, result.summary["propagation_ms"]


@pytest.mark.slow
def test_the_preset_matches_simblock_within_ten_percent(preset_run) -> None:  # type: ignore[no-untyped-def]
    measured, _ = preset_run
    for label, simblock in SIMBLOCK.items():
        assert measured[label] == pytest.approx(simblock, rel=0.10), (label, measured[label], simblock)
    text = (ROOT / "docs" / "networks.md").read_text()
    for label, simblock in SIMBLOCK.items():
        assert re.search(rf"^\| {re.escape(label)} \| [\d.]+ s \| {simblock:.2f} s \|$", text, re.M), label


@pytest.mark.slow
def test_the_preset_gives_the_numbers_docs_networks_md_shows(preset_run) -> None:  # type: ignore[no-untyped-def]
    measured, propagation = preset_run
    text = (ROOT / "docs" / "networks.md").read_text()
    for label, value in measured.items():
        shown = re.search(rf"^\| {re.escape(label)} \| ([\d.]+) s \| [\d.]+ s \|$", text, re.M)
        assert shown is not None, label
        assert float(shown.group(1)) == pytest.approx(value, abs=0.005), (label, value)
    for region, row in propagation.items():
        shown = re.search(rf"^\| {region} \| ([\d.]+) s \| ([\d.]+) s \|", text, re.M)
        assert shown is not None, region
        assert float(shown.group(1)) == pytest.approx(row["p50"] / 1e3, abs=0.005)
        assert float(shown.group(2)) == pytest.approx(row["p90"] / 1e3, abs=0.005)
