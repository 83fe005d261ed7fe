"""Compact block relay (BIP 152) in the gossip kernel, against arrival times worked out by hand.

The networks are built by hand (a line, a complete graph) with constant links of latency
L, an uplink of B ns per byte and a validation time V per receipt. A block of N messages is
relayed as a compact block of H + 6 N bytes (its transfer: C = (H + 6 N) B). A node that
holds every message of the block rebuilds it at once, so one hop costs L + C + V; a node
that misses k of them asks the sender (getblocktxn, L) and gets them (their bytes × B, then
L) before it validates.
"""

from __future__ import annotations

import numpy as np
from test_golden import column_digests

from msgstorm.history import History, HistoryWriter, read_history
from msgstorm.runner import write_run_row
from msgstorm.scenario.distributions import Constant
from msgstorm.scenario.schema import LinkModel
from msgstorm.sim import kernel as k
from msgstorm.sim.block_contents import BlockContents, CompactRelay
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.link_model import Degradations
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.sim.topology import Topology
from msgstorm.traffic import generate_traffic

L_NS = 3_000_000
V_NS = 200_000
NS_PER_BYTE = 100.0  # 80 Mbit/s
HEADER = 88
SHORT_ID = 6
TIMEOUT_NS = 5_000_000_000
MSG_SIZES = [300, 500, 700, 400, 250, 600, 350, 450, 550, 650]
BLOCK_SIZE = 80 + sum(MSG_SIZES)  # what push or announce would send
COMPACT_NS = int((HEADER + SHORT_ID * len(MSG_SIZES)) * NS_PER_BYTE)
T0 = 1_000_000_000  # the block leaves its producer when the messages' gossip is over
END = 10**12


def _state(forward: list[list[int]], high_bandwidth: int, block_relay: int = k.COMPACT,
           rebuild_failure: float = 0.0) -> GossipState:
    n = len(forward)
    topology = Topology(names=[f"n-{i}" for i in range(n)], regions=["r"], region_of=[0] * n,
                        base_ns=[[L_NS]], region_model=[[LinkModel()]], node_overrides={},
                        forward=forward, connections=forward)
    return GossipState(topology, Constant(value=V_NS), NS_PER_BYTE, np.random.default_rng(1),
                       np.random.default_rng(2), Degradations(n), delivery_stride=1, delivery_budget=10**6,
                       order_seed=7, block_relay=block_relay, relay_timeout_ns=TIMEOUT_NS,
                       compact=CompactRelay(HEADER, SHORT_ID, high_bandwidth, rebuild_failure))


def _line(n: int) -> list[list[int]]:
    return [[j for j in (i - 1, i + 1) if 0 <= j < n] for i in range(n)]


def _complete(n: int) -> list[list[int]]:
    return [[j for j in range(n) if j != i] for i in range(n)]


def _send_messages(state: GossipState, only_at_origin: set[int]) -> None:
    """Messages 0..9 from node 0; those in ``only_at_origin`` stay there (never forwarded)."""
    for m, size in enumerate(MSG_SIZES):
        state.inject(m * 10_000_000, 0, m, k.ITEM_MSG, size)
        if m in only_at_origin:
            state.stop_forwarding(k.ITEM_MSG, {m})
    assert state.run(T0) is None


def _block_arrivals(state: GossipState) -> dict[int, int]:
    """Inject block 0 (messages 0..9) at node 0 at T0; each node's validation time of it."""
    state.inject(T0, 0, 0, k.ITEM_BLOCK, BLOCK_SIZE, contents=BlockContents.of(list(range(10)), MSG_SIZES))
    arrivals: dict[int, int] = {}
    while (seen := state.run(END)) is not None:
        t, node, item, kind, _sender, _hops = seen
        assert kind == k.ITEM_BLOCK and item == 0
        assert node not in arrivals, f"node {node} validated the block twice"
        arrivals[node] = t
    return arrivals


