"""The shadow network: the simulated target, run as a discrete-event simulation.

Lifecycle: ``ShadowNetwork(scenario, writer, seed)`` builds the topology, the links and the
roles; ``run(traffic)`` drives virtual time until the traffic is sent and every message
settled (or ``run.drain`` has passed), streaming rows into the history writer; ``finish()``
settles what is left (pending/lost) and returns the end time.

Per message: the sending agent's node validates it and gossips it over the overlay; each
receipt costs the receiving node processing time (duplicates too); the leader's
``Sequencer`` admits it through backpressure into its queue policy and serves it; the
``Chain`` packs sequenced messages into blocks, gossips them, collects votes and commits;
the ``FaultInjector`` applies scheduled faults. The sequencer is one class built from
parts (``sim/sequencer.py``: backpressure, the queue policy and its hooks, the liquidation
lane of ``sim/lane.py`` when the scenario sets one); the controllers (``sim/control.py``)
look at it and the chain every ``every``. The roles share a ``SimContext``
(``sim/context.py``); this module is only the loop that merges their event streams, the
send path and the routing of validations.

Every gossip receipt runs in the compiled kernel (``GossipState``, ``sim/kernel.py``).
The loop merges three time-ordered streams: traffic sends (pre-sorted arrays, never on a
heap), Python events (``EventQueue``) and kernel receipts; at equal times sends go first,
then Python events, then receipts. The kernel runs until the next send or Python event,
or until a watched node validates an item (the leader for messages, any node for blocks),
which Python then handles at exactly that time; a standby's validations are logged by the
kernel for its mempool (``Chain`` reads the log before it reads a mempool). When nothing the
sequencer does reaches the kernel (``sim/intake_log.py``), the leader's validations are
logged too, the sequencer's service completions wait on a heap of their own, and the kernel
runs on to the next other Python event; Python then replays intakes and completions in time
order after each kernel run.

Under a relay sample (``[network.relay] sample``, sim/sampled_pool.py) only the sampled
messages of each traffic batch go to the kernel (and get records here); the rest are the
producers' pool's from the start.

Reactors and queue policies with hooks (``sim/policies.py``: batch auction, commit-reveal,
fair ordering) see the simulator through ``SimHost`` (``sim/host.py``): a clock, ``wake``,
``send``, message records, what a watcher sees of a message and when a committed one
takes effect. A policy that watches the nodes is also told every validation of every
message at every node (all messages then travel as watched items).

A one-node network has no receipts to gossip; when ``solo_plan`` accepts its scenario the
whole loop runs compiled instead (``sim/solo.py``, driven by ``SoloDriver``), built from
the same ``Sequencer`` rules. ``reference=True`` keeps it here (the tests compare the two).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cached_property
from heapq import heappop
from typing import Any

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.history.writer import HistoryWriter
from msgstorm.progress import Progress
from msgstorm.sampling import Drawn, Sampler
from msgstorm.scenario.budget import estimate_work
from msgstorm.scenario.network import BLOCK_KIND
from msgstorm.scenario.registry import QUEUE_POLICIES
from msgstorm.scenario.schema import MESSAGE_KINDS, Scenario
from msgstorm.sim import warm
from msgstorm.sim.background_load import BackgroundLoad
from msgstorm.sim.backpressure import make_backpressure
from msgstorm.sim.block_contents import CompactRelay, compact_nodes
from msgstorm.sim.censor import censorable
from msgstorm.sim.chain import Chain, gas_table
from msgstorm.sim.changes import quiet_samples
from msgstorm.sim.context import Cluster, EventQueue, Handler, SimContext, Tally
from msgstorm.sim.control import ControlHost, build_controllers, start_controllers
from msgstorm.sim.fault_injector import FaultInjector
from msgstorm.sim.forks import ForkChain
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.hop_stages import HopStages, hop_stride
from msgstorm.sim.host import SimHost
from msgstorm.sim.intake_log import LoggedIntake
from msgstorm.sim.integrity import security_costs, verified_processing
from msgstorm.sim.kernel import ITEM_BLOCK, ITEM_CENSORABLE, ITEM_MSG, ITEM_WATCHED
from msgstorm.sim.links import LinkState
from msgstorm.sim.lone_cpu import LoneCpu
from msgstorm.sim.policies import Ordering
from msgstorm.sim.recorder import FLUSH_ROWS, Recorder
from msgstorm.sim.relay_counts import relay_report
from msgstorm.sim.rollup.timeboost import ExpressLane
from msgstorm.sim.sequencer import Sequencer
from msgstorm.sim.solo import SoloSequencer
from msgstorm.sim.solo_driver import SoloDriver
from msgstorm.sim.solo_loop import END_CHECK_MASK
from msgstorm.sim.solo_plan import solo_plan
from msgstorm.sim.state import (
    AGENT,
    HELD,
    IN_BLOCK,
    IN_FLIGHT,
    IN_SERVICE,
    KIND,
    LOST,
    NULL,
    ORIGIN,
    PENDING,
    QUEUED,
    SEQUENCED,
    SIZE,
    T_SENT,
    WHERE,
    MessageState,
)
from msgstorm.sim.telemetry import Telemetry
from msgstorm.sim.topology import Topology, build_topology, edge_columns
from msgstorm.traffic.generate import MessageBatch
from msgstorm.traffic.reactor import Reactor, build_reactors, numbered

__all__ = ["BACKLOG_NODES", "Progress", "ShadowNetwork"]

# The most backlogged nodes sampled per ``validation_backlog`` sample (a thousand-node run
# would otherwise write a thousand events per sample).
BACKLOG_NODES = 32


def _ns_per_byte(bits_per_s: list[float]) -> np.ndarray:
    """Transfer time per byte of each node's bandwidth (0: unlimited, no time)."""
    bps = np.asarray(bits_per_s, dtype=np.float64)
    return np.divide(8e9, bps, out=np.zeros_like(bps), where=bps > 0)


