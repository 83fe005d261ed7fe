"""The destination chain of a ``[crosschain]`` scenario, as a scenario of its own.

Place in the pipeline: the scenario layer, between the source's run and the destination's.
``destination_scenario`` starts from the source's validated tables, replaces those the
``[crosschain.destination]`` fragment gives (``run`` is merged key by key), drops what
belongs to the source alone (its faults, SLOs, market, controllers, the section itself),
and adds one ``replay`` agent per relayer and crossing kind: the times at which that relayer's
messages reach the destination, read from a file the runner writes
(``RelayedStream``). Validation builds it once without relayed streams, so a mistake in the
fragment is refused before the source runs, located under ``crosschain.destination``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from msgstorm.scenario.budget import check_budget
from msgstorm.scenario.crosschain import CrosschainSpec
from msgstorm.scenario.refs import check_references, did_you_mean, node_names
from msgstorm.scenario.schema import Scenario

__all__ = ["RelayedStream", "default_node", "destination_problems", "destination_scenario"]

Problem = tuple[tuple[str | int, ...], str]
_PLACE = ("crosschain", "destination")
# Copied from the source unless the fragment gives them; the rest is the source's alone.
_SHARED_TABLES = ("network", "gossip", "sequencer", "blocks", "backpressure", "desync", "security",
                  "analysis", "history", "limits")


@dataclass(frozen=True)
class RelayedStream:
    """One relayer's messages of one kind on the destination: an agent replaying ``path``
    (column ``t``: absolute destination times in ns, sorted), from ``t_first``."""

    agent: str
    kind: str
    node: str
    size: int
    fee: float
    path: str
    t_first: int


def _spec(source: Scenario) -> CrosschainSpec:
    if source.crosschain is None:
        raise ValueError("the scenario has no [crosschain] section")
    return source.crosschain


def destination_scenario(source: Scenario, streams: list[RelayedStream]) -> Scenario:
    """The destination's scenario with ``streams`` as its relayers' agents (raises
    ``ValidationError`` for a fragment that does not validate)."""
    spec = _spec(source)
    fragment = spec.destination
    # The source's tables as validated objects (pydantic takes them as they are), the
    # fragment's as written: each is validated once, in its own units.
    raw: dict[str, Any] = {name: _shared_table(source, name) for name in _SHARED_TABLES}
    raw.update({name: value for name, value in fragment.items() if name != "run"})
    delay = max(relayer.delay for relayer in spec.relayers)
    run: dict[str, Any] = {
        "name": f"{source.run.name}-destination", "seed": source.run.seed, "drain": f"{source.run.drain}ns",
        # Long enough that whatever the source finalised before it stopped is relayed in time.
        "duration": f"{source.run.duration + source.run.drain + delay + spec.proof_check}ns",
        "window": f"{source.run.window}ns", "sample_interval": f"{source.run.sample_interval}ns"}
    run.update(fragment.get("run", {}))
    raw["run"] = run
    raw["agents"] = [*fragment.get("agents", []), *(
        {"name": stream.agent, "node": stream.node, "start": f"{stream.t_first}ns", "keys": 1,
         "arrival": {"process": "replay", "path": stream.path, "column": "t", "time_unit": "ns"},
         "mix": {stream.kind: 1.0}, "size": f"{stream.size}B", "fee": stream.fee}
        for stream in streams)]
    return Scenario.model_validate(raw)


def _shared_table(scenario: Scenario, name: str) -> Any:
    """One of the scenario's shared tables, by its name in ``_SHARED_TABLES``."""
    tables: dict[str, Any] = {"network": scenario.network, "gossip": scenario.gossip,
                              "sequencer": scenario.sequencer, "blocks": scenario.blocks,
                              "backpressure": scenario.backpressure, "desync": scenario.desync,
                              "security": scenario.security, "analysis": scenario.analysis,
                              "history": scenario.history, "limits": scenario.limits}
    return tables[name]


def default_node(scenario: Scenario) -> str:
    """Where a relayer runs when its entry does not say: the sequencer's node, else the first."""
    return scenario.sequencer.node or node_names(scenario.network)[0]


def destination_problems(source: Scenario) -> list[Problem]:
    """What keeps the ``[crosschain]`` section from running, each at its place in the file."""
    if source.crosschain is None:
        return []
    spec = source.crosschain
    problems: list[Problem] = []  # which targets run it: ``Target.sections`` (scenario/refs.py)
    try:
        destination = destination_scenario(source, [])
    except ValidationError as error:
        return problems + [((*_PLACE, *(part for part in detail["loc"] if not _tag(part))),
                            str(detail["msg"]).removeprefix("Value error, ")) for detail in error.errors()]
    for loc, message in check_references(destination):
        if loc and loc[0] not in spec.destination:
            message += f" (the destination takes the source's [{loc[0]}]; give [crosschain.destination.{loc[0]}])"
        problems.append(((*_PLACE, *loc), message))
    agents = {agent.name for agent in source.agents}
    for i, name in enumerate(spec.agents):
        if name not in agents:
            problems.append((("crosschain", "agents", i), f"unknown agent {name!r}{did_you_mean(name, agents)}"))
    for i, relayer in enumerate(spec.relayers):
        for chain, known, field, node in (("source", set(node_names(source.network)), "source_node", relayer.source_node),
                                          ("destination", set(node_names(destination.network)), "node", relayer.node)):
            if node is not None and node not in known:
                problems.append((("crosschain", "relayers", i, field),
                                 f"unknown {chain} node {node!r}{did_you_mean(node, known)}"))
    problems += _positions_problems(source, spec)
    if not problems:  # what cannot finish is refused before the source starts (relayed traffic aside)
        problems += [((*_PLACE, *loc), message) for loc, message in check_budget(destination)]
    return problems


def _positions_problems(source: Scenario, spec: CrosschainSpec) -> list[Problem]:
    """``positions = "destination"`` needs liquidations to close: a market with keepers, and
    their liquidation messages among those that cross."""
    if spec.positions != "destination":
        return []
    where: tuple[str | int, ...] = ("crosschain", "positions")
    if source.market is None or not source.market.keepers:
        return [(where, "positions on the destination need a [market] with keepers ([[market.keepers]]) on the "
                        "source, whose liquidations close them")]
    problems: list[Problem] = []
    if source.market.funding is not None:
        problems.append((("market", "funding"), "funding moves the source's collateral; positions on the destination "
                                                "are closed from the accounts as drawn: drop [market.funding] or "
                                                "crosschain.positions = \"destination\""))
    if source.market.liquidity is not None:
        problems.append((("market", "liquidity"), "positions on the destination close on the linear, calm book: "
                                                  "drop [market.liquidity] or crosschain.positions = \"destination\""))
    if source.market.mark is not None:
        problems.append((("market", "mark"), "positions on the destination are judged on the relayed index: drop "
                                             "[market.mark] or crosschain.positions = \"destination\""))
    if "liquidation" not in spec.kinds:
        problems.append((where, f"positions on the destination close by relayed liquidations: add \"liquidation\" "
                                f"to crosschain.kinds (now {list(spec.kinds)})"))
    keepers = [keeper.name for keeper in source.market.keepers]
    missing = [name for name in keepers if spec.agents and name not in spec.agents]
    if missing:
        problems.append((("crosschain", "agents"), f"the keepers {missing} close positions on the destination: "
                                                   f"list them in crosschain.agents, or leave it empty (every agent)"))
    return problems


def _tag(part: object) -> bool:
    """A union tag or validator name pydantic puts into an error's path (not a key)."""
    return isinstance(part, str) and ("[" in part or "(" in part)
