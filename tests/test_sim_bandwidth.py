"""Per-region upload and download bandwidth, and how a node's uplink is shared."""

from __future__ import annotations

import numpy as np
import pytest

from msgstorm.history import HistoryWriter
from msgstorm.scenario.distributions import Constant
from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.schema import LinkModel
from msgstorm.sim import kernel as k
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.link_model import Degradations
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.sim.topology import Topology

L_NS = 40_000_000
V_NS = 50_000
MB = 1_000_000
END = 10**13


def _state(forward: list[list[int]], upload_bps: list[float], download_bps: list[float],
           fair_share: bool = False) -> GossipState:
    n = len(forward)
    topology = Topology(names=[f"n-{i}" for i in range(n)], regions=["r"], region_of=[0] * n,
                        base_ns=[[L_NS]], region_model=[[LinkModel()]], node_overrides={},
                        forward=forward, connections=forward)
    up = np.asarray([8e9 / b if b else 0.0 for b in upload_bps])
    down = np.asarray([8e9 / b if b else 0.0 for b in download_bps])
    return GossipState(topology, Constant(value=V_NS), up, np.random.default_rng(1), np.random.default_rng(2),
                       Degradations(n), delivery_stride=1, delivery_budget=10**6, download_ns_per_byte=down,
                       fair_share=fair_share)


def _delivered(state: GossipState, size: int) -> dict[int, int]:
    state.inject(0, 0, 0, k.ITEM_MSG, size)
    while state.run(END) is not None:
        pass
    _msg, node, t, _hops = state.drain_deliveries()
    return dict(zip(node.tolist(), t.tolist(), strict=True))


def test_a_transfer_is_limited_by_the_senders_upload_and_the_receivers_download() -> None:
    # 1 MB from a node uploading at 8 Mbit/s to one downloading at 2 Mbit/s: 8e6 bits / 2e6 = 4 s.
    delivered = _delivered(_state([[1], [0]], [8e6, 8e6], [0, 2e6]), MB)
    assert delivered[1] - delivered[0] == 4_000_000_000 + L_NS + V_NS
    # The other way round the upload limits: 8e6 bits / 8e6 = 1 s.
    delivered = _delivered(_state([[1], [0]], [8e6, 8e6], [0, 100e6]), MB)
    assert delivered[1] - delivered[0] == 1_000_000_000 + L_NS + V_NS


@pytest.mark.parametrize("fair_share", [False, True])
def test_two_concurrent_transfers_from_one_uplink_take_twice_as_long(fair_share: bool) -> None:
    one_s = 1_000_000_000  # 1 MB at 8 Mbit/s
    delivered = _delivered(_state([[1, 2], [0], [0]], [8e6] * 3, [0] * 3, fair_share), MB)
    ends = sorted(delivered[leaf] - delivered[0] - L_NS - V_NS for leaf in (1, 2))
    # serial: one copy after the other (1 s, then 2 s); fair share: both at half rate (2 s each).
    assert ends == ([2 * one_s, 2 * one_s] if fair_share else [one_s, 2 * one_s])


def test_under_fair_share_a_slow_receiver_takes_its_own_download_time() -> None:
    # Two copies share 8 Mbit/s (4 Mbit/s each: 2 s); one receiver downloads at 1 Mbit/s (8 s).
    delivered = _delivered(_state([[1, 2], [0], [0]], [8e6] * 3, [0, 0, 1e6], fair_share=True), MB)
    assert delivered[1] - delivered[0] == 2_000_000_000 + L_NS + V_NS
    assert delivered[2] - delivered[0] == 8_000_000_000 + L_NS + V_NS


BANDWIDTH_TOML = """
[run]
name = "bandwidth"
duration = "1s"

[network]
regions = ["us-east", "eu-west", "ap-south"]
nodes_per_region = 2
bandwidth = "50Mbit/s"
upload = {{ "eu-west" = "8Mbit/s" }}
download = {{ "ap-south" = "2Mbit/s" }}
{extra}

[[agents]]
name = "one"
arrival = {{ process = "constant", rate = "1/s" }}
"""


def test_per_region_bandwidth_reaches_every_node_of_the_region(scenario_from, tmp_path) -> None:
    scenario = scenario_from(BANDWIDTH_TOML.format(extra='uplink = "fair_share"'))
    sim = ShadowNetwork(scenario, HistoryWriter(tmp_path / "history"), np.random.SeedSequence(1), helper_cpus=0)
    region = [sim.topology.regions[r] for r in sim.topology.region_of]
    expected_up = {"us-east": 8e9 / 50e6, "eu-west": 8e9 / 8e6, "ap-south": 8e9 / 50e6}
    expected_down = {"us-east": 0.0, "eu-west": 0.0, "ap-south": 8e9 / 2e6}
    assert sim.gossip.ns_per_byte[0].tolist() == [expected_up[r] for r in region]
    assert sim.gossip.ns_per_byte[1].tolist() == [expected_down[r] for r in region]
    assert sim.gossip.scalars[k.S_FAIR_SHARE] == 1


def test_bandwidth_of_an_unknown_region_is_refused(scenario_from) -> None:
    with pytest.raises(ScenarioError, match=r"upload names regions not in network.regions: \['mars'\]"):
        scenario_from(BANDWIDTH_TOML.format(extra="").replace('"eu-west" = "8Mbit/s"', 'mars = "8Mbit/s"'))
