"""Gossip state of the shadow network: the arrays the compiled kernel runs on.

``GossipState`` owns every per-node and per-receipt array, allocates a slot (a row of
"seen" flags) for each item in flight, refills the kernel's random draws from seeded
generators, grows the event heap, and applies faults (crash, restart, partition colours,
link degradation) by writing into the arrays. ``ShadowNetwork`` talks to it through
``inject``, ``run`` and the fault methods; the kernel itself is ``msgstorm.sim.kernel``.

Under compact block relay it also keeps what the kernel rebuilds blocks from: a bit per
node and msg_id set when the node validates the message (``held``, grown as msg_ids
grow: nodes × msg_ids / 8 bytes), and the messages of the blocks in flight (``contents``).

With ``trace_hops`` the kernel writes its hop log (the steps by which blocks and sampled
messages reach each node, see the kernel's HOP_SERVE); ``drain_hop_log`` hands it over
for ``sim/hop_stages.py``.
The relay counts it reads from the kernel are the ``relay`` event's detail at the run's
end (``sim/relay_counts.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from msgstorm.jit import direct_call, types_key
from msgstorm.sampling import Drawn, sample_array
from msgstorm.scenario.kinds import MESSAGE_KINDS
from msgstorm.sim import kernel as k
from msgstorm.sim.block_contents import BlockContents, CompactRelay
from msgstorm.sim.forwarding import forwarding_columns
from msgstorm.sim.inject_calls import InjectCalls
from msgstorm.sim.link_model import Degradations
from msgstorm.sim.topology import Topology

__all__ = ["GossipState"]

_UNIFORM_BLOCK = 1 << 18
_PROCESSING_BLOCK = 1 << 18
_DELIVERY_BLOCK = 1 << 14
_LOG_BLOCK = 1 << 14
_HOP_LOG_BLOCK = 1 << 14
_NO_LOG = np.zeros((4, 0), dtype=np.int64)  # an empty log, shared: it has nothing to write to
_QUIET_BLOCK = 1 << 12
_HEAP_ENTRIES = 1 << 12
# Heap keys are ``seq << idx_bits | idx`` in an int64 (kept below 2**_KEY_BITS): when seq
# would outgrow its bits, the live events are renumbered 0.. in their order (_renumber_keys).
_KEY_BITS = 62


def _aligned(size: int) -> np.ndarray:
    """Zeroed int64[size], 64-byte aligned: the kernel's four sibling heap entries, or one
    payload row, then never straddle two cache lines."""
    raw = np.zeros(size + 8, dtype=np.int64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + size]


def _heap_keys(entries: int) -> np.ndarray:
    """Zeroed keys for a heap of ``entries``: int64[2 * (kernel.ROOT + entries)]."""
    return _aligned(2 * (k.ROOT + entries))


class GossipState:
    def __init__(self, topology: Topology, processing: Drawn, tx_ns_per_byte: float | np.ndarray,
                 link_rng: np.random.Generator, processing_rng: np.random.Generator, degradations: Degradations,
                 delivery_stride: int, delivery_budget: int, order_seed: int = 0,
                 message_relay: np.ndarray | None = None, block_relay: int = k.PUSH,
                 relay_timeout_ns: int = 10_000_000_000, download_ns_per_byte: float | np.ndarray = 0.0,
                 fair_share: bool = False, uplink_held: bool = False, control_overhead_ns: int = 0,
                 compact: CompactRelay | None = None, trace_hops: bool = False, hop_stride: int = 1,
                 compact_nodes: np.ndarray | None = None) -> None:
        """``order_seed``: the seed of the order in which nodes serve their peers
        (sim/fair_order.py), a non-negative int64. ``message_relay``: the relay protocol's
        kernel code (``k.PUSH`` ..) for each message kind code (default: push for all);
        ``block_relay``: the blocks'; ``relay_timeout_ns``: how long a node waits for an item
        it asked for before asking another peer. ``tx_ns_per_byte`` and ``download_ns_per_byte``:
        each node's upload and download time per byte (one value for all, or one per node; 0:
        unlimited); ``fair_share``: a forward's copies share the uplink rather than queue on it;
        ``uplink_held``: they queue, each holding the uplink until it has arrived;
        ``control_overhead_ns``: added to each announcement's and request's link delay;
        ``compact``: compact relay's sizes, needed when a relay code is ``k.COMPACT``;
        ``compact_nodes``: whether each node speaks compact relay (default: every node; a
        link where either end does not carries the full block, announced and asked for);
        ``trace_hops``: write the hop log, for every block and the messages whose msg_id is
        a multiple of ``hop_stride`` (0: none)."""
        self.n = n = topology.size
        self.topology = topology
        self.scalars = np.zeros(k.N_SCALARS, dtype=np.int64)
        self.invalid_sent = 0  # invalid items flooding nodes sent (sim/flood.py)
        self.scalars[k.S_STRIDE] = delivery_stride
        self.scalars[k.S_BUDGET] = delivery_budget
        self.scalars[k.S_ORDER_SEED] = order_seed
        self.scalars[k.S_TIMEOUT] = relay_timeout_ns
        self.message_relay = np.zeros(len(MESSAGE_KINDS), dtype=np.int64) if message_relay is None else message_relay
        self._relay_codes: list[int] = self.message_relay.tolist()  # per message, without numpy's per-call cost
        self.block_relay = block_relay
        if k.COMPACT in self.message_relay:
            raise ValueError("compact relay is for blocks only")
        if block_relay == k.COMPACT and compact is None:
            raise ValueError("compact block relay needs its sizes (compact)")
        self.compact = compact if block_relay == k.COMPACT else None
        self.relays = trace_hops or block_relay != k.PUSH or set(self._relay_codes) != {k.PUSH}
        self.scalars[k.S_TRACK] = 1 if self.compact is not None else 0
        self.scalars[k.S_HIGH_BW] = 0 if self.compact is None else self.compact.high_bandwidth
        self.scalars[k.S_RECON_FAIL_PPB] = 0 if self.compact is None else round(self.compact.rebuild_failure * 1e9)
        # Compact relay: held[node, m >> 3] bit m & 7 (see the module docstring); the blocks'
        # messages (msg_id, bytes) from ``contents[:, 0]`` to ``contents_fill``.
        self.held = np.zeros((n, 1 if self.compact is None else 1 << 10), dtype=np.uint8)
        self.contents = np.zeros((2, 1 << 12), dtype=np.int64)
        self.contents_fill = 0
        # The event heap: keys (time, sequence and payload row), the payload rows (with
        # their links to the next receipt of a run, see the kernel), and the free rows
        # (pool[rows taken:]).
        # Announcements to peers that hold the payload, out of the heap (the kernel's Q_T).
        self.quiet = np.zeros((k.Q_ROWS, _QUIET_BLOCK), dtype=np.int64)
        self.keys = _heap_keys(_HEAP_ENTRIES)
        self.payload = _aligned(4 * _HEAP_ENTRIES)
        self.pool = np.arange(_HEAP_ENTRIES, dtype=np.int64)
        self._renumber_keys()
        self.nodes = np.zeros((k.N_ROWS, n), dtype=np.int64)
        self.nodes[k.N_UP, :] = 1
        self.nodes[k.N_HOLD_COL, :] = -1
        self.nodes[k.N_COMPACT, :] = 1
        if compact_nodes is not None:
            if len(compact_nodes) != n:
                raise ValueError(f"compact_nodes has {len(compact_nodes)} entries for {n} nodes")
            self.nodes[k.N_COMPACT, :] = np.asarray(compact_nodes, dtype=bool)
        slots = 1 << 10
        self.slots = np.zeros((k.SL_ROWS, slots), dtype=np.int64)
        self.seen = np.zeros((slots, n), dtype=np.uint8)
        # When each holding node releases each item (a column per node that ever held: set_holding).
        self.release = np.zeros((slots, 0), dtype=np.int64)
        self.free_slots = np.arange(slots - 1, -1, -1, dtype=np.int64)
        self.scalars[k.S_FREE] = slots
        self.watch = np.zeros(n, dtype=np.uint8)
        self.forward: list[list[int]] = [list(peers) for peers in topology.forward]
        self._edges()
        self.degradations = degradations
        self.ns_per_byte = np.zeros((2, n), dtype=np.float64)
        self.ns_per_byte[0] = tx_ns_per_byte
        self.ns_per_byte[1] = download_ns_per_byte
        self.scalars[k.S_FAIR_SHARE] = (k.UPLINK_FAIR_SHARE if fair_share
                                        else k.UPLINK_HELD if uplink_held else k.UPLINK_SERIAL)
        self.scalars[k.S_CONTROL] = control_overhead_ns
        self.scalars[k.S_DOWNLOADS] = 1 if (self.ns_per_byte[1] > 0).any() else 0
        self.link_rng = link_rng
        self.processing_rng = processing_rng
        self.processing_dist = processing
        self.uniform = np.zeros(0, dtype=np.float64)
        self.processing = np.zeros(0, dtype=np.int64)
        self._processing_draws = np.zeros(0, dtype=np.float64)  # the draws ``processing`` rounds
        self.processing_scale = 1.0
        self.deliveries = np.zeros((4, _DELIVERY_BLOCK), dtype=np.int64)
        self.delivered: list[np.ndarray] = []
        self.delivered_rows = 0  # rows taken out of the kernel buffer, not yet written
        # The validations the kernel logged rather than handed back (see ``set_watched``),
        # in order: the kernel's buffer, and what was taken out of it.
        self.mempool_log = np.zeros((4, _LOG_BLOCK), dtype=np.int64)
        self.mempool_logged: list[np.ndarray] = []
        self.log_mempools = True
        # True: the leader's validations of messages are logged too (``set_watched``), for
        # the sequencer to take from the log in order (``sim/intake_log.py``).
        self.log_leader = False
        # A fork chain's block tree as the kernel reads it (``view_blocks``): none until then.
        self.block_parent = np.zeros(0, dtype=np.int64)
        self.block_holds = np.zeros((0, 0), dtype=np.uint8)
        # Round-based consensus's messages and counts as the kernel reads them (``count_votes``).
        self.votes = np.zeros((k.V_ROWS, 0), dtype=np.int64)
        self.tally = np.zeros((0, k.T_FIRST), dtype=np.int64)
        self.votes_held = np.zeros((0, 0), dtype=np.uint8)
        self.scalars[k.S_HOP_LOG] = 1 if trace_hops else 0
        self.scalars[k.S_HOP_STRIDE] = hop_stride
        self.hop_log = np.zeros((k.H_ROWS, _HOP_LOG_BLOCK if trace_hops else 0), dtype=np.int64)
        self.hop_logged: list[np.ndarray] = []
        self.hop_rows = 0  # rows taken out of the kernel's hop log, not yet drained
        self.scalars[k.S_QUIET_ON] = 1
        self.t_next = -1  # time of the next receipt event, -1 when there is none
        self.sends = np.zeros((6, 0), dtype=np.int64)
        # Called once before the kernel's first call: waits for a helper process compiling
        # it (sim/warm.py), so numba loads it from its cache instead of compiling it again.
        self.before_first_call: Callable[[], object] | None = None
        self._args: tuple[object, ...] = ()
        self._run_until: Callable[..., int] | None = None
        self._inject_args: tuple[object, ...] = ()
        self._inject = InjectCalls()
        self._bind()

    def _edges(self) -> None:
        """The forwarding graph (``forward``) in the kernel's columns (sim/forwarding.py)."""
        columns = forwarding_columns(self.topology, self.forward)
        self.fwd_ptr, self.fwd_idx = columns.ptr, columns.idx
        self.fwd_base, self.fwd_model, self.fwd_param = columns.base, columns.model, columns.param
        # An event adds at most this many heap entries: a forward's copies, or the quiet
        # announcements a forgotten request puts back (one per peer forwarding to the node:
        # kernel._wake_quiet).
        self.max_degree = columns.max_degree
        self.order = np.zeros(max(1, self.max_degree), dtype=np.int64)  # the kernel's scratch for a forward's order

    def surround(self, target: int, attackers: list[int] | None) -> None:
        """Replace ``target``'s gossip peers by ``attackers`` (an eclipse, sim/eclipse.py): it
        forwards to them alone, each of them forwards to it too, and no other node forwards
        to it; None: the overlay as the topology made it. An event in flight on a link that
        is gone is lost, as on a cut link."""
        original = self.topology.forward
        if attackers is None:
            self.forward = [list(peers) for peers in original]
        else:
            self.forward = [[p for p in peers if p != target] for peers in self.forward]
            self.forward[target] = list(attackers)
            for attacker in attackers:
                self.forward[attacker].append(target)
        self._edges()
        self._bind()

    # --- items -------------------------------------------------------------------------

    def _grow_slots(self) -> None:
        old = self.slots.shape[1]
        new = old * 2
        self.slots = np.concatenate([self.slots, np.zeros((k.SL_ROWS, old), dtype=np.int64)], axis=1)
        self.seen = np.concatenate([self.seen, np.zeros((old, self.n), dtype=np.uint8)], axis=0)
        self.release = np.concatenate([self.release, np.zeros((old, self.release.shape[1]), dtype=np.int64)], axis=0)
        free = np.zeros(new, dtype=np.int64)
        free[:old] = np.arange(new - 1, old - 1, -1)
        self.free_slots = free
        self.scalars[k.S_FREE] = old
        self._bind()

    def relay_of(self, message_kinds: np.ndarray) -> np.ndarray:
        """The relay protocol's code of each message of these kind codes."""
        return self.message_relay[np.asarray(message_kinds, dtype=np.int64)]

    def inject(self, t: int, node: int, item: int, kind: int, size: int, message_kind: int = 0,
               contents: BlockContents | None = None) -> None:
        """Start gossip of an item at ``node`` at ``t`` (``message_kind``: a message's kind
        code, which picks its relay protocol; blocks take ``block_relay``). A block comes
        with its ``contents``; under compact relay its peers receive the compact block
        (``CompactRelay.size``) instead of ``size`` bytes, over links both of whose ends
        speak compact relay (``compact_nodes``)."""
        relay = self.block_relay if kind == k.ITEM_BLOCK else self._relay_codes[message_kind]
        first = ntx = 0
        full_size = size
        if relay == k.COMPACT and self.compact is not None:
            if contents is None:
                raise ValueError("a block relayed compactly needs its contents")
            ntx = len(contents.msg_ids)
            first = self._store_contents(contents)
            size = self.compact.size(ntx + contents.held_everywhere)
        elif self.compact is not None and kind != k.ITEM_BLOCK and kind != k.ITEM_INVALID:  # held bits: compact relay only
            self._hold_room(item)
        if self.before_first_call is not None:
            self._first_call()
        while True:
            if self._inject(self._inject_args, t, node, item, kind, size, relay, first, ntx, full_size) >= 0:
                break
            if self.scalars[k.S_FREE] == 0:
                self._grow_slots()
            else:
                self._grow_heap()
        self.t_next = t if self.t_next < 0 or t < self.t_next else self.t_next

    # --- sends run by the kernel -------------------------------------------------------

    def set_sends(self, t: np.ndarray, node: np.ndarray, item: np.ndarray, size: np.ndarray,
                  kind: np.ndarray | None = None, message_kind: np.ndarray | None = None) -> None:
        """A traffic batch the kernel may send from (``allow_sends`` says which part);
        ``kind``: each message's item kind (default ``ITEM_MSG``; ``ITEM_WATCHED`` for those
        a reactor watches); ``message_kind``: each message's kind code (its relay protocol)."""
        kinds = np.full(len(t), k.ITEM_MSG, dtype=np.int64) if kind is None else kind
        relay = self.relay_of(np.zeros(len(t), dtype=np.int64) if message_kind is None else message_kind)
        self.sends = np.stack([np.asarray(column, dtype=np.int64) for column in (t, node, item, size, kinds, relay)])
        if len(t):
            self._hold_room(int(self.sends[k.SEND_ITEM].max()))
        self.scalars[k.S_SEND_I] = self.scalars[k.S_SEND_END] = 0
        self._bind()

    def allow_sends(self, first: int, end: int) -> None:
        """The next ``run`` sends messages ``first`` .. ``end - 1`` of the batch that fall
        before its ``until``; ``send_index`` tells how far it got."""
        self.scalars[k.S_SEND_I] = first
        self.scalars[k.S_SEND_END] = end

    @property
    def send_index(self) -> int:
        return int(self.scalars[k.S_SEND_I])

    def stop_forwarding(self, kind: int, items: set[int]) -> None:
        """Items that must not spread further (blocks orphaned by a failover)."""
        live = self.slots[k.SL_OUTSTANDING] > 0
        mask = live & (self.slots[k.SL_KIND] == kind) & np.isin(self.slots[k.SL_ITEM], list(items))
        self.slots[k.SL_FORWARD, mask] = 0

    def live_items(self, kind: int) -> set[int]:
        """Items of a kind still being propagated (``ITEM_MSG``: every message, watched or not)."""
        kinds = self.slots[k.SL_KIND]
        live = (self.slots[k.SL_OUTSTANDING] > 0) & ((kinds != k.ITEM_BLOCK) if kind == k.ITEM_MSG else (kinds == kind))
        return set(self.slots[k.SL_ITEM, live].tolist())

    def _hold_room(self, msg_id: int) -> None:
        """Grow ``held`` (doubling) so that it has a bit for ``msg_id``."""
        if self.compact is None or msg_id < 8 * self.held.shape[1]:
            return
        columns = self.held.shape[1]
        while 8 * columns <= msg_id:
            columns *= 2
        held = np.zeros((self.n, columns), dtype=np.uint8)
        held[:, :self.held.shape[1]] = self.held
        self.held = held
        self._bind()

    def _store_contents(self, contents: BlockContents) -> int:
        """Append a block's messages to ``contents``; return where they start. When full, the
        blocks still in flight keep theirs (moved to the front) and the rest are dropped; it
        doubles if that is not room enough."""
        ntx = len(contents.msg_ids)
        if len(contents.msg_ids):
            self._hold_room(int(contents.msg_ids.max()))
        if self.contents_fill + ntx > self.contents.shape[1]:
            live = np.flatnonzero((self.slots[k.SL_OUTSTANDING] > 0) & (self.slots[k.SL_NTX] > 0))
            kept = [self.contents[:, self.slots[k.SL_CONTENT, s]:self.slots[k.SL_CONTENT, s] + self.slots[k.SL_NTX, s]]
                    for s in live.tolist()]
            fill = sum(block.shape[1] for block in kept)
            columns = self.contents.shape[1]
            while fill + ntx > columns:
                columns *= 2
            moved = np.zeros((2, columns), dtype=np.int64)
            at = 0
            for s, block in zip(live.tolist(), kept, strict=True):
                moved[:, at:at + block.shape[1]] = block
                self.slots[k.SL_CONTENT, s] = at
                at += block.shape[1]
            self.contents = moved
            self.contents_fill = fill
            self._bind()
        first = self.contents_fill
        self.contents[0, first:first + ntx] = contents.msg_ids
        self.contents[1, first:first + ntx] = contents.sizes
        self.contents_fill += ntx
        return first

    # --- running -----------------------------------------------------------------------

    def run(self, until: int) -> tuple[int, int, int, int, int, int] | None:
        """Run receipts before ``until``; return the first watched validation, if any, as
        ``(t_ns, node, item, kind, sender, hops)``. ``t_next`` is the next receipt's time
        afterwards (-1: none). ``relays`` False: the kernel's loop for push alone, which
        hands over to the whole loop if the run needs it."""
        if self.before_first_call is not None:
            self._first_call()
        while True:
            run_until = self._run_until
            if run_until is None:
                loop = k.run_until if self.relays else k.run_until_push
                run_until = self._run_until = direct_call(loop, until, *self._args)
            code = run_until(until, *self._args)
            if code == k.DONE:
                self.t_next = int(self.scalars[k.S_NEXT])
                return None
            if code == k.NOTIFY:
                scalars = self.scalars.tolist()  # one conversion for all seven
                self.t_next = scalars[k.S_NEXT]
                return (scalars[k.S_NT], scalars[k.S_NNODE], scalars[k.S_NITEM], scalars[k.S_NKIND],
                        scalars[k.S_NSENDER], scalars[k.S_NHOPS])
            if code == k.NEED_UNIFORM:
                self._refill_uniform()
            elif code == k.NEED_PROCESSING:
                self._refill_processing()
            elif code == k.HEAP_FULL:
                self._grow_heap()
            elif code == k.DELIVERIES_FULL:
                self._take_deliveries()
            elif code == k.NEED_SLOTS:
                self._grow_slots()
            elif code == k.LOG_FULL:
                self._take_mempool_log()
            elif code == k.HOPS_FULL:
                self._take_hop_log()
            elif code == k.QUIET_FULL:
                self._grow_quiet()
            elif code == k.NEED_RELAYS:  # an item not pushed: the loop with the relay events
                self.relays, self._run_until = True, None

    def _first_call(self) -> None:
        wait, self.before_first_call = self.before_first_call, None
        if wait is not None:
            wait()

    def _bind(self) -> None:
        """The kernel's array arguments, rebuilt whenever an array is replaced (and the
        compiled kernel for their types looked up again at the next call, unless every
        argument has the types it had: ``jit.types_key``)."""
        inject_args = (self.keys, self.payload, self.pool, self.scalars, self.slots, self.seen, self.free_slots)
        if types_key(inject_args) != types_key(self._inject_args):
            self._inject.reset()
        self._inject_args = inject_args
        args = (self.max_degree, self.keys, self.payload, self.pool, self.scalars, self.nodes,
                self.slots, self.seen, self.free_slots, self.watch, self.fwd_ptr, self.fwd_idx, self.fwd_base,
                self.fwd_model, self.fwd_param, self.topology.link_samples.array, self.uniform, self.processing,
                self.ns_per_byte, self.degradations.nodes, self.degradations.params, self.deliveries,
                self.mempool_log, self.sends, self.order, self.held, self.contents, self.block_parent,
                self.block_holds, self.hop_log, self.release, self.quiet, self.votes, self.tally, self.votes_held)
        if types_key(args) != types_key(self._args):
            self._run_until = None
        self._args = args

    def _grow_quiet(self) -> None:
        """Double the quiet announcements' buffer (it is full of ones still to arrive)."""
        count = int(self.scalars[k.S_QUIET])
        quiet = np.zeros((k.Q_ROWS, 2 * self.quiet.shape[1]), dtype=np.int64)
        quiet[:, :count] = self.quiet[:, :count]
        self.quiet = quiet
        self._bind()

    def _refill_uniform(self) -> None:
        rest = self.uniform[self.scalars[k.S_UNIF]:]
        self.uniform = np.concatenate([rest, self.link_rng.random(_UNIFORM_BLOCK)])
        self.scalars[k.S_UNIF] = 0
        self._bind()

    def _refill_processing(self) -> None:
        self._processing_draws = sample_array(self.processing_dist, self.processing_rng, _PROCESSING_BLOCK)
        scaled = self._processing_draws if self.processing_scale == 1.0 else self._processing_draws * self.processing_scale
        self.processing = np.rint(scaled).astype(np.int64)
        self.scalars[k.S_PROC] = 0
        self._bind()

    def _grow_heap(self) -> None:
        """Double the heap when it is nearly full; renumber the sequence keys either way."""
        capacity = self.pool.shape[0]
        if self.scalars[k.S_ROWS] + self.max_degree + 2 > capacity:
            keys = _heap_keys(2 * capacity)
            keys[:self.keys.shape[0]] = self.keys
            self.keys = keys
            payload = _aligned(2 * self.payload.shape[0])
            payload[:self.payload.shape[0]] = self.payload
            self.payload = payload
            self.pool = np.concatenate([self.pool, np.arange(capacity, 2 * capacity, dtype=np.int64)])
        self._renumber_keys()
        self._bind()

    def _renumber_keys(self) -> None:
        """Renumber the live receipts' seqs 0.. in their order and repack the heap keys for
        the heap's capacity. A heap entry stands for its run (the receipts linked after
        it, with consecutive seqs), so it gets the run's length in numbers; a quiet
        announcement (the kernel's Q_SEQ) one number. The order of every pair of receipts,
        live or future, stays as it was, so the heap stays valid."""
        old_bits = int(self.scalars[k.S_IDX_BITS])
        bits = max(1, (self.pool.shape[0] - 1).bit_length())
        if 2 * bits + 2 > _KEY_BITS:  # renumbering must leave room for more events than fit
            raise MemoryError(f"the gossip event heap outgrew {1 << bits:,} events")
        n = int(self.scalars[k.S_HEAP])
        live = self.keys[2 * k.ROOT:2 * (k.ROOT + n)].reshape(n, 2)
        idx = live[:, 1] & ((1 << old_bits) - 1)
        length = np.ones(n, dtype=np.int64)
        after = self.payload[4 * idx + k.P_NEXT]
        while (more := after >= 0).any():
            length += more
            after[more] = self.payload[4 * after[more] + k.P_NEXT]
        quiet = self.quiet[k.Q_SEQ, :int(self.scalars[k.S_QUIET])]
        old_seq = np.concatenate([live[:, 1] >> old_bits, quiet])
        length = np.concatenate([length, np.ones(quiet.size, dtype=np.int64)])
        order = np.argsort(old_seq)
        first = np.empty(old_seq.size, dtype=np.int64)
        first[order] = np.cumsum(length[order]) - length[order]
        live[:, 1] = (first[:n] << bits) | idx
        quiet[:] = first[n:]
        self.scalars[k.S_SEQ] = int(length.sum())
        self.scalars[k.S_IDX_BITS] = bits
        self.scalars[k.S_SEQ_LIMIT] = 1 << (_KEY_BITS - bits)

    def _take_deliveries(self) -> None:
        count = int(self.scalars[k.S_DELIV])
        if count:
            self.delivered.append(self.deliveries[:, :count].copy())
            self.delivered_rows += count
        self.scalars[k.S_DELIV] = 0

    def _take_mempool_log(self) -> None:
        count = int(self.scalars[k.S_LOGGED])
        if count:
            self.mempool_logged.append(self.mempool_log[:, :count].copy())
        self.scalars[k.S_LOGGED] = 0

    def _take_hop_log(self) -> None:
        count = int(self.scalars[k.S_HOPS_LOGGED])
        if count:
            self.hop_logged.append(self.hop_log[:, :count].copy())
            self.hop_rows += count
        self.scalars[k.S_HOPS_LOGGED] = 0

    def drain_hop_log(self) -> np.ndarray:
        """The hop log's rows since the last call, in event order: int64[k.H_ROWS, n]."""
        self._take_hop_log()
        taken, self.hop_logged, self.hop_rows = self.hop_logged, [], 0
        return np.concatenate(taken, axis=1) if taken else np.zeros((k.H_ROWS, 0), dtype=np.int64)

    def drain_mempool_log(self) -> np.ndarray:
        """The validations logged since the last call, in order: int64[4, n], rows
        ``k.LOG_NODE``, ``k.LOG_ITEM``, ``k.LOG_T`` (ns) and ``k.LOG_KIND`` (``k.ITEM_BLOCK``
        for a block, else the message's item kind)."""
        if not self.mempool_logged:  # the usual case, at every slice: one piece or none
            count = int(self.scalars[k.S_LOGGED])
            if not count:
                return _NO_LOG
            self.scalars[k.S_LOGGED] = 0
            return self.mempool_log[:, :count].copy()
        self._take_mempool_log()
        taken, self.mempool_logged = self.mempool_logged, []
        if not taken:
            return np.zeros((4, 0), dtype=np.int64)
        return np.concatenate(taken, axis=1) if len(taken) > 1 else taken[0]

    def drain_deliveries(self) -> np.ndarray:
        """Recorded deliveries since the last call: int64[4, n] (msg, node, t, hops)."""
        self._take_deliveries()
        taken = self.delivered
        self.delivered = []
        self.delivered_rows = 0
        return np.concatenate(taken, axis=1) if taken else np.zeros((4, 0), dtype=np.int64)

    @property
    def quiet_announcements(self) -> bool:
        """Whether an announcement to a peer that holds the payload stays out of the
        kernel's heap (``k.Q_T``; the default). Off, every one goes through the heap: the
        reference ``tests/test_sim_kernel_quiet.py`` compares with. Set before the first run."""
        return bool(self.scalars[k.S_QUIET_ON])

    @quiet_announcements.setter
    def quiet_announcements(self, on: bool) -> None:
        self.scalars[k.S_QUIET_ON] = 1 if on else 0

    def set_processing_scale(self, scale: float) -> None:
        """Every validation from now on takes ``scale`` times the processing drawn (a relay
        sample's left-out load on the CPUs: sim/background_load.py)."""
        if scale == self.processing_scale:
            return
        self.processing_scale = scale
        start = int(self.scalars[k.S_PROC])
        if start < self.processing.size:
            self.processing[start:] = np.rint(self._processing_draws[start:] * scale).astype(np.int64)

    @property
    def woken(self) -> int:
        """Quiet announcements put back into the heap: their node forgot its request (a
        timeout with no peer left to ask) before they arrived."""
        return int(self.scalars[k.S_WOKEN])

    @property
    def steps(self) -> int:
        return int(self.scalars[k.S_STEPS])

    @property
    def receipts(self) -> int:
        """Message receipts so far, duplicates included (every arrival at a live node)."""
        return int(self.scalars[k.S_RECEIPTS])

    @property
    def relay_counts(self) -> tuple[int, int, int]:
        """Announcements received, requests served and fallback requests (after a timeout) so far."""
        return (int(self.scalars[k.S_ANNOUNCES]), int(self.scalars[k.S_REQUESTS]), int(self.scalars[k.S_FALLBACKS]))

    @property
    def wants_contents(self) -> bool:
        """Whether ``inject`` needs a block's contents (compact relay rebuilds blocks from them)."""
        return self.compact is not None

    @property
    def compact_counts(self) -> tuple[int, int, int, int]:
        """Compact relay so far: compact blocks a node had already (duplicates), getblocktxn
        requests, the messages they asked for, and the bytes served in answer."""
        return (int(self.scalars[k.S_CMPCT_DUPS]), int(self.scalars[k.S_GETTXN]), int(self.scalars[k.S_TXN_MISSING]),
                int(self.scalars[k.S_TXN_BYTES]))

    @property
    def compact_held(self) -> int:
        """Messages of compact blocks that their receivers held already (not sent again)."""
        return int(self.scalars[k.S_TXN_HELD])

    @property
    def payloads_sent(self) -> int:
        """Payload copies put on uplinks so far (pushes, answers to requests, missing messages)."""
        return int(self.scalars[k.S_PAYLOADS])

    @property
    def uploaded_bytes(self) -> np.ndarray:
        """Payload bytes each node has put on its uplink so far (int64 per node)."""
        return np.array(self.nodes[k.N_UP_BYTES], dtype=np.int64)

    @property
    def block_receipts(self) -> int:
        return int(self.scalars[k.S_BLOCK_RECEIPTS])

    # --- node state and faults -----------------------------------------------------------

    def up(self, node: int) -> bool:
        return bool(self.nodes[k.N_UP, node])

    def set_up(self, node: int, up: bool, t: int) -> None:
        self.nodes[k.N_UP, node] = 1 if up else 0
        self.nodes[k.N_CPU, node] = self.nodes[k.N_UPLINK, node] = t

    def validation_backlog(self, t: int, lone_cpu_free: dict[int, int], most: int) -> list[tuple[int, int]]:
        """``(node, ns)``: the CPU time of validation work queued at ``t`` (received, not yet
        validated) at the ``most`` nodes with the most (of those with any), in node order;
        the kernel's CPUs and those of nodes without peers (``lone_cpu_free``: when each is
        next free, for the nodes ``LoneCpu.cpu_queues`` gives; 0 for the rest)."""
        if not lone_cpu_free and int(self.nodes[k.N_CPU].max()) <= t:
            return []  # every CPU free (most samples): none of the work below
        backlog = self.nodes[k.N_CPU] - t
        if lone_cpu_free:
            lone, free = np.array(list(lone_cpu_free.items()), dtype=np.int64).reshape(-1, 2).T
            backlog[lone] = np.maximum(backlog[lone], free - t)
        busy = np.flatnonzero(backlog > 0)
        top = busy[np.argsort(-backlog[busy], kind="stable")[:most]]
        return [(node, int(backlog[node])) for node in sorted(top.tolist())]

    def set_colours(self, colour: list[int]) -> None:
        self.nodes[k.N_COLOUR, :] = colour

    def set_watched(self, nodes: list[int], reactor_nodes: Iterable[int] = (), logged: Iterable[int] = ()) -> None:
        """The nodes whose validations come back to Python: ``nodes`` (the leader) for every
        message, ``reactor_nodes`` for watched messages only; ``logged`` (the standbys, a
        fork chain's producers) log the rest of their message validations for
        ``drain_mempool_log`` (with ``log_mempools`` False they hand back every message too,
        the reference the tests compare with). With ``log_leader`` set, ``nodes`` log theirs
        too (a watched message still comes back). Whatever was logged before stays to be
        drained. A censoring or holding node stays one."""
        self.watch[:] &= k.WATCH_CENSOR | k.WATCH_HOLD
        for node in logged:
            self.watch[node] |= k.WATCH_LOG if self.log_mempools else k.WATCH_ALL
        for node in reactor_nodes:
            self.watch[node] |= k.WATCH_WATCHED
        for node in nodes:
            self.watch[node] |= k.WATCH_LOG if self.log_leader else k.WATCH_ALL

    def hand_back_leader(self, node: int) -> None:
        """``log_leader`` off from now on: ``node`` (the leader) hands back every message
        it validates again (its own log entries, if a standby's, still come first)."""
        self.log_leader = False
        self.watch[node] |= k.WATCH_ALL

    def log_validations(self, node: int) -> None:
        """``node``'s validations of messages are logged from now on, as ``set_watched``'s
        ``logged`` nodes' are (a producer's twin keeps a mempool there)."""
        self.watch[node] |= k.WATCH_LOG if self.log_mempools else k.WATCH_ALL

    def view_blocks(self, parent: np.ndarray, holds: np.ndarray) -> None:
        """A fork chain's block tree, shared with the kernel: ``parent[block]`` (int64) and
        ``holds[block, node]`` (uint8: 1 where the node's view holds the block's whole
        branch, 2 where the block waits there for its parent, else 0). From then on the kernel logs a block validation that only connects the
        block (``k.S_LOG_BLOCKS``) and writes ``holds`` itself; called again whenever the
        chain replaces either array (it grows them as blocks are made)."""
        self.block_parent, self.block_holds = parent, holds
        self.scalars[k.S_LOG_BLOCKS] = 1
        self._bind()

    def count_votes(self, base: int, votes: np.ndarray, tally: np.ndarray, total: int,
                    votes_held: np.ndarray) -> None:
        """Round-based consensus's proposals and votes (item ids from ``base``), described in
        ``votes`` (``k.V_ROWS`` rows), counted in ``tally`` and marked in ``votes_held`` (a bit
        per node and message) by the kernel from then on (``kernel._count_vote``); called
        again whenever consensus replaces an array. The number of messages described is
        ``scalars[k.S_VOTE_COUNT]``, which consensus sets."""
        self.votes, self.tally, self.votes_held = votes, tally, votes_held
        self.relays, self._run_until = True, None  # the kernel's whole loop counts votes
        self.scalars[k.S_VOTE_BASE] = base
        self.scalars[k.S_VOTE_TOTAL] = total
        self._bind()

    def set_censoring(self, node: int, on: bool) -> None:
        """A node withholds censorable items (``k.ITEM_CENSORABLE``) from now on, or no longer."""
        self.watch[node] = (self.watch[node] | k.WATCH_CENSOR) if on else (self.watch[node] & (0xFF ^ k.WATCH_CENSOR))

    @property
    def invalid_validated(self) -> int:
        """Invalid items (``k.ITEM_INVALID``) their receivers validated and dropped."""
        return int(self.scalars[k.S_INVALID])

    def set_holding(self, node: int, hold_ns: int, spread_ns: int) -> None:
        """A node holds each item it validated ``hold_ns`` plus a uniform draw in
        [0, ``spread_ns``) before it forwards it, and answers no request for it sooner, from
        now on (both 0: no longer)."""
        if (hold_ns > 0 or spread_ns > 0) and self.nodes[k.N_HOLD_COL, node] < 0:
            self.nodes[k.N_HOLD_COL, node] = self.release.shape[1]
            self.release = np.concatenate([self.release, np.zeros((self.release.shape[0], 1), dtype=np.int64)], axis=1)
            self._bind()
        elif hold_ns > 0 or spread_ns > 0:
            self.release[:, self.nodes[k.N_HOLD_COL, node]] = 0  # nothing held from an earlier window
        self.nodes[k.N_HOLD, node] = hold_ns
        self.nodes[k.N_HOLD_SPREAD, node] = spread_ns
        holding = hold_ns > 0 or spread_ns > 0
        self.watch[node] = (self.watch[node] | k.WATCH_HOLD) if holding else (self.watch[node] & (0xFF ^ k.WATCH_HOLD))

    def degradations_changed(self) -> None:
        """Take the shared ``Degradations`` after a fault added or removed one."""
        self.scalars[k.S_NDEG] = self.degradations.count
