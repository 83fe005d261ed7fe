"""Which one-node scenarios the compiled loop replays exactly, and what it takes from them.

Place in the pipeline: inside the simulator, between the scenario and ``SoloSequencer``.
``solo_plan`` reads the loop's parameters and rule tables from the run's own ``Sequencer``
(its ``Ordering``: the queue policy's ``order_key`` and ``work_conserving``; its
backpressure's ``DropRule``), so the compiled loop and the Python sequencer decide from one description.

Every field of the scenario schema is classified in ``SOLO_FIELDS``: ``REPLAYED`` (the
loop takes it), ``OUTSIDE`` (it shapes traffic, analysis or limits, which the loop never
sees), ``NO_EFFECT`` (meaningless in a one-node network without faults: gossip, links,
standbys) or ``PYTHON_ONLY`` (the loop does not replay it: a scenario that sets it runs in
the Python loop). ``tests/test_sim_solo_plan.py`` fails when the schema gains a field that
is not classified here, so a new rule cannot be silently ignored by the compiled path.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from msgstorm.scenario.distributions import Constant
from msgstorm.scenario.schema import Scenario
from msgstorm.sim.backpressure import NEVER_DEPTH
from msgstorm.sim.seq_core import covers
from msgstorm.sim.sequencer import Sequencer

__all__ = ["NO_EFFECT", "OUTSIDE", "PYTHON_ONLY", "REPLAYED", "SOLO_FIELDS", "SoloPlan", "scenario_fields",
           "solo_plan"]

REPLAYED, OUTSIDE, NO_EFFECT, PYTHON_ONLY = "replayed", "outside", "no_effect", "python_only"

# Dotted paths into the scenario (a section's fields, or a whole value: a list, a map, a
# distribution). Variants of a union (backpressure modes) share the section's prefix.
SOLO_FIELDS: dict[str, str] = {
    "run.name": OUTSIDE,
    "run.seed": OUTSIDE,  # seeds the draws, which both loops take from the same streams
    "run.duration": REPLAYED,
    "run.drain": REPLAYED,
    "run.window": OUTSIDE,  # how traffic is generated in pieces; the loop joins them
    "run.sample_interval": REPLAYED,
    "target": OUTSIDE,  # a live target never reaches the simulator
    "live": OUTSIDE,
    "network.regions": NO_EFFECT,
    "network.nodes_per_region": NO_EFFECT,  # solo_plan requires one node
    "network.nodes": NO_EFFECT,
    "network.shares": NO_EFFECT,
    "network.total_nodes": NO_EFFECT,
    "network.intra_region_latency": NO_EFFECT,
    "network.latency": NO_EFFECT,
    "network.links": NO_EFFECT,
    "network.link": NO_EFFECT,
    "network.bandwidth": NO_EFFECT,  # serialisation happens on gossip links only
    "network.upload": NO_EFFECT,
    "network.download": NO_EFFECT,
    "network.uplink": NO_EFFECT,
    "network.processing": REPLAYED,
    "network.relay": NO_EFFECT,  # how gossip passes items between peers; one node has none
    "gossip.mode": NO_EFFECT,
    "gossip.degree": NO_EFFECT,
    "gossip.peers": NO_EFFECT,
    "gossip.outbound_cdf": NO_EFFECT,
    "gossip.max_inbound": NO_EFFECT,
    "sequencer.node": NO_EFFECT,
    "sequencer.workers": REPLAYED,
    "sequencer.service": REPLAYED,
    "sequencer.policy": REPLAYED,  # through the policy's order_key; a policy without one runs in Python
    "sequencer.standby": NO_EFFECT,  # without faults no leader fails
    "sequencer.failover_timeout": NO_EFFECT,
    # Read only by the policies they name, which have no order_key (their runs take the
    # Python loop); beside fifo or fee_priority they do nothing.
    "sequencer.batch_auction": NO_EFFECT,
    "sequencer.commit_reveal": NO_EFFECT,
    "sequencer.fair_order": NO_EFFECT,
    "sequencer.lane": PYTHON_ONLY,  # a second queue with workers of its own (sim/lane.py)
    "blocks.interval": REPLAYED,
    "blocks.max_messages": REPLAYED,
    "blocks.max_gas": REPLAYED,
    "blocks.gas": REPLAYED,
    "blocks.quorum": NO_EFFECT,  # one node is its own quorum
    "blocks.header_size": REPLAYED,
    "blocks.producers": PYTHON_ONLY,  # producers across nodes, per-node views (sim/forks.py)
    "backpressure.mode": REPLAYED,  # through the mode's DropRule; modes without one run in Python
    "backpressure.capacity": REPLAYED,
    "backpressure.levels": REPLAYED,
    "backpressure.protect": REPLAYED,
    "backpressure.high": PYTHON_ONLY,
    "backpressure.low": PYTHON_ONLY,
    "backpressure.initial_base_fee": PYTHON_ONLY,
    "backpressure.min_base_fee": PYTHON_ONLY,
    "backpressure.target": PYTHON_ONLY,
    "backpressure.max_change": PYTHON_ONLY,
    "backpressure.underpriced": PYTHON_ONLY,
    "backpressure.base_fee_file": PYTHON_ONLY,  # the base fee read from a file, block by block (scenario/fee_file.py)
    "desync.max_height_gap": NO_EFFECT,  # one node never trails itself
    "desync.min_duration": NO_EFFECT,
    "agents": OUTSIDE,  # traffic
    "faults": PYTHON_ONLY,
    "market": PYTHON_ONLY,  # reactive agents call back into Python (traffic/reactor.py)
    "controllers": PYTHON_ONLY,  # they steer the sequencer and the chain from Python (sim/control.py)
    "slo": OUTSIDE,
    "analysis.knee_latency_factor": OUTSIDE,
    "analysis.throughput_fraction": OUTSIDE,
    "history.delivery_sample": REPLAYED,
    "history.max_deliveries": REPLAYED,
    "history.row_group_size": OUTSIDE,
    "limits": OUTSIDE,
    # The verification cost is added to the processing times the loop draws (sim/integrity.py).
    "security.scheme": REPLAYED,
    "security.verify_cost": REPLAYED,
    "security.chain_id": NO_EFFECT,  # judged by the integrity reactor, which only faults or verify="real" bring
    "security.verify": PYTHON_ONLY,  # signs and verifies every message in Python
    # A second chain: relayed from this run's history after it ends, run as its own scenario
    # (runner.py); this run is the same with or without it.
    "crosschain.kinds": OUTSIDE,
    "crosschain.agents": OUTSIDE,
    "crosschain.relayers": OUTSIDE,
    "crosschain.proof_check": OUTSIDE,
    "crosschain.destination": OUTSIDE,
    "crosschain.positions": OUTSIDE,
    # A rollup's batcher and L1: derived from this run's history after the L2 run ends
    # (sim/rollup/stage.py); the L2 run is the same with or without them. Its block time is
    # blocks.interval, which the loop replays.
    "rollup.preset": OUTSIDE,
    "rollup.block_time": OUTSIDE,
    "rollup.batcher": OUTSIDE,
    "rollup.l1": OUTSIDE,
    # The default window of a sequencer_outage fault: no fault, no window.
    "rollup.forced_inclusion_window": NO_EFFECT,
    "rollup.timeboost": PYTHON_ONLY,  # delays arrivals before the sequencer (sim/rollup/timeboost.py)
}


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The model classes a field's annotation holds directly (a section or a union of them)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [model for arg in typing.get_args(annotation) for model in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def scenario_fields(model: type[BaseModel] = Scenario, prefix: str = "") -> set[str]:
    """Every dotted field path of the schema, down to the paths ``SOLO_FIELDS`` names whole
    and to fields that are not sections."""
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        sections = _models(info.annotation)
        if path in SOLO_FIELDS or not sections:
            paths.add(path)
            continue
        for section in sections:
            paths |= scenario_fields(section, f"{path}.")
    return paths


def _sets(scenario: Scenario, path: str) -> bool:
    """Whether the scenario gives ``path`` a value other than its default (a field of a
    union variant the scenario did not choose is not set)."""
    parent: Any = scenario
    *sections, name = path.split(".")
    for section in sections:
        parent = getattr(parent, section, None)
        if parent is None:
            return False
    if not isinstance(parent, BaseModel) or name not in type(parent).model_fields:
        return False
    info = type(parent).model_fields[name]
    value = getattr(parent, name)
    if info.is_required():
        return True
    return bool(value != info.get_default(call_default_factory=True))


@dataclass(frozen=True)
class SoloPlan:
    """What the compiled loop needs to know about a scenario it accepts."""

    key_fee: bool  # the queue serves the highest fee first (else arrival order)
    serve_idle: bool  # work-conserving policy: an idle worker takes an arrival at once
    watch_depth: bool  # backpressure reacts to depth (drop_tail, shed)
    engage_at: int  # depth at which it engages ("dropping" / "shedding")
    states: tuple[str, str]  # the backpressure event's state names: (released, engaged)
    limit: tuple[int, ...]  # per kind: arrivals are dropped at this depth
    protected: tuple[bool, ...]  # per kind: never dropped


def _fits_int64(scenario: Scenario, gas_of: list[int]) -> bool:
    """Whether the loop's int64 arithmetic holds this scenario's values exactly (the
    Python loop's integers cannot overflow; absurd values, such as an interval of 300
    years meaning "never", go there)."""
    run, blocks, seq, network = scenario.run, scenario.blocks, scenario.sequencer, scenario.network
    values = [run.duration + run.drain, run.sample_interval, blocks.interval, blocks.header_size,
              blocks.max_messages * (max(gas_of) + (1 << 31))]  # a block's gas and bytes
    if blocks.max_gas is not None:
        values.append(blocks.max_gas)
    for dist in (seq.service, network.processing):
        if isinstance(dist, Constant):
            values.append(round(dist.value))
    return all(0 <= value < NEVER_DEPTH for value in values)


def solo_plan(scenario: Scenario, nodes: int, sequencer: Sequencer, gas_of: list[int]) -> SoloPlan | None:
    """The plan for a scenario the compiled loop runs exactly, or None (Python loop).

    Accepted: one node, no field classified ``PYTHON_ONLY`` set, what the sequencer core
    covers (``seq_core.covers``: a queue policy that declares a static ``order_key``,
    "arrival" or "fee", and no hook) with a backpressure mode that only drops (it has a
    ``DropRule``), and values that int64 arithmetic holds.
    """
    if nodes != 1 or not _fits_int64(scenario, gas_of):
        return None
    if any(_sets(scenario, path) for path, how in SOLO_FIELDS.items() if how == PYTHON_ONLY):
        return None
    key = sequencer.ordering.order_key
    rule = sequencer.backpressure.drop_rule
    if not covers(sequencer) or rule is None:  # the core's rules, without a price rule
        return None
    return SoloPlan(key_fee=key == "fee", serve_idle=sequencer.serve_when_idle, watch_depth=sequencer.watch_depth,
                    engage_at=rule.engage_at, states=rule.states, limit=rule.limit, protected=rule.protected)
