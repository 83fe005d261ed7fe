"""A relay sample (``network.relay.sample``, sim/sampled_pool.py): the derived arrivals by
hand, the sampled run against full relay on the same seed, determinism, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sim_runs import simulate_tables

import msgstorm
from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.sim.sampled_pool import SampledPool
from msgstorm.sim.state import LOST, NULL, PENDING, T_RECEIVED, WHERE
from msgstorm.traffic.generate import MessageBatch

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "examples" / "bitcoin.toml"


def _batch(first: int, t_sent: list[int], nodes: list[int]) -> MessageBatch:
    n = len(t_sent)
    return MessageBatch(np.arange(first, first + n, dtype=np.int64), np.asarray(t_sent, dtype=np.int64),
                        np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int8), np.asarray(nodes, dtype=np.int32),
                        np.zeros(n, dtype=np.int64), np.full(n, 250, dtype=np.int32), np.zeros(n))


def test_each_unsampled_message_reaches_a_producer_as_its_regions_last_sample_did() -> None:
    # Nodes 0, 1 in region 0; 2, 3 in region 1; producers 1 and 3. Every 4th msg_id is sampled,
    # and each region's first message (msg 1: region 1's first).
    pool = SampledPool(4, producers=[1, 3], nodes=4, region_of=[0, 0, 1, 1], regions=2)
    sampled = pool.add(_batch(0, [0, 10, 20, 30, 40, 50], [0, 2, 0, 3, 2, 0]))
    assert sampled.tolist() == [True, True, False, False, True, False]
    # Region 0's representative is msg 0 for msgs 2 and 5; region 1's is msg 1 for msg 3, msg 4 itself.
    assert pool.rep[:6].tolist() == [0, 1, 0, 1, 2, 0]
    # The kernel's log: msg 0 validated at node 1 at 100 and node 3 at 300 (a later duplicate
    # row at node 1 changes nothing); msg 1 at node 3 at 60 only; msg 4 nowhere yet.
    pool.arrive(np.array([1, 3, 3, 1]), np.array([0, 0, 1, 0]), np.array([100, 300, 60, 150]))
    # Offsets: msg 0 -> node 1: 100, node 3: 300; msg 1 -> node 3: 50, node 1: never.
    assert pool.arrivals(1, np.arange(6)).tolist() == [100, NULL, 120, NULL, NULL, 150]
    assert pool.arrivals(3, np.arange(6)).tolist() == [300, 60, 320, 80, NULL, 350]
    # Producer 3's mempool at t = 320: arrived by then, oldest arrival first.
    assert pool.mempool(3, 320).tolist() == [1, 3, 0, 2]
    assert pool.mempool(1, 149).tolist() == [0, 2]
    pool.restart(1, 110)  # a restart empties the mempool: what arrived by 110 is gone
    assert pool.mempool(1, 200).tolist() == [2, 5]
    # A block takes msgs 2 and 3; it commits msg 3 only (2 went into a block that stays open).
    pool.included([2, 3], block=7, t=400)
    rows, _ = pool.commit([3], block=7, t=900)
    assert rows[0].tolist() == [3] and rows[T_RECEIVED].tolist() == [80]  # first producer: node 3, 30 + 50
    assert 3 not in pool.mempool(3, 1000).tolist()
    (rest, _), = pool.settle_rest(t_end=1000)
    # Unsampled and open: msg 2 (in block 7, pending) and msg 5; first arrivals 120 and 150.
    assert rest[0].tolist() == [2, 5]
    assert rest[WHERE].tolist() == [PENDING, PENDING]
    assert rest[T_RECEIVED].tolist() == [120, 150]


def test_a_message_whose_representative_reached_no_producer_is_lost() -> None:
    pool = SampledPool(2, producers=[1], nodes=2, region_of=[0, 0], regions=1)
    pool.add(_batch(0, [0, 5], [0, 0]))  # msg 0 sampled, msg 1 represented by it
    (rest, _), = pool.settle_rest(t_end=100)
    assert rest[0].tolist() == [1]
    assert rest[T_RECEIVED].tolist() == [NULL]
    assert rest[WHERE].tolist() == [LOST]


def _small(*more: str) -> msgstorm.Scenario:
    """The Bitcoin preset at 300 nodes, 1 kB blocks every 10 s (a transaction sent in the
    last second or so before a block often misses it), 5 transactions a second, 10 minutes;
    serial uplinks, on which the transactions the sample leaves out would take 0.3% of an
    uplink (held ones are busy for a whole link delay per transfer: docs/networks.md)."""
    return load_scenario(PRESET, ["network.total_nodes=300", "agents.0.count=300", 'run.duration="10min"',
                                  'run.drain="1min"', 'blocks.interval="10s"', "blocks.header_size=1000",
                                  'agents.0.arrival.rate="60/h"', 'network.uplink="serial"', *more])


def _gaps(tables: dict[str, dict[str, list[Any]]]) -> tuple[np.ndarray, np.ndarray]:
    """For each gap between consecutive blocks: the share of the transactions sent in it
    that the block ending it included; and each block's median arrival (s after its making)."""
    blocks, messages = tables["blocks"], tables["messages"]
    made = np.asarray(blocks["t_produced"])
    sent = np.asarray(messages["t_sent"])
    block_of = np.asarray([-1 if b is None else b for b in messages["block"]])
    caught = []
    for i in range(1, made.size):
        inside = (sent > made[i - 1]) & (sent <= made[i])
        if inside.sum() >= 5:
            caught.append(float((block_of[inside] == blocks["block"][i]).mean()))
    arrivals: dict[int, list[int]] = {}
    for block, t in zip(tables["block_arrivals"]["block"], tables["block_arrivals"]["t"], strict=True):
        arrivals.setdefault(block, []).append(t)
    median = np.asarray([np.median(np.asarray(arrivals[b]) - t) / 1e9 for b, t in zip(blocks["block"], made,
                                                                                       strict=True)])
    return np.asarray(caught), median


