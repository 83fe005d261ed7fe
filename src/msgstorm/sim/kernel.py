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
Python side uses too. This module is the event loop (``run_until``) and the start of an
item's gossip (``inject``); a node's forward and the relay protocols' events are in
``sim/kernel_relay.py``; the arrays' layout (the constants re-exported here) and the
heap's primitives in ``sim/kernel_heap.py``.
"""

from __future__ import annotations

import numpy as np

from msgstorm.jit import borrowing, nb
from msgstorm.sim.kernel_heap import (
    ANNOUNCE,
    ANNOUNCE_FETCH,
    BLOCKTXN,
    CMPCT,
    COMPACT,
    DELIVERIES_FULL,
    DONE,
    GETTXN,
    H_AUX,
    H_ITEM,
    H_NODE,
    H_PEER,
    H_ROWS,
    H_T,
    H_WHAT,
    HEAP_FULL,
    HOP_BLOCK,
    HOP_CODE,
    HOP_PAYLOAD,
    HOP_SERVE,
    HOP_VALID,
    HOPS_FULL,
    ITEM_BLOCK,
    ITEM_CENSORABLE,
    ITEM_INVALID,
    ITEM_MSG,
    ITEM_WATCHED,
    LOG_FULL,
    LOG_ITEM,
    LOG_KIND,
    LOG_NODE,
    LOG_T,
    LOW32,
    N_COLOUR,
    N_CPU,
    N_HOLD,
    N_HOLD_COL,
    N_HOLD_SPREAD,
    N_ROWS,
    N_SCALARS,
    N_UP,
    N_UP_BYTES,
    N_UP_MSG_BYTES,
    N_UPLINK,
    NEED_PROCESSING,
    NEED_SLOTS,
    NEED_UNIFORM,
    NOTIFY,
    P_NEXT,
    P_NEXT_T,
    P_NODE_SLOT,
    P_SENDER_HOPS,
    PUSH,
    PUSH_SQRT,
    Q_HOPS,
    Q_NODE,
    Q_ROWS,
    Q_SENDER,
    Q_SEQ,
    Q_SLOT,
    Q_T,
    QUIET_FULL,
    RECV,
    REQUEST,
    ROOT,
    S_ANNOUNCES,
    S_BLOCK_RECEIPTS,
    S_BUDGET,
    S_CMPCT_DUPS,
    S_CONTROL,
    S_DELIV,
    S_DOWNLOADS,
    S_FAIR_SHARE,
    S_FALLBACKS,
    S_FREE,
    S_GETTXN,
    S_HEAP,
    S_HIGH_BW,
    S_HOP_LOG,
    S_HOP_STRIDE,
    S_HOPS_LOGGED,
    S_IDX_BITS,
    S_INVALID,
    S_LOG_BLOCKS,
    S_LOGGED,
    S_NDEG,
    S_NEXT,
    S_NHOPS,
    S_NITEM,
    S_NKIND,
    S_NNODE,
    S_NOW,
    S_NSENDER,
    S_NSLOT,
    S_NT,
    S_ORDER_SEED,
    S_PAYLOADS,
    S_PROC,
    S_QUIET,
    S_QUIET_ON,
    S_RECEIPTS,
    S_REQUESTS,
    S_ROWS,
    S_SEND_END,
    S_SEND_I,
    S_SEQ,
    S_SEQ_LIMIT,
    S_STEPS,
    S_STRIDE,
    S_TIMEOUT,
    S_TRACK,
    S_TXN_BYTES,
    S_TXN_HELD,
    S_TXN_MISSING,
    S_UNIF,
    S_WOKEN,
    SEEN_PAYLOAD,
    SEEN_REBUILT,
    SEEN_VALID,
    SEND_ITEM,
    SEND_KIND,
    SEND_NODE,
    SEND_RELAY,
    SEND_SIZE,
    SEND_T,
    SL_CONTENT,
    SL_FORWARD,
    SL_ITEM,
    SL_KIND,
    SL_NTX,
    SL_OUTSTANDING,
    SL_RELAY,
    SL_ROWS,
    SL_SIZE,
    TIMEOUT,
    TYPE_BITS,
    TYPE_MASK,
    UPLINK_FAIR_SHARE,
    UPLINK_HELD,
    UPLINK_SERIAL,
    VALIDATED,
    WATCH_ALL,
    WATCH_CENSOR,
    WATCH_HOLD,
    WATCH_LOG,
    WATCH_WATCHED,
    _field,
    _free_row,
    _key_seq,
    _key_t,
    _log_hop,
    _pop,
    _sift_down,
    _sift_up,
    _write_row,
)
from msgstorm.sim.kernel_relay import (
    _compact_event,
    _first_quiet,
    _forward,
    _relay_event,
    _settle_quiet,
)

__all__ = [
    "RECV", "VALIDATED", "ITEM_MSG", "ITEM_BLOCK", "ITEM_WATCHED", "ITEM_CENSORABLE", "WATCH_ALL", "WATCH_WATCHED",
    "WATCH_LOG", "WATCH_CENSOR", "WATCH_HOLD", "N_HOLD", "N_HOLD_SPREAD", "N_HOLD_COL", "ITEM_INVALID", "S_INVALID",
    "DONE", "NOTIFY", "NEED_UNIFORM", "NEED_PROCESSING", "HEAP_FULL", "DELIVERIES_FULL", "NEED_SLOTS", "LOG_FULL",
    "S_SEND_I", "S_SEND_END", "SEND_T", "SEND_NODE", "SEND_ITEM", "SEND_SIZE", "SEND_KIND",
    "S_HEAP", "S_SEQ", "S_FREE", "S_UNIF", "S_PROC", "S_DELIV", "S_BUDGET",
    "S_STRIDE", "S_NOW", "S_STEPS", "S_NT", "S_NNODE", "S_NSLOT", "S_NSENDER", "S_NHOPS",
    "S_NDEG", "S_RECEIPTS", "S_BLOCK_RECEIPTS", "S_NEXT", "S_NITEM", "S_NKIND",
    "S_IDX_BITS", "S_SEQ_LIMIT", "S_ROWS", "S_ORDER_SEED", "S_TIMEOUT", "S_ANNOUNCES", "S_REQUESTS",
    "S_FALLBACKS", "S_FAIR_SHARE", "S_DOWNLOADS", "S_CONTROL", "S_LOGGED", "LOG_NODE", "LOG_ITEM", "LOG_T", "UPLINK_SERIAL", "UPLINK_FAIR_SHARE", "UPLINK_HELD", "ANNOUNCE", "REQUEST", "TIMEOUT", "PUSH", "ANNOUNCE_FETCH", "PUSH_SQRT", "SEND_RELAY", "ROOT", "P_NEXT", "run_until", "inject",
    "COMPACT", "CMPCT", "GETTXN", "BLOCKTXN", "S_HIGH_BW", "S_TRACK", "S_CMPCT_DUPS", "S_GETTXN", "S_TXN_MISSING",
    "S_TXN_BYTES", "S_PAYLOADS", "S_TXN_HELD", "S_LOG_BLOCKS", "LOG_KIND", "N_UP_BYTES", "N_UP_MSG_BYTES", "N_ROWS", "SL_CONTENT", "SL_NTX", "SL_ROWS", "N_SCALARS",
    "HOPS_FULL", "S_HOP_LOG", "S_HOPS_LOGGED", "S_HOP_STRIDE", "HOP_SERVE", "HOP_PAYLOAD", "HOP_VALID", "HOP_BLOCK", "HOP_CODE",
    "H_ITEM", "H_WHAT", "H_NODE", "H_PEER", "H_T", "H_AUX", "H_ROWS",
    "QUIET_FULL", "S_QUIET", "S_QUIET_ON", "S_WOKEN", "Q_T", "Q_NODE", "Q_SLOT", "Q_SEQ", "Q_SENDER", "Q_HOPS",
    "Q_ROWS", "N_COLOUR", "N_CPU", "N_UP", "N_UPLINK", "SL_FORWARD", "SL_ITEM", "SL_KIND", "SL_OUTSTANDING",
]


@borrowing()
def inject(keys: np.ndarray, payload: np.ndarray, pool: np.ndarray,
           scalars: np.ndarray, slots: np.ndarray, seen: np.ndarray, free_slots: np.ndarray,
           t: int, node: int, item: int, kind: int, size: int, relay: int, content: int, ntx: int) -> int:
    """Start gossip of an item at ``node`` (a receipt from nobody, hop 0), relayed by
    protocol ``relay`` (PUSH, ANNOUNCE_FETCH, PUSH_SQRT, COMPACT); a compact block's
    transactions are ``ntx`` columns of ``contents`` from ``content``.

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
    seen[slot, :] = 0
    idx = pool[rows]
    _write_row(payload, idx, RECV, node, slot, -1, 0)
    _sift_up(keys, n, t, (seq << scalars[S_IDX_BITS]) | idx)
    scalars[S_ROWS] = rows + 1
    scalars[S_HEAP] = n + 1
    scalars[S_SEQ] = seq + 1
    scalars[S_NEXT] = _key_t(keys, 0)
    return 0


