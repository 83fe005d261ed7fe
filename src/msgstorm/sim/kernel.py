"""The gossip kernel: compiled event loop for every receipt in the shadow network.

Place in the pipeline: inside the simulator. ``ShadowNetwork`` keeps the sequencer, blocks,
votes and faults in Python and hands the kernel what it must propagate (a message from its
origin, a block from the leader); the kernel runs receipt events — node CPU, duplicate
receipts, uplink serialisation, link delays, partitions, degradation — in virtual time
until the next Python event is due or until a *watched* node validates an item (the
sequencer for messages, every node for blocks), and then returns so Python handles it at
exactly that time. A standby's validations only fill its mempool: they are logged for
Python to read when it needs the mempool, and the loop runs on.

Why compiled: a gossip receipt is ~10 arithmetic steps, and in CPython the interpreter
overhead of those steps dominates; thousand-node networks produce millions of receipts per
simulated second. numba compiles these functions once (``cache=True`` keeps the machine
code on disk), and all state lives in plain numpy arrays owned by ``GossipState``.

The event queue is a 4-ary min-heap of 16-byte keys ``(t, seq << idx_bits | idx)``: time,
then insertion sequence, decide the order, and ``idx`` names the event's row in a separate
payload array (node, slot, sender, hops and type), so a sift moves two words instead of a
whole event, and a node's four children share one cache line (see ``GossipState``). A
forward's receipts that arrive in send order share one heap entry (a *run*, below). The
hot loop is written for speed: branch-free child selection, counters in locals, flat
arrays with unsigned indices; the comments at each say why.

Randomness is not drawn here: link variations use uniform draws and node processing uses
draws that Python refills from its own seeded generators, so results stay deterministic.
Link delays and degradations come from ``sim/link_model.py``, the one link model the
Python side uses too.

Why one file of over a thousand lines: numba's on-disk cache keys a compiled function on its
own source file, and the event loop compiles every helper it calls into its machine code. A
helper moved to another file and edited there would leave the loop's cached code as it was
(numba does not track a cached function's dependencies), so the loop and its own helpers
stay together here. The link model and the fair order (``sim/link_model.py``,
``sim/fair_order.py``), shared with the Python side, are the exceptions: after an edit there,
clear the cache (``__pycache__/*.nbi``, ``*.nbc`` under ``sim/``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from msgstorm.jit import borrowing, nb
from msgstorm.sim.fair_order import order_key, peer_order
from msgstorm.sim.link_model import degrade, link_delay

__all__ = [
    "RECV", "VALIDATED", "ITEM_MSG", "ITEM_BLOCK", "ITEM_WATCHED", "ITEM_CENSORABLE", "WATCH_ALL", "WATCH_WATCHED",
    "WATCH_LOG", "WATCH_CENSOR", "WATCH_HOLD", "N_HOLD", "N_HOLD_SPREAD", "N_HOLD_COL", "ITEM_INVALID", "S_INVALID",
    "DONE", "NOTIFY", "NEED_UNIFORM", "NEED_PROCESSING", "HEAP_FULL", "DELIVERIES_FULL", "NEED_SLOTS", "LOG_FULL",
    "S_SEND_I", "S_SEND_END", "SEND_T", "SEND_NODE", "SEND_ITEM", "SEND_SIZE", "SEND_KIND",
    "S_HEAP", "S_SEQ", "S_FREE", "S_UNIF", "S_PROC", "S_DELIV", "S_BUDGET",
    "S_STRIDE", "S_NOW", "S_STEPS", "S_NT", "S_NNODE", "S_NSLOT", "S_NSENDER", "S_NHOPS",
    "S_NDEG", "S_RECEIPTS", "S_BLOCK_RECEIPTS", "S_NEXT", "S_NITEM", "S_NKIND",
    "S_IDX_BITS", "S_SEQ_LIMIT", "S_ROWS", "S_ORDER_SEED", "S_TIMEOUT", "S_ANNOUNCES", "S_REQUESTS",
    "S_FALLBACKS", "S_FAIR_SHARE", "S_DOWNLOADS", "S_CONTROL", "S_LOGGED", "LOG_NODE", "LOG_ITEM", "LOG_T", "UPLINK_SERIAL", "UPLINK_FAIR_SHARE", "UPLINK_HELD", "ANNOUNCE", "REQUEST", "TIMEOUT", "PUSH", "ANNOUNCE_FETCH", "PUSH_SQRT", "SEND_RELAY", "ROOT", "P_NEXT", "run_until", "run_until_push", "inject",
    "COMPACT", "CMPCT", "GETTXN", "BLOCKTXN", "S_HIGH_BW", "S_TRACK", "S_CMPCT_DUPS", "S_GETTXN", "S_TXN_MISSING",
    "S_TXN_BYTES", "S_PAYLOADS", "S_TXN_HELD", "S_RECON_FAIL_PPB", "S_RECON_FAILED", "S_VOTE_BASE", "S_VOTE_COUNT", "S_VOTE_TOTAL", "V_HEIGHT", "V_ROUND",
    "V_KIND", "V_POWER", "V_COL_BLOCK", "V_COL_ANY", "V_ROWS", "V_PROPOSAL", "T_HEIGHT", "T_ROUND", "T_FIRST", "S_LOG_BLOCKS", "LOG_KIND", "N_UP_BYTES", "N_UP_MSG_BYTES", "N_COMPACT", "N_ROWS", "SL_CONTENT", "SL_NTX", "SL_FULL_SIZE", "SL_ROWS", "N_SCALARS",
    "HOPS_FULL", "S_HOP_LOG", "S_HOPS_LOGGED", "S_HOP_STRIDE", "HOP_SERVE", "HOP_PAYLOAD", "HOP_VALID", "HOP_BLOCK", "HOP_CODE",
    "H_ITEM", "H_WHAT", "H_NODE", "H_PEER", "H_T", "H_AUX", "H_ROWS",
    "QUIET_FULL", "NEED_RELAYS", "S_QUIET", "S_QUIET_ON", "S_WOKEN", "Q_T", "Q_NODE", "Q_SLOT", "Q_SEQ", "Q_SENDER", "Q_HOPS",
    "Q_ROWS",
]

# Event types: a payload received, validated; and the relay protocols' events (below):
# announce and fetch's announcement, request and its timeout; compact relay's compact block
# received, its request for missing transactions (getblocktxn) and their arrival (blocktxn).
RECV, VALIDATED, ANNOUNCE, REQUEST, TIMEOUT, CMPCT, GETTXN, BLOCKTXN = range(8)
TYPE_BITS, TYPE_MASK = 3, 7
# Relay protocols (scenario/network.py, RELAY_PROTOCOLS): a slot's SL_RELAY.
PUSH, ANNOUNCE_FETCH, PUSH_SQRT, COMPACT = 0, 1, 2, 3
# Bits of ``seen[slot, node]``: the payload arrived, a request for it is in flight, the node
# validated it (and so holds it for peers that ask); compact relay: the node has rebuilt the
# block (it holds every transaction) and its validation is under way.
SEEN_PAYLOAD, SEEN_REQUESTED, SEEN_VALID, SEEN_REBUILT = 1, 2, 4, 8
# Item kinds. A watched message is a message whose validation a reactor sees at the nodes it
# watches (``WATCH_WATCHED``); the leader sees every message (``WATCH_ALL``). A standby's
# validations of messages only fill its mempool, which Python reads when it takes over (a
# fork chain's producer: before it makes a block): they are written to the mempool log
# (``WATCH_LOG``) and the kernel runs on, unless the node also watches the message for a
# reactor (then it hands back as before).
ITEM_MSG, ITEM_BLOCK, ITEM_WATCHED = 0, 1, 2
# A bit of a message's item kind: a censoring node (``WATCH_CENSOR``, a ``censor_nodes``
# fault, sim/censor.py) withholds it (validates it, but neither forwards nor serves it).
ITEM_CENSORABLE = 4
# An invalid item a flooding node sends (``flood_invalid``, sim/flood.py): each receiver
# validates it (a processing draw of its CPU) and drops it; only its origin forwards it.
ITEM_INVALID = 3
# Bits of ``watch[node]``. WATCH_HOLD: a byzantine node that holds each item it validated
# N_HOLD ns plus a uniform draw in [0, N_HOLD_SPREAD) before it forwards it (a
# ``delay_nodes`` or ``reorder_nodes`` fault, sim/byzantine_relay.py).
WATCH_ALL, WATCH_WATCHED, WATCH_LOG, WATCH_CENSOR, WATCH_HOLD = 1, 2, 4, 8, 16
# Return codes of run_until.
DONE, NOTIFY, NEED_UNIFORM, NEED_PROCESSING, HEAP_FULL, DELIVERIES_FULL, NEED_SLOTS, LOG_FULL, HOPS_FULL, \
    QUIET_FULL, NEED_RELAYS = range(11)

# Scalar slots in the ``scalars`` int64 array.
S_HEAP, S_SEQ, S_FREE, S_UNIF, S_PROC, S_DELIV, S_BUDGET, S_STRIDE, S_NOW, S_STEPS = range(10)
S_NT, S_NNODE, S_NSLOT, S_NSENDER, S_NHOPS, S_NDEG, S_RECEIPTS, S_BLOCK_RECEIPTS = range(10, 18)
S_NEXT, S_NITEM, S_NKIND, S_IDX_BITS, S_SEQ_LIMIT, S_ROWS, S_SEND_I, S_SEND_END = range(18, 26)
# The seed of the order in which nodes serve their peers (sim/fair_order.py); the relay's
# request timeout (ns); counts of announcements received, requests served, fallbacks.
S_ORDER_SEED, S_TIMEOUT, S_ANNOUNCES, S_REQUESTS, S_FALLBACKS = range(26, 31)
# 1: the copies of a forward share the uplink (fair share); 0: they queue on it (serial);
# 2 (UPLINK_HELD): they queue, and each holds the uplink until it has arrived.
# 1: some node's download is limited (a copy's time then depends on its receiver).
# The fixed delay (ns) each announcement and request pays on top of its link delay.
S_FAIR_SHARE, S_DOWNLOADS, S_CONTROL = 31, 32, 33
# Compact relay: the peers a node sends a compact block unasked (high-bandwidth mode); 1
# when nodes record the messages they validated (``held``, a bit per node and msg_id);
# counts of compact blocks received by a node that had the block already, getblocktxn
# requests, the transactions they asked for and those transactions' bytes. Payload
# copies sent (pushes and answers to requests), every protocol. Messages of compact blocks
# the receiving node held already (not sent again).
S_HIGH_BW, S_TRACK, S_CMPCT_DUPS, S_GETTXN, S_TXN_MISSING, S_TXN_BYTES, S_PAYLOADS, S_TXN_HELD = range(34, 42)
# Entries in the mempool log (int64[4, capacity]: node, item, time and item kind of the
# logged validations, in order).
S_LOGGED = 42
# Invalid items validated and dropped by their receivers (ITEM_INVALID).
S_INVALID = 47
# 1: a fork chain's block validations are logged too, where Python would only connect the
# block to the node's view (``block_holds``: the node holds the parent's whole branch).
S_LOG_BLOCKS = 43
# 1: write the hop log (below); entries in it; the messages it traces: msg_ids that are
# multiples of this stride (0: none).
S_HOP_LOG, S_HOPS_LOGGED, S_HOP_STRIDE = 44, 45, 46
# Entries in the quiet announcements (below); 1: announcements may be quiet (0: every one
# goes through the heap, the reference the tests compare with).
S_QUIET, S_QUIET_ON = 48, 49
# Quiet announcements put back into the heap because their node forgot its request.
S_WOKEN = 50
# Compact relay: the share of compact blocks a node fails to rebuild although it validated
# every message listed (mempool policy, short-id collisions), in parts per billion; the
# count of such failures (each costs a getblocktxn round trip).
S_RECON_FAIL_PPB, S_RECON_FAILED = 51, 52
# Round-based consensus (``sim/tendermint.py``): the item id of its first proposal or vote
# (0: no consensus votes are counted here), the messages described in ``votes`` and the total
# voting power. See ``_count_vote``.
S_VOTE_BASE, S_VOTE_COUNT, S_VOTE_TOTAL = 53, 54, 55
N_SCALARS = 56
# Rows of ``votes`` (int64[V_ROWS, capacity]), one column a proposal or vote: its height,
# round, kind (V_PROPOSAL: a proposal, else a prevote or precommit), voting power, and the
# columns of ``tally`` it adds to (the votes of its height, round and kind for its block;
# for any block). ``tally`` (int64[nodes, T_FIRST + columns]): each node's height and round
# (T_HEIGHT, T_ROUND), then the voting power it counted in each column. ``votes_held``
# (uint8[nodes, capacity / 8]): bit m & 7 of byte m >> 3 set once a node holds message m,
# so a message sent again (re-gossip after a partition heals, sim/tendermint_gossip.py) is
# counted once.
V_HEIGHT, V_ROUND, V_KIND, V_POWER, V_COL_BLOCK, V_COL_ANY, V_ROWS = range(7)
V_PROPOSAL = 0
T_HEIGHT, T_ROUND, T_FIRST = 0, 1, 2
LOG_NODE, LOG_ITEM, LOG_T, LOG_KIND = 0, 1, 2, 3
UPLINK_SERIAL, UPLINK_FAIR_SHARE, UPLINK_HELD = 0, 1, 2
# Rows of the sends array (int64[5, n]): a traffic batch's messages, in send order.
SEND_T, SEND_NODE, SEND_ITEM, SEND_SIZE, SEND_KIND, SEND_RELAY = range(6)
# The hop log (int64[H_ROWS, capacity], written when S_HOP_LOG is 1; sim/hop_stages.py
# reads it): the steps by which blocks, and the messages whose msg_id is a multiple of
# S_HOP_STRIDE, reach each node, in event order. A row: the item, what happened
# (HOP_CODE bits; HOP_BLOCK set for a block), the node it happened for, its peer, the time
# and one more number. HOP_SERVE: a request of ``node``'s (a getdata, or a compact block's
# getblocktxn) reached ``peer``; AUX: when ``node`` sent it (-1 for a getblocktxn, sent on
# the compact block's arrival). HOP_PAYLOAD: the item's payload (a compact block, or its
# missing messages) from ``peer`` arrived at ``node`` (peer -1: at the origin).
# HOP_VALID: ``node`` validated it, received from ``peer``; AUX: its hops.
HOP_SERVE, HOP_PAYLOAD, HOP_VALID = 0, 1, 2
HOP_CODE, HOP_BLOCK = 3, 4
H_ITEM, H_WHAT, H_NODE, H_PEER, H_T, H_AUX = range(6)
H_ROWS = 6
# Quiet announcements (int64[Q_ROWS, capacity], S_QUIET entries): an announcement sent
# (announce and fetch, push to sqrt(n)) to a peer that holds the payload already, or has
# asked a peer for it, does nothing when it arrives but count itself (if its node is up)
# and release its slot's hold. Such an announcement skips the heap: its arrival time, node,
# slot and sequence number (it takes one as in the heap, so every event keeps the key it
# would have had; a run of receipts ends at it), with its sender and hops, wait here, still
# counted in the slot's SL_OUTSTANDING, and are settled (``_settle_quiet``) once the loop
# has passed them: when it returns (DONE: every event before ``until`` ran; NOTIFY: every
# one before the notice, by time and sequence), or when the buffer fills (those before the
# next event). Node states change only in Python between calls, so each is counted as at
# its arrival, and Python sees the slots held, and the next event's time (S_NEXT), exactly
# as with them in the heap. A node never loses a payload it received except under compact
# relay (a timeout restarts a rebuild), whose announcements all go through the heap; it
# forgets a request only at a timeout with no peer left to ask, and then the quiet
# announcements still to come to it for that item go into the heap with their keys
# (``_wake_quiet``; S_WOKEN counts them), where the first of them starts a new request.
# Most of the Bitcoin preset's events were such announcements. ``GossipState._renumber_keys``
# renumbers their sequence numbers with the heap's.
Q_T, Q_NODE, Q_SLOT, Q_SEQ, Q_SENDER, Q_HOPS = range(6)
Q_ROWS = 6

# Heap keys: int64[2 * (ROOT + capacity)], entry i's time at 2 * (ROOT + i) and its
# seq << idx_bits | idx right after. With the root at ROOT = 3, the children of entry i
# (4i+1..4i+4) start at a multiple of four entries: with the array 64-byte aligned, they
# share one cache line. (Flat arrays and unsigned indices, not [rows, 2] arrays: numba
# indexes a 2-D array with a multiply by its row length and a negative-index check, both
# on the critical path of a sift.)
ROOT = 3
# Payload rows (int64[4 * capacity], row idx at 4 * idx, 32 bytes: an event's fields come
# with one cache line): P_NEXT and P_NEXT_T (below), node | slot << 32, and
# (sender + 1) | hops << 35 | type << 32. ``pool[rows:]`` lists the free rows (S_ROWS rows
# are taken).
P_NEXT, P_NEXT_T, P_NODE_SLOT, P_SENDER_HOPS = range(4)
LOW32 = 0xFFFFFFFF
# Runs: the receipts one forward sends, in send order, get consecutive seqs; while their
# arrival times do not decrease, only the first of them is in the heap, and each row links
# to the next (P_NEXT: its row or -1, P_NEXT_T: its time, kept here rather than in its own
# row so that one cache line gives both). Popping
# a receipt puts its successor (time, seq + 1) in its place. The heap holds about one entry
# per forward instead of one per receipt, so sifts are shorter and stay in L1 cache, and
# the order of events is exactly that of one heap entry per receipt.

# Rows of per-node state (int64[N_ROWS, nodes]); N_UP_BYTES: payload bytes the node has
# put on its uplink (copies, answers to requests, missing transactions); N_HOLD and
# N_HOLD_SPREAD: a holding node's (WATCH_HOLD) fixed hold and the width of its drawn one;
# N_HOLD_COL: its column of ``release`` (int64[slots, holding nodes]: when it releases each
# item it validated while holding, so that it serves a request no earlier), -1 for a node
# that never held. N_UP_MSG_BYTES: the part of N_UP_BYTES that carried messages (pushed or
# sent on request; a relay sample measures each node's share of the relaying with it).
# N_COMPACT: 1 for a node that speaks compact relay (BIP 152); a link carries compact
# blocks only when both its ends do, else the full block (announced, then asked for).
N_CPU, N_UPLINK, N_UP, N_COLOUR, N_UP_BYTES, N_HOLD, N_HOLD_SPREAD, N_HOLD_COL, N_UP_MSG_BYTES, N_COMPACT = range(10)
N_ROWS = 10
# Rows of per-slot state (int64[SL_ROWS, slots]). A compact block's SL_SIZE is its compact
# size and SL_FULL_SIZE its whole size (what a link without compact relay carries); its
# transactions are ``contents[:, SL_CONTENT .. SL_CONTENT + SL_NTX]`` (msg_id, bytes).
SL_ITEM, SL_KIND, SL_OUTSTANDING, SL_SIZE, SL_FORWARD, SL_RELAY, SL_CONTENT, SL_NTX, SL_FULL_SIZE = range(9)
SL_ROWS = 9


@nb.njit(cache=True, inline="always")
def _key_t(keys: np.ndarray, i: int) -> int:
    return keys[nb.uint64(2 * (ROOT + i))]  # type: ignore[no-any-return]


@nb.njit(cache=True, inline="always")
def _key_seq(keys: np.ndarray, i: int) -> int:
    return keys[nb.uint64(2 * (ROOT + i) + 1)]  # type: ignore[no-any-return]


@nb.njit(cache=True, inline="always")
def _set_key(keys: np.ndarray, i: int, t: int, key: int) -> None:
    keys[nb.uint64(2 * (ROOT + i))] = t
    keys[nb.uint64(2 * (ROOT + i) + 1)] = key


@nb.njit(cache=True, inline="always")
def _field(payload: np.ndarray, idx: int, field: int) -> int:
    return payload[nb.uint64(4 * idx + field)]  # type: ignore[no-any-return]


@borrowing(internal=True)
def _sift_up(keys: np.ndarray, i: int, t: int, key: int) -> None:
    """Place key (t, key) at entry ``i`` (a hole) or above: parents move down into the hole."""
    while i > 0:
        parent = (i - 1) >> 2
        pt = _key_t(keys, parent)
        pk = _key_seq(keys, parent)
        if pt < t or (pt == t and pk < key):
            break
        _set_key(keys, i, pt, pk)
        i = parent
    _set_key(keys, i, t, key)


@borrowing(internal=True)
def _smallest_child(keys: np.ndarray, n: int, first: int) -> tuple[int, int, int]:
    """The smallest of the children ``first``.. (at most four, at least one) of a heap of
    ``n`` entries, as (t, key, entry).

    Four children are compared as a tournament of selects, not branches: which child wins
    is unpredictable, a mispredicted branch costs more than the compares. Not inlined by
    numba (LLVM inlines it): that cost each sift's compile about 0.9 s of a cold start. The
    keys are read as ``_key_t`` and ``_key_seq`` read them, written out: numba inlines a
    function anew at each of its calls, twelve here, about 0.4 s of a cold start."""
    if first + 3 < n:
        at = 2 * (ROOT + first)  # the first child's time, then its key, then the next child's
        t0 = keys[nb.uint64(at)]
        k0 = keys[nb.uint64(at + 1)]
        t1 = keys[nb.uint64(at + 2)]
        k1 = keys[nb.uint64(at + 3)]
        t2 = keys[nb.uint64(at + 4)]
        k2 = keys[nb.uint64(at + 5)]
        t3 = keys[nb.uint64(at + 6)]
        k3 = keys[nb.uint64(at + 7)]
        b01 = (t1 < t0) | ((t1 == t0) & (k1 < k0))
        ta = t1 if b01 else t0
        ka = k1 if b01 else k0
        ia = first + 1 if b01 else first
        b23 = (t3 < t2) | ((t3 == t2) & (k3 < k2))
        tb = t3 if b23 else t2
        kb = k3 if b23 else k2
        ib = first + 3 if b23 else first + 2
        bab = (tb < ta) | ((tb == ta) & (kb < ka))
        return (tb if bab else ta), (kb if bab else ka), (ib if bab else ia)
    best = first
    bt = keys[nb.uint64(2 * (ROOT + first))]
    bk = keys[nb.uint64(2 * (ROOT + first) + 1)]
    for c in range(first + 1, n):
        at = 2 * (ROOT + c)
        ct = keys[nb.uint64(at)]
        ck = keys[nb.uint64(at + 1)]
        if ct < bt or (ct == bt and ck < bk):
            best = c
            bt = ct
            bk = ck
    return bt, bk, best


@borrowing(internal=True)
def _sift_down(keys: np.ndarray, n: int, t: int, key: int) -> None:
    """Place (t, key) in a heap of ``n`` entries whose root is a hole: smaller children rise."""
    i = 0
    while 4 * i + 1 < n:
        bt, bk, best = _smallest_child(keys, n, 4 * i + 1)
        if t < bt or (t == bt and key < bk):
            break
        _set_key(keys, i, bt, bk)
        i = best
    _set_key(keys, i, t, key)


@borrowing(internal=True)
def _sift_down_to_leaf(keys: np.ndarray, n: int, t: int, key: int) -> None:
    """As ``_sift_down``, for a (t, key) that belongs near the bottom (the heap's last entry):
    move the hole down to a leaf without comparing, then sift (t, key) up from there. That
    saves a compare per level, since the last entry rarely stops before a leaf."""
    i = 0
    while 4 * i + 1 < n:
        bt, bk, best = _smallest_child(keys, n, 4 * i + 1)
        _set_key(keys, i, bt, bk)
        i = best
    _sift_up(keys, i, t, key)


@nb.njit(cache=True, inline="always")
def _write_row(payload: np.ndarray, idx: int,
               etype: int, node: int, slot: int, sender: int, hops: int) -> None:
    payload[nb.uint64(4 * idx + P_NEXT)] = -1
    payload[nb.uint64(4 * idx + P_NODE_SLOT)] = node | (slot << 32)
    payload[nb.uint64(4 * idx + P_SENDER_HOPS)] = (sender + 1) | (((hops << TYPE_BITS) | etype) << 32)


@nb.njit(cache=True, inline="always")
def _free_row(pool: np.ndarray, rows: int, idx: int) -> int:
    rows -= 1
    pool[nb.uint64(rows)] = idx
    return rows


@nb.njit(cache=True, inline="always")
def _log_hop(hop_log: np.ndarray, i: int, slots: np.ndarray, slot: int, stride: int,
             what: int, node: int, peer: int, t: int, aux: int) -> int:
    """Append a hop log row for a block, or a message whose msg_id is a multiple of
    ``stride`` (S_HOP_STRIDE); return the new count."""
    kind = slots[SL_KIND, slot]
    item = slots[SL_ITEM, slot]
    if kind != ITEM_BLOCK and (stride <= 0 or item % stride != 0):
        return i
    hop_log[H_ITEM, i] = item
    hop_log[H_WHAT, i] = what | (HOP_BLOCK if kind == ITEM_BLOCK else 0)
    hop_log[H_NODE, i] = node
    hop_log[H_PEER, i] = peer
    hop_log[H_T, i] = t
    hop_log[H_AUX, i] = aux
    return i + 1


@borrowing(internal=True)
def _pop(keys: np.ndarray, n: int) -> int:
    """Remove the root (already read; its row freed by the caller); return the new size."""
    n -= 1
    if n > 0:
        _sift_down_to_leaf(keys, n, _key_t(keys, n), _key_seq(keys, n))
    return n


@borrowing()
def inject(keys: np.ndarray, payload: np.ndarray, pool: np.ndarray,
           scalars: np.ndarray, slots: np.ndarray, seen: np.ndarray, free_slots: np.ndarray,
           t: int, node: int, item: int, kind: int, size: int, relay: int, content: int, ntx: int,
           full_size: int) -> int:
    """Start gossip of an item at ``node`` (a receipt from nobody, hop 0), relayed by
    protocol ``relay`` (PUSH, ANNOUNCE_FETCH, PUSH_SQRT, COMPACT); a compact block's
    transactions are ``ntx`` columns of ``contents`` from ``content``, ``size`` its compact
    size and ``full_size`` its whole size.

    Returns 0, or -1 when the heap or the slot pool is full (grow, then call again).
    """
    n = scalars[S_HEAP]
    seq = scalars[S_SEQ]
    rows = scalars[S_ROWS]
    if scalars[S_FREE] == 0 or rows + 1 >= pool.shape[0] or seq + 1 > scalars[S_SEQ_LIMIT]:
        return -1
    scalars[S_FREE] -= 1
    slot = free_slots[scalars[S_FREE]]
    slots[SL_ITEM, slot] = item
    slots[SL_KIND, slot] = kind
    slots[SL_OUTSTANDING, slot] = 1
    slots[SL_SIZE, slot] = size
    slots[SL_FORWARD, slot] = 1
    slots[SL_RELAY, slot] = relay
    slots[SL_CONTENT, slot] = content
    slots[SL_NTX, slot] = ntx
    slots[SL_FULL_SIZE, slot] = full_size
    seen[slot, :] = 0
    idx = pool[rows]
    _write_row(payload, idx, RECV, node, slot, -1, 0)
    _sift_up(keys, n, t, (seq << scalars[S_IDX_BITS]) | idx)
    scalars[S_ROWS] = rows + 1
    scalars[S_HEAP] = n + 1
    scalars[S_SEQ] = seq + 1
    scalars[S_NEXT] = _key_t(keys, 0)
    return 0


def _forwarder(relays: bool) -> Callable[..., tuple[int, int, int, int]]:  # noqa: C901
    """``_forward`` compiled whole (``relays``), or for an item that goes by push
    (``_forward_push``, which the push loop calls: every item it forwards goes by push). As in
    ``_event_loop``, the branches of the relay protocols are left out before numba types it."""

    def forward(t: int, node: int, slot: int, sender: int, hops: int,  # noqa: C901
                keys: np.ndarray, payload: np.ndarray, pool: np.ndarray,
                n: int, rows: int, seq: int, idx_bits: int, unif: int, nodes: np.ndarray,
                slots: np.ndarray,
                fwd_ptr: np.ndarray, fwd_idx: np.ndarray, fwd_base: np.ndarray,
                fwd_model: np.ndarray, fwd_param: np.ndarray, samples: np.ndarray,
                uniform: np.ndarray, ns_per_byte: np.ndarray, n_deg: int,
                deg_nodes: np.ndarray, deg_params: np.ndarray,
                order: np.ndarray, order_seed: int, fair_share: int, downloads: int,
                control: int, high_bw: int, scalars: np.ndarray, seen: np.ndarray,
                quiet: np.ndarray) -> tuple[int, int, int, int]:
        """Send a validated item to ``node``'s forwarding peers, in the node's fair order for the
        item (sim/fair_order.py); return the new (n, rows, seq, unif).

        A payload copy to ``peer`` takes ``size`` × the larger of the node's upload and the
        peer's download ns per byte. Serial uplink: the copies go one after another, after
        what the uplink already had to send. Fair share: the ``k`` copies of this forward start
        together (when the uplink is free) and share the upload equally, each at upload / k or
        its peer's download if that is lower; the uplink is free again when the last ends.
        Held (``fair_share`` = UPLINK_HELD): serial, and the uplink is free again only when the
        copy has arrived. Announcements pay ``control`` ns on top of their link delay. Under
        COMPACT the first ``high_bw`` peers of the order that speak compact relay (N_COMPACT)
        get the compact block (a CMPCT receipt), the rest an announcement; a node that does not
        speak it announces the block to every peer (who asks for the full block). Otherwise an
        announcement to a peer that holds the payload or has asked for it is quiet (see Q_T):
        appended to ``quiet``, which has room for ``degree`` entries."""
        mine = nodes[N_COLOUR, node]
        size = slots[SL_SIZE, slot]
        up = ns_per_byte[0, node]
        free = nodes[N_UPLINK, node]
        sent = 0
        last = -1  # row of the previous receipt sent, the tail of the current run
        last_t = 0
        degree = fwd_ptr[node + 1] - fwd_ptr[node]
        item_kind = slots[SL_KIND, slot] & ~ITEM_CENSORABLE
        peer_order(order_key(order_seed, node, slots[SL_ITEM, slot], item_kind), fwd_ptr[node], degree,
                   order)
        # The first ``pushes`` peers of the order get the payload, the rest an announcement.
        relay = slots[SL_RELAY, slot]
        pushes = degree
        payload_type = RECV
        may_quiet = False
        if relays:
            if relay == ANNOUNCE_FETCH:
                pushes = 0
            elif relay == PUSH_SQRT:
                pushes = 0
                while pushes * pushes < degree:  # ceil(sqrt(degree)) in integers
                    pushes += 1
            elif relay == COMPACT:
                pushes = high_bw if high_bw < degree else degree
                if nodes[N_COMPACT, node] == 0:
                    pushes = 0
            if relay == COMPACT:
                payload_type = CMPCT
            may_quiet = relay != COMPACT and scalars[S_QUIET_ON] != 0
        copies_sent = 0
        start = free if free > t else t  # fair share: when this forward's copies start
        if fair_share == UPLINK_FAIR_SHARE:
            copies = 0
            high_left = pushes
            reach = pushes
            if relays and relay == COMPACT:
                reach = degree
            for c in range(reach):
                peer = fwd_idx[order[c]]
                # The high-bandwidth slots go to peers that speak compact relay.
                if relays and relay == COMPACT:
                    if high_left == 0 or nodes[N_COMPACT, peer] == 0:
                        continue
                    high_left -= 1
                if peer != sender and nodes[N_COLOUR, peer] == mine:
                    copies += 1
            up = up * copies
        tx = int(size * up)  # each copy's time, unless its peer's download is slower
        # COMPACT: high-bandwidth slots left (a slot whose peer is skipped below stays used).
        high_left = pushes
        for c in range(degree):
            e = order[c]
            peer = fwd_idx[e]
            push = c < pushes
            if relays and relay == COMPACT:
                push = high_left > 0 and nodes[N_COMPACT, peer] != 0
                if push:
                    high_left -= 1
            if peer == sender or nodes[N_COLOUR, peer] != mine:
                continue
            d = fwd_base[e]
            model = fwd_model[e]
            if model != 0:  # constant links draw nothing
                d, unif = link_delay(d, model, fwd_param[e], uniform, unif, samples)
            if n_deg > 0:
                d, unif, lost = degrade(d, node, peer, n_deg, deg_nodes, deg_params, uniform, unif)
                if lost:
                    continue
            etype = payload_type
            if downloads != 0:  # a download limit: this peer's copy may take longer
                down = ns_per_byte[1, peer]
                tx = int(size * (up if up >= down else down))
            if relays and not push:  # an announcement: a few bytes, not queued behind payloads
                etype = ANNOUNCE
                arrive = t + d + control
                if may_quiet and seen[slot, peer] & (SEEN_PAYLOAD | SEEN_REQUESTED) != 0:
                    q = scalars[S_QUIET]
                    quiet[Q_T, q] = arrive
                    quiet[Q_NODE, q] = peer
                    quiet[Q_SLOT, q] = slot
                    quiet[Q_SEQ, q] = seq
                    quiet[Q_SENDER, q] = node
                    quiet[Q_HOPS, q] = hops
                    scalars[S_QUIET] = q + 1
                    seq += 1
                    sent += 1
                    # The next receipt's seq is not this run's next: it starts a run of its own.
                    last = -1
                    continue
            elif tx > 0:
                if fair_share == UPLINK_FAIR_SHARE:
                    if start + tx > free:
                        free = start + tx
                    arrive = start + tx + d
                else:
                    if free < t:
                        free = t
                    free += tx
                    arrive = free + d
                    if fair_share == UPLINK_HELD:
                        free = arrive
            else:
                arrive = t + d
            if etype != ANNOUNCE:
                copies_sent += 1
            idx = pool[nb.uint64(rows)]
            rows += 1
            _write_row(payload, idx, etype, peer, slot, node, hops)
            if last >= 0 and arrive >= last_t:  # extends the run: seq is the tail's + 1
                payload[nb.uint64(4 * last + P_NEXT)] = idx
                payload[nb.uint64(4 * last + P_NEXT_T)] = arrive
            else:
                _sift_up(keys, n, arrive, (seq << idx_bits) | idx)
                n += 1
            last = idx
            last_t = arrive
            seq += 1
            sent += 1
        slots[SL_OUTSTANDING, slot] += sent
        nodes[N_UPLINK, node] = free
        nodes[N_UP_BYTES, node] += copies_sent * size
        kind = slots[SL_KIND, slot]
        if kind != ITEM_BLOCK and kind != ITEM_INVALID:
            nodes[N_UP_MSG_BYTES, node] += copies_sent * size
        scalars[S_PAYLOADS] += copies_sent
        return n, rows, seq, unif

    # Each its own name, so that each has its own file in numba's cache.
    forward.__name__ = forward.__qualname__ = "_forward" if relays else "_forward_push"
    return borrowing(internal=True)(forward)


_forward = _forwarder(True)
_forward_push = _forwarder(False)


@borrowing(internal=True)
def _edge(fwd_ptr: np.ndarray, fwd_idx: np.ndarray, node: int, peer: int) -> int:
    """``node``'s edge to ``peer`` in the forwarding graph (-1: none)."""
    for e in range(fwd_ptr[node], fwd_ptr[node + 1]):
        if fwd_idx[e] == peer:
            return e
    return -1


@borrowing(internal=True)
def _link(t: int, node: int, peer: int, nodes: np.ndarray, fwd_ptr: np.ndarray, fwd_idx: np.ndarray,
          fwd_base: np.ndarray, fwd_model: np.ndarray, fwd_param: np.ndarray, samples: np.ndarray, uniform: np.ndarray, unif: int,
          n_deg: int, deg_nodes: np.ndarray, deg_params: np.ndarray) -> tuple[int, int]:
    """The delay of one transmission from ``node`` to ``peer`` and the next uniform; the
    delay is -1 when the link is cut (a partition) or the transmission lost."""
    e = _edge(fwd_ptr, fwd_idx, node, peer)
    if e < 0 or nodes[N_COLOUR, node] != nodes[N_COLOUR, peer]:
        return -1, unif
    d = fwd_base[e]
    if fwd_model[e] != 0:
        d, unif = link_delay(d, fwd_model[e], fwd_param[e], uniform, unif, samples)
    if n_deg > 0:
        d, unif, lost = degrade(d, node, peer, n_deg, deg_nodes, deg_params, uniform, unif)
        if lost:
            return -1, unif
    return d, unif


@borrowing(internal=True)
def _push(keys: np.ndarray, payload: np.ndarray, pool: np.ndarray, n: int, rows: int, seq: int, idx_bits: int,
          slots: np.ndarray, t: int, etype: int, node: int, slot: int, sender: int, hops: int) -> tuple[int, int, int]:
    """One event of its own (not in a run) into the heap; return the new (n, rows, seq)."""
    idx = pool[nb.uint64(rows)]
    _write_row(payload, idx, etype, node, slot, sender, hops)
    _sift_up(keys, n, t, (seq << idx_bits) | idx)
    slots[SL_OUTSTANDING, slot] += 1
    return n + 1, rows + 1, seq + 1


@borrowing(internal=True)
def _ask(t: int, node: int, peer: int, slot: int, hops: int, keys: np.ndarray, payload: np.ndarray,
         pool: np.ndarray, n: int, rows: int, seq: int, idx_bits: int, unif: int, scalars: np.ndarray,
         nodes: np.ndarray, slots: np.ndarray, fwd_ptr: np.ndarray, fwd_idx: np.ndarray, fwd_base: np.ndarray,
         fwd_model: np.ndarray, fwd_param: np.ndarray, samples: np.ndarray, uniform: np.ndarray, n_deg: int, deg_nodes: np.ndarray,
         deg_params: np.ndarray) -> tuple[int, int, int, int]:
    """``node`` asks ``peer`` for ``slot``'s payload: a REQUEST at ``peer`` one link delay
    (plus ``S_CONTROL``) later, unless the link is down, and a TIMEOUT at ``node`` after
    ``S_TIMEOUT`` either way. Returns the new (n, rows, seq, unif)."""
    d, unif = _link(t, node, peer, nodes, fwd_ptr, fwd_idx, fwd_base, fwd_model, fwd_param, samples, uniform, unif,
                    n_deg, deg_nodes, deg_params)
    if d >= 0:
        n, rows, seq = _push(keys, payload, pool, n, rows, seq, idx_bits, slots, t + d + scalars[S_CONTROL],
                             REQUEST, peer, slot, node, hops)
        # The request's row carries when it was sent, for the hop log (P_NEXT_T is free: a row of its own).
        payload[nb.uint64(4 * pool[nb.uint64(rows - 1)] + P_NEXT_T)] = t
    n, rows, seq = _push(keys, payload, pool, n, rows, seq, idx_bits, slots, t + scalars[S_TIMEOUT], TIMEOUT, node,
                         slot, peer, hops)
    return n, rows, seq, unif


@borrowing(internal=True)
def _transfer(t: int, d: int, node: int, peer: int, size: int, scalars: np.ndarray, nodes: np.ndarray,
              ns_per_byte: np.ndarray) -> int:
    """Send ``size`` bytes from ``node`` to ``peer`` on request (a transfer of its own, after
    what ``node``'s uplink already had to send; ``d``: the link delay); return its arrival."""
    up = ns_per_byte[0, node]
    down = ns_per_byte[1, peer]
    tx = int(size * (up if up >= down else down))
    arrive = t + d
    if tx > 0:
        free = nodes[N_UPLINK, node]
        if free < t:
            free = t
        free += tx
        arrive = free + d
        nodes[N_UPLINK, node] = arrive if scalars[S_FAIR_SHARE] == UPLINK_HELD else free
    nodes[N_UP_BYTES, node] += size
    scalars[S_PAYLOADS] += 1
    return arrive


@borrowing(internal=True)
def _missing(held: np.ndarray, contents: np.ndarray, first: int, count: int, node: int) -> tuple[int, int]:
    """How many of a block's transactions (``contents[:, first:first + count]``) ``node``
    has not validated, and their bytes."""
    missing = 0
    missing_bytes = 0
    for c in range(first, first + count):
        item = contents[0, c]
        if held[node, item >> 3] & (1 << (item & 7)) == 0:
            missing += 1
            missing_bytes += contents[1, c]
    return missing, missing_bytes


@borrowing(internal=True)
def _hold_contents(held: np.ndarray, contents: np.ndarray, first: int, count: int, node: int) -> None:
    """``node`` now holds every transaction of a block it rebuilt."""
    for c in range(first, first + count):
        item = contents[0, c]
        held[node, item >> 3] |= 1 << (item & 7)


@borrowing(internal=True)
def _validate_block(t: int, node: int, slot: int, sender: int, hops: int, keys: np.ndarray, payload: np.ndarray,
                    pool: np.ndarray, n: int, rows: int, seq: int, idx_bits: int, proc: int, nodes: np.ndarray,
                    slots: np.ndarray, seen: np.ndarray, processing: np.ndarray) -> tuple[int, int, int, int]:
    """A rebuilt compact block: ``node``'s CPU validates it (after what it had queued) and it
    is VALIDATED then. Returns the new (n, rows, seq, proc)."""
    seen[slot, node] |= SEEN_REBUILT
    start = nodes[N_CPU, node]
    if start < t:
        start = t
    done = start + processing[proc]
    nodes[N_CPU, node] = done
    n, rows, seq = _push(keys, payload, pool, n, rows, seq, idx_bits, slots, done, VALIDATED, node, slot, sender,
                         hops)
    return n, rows, seq, proc + 1


@borrowing(internal=True)
def _compact_event(etype: int, t: int, node: int, slot: int, sender: int, hops: int, asked_bytes: int,
                   keys: np.ndarray, payload: np.ndarray, pool: np.ndarray, n: int, rows: int, seq: int,
                   idx_bits: int, unif: int, proc: int, scalars: np.ndarray, nodes: np.ndarray, slots: np.ndarray,
                   seen: np.ndarray, fwd_ptr: np.ndarray, fwd_idx: np.ndarray, fwd_base: np.ndarray,
                   fwd_model: np.ndarray, fwd_param: np.ndarray, samples: np.ndarray, uniform: np.ndarray, ns_per_byte: np.ndarray,
                   n_deg: int, deg_nodes: np.ndarray, deg_params: np.ndarray, processing: np.ndarray,
                   held: np.ndarray, contents: np.ndarray) -> tuple[int, int, int, int, int]:
    """Compact block relay (BIP 152). CMPCT at ``node`` from ``sender``: the compact block
    (header and short ids) arrived; a node that has it already counts a duplicate and does
    nothing more. Otherwise the node rebuilds the block from the messages it has validated
    (``held``): with none missing it validates the block at once, unless the rebuild fails
    all the same (a share ``S_RECON_FAIL_PPB`` of them, one uniform drawn when the share is
    not 0 and the block not empty: then it asks for its first message); with k missing it asks
    ``sender`` for them (GETTXN, one link delay plus ``S_CONTROL``, and a TIMEOUT after which
    it starts again). GETTXN at ``node`` (the block's holder; ``asked_bytes``: the missing
    transactions' bytes): they go back on its uplink as a transfer of their own (BLOCKTXN).
    BLOCKTXN at ``node``: the block is whole; the node holds its transactions and validates
    it. Only the validation costs CPU. Returns the new (n, rows, seq, unif, proc)."""
    if nodes[N_UP, node] == 0:
        return n, rows, seq, unif, proc
    first = slots[SL_CONTENT, slot]
    count = slots[SL_NTX, slot]
    if etype == CMPCT:
        if seen[slot, node] & (SEEN_PAYLOAD | SEEN_REBUILT) != 0:
            scalars[S_CMPCT_DUPS] += 1
            return n, rows, seq, unif, proc
        seen[slot, node] |= SEEN_PAYLOAD
        missing, missing_bytes = _missing(held, contents, first, count, node)
        scalars[S_TXN_HELD] += count - missing
        if missing == 0 and count > 0 and scalars[S_RECON_FAIL_PPB] > 0:  # an empty block always rebuilds
            failed = uniform[unif] * 1e9 < scalars[S_RECON_FAIL_PPB]
            unif += 1
            if failed:
                scalars[S_RECON_FAILED] += 1
                missing = 1
                missing_bytes = contents[1, first]
                scalars[S_TXN_HELD] -= 1
        if missing == 0:
            n, rows, seq, proc = _validate_block(t, node, slot, sender, hops, keys, payload, pool, n, rows, seq,
                                                 idx_bits, proc, nodes, slots, seen, processing)
            return n, rows, seq, unif, proc
        scalars[S_GETTXN] += 1
        scalars[S_TXN_MISSING] += missing
        d, unif = _link(t, node, sender, nodes, fwd_ptr, fwd_idx, fwd_base, fwd_model, fwd_param, samples, uniform, unif,
                        n_deg, deg_nodes, deg_params)
        if d >= 0:
            n, rows, seq = _push(keys, payload, pool, n, rows, seq, idx_bits, slots, t + d + scalars[S_CONTROL],
                                 GETTXN, sender, slot, node, hops)
            # The request's row carries the bytes asked for (a row of its own: P_NEXT_T is free).
            payload[nb.uint64(4 * pool[nb.uint64(rows - 1)] + P_NEXT_T)] = missing_bytes
        n, rows, seq = _push(keys, payload, pool, n, rows, seq, idx_bits, slots, t + scalars[S_TIMEOUT], TIMEOUT,
                             node, slot, sender, hops)
        return n, rows, seq, unif, proc
    if etype == GETTXN:
        # A holding node answers at once: the peer asks for a block's transactions only after
        # the compact block came from this node, which sent it (or its announcement) at the
        # block's release, and the block's transactions go out with it.
        d, unif = _link(t, node, sender, nodes, fwd_ptr, fwd_idx, fwd_base, fwd_model, fwd_param, samples, uniform, unif,
                        n_deg, deg_nodes, deg_params)
        if d < 0:
            return n, rows, seq, unif, proc
        scalars[S_TXN_BYTES] += asked_bytes
        arrive = _transfer(t, d, node, sender, asked_bytes, scalars, nodes, ns_per_byte)
        n, rows, seq = _push(keys, payload, pool, n, rows, seq, idx_bits, slots, arrive, BLOCKTXN, sender, slot,
                             node, hops)
        return n, rows, seq, unif, proc
    # BLOCKTXN
    if seen[slot, node] & SEEN_REBUILT != 0:
        return n, rows, seq, unif, proc
    _hold_contents(held, contents, first, count, node)
    n, rows, seq, proc = _validate_block(t, node, slot, sender, hops, keys, payload, pool, n, rows, seq, idx_bits,
                                         proc, nodes, slots, seen, processing)
    return n, rows, seq, unif, proc


@borrowing(internal=True)
def _full_block(slot: int, node: int, track: int, seen: np.ndarray, held: np.ndarray, contents: np.ndarray,
                slots: np.ndarray) -> bool:
    """Compact relay's full block at ``node``, over a link an end of which does not speak
    it: whole, so the node holds its messages and validates it, even while it rebuilds a
    compact block from another peer (SEEN_PAYLOAD set); whether it is the node's first."""
    if seen[slot, node] & SEEN_REBUILT != 0:
        return False
    seen[slot, node] |= SEEN_REBUILT
    if track != 0:
        _hold_contents(held, contents, slots[SL_CONTENT, slot], slots[SL_NTX, slot], node)
    return True


@borrowing(internal=True)
def _relay_event(etype: int, t: int, node: int, slot: int, sender: int, hops: int,
                 keys: np.ndarray, payload: np.ndarray, pool: np.ndarray, n: int, rows: int, seq: int,
                 idx_bits: int, unif: int, scalars: np.ndarray, nodes: np.ndarray, slots: np.ndarray,
                 seen: np.ndarray, fwd_ptr: np.ndarray, fwd_idx: np.ndarray, fwd_base: np.ndarray,
                 fwd_model: np.ndarray, fwd_param: np.ndarray, samples: np.ndarray, uniform: np.ndarray, ns_per_byte: np.ndarray,
                 n_deg: int, deg_nodes: np.ndarray, deg_params: np.ndarray, watch: np.ndarray,
                 release: np.ndarray, quiet: np.ndarray, event_seq: int) -> tuple[int, int, int, int]:
    """Announce and fetch. ANNOUNCE at ``node`` from ``sender``: a node that neither holds
    the item nor has asked for it asks ``sender`` (a REQUEST, one link delay) and sets a
    TIMEOUT. REQUEST at ``node`` from ``sender``: the payload goes back on ``node``'s uplink
    (a RECV, as a push would send it; under COMPACT the compact block, a CMPCT, if both
    ends speak compact relay, else the full block, a RECV of SL_FULL_SIZE bytes). TIMEOUT at ``node`` (``sender``: the peer asked): if
    the payload has not arrived, ask the next peer of ``node``'s list that validated the item,
    or, if none has, forget the request so that the next announcement starts one (the quiet
    announcements on their way to ``node`` go back into the heap: ``_wake_quiet``;
    ``event_seq``: the timeout's sequence number).
    Announcements and requests cost no CPU and no uplink time (a few dozen bytes), and pay
    ``S_CONTROL`` ns on top of their link delay. Under a held uplink (``S_FAIR_SHARE`` =
    UPLINK_HELD) a payload keeps the uplink until it has arrived. A holding node
    (``WATCH_HOLD``) answers a request that comes before it releases the item (a peer's
    fallback, which asks any peer that validated it) at the release, as it forwards it.
    Returns the new (n, rows, seq, unif)."""
    if nodes[N_UP, node] == 0:
        return n, rows, seq, unif
    if etype == ANNOUNCE:
        scalars[S_ANNOUNCES] += 1
        if seen[slot, node] & (SEEN_PAYLOAD | SEEN_REQUESTED) != 0:
            return n, rows, seq, unif
        seen[slot, node] |= SEEN_REQUESTED
        return _ask(t, node, sender, slot, hops, keys, payload, pool, n, rows, seq, idx_bits, unif, scalars, nodes,
                    slots, fwd_ptr, fwd_idx, fwd_base, fwd_model, fwd_param, samples, uniform, n_deg, deg_nodes, deg_params)
    if etype == REQUEST:
        scalars[S_REQUESTS] += 1
        d, unif = _link(t, node, sender, nodes, fwd_ptr, fwd_idx, fwd_base, fwd_model, fwd_param, samples, uniform, unif,
                        n_deg, deg_nodes, deg_params)
        if d < 0:
            return n, rows, seq, unif
        # A payload sent on request is a transfer of its own (a fair share of one); under
        # compact relay, the compact block, or the full block where either end of the link
        # does not speak compact relay. A holding node sends it no earlier than its release.
        serve = t
        if (watch[node] & WATCH_HOLD) != 0 and release[slot, nodes[N_HOLD_COL, node]] > t:
            serve = release[slot, nodes[N_HOLD_COL, node]]
        size = slots[SL_SIZE, slot]
        answer = RECV
        if slots[SL_RELAY, slot] == COMPACT:
            if nodes[N_COMPACT, node] != 0 and nodes[N_COMPACT, sender] != 0:
                answer = CMPCT
            else:
                size = slots[SL_FULL_SIZE, slot]
        arrive = _transfer(serve, d, node, sender, size, scalars, nodes, ns_per_byte)
        kind = slots[SL_KIND, slot]
        if kind != ITEM_BLOCK and kind != ITEM_INVALID:
            nodes[N_UP_MSG_BYTES, node] += size
        n, rows, seq = _push(keys, payload, pool, n, rows, seq, idx_bits, slots, arrive, answer, sender, slot, node,
                             hops)
        return n, rows, seq, unif
    # TIMEOUT
    if slots[SL_RELAY, slot] == COMPACT:
        # A compact block not rebuilt by now (its getblocktxn or blocktxn was lost, or the
        # announcer's answer is late): start again, as if nothing had come.
        if seen[slot, node] & SEEN_REBUILT != 0:
            return n, rows, seq, unif
        seen[slot, node] = seen[slot, node] & (0xFF ^ SEEN_PAYLOAD)
    if seen[slot, node] & SEEN_PAYLOAD != 0:
        return n, rows, seq, unif
    first = fwd_ptr[node]
    degree = fwd_ptr[node + 1] - first
    asked = _edge(fwd_ptr, fwd_idx, node, sender)
    start = asked - first + 1 if asked >= 0 else 0  # the peers after the one asked, in list order
    for c in range(degree - 1 if asked >= 0 else degree):
        peer = fwd_idx[first + (start + c) % degree]
        if seen[slot, peer] & SEEN_VALID == 0 or nodes[N_UP, peer] == 0:
            continue
        scalars[S_FALLBACKS] += 1
        return _ask(t, node, peer, slot, hops, keys, payload, pool, n, rows, seq, idx_bits, unif, scalars, nodes,
                    slots, fwd_ptr, fwd_idx, fwd_base, fwd_model, fwd_param, samples, uniform, n_deg, deg_nodes, deg_params)
    seen[slot, node] = seen[slot, node] & (0xFF ^ SEEN_REQUESTED)
    n, rows = _wake_quiet(t, event_seq, node, slot, quiet, scalars, keys, payload, pool, n, rows, idx_bits)
    return n, rows, seq, unif


@borrowing(internal=True)
def _settle_quiet(bound: int, bound_seq: int, quiet: np.ndarray, scalars: np.ndarray, nodes: np.ndarray,
                  slots: np.ndarray, free_slots: np.ndarray, n_free: int) -> int:
    """Settle the quiet announcements (Q_T) that come before (``bound``, ``bound_seq``) in
    the heap's order (time, then sequence number): each counts as an announcement received
    if its node is up, and releases its slot (freed when nothing else holds it). The rest
    stay, in order. Returns the new count of free slots."""
    kept = 0
    for i in range(scalars[S_QUIET]):
        t = quiet[Q_T, i]
        node = quiet[Q_NODE, i]
        slot = quiet[Q_SLOT, i]
        seq = quiet[Q_SEQ, i]
        if t > bound or (t == bound and seq >= bound_seq):
            if kept != i:
                for r in range(Q_ROWS):
                    quiet[r, kept] = quiet[r, i]
            kept += 1
            continue
        if nodes[N_UP, node] != 0:
            scalars[S_ANNOUNCES] += 1
        slots[SL_OUTSTANDING, slot] -= 1
        if slots[SL_OUTSTANDING, slot] == 0:
            free_slots[n_free] = slot
            n_free += 1
    scalars[S_QUIET] = kept
    return n_free


@borrowing(internal=True)
def _wake_quiet(t: int, after_seq: int, node: int, slot: int, quiet: np.ndarray, scalars: np.ndarray,
                keys: np.ndarray, payload: np.ndarray, pool: np.ndarray, n: int, rows: int, idx_bits: int) -> tuple[int, int]:
    """``node`` forgot its request for ``slot``'s item at the event (``t``, ``after_seq``):
    the quiet announcements of that item still to come to it (after that event, by time and
    sequence) go into the heap as ANNOUNCE events with the keys they were given, the rest
    stay. At most one per peer that forwards to ``node``. Returns the new (n, rows)."""
    kept = 0
    for i in range(scalars[S_QUIET]):
        q_t = quiet[Q_T, i]
        if (quiet[Q_NODE, i] == node and quiet[Q_SLOT, i] == slot
                and (q_t > t or (q_t == t and quiet[Q_SEQ, i] > after_seq))):
            idx = pool[nb.uint64(rows)]
            rows += 1
            _write_row(payload, idx, ANNOUNCE, node, slot, quiet[Q_SENDER, i], quiet[Q_HOPS, i])
            _sift_up(keys, n, q_t, (quiet[Q_SEQ, i] << idx_bits) | idx)
            n += 1
            scalars[S_WOKEN] += 1
            continue
        if kept != i:
            for r in range(Q_ROWS):
                quiet[r, kept] = quiet[r, i]
        kept += 1
    scalars[S_QUIET] = kept
    return n, rows


@borrowing(internal=True)
def _first_quiet(quiet: np.ndarray, scalars: np.ndarray) -> int:
    """The earliest quiet announcement's time (-1: none)."""
    first = -1
    for i in range(scalars[S_QUIET]):
        if first < 0 or quiet[Q_T, i] < first:
            first = quiet[Q_T, i]
    return first


@borrowing(internal=True)
def _count_vote(node: int, m: int, hops: int, votes: np.ndarray, tally: np.ndarray, total: int,
                votes_held: np.ndarray) -> bool:
    """A consensus message ``m`` validated at ``node``: whether Python must hear of it now.

    What ``TendermintBook.received`` would do with it, without Python where nothing can
    change: the sender's own (``hops`` 0) was counted by Python when sent; one the node holds
    already (``votes_held``: re-gossip brought it first) is dropped, and so is one of an
    earlier height than the node's; a vote of the node's height and of its round
    or an earlier one adds its power to the node's two counts (its block's, any block's) and
    hands back only when one of them passes two thirds of ``total`` (the only counts the
    upon-rules compare, with a proposal or a timer that comes back anyway). A proposal, a
    later height or a later round hands back: Python keeps those."""
    if hops == 0:
        return False
    byte = m >> 3
    bit = 1 << (m & 7)
    if votes_held[node, byte] & bit != 0:
        return False
    votes_held[node, byte] |= bit
    height = votes[V_HEIGHT, m]
    at = tally[node, T_HEIGHT]
    if height < at:
        return False
    if height > at or votes[V_KIND, m] == V_PROPOSAL or votes[V_ROUND, m] > tally[node, T_ROUND]:
        return True
    power: int = votes[V_POWER, m]
    col = votes[V_COL_BLOCK, m]
    before: int = tally[node, col]
    tally[node, col] = before + power
    passed = 3 * before <= 2 * total < 3 * (before + power)
    col = votes[V_COL_ANY, m]
    before = tally[node, col]
    tally[node, col] = before + power
    return passed or 3 * before <= 2 * total < 3 * (before + power)


def _event_loop(relays: bool) -> Callable[..., int]:  # noqa: C901
    """The event loop, compiled whole (``relays``) or without the relay protocols' events
    (announce and fetch, compact relay), their quiet announcements, the hop log and
    consensus votes. The loop without them is the same code with those branches left out
    before numba types it (a constant of the closure: numba prunes the branches and never
    compiles the functions only they call), about 40% less to compile. It runs a network
    whose items all go by push: it hands back ``NEED_RELAYS``, before it takes the event, at
    the first receipt of an item of another protocol (or at once, with the hop log, votes or
    quiet announcements on), and the caller goes on with the whole loop
    (``GossipState.run``)."""

    def run_until(until: int, max_degree: int,  # noqa: C901
                  keys: np.ndarray, payload: np.ndarray, pool: np.ndarray,
                  scalars: np.ndarray, nodes: np.ndarray, slots: np.ndarray,
                  seen: np.ndarray, free_slots: np.ndarray, watch: np.ndarray,
                  fwd_ptr: np.ndarray, fwd_idx: np.ndarray, fwd_base: np.ndarray,
                  fwd_model: np.ndarray, fwd_param: np.ndarray, samples: np.ndarray, uniform: np.ndarray,
                  processing: np.ndarray, ns_per_byte: np.ndarray,
                  deg_nodes: np.ndarray, deg_params: np.ndarray,
                  deliveries: np.ndarray, mempool_log: np.ndarray, sends: np.ndarray,
                  order: np.ndarray,
                  held: np.ndarray, contents: np.ndarray, block_parent: np.ndarray, block_holds: np.ndarray,
                  hop_log: np.ndarray, release: np.ndarray, quiet: np.ndarray, votes: np.ndarray,
                  tally: np.ndarray, votes_held: np.ndarray) -> int:
        """Run kernel events with time < ``until``; stop early to report a watched validation.

        Sends ``S_SEND_I`` .. ``S_SEND_END - 1`` of ``sends`` (Python allows a range when
        nothing else needs it first) start gossip at their times, before any receipt at the
        same time, as ``ShadowNetwork`` orders them; a send from a node that is down is lost.
        A message validated at a ``WATCH_LOG`` node that does not hand it back is appended to
        ``mempool_log`` (S_LOGGED entries).
        With ``S_LOG_BLOCKS`` set, a block validated at a node that holds its parent's branch
        (``block_holds[block_parent[block], node] == 1``; genesis is block 0) is held there
        from then on and logged instead of handed back; one the node holds or keeps waiting
        for its parent already (``block_holds`` 1 or 2) is dropped (the fork chain would
        ignore it). Any other block (parent missing, or a vote's item id past
        ``block_parent``) hands back: Python asks for the parent.
        With ``S_TRACK`` set, a node's validation of a message sets its bit in ``held[node]``
        (compact relay rebuilds blocks from them; ``contents`` lists the blocks' messages).
        With ``S_HOP_LOG`` set, each step of a block or a sampled message at a node is
        appended to ``hop_log`` (S_HOPS_LOGGED entries; see HOP_SERVE). Quiet announcements
        wait in ``quiet`` (see Q_T). With ``S_VOTE_BASE`` set, a consensus vote is counted in
        ``tally``, marked held in ``votes_held``, and hands back only when Python must hear of it
        (``_count_vote``).
        Returns DONE, NOTIFY (the event is described in S_NT..S_NHOPS), or a NEED_*/FULL code
        asking Python to refill a buffer or grow the heap before calling again.
        """
        # The counters live in locals for the whole loop and go back to ``scalars`` on return:
        # through the array, every event would reload them (the compiler cannot tell that the
        # other int64 arrays written in between do not alias it).
        n = scalars[S_HEAP]
        rows = scalars[S_ROWS]
        seq = scalars[S_SEQ]
        unif = scalars[S_UNIF]
        proc = scalars[S_PROC]
        deliv = scalars[S_DELIV]
        n_free = scalars[S_FREE]
        budget = scalars[S_BUDGET]
        steps = scalars[S_STEPS]
        receipts = scalars[S_RECEIPTS]
        block_receipts = scalars[S_BLOCK_RECEIPTS]
        now = scalars[S_NOW]
        stride = scalars[S_STRIDE]
        n_deg = scalars[S_NDEG]
        order_seed = scalars[S_ORDER_SEED]
        fair_share = scalars[S_FAIR_SHARE]
        control = scalars[S_CONTROL]
        downloads = scalars[S_DOWNLOADS]
        high_bw = scalars[S_HIGH_BW]
        track = scalars[S_TRACK]
        idx_bits = scalars[S_IDX_BITS]
        idx_mask = (1 << idx_bits) - 1
        # An event adds at most max_degree entries; the seq limit keeps seq << idx_bits in an int64.
        row_room = pool.shape[0] - max_degree - 2
        seq_room = scalars[S_SEQ_LIMIT] - max_degree - 2
        # Enough uniforms for the largest fan-out (delay, degradation loss and jitter each).
        uniform_room = uniform.shape[0] - 6 * (max_degree + 1) * (1 + n_deg)
        n_processing = processing.shape[0]
        n_deliveries = deliveries.shape[1]
        logged = scalars[S_LOGGED]
        n_log = mempool_log.shape[1]
        log_blocks = scalars[S_LOG_BLOCKS]
        n_blocks = block_parent.shape[0]
        send_i = scalars[S_SEND_I]
        send_end = scalars[S_SEND_END]
        hop_on = scalars[S_HOP_LOG]
        hop_n = scalars[S_HOPS_LOGGED]
        hop_stride = scalars[S_HOP_STRIDE]
        n_hop = hop_log.shape[1]
        quiet_room = quiet.shape[1] - max_degree
        vote_base = scalars[S_VOTE_BASE]
        vote_count = scalars[S_VOTE_COUNT]
        vote_total = scalars[S_VOTE_TOTAL]
        key = 0  # the last event's key (a NOTIFY's when the loop ends with one)
        code = DONE
        if not relays and (hop_on != 0 or vote_base > 0 or scalars[S_QUIET] != 0):
            return NEED_RELAYS  # the hop log, votes or quiet announcements: the whole loop
        while True:
            if send_i < send_end:
                ts = sends[SEND_T, send_i]
                if ts < until and (n == 0 or ts <= _key_t(keys, 0)):
                    # A send goes before any receipt at its time: gossip starts at its origin.
                    if relays and n_free == 0:  # quiet announcements before it may release some
                        n_free = _settle_quiet(ts, 0, quiet, scalars, nodes, slots, free_slots,
                                               n_free)
                    if n_free == 0:
                        code = NEED_SLOTS
                        break
                    if rows > row_room or seq > seq_room:
                        code = HEAP_FULL
                        break
                    origin = sends[SEND_NODE, send_i]
                    if nodes[N_UP, origin] != 0:
                        n_free -= 1
                        slot = free_slots[n_free]
                        slots[SL_ITEM, slot] = sends[SEND_ITEM, send_i]
                        slots[SL_KIND, slot] = sends[SEND_KIND, send_i]
                        slots[SL_OUTSTANDING, slot] = 1
                        slots[SL_SIZE, slot] = sends[SEND_SIZE, send_i]
                        slots[SL_FORWARD, slot] = 1
                        slots[SL_RELAY, slot] = sends[SEND_RELAY, send_i]
                        slots[SL_NTX, slot] = 0
                        seen[slot, :] = 0
                        idx = pool[rows]
                        _write_row(payload, idx, RECV, origin, slot, -1, 0)
                        _sift_up(keys, n, ts, (seq << idx_bits) | idx)
                        rows += 1
                        n += 1
                        seq += 1
                    send_i += 1
                    now = ts
                    continue
            if n == 0:
                break
            t = _key_t(keys, 0)
            if t >= until:
                break
            if unif > uniform_room:
                code = NEED_UNIFORM
                break
            if proc >= n_processing:
                code = NEED_PROCESSING
                break
            if rows > row_room or seq > seq_room:
                code = HEAP_FULL
                break
            if deliv >= n_deliveries:
                code = DELIVERIES_FULL
                break
            if logged >= n_log:
                code = LOG_FULL
                break
            if relays and hop_on != 0 and hop_n >= n_hop:
                code = HOPS_FULL
                break
            if relays and scalars[S_QUIET] > quiet_room:
                # Those before this event have arrived; if that is not room enough, Python grows the buffer.
                n_free = _settle_quiet(t, _key_seq(keys, 0) >> idx_bits, quiet, scalars, nodes, slots, free_slots,
                                       n_free)
                if scalars[S_QUIET] > quiet_room:
                    code = QUIET_FULL
                    break
            key = _key_seq(keys, 0)
            idx = key & idx_mask
            node_slot = _field(payload, idx, P_NODE_SLOT)
            if not relays and slots[SL_RELAY, node_slot >> 32] != PUSH:
                code = NEED_RELAYS  # the event stays first in the heap, untouched
                break
            sender_hops = _field(payload, idx, P_SENDER_HOPS)
            after = _field(payload, idx, P_NEXT)
            node = node_slot & LOW32
            slot = node_slot >> 32
            sender = (sender_hops & LOW32) - 1
            hops_type = sender_hops >> 32
            hops = hops_type >> TYPE_BITS
            etype = hops_type & TYPE_MASK
            now = t
            steps += 1
            if etype == RECV:
                if slots[SL_KIND, slot] != ITEM_BLOCK:
                    receipts += 1
                else:
                    block_receipts += 1
                if nodes[N_UP, node] != 0:
                    start = nodes[N_CPU, node]
                    if start < t:
                        start = t
                    done = start + processing[proc]
                    proc += 1
                    nodes[N_CPU, node] = done
                    fresh = seen[slot, node] & SEEN_PAYLOAD == 0
                    if (relays and sender >= 0 and slots[SL_RELAY, slot] == COMPACT
                            and slots[SL_KIND, slot] == ITEM_BLOCK):
                        fresh = _full_block(slot, node, track, seen, held, contents, slots)
                    if fresh:
                        seen[slot, node] |= SEEN_PAYLOAD
                        if relays and hop_on != 0:
                            hop_n = _log_hop(hop_log, hop_n, slots, slot, hop_stride, HOP_PAYLOAD, node, sender, t, -1)
                        # The validation completes at ``done``; keep the slot alive until then.
                        # It takes the receipt's place: the root's payload row and one sift down
                        # instead of a pop and a push; the rest of the run goes back in.
                        after_t = _field(payload, idx, P_NEXT_T)
                        validated = sender_hops | (VALIDATED << 32)
                        payload[nb.uint64(4 * idx + P_SENDER_HOPS)] = validated
                        payload[nb.uint64(4 * idx + P_NEXT)] = -1
                        _sift_down(keys, n, done, (seq << idx_bits) | idx)
                        seq += 1
                        if after >= 0:
                            _sift_up(keys, n, after_t,
                                     (((key >> idx_bits) + 1) << idx_bits) | after)
                            n += 1
                        continue
                if after >= 0:
                    # The next receipt of the run takes this one's place; it is due soon after
                    # (a serialisation time later), so it sifts down from the top.
                    _sift_down(keys, n, _field(payload, idx, P_NEXT_T),
                               (((key >> idx_bits) + 1) << idx_bits) | after)
                else:
                    n = _pop(keys, n)
                rows = _free_row(pool, rows, idx)
                slots[SL_OUTSTANDING, slot] -= 1
                if slots[SL_OUTSTANDING, slot] == 0:
                    free_slots[n_free] = slot
                    n_free += 1
                continue
            if relays and etype != VALIDATED:
                # A relay protocol's event: out of the heap (its run's next in its place),
                # then handled. ``extra``: a getblocktxn's bytes (its row is freed below).
                extra = _field(payload, idx, P_NEXT_T)
                if after >= 0:
                    _sift_down(keys, n, extra, (((key >> idx_bits) + 1) << idx_bits) | after)
                else:
                    n = _pop(keys, n)
                rows = _free_row(pool, rows, idx)
                if hop_on != 0 and nodes[N_UP, node] != 0:
                    if etype == REQUEST or etype == GETTXN:  # ``sender`` asked ``node``
                        hop_n = _log_hop(hop_log, hop_n, slots, slot, hop_stride, HOP_SERVE, sender, node, t,
                                         extra if etype == REQUEST else -1)
                    elif ((etype == CMPCT and seen[slot, node] & (SEEN_PAYLOAD | SEEN_REBUILT) == 0)
                          or (etype == BLOCKTXN and seen[slot, node] & SEEN_REBUILT == 0)):
                        hop_n = _log_hop(hop_log, hop_n, slots, slot, hop_stride, HOP_PAYLOAD, node, sender, t, -1)
                if etype < CMPCT:
                    n, rows, seq, unif = _relay_event(etype, t, node, slot, sender, hops, keys, payload, pool, n, rows,
                                                      seq, idx_bits, unif, scalars, nodes, slots, seen, fwd_ptr, fwd_idx,
                                                      fwd_base, fwd_model, fwd_param, samples, uniform, ns_per_byte, n_deg,
                                                      deg_nodes, deg_params, watch, release, quiet, key >> idx_bits)
                else:
                    if etype == CMPCT:
                        block_receipts += 1
                    n, rows, seq, unif, proc = _compact_event(etype, t, node, slot, sender, hops, extra, keys, payload,
                                                              pool, n, rows, seq, idx_bits, unif, proc, scalars, nodes,
                                                              slots, seen, fwd_ptr, fwd_idx, fwd_base, fwd_model,
                                                              fwd_param, samples, uniform, ns_per_byte, n_deg,
                                                              deg_nodes, deg_params, processing, held, contents)
                slots[SL_OUTSTANDING, slot] -= 1
                if slots[SL_OUTSTANDING, slot] == 0:
                    free_slots[n_free] = slot
                    n_free += 1
                continue
            # VALIDATED (never part of a run)
            n = _pop(keys, n)
            rows = _free_row(pool, rows, idx)
            notify = False
            if nodes[N_UP, node] != 0:
                if relays and hop_on != 0:
                    hop_n = _log_hop(hop_log, hop_n, slots, slot, hop_stride, HOP_VALID, node, sender, t, hops)
                kind = slots[SL_KIND, slot]
                withheld = (kind & ITEM_CENSORABLE) != 0 and (watch[node] & WATCH_CENSOR) != 0
                if kind == ITEM_INVALID and hops > 0:  # a receiver validated a flooded invalid item: dropped
                    withheld = True
                    scalars[S_INVALID] += 1
                if slots[SL_RELAY, slot] != PUSH and not withheld:  # announce's fallback asks peers that validated it
                    seen[slot, node] |= SEEN_VALID
                item = slots[SL_ITEM, slot]
                if kind != ITEM_BLOCK and kind != ITEM_INVALID:
                    if track != 0:
                        held[node, item >> 3] |= 1 << (item & 7)
                    if stride > 0 and item % stride == 0 and budget > 0:
                        budget -= 1
                        deliveries[0, deliv] = item
                        deliveries[1, deliv] = node
                        deliveries[2, deliv] = t
                        deliveries[3, deliv] = hops
                        deliv += 1
                    watching = watch[node]
                    notify = (watching & WATCH_ALL) != 0 or ((kind & ITEM_WATCHED) != 0
                                                             and (watching & WATCH_WATCHED) != 0)
                    if not notify and (watching & WATCH_LOG) != 0:
                        mempool_log[LOG_NODE, logged] = node
                        mempool_log[LOG_ITEM, logged] = item
                        mempool_log[LOG_T, logged] = t
                        mempool_log[LOG_KIND, logged] = kind
                        logged += 1
                elif kind == ITEM_BLOCK and log_blocks != 0 and item < n_blocks:
                    # What ForkChain.validated_block would do without a fetch: skip a block the
                    # view holds, or connect one whose parent's branch it holds (logged, and
                    # applied in order when the kernel returns).
                    if block_holds[item, node] == 0:
                        if block_holds[block_parent[item], node] == 1:
                            block_holds[item, node] = 1
                            mempool_log[LOG_NODE, logged] = node
                            mempool_log[LOG_ITEM, logged] = item
                            mempool_log[LOG_T, logged] = t
                            mempool_log[LOG_KIND, logged] = ITEM_BLOCK
                            logged += 1
                        else:
                            notify = True
                elif kind == ITEM_BLOCK:
                    if relays and vote_base > 0 and vote_base <= item < vote_base + vote_count:
                        notify = _count_vote(node, item - vote_base, hops, votes, tally, vote_total, votes_held)
                    else:
                        notify = True
                if slots[SL_FORWARD, slot] != 0 and not withheld:
                    t_forward = t
                    if (watch[node] & WATCH_HOLD) != 0:  # a byzantine node holds the item first
                        t_forward += nodes[N_HOLD, node]
                        spread = nodes[N_HOLD_SPREAD, node]
                        if spread > 0:
                            t_forward += int(uniform[unif] * spread)
                            unif += 1
                        release[slot, nodes[N_HOLD_COL, node]] = t_forward  # what it serves waits as long
                    if relays:
                        n, rows, seq, unif = _forward(
                            t_forward, node, slot, sender, hops + 1, keys, payload, pool, n, rows,
                            seq, idx_bits, unif, nodes, slots, fwd_ptr, fwd_idx, fwd_base, fwd_model,
                            fwd_param, samples, uniform, ns_per_byte, n_deg, deg_nodes, deg_params, order,
                            order_seed, fair_share, downloads, control, high_bw, scalars, seen, quiet)
                    else:  # every item this loop forwards goes by push
                        n, rows, seq, unif = _forward_push(
                            t_forward, node, slot, sender, hops + 1, keys, payload, pool, n, rows,
                            seq, idx_bits, unif, nodes, slots, fwd_ptr, fwd_idx, fwd_base, fwd_model,
                            fwd_param, samples, uniform, ns_per_byte, n_deg, deg_nodes, deg_params, order,
                            order_seed, fair_share, downloads, control, high_bw, scalars, seen, quiet)
            slots[SL_OUTSTANDING, slot] -= 1
            if notify:
                scalars[S_NT] = t
                scalars[S_NNODE] = node
                scalars[S_NSLOT] = slot
                scalars[S_NSENDER] = sender
                scalars[S_NHOPS] = hops
                scalars[S_NITEM] = slots[SL_ITEM, slot]
                scalars[S_NKIND] = slots[SL_KIND, slot]
                if slots[SL_OUTSTANDING, slot] == 0:
                    free_slots[n_free] = slot
                    n_free += 1
                code = NOTIFY
                break
            if slots[SL_OUTSTANDING, slot] == 0:
                free_slots[n_free] = slot
                n_free += 1
        if relays and code == DONE:  # every event before ``until`` ran
            n_free = _settle_quiet(until, 0, quiet, scalars, nodes, slots, free_slots, n_free)
        if relays and code == NOTIFY:  # every event before the notice ran (``key``: the notice's)
            n_free = _settle_quiet(now, key >> idx_bits, quiet, scalars, nodes, slots, free_slots, n_free)
        scalars[S_HEAP] = n
        scalars[S_ROWS] = rows
        scalars[S_SEQ] = seq
        scalars[S_UNIF] = unif
        scalars[S_PROC] = proc
        scalars[S_DELIV] = deliv
        scalars[S_FREE] = n_free
        scalars[S_BUDGET] = budget
        scalars[S_STEPS] = steps
        scalars[S_RECEIPTS] = receipts
        scalars[S_BLOCK_RECEIPTS] = block_receipts
        scalars[S_NOW] = now
        scalars[S_SEND_I] = send_i
        scalars[S_LOGGED] = logged
        scalars[S_HOPS_LOGGED] = hop_n
        # The next receipt's time, for Python (a quiet announcement's, if that comes first).
        next_t = _key_t(keys, 0) if n > 0 else -1
        first_quiet = _first_quiet(quiet, scalars) if relays else -1
        if first_quiet >= 0 and (next_t < 0 or first_quiet < next_t):
            next_t = first_quiet
        scalars[S_NEXT] = next_t
        return code

    # Each its own name, so that each has its own file in numba's cache (sim/warm.py tells
    # by the file whether a loop is compiled).
    run_until.__name__ = run_until.__qualname__ = "run_until" if relays else "run_until_push"
    return borrowing(error_model="numpy")(run_until)


# The loop for every protocol, and the one for networks whose items all go by push.
run_until = _event_loop(True)
run_until_push = _event_loop(False)
