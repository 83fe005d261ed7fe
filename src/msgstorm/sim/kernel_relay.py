"""How the gossip kernel relays an item: a node's forward of what it validated (payload
copies on its uplink, announcements, quiet ones), and the relay protocols' events:
announce and fetch (announcements, requests, their timeouts and fallbacks), compact blocks
(BIP 152: the compact block, its getblocktxn and blocktxn), a transfer on request, and the
quiet announcements that skip the heap.

Place in the pipeline: inside the simulator, called from the event loop ``run_until``
(``sim/kernel.py``) at a validation (the forward) and for every event that is not a
payload's receipt or validation; compiled with it (numba), on the arrays and heap of
``sim/kernel_heap.py``.
"""

from __future__ import annotations

import numpy as np

from msgstorm.jit import borrowing, nb
from msgstorm.sim.fair_order import order_key, peer_order
from msgstorm.sim.kernel_heap import (
    ANNOUNCE,
    ANNOUNCE_FETCH,
    BLOCKTXN,
    CMPCT,
    COMPACT,
    GETTXN,
    ITEM_BLOCK,
    ITEM_CENSORABLE,
    ITEM_INVALID,
    N_COLOUR,
    N_CPU,
    N_HOLD_COL,
    N_UP,
    N_UP_BYTES,
    N_UP_MSG_BYTES,
    N_UPLINK,
    P_NEXT,
    P_NEXT_T,
    PUSH_SQRT,
    Q_HOPS,
    Q_NODE,
    Q_ROWS,
    Q_SENDER,
    Q_SEQ,
    Q_SLOT,
    Q_T,
    RECV,
    REQUEST,
    S_ANNOUNCES,
    S_CMPCT_DUPS,
    S_CONTROL,
    S_FAIR_SHARE,
    S_FALLBACKS,
    S_GETTXN,
    S_PAYLOADS,
    S_QUIET,
    S_QUIET_ON,
    S_REQUESTS,
    S_TIMEOUT,
    S_TXN_BYTES,
    S_TXN_HELD,
    S_TXN_MISSING,
    S_WOKEN,
    SEEN_PAYLOAD,
    SEEN_REBUILT,
    SEEN_REQUESTED,
    SEEN_VALID,
    SL_CONTENT,
    SL_ITEM,
    SL_KIND,
    SL_NTX,
    SL_OUTSTANDING,
    SL_RELAY,
    SL_SIZE,
    TIMEOUT,
    UPLINK_FAIR_SHARE,
    UPLINK_HELD,
    VALIDATED,
    WATCH_HOLD,
    _push,
    _sift_up,
    _write_row,
)
from msgstorm.sim.link_model import degrade, link_delay


@borrowing()
def _forward(t: int, node: int, slot: int, sender: int, hops: int,
             keys: np.ndarray, payload: np.ndarray, pool: np.ndarray,
             n: int, rows: int, seq: int, idx_bits: int, unif: int, nodes: np.ndarray, slots: np.ndarray,
             fwd_ptr: np.ndarray, fwd_idx: np.ndarray, fwd_base: np.ndarray,
             fwd_model: np.ndarray, fwd_param: np.ndarray, samples: np.ndarray, uniform: np.ndarray,
             ns_per_byte: np.ndarray, n_deg: int,
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
    COMPACT the first ``high_bw`` peers get the compact block (a CMPCT receipt), the rest an
    announcement. Otherwise an announcement to a peer that holds the payload or has asked
    for it is quiet (see Q_T): appended to ``quiet``, which has room for ``degree`` entries."""
    mine = nodes[N_COLOUR, node]
    size = slots[SL_SIZE, slot]
    up = ns_per_byte[0, node]
    free = nodes[N_UPLINK, node]
    sent = 0
    last = -1  # row of the previous receipt sent, the tail of the current run
    last_t = 0
    degree = fwd_ptr[node + 1] - fwd_ptr[node]
    peer_order(order_key(order_seed, node, slots[SL_ITEM, slot], slots[SL_KIND, slot] & ~ITEM_CENSORABLE),
               fwd_ptr[node], degree, order)
    # The first ``pushes`` peers of the order get the payload, the rest an announcement.
    relay = slots[SL_RELAY, slot]
    pushes = degree
    if relay == ANNOUNCE_FETCH:
        pushes = 0
    elif relay == PUSH_SQRT:
        pushes = 0
        while pushes * pushes < degree:  # ceil(sqrt(degree)) in integers
            pushes += 1
    elif relay == COMPACT:
        pushes = high_bw if high_bw < degree else degree
    payload_type = CMPCT if relay == COMPACT else RECV
    may_quiet = relay != COMPACT and scalars[S_QUIET_ON] != 0
    copies_sent = 0
    start = free if free > t else t  # fair share: when this forward's copies start
    if fair_share == UPLINK_FAIR_SHARE:
        copies = 0
        for c in range(pushes):
            peer = fwd_idx[order[c]]
            if peer != sender and nodes[N_COLOUR, peer] == mine:
                copies += 1
        up = up * copies
    tx = int(size * up)  # each copy's time, unless its peer's download is slower
    for c in range(degree):
        e = order[c]
        peer = fwd_idx[e]
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
        if c >= pushes:  # an announcement: a few bytes, not queued behind payloads
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
                last = -1  # the next receipt's seq is not this run's next: it starts a run of its own
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


@borrowing()
def _edge(fwd_ptr: np.ndarray, fwd_idx: np.ndarray, node: int, peer: int) -> int:
    """``node``'s edge to ``peer`` in the forwarding graph (-1: none)."""
    for e in range(fwd_ptr[node], fwd_ptr[node + 1]):
        if fwd_idx[e] == peer:
            return e
    return -1


@borrowing()
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


@borrowing()
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


@borrowing()
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


@borrowing()
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


@borrowing()
def _hold_contents(held: np.ndarray, contents: np.ndarray, first: int, count: int, node: int) -> None:
    """``node`` now holds every transaction of a block it rebuilt."""
    for c in range(first, first + count):
        item = contents[0, c]
        held[node, item >> 3] |= 1 << (item & 7)


@borrowing()
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


@borrowing()
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
    (``held``): with none missing it validates the block at once; with k missing it asks
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


@borrowing()
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
    (a RECV, as a push would send it). TIMEOUT at ``node`` (``sender``: the peer asked): if
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
        # compact relay, the compact block. A holding node sends it no earlier than its release.
        serve = t
        if (watch[node] & WATCH_HOLD) != 0 and release[slot, nodes[N_HOLD_COL, node]] > t:
            serve = release[slot, nodes[N_HOLD_COL, node]]
        arrive = _transfer(serve, d, node, sender, slots[SL_SIZE, slot], scalars, nodes, ns_per_byte)
        kind = slots[SL_KIND, slot]
        if kind != ITEM_BLOCK and kind != ITEM_INVALID:
            nodes[N_UP_MSG_BYTES, node] += slots[SL_SIZE, slot]
        n, rows, seq = _push(keys, payload, pool, n, rows, seq, idx_bits, slots, arrive,
                             CMPCT if slots[SL_RELAY, slot] == COMPACT else RECV, sender, slot, node, hops)
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


@borrowing()
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


@borrowing()
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


@borrowing()
def _first_quiet(quiet: np.ndarray, scalars: np.ndarray) -> int:
    """The earliest quiet announcement's time (-1: none)."""
    first = -1
    for i in range(scalars[S_QUIET]):
        if first < 0 or quiet[Q_T, i] < first:
            first = quiet[Q_T, i]
    return first
