"""Reference checks of a scenario's ``[[faults]]``: what each entry names exists, it starts
before the run ends, and the scenario's target can apply it.

Place in the pipeline: part of the reference pass over a validated scenario
(``scenario/refs.py``'s ``check_references`` runs ``fault_entry_problems``; the loader runs
``fault_time_problems``; the simulator's ``Target`` runs ``simulated_fault_problems``). Each
returns ``Problem``s, ``(location, message)`` pairs the loader turns into file:line errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msgstorm.scenario.faults import (
    MAX_FAULT_DRAWS,
    CensorNodesFault,
    DegradeFault,
    DelayNodesFault,
    EclipseFault,
    EquivocateFault,
    EquivocateVotesFault,
    FloodInvalidFault,
    NemesisFault,
    OracleFault,
    PartitionFault,
    ReorderNodesFault,
    ScriptFault,
    SequencerOutageFault,
    TwinsFault,
    WithholdVotesFault,
    nemesis_draws,
)
from msgstorm.scenario.ref_names import (
    Places,
    Problem,
    did_you_mean,
    node_names,
    node_regions,
    places,
    sending_agents,
    simulated,
)
from msgstorm.scenario.registry import FAULT_KINDS, LIVE_FAULT_KINDS, TARGETS
from msgstorm.scenario.schema import fault_entries
from msgstorm.scenario.units import format_duration

if TYPE_CHECKING:
    from msgstorm.scenario.schema import Scenario

__all__ = ["MAX_FLOOD_MESSAGES", "fault_entry_problems", "fault_time_problems",
           "simulated_fault_problems"]

Place = tuple[str | int, ...]


def simulated_fault_problems(scenario: Scenario) -> list[Problem]:
    """The simulator's fault entries against its network: the regions and nodes they name,
    one surrounding eclipse at a time (``TARGETS["sim"]``'s own checks)."""
    problems: list[Problem] = []
    known = places(scenario)
    surrounds: list[tuple[Place, int, int | None]] = []  # (place, start, end): surrounding eclipses
    for where, fault in fault_entries(scenario):
        place: Place = where[1:]  # the place under "faults"
        if fault.kind == "partition":
            problems += _partition_problems(scenario, fault, place, known)
        elif fault.kind == "crash":
            if fault.node != "sequencer" and fault.node not in known.nodes:
                hint = did_you_mean(fault.node, [*known.nodes, "sequencer"])
                problems.append((("faults", *place, "node"), f"unknown node {fault.node!r}{hint}; nodes are "
                                                             f"{known.hint_nodes} or \"sequencer\""))
        elif fault.kind == "degrade":
            problems += _degrade_problems(fault, place, known)
        elif fault.kind == "equivocate":
            problems += _equivocate_problems(scenario, fault, place, known)
        elif fault.kind in ("equivocate_votes", "withhold_votes", "twins"):
            problems += _voter_problems(scenario, fault, place, known.nodes)
        elif fault.kind == "eclipse":
            problems += _eclipse_problems(fault, place, known)
            if fault.surrounds:
                end = fault.at + fault.duration if fault.duration is not None else None
                surrounds.append((place, fault.at, end))
        elif fault.kind in ("censor_nodes", "delay_nodes", "reorder_nodes", "flood_invalid"):
            problems += _byzantine_node_problems(scenario, fault, place, known)
        elif fault.kind == "oracle":
            problems += _oracle_problems(scenario, fault, place)
    # One surrounding eclipse at a time (sim/eclipse.py: its end restores the whole overlay).
    surrounds.sort(key=lambda entry: entry[1])
    for (_, _, end), (place, start, _) in zip(surrounds, surrounds[1:], strict=False):
        if end is None or start < end:
            problems.append((("faults", *place, "at"), "it surrounds a node while an earlier surrounding eclipse "
                                                       "is on: one at a time"))

    return problems


def _partition_problems(scenario: Scenario, fault: PartitionFault, place: Place,
                        known: Places) -> list[Problem]:
    """No node in two groups; every group member a known region or node."""
    problems: list[Problem] = []
    network = scenario.network
    names = known.regions | known.nodes
    seen_in: dict[int, int] = {}
    for g, group in enumerate(fault.groups):
        for name in group:
            members = ([node_names(network).index(name)] if name in known.nodes
                       else [i for i, r in enumerate(node_regions(network)) if r == name])
            for node in members:
                if seen_in.setdefault(node, g) != g:
                    problems.append((("faults", *place, "groups", g),
                                     f"{name!r} puts node {node_names(network)[node]!r} in two groups"))
    for g, group in enumerate(fault.groups):
        for name in group:
            if name not in names:
                problems.append(
                    (("faults", *place, "groups", g), f"unknown region or node {name!r}{did_you_mean(name, names)}; regions are {sorted(known.regions)}")
                )
    return problems


def _degrade_problems(fault: DegradeFault, place: Place, known: Places) -> list[Problem]:
    """The regions or nodes a degraded link lies between, or the degraded nodes, exist."""
    names = known.regions | known.nodes
    field = "between" if fault.between else "nodes"
    return [(("faults", *place, field), f"unknown region or node {name!r}{did_you_mean(name, names)}")
            for name in [*(fault.between or ()), *(fault.nodes or ())] if name not in names]


def _equivocate_problems(scenario: Scenario, fault: EquivocateFault, place: Place,
                         known: Places) -> list[Problem]:
    """An equivocating producer is one of ``[blocks.producers]``."""
    producers = scenario.blocks.producers
    if producers is None:
        return [(("faults", *place, "kind"), "an equivocating producer needs [blocks.producers]")]
    if fault.node not in known.nodes:
        return [(("faults", *place, "node"), f"unknown node {fault.node!r}{did_you_mean(fault.node, known.nodes)}; "
                                             f"nodes are {known.hint_nodes}")]
    if producers.nodes and fault.node not in producers.nodes:
        return [(("faults", *place, "node"),
                 f"node {fault.node!r} is not a producer; blocks.producers.nodes are {producers.nodes}")]
    return []


def _eclipse_problems(fault: EclipseFault, place: Place, known: Places) -> list[Problem]:
    """The eclipsed node and its named attackers exist; no more attackers are drawn than
    there are other nodes."""
    nodes, hint_nodes = known.nodes, known.hint_nodes
    problems: list[Problem] = []
    if fault.node not in nodes:
        problems.append((("faults", *place, "node"),
                         f"unknown node {fault.node!r}{did_you_mean(fault.node, nodes)}; nodes are {hint_nodes}"))
    for index, name in enumerate(fault.attackers):
        if name not in nodes:
            problems.append((("faults", *place, "attackers", index),
                             f"unknown node {name!r}{did_you_mean(name, nodes)}; nodes are {hint_nodes}"))
    if fault.count is not None and fault.count > len(nodes) - 1:
        problems.append((("faults", *place, "count"), f"{fault.count} attackers drawn from the "
                                                      f"{len(nodes) - 1} nodes other than the target"))
    return problems


def _byzantine_node_problems(scenario: Scenario,
                             fault: CensorNodesFault | DelayNodesFault | ReorderNodesFault | FloodInvalidFault,
                             place: Place, known: Places) -> list[Problem]:
    """Censoring, delaying, reordering or flooding nodes: the named ones exist, no more are
    drawn than there are nodes, a flood stays within ``MAX_FLOOD_MESSAGES``, and the agents a
    censor singles out send messages."""
    nodes, hint_nodes = known.nodes, known.hint_nodes
    problems: list[Problem] = []
    for index, name in enumerate(fault.nodes):
        if name not in nodes:
            problems.append((("faults", *place, "nodes", index),
                             f"unknown node {name!r}{did_you_mean(name, nodes)}; nodes are {hint_nodes}"))
    if fault.count is not None and fault.count > len(nodes):
        what = {"censor_nodes": "censoring", "delay_nodes": "delaying", "reorder_nodes": "reordering",
                "flood_invalid": "flooding"}
        problems.append((("faults", *place, "count"), f"{fault.count} {what[fault.kind]} nodes drawn from "
                                                      f"{len(nodes)} nodes"))
    if isinstance(fault, FloodInvalidFault):
        problems += _flood_problems(scenario, fault, place, len(nodes))
    if isinstance(fault, CensorNodesFault) and fault.agents is not None:
        senders = sending_agents(scenario)
        for index, name in enumerate(fault.agents):
            if name not in senders:
                problems.append((("faults", *place, "agents", index),
                                 f"unknown agent {name!r}{did_you_mean(name, senders)}; agents are {senders}"))
    return problems


def _oracle_problems(scenario: Scenario, fault: OracleFault, place: Place) -> list[Problem]:
    """A byzantine oracle is the market's, on one of its instruments."""
    if scenario.market is None:
        return [(("faults", *place, "kind"), "a byzantine oracle needs a [market] (its oracle)")]
    known = [i.name for i in scenario.market.instruments]
    if fault.instrument is not None and fault.instrument not in known:
        return [(("faults", *place, "instrument"),
                 f"unknown instrument {fault.instrument!r}{did_you_mean(fault.instrument, known)}")]
    return []


def fault_entry_problems(scenario: Scenario) -> list[Problem]:
    """What of the fault entries the scenario's target cannot apply, a nemesis that would draw
    too many faults, and an outage losing batches a run without L1 does not have."""
    return _fault_target_problems(scenario) + _nemesis_draw_problems(scenario) + _unposted_problems(scenario)


def fault_time_problems(scenario: Scenario, shortened: bool = False) -> list[Problem]:
    """A fault that starts when the run has ended (at or after ``run.duration`` +
    ``run.drain``, the last instant anything is applied) would never fire: refused, naming
    its ``at`` (a script's step, or its ``times`` when a repetition starts too late), and how
    to fix it. ``shortened``: the run's end was set by ``--set`` (``loader.shortened_run``),
    and the same faults are notes that they will not fire in this run."""
    run = scenario.run
    end = run.duration + run.drain
    ends = (f"the run{', shortened by --set,' if shortened else ''} ends at {format_duration(end)} (run.duration "
            f"{format_duration(run.duration)} + run.drain {format_duration(run.drain)})")
    fix = ("it will not fire in this run" if shortened else
           "it would never fire: move it earlier, lengthen run.duration or run.drain, or drop the entry")
    problems: list[Problem] = []
    for index, spec in enumerate(scenario.faults):
        if spec.at >= end:
            problems.append((("faults", index, "at"), f"this fault starts at {format_duration(spec.at)} and {ends}: "
                                                      f"{fix}"))
        elif isinstance(spec, ScriptFault):
            for k, step in enumerate(spec.steps):
                if spec.at + step.at >= end:
                    problems.append((("faults", index, "steps", k, "at"),
                                     f"this step starts at {format_duration(spec.at + step.at)} (the script's 'at' "
                                     f"plus the step's) and {ends}: {fix}"))
            last = spec.at + (spec.times - 1) * (spec.every or 0)
            if spec.times > 1 and last >= end:
                fitting = (end - 1 - spec.at) // (spec.every or 1) + 1
                problems.append((("faults", index, "times"),
                                 f"the script's last repetition starts at {format_duration(last)} and {ends}: {fix} "
                                 f"(times = {fitting} fit)"))
    return problems


def _nemesis_draw_problems(scenario: Scenario) -> list[Problem]:
    """A nemesis without ``until`` draws until the run's end: at most ``MAX_FAULT_DRAWS``
    (each is built at validation; ``NemesisFault`` checks one with ``until`` itself)."""
    problems: list[Problem] = []
    for index, spec in enumerate(scenario.faults):
        if isinstance(spec, NemesisFault) and spec.until is None:
            draws = nemesis_draws(spec.at, scenario.run.duration, spec.every)
            if draws > MAX_FAULT_DRAWS:
                problems.append((("faults", index, "every"),
                                 f"the nemesis draws {draws} faults (from 'at' to the run's end, one every 'every'); "
                                 f"at most {MAX_FAULT_DRAWS}: make 'every' longer or set 'until'"))
    return problems


def _unposted_problems(scenario: Scenario) -> list[Problem]:
    """A sequencer outage that loses what is not on L1 needs an L1: ``[rollup]``."""
    if scenario.rollup is not None:
        return []
    return [((*where, "lose_unposted"), "loses what no batch on L1 holds, and a run without [rollup] has no "
                                        "batches: add a [rollup] section or drop lose_unposted")
            for where, fault in fault_entries(scenario)
            if isinstance(fault, SequencerOutageFault) and fault.lose_unposted]


def _fault_target_problems(scenario: Scenario) -> list[Problem]:
    """Each ``[[faults]]`` entry can be applied by the scenario's target: a kind only the
    simulator (``FAULT_KINDS``) or only live targets (``LIVE_FAULT_KINDS``) apply is refused
    on the other side, naming it; a live kind checks the entry against the target (its
    servers, its links)."""
    problems: list[Problem] = []
    if scenario.target not in TARGETS:
        return problems  # an unknown target is said once, above
    live = not simulated(scenario)
    for where, fault in fault_entries(scenario):
        kinds = LIVE_FAULT_KINDS if live else FAULT_KINDS
        if fault.kind not in kinds:
            if live:
                said = (f"a {fault.kind!r} fault is simulated only: a live target (target {scenario.target!r}) "
                        f"cannot apply it; live targets apply {', '.join(repr(k) for k in LIVE_FAULT_KINDS.names())}. "
                        "Drop the entry (--set faults=[]) or run on the simulator (--target sim)")
            else:
                said = (f"a {fault.kind!r} fault applies to live targets only: the simulator cannot apply it; it "
                        f"applies {', '.join(repr(k) for k in FAULT_KINDS.names())}. Drop the entry or run on a "
                        "live target (--target nats, ...)")
            problems.append(((*where, "kind"), said))
        elif live and TARGETS[scenario.target].driver() is None:
            said = (f"target {scenario.target!r} drives no live system, so it applies no fault: "
                    "drop the entry (--set faults=[])")
            problems.append(((*where, "kind"), said))
        elif live:
            problems += [((*where, *field), message) for field, message in kinds[fault.kind].problems(scenario, fault)]
    return problems


def _voter_problems(scenario: Scenario, fault: EquivocateVotesFault | WithholdVotesFault | TwinsFault,
                    place: Place, nodes: set[str]) -> list[Problem]:
    """Byzantine voters need votes (``finality = "votes"``) and are validators: named ones
    among the named producers, a drawn count no more than there are validators."""
    producers = scenario.blocks.producers
    if producers is None or producers.finality != "votes":
        return [(("faults", *place, "kind"), 'byzantine voters need [blocks.producers] with finality = "votes"')]
    validators = (producers.nodes if producers.nodes
                  else [None] * producers.count if producers.count is not None else sorted(nodes))
    problems: list[Problem] = []
    for index, name in enumerate(fault.nodes):
        if name not in nodes:
            problems.append((("faults", *place, "nodes", index), f"unknown node {name!r}{did_you_mean(name, nodes)}"))
        elif producers.nodes and name not in producers.nodes:
            problems.append((("faults", *place, "nodes", index),
                             f"node {name!r} is not a validator; blocks.producers.nodes are {producers.nodes}"))
    if isinstance(fault, TwinsFault):
        if not producers.nodes:
            problems.append((("faults", *place, "nodes"), "twins need the validators named (blocks.producers.nodes)"))
        for index, host in enumerate(fault.hosts):
            if host not in nodes:
                problems.append((("faults", *place, "hosts", index),
                                 f"unknown node {host!r}{did_you_mean(host, nodes)}"))
    elif fault.count is not None and fault.count > len(validators):
        problems.append((("faults", *place, "count"), f"{fault.count} byzantine voters drawn from "
                                                      f"{len(validators)} validators"))
    return problems


# The most invalid messages the flood faults of one run may send (each is a Python call and
# a validation at every peer): a larger flood is refused before the run starts.
MAX_FLOOD_MESSAGES = 5_000_000


def _flood_problems(scenario: Scenario, fault: FloodInvalidFault, place: Place,
                    node_count: int) -> list[Problem]:
    """A flood that would send more than ``MAX_FLOOD_MESSAGES`` is refused, naming its rate."""
    end = scenario.run.duration + scenario.run.drain
    stop = end if fault.duration is None else min(end, fault.at + fault.duration)
    window = max(0, stop - fault.at)
    flooders = len(fault.nodes) if fault.nodes else min(fault.count or 0, node_count)
    sends = flooders * window * fault.rate / 1e9
    if sends > MAX_FLOOD_MESSAGES:
        return [(("faults", *place, "rate"), f"this flood would send about {sends:,.0f} invalid messages "
                                             f"({flooders} node(s) x {fault.rate:g}/s x "
                                             f"{format_duration(window)}); at most {MAX_FLOOD_MESSAGES:,}: lower "
                                             "the rate, the duration or the nodes")]
    return []
