"""Partial adoption of compact block relay (``[network.relay] compact_share``), against
arrival times worked out by hand.

The networks and sizes are those of ``test_sim_compact.py``: constant links of latency L,
an uplink of B ns per byte, a validation time V per receipt; a compact block takes
C = (H + 6 N) B to send, the full block F = (80 + the messages' bytes) B. A link whose
ends both speak compact relay carries the compact block (one hop: L + C + V); a link where
either end does not carries the full block as announce and fetch does: the announcement
(L), the request (L), the block (F + L) and its validation (V).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_golden import column_digests
from test_sim_compact import (
    BLOCK_SIZE,
    CHAIN_TOML,
    COMPACT_NS,
    END,
    HEADER,
    L_NS,
    MSG_SIZES,
    NS_PER_BYTE,
    SHORT_ID,
    T0,
    TIMEOUT_NS,
    V_NS,
    _block_arrivals,
    _chain_run,
    _complete,
    _line,
    _send_messages,
)

from msgstorm.scenario.distributions import Constant
from msgstorm.scenario.loader import scenario_hash
from msgstorm.scenario.schema import LinkModel
from msgstorm.sim import kernel as k
from msgstorm.sim.block_contents import CompactRelay, compact_nodes
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.link_model import Degradations
from msgstorm.sim.topology import Topology

FULL_NS = int(BLOCK_SIZE * NS_PER_BYTE)
FULL_HOP = L_NS + L_NS + (FULL_NS + L_NS) + V_NS  # announcement, request, full block, validation
COMPACT_HOP = L_NS + COMPACT_NS + V_NS


def _state(forward: list[list[int]], speaks: list[bool] | None, high_bandwidth: int = 3,
           block_relay: int = k.COMPACT) -> GossipState:
    n = len(forward)
    topology = Topology(names=[f"n-{i}" for i in range(n)], regions=["r"], region_of=[0] * n,
                        base_ns=[[L_NS]], region_model=[[LinkModel()]], node_overrides={},
                        forward=forward, connections=forward)
    return GossipState(topology, Constant(value=V_NS), NS_PER_BYTE, np.random.default_rng(1),
                       np.random.default_rng(2), Degradations(n), delivery_stride=1, delivery_budget=10**6,
                       order_seed=7, block_relay=block_relay, relay_timeout_ns=TIMEOUT_NS,
                       compact=CompactRelay(HEADER, SHORT_ID, high_bandwidth, 0.0),
                       compact_nodes=None if speaks is None else np.asarray(speaks, dtype=bool))


def _announced_arrivals(state: GossipState) -> dict[int, int]:
    """As ``_block_arrivals``, for a block relayed without contents (announce and fetch)."""
    state.inject(T0, 0, 0, k.ITEM_BLOCK, BLOCK_SIZE)
    arrivals: dict[int, int] = {}
    while (seen := state.run(END)) is not None:
        assert seen[1] not in arrivals
        arrivals[seen[1]] = seen[0]
    return arrivals


def test_a_middle_node_without_compact_relay_makes_both_its_links_carry_the_full_block() -> None:
    """0 - 1 - 2, node 1 without compact relay; message 3 stays at the producer, so a
    compact block would cost nodes 1 and 2 a getblocktxn round trip: the full block needs none."""
    state = _state(_line(3), [True, False, True])
    _send_messages(state, only_at_origin={3})
    assert state.run(END) is None
    assert [state.held[node, 0] & (1 << 3) for node in (1, 2)] == [0, 0]
    uploaded = state.uploaded_bytes.copy()
    payloads = state.payloads_sent
    arrivals = _block_arrivals(state)
    assert arrivals == {0: T0 + V_NS, 1: T0 + V_NS + FULL_HOP, 2: T0 + V_NS + 2 * FULL_HOP}
    assert state.compact_counts == (0, 0, 0, 0), "no compact block, so no getblocktxn"
    assert state.relay_counts[:2] == (2, 2), "an announcement and a request per hop"
    assert state.payloads_sent - payloads == 2
    assert (state.uploaded_bytes - uploaded).tolist() == [BLOCK_SIZE, BLOCK_SIZE, 0]
    # Both hold the block's messages now, message 3 too: they came with the full block.
    assert [state.held[node, 0] & (1 << 3) for node in (1, 2)] == [1 << 3, 1 << 3]


def test_a_last_node_without_compact_relay_gets_the_full_block_after_a_compact_hop() -> None:
    state = _state(_line(3), [True, True, False])
    _send_messages(state, only_at_origin=set())
    assert state.run(END) is None
    uploaded = state.uploaded_bytes.copy()
    arrivals = _block_arrivals(state)
    assert arrivals == {0: T0 + V_NS, 1: T0 + V_NS + COMPACT_HOP, 2: T0 + V_NS + COMPACT_HOP + FULL_HOP}
    compact_bytes = HEADER + SHORT_ID * len(MSG_SIZES)
    assert (state.uploaded_bytes - uploaded).tolist() == [compact_bytes, BLOCK_SIZE, 0]
    assert state.relay_counts[:2] == (1, 1), "only the last link announces"


def test_a_producer_without_compact_relay_announces_to_every_peer() -> None:
    """A star around node 0, which lacks compact relay: each leaf asks for the full block,
    and node 0's uplink sends the three answers one after another."""
    state = _state([[1, 2, 3], [0], [0], [0]], [False, True, True, True])
    _send_messages(state, only_at_origin=set())
    assert state.run(END) is None
    arrivals = _block_arrivals(state)
    served = T0 + V_NS + 2 * L_NS  # every request reaches node 0 at once
    assert sorted(arrivals[i] for i in (1, 2, 3)) == [served + j * FULL_NS + L_NS + V_NS for j in (1, 2, 3)]
    assert state.compact_counts == (0, 0, 0, 0)