def _gossip_state(scenario: Scenario, topology: Topology, processing: Drawn, links: LinkState,
                  delivery_stride: int, topo_seed: np.random.SeedSequence,
                  gossip_link_seed: np.random.SeedSequence,
                  gossip_proc_seed: np.random.SeedSequence) -> GossipState:
    """The arrays the gossip kernel runs on, for the scenario's network and relay protocols
    (``GossipState``); the random streams are the topology's, the gossip links' and the gossip
    processing's seeds of ``ShadowNetwork``."""
    network = scenario.network
    relay = network.relay
    upload = [network.upload_bps(topology.regions[r]) for r in topology.region_of]
    download = [network.download_bps(topology.regions[r]) for r in topology.region_of]
    return GossipState(
        topology, processing, _ns_per_byte(upload),
        np.random.default_rng(gossip_link_seed), np.random.default_rng(gossip_proc_seed), links.degradations,
        delivery_stride=delivery_stride,
        delivery_budget=scenario.history.max_deliveries,
        # A child of the gossip link stream: drawing it moves no other stream.
        order_seed=int(gossip_link_seed.spawn(1)[0].generate_state(1, np.uint64)[0] >> np.uint64(1)),
        message_relay=np.asarray([relay.code(kind) for kind in MESSAGE_KINDS], dtype=np.int64),
        block_relay=relay.code(BLOCK_KIND),
        relay_timeout_ns=relay.timeout,
        download_ns_per_byte=_ns_per_byte(download),
        fair_share=network.uplink == "fair_share",
        uplink_held=network.uplink == "held",
        control_overhead_ns=relay.control_overhead,
        compact=CompactRelay(relay.compact_header, relay.short_id, relay.high_bandwidth,
                             relay.rebuild_failure),
        trace_hops=not relay.pushes_only,
        # Which nodes speak compact relay is part of the network's make-up: drawn from a
        # child of the topology's stream (no draw, and no stream moved, at share 1).
        compact_nodes=compact_nodes(topology.size, relay.compact_share,
                                    np.random.default_rng(topo_seed.spawn(1)[0])),
        # Traced messages are among those relayed (a relay sample relays every n-th msg_id).
        hop_stride=hop_stride(delivery_stride and math.lcm(delivery_stride, relay.sample_stride),
                              estimate_work(scenario).messages),
    )


