"""Each hop's stages (sim/hop_stages.py from the kernel's hop log), worked out by hand.

A line of three nodes (0 - 1 - 2) with constant links of latency L, an uplink of B ns per
byte, a validation time V per item and a control overhead C on announcements and requests.
Under announce and fetch a hop is an announcement (L + C), a request (L + C), the transfer
(size × B + L) and the validation (V). A compact block whose receiver misses k messages
adds a getblocktxn (L + C, a request) and the missing bytes (their bytes × B + L, a transfer).
"""

from __future__ import annotations

import numpy as np
import pytest

from msgstorm.scenario.distributions import Constant
from msgstorm.scenario.schema import LinkModel
from msgstorm.sim import kernel as k
from msgstorm.sim.block_contents import BlockContents, CompactRelay
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.hop_stages import HOP_STAGE_NAMES, HopStages, hop_stride
from msgstorm.sim.link_model import Degradations
from msgstorm.sim.topology import Topology

L_NS = 3_000_000
V_NS = 200_000
C_NS = 10_000_000
NS_PER_BYTE = 100.0
SIZE = 10_000
T_NS = int(SIZE * NS_PER_BYTE)  # 1 ms
HEADER, SHORT_ID = 88, 6
MSG_SIZES = [300, 500, 700, 400]
ABSENT = {1, 3}  # messages only the producer holds
MISSING_NS = int(sum(MSG_SIZES[m] for m in ABSENT) * NS_PER_BYTE)
COMPACT_NS = int((HEADER + SHORT_ID * len(MSG_SIZES)) * NS_PER_BYTE)
T0 = 1_000_000_000
END = 10**12
LINE = [[1], [0, 2], [1]]


def _state(relay: int, high_bandwidth: int = 0, trace: bool = True) -> GossipState:
    topology = Topology(names=["n-0", "n-1", "n-2"], regions=["r"], region_of=[0] * 3, base_ns=[[L_NS]],
                        region_model=[[LinkModel()]], node_overrides={}, forward=LINE, connections=LINE)
    block_relay = relay if relay == k.COMPACT else k.PUSH
    message_relay = np.full(6, k.PUSH if relay == k.COMPACT else relay, dtype=np.int64)
    return GossipState(topology, Constant(value=V_NS), NS_PER_BYTE, np.random.default_rng(1),
                       np.random.default_rng(2), Degradations(3), delivery_stride=1, delivery_budget=10**6,
                       order_seed=7, message_relay=message_relay, block_relay=block_relay,
                       relay_timeout_ns=5_000_000_000, control_overhead_ns=C_NS,
                       compact=CompactRelay(HEADER, SHORT_ID, high_bandwidth), trace_hops=trace)


def _run(state: GossipState) -> None:
    while state.run(END) is not None:
        pass


def _hops(state: GossipState, stages: HopStages, block: bool) -> dict[int, tuple[int, int, int, int, int, int]]:
    """Each node's hop of the item: (sender, t, announce, request, transfer, validation)."""
    rows = stages.add(state.drain_hop_log())
    keep = rows["block"] == block
    out = {}
    for i in np.flatnonzero(keep).tolist():
        out[int(rows["node"][i])] = (int(rows["sender"][i]), int(rows["t"][i]),
                                     *(int(rows[f"{name}_ns"][i]) for name in HOP_STAGE_NAMES))
    return out


@pytest.mark.parametrize("relay", [k.ANNOUNCE_FETCH, k.PUSH])
def test_a_message_on_a_line_each_stage_to_the_nanosecond(relay: int) -> None:
    state = _state(relay)
    stages = HopStages(3)
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state)
    if relay == k.ANNOUNCE_FETCH:
        hop = (L_NS + C_NS, L_NS + C_NS, T_NS + L_NS, V_NS)
    else:
        hop = (0, 0, T_NS + L_NS, V_NS)
    per_hop = sum(hop)
    assert _hops(state, stages, block=False) == {
        0: (-1, V_NS, 0, 0, 0, V_NS),
        1: (0, V_NS + per_hop, *hop),
        2: (1, V_NS + 2 * per_hop, *hop),
    }


def _compact_block(state: GossipState, stages: HopStages) -> dict[int, tuple[int, int, int, int, int, int]]:
    """Messages 0..3 from node 0 (those in ABSENT stay there), then block 0 of them at T0."""
    for m, size in enumerate(MSG_SIZES):
        state.inject(m * 10_000_000, 0, m, k.ITEM_MSG, size)
        if m in ABSENT:
            state.stop_forwarding(k.ITEM_MSG, {m})
    _run(state)
    stages.add(state.drain_hop_log())  # the messages' hops
    state.inject(T0, 0, 0, k.ITEM_BLOCK, 80 + sum(MSG_SIZES), contents=BlockContents.of([0, 1, 2, 3], MSG_SIZES))
    _run(state)
    return _hops(state, stages, block=True)