@pytest.mark.parametrize("only_at_origin", [set(), {2, 7}])
def test_no_node_speaking_compact_relay_is_announce_and_fetch_exactly(only_at_origin: set[int]) -> None:
    """Share 0 on a complete graph of 6 (many ties, duplicate announcements, quiet ones
    under announce): every arrival and every count as ``kinds = { block = "announce" }``."""
    n = 6
    none = _state(_complete(n), [False] * n)
    announce = _state(_complete(n), None, block_relay=k.ANNOUNCE_FETCH)
    for state in (none, announce):
        _send_messages(state, only_at_origin=only_at_origin)
        assert state.run(END) is None
    before = none.uploaded_bytes.copy(), announce.uploaded_bytes.copy()
    arrivals = _block_arrivals(none)
    assert arrivals == _announced_arrivals(announce)
    assert len(arrivals) == n
    assert none.relay_counts == announce.relay_counts
    assert none.block_receipts == announce.block_receipts
    assert (none.uploaded_bytes - before[0]).tolist() == (announce.uploaded_bytes - before[1]).tolist()
    assert none.compact_counts == (0, 0, 0, 0)


def test_every_node_speaking_compact_relay_is_compact_relay_as_before() -> None:
    n = 6
    flags = _state(_complete(n), [True] * n)
    default = _state(_complete(n), None)
    for state in (flags, default):
        _send_messages(state, only_at_origin={3})
        assert state.run(END) is None
    assert _block_arrivals(flags) == _block_arrivals(default)
    assert flags.compact_counts == default.compact_counts
    assert flags.compact_counts[1] == n - 1, "each node asks for message 3 once"


def test_the_high_bandwidth_slots_go_to_peers_that_speak_compact_relay() -> None:
    """A complete graph of 5, one high-bandwidth slot, nodes 1-3 without compact relay: the
    producer's compact block goes unasked to node 4, the only peer that speaks it, whatever
    the order; nodes 1-3 get the full block on request."""
    state = _state(_complete(5), [True, False, False, False, True], high_bandwidth=1)
    _send_messages(state, only_at_origin=set())
    assert state.run(END) is None
    arrivals = _block_arrivals(state)
    assert arrivals[4] == T0 + V_NS + COMPACT_HOP
    assert min(arrivals[i] for i in (1, 2, 3)) >= T0 + V_NS + FULL_HOP
    assert state.compact_counts[0] == 0, "node 4 sends node 0 nothing back: it came from there"


def test_the_nodes_that_speak_compact_relay_are_the_share_rounded_half_up_drawn_from_the_seed() -> None:
    assert compact_nodes(10, 1.0, np.random.default_rng(0)) is None
    assert compact_nodes(10, 0.96, np.random.default_rng(0)) is None, "9.6 rounds to every node"
    none = compact_nodes(10, 0.0, np.random.default_rng(0))
    assert none is not None and not none.any()
    drawn = compact_nodes(16, 0.5, np.random.default_rng(3))
    again = compact_nodes(16, 0.5, np.random.default_rng(3))
    other = compact_nodes(16, 0.5, np.random.default_rng(4))
    assert drawn is not None and again is not None and other is not None
    assert int(drawn.sum()) == 8 and int(compact_nodes(6000, 0.964, np.random.default_rng(0)).sum()) == 5784  # type: ignore[union-attr]
    assert drawn.tolist() == again.tolist()
    assert drawn.tolist() != other.tolist()


def test_a_share_of_one_is_the_scenario_as_before(scenario_from) -> None:
    relay = 'kinds = { block = "compact" }'
    base = scenario_from(CHAIN_TOML.format(relay=relay))
    assert scenario_hash(scenario_from(CHAIN_TOML.format(relay=relay + "\ncompact_share = 1.0"))) == scenario_hash(base)
    assert scenario_hash(scenario_from(CHAIN_TOML.format(relay=relay + '\ncompact_share = "50%"'))) != scenario_hash(base)


def test_a_chain_with_half_its_nodes_on_compact_relay_repeats_and_sits_between_all_and_none(scenario_from,
                                                                                           tmp_path) -> None:
    base = 'high_bandwidth = 2\nkinds = { block = "compact" }\n'
    half, half_history = _chain_run(scenario_from, tmp_path / "h", base + "compact_share = 0.5")
    again, again_history = _chain_run(scenario_from, tmp_path / "a", base + "compact_share = 0.5")
    assert column_digests(again_history) == column_digests(half_history), "the same seed gives the same history"
    assert int(half.gossip.nodes[k.N_COMPACT].sum()) == 8
    assert again.gossip.nodes[k.N_COMPACT].tolist() == half.gossip.nodes[k.N_COMPACT].tolist()
    every, _ = _chain_run(scenario_from, tmp_path / "e", base)
    none, none_history = _chain_run(scenario_from, tmp_path / "n", base + "compact_share = 0")
    announced, announced_history = _chain_run(scenario_from, tmp_path / "f",
                                              'high_bandwidth = 2\nkinds = { block = "announce" }\n')
    # Share 0 relays blocks exactly as announce and fetch does.
    assert column_digests(none_history) == column_digests(announced_history)
    assert none.gossip.compact_counts == (0, 0, 0, 0)
    # Bytes: compact blocks are small, so half the nodes on it send fewer than none, more than all.
    sent = {name: int(sim.gossip.uploaded_bytes.sum()) for name, sim in
            (("every", every), ("half", half), ("none", none))}
    assert sent["every"] < sent["half"] < sent["none"], sent
