"""Relayers between two chains: what each saw on the source, and what it carried across.

Place in the pipeline: between the source chain's run and the destination's (``runner``).
A relayer is an agent watching its node's view of the source chain; it reads only the
source's history (the same tables the analysis reads), so the source runs once, whole, and
the relay is a pure function of its history, the ``[crosschain]`` section and a seed.

A relayer sees a crossing message at the first time its node (``source_node``) holds a
block with it in the way its ``wait`` asks: ``final``, the node finalised that block (the
``finalized`` table: ``blocks.producers.confirmations`` deep in its view, or by votes);
``included``, the node validated that block (``block_arrivals``: 0 confirmations, so a block
a reorg later leaves is relayed too). Which blocks held a message comes from the
``inclusions`` table. One sequencer (no producers) makes one chain that never reorganises: a
message is seen, either way, when its block commits (``t_committed``).

Every relayer draws, with its own stream of the seed, whether it refuses each crossing
message (``censor``, a share). A message goes across with the relayer that submits it
first (seen + ``delay``; a tie goes to the relayer listed first); it arrives at the
destination ``proof_check`` later. One nobody refused but nobody saw is "never_final"; one
seen and refused by all who saw it is "censored".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from msgstorm.history.reader import History
from msgstorm.history.schema import RELAYS
from msgstorm.scenario.destination import default_node
from msgstorm.scenario.schema import Scenario

__all__ = ["RelayPlan", "plan_relays"]

_NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class RelayPlan:
    """The ``relays`` table, and each destination agent's arrival times (sorted)."""

    relays: pa.Table
    streams: dict[str, tuple[str, str, np.ndarray]]  # dest agent -> (relayer, kind, t_arrival)


def _seen_by_block(source: History, table: str, node: str, blocks: int) -> np.ndarray:
    """For each block id, the first time ``node`` had it in ``table`` (``_NEVER``: never)."""
    rows = source.table(table)
    seen = np.full(blocks + 1, _NEVER, dtype=np.int64)
    if rows.num_rows:
        mine = np.asarray(rows.column("node").to_pylist()) == node
        block = rows.column("block").to_numpy()[mine]
        t = rows.column("t").to_numpy()[mine]
        held = block <= blocks  # a later block holds no crossing message
        np.minimum.at(seen, block[held], t[held])
    return seen


def _first_seen(source: History, ids: np.ndarray, table: str, node: str) -> tuple[np.ndarray, np.ndarray]:
    """For each message of ``ids`` (ascending), when ``node`` first held a block with it in
    ``table``'s sense, and that block (``_NEVER`` and -1: never)."""
    inclusions = source.table("inclusions")
    incl_block = inclusions.column("block").to_numpy()
    incl_msg = inclusions.column("msg_id").to_numpy()
    t_seen = np.full(ids.size, _NEVER, dtype=np.int64)
    block = np.full(ids.size, -1, dtype=np.int64)
    if incl_block.size == 0:
        return t_seen, block
    t = _seen_by_block(source, table, node, int(incl_block.max()))[incl_block]
    order = np.lexsort((incl_block, t, incl_msg))  # per message, the earliest seen first
    msg, t, incl_block = incl_msg[order], t[order], incl_block[order]
    first = np.ones(msg.size, dtype=bool)
    first[1:] = msg[1:] != msg[:-1]
    msg, t, incl_block = msg[first], t[first], incl_block[first]
    at = np.minimum(np.searchsorted(msg, ids), msg.size - 1)
    found = (msg[at] == ids) & (t[at] != _NEVER)
    t_seen[found] = t[at][found]
    block[found] = incl_block[at][found]
    return t_seen, block