def test_a_line_whose_nodes_hold_every_message_pays_latency_compact_transfer_and_validation_per_hop() -> None:
    state = _state(_line(5), high_bandwidth=3)
    _send_messages(state, only_at_origin=set())
    assert state.run(END) is None
    payloads = state.payloads_sent
    arrivals = _block_arrivals(state)
    assert arrivals == {i: T0 + V_NS + i * (L_NS + COMPACT_NS + V_NS) for i in range(5)}
    dups, gettxn, missing, missing_bytes = state.compact_counts
    assert (gettxn, missing, missing_bytes) == (0, 0, 0), "no extra round trip"
    assert dups == 0
    assert state.payloads_sent - payloads == 4, "one compact block per hop"


def test_a_failed_rebuild_costs_one_round_trip_for_one_message_though_every_message_is_held() -> None:
    """rebuild_failure = 1: every node that holds the whole block still fails to rebuild it,
    asks its sender for one message (the block's first, 300 bytes) and waits a round trip."""
    state = _state(_line(5), high_bandwidth=3, rebuild_failure=1.0)
    _send_messages(state, only_at_origin=set())
    assert state.run(END) is None
    arrivals = _block_arrivals(state)
    round_trip = L_NS + int(MSG_SIZES[0] * NS_PER_BYTE) + L_NS  # getblocktxn; blocktxn
    hop = L_NS + COMPACT_NS + V_NS
    assert arrivals[0] == T0 + V_NS
    for i in range(1, 5):
        assert arrivals[i] == arrivals[i - 1] + hop + round_trip
    assert state.compact_counts == (0, 4, 4, 4 * MSG_SIZES[0])
    assert state.scalars[k.S_RECON_FAILED] == 4


def test_a_share_of_rebuilds_fails_as_drawn() -> None:
    """rebuild_failure = 0.3 on a complete graph of 40 nodes (3 high-bandwidth peers each):
    each node that rebuilds a compact block from what it holds fails with probability 0.3,
    so the failures among the rebuilds are a binomial count; 0 and 1 are the bounds above."""
    from scipy.stats import binomtest

    state = _state(_complete(40), high_bandwidth=3, rebuild_failure=0.3)
    _send_messages(state, only_at_origin=set())
    assert state.run(END) is None
    arrivals = _block_arrivals(state)
    assert len(arrivals) == 40
    failed = int(state.scalars[k.S_RECON_FAILED])
    rebuilds = 39  # every node but the producer rebuilds the block once (duplicates are not rebuilt)
    assert binomtest(failed, rebuilds, 0.3).pvalue > 0.001, failed
    assert state.compact_counts[1] == failed  # each failure one getblocktxn
    without = _state(_complete(40), high_bandwidth=3)
    _send_messages(without, only_at_origin=set())
    assert without.run(END) is None
    _block_arrivals(without)
    assert without.compact_counts[1] == 0 and without.scalars[k.S_RECON_FAILED] == 0


def test_a_node_missing_k_messages_pays_exactly_one_round_trip_carrying_their_bytes() -> None:
    absent = {1, 4, 8}  # validated by node 0 only
    state = _state(_line(5), high_bandwidth=3)
    _send_messages(state, only_at_origin=absent)
    assert state.run(END) is None
    uploaded = state.uploaded_bytes
    arrivals = _block_arrivals(state)
    missing_bytes = sum(MSG_SIZES[m] for m in absent)
    round_trip = L_NS + int(missing_bytes * NS_PER_BYTE) + L_NS  # getblocktxn; blocktxn
    hop = L_NS + COMPACT_NS + V_NS
    # Every node but the producer misses the three, and asks its sender for them, which
    # holds them since its own round trip.
    assert arrivals[0] == T0 + V_NS
    for i in range(1, 5):
        assert arrivals[i] == arrivals[i - 1] + hop + round_trip
    assert state.compact_counts == (0, 4, 4 * len(absent), 4 * missing_bytes)
    sent = state.uploaded_bytes - uploaded
    compact_bytes = HEADER + SHORT_ID * len(MSG_SIZES)
    assert sent.tolist() == [compact_bytes + missing_bytes] * 4 + [0]


