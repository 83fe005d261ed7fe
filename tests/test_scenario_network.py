"""The network's population: node counts or shares per region."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.refs import node_names, node_regions
from msgstorm.sim.topology import _drawn_overlay

NETWORK_TOML = """
[run]
name = "population"
duration = "1s"

[network]
regions = ["us-east", "eu-west", "sa-east"]
{network}

[[agents]]
name = "one"
region = "sa-east"
arrival = {{ process = "constant", rate = "1/s" }}
"""


def test_counts_per_region_name_the_nodes_in_region_order(scenario_from) -> None:
    network = scenario_from(NETWORK_TOML.format(network='nodes_per_region = 2\nnodes = { "eu-west" = 3 }')).network
    assert network.region_counts() == [2, 3, 2]
    assert node_names(network) == ["us-east-0", "us-east-1", "eu-west-0", "eu-west-1", "eu-west-2",
                                   "sa-east-0", "sa-east-1"]
    assert node_regions(network)[2:5] == ["eu-west"] * 3


def test_shares_split_the_total_by_largest_remainder(scenario_from) -> None:
    # 39% / 52% / 9% of 101: 39.39, 52.52, 9.09 -> 39, 52, 9 and one node left, for the
    # largest remainder (eu-west's .52).
    network = scenario_from(NETWORK_TOML.format(
        network='total_nodes = 101\nshares = { "us-east" = 0.39, "eu-west" = 0.52, "sa-east" = 0.09 }')).network
    assert network.region_counts() == [39, 53, 9]
    assert len(node_names(network)) == 101
    # Bitcoin's nodes in 2015 as SimBlock configures them (dsg-titech/simblock,
    # NetworkConfiguration.REGION_DISTRIBUTION_BITCOIN_2015), 6,000 nodes.
    shares = {"na": 0.3869, "eu": 0.5159, "sa": 0.0113, "ap": 0.0574, "jp": 0.0119, "au": 0.0166}
    text = NETWORK_TOML.format(network="total_nodes = 6000\nshares = {" + ", ".join(
        f'{k} = {v}' for k, v in shares.items()) + "}\n" + 'latency = { ' + ", ".join(
        f'"{a}/{b}" = "50ms"' for i, a in enumerate(shares) for b in list(shares)[i + 1:]) + " }")
    text = text.replace('["us-east", "eu-west", "sa-east"]', str(list(shares)).replace("'", '"')).replace(
        'region = "sa-east"', 'region = "sa"')
    counts = scenario_from(text).network.region_counts()
    assert sum(counts) == 6000
    assert all(abs(count - share * 6000) < 1 for count, share in zip(counts, shares.values(), strict=True))
    assert counts[2] == 68 and counts[5] == 100  # 67.8 and 99.6: the largest remainders


@pytest.mark.parametrize("network, message", [
    ('total_nodes = 10', "shares and total_nodes together"),
    ('total_nodes = 10\nshares = { "us-east" = 0.5, "eu-west" = 0.4 }', "add up to 1"),
    ('nodes = { "mars" = 3 }', r"nodes names regions not in network.regions: \['mars'\]"),
    ('nodes = { "eu-west" = 2 }\ntotal_nodes = 4\nshares = { "us-east" = 1.0 }', "not both"),
    ('nodes = { "us-east" = 0, "eu-west" = 0, "sa-east" = 0 }', "no nodes"),
])
def test_a_population_that_does_not_add_up_is_refused(scenario_from, network: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from(NETWORK_TOML.format(network=network))


OVERLAY_TOML = """
[run]
name = "overlay"
duration = "1s"

[network]
nodes_per_region = 2000

[gossip]
mode = "flood"
{gossip}

[[agents]]
name = "one"
arrival = {{ process = "constant", rate = "1/s" }}
"""


def test_outbound_counts_follow_the_drawn_distribution_and_inbound_caps_hold(scenario_from) -> None:
    # P(1) = 0.2, P(2) = 0.3, P(4) = 0.5 (none open 3).
    gossip = scenario_from(OVERLAY_TOML.format(gossip="outbound_cdf = [0.2, 0.5, 0.5, 1.0]\nmax_inbound = 3")).gossip
    n = 2000
    adjacency: list[set[int]] = [set() for _ in range(n)]
    outbound, inbound = _drawn_overlay(adjacency, gossip, np.random.default_rng(4))
    assert max(inbound) == 3, "the cap binds and holds"
    assert sum(outbound) == sum(inbound) == sum(len(peers) for peers in adjacency) // 2
    counts = Counter(outbound)
    for opened, p in ((1, 0.2), (2, 0.3), (4, 0.5)):
        sd = (n * p * (1 - p)) ** 0.5
        assert abs(counts[opened] - n * p) < 4 * sd, (opened, counts)
    assert counts[3] == 0


def test_an_outbound_distribution_that_is_no_cdf_is_refused(scenario_from) -> None:
    with pytest.raises(ScenarioError, match="must not decrease and must end at 1.0"):
        scenario_from(OVERLAY_TOML.format(gossip="outbound_cdf = [0.5, 0.4, 1.0]"))
    with pytest.raises(ScenarioError, match="must not decrease and must end at 1.0"):
        scenario_from(OVERLAY_TOML.format(gossip="outbound_cdf = [0.5, 0.9]"))


LINKS_TOML = """
[run]
name = "links"
duration = "1s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 2

[[network.links]]
between = ["us-east", "eu-west"]
latency = "30ms"
one_way = true
dist = {{ dist = "{dist}", alpha = 4.0, overhead = "5ms" }}

[[agents]]
name = "one"
arrival = {{ process = "constant", rate = "1/s" }}
"""


def test_a_one_way_link_sets_one_direction_and_its_overhead_is_added_to_every_draw(scenario_from) -> None:
    from msgstorm.sim.link_model import link_delay, model_code
    from msgstorm.sim.topology import build_topology

    scenario = scenario_from(LINKS_TOML.format(dist="pareto"))
    topology = build_topology(scenario.network, scenario.gossip, np.random.default_rng(1))
    us, eu = topology.regions.index("us-east"), topology.regions.index("eu-west")
    assert topology.base_ns[us][eu] == 30_000_000
    assert topology.base_ns[eu][us] != 30_000_000  # the built-in latency the other way
    code, alpha = model_code(topology.region_model[us][eu], topology.link_samples)
    assert topology.region_model[eu][us].dist == "constant"
    uniform = np.asarray([0.5, 0.75])
    # Pareto(1, 4) at u: (1 - u) ** (-1/4); plus the 5 ms overhead.
    for i, u in enumerate(uniform.tolist()):
        delay, after = link_delay(30_000_000, code, alpha, uniform, i, topology.link_samples.array)
        assert after == i + 1
        assert delay == pytest.approx(30_000_000 * (1 - u) ** -0.25 + 5_000_000, abs=2)
    constant = scenario_from(LINKS_TOML.format(dist="constant")).network.links[0].dist
    assert constant is not None
    code, param = model_code(constant, topology.link_samples)
    assert link_delay(30_000_000, code, param, uniform, 0, topology.link_samples.array) == (35_000_000, 0), (
        "a constant link draws nothing")
