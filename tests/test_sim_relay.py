"""Relay protocols in the gossip kernel, against arrival times worked out by hand.

The networks here are built by hand (a line, a complete graph) with constant links of
latency L, a payload's uplink time T and a validation time V per receipt. Under
``announce`` one hop costs an announcement (L), a request (L), the transfer (T + L) and
the validation (V).
"""

from __future__ import annotations

import numpy as np
import pytest

from msgstorm.history import HistoryWriter, read_history
from msgstorm.runner import write_run_row
from msgstorm.scenario.distributions import Constant
from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.schema import LinkModel
from msgstorm.sim import kernel as k
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.link_model import Degradations
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.sim.topology import Topology
from msgstorm.traffic import generate_traffic

L_NS = 3_000_000
V_NS = 200_000
SIZE = 10_000
NS_PER_BYTE = 100.0  # 80 Mbit/s: T = 1 ms for SIZE bytes
T_NS = int(SIZE * NS_PER_BYTE)
TIMEOUT_NS = 50_000_000
END = 10**12


def _state(forward: list[list[int]], relay: int, uplink_held: bool = False, control_ns: int = 0) -> GossipState:
    n = len(forward)
    topology = Topology(names=[f"n-{i}" for i in range(n)], regions=["r"], region_of=[0] * n,
                        base_ns=[[L_NS]], region_model=[[LinkModel()]], node_overrides={},
                        forward=forward, connections=forward)
    return GossipState(topology, Constant(value=V_NS), NS_PER_BYTE, np.random.default_rng(1),
                       np.random.default_rng(2), Degradations(n), delivery_stride=1, delivery_budget=10**6,
                       order_seed=7, message_relay=np.full(6, relay, dtype=np.int64), relay_timeout_ns=TIMEOUT_NS,
                       uplink_held=uplink_held, control_overhead_ns=control_ns)


def _delivered(state: GossipState) -> dict[int, int]:
    msg, node, t, _hops = state.drain_deliveries()
    assert len(set(node.tolist())) == len(node), "a node validated the payload twice"
    return dict(zip(node.tolist(), t.tolist(), strict=True))


def _run(state: GossipState, until: int = END) -> None:
    while state.run(until) is not None:
        pass


def test_announce_on_a_line_costs_announcement_request_transfer_and_validation_per_hop() -> None:
    state = _state([[1], [0, 2], [1, 3], [2, 4], [3]], k.ANNOUNCE_FETCH)
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state)
    hop = L_NS + L_NS + (T_NS + L_NS) + V_NS
    assert _delivered(state) == {node: V_NS + node * hop for node in range(5)}
    assert state.receipts == 5, "each node receives the payload exactly once"
    announces, requests, fallbacks = state.relay_counts
    assert (announces, requests, fallbacks) == (4, 4, 0)


def test_announce_on_a_complete_graph_serves_every_request_once_from_the_origin() -> None:
    n = 5
    state = _state([[j for j in range(n) if j != i] for i in range(n)], k.ANNOUNCE_FETCH)
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state)
    delivered = _delivered(state)
    assert delivered.pop(0) == V_NS
    # Every peer hears of it from the origin at V + L and asks at once; the origin's uplink
    # sends the four payloads one after another (in its fair order).
    expected = [V_NS + 2 * L_NS + i * T_NS + L_NS + V_NS for i in range(1, n)]
    assert sorted(delivered.values()) == expected
    assert state.receipts == n
    announces, requests, fallbacks = state.relay_counts
    # The origin announces to 4 peers; each of them to the 3 others but its sender.
    assert (announces, requests, fallbacks) == (4 + 4 * 3, 4, 0)


C_NS = 10_000_000  # a fixed delay per announcement and per request


def test_a_control_overhead_is_paid_by_announcements_and_requests_not_payloads() -> None:
    state = _state([[1], [0, 2], [1, 3], [2, 4], [3]], k.ANNOUNCE_FETCH, control_ns=C_NS)
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state)
    hop = (L_NS + C_NS) + (L_NS + C_NS) + (T_NS + L_NS) + V_NS
    assert _delivered(state) == {node: V_NS + node * hop for node in range(5)}


def test_a_held_uplink_sends_the_next_payload_only_when_the_last_has_arrived() -> None:
    n = 5
    state = _state([[j for j in range(n) if j != i] for i in range(n)], k.ANNOUNCE_FETCH, uplink_held=True,
                   control_ns=C_NS)
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state)
    delivered = _delivered(state)
    assert delivered.pop(0) == V_NS
    # The four requests reach the origin together; each payload holds its uplink for its
    # transfer and its link delay, so the i-th arrives i x (T + L) after the requests.
    requests_in = V_NS + 2 * (L_NS + C_NS)
    assert sorted(delivered.values()) == [requests_in + i * (T_NS + L_NS) + V_NS for i in range(1, n)]
    assert state.receipts == n


def test_push_on_the_same_complete_graph_sends_duplicates() -> None:
    n = 5
    state = _state([[j for j in range(n) if j != i] for i in range(n)], k.PUSH)
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state)
    delivered = _delivered(state)
    assert sorted(delivered.values())[1:] == [V_NS + i * T_NS + L_NS + V_NS for i in range(1, n)]
    assert state.receipts == n + 4 * 3, "push delivers a copy from every peer"
    assert state.relay_counts == (0, 0, 0)