def test_messages_a_node_got_are_not_asked_for_again_after_a_round_trip() -> None:
    """Node 1 learns the absent messages in its round trip: on a star around node 1 its
    other peers (which had all but those) each ask for exactly them."""
    absent = {2}
    forward = [[1], [0, 2, 3], [1], [1]]
    state = _state(forward, high_bandwidth=3)
    _send_messages(state, only_at_origin=absent)
    assert state.run(END) is None
    arrivals = _block_arrivals(state)
    round_trip = 2 * L_NS + int(MSG_SIZES[2] * NS_PER_BYTE)
    at_1 = T0 + V_NS + (L_NS + COMPACT_NS) + round_trip + V_NS
    assert arrivals[1] == at_1
    # Node 1's uplink sends the two compact blocks one after the other; both leaves miss
    # message 2 and ask node 1, whose uplink sends their two answers one after the other.
    first, second = sorted(arrivals[i] for i in (2, 3))
    asked = at_1 + COMPACT_NS + L_NS + L_NS  # the first leaf's getblocktxn reaches node 1
    assert first == asked + int(MSG_SIZES[2] * NS_PER_BYTE) + L_NS + V_NS
    # The second leaf's request comes C after the first's, while node 1's uplink is still
    # sending the first answer: the second answer leaves when that one ends.
    assert second == first + int(MSG_SIZES[2] * NS_PER_BYTE)
    assert state.compact_counts[1:3] == (3, 3)


def test_low_bandwidth_mode_announces_and_sends_the_compact_block_on_request() -> None:
    state = _state(_line(5), high_bandwidth=0)
    _send_messages(state, only_at_origin=set())
    assert state.run(END) is None
    arrivals = _block_arrivals(state)
    hop = L_NS + L_NS + (COMPACT_NS + L_NS) + V_NS  # announcement, getdata, compact block, validation
    assert arrivals == {i: T0 + V_NS + i * hop for i in range(5)}
    assert state.relay_counts[:2] == (4, 4)
    assert state.compact_counts[1] == 0


def test_on_a_complete_graph_every_node_rebuilds_the_block_once_and_extra_copies_are_duplicates() -> None:
    n = 6
    state = _state(_complete(n), high_bandwidth=n)
    _send_messages(state, only_at_origin={3})
    assert state.run(END) is None
    arrivals = _block_arrivals(state)
    assert sorted(arrivals) == list(range(n))
    dups, gettxn, missing, _ = state.compact_counts
    # Every node that rebuilt the block sends it to its n - 2 other peers; the node
    # receives n - 1 copies and rebuilds from the first only.
    # (L is far above C: every node hears first from the producer, then sends to the n - 2
    # peers besides it.)
    assert dups == (n - 1) * (n - 2)
    assert state.block_receipts == 1 + (n - 1) + (n - 1) * (n - 2)
    assert (gettxn, missing) == (n - 1, n - 1), "each node asks for message 3 once, and for nothing else"


def test_compact_relay_sends_far_fewer_bytes_than_pushing_whole_blocks() -> None:
    n = 6
    compact = _state(_complete(n), high_bandwidth=n)
    pushed = _state(_complete(n), high_bandwidth=n, block_relay=k.PUSH)
    for state in (compact, pushed):
        _send_messages(state, only_at_origin=set())
        assert state.run(END) is None
    before = compact.uploaded_bytes.sum(), pushed.uploaded_bytes.sum()
    _block_arrivals(compact)
    pushed.inject(T0, 0, 0, k.ITEM_BLOCK, BLOCK_SIZE)
    while pushed.run(END) is not None:
        pass
    compact_bytes = int(compact.uploaded_bytes.sum() - before[0])
    pushed_bytes = int(pushed.uploaded_bytes.sum() - before[1])
    copies = (n - 1) + (n - 1) * (n - 2)
    assert compact_bytes == copies * (HEADER + SHORT_ID * len(MSG_SIZES))
    assert pushed_bytes == copies * BLOCK_SIZE


CHAIN_TOML = """
[run]
name = "compact"
seed = 5
duration = "2s"
drain = "3s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 8
bandwidth = "20Mbit/s"

[network.relay]
{relay}

[gossip]
mode = "mesh"
degree = 4
peers = 6

[blocks]
interval = "200ms"

[[agents]]
name = "traders"
region = "us-east"
count = 4
arrival = {{ process = "poisson", rate = "100/s" }}
size = 300
"""


def _chain_run(scenario_from, tmp_path, relay: str) -> tuple[ShadowNetwork, History]:
    scenario = scenario_from(CHAIN_TOML.format(relay=relay))
    writer = HistoryWriter(tmp_path / "history")
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed)
    sim.run(generate_traffic(scenario, traffic_seed))
    write_run_row(writer, scenario, sim, sim.finish())
    writer.close()
    return sim, read_history(tmp_path)