@pytest.mark.parametrize("high_bandwidth", [0, 2])
def test_a_compact_block_missing_messages_on_a_line_each_stage_to_the_nanosecond(high_bandwidth: int) -> None:
    """Low-bandwidth mode: announced, then asked for; high-bandwidth: the compact block
    comes unasked (to both peers of node 1: the first two of its order). Either way node 1 and node 2 miss the two absent messages (node 1 gets
    them in its round trip and holds them for node 2's)."""
    state = _state(k.COMPACT, high_bandwidth)
    stages = HopStages(3)
    arrivals = _compact_block(state, stages)
    announce, request = (L_NS + C_NS, L_NS + C_NS) if high_bandwidth == 0 else (0, 0)
    hop = (announce, request + L_NS + C_NS, COMPACT_NS + L_NS + MISSING_NS + L_NS, V_NS)
    assert arrivals == {
        0: (-1, T0 + V_NS, 0, 0, 0, V_NS),
        1: (0, T0 + V_NS + sum(hop), *hop),
        2: (1, T0 + V_NS + 2 * sum(hop), *hop),
    }


def test_a_compact_block_whose_nodes_hold_every_message_is_a_transfer_and_a_validation() -> None:
    state = _state(k.COMPACT, high_bandwidth=2)
    stages = HopStages(3)
    for m, size in enumerate(MSG_SIZES):
        state.inject(m * 10_000_000, 0, m, k.ITEM_MSG, size)
    _run(state)
    stages.add(state.drain_hop_log())
    state.inject(T0, 0, 0, k.ITEM_BLOCK, 2000, contents=BlockContents.of([0, 1, 2, 3], MSG_SIZES))
    _run(state)
    hop = (0, 0, COMPACT_NS + L_NS, V_NS)
    assert _hops(state, stages, block=True)[2] == (1, T0 + V_NS + 2 * sum(hop), *hop)


def test_hops_split_across_pieces_of_the_log_give_the_same_stages() -> None:
    """The log handed over a row at a time (a node's steps before its validation kept
    until it comes) gives the rows the whole log gives."""
    state = _state(k.ANNOUNCE_FETCH)
    state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
    _run(state)
    _row_at_a_time_as_whole(state.drain_hop_log(), 3)


def _row_at_a_time_as_whole(log: np.ndarray, nodes: int) -> dict[str, np.ndarray]:
    """The rows of the whole log, checked to be those it gives handed over a row at a time
    (with nothing left pending)."""
    whole = HopStages(nodes).add(log)
    stages = HopStages(nodes)
    pieces = [stages.add(log[:, i:i + 1]) for i in range(log.shape[1])]
    joined = {name: np.concatenate([piece[name] for piece in pieces]) for name in whole}
    for name, column in whole.items():
        assert column.tolist() == joined[name].tolist(), name
    assert stages.pending.shape[1] == 0
    return whole


def test_without_tracing_the_kernel_logs_nothing_and_times_are_the_same() -> None:
    traced, plain = _state(k.ANNOUNCE_FETCH), _state(k.ANNOUNCE_FETCH, trace=False)
    for state in (traced, plain):
        state.inject(0, 0, 0, k.ITEM_MSG, SIZE)
        _run(state)
    assert plain.drain_hop_log().shape[1] == 0
    assert traced.drain_hop_log().shape[1] > 0
    assert traced.drain_deliveries().tolist() == plain.drain_deliveries().tolist()


def test_messages_are_traced_every_hop_stride_th_msg_id_and_about_a_thousand_a_run() -> None:
    topology = Topology(names=["n-0", "n-1", "n-2"], regions=["r"], region_of=[0] * 3, base_ns=[[L_NS]],
                        region_model=[[LinkModel()]], node_overrides={}, forward=LINE, connections=LINE)
    state = GossipState(topology, Constant(value=V_NS), NS_PER_BYTE, np.random.default_rng(1),
                        np.random.default_rng(2), Degradations(3), delivery_stride=1, delivery_budget=10**6,
                        message_relay=np.full(6, k.ANNOUNCE_FETCH, dtype=np.int64), trace_hops=True, hop_stride=3)
    for m in range(7):
        state.inject(m * 1_000_000_000, 0, m, k.ITEM_MSG, SIZE)
    _run(state)
    rows = HopStages(3).add(state.drain_hop_log())
    assert sorted(set(rows["item"].tolist())) == [0, 3, 6]
    assert len(rows["item"]) == 9, "each traced message at every node"
    assert (hop_stride(1, 32), hop_stride(1, 1_000_000), hop_stride(4, 1_000_000), hop_stride(0, 10**6)) == (
        1, 1000, 1000, 0)
    assert hop_stride(3, 10_000) == 3 * 4  # every 12th msg_id: about 830 of 10,000