def _sampled(tables: dict[str, dict[str, list[Any]]]) -> set[int]:
    """The msg_ids a run relayed receipt by receipt, as its ``relay_sample`` event says."""
    events = tables["events"]
    detail = json.loads(next(d for k, d in zip(events["kind"], events["detail"], strict=True) if k == "relay_sample"))
    count = len(tables["messages"]["msg_id"])
    sampled = set(range(0, count, detail["stride"])) | set(detail["region_firsts"])
    assert detail["derived"] == count - len(sampled)
    assert len(detail["region_firsts"]) <= 6  # the preset's regions
    return sampled


@pytest.mark.slow
def test_a_sampled_run_agrees_with_full_relay_on_the_same_seed(tmp_path) -> None:
    full, _, full_events = simulate_tables(_small(), tmp_path / "full")
    sampled, _, sampled_events = simulate_tables(_small("network.relay.sample=0.1"), tmp_path / "sampled")
    assert sampled_events.steps < full_events.steps / 3  # the sample is what the kernel relays
    # One row per transaction either way; deliveries for the sampled ones only, which the
    # relay_sample event names: every 10th msg_id and each region's first message.
    assert sorted(sampled["messages"]["msg_id"]) == sorted(full["messages"]["msg_id"])
    assert set(sampled["deliveries"]["msg_id"]) == _sampled(sampled)
    assert "relay_sample" not in full["events"]["kind"]
    # The same seed makes the same blocks at the same times by the same miners.
    assert sampled["blocks"]["t_produced"] == full["blocks"]["t_produced"]
    assert sampled["blocks"]["producer"] == full["blocks"]["producer"]
    caught_full, median_full = _gaps(full)
    caught_sampled, median_sampled = _gaps(sampled)
    assert len(caught_full) == len(caught_sampled) > 40
    # A block misses the transactions that had not reached its miner (one in six here).
    assert 0.6 < caught_full.mean() < 0.95
    # Paired over the gaps: the share each block caught differs by less than 3 standard
    # errors of the mean difference (the derived arrivals are draws of the same law).
    difference = caught_sampled - caught_full
    assert abs(difference.mean()) < 3 * difference.std(ddof=1) / np.sqrt(difference.size)
    # Blocks are relayed alike: each block's median arrival within 2% on average (the
    # unsampled transactions' bytes, left out, make the sampled run's blocks 0.6% faster).
    assert median_sampled.mean() == pytest.approx(median_full.mean(), rel=0.02)
    # Inclusion delays (first inclusion after sending) agree in their median within 10%.
    def inclusion_s(tables: dict[str, dict[str, list[Any]]]) -> float:
        delays = [d - s for d, s in zip(tables["messages"]["t_dequeued"], tables["messages"]["t_sent"], strict=True)
                  if d is not None]
        return float(np.median(delays)) / 1e9

    assert inclusion_s(sampled) == pytest.approx(inclusion_s(full), rel=0.1)