def test_a_chain_relaying_blocks_compactly_reaches_every_node_with_a_fraction_of_the_bytes(scenario_from,
                                                                                            tmp_path) -> None:
    # Messages relay slowly (announce and fetch, 50 ms per announcement and request), so a
    # block often reaches a node before some of its messages do.
    slow = 'protocol = "announce"\ncontrol_overhead = "50ms"\nhigh_bandwidth = 4\n'
    compact, compact_history = _chain_run(scenario_from, tmp_path / "c", slow + 'kinds = { block = "compact" }')
    pushed, pushed_history = _chain_run(scenario_from, tmp_path / "p", slow + 'kinds = { block = "push" }')
    for sim, history in ((compact, compact_history), (pushed, pushed_history)):
        statuses = set(history.messages.column("status").to_pylist())
        assert statuses == {"committed"}
        # Every node has every block but perhaps the last, made as the run stops.
        assert min(sim.chain.height) >= max(sim.chain.height) - 1 >= 10
    assert max(compact.chain.height) == max(pushed.chain.height)
    # The messages travel alike (push); blocks of ~100 messages of 300 bytes go as 88 + 6
    # bytes per message instead.
    compact_bytes = int(compact.gossip.uploaded_bytes.sum())
    pushed_bytes = int(pushed.gossip.uploaded_bytes.sum())
    assert compact_bytes < 0.75 * pushed_bytes
    dups, gettxn, missing, missing_bytes = compact.gossip.compact_counts
    assert missing_bytes == 300 * missing, "every message asked for is 300 bytes"
    assert 0 < gettxn <= missing, "some blocks were rebuilt after a round trip"
    again, again_history = _chain_run(scenario_from, tmp_path / "again", slow + 'kinds = { block = "compact" }')
    assert column_digests(again_history) == column_digests(compact_history), "the same seed gives the same history"
    assert again.gossip.compact_counts == compact.gossip.compact_counts


def test_blocks_in_flight_keep_their_contents_when_the_contents_table_fills() -> None:
    """Four blocks of 1,200 messages outgrow the contents table (4,096 columns) at the
    fourth: the first has arrived everywhere, so its messages are dropped, and the two still
    in flight move to the table's front. Each block's first message is one only the producer
    holds, so each of the two other nodes asks for exactly that one message per block: a
    block read from the wrong place would miss another number."""
    state = _state(_line(3), high_bandwidth=3)
    spread, per_block = 1_500, 1_200
    for m in range(spread):
        state.inject(m * 100_000, 0, m, k.ITEM_MSG, 200)
    special = [300 + 10 * b for b in range(4)]  # each block's own size for it
    for b in range(4):  # message spread + b: at the producer only
        state.inject(spread * 100_000 + b, 0, spread + b, k.ITEM_MSG, special[b])
        state.stop_forwarding(k.ITEM_MSG, {spread + b})
    assert state.run(T0) is None and state.run(END) is None
    arrivals: dict[tuple[int, int], int] = {}
    moved_from = 0
    for block in range(4):
        ids = [spread + block, *range(block * 100, block * 100 + per_block - 1)]
        if block == 1:  # the first block is everywhere by now, its requests' timeouts past
            while (seen := state.run(10 * T0)) is not None:
                arrivals[(seen[2], seen[1])] = seen[0]
            moved_from = state.contents_fill
        state.inject(T0 if block == 0 else 10 * T0, 0, block, k.ITEM_BLOCK, 10**6,
                     contents=BlockContents.of(ids, [special[block]] + [200] * (per_block - 1)))
    assert state.contents_fill == 3 * per_block < moved_from + 3 * per_block, "the table was compacted"
    while (seen := state.run(END)) is not None:
        t, node, item, kind, _sender, _hops = seen
        assert (item, node) not in arrivals
        arrivals[(item, node)] = t
    assert sorted(arrivals) == [(block, node) for block in range(4) for node in range(3)]
    assert state.compact_counts[1:] == (8, 8, 2 * sum(special)), "each block's own message, at two nodes"
