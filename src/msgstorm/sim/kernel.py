"""The gossip kernel: compiled event loop for every receipt in the shadow network.

Place in the pipeline: inside the simulator. ``ShadowNetwork`` keeps the sequencer, blocks,
votes and faults in Python and hands the kernel what it must propagate (a message from its
origin, a block from the leader); the kernel runs receipt events — node CPU, duplicate
receipts, uplink serialisation, link delays, partitions, degradation — in virtual time
until the next Python event is due or until a *watched* node validates an item (the
sequencer and standbys for messages, every node for blocks), and then returns so Python
handles it at exactly that time.

Why compiled: a gossip receipt is ~10 arithmetic steps, and in CPython the interpreter
overhead of those steps dominates; thousand-node networks produce millions of receipts per
simulated second. numba compiles these functions once (``cache=True`` keeps the machine
code on disk), and all state lives in plain numpy arrays owned by ``GossipState``.

Randomness is not drawn here: link variations use uniform draws and node processing uses
draws that Python refills from its own seeded generators, so results stay deterministic.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = [
    "RECV", "VALIDATED", "ITEM_MSG", "ITEM_BLOCK",
    "DONE", "NOTIFY", "NEED_UNIFORM", "NEED_PROCESSING", "HEAP_FULL", "DELIVERIES_FULL",
    "MODEL_CODES", "S_HEAP", "S_SEQ", "S_FREE", "S_UNIF", "S_PROC", "S_DELIV", "S_BUDGET",
    "S_STRIDE", "S_NOW", "S_STEPS", "S_NT", "S_NNODE", "S_NSLOT", "S_NSENDER", "S_NHOPS",
    "S_NDEG", "S_RECEIPTS", "S_BLOCK_RECEIPTS", "S_NEXT", "S_NITEM", "S_NKIND",
    "run_until", "inject",
]

# Event types.
RECV, VALIDATED = 0, 1
# Item kinds.
ITEM_MSG, ITEM_BLOCK = 0, 1
# Return codes of run_until.
DONE, NOTIFY, NEED_UNIFORM, NEED_PROCESSING, HEAP_FULL, DELIVERIES_FULL = 0, 1, 2, 3, 4, 5
# Link model codes.
MODEL_CODES = {"constant": 0, "uniform": 1, "normal": 2, "lognormal": 3, "pareto": 4}

# Scalar slots in the ``scalars`` int64 array.
S_HEAP, S_SEQ, S_FREE, S_UNIF, S_PROC, S_DELIV, S_BUDGET, S_STRIDE, S_NOW, S_STEPS = range(10)
S_NT, S_NNODE, S_NSLOT, S_NSENDER, S_NHOPS, S_NDEG, S_RECEIPTS, S_BLOCK_RECEIPTS = range(10, 18)
S_NEXT, S_NITEM, S_NKIND = range(18, 21)
N_SCALARS = 21

# Columns of the heap (int64[capacity, 8]; column 7 pads a row to one cache line).
H_T, H_SEQ, H_TYPE, H_NODE, H_SLOT, H_SENDER, H_HOPS = range(7)
# Rows of per-node state (int64[4, nodes]).
N_CPU, N_UPLINK, N_UP, N_COLOUR = range(4)
# Rows of per-slot state (int64[5, slots]).
SL_ITEM, SL_KIND, SL_OUTSTANDING, SL_SIZE, SL_FORWARD = range(5)


@nb.njit(cache=True)
def _push(heap: np.ndarray, scalars: np.ndarray, t: int, etype: int, node: int, slot: int,
          sender: int, hops: int) -> None:
    # One event per row (int64[capacity, 8]): a sift moves one cache line, not seven.
    # Sift up with a hole: parents move down, the new event is written once at the end.
    seq = scalars[S_SEQ]
    scalars[S_SEQ] = seq + 1
    i = scalars[S_HEAP]
    scalars[S_HEAP] = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        pt = heap[parent, H_T]
        if pt < t or (pt == t and heap[parent, H_SEQ] < seq):
            break
        for col in range(7):
            heap[i, col] = heap[parent, col]
        i = parent
    heap[i, H_T] = t
    heap[i, H_SEQ] = seq
    heap[i, H_TYPE] = etype
    heap[i, H_NODE] = node
    heap[i, H_SLOT] = slot
    heap[i, H_SENDER] = sender
    heap[i, H_HOPS] = hops


@nb.njit(cache=True)
def _pop(heap: np.ndarray, scalars: np.ndarray) -> None:
    """Remove the top (the caller has read it): sift the last event down from the root."""
    last = scalars[S_HEAP] - 1
    scalars[S_HEAP] = last
    if last == 0:
        return
    t = heap[last, H_T]
    seq = heap[last, H_SEQ]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= last:
            break
        right = child + 1
        if right < last:
            ct = heap[child, H_T]
            rt = heap[right, H_T]
            if rt < ct or (rt == ct and heap[right, H_SEQ] < heap[child, H_SEQ]):
                child = right
        ct = heap[child, H_T]
        if t < ct or (t == ct and seq < heap[child, H_SEQ]):
            break
        for col in range(7):
            heap[i, col] = heap[child, col]
        i = child
    for col in range(7):
        heap[i, col] = heap[last, col]


@nb.njit(cache=True)
def inject(heap: np.ndarray, scalars: np.ndarray, slots: np.ndarray, seen: np.ndarray,
           free_slots: np.ndarray, t: int, node: int, item: int, kind: int, size: int) -> int:
    """Start gossip of an item at ``node`` (a receipt from nobody, hop 0).

    Returns 0, or -1 when the heap or the slot pool is full (grow, then call again).
    """
    if scalars[S_FREE] == 0 or scalars[S_HEAP] + 1 >= heap.shape[0]:
        return -1
    scalars[S_FREE] -= 1
    slot = free_slots[scalars[S_FREE]]
    slots[SL_ITEM, slot] = item
    slots[SL_KIND, slot] = kind
    slots[SL_OUTSTANDING, slot] = 1
    slots[SL_SIZE, slot] = size
    slots[SL_FORWARD, slot] = 1
    seen[slot, :] = 0
    _push(heap, scalars, t, RECV, node, slot, -1, 0)
    scalars[S_NEXT] = heap[0, H_T]
    return 0


@nb.njit(cache=True)
def _link_delay(base: int, model: int, param: float, uniform: np.ndarray, scalars: np.ndarray) -> int:
    if model == 0:
        return base
    u = uniform[scalars[S_UNIF]]
    scalars[S_UNIF] += 1
    if model == 1:
        return base + int(u * param)
    if model == 2 or model == 3:
        # Box-Muller with a second uniform: one standard normal per transmission.
        v = uniform[scalars[S_UNIF]]
        scalars[S_UNIF] += 1
        z = math.sqrt(-2.0 * math.log(1.0 - u)) * math.cos(2.0 * math.pi * v)
        if model == 2:
            d = base + int(z * param)
            return d if d > 0 else 0
        return int(base * math.exp(param * z))
    return int(base * (1.0 - u) ** (-1.0 / param))  # Pareto(1, alpha) multiplier


@nb.njit(cache=True)
def _forward(t: int, node: int, slot: int, sender: int, hops: int,
             heap: np.ndarray, scalars: np.ndarray, nodes: np.ndarray, slots: np.ndarray,
             fwd_ptr: np.ndarray, fwd_idx: np.ndarray, fwd_base: np.ndarray,
             fwd_model: np.ndarray, fwd_param: np.ndarray, uniform: np.ndarray,
             tx_ns_per_byte: float,
             deg_nodes: np.ndarray, deg_params: np.ndarray) -> None:
    mine = nodes[N_COLOUR, node]
    tx = int(slots[SL_SIZE, slot] * tx_ns_per_byte)
    free = nodes[N_UPLINK, node]
    n_deg = scalars[S_NDEG]
    for e in range(fwd_ptr[node], fwd_ptr[node + 1]):
        peer = fwd_idx[e]
        if peer == sender or nodes[N_COLOUR, peer] != mine:
            continue
        d = _link_delay(fwd_base[e], fwd_model[e], fwd_param[e], uniform, scalars)
        lost = False
        for k in range(n_deg):
            fa = deg_nodes[k, node]
            fb = deg_nodes[k, peer]
            if deg_params[k, 0] > 0.5:  # between: one end on side A (bit 1), one on B (bit 2)
                hit = ((fa & 1) != 0 and (fb & 2) != 0) or ((fa & 2) != 0 and (fb & 1) != 0)
            else:  # any link touching a flagged node
                hit = fa != 0 or fb != 0
            if hit:
                if deg_params[k, 3] > 0.0:
                    u = uniform[scalars[S_UNIF]]
                    scalars[S_UNIF] += 1
                    if u < deg_params[k, 3]:
                        lost = True
                        break
                d += int(deg_params[k, 1])
                if deg_params[k, 2] > 0.0:
                    u = uniform[scalars[S_UNIF]]
                    v = uniform[scalars[S_UNIF] + 1]
                    scalars[S_UNIF] += 2
                    z = math.sqrt(-2.0 * math.log(1.0 - u)) * math.cos(2.0 * math.pi * v)
                    d += int(abs(z) * deg_params[k, 2])
        if lost:
            continue
        if tx > 0:
            if free < t:
                free = t
            free += tx
            arrive = free + d
        else:
            arrive = t + d
        _push(heap, scalars, arrive, RECV, peer, slot, node, hops)
        slots[SL_OUTSTANDING, slot] += 1
    if tx > 0:
        nodes[N_UPLINK, node] = free


@nb.njit(cache=True, inline="always")
def _returning(code: int, heap: np.ndarray, scalars: np.ndarray) -> int:
    """Record the next receipt's time (S_NEXT) for Python, then hand back ``code``."""
    scalars[S_NEXT] = heap[0, H_T] if scalars[S_HEAP] > 0 else -1
    return code