@pytest.mark.slow
def test_a_sampled_run_is_deterministic(tmp_path) -> None:
    scenario = _small("network.total_nodes=100", "agents.0.count=100", 'agents.0.arrival.rate="180/h"',
                      'run.duration="1min"', "network.relay.sample=0.05")
    first, end_first, _ = simulate_tables(scenario, tmp_path / "a")
    second, end_second, _ = simulate_tables(scenario, tmp_path / "b")
    assert end_first == end_second
    assert first == second
    # The producers' validations handed back one by one instead of logged by the kernel
    # (the reference path) give the same history.
    handed_back, end_handed_back, _ = simulate_tables(scenario, tmp_path / "c", reference=True)
    assert (handed_back, end_handed_back) == (first, end_first)
    statuses = set(first["messages"]["status"])
    assert "committed" in statuses and len(first["messages"]["msg_id"]) > 200
    assert set(first["deliveries"]["msg_id"]) == _sampled(first)


@pytest.mark.parametrize(("override", "words"), [
    ("network.relay.sample=0", "greater than 0"),
    ("network.relay.sample=1.5", "less than or equal to 1"),
    ("network.relay.sample=-0.1", "greater than 0"),
])
def test_a_sample_outside_zero_to_one_is_refused_with_its_field(override, words) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(PRESET, [override])
    issue = caught.value.issues[0]
    assert issue.field == "network.relay.sample"
    assert words in issue.message


def test_a_sample_needs_producers_and_says_where(tmp_path) -> None:
    path = tmp_path / "one-sequencer.toml"
    path.write_text(PRESET.read_text().replace("[blocks.producers]\n", "[blocks.former_producers]\n")
                    .replace('rule = "pow"', "").replace(
                        'relay = { protocol = "announce", timeout = "60s", control_overhead = "10ms" }',
                        'relay = { protocol = "announce", timeout = "60s", control_overhead = "10ms", sample = 0.01 }'))
    text = path.read_text()
    text = text[:text.index("[blocks.former_producers]")] + text[text.index("[history]"):]
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issue = caught.value.issues[0]
    assert issue.file == str(path)
    assert issue.field == "network.relay.sample"
    assert issue.line == next(i for i, line in enumerate(text.splitlines(), 1) if "sample = 0.01" in line)
    assert "[blocks.producers]" in issue.message


def test_without_a_sample_the_scenario_hashes_as_before() -> None:
    scenario = load_scenario(PRESET)
    assert "sample" not in scenario.model_dump(mode="json")["network"]["relay"]
    assert load_scenario(PRESET, ["network.relay.sample=0.5"]).network.relay.sample_stride == 2


@pytest.mark.slow
def test_compact_blocks_list_the_sampled_messages_and_count_the_rest_as_held(tmp_path) -> None:
    scenario = load_scenario(PRESET, ["network.total_nodes=200", "agents.0.count=200", 'run.duration="5min"',
                                      'run.drain="1min"', 'blocks.interval="60s"', "blocks.header_size=1000",
                                      'agents.0.arrival.rate="60/h"', 'network.relay.kinds={block="compact"}',
                                      "network.relay.sample=0.25", "network.relay.rebuild_failure=0"])
    # No failed rebuilds: the last block is mined 2 s before the end, and a failed rebuild's
    # extra round trip would leave a few nodes without it (the count of arrivals below).
    tables, _, _ = simulate_tables(scenario, tmp_path / "run")
    blocks = tables["blocks"]
    assert all(blocks["canonical"]) and len(blocks["block"]) >= 3  # no fork: a message's block is its only one
    assert len(tables["block_arrivals"]["block"]) == 200 * len(blocks["block"])
    events = tables["events"]
    relay = json.loads(next(d for k, d in zip(events["kind"], events["detail"], strict=True) if k == "relay"))
    sampled = _sampled(tables)
    listed = sum(1 for m, b in zip(tables["messages"]["msg_id"], tables["messages"]["block"], strict=True)
                 if b is not None and m in sampled)
    # Each of the 199 other nodes rebuilds each block once: it holds or asks for each listed
    # (sampled) message, and for none of the others, which are held everywhere.
    assert relay["compact"]["held"] + relay["compact"]["missing"] == listed * 199
    assert sum(blocks["messages"]) > 2 * listed
