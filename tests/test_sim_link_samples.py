"""Empirical link delays: samples from a file, drawn with the run's seed.

A link model ``dist = "empirical"`` takes each transmission's delay from a column of
measured delays, picked by one uniform of the link stream (index floor(u × count)); these
tests derive every delay from the same seeded uniforms, check the draws' frequencies, and
that a bad file is refused at validation with the field's place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from msgstorm.scenario.distributions import Constant
from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.schema import LinkModel
from msgstorm.sim import kernel as k
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.link_model import Degradations
from msgstorm.sim.links import LinkState
from msgstorm.sim.topology import Topology, build_topology

SAMPLES_MS = [1.5, 2.0, 7.25, 40.0]
V_NS = 100_000


def _csv(tmp_path: Path, rows: list[object], column: str = "one_way_ms") -> Path:
    path = tmp_path / "delays.csv"
    path.write_text(f"{column}\n" + "".join(f"{row}\n" for row in rows))
    return path


def test_each_transmission_takes_the_sample_its_uniform_picks(tmp_path: Path) -> None:
    model = LinkModel(dist="empirical", samples=str(_csv(tmp_path, SAMPLES_MS)), column="one_way_ms")
    forward = [[1], [0]]
    topology = Topology(names=["a", "b"], regions=["r"], region_of=[0, 0], base_ns=[[10**9]],
                        region_model=[[model]], node_overrides={}, forward=forward, connections=forward)
    state = GossipState(topology, Constant(value=V_NS), 0.0, np.random.default_rng(11), np.random.default_rng(2),
                        Degradations(2), delivery_stride=1, delivery_budget=10**6)
    sends = 200
    for m in range(sends):
        state.inject(m * 100_000_000, 0, m, k.ITEM_MSG, 100)
    while state.run(10**12) is not None:
        pass
    msg, node, t, _ = state.drain_deliveries()
    at_b = {int(m_): int(t_) for m_, n_, t_ in zip(msg, node, t, strict=True) if n_ == 1}
    # One uniform per message (b forwards to nobody but its sender), in send order.
    uniform = np.random.default_rng(11).random(sends)
    samples_ns = [int(ms * 1_000_000) for ms in SAMPLES_MS]
    expected = {m: m * 100_000_000 + V_NS + samples_ns[int(uniform[m] * len(samples_ns))] + V_NS
                for m in range(sends)}
    assert at_b == expected
    # The base latency (1 s) is not used.
    assert max(at_b[m] - m * 100_000_000 for m in at_b) < 50_000_000


SCENARIO = """
[run]
name = "empirical"
seed = 9
duration = "1s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 2

[[network.links]]
between = ["us-east", "eu-west"]
latency = "80ms"
dist = {{ dist = "empirical", samples = "{path}", column = "{column}", unit = "{unit}" }}

[[agents]]
name = "one"
arrival = {{ process = "constant", rate = "10/s" }}
"""


def test_a_region_pair_draws_its_samples_equally_often(scenario_from, tmp_path: Path) -> None:
    path = tmp_path / "delays.parquet"
    pq.write_table(pa.table({"rtt_half_us": [500, 1_000, 30_000]}), path)
    scenario = scenario_from(SCENARIO.format(path=path, column="rtt_half_us", unit="us"))
    topology = build_topology(scenario.network, scenario.gossip, np.random.default_rng(0))
    links = LinkState(topology, np.random.default_rng(3))
    east, west = topology.region_of.index(0), topology.region_of.index(1)
    draws = [links.delay(east, west) for _ in range(6_000)]
    counts = {d: draws.count(d) for d in set(draws)}
    assert set(counts) == {500_000, 1_000_000, 30_000_000}
    # Each a third: binomial sd = sqrt(6000 / 3 × 2 / 3) ≈ 36.5; within 4 sd.
    assert all(abs(count - 2_000) < 4 * 36.5 for count in counts.values()), counts
    other = LinkState(topology, np.random.default_rng(3))
    assert [other.delay(east, west) for _ in range(6_000)] == draws, "the same seed, the same draws"
    same_region = topology.region_of.index(0, east + 1)
    assert links.delay(east, same_region) == topology.base_ns[0][0], "other pairs keep their model"


@pytest.mark.parametrize("rows, column, words, field", [
    (SAMPLES_MS, "missing", "no column 'missing'", "network.links[0].dist.column"),
    ([1.0, -2.0], "one_way_ms", "row 2 is", "network.links[0].dist.column"),
    ([], "one_way_ms", "no rows", "network.links[0].dist.column"),
])
def test_a_bad_samples_file_is_refused_at_validation(scenario_from, tmp_path: Path, rows: list[object], column: str,
                                                      words: str, field: str) -> None:
    path = _csv(tmp_path, rows)
    with pytest.raises(ScenarioError) as error:
        scenario_from(SCENARIO.format(path=path, column=column, unit="ms"))
    text = str(error.value)
    assert words in text and field in text, text


def test_a_missing_samples_file_and_samples_without_empirical_are_refused(scenario_from, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"network\.links\[0\]\.dist\.samples.*not found"):
        scenario_from(SCENARIO.format(path=tmp_path / "nowhere.csv", column="d", unit="ms"))
    text = SCENARIO.format(path="x.csv", column="d", unit="ms").replace('dist = "empirical"', 'dist = "normal"')
    with pytest.raises(ScenarioError, match="empirical"):
        scenario_from(text)
