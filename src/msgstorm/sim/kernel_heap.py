"""The gossip kernel's arrays and heap: what every array ``GossipState`` shares with the
kernel holds (the constants naming its rows, columns, codes and flags), and the 4-ary
event heap's primitives.

Place in the pipeline: inside the simulator, under ``sim/kernel.py`` (the event loop) and
``sim/kernel_relay.py`` (the relay protocols' events); ``sim/gossip.py`` builds the arrays
by these names (through ``sim/kernel.py``, which re-exports them). The heap's layout and
why it is written by hand are in ``sim/kernel.py``'s docstring.
"""

from __future__ import annotations

import numpy as np

from msgstorm.jit import borrowing, nb

__all__: list[str] = []  # imported by name: sim/kernel.py re-exports the public ones

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
    QUIET_FULL = range(10)

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
N_SCALARS = 51
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
N_CPU, N_UPLINK, N_UP, N_COLOUR, N_UP_BYTES, N_HOLD, N_HOLD_SPREAD, N_HOLD_COL, N_UP_MSG_BYTES = range(9)
N_ROWS = 9
# Rows of per-slot state (int64[SL_ROWS, slots]). A compact block's SL_SIZE is its compact
# size; its transactions are ``contents[:, SL_CONTENT .. SL_CONTENT + SL_NTX]`` (msg_id, bytes).
SL_ITEM, SL_KIND, SL_OUTSTANDING, SL_SIZE, SL_FORWARD, SL_RELAY, SL_CONTENT, SL_NTX = range(8)
SL_ROWS = 8


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


@borrowing()
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


@nb.njit(cache=True, inline="always")
def _smallest_child(keys: np.ndarray, n: int, first: int) -> tuple[int, int, int]:
    """The smallest of the children ``first``.. (at most four, at least one) of a heap of
    ``n`` entries, as (t, key, entry).

    Four children are compared as a tournament of selects, not branches: which child wins
    is unpredictable, and a mispredicted branch costs more than the compares.
    """
    if first + 3 < n:
        t0 = _key_t(keys, first)
        k0 = _key_seq(keys, first)
        t1 = _key_t(keys, first + 1)
        k1 = _key_seq(keys, first + 1)
        t2 = _key_t(keys, first + 2)
        k2 = _key_seq(keys, first + 2)
        t3 = _key_t(keys, first + 3)
        k3 = _key_seq(keys, first + 3)
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
    bt = _key_t(keys, first)
    bk = _key_seq(keys, first)
    for c in range(first + 1, n):
        ct = _key_t(keys, c)
        ck = _key_seq(keys, c)
        if ct < bt or (ct == bt and ck < bk):
            best = c
            bt = ct
            bk = ck
    return bt, bk, best


@borrowing()
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


@borrowing()
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


@borrowing()
def _pop(keys: np.ndarray, n: int) -> int:
    """Remove the root (already read; its row freed by the caller); return the new size."""
    n -= 1
    if n > 0:
        _sift_down_to_leaf(keys, n, _key_t(keys, n), _key_seq(keys, n))
    return n


@borrowing()
def _push(keys: np.ndarray, payload: np.ndarray, pool: np.ndarray, n: int, rows: int, seq: int, idx_bits: int,
          slots: np.ndarray, t: int, etype: int, node: int, slot: int, sender: int, hops: int) -> tuple[int, int, int]:
    """One event of its own (not in a run) into the heap; return the new (n, rows, seq)."""
    idx = pool[nb.uint64(rows)]
    _write_row(payload, idx, etype, node, slot, sender, hops)
    _sift_up(keys, n, t, (seq << idx_bits) | idx)
    slots[SL_OUTSTANDING, slot] += 1
    return n + 1, rows + 1, seq + 1