# error_model="numpy": no ZeroDivisionError path for ``item % stride`` (stride > 0 is
# tested first, and it is the loop's only division; the link models' divisions are in
# link_model.link_delay, compiled with the default model). Without that exception path the whole
# loop compiles to faster code: ~8% more receipts per second at 1,000 nodes.
@borrowing(error_model="numpy")
def run_until(until: int, max_degree: int,
              keys: np.ndarray, payload: np.ndarray, pool: np.ndarray,
              scalars: np.ndarray, nodes: np.ndarray, slots: np.ndarray,
              seen: np.ndarray, free_slots: np.ndarray, watch: np.ndarray,
              fwd_ptr: np.ndarray, fwd_idx: np.ndarray, fwd_base: np.ndarray,
              fwd_model: np.ndarray, fwd_param: np.ndarray, samples: np.ndarray, uniform: np.ndarray,
              processing: np.ndarray, ns_per_byte: np.ndarray,
              deg_nodes: np.ndarray, deg_params: np.ndarray,
              deliveries: np.ndarray, mempool_log: np.ndarray, sends: np.ndarray, order: np.ndarray,
              held: np.ndarray, contents: np.ndarray, block_parent: np.ndarray, block_holds: np.ndarray,
              hop_log: np.ndarray, release: np.ndarray, quiet: np.ndarray) -> int:
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
    wait in ``quiet`` (see Q_T).
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
    key = 0  # the last event's key (a NOTIFY's when the loop ends with one)
    code = DONE
    while True:
        if send_i < send_end:
            ts = sends[SEND_T, send_i]
            if ts < until and (n == 0 or ts <= _key_t(keys, 0)):
                # A send goes before any receipt at its time: gossip starts at its origin.
                if n_free == 0:  # quiet announcements before the send may release some
                    n_free = _settle_quiet(ts, 0, quiet, scalars, nodes, slots, free_slots, n_free)
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
        if hop_on != 0 and hop_n >= n_hop:
            code = HOPS_FULL
            break
        if scalars[S_QUIET] > quiet_room:
            # Those before this event have arrived; if that is not room enough, Python grows the buffer.
            n_free = _settle_quiet(t, _key_seq(keys, 0) >> idx_bits, quiet, scalars, nodes, slots, free_slots,
                                   n_free)
            if scalars[S_QUIET] > quiet_room:
                code = QUIET_FULL
                break
        key = _key_seq(keys, 0)
        idx = key & idx_mask
        node_slot = _field(payload, idx, P_NODE_SLOT)
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
                if seen[slot, node] & SEEN_PAYLOAD == 0:
                    seen[slot, node] |= SEEN_PAYLOAD
                    if hop_on != 0:
                        hop_n = _log_hop(hop_log, hop_n, slots, slot, hop_stride, HOP_PAYLOAD, node, sender, t, -1)
                    # The validation completes at ``done``; keep the slot alive until then.
                    # It takes the receipt's place: the root's payload row and one sift down
                    # instead of a pop and a push; the rest of the run goes back in.
                    after_t = _field(payload, idx, P_NEXT_T)
                    payload[nb.uint64(4 * idx + P_SENDER_HOPS)] = sender_hops | (VALIDATED << 32)
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
        if etype != VALIDATED:
            # A relay protocol's event: out of the heap (its run's next in its place), then handled.
            extra = _field(payload, idx, P_NEXT_T)  # a getblocktxn's bytes (its row is freed below)
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
                                                          fwd_param, samples, uniform, ns_per_byte, n_deg, deg_nodes,
                                                          deg_params, processing, held, contents)
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
            if hop_on != 0:
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
                n, rows, seq, unif = _forward(t_forward, node, slot, sender, hops + 1, keys, payload, pool,
                                              n, rows, seq, idx_bits, unif, nodes, slots, fwd_ptr, fwd_idx, fwd_base,
                                              fwd_model, fwd_param, samples, uniform, ns_per_byte, n_deg,
                                              deg_nodes, deg_params, order, order_seed, fair_share, downloads,
                                              control, high_bw, scalars, seen, quiet)
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
    if code == DONE:  # every event before ``until`` ran
        n_free = _settle_quiet(until, 0, quiet, scalars, nodes, slots, free_slots, n_free)
    elif code == NOTIFY:  # every event before the notice ran (``key``: the notice's)
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
    first_quiet = _first_quiet(quiet, scalars)
    if first_quiet >= 0 and (next_t < 0 or first_quiet < next_t):
        next_t = first_quiet
    scalars[S_NEXT] = next_t
    return code