def plan_relays(source: History, scenario: Scenario, destination_node: str,
                seed: np.random.SeedSequence) -> RelayPlan:
    """Every crossing message of ``source`` (the run of ``scenario``) and who relayed it when;
    ``destination_node``: where a relayer that names none submits."""
    import pyarrow.compute as pc  # here, not at import: ``msgstorm report`` of most runs does without it
    spec = scenario.crosschain
    assert spec is not None
    messages = source.columns("messages", ["msg_id", "kind", "agent", "t_intended", "t_committed", "block"])
    kinds = np.asarray(messages.column("kind").to_pylist(), dtype=object)
    agents = np.asarray(messages.column("agent").to_pylist(), dtype=object)
    crossing = np.isin(kinds, list(spec.kinds))
    if spec.agents:
        crossing &= np.isin(agents, spec.agents)
    ids = messages.column("msg_id").to_numpy()[crossing]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    kinds, agents = kinds[crossing][order], agents[crossing][order]
    t_intended = messages.column("t_intended").to_numpy()[crossing][order]
    one_chain = scenario.blocks.producers is None
    if one_chain:  # one sequencer: seen when committed, from its block, by every relayer
        commit_seen = pc.fill_null(messages.column("t_committed"), _NEVER).to_numpy()[crossing][order]
        commit_block = pc.fill_null(messages.column("block"), -1).to_numpy()[crossing][order]

    n = ids.size
    best = np.full(n, _NEVER, dtype=np.int64)
    best_seen = np.full(n, _NEVER, dtype=np.int64)
    best_block = np.full(n, -1, dtype=np.int64)
    best_relayer = np.full(n, -1, dtype=np.int64)
    any_seen = np.zeros(n, dtype=bool)
    instances = spec.relayer_names()
    streams_of = seed.spawn(len(instances))
    for index, ((_name, relayer), stream) in enumerate(zip(instances, streams_of, strict=True)):
        refuses = np.random.default_rng(stream).random(n) < relayer.censor
        if one_chain:
            t_seen, block = commit_seen, commit_block
        else:
            table = "finalized" if relayer.wait == "final" else "block_arrivals"
            t_seen, block = _first_seen(source, ids, table, relayer.source_node or default_node(scenario))
        seen = t_seen != _NEVER
        any_seen |= seen
        t_relayed = np.where(seen & ~refuses, t_seen + relayer.delay, _NEVER)
        better = t_relayed < best
        best = np.where(better, t_relayed, best)
        best_seen = np.where(better, t_seen, best_seen)
        best_block = np.where(better, block, best_block)
        best_relayer = np.where(better, index, best_relayer)

    relayed = best != _NEVER
    outcome = np.where(relayed, "relayed", np.where(any_seen, "censored", "never_final"))
    relayer_name = np.asarray([instances[i][0] if i >= 0 else "" for i in best_relayer.tolist()], dtype=object)
    dest_agent = np.where(relayed, relayer_name + "." + kinds, "")
    arrival = best + spec.proof_check
    streams: dict[str, tuple[str, str, np.ndarray]] = {}
    for agent in sorted(set(dest_agent[relayed].tolist())):
        mine = dest_agent == agent
        times = np.sort(arrival[mine], kind="stable")  # ids ascend: ties keep msg_id order
        relayer, _, kind = agent.rpartition(".")
        streams[agent] = (relayer, kind, times)

    def nullable(values: np.ndarray, keep: np.ndarray) -> pa.Array:
        return pa.array(values, type=pa.int64(), mask=~keep)

    relays = pa.table({
        "src_msg_id": pa.array(ids, type=pa.int64()),
        "kind": pa.array(kinds.tolist(), type=pa.string()),
        "agent": pa.array(agents.tolist(), type=pa.string()),
        "t_intended": pa.array(t_intended, type=pa.int64()),
        "relayer": pa.array(relayer_name.tolist(), type=pa.string()),
        "t_seen": nullable(best_seen, relayed),
        "block": nullable(best_block, relayed),
        "t_relayed": nullable(best, relayed),
        "t_arrival": nullable(arrival, relayed),
        "dest_agent": pa.array(dest_agent.tolist(), type=pa.string()),
        "outcome": pa.array(outcome.tolist(), type=pa.string()),
    }, schema=RELAYS)
    return RelayPlan(relays, streams)