@pytest.mark.parametrize("relay", [k.ANNOUNCE_FETCH, k.COMPACT])
def test_on_a_complete_graph_a_hop_is_its_steps_up_to_the_validation_however_the_log_is_cut(relay: int) -> None:
    """Six nodes, each the others' peer: a node hears of an item from several peers and is
    sent it again after it validated it. Those later steps are no part of a hop, so the rows
    are the same whether the log comes whole or a row at a time, and each hop's stages sum
    to its node's validation less its sender's."""
    names = [f"n-{i}" for i in range(6)]
    complete = [[j for j in range(6) if j != i] for i in range(6)]
    topology = Topology(names=names, regions=["r"], region_of=[0] * 6, base_ns=[[L_NS]],
                        region_model=[[LinkModel()]], node_overrides={}, forward=complete, connections=complete)
    block_relay = relay if relay == k.COMPACT else k.PUSH
    message_relay = np.full(6, k.PUSH if relay == k.COMPACT else relay, dtype=np.int64)
    state = GossipState(topology, Constant(value=V_NS), NS_PER_BYTE, np.random.default_rng(1),
                        np.random.default_rng(2), Degradations(6), delivery_stride=1, delivery_budget=10**6,
                        order_seed=7, message_relay=message_relay, block_relay=block_relay,
                        relay_timeout_ns=5_000_000_000, control_overhead_ns=C_NS,
                        compact=CompactRelay(HEADER, SHORT_ID, 2), trace_hops=True)
    for m, size in enumerate(MSG_SIZES):
        state.inject(T0 + m * 1_000, m % 6, m, k.ITEM_MSG, size)
    _run(state)
    state.inject(2 * T0, 0, 0, k.ITEM_BLOCK, SIZE, contents=BlockContents.of([0, 1, 2, 3], MSG_SIZES))
    _run(state)
    whole = _row_at_a_time_as_whole(state.drain_hop_log(), 6)
    t_valid = {(bool(b), int(i), int(n)): int(t)
               for b, i, n, t in zip(whole["block"], whole["item"], whole["node"], whole["t"], strict=True)}
    for row in range(len(whole["t"])):
        if whole["sender"][row] < 0:
            continue
        key = (bool(whole["block"][row]), int(whole["item"][row]), int(whole["sender"][row]))
        total = sum(int(whole[f"{name}_ns"][row]) for name in HOP_STAGE_NAMES)
        assert total == int(whole["t"][row]) - t_valid[key], row


def test_a_step_after_the_validation_is_no_part_of_the_hop_in_any_piece_of_the_log() -> None:
    """Node 1 asks node 0 for message 5, is sent it, validates it, and is sent it by node 0
    once more afterwards: its hop ends at the validation, whether the late step comes in the
    same piece of the log or a later one."""
    def row(what: int, node: int, peer: int, t: int, aux: int = -1) -> list[int]:
        return [5, what, node, peer, t, aux]

    steps = [row(k.HOP_VALID, 0, -1, 100, 0),          # the origin validates at 100
             row(k.HOP_SERVE, 1, 0, 130, 120),          # 1 asked at 120 (announced 20 after), 0 has the request at 130
             row(k.HOP_PAYLOAD, 1, 0, 150),             # the payload reaches 1
             row(k.HOP_VALID, 1, 0, 160, 1),            # 1 validates it
             row(k.HOP_PAYLOAD, 1, 0, 190)]             # sent again: after the hop
    log = np.array(steps, dtype=np.int64).T
    expected = {"node": [0, 1], "sender": [-1, 0], "t": [100, 160], "announce_ns": [0, 20],
                "request_ns": [0, 10], "transfer_ns": [0, 20], "validation_ns": [0, 10]}
    for cut in range(1, log.shape[1] + 1):
        stages = HopStages(2)
        pieces = [stages.add(log[:, :cut]), stages.add(log[:, cut:])]
        for name, values in expected.items():
            assert np.concatenate([piece[name] for piece in pieces]).tolist() == values, (cut, name)
        assert stages.pending.shape[1] == 0, cut