def test_a_lost_request_is_asked_again_of_a_peer_that_holds_the_item_after_the_timeout() -> None:
    state = _state([[1, 2], [0, 2], [0, 1]], k.ANNOUNCE_FETCH)
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state, V_NS + L_NS)  # both peers have the announcement due; nothing asked yet
    side = [1, 0, 2]  # the link between node 0 (side A) and node 2 (side B) loses everything
    state.degradations.add(0, side, True, 0, 0, 1.0)
    state.degradations_changed()
    _run(state)
    delivered = _delivered(state)
    hop = 3 * L_NS + T_NS + V_NS
    assert delivered[1] == V_NS + hop
    # Node 2's request to node 0 is lost; at its timeout it asks node 1, which holds the item.
    assert delivered[2] == V_NS + L_NS + TIMEOUT_NS + L_NS + T_NS + L_NS + V_NS
    assert state.relay_counts[2] == 1
    assert state.receipts == 3


@pytest.mark.parametrize("degree, pushed", [(4, 2), (5, 3), (9, 3)])
def test_push_sqrt_pushes_to_the_square_root_of_the_peers_and_announces_to_the_rest(degree: int, pushed: int) -> None:
    # A star: the centre forwards to ``degree`` leaves, whose one peer is the centre.
    forward = [list(range(1, degree + 1))] + [[0] for _ in range(degree)]
    state = _state(forward, k.PUSH_SQRT)
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state)
    delivered = _delivered(state)
    times = sorted(t for node, t in delivered.items() if node != 0)
    push_times = [V_NS + i * T_NS + L_NS + V_NS for i in range(1, pushed + 1)]
    # Announced leaves ask at V + 2L; the uplink is free again after the pushes' T each.
    fetch_start = max(V_NS + 2 * L_NS, V_NS + pushed * T_NS)
    fetch_times = [fetch_start + i * T_NS + L_NS + V_NS for i in range(1, degree - pushed + 1)]
    assert times == sorted(push_times + fetch_times)
    assert state.relay_counts[:2] == (degree - pushed, degree - pushed)


RELAY_TOML = """
[run]
name = "relay"
seed = 3
duration = "200ms"
drain = "5s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 20
bandwidth = "100Mbit/s"

[network.relay]
{relay}

[gossip]
mode = "mesh"
degree = 6
peers = 12

[[agents]]
name = "one"
region = "us-east"
arrival = {{ process = "constant", rate = "50/s" }}
size = 2000
"""


def _gossip_run(scenario_from, tmp_path, relay: str) -> tuple[ShadowNetwork, int, dict[int, list[str]]]:
    scenario = scenario_from(RELAY_TOML.format(relay=relay))
    writer = HistoryWriter(tmp_path / "history")
    traffic_seed, sim_seed = np.random.SeedSequence(1).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed)
    sim.run(generate_traffic(scenario, traffic_seed))
    write_run_row(writer, scenario, sim, sim.finish())
    writer.close()
    history = read_history(tmp_path)
    by_msg: dict[int, list[str]] = {}
    for row in history.deliveries.to_pylist():
        by_msg.setdefault(row["msg_id"], []).append(row["node"])
    return sim, history.messages.num_rows, by_msg


def test_announce_in_a_run_gives_every_node_each_message_exactly_once(scenario_from, tmp_path) -> None:
    sim, sent, by_msg = _gossip_run(scenario_from, tmp_path / "a", 'protocol = "announce"')
    assert sent > 5 and len(by_msg) == sent
    assert all(sorted(nodes) == sorted(sim.topology.names) for nodes in by_msg.values())
    assert sim.gossip.receipts == 40 * sent, "one payload per node and message"
    pushed, _, by_msg_push = _gossip_run(scenario_from, tmp_path / "b", "")
    assert pushed.gossip.receipts > 2 * 40 * sent, "push sends duplicates"
    assert pushed.gossip.relay_counts == (0, 0, 0)


def test_relay_by_kind_names_known_kinds_only(scenario_from) -> None:
    scenario = scenario_from(RELAY_TOML.format(relay='kinds = { order = "push_sqrt", block = "announce" }'))
    assert scenario.network.relay.code("order") == k.PUSH_SQRT
    assert scenario.network.relay.code("block") == k.ANNOUNCE_FETCH
    assert scenario.network.relay.code("quote") == k.PUSH
    with pytest.raises(ScenarioError, match="unknown kinds"):
        scenario_from(RELAY_TOML.format(relay='kinds = { orders = "announce" }'))
    with pytest.raises(ScenarioError, match="protocol"):
        scenario_from(RELAY_TOML.format(relay='protocol = "gossipsub"'))


def test_a_network_whose_items_all_go_by_push_runs_the_loop_without_the_relay_events() -> None:
    assert _state([[1], [0]], k.PUSH).relays is False
    assert _state([[1], [0]], k.ANNOUNCE_FETCH).relays is True
    assert _state([[1], [0]], k.PUSH_SQRT).relays is True


def test_the_push_loop_hands_an_announced_item_to_the_loop_with_the_relay_events() -> None:
    # As the announce line above, started on the loop without the relay events: at the
    # origin's receipt it hands back, and the whole loop runs the item from there.
    state = _state([[1], [0, 2], [1, 3], [2, 4], [3]], k.ANNOUNCE_FETCH)
    state.relays = False
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state)
    assert state.relays is True
    hop = L_NS + L_NS + (T_NS + L_NS) + V_NS
    assert _delivered(state) == {node: V_NS + node * hop for node in range(5)}
    assert state.relay_counts == (4, 4, 0)