@nb.njit(cache=True)
def run_until(until: int, max_degree: int,
              heap: np.ndarray, scalars: np.ndarray, nodes: np.ndarray, slots: np.ndarray,
              seen: np.ndarray, free_slots: np.ndarray, watch: np.ndarray,
              fwd_ptr: np.ndarray, fwd_idx: np.ndarray, fwd_base: np.ndarray,
              fwd_model: np.ndarray, fwd_param: np.ndarray, uniform: np.ndarray,
              processing: np.ndarray, tx_ns_per_byte: float,
              deg_nodes: np.ndarray, deg_params: np.ndarray,
              deliveries: np.ndarray) -> int:
    """Run kernel events with time < ``until``; stop early to report a watched validation.

    Returns DONE, NOTIFY (the event is described in S_NT..S_NHOPS), or a NEED_*/FULL code
    asking Python to refill a buffer or grow the heap before calling again.
    """
    # Enough uniforms for the largest fan-out (delay, degradation loss and jitter each).
    need_uniform = 6 * (max_degree + 1) * (1 + scalars[S_NDEG])
    capacity = heap.shape[0]
    while scalars[S_HEAP] > 0:
        t = heap[0, H_T]
        if t >= until:
            return _returning(DONE, heap, scalars)
        if scalars[S_UNIF] + need_uniform > uniform.shape[0]:
            return _returning(NEED_UNIFORM, heap, scalars)
        if scalars[S_PROC] >= processing.shape[0]:
            return _returning(NEED_PROCESSING, heap, scalars)
        if scalars[S_HEAP] + max_degree + 2 > capacity:
            return _returning(HEAP_FULL, heap, scalars)
        if scalars[S_DELIV] >= deliveries.shape[1]:
            return _returning(DELIVERIES_FULL, heap, scalars)
        etype = heap[0, H_TYPE]
        node = heap[0, H_NODE]
        slot = heap[0, H_SLOT]
        sender = heap[0, H_SENDER]
        hops = heap[0, H_HOPS]
        _pop(heap, scalars)
        scalars[S_NOW] = t
        scalars[S_STEPS] += 1
        if etype == RECV:
            if slots[SL_KIND, slot] == ITEM_MSG:
                scalars[S_RECEIPTS] += 1
            else:
                scalars[S_BLOCK_RECEIPTS] += 1
            if nodes[N_UP, node] != 0:
                start = nodes[N_CPU, node]
                if start < t:
                    start = t
                done = start + processing[scalars[S_PROC]]
                scalars[S_PROC] += 1
                nodes[N_CPU, node] = done
                if seen[slot, node] == 0:
                    seen[slot, node] = 1
                    # The validation completes at ``done``; keep the slot alive until then.
                    _push(heap, scalars, done, VALIDATED, node, slot, sender, hops)
                    continue
            slots[SL_OUTSTANDING, slot] -= 1
            if slots[SL_OUTSTANDING, slot] == 0:
                free_slots[scalars[S_FREE]] = slot
                scalars[S_FREE] += 1
            continue
        # VALIDATED
        notify = False
        if nodes[N_UP, node] != 0:
            kind = slots[SL_KIND, slot]
            item = slots[SL_ITEM, slot]
            if kind == ITEM_MSG:
                stride = scalars[S_STRIDE]
                if stride > 0 and item % stride == 0 and scalars[S_BUDGET] > 0:
                    scalars[S_BUDGET] -= 1
                    i = scalars[S_DELIV]
                    deliveries[0, i] = item
                    deliveries[1, i] = node
                    deliveries[2, i] = t
                    deliveries[3, i] = hops
                    scalars[S_DELIV] = i + 1
                notify = watch[node] != 0
            else:
                notify = True
            if slots[SL_FORWARD, slot] != 0:
                _forward(t, node, slot, sender, hops + 1, heap, scalars, nodes, slots,
                         fwd_ptr, fwd_idx, fwd_base, fwd_model, fwd_param, uniform,
                         tx_ns_per_byte, deg_nodes, deg_params)
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
                free_slots[scalars[S_FREE]] = slot
                scalars[S_FREE] += 1
            return _returning(NOTIFY, heap, scalars)
        if slots[SL_OUTSTANDING, slot] == 0:
            free_slots[scalars[S_FREE]] = slot
            scalars[S_FREE] += 1
    return _returning(DONE, heap, scalars)