class ShadowNetwork:
    _quiet = False  # the last sample would read the same next time unless something happens

    def __init__(
        self,
        scenario: Scenario,
        writer: HistoryWriter,
        seed: np.random.SeedSequence,
        progress: Progress | None = None,
        helper_cpus: int | None = None,
        reference: bool = False,
    ) -> None:
        """``reference=True`` runs every part on its Python path, the reference the tests
        compare the compiled paths with, history for history: a one-node network in the
        Python loop (not ``sim/solo.py``'s), every validation and block handed back to Python
        rather than logged in the gossip kernel, and the leader's intake and service
        completions with the other Python events (no ``sim/intake_log.py``, so no block
        step). ``helper_cpus`` is how many CPUs a helper compiling the loop may count on
        (``sim/warm.py``; default: as the OS says, 0: no helper)."""
        self.scenario = scenario
        self.writer = writer
        topo_seed, link_seed, proc_seed, svc_seed, gossip_link_seed, gossip_proc_seed = seed.spawn(6)
        self.topology = topology = build_topology(scenario.network, scenario.gossip, np.random.default_rng(topo_seed))
        names = topology.names
        self.links = LinkState(topology, np.random.default_rng(link_seed))
        # Verifying a signed message adds its cost to every receipt's processing ([security]).
        self.security = security_costs(scenario)
        processing = verified_processing(scenario, self.security)
        self.processing_mean_ns = processing.mean
        self.processing = Sampler(processing, np.random.default_rng(proc_seed))
        service = Sampler(scenario.sequencer.service, np.random.default_rng(svc_seed))
        relay = scenario.network.relay
        sample = scenario.history.delivery_sample
        # Deliveries are recorded for every stride-th msg_id (by the kernel and LoneCpu).
        self.delivery_stride = 0 if sample <= 0 else max(1, round(1 / sample))
        network = scenario.network
        self.gossip = _gossip_state(scenario, topology, processing, self.links, self.delivery_stride, topo_seed,
                                    gossip_link_seed, gossip_proc_seed)
        # Each hop's stages, when a relay protocol other than push is set (opt-in: push-only
        # histories stay as they were).
        self.hop_stages = None if relay.pushes_only else HopStages(len(names))
        seq = scenario.sequencer
        index = {name: i for i, name in enumerate(names)}
        cluster = Cluster(names=names, up=[True] * len(names),  # up is mirrored in the kernel's arrays
                          leader=index[seq.node] if seq.node is not None else 0,
                          standby=[index[name] for name in seq.standby],
                          isolated=[not peers for peers in topology.forward])
        # Reactive agents (the market): built before the message state, which names their agents.
        self.host = SimHost(scenario, writer, list(names), [topology.regions[r] for r in topology.region_of], topology)
        self.reactors: list[Reactor] = build_reactors(scenario, self.host, seed.spawn(1)[0])
        # A policy with hooks (sim/policies.py) is attached below; one that watches the nodes
        # is told every validation of every message at every node (``_on_validated``).
        ordering = Ordering.of(QUEUE_POLICIES[seq.policy]())
        self._policy_received = ordering.received
        agent_names = [a.name for a in scenario.agents] + [name for r in self.reactors for name in r.agents]
        self.msgs = MessageState(agent_names, names)
        self.record = Recorder(writer, self.msgs, names)
        writer.append("edges", edge_columns(topology))
        self.ctx = SimContext(scenario, EventQueue(), cluster, self.msgs, self.record, Tally(),
                              hard_stop=scenario.run.duration + scenario.run.drain,
                              watched={node for r in self.reactors for node in r.watched}
                              | (set(range(len(names))) if ordering.received is not None else set()))
        self.cluster = cluster
        # The standbys' validations of messages fill their mempools only: the kernel logs
        # them and runs on (Chain reads the log before it reads a mempool).
        self.gossip.log_mempools = not reference
        self.gossip.set_watched([cluster.leader], self.ctx.watched, logged=cluster.standby)
        # Message kinds the reactors watch travel as ITEM_WATCHED: the kernel hands back their
        # validations at the reactors' nodes, and only theirs.
        watched_kinds = {kind for r in self.reactors for kind in r.watched_kinds}
        if ordering.received is not None:
            watched_kinds = set(MESSAGE_KINDS)
        self._watched_codes = np.array(sorted(MESSAGE_KINDS.index(kind) for kind in watched_kinds), dtype=np.int64)
        self._watched_code_set = set(self._watched_codes.tolist())
        # Messages a censor_nodes fault censors (bool[kind code, agent index]) travel with
        # ITEM_CENSORABLE set (sim/censor.py); None: a run without one.
        self._censorable = censorable(scenario, agent_names)
        self.now = 0
        self.end_of_traffic = scenario.run.duration
        self.interrupted = False
        self.telemetry = None if progress is None else Telemetry(self.ctx, progress)
        self.lone = LoneCpu(self.ctx, self.processing, self.delivery_stride, self._on_validated)
        # One sequencer for every run, built from its parts (sim/sequencer.py): the lane is
        # the scenario's sequencer.lane, a gate is added by a controller that sheds.
        self.sequencer = Sequencer(self.ctx, ordering, make_backpressure(scenario.backpressure), service,
                                   release=self._inject)
        if scenario.rollup is not None and scenario.rollup.timeboost is not None:  # an express lane in front
            ExpressLane(self.ctx, self.sequencer, scenario.rollup.timeboost).install()
        self.host.connect(self.ctx, self.sequencer, self._inject, self.reactors, agent_names)
        gas_of = gas_table(scenario.blocks.gas, MESSAGE_KINDS)
        on_commit = self.host.commit_listener(None if self.telemetry is None else self.telemetry.committed)
        # Blocks come from the one sequencer, or from producers across the nodes (sim/forks.py),
        # whose mempools take the validations the leader's sequencer takes otherwise.
        self.chain: Chain | ForkChain
        if scenario.blocks.producers is None:
            self.chain = Chain(self.ctx, self.sequencer, topology, self.links, self.gossip, self.lone, gas_of,
                               on_commit)
        else:
            self.chain = ForkChain(self.ctx, self.gossip, self.links, writer, gas_of, on_commit,
                                   np.random.default_rng(seed.spawn(1)[0]), kernel_blocks=not reference)
            # Their validations of messages only fill their mempools: logged by the kernel
            # (ForkChain.take_logged, after every kernel run).
            self.gossip.set_watched([], self.ctx.watched, logged=self.chain.producers)
        # Under a relay sample, what the unsampled messages cost the nodes (opt-out: sample_load).
        self.background = (BackgroundLoad(self.gossip, scenario.run.window, scenario.run.duration, network.uplink == "held",
                                          self.processing_mean_ns)
                           if relay.sample is not None and relay.sample_load == "derate" else None)
        self._sequencing = isinstance(self.chain, Chain)
        self.controllers = (build_controllers(scenario, ControlHost(self.ctx, self.sequencer, self.chain))
                            if scenario.controllers and isinstance(self.chain, Chain) else [])
        self.faults = FaultInjector(self.ctx, self.links, self.gossip, self.sequencer, self.chain, self.lone)
        # A one-node network runs its whole loop compiled when its rules allow (sim/solo.py).
        # Reactions need the Python loop (the compiled one cannot call back): same rules.
        plan = (solo_plan(scenario, cluster.size, self.sequencer, gas_of)
                if not reference and not self.reactors and ordering.attach is None else None)
        # On a cold numba cache a helper process compiles the loop this run uses while this
        # one generates traffic; the loop's first call waits for it (sim/warm.py). Nodes
        # without peers all (the Python loop's one-node network) never call the kernel.
        loop = "solo" if plan is not None else None if all(cluster.isolated) else "gossip"
        big = self.compile_all = warm.worth_compiling(estimate_work(scenario).messages)
        self.helper = warm.start(loop, helper_cpus, self.gossip.relays, big) if loop else None
        self.solo = None if plan is None else SoloDriver(
            self.ctx, SoloSequencer(plan, scenario, self.processing, service, gas_of, self.delivery_stride,
                                    self.lone.delivery_budget),
            self.lone, self.telemetry)
        if ordering.attach is not None:
            ordering.attach(self.host)
        # The leader's intake from the kernel's log, when nothing the sequencer does reaches
        # the kernel (sim/intake_log.py).
        self.intake_log = (LoggedIntake(self.ctx, self.sequencer, self.chain, self.gossip,
                                        warm.uses_block_step(big))
                           if not reference and self.solo is None and isinstance(self.chain, Chain)
                           and LoggedIntake.fits(self.sequencer, self.chain, not any(cluster.isolated)) else None)
        if self.helper is not None:
            if self.solo is None:
                self.gossip.before_first_call = self.helper.wait
            else:
                self.solo.solo.before_first_call = self.helper.wait

    def _item_kinds(self, batch: MessageBatch) -> np.ndarray | None:
        """The kernel's item kind of each message of a batch (watched or not)."""
        if not self._watched_code_set and self._censorable is None:
            return None
        codes = batch.kind.astype(np.int64)
        kinds = np.where(np.isin(codes, self._watched_codes), ITEM_WATCHED, ITEM_MSG).astype(np.int64)
        if self._censorable is None:
            return kinds
        return kinds | np.where(self._censorable[codes, batch.agent], ITEM_CENSORABLE, 0)

    # --- what the runner reads ------------------------------------------------------------

    @property
    def traffic_rows(self) -> int:
        """Messages per traffic batch this network takes best (``generate_traffic``'s
        ``min_rows``): the one-node loop takes windows joined into pieces of FLUSH_ROWS, and
        joined by the generator they need no copy; the network loop takes windows as they are."""
        return FLUSH_ROWS if self.solo is not None else 0

    @property
    def nodes(self) -> list[dict[str, str]]:
        """The nodes in index order, ``{"name", "region"}`` each (the run table's nodes_json)."""
        topology = self.topology
        return [{"name": name, "region": topology.regions[r]} for name, r in zip(topology.names, topology.region_of)]

    # --- the loop ----------------------------------------------------------------------

    def run(self, traffic: Iterable[Any]) -> None:  # noqa: C901
        """Drive virtual time; Ctrl-C stops early and keeps what was recorded."""
        cluster = self.cluster
        self.record.event(0, EventKind.RUN_START, detail={"nodes": cluster.size, "leader": cluster.names[cluster.leader]})
        security = self.scenario.security
        if security is not None and self.security is not None:
            self.record.event(0, EventKind.SECURITY, value=float(self.security.verify_ns), detail={
                "scheme": security.scheme, "verify": security.verify, "chain_id": security.chain_id,
                **self.security.model_dump()})
        if self.solo is not None:
            self.interrupted = not self.solo.run(traffic, self._publish)
            self.now = self.solo.now
            return
        self.faults.start()
        self.chain.start()
        start_controllers(self.controllers, self.ctx)
        self.ctx.events.push(self.scenario.run.sample_interval, tick := self._sample_event)
        heap = self.ctx.events.heap
        msgs = self.msgs
        gossip = self.gossip
        sequencer = self.sequencer
        backpressure = sequencer.backpressure
        tally = self.ctx.tally
        for reactor in self.reactors:
            traffic = reactor.traffic(traffic)
        batches = iter(traffic)
        reacting = bool(self.reactors) or sequencer.ordering.attach is not None  # messages may be created in the run
        send_t: list[int] = []
        send_ids: list[int] = []
        # A sampled relay (``[network.relay] sample``): only the sampled messages are sent
        # through the kernel; the rest wait in the producers' pool (sim/sampled_pool.py).
        pool = self.chain.pool if isinstance(self.chain, ForkChain) else None
        si = sn = 0
        traffic_done = False
        steps = 0  # Python events
        kernel_runs = 0
        hard_stop = self.ctx.hard_stop
        never = hard_stop + 1
        # The kernel starts gossip of each send itself unless a send needs Python: a node
        # without peers validates alone (LoneCpu), suspended senders hold theirs.
        kernel_sends = not any(cluster.isolated)
        fork_chain = self.chain if isinstance(self.chain, ForkChain) else None
        # While the leader's intake comes from the kernel's log, ``heap`` holds the Python
        # events but the service completions, which run as the log is replayed.
        logged = self.intake_log
        end_of_traffic = self.end_of_traffic
        try:
            while True:
                if si >= sn and not traffic_done:
                    batch = next(batches, None)
                    if batch is None:
                        traffic_done = True  # the end is looked for from now on: nothing runs ahead
                        if logged is not None:
                            steps = self._replayed(steps, logged.caught_up())
                    else:
                        if reacting:
                            batch = numbered(batch, msgs.count, self.reactors)
                        if pool is None:
                            msgs.add(batch)
                        else:
                            sampled = pool.add(batch)
                            if self.background is not None:
                                self.background.window(batch, sampled)
                            msgs.add(batch, sampled)
                            tally.emitted += len(batch) - int(sampled.sum())  # sent at their intended times
                            batch = batch.take(sampled)
                            if self.background is not None:
                                self.background.sent(batch)
                        send_t = batch.t_intended.tolist()
                        send_ids = batch.msg_id.tolist()
                        si, sn = 0, len(send_t)
                        if kernel_sends:
                            gossip.set_sends(batch.t_intended, batch.node, batch.msg_id, batch.size,
                                             self._item_kinds(batch) if reacting or self._censorable is not None
                                             else None, batch.kind)
                        continue
                t_send = send_t[si] if si < sn else never
                t_python = heap[0][0] if heap else never
                if (logged is not None and traffic_done and t_python >= end_of_traffic
                        and not logged.keeps_on(heap, never)):
                    # The run may end from the next Python event on: as without the log.
                    logged.stop(heap)
                    logged = self.intake_log = None
                    t_python = heap[0][0] if heap else never
                t_next = t_send if t_send < t_python else t_python
                # Receipts strictly before the next send or Python event run in the kernel;
                # at equal times sends go first, then Python events, then receipts.
                t_kernel = gossip.t_next
                # The kernel also takes the sends before the next Python event when it may.
                sending = (kernel_sends and si < sn and t_send < t_python and not backpressure.suspended
                           and not sequencer.held)
                if sending or (0 <= t_kernel < t_next and t_kernel <= hard_stop):
                    if sending:
                        gossip.allow_sends(si, sn)
                    until = min(t_python if sending else t_next, never)
                    try:
                        found = gossip.run(until)
                    finally:
                        if sending:
                            sent = gossip.send_index
                            gossip.allow_sends(sent, sent)
                            self._mark_sent(send_ids, send_t, si, sent)
                            si = sent
                    if fork_chain is not None:
                        # What the kernel logged comes first, as if each had come back alone.
                        logged_t = fork_chain.take_logged()
                        if logged_t > self.now:
                            self.now = logged_t
                        # Few kernel runs now (one per Python event): stream delivery rows
                        # by their count, not only every 1,024 runs.
                        if gossip.delivered_rows >= FLUSH_ROWS:
                            self.flush_deliveries()
                    if logged is not None:
                        # The leader's validations, and the service completions up to the notice
                        # (or to ``until``), in time order; put off before an event that only
                        # sends, while the end is not looked for (``LoggedIntake.after_run``).
                        ahead = not traffic_done and bool((steps + 1) & 0x3FF)
                        steps = self._replayed(steps, logged.after_run(until, found, heap, ahead))
                    if found is not None:
                        self.now = found[0]
                        self._on_validated(*found)
                    kernel_runs += 1
                    if kernel_runs & 0x3FF == 0:
                        self._stream()
                    continue
                if t_next >= never:
                    break
                elif t_send <= t_python:
                    if logged is not None:  # completions due before the send
                        steps = self._replayed(steps, logged.replay(t_send, False))
                    self.now = t_send
                    if (backpressure.suspended or sequencer.held) and sequencer.holds(send_ids[si]):
                        sequencer.hold(send_ids[si])  # behind held messages, in order
                    else:
                        self._inject(t_send, send_ids[si])
                    si += 1
                    tally.emitted += 1
                    continue
                else:
                    if logged is not None:  # completions due before it (not if it only sends)
                        ahead = not traffic_done and bool((steps + 1) & 0x3FF)
                        steps = self._replayed(steps, logged.before_event(heap[0], ahead))
                    event = heappop(heap)
                    t = event[0]
                    self.now = t
                    event[2](t, event[3], event[4], event[5], event[6])
                    steps += 1 if event[2] is not tick else self._next_sample(t, steps, t_send)
                # Every 64 Python events (kernel runs do not count: how often the kernel hands
                # back depends on how its work is split, not on the simulation), look for the end.
                if steps & END_CHECK_MASK == 0:
                    if traffic_done and self.now >= self.end_of_traffic and self._settled_or_stranded():
                        break
                    if steps & 0x3FF == 0:
                        self._stream()
        except KeyboardInterrupt:
            self.interrupted = True
            self.record.event(self.now, EventKind.INTERRUPTED)

    def _replayed(self, steps: int, ran: int) -> int:
        """``ran`` service completions ran from the intake log (``sim/intake_log.py``): they
        count as Python events, as in the loop (the run cannot end among them, so only
        streaming is due)."""
        if not ran:
            return steps
        assert self.intake_log is not None
        self.now = self.intake_log.now
        if (steps >> 10) != ((steps + ran) >> 10):
            self._stream()
        return steps + ran

    def _stream(self) -> None:
        if self.gossip.delivered_rows >= FLUSH_ROWS or self.gossip.hop_rows >= FLUSH_ROWS:
            self.flush_deliveries()  # stream delivery rows, do not hoard them
        self._publish()

    def _publish(self, final: bool = False) -> None:
        if self.telemetry is not None:
            depth = self.solo.depth if self.solo is not None else self.sequencer.depth
            self.telemetry.publish(self.now if self.solo is None else self.solo.now, depth,
                                   self.sequencer.backpressure.base_fee, len(self.faults.active), final)

    def _mark_sent(self, send_ids: list[int], send_t: list[int], first: int, end: int) -> None:
        """Sends ``first`` .. ``end - 1`` of the batch were made by the kernel at their
        intended times (as ``_inject`` records a send; one whose node was down is lost)."""
        if end <= first:
            return
        live = self.msgs.live
        for i in range(first, end):
            live[send_ids[i]][T_SENT] = send_t[i]
        self.ctx.tally.emitted += end - first
        self.now = send_t[end - 1]

    def _settled_or_stranded(self) -> bool:
        """Nothing can change any more: every message settled, or the rest are stranded
        (not queued, not in a block, no receipt of theirs still travelling), so waiting for
        the drain to run out would only add empty blocks."""
        msgs = self.msgs
        if msgs.terminal >= msgs.count:
            return True
        if not self.sequencer.idle() or self.lone.validating:
            return False
        if self.chain.busy():
            return False  # blocks to commit, or a standby may still take over
        if not all(record[WHERE] == IN_FLIGHT for record in msgs.live.values()):
            return False
        return not self.gossip.live_items(ITEM_MSG)  # no receipt of theirs still travelling

    @cached_property
    def _sample_event(self) -> Handler:
        """``_sample``, one object: the loop tells its events by identity."""
        return self._sample

    def _sample(self, t: int, _a: int, _b: int, _c: int, _d: int) -> None:
        quiet = self.sequencer.sample(t)
        quiet = not self.sequencer.unstick(t) and quiet
        mean_ns = self.processing_mean_ns
        if self.topology.size > 1 and mean_ns > 0:
            # ``validation_backlog``: the nodes whose CPU has the most validation work queued,
            # in receipts' worth (queued CPU time over the mean processing time).
            for node, queued_ns in self.gossip.validation_backlog(t, self.lone.cpu_queues(), BACKLOG_NODES):
                self.record.event(t, EventKind.VALIDATION_BACKLOG, node, float(queued_ns) / mean_ns)
                quiet = False  # it falls as time passes
        self._quiet = quiet

    def _next_sample(self, t: int, steps: int, t_send: int) -> int:
        """After the sample at ``t`` (``steps`` Python events before it), the next
        one on the heap: past the ones that would read the same as it did, before anything
        else happens (``quiet_samples``; a sample's cost follows what changed, not the
        virtual hours). Returns the steps they count for: 1 + how many were passed."""
        interval, hard_stop = self.scenario.run.sample_interval, self.ctx.hard_stop
        passed = 0
        heap, t_kernel, logged = self.ctx.events.heap, self.gossip.t_next, self.intake_log
        t_next = min(t_send, heap[0][0] if heap else hard_stop + 1,
                     t_kernel if t_kernel >= 0 else t_send)
        # (The log's service completions are not on the heap: it says if one comes first.)
        if self._quiet and (logged is None or logged.quiet_before(t_next)):
            passed = quiet_samples(t, interval, t_next, steps + 1, END_CHECK_MASK, hard_stop,
                                   self.end_of_traffic)
            if passed:  # as if each had run: the last one's time is the run's now
                self.now = t + passed * interval
                self.sequencer.samples.tick(self.now)  # reading the same as at t
        t += (passed + 1) * interval
        if t <= hard_stop:
            self.ctx.events.push(t, self._sample_event)
        return passed + 1

    # --- the send path ---------------------------------------------------------------------

    def _inject(self, t: int, m: int) -> None:
        record = self.msgs.live[m]
        record[T_SENT] = t
        record[WHERE] = IN_FLIGHT
        origin = record[ORIGIN]
        if not self.cluster.up[origin]:
            return  # the agent's node is down: the message is lost
        if self.cluster.isolated[origin]:
            self.lone.validate(t, origin, m)
        else:
            kind = ITEM_WATCHED if record[KIND] in self._watched_code_set else ITEM_MSG
            if self._censorable is not None and self._censorable[record[KIND], record[AGENT]]:
                kind |= ITEM_CENSORABLE
            self.gossip.inject(t, origin, m, kind, record[SIZE], record[KIND])

    def _on_validated(self, t: int, node: int, item: int, kind: int, sender: int, hops: int) -> None:
        """A watched node validated an item (see GossipState.run): a policy that watches the
        nodes hears of a message first, then reactors watching that node, then the leader's
        sequencer or a standby's mempool; a block goes to the chain."""
        if kind != ITEM_BLOCK:
            if self._policy_received is not None:
                self._policy_received(t, node, item)
            if node in self.ctx.watched:
                for reactor in self.reactors:
                    if node in reactor.watched:
                        reactor.validated(t, node, item)
            if node == self.cluster.leader and self._sequencing:
                self.sequencer.intake(t, item)
            elif node in self.chain.mempool:
                self.chain.saw(t, node, item)
        else:
            self.chain.validated_block(t, node, item, sender)

    # --- the end ---------------------------------------------------------------------------

    def finish(self) -> int:
        """Settle every message still moving, flush all buffers; returns the end time."""
        if self.helper is not None:
            self.helper.stop()
        if self.solo is not None:
            self.solo.finish()
            self.now = self.solo.now
        else:
            self.sequencer.samples.close()
        t_end = self.now
        if self.background is not None and isinstance(self.chain, ForkChain) and self.chain.pool is not None:
            self.chain.pool.load_detail = self.background.detail()
        self.chain.close(t_end)
        alive = (QUEUED, IN_SERVICE, SEQUENCED, IN_BLOCK, HELD)
        spreading = self.gossip.live_items(ITEM_MSG)
        validating = self.lone.validating
        # Every record leaves the live set, those settled in one batch in their order (as
        # ``settle`` of each in turn, without three calls a message).
        settled = []
        for m, record in self.msgs.live.items():
            state = record[WHERE]
            if state == IN_FLIGHT and record[T_SENT] == NULL:
                continue  # generated ahead but never due (an interrupted run): not sent
            moving = state in alive or m in spreading or m in validating
            record[WHERE] = PENDING if moving else LOST
            settled.append(record)
        self.msgs.live.clear()
        self.msgs.terminal += len(settled)
        self.record.settled(settled)
        for reactor in self.reactors:
            reactor.finish(t_end)
        if not self.scenario.network.relay.pushes_only:  # opt-in: push-only histories stay as they were
            self.record.event(t_end, EventKind.RELAY, value=float(self.gossip.payloads_sent),
                              detail=relay_report(self.gossip))
        if self.gossip.invalid_sent:  # a flood_invalid fault sent some (sim/flood.py)
            self.record.event(t_end, EventKind.FLOOD, value=float(self.gossip.invalid_validated),
                              detail={"sent": self.gossip.invalid_sent, "validated": self.gossip.invalid_validated})
        self.record.event(t_end, EventKind.RUN_END, value=float(self.msgs.count))
        try:
            self._publish(final=True)
        except KeyboardInterrupt:  # a second Ctrl-C while settling: the history comes first
            self.interrupted = True
        self.record.flush()
        self.flush_deliveries()
        return t_end

    def flush_deliveries(self) -> None:
        """Delivery rows gathered so far (the kernel's and the lone CPUs') into the history."""
        rows = self.gossip.drain_deliveries()
        alone = self.lone.take_deliveries()
        if alone.shape[1]:
            rows = np.concatenate([rows, alone], axis=1)
        self.record.deliveries(rows)
        if self.hop_stages is not None:
            self.record.hop_stages(self.hop_stages.add(self.gossip.drain_hop_log()))
