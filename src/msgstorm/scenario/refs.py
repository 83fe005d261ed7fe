"""Cross-reference checks on a validated scenario: names that must exist elsewhere in it.

Pydantic checks each field alone; this pass checks that regions, nodes, files, queue
policies and SLO metrics named in one place exist, and returns ``(location, message)``
pairs that the loader turns into file:line errors.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit

from msgstorm.scenario.budget import messages_per_agent
from msgstorm.scenario.faults import CrashFault, PauseFault, SequencerOutageFault, ToxicFault
from msgstorm.scenario.generators import distributed_targets, name_problems
from msgstorm.scenario.regions import default_one_way_ns
from msgstorm.scenario.registry import (
    FAULT_KINDS,
    LIVE_FAULT_KINDS,
    QUEUE_POLICIES,
    TARGETS,
)
from msgstorm.scenario.sample_load import load_problem
from msgstorm.scenario.schema import (
    MAX_FAULT_DRAWS,
    ORDERING_SETTINGS,
    EquivocateVotesFault,
    FloodInvalidFault,
    LinkModel,
    NemesisFault,
    ScriptFault,
    TwinsFault,
    WithholdVotesFault,
    fault_entries,
    nemesis_draws,
)
from msgstorm.scenario.slo import SLO_METRICS, slo_metric_known, slo_problem
from msgstorm.scenario.traffic import PhasesArrival, ReplayArrival
from msgstorm.scenario.units import format_duration

if TYPE_CHECKING:
    from msgstorm.scenario.schema import NetworkSpec, Scenario

__all__ = ["DISTRIBUTED_FAULTS", "check_references", "did_you_mean", "distributed_problems", "fault_time_problems",
           "is_loopback_url", "node_names", "node_regions", "process_problems", "sending_agents"]

Problem = tuple[tuple[str | int, ...], str]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to a misspelt one, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def node_names(network: NetworkSpec) -> list[str]:
    """Node names in index order: ``<region>-<i>`` for each region, in the order given."""
    return [f"{region}-{i}" for region, count in zip(network.regions, network.region_counts(), strict=True)
            for i in range(count)]


def sending_agents(scenario: Scenario) -> list[str]:
    """The names of the agents that send messages: ``[[agents]]``, then ``[market]``'s oracle,
    keepers, topups and front-runners (the names a message's ``agent`` column holds)."""
    names = [agent.name for agent in scenario.agents]
    market = scenario.market
    if market is not None:
        names += [market.oracle.name, *(keeper.name for keeper in market.keepers),
                  *([market.topups.name] if market.topups is not None else []),
                  *(runner.name for runner in market.frontrunners)]
    return names


def node_regions(network: NetworkSpec) -> list[str]:
    """The region of each node, in node index order."""
    return [region for region, count in zip(network.regions, network.region_counts(), strict=True)
            for _ in range(count)]


def _region_pair(key: str) -> tuple[str, str] | None:
    parts = key.split("/")
    return (parts[0].strip(), parts[1].strip()) if len(parts) == 2 else None


def is_loopback_url(url: str) -> bool:
    """Whether a URL's host is on this machine (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(url if "://" in url else f"tcp://{url}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@runtime_checkable
class ChecksScenario(Protocol):
    """A live target class that says what of a scenario it cannot do (a chain node: its pool
    orders by fee or arrival only), each problem with its field. Declared in its
    ``capabilities`` (``Checks.scenario``, ``live/drivers/capabilities.py``)."""

    @staticmethod
    def problems(scenario: Scenario) -> list[Problem]: ...


@runtime_checkable
class RunsMarket(Protocol):
    """A live target class that runs ``[market]``'s agents (a chain node: the oracle's prices
    and the keepers' liquidations are its transactions) and says what of the market it
    cannot do, each problem with its field. Other live targets refuse ``[market]``. Declared
    in its ``capabilities`` (``Checks.market``)."""

    @staticmethod
    def market_problems(scenario: Scenario) -> list[Problem]: ...


def simulated(scenario: Scenario) -> bool:
    """Whether the scenario's target runs the simulator's model (``Target.simulated``; an
    unknown target, which validation names, counts as not)."""
    return scenario.target in TARGETS and bool(TARGETS[scenario.target].simulated)


def _places(scenario: Scenario) -> tuple[set[str], set[str], str]:
    """The network's regions, its nodes, and the first nodes' names as a hint in a message."""
    regions = set(scenario.network.regions)
    nodes = set(node_names(scenario.network))
    return regions, nodes, ", ".join(sorted(nodes)[:6]) + (" ..." if len(nodes) > 6 else "")


def check_references(scenario: Scenario) -> list[Problem]:  # noqa: C901
    """Every name used is defined; every region pair has a latency."""
    problems: list[Problem] = []
    network = scenario.network
    regions, nodes, hint_nodes = _places(scenario)
    names = regions | nodes

    explicit: set[frozenset[str]] = set()
    for key in network.latency:
        pair = _region_pair(key)
        if pair is None:
            problems.append((("network", "latency", key), "expected a key like \"us-east/eu-west\""))
            continue
        for region in pair:
            if region not in regions:
                problems.append(
                    (("network", "latency", key), f"unknown region {region!r}{did_you_mean(region, regions)}; regions are {sorted(regions)}")
                )
        explicit.add(frozenset(pair))
    # A [[network.links]] entry between two regions gives their latency too.
    explicit |= {frozenset(link.between) for link in network.links
                 if set(link.between) <= regions and not link.one_way}
    for i, a in enumerate(network.regions):
        for b in network.regions[i + 1:]:
            if frozenset({a, b}) not in explicit and default_one_way_ns(a, b) is None:
                problems.append(
                    (("network", "regions"),
                     f"no built-in latency between {a!r} and {b!r}; add network.latency.\"{a}/{b}\" = \"40ms\"")
                )
    for index, link in enumerate(network.links):
        for name in link.between:
            if name not in names:
                problems.append((("network", "links", index, "between"), f"unknown region or node {name!r}{did_you_mean(name, names)}"))

    gossip = scenario.gossip
    if gossip.mode == "mesh" and gossip.degree > gossip.peers:
        problems.append((("gossip", "degree"), f"mesh degree {gossip.degree} exceeds peers {gossip.peers}"))

    problems += _producer_references(scenario, nodes, hint_nodes)
    problems += _relay_sample_problems(scenario)

    sequencer = scenario.sequencer
    if sequencer.node is not None and sequencer.node not in nodes:
        problems.append((("sequencer", "node"), f"unknown node {sequencer.node!r}{did_you_mean(sequencer.node, nodes)}; nodes are {hint_nodes}"))
    for index, name in enumerate(sequencer.standby):
        if name not in nodes:
            problems.append((("sequencer", "standby", index), f"unknown node {name!r}{did_you_mean(name, nodes)}; nodes are {hint_nodes}"))
    live = scenario.live
    if live.url is not None and not live.allow_remote and not is_loopback_url(live.url):
        problems.append((("live", "url"), f"{live.url}: not a loopback address; load goes only to 127.0.0.0/8 or "
                                          "::1 unless live.allow_remote = true"))
    problems += distributed_problems(scenario)
    if scenario.target not in TARGETS:
        problems.append((("target",), f"unknown target {scenario.target!r}{did_you_mean(scenario.target, TARGETS.names())}; "
                                      f"one of {TARGETS.names()}"))
    if sequencer.policy not in QUEUE_POLICIES:
        problems.append(
            (("sequencer", "policy"), f"unknown queue policy {sequencer.policy!r}{did_you_mean(sequencer.policy, QUEUE_POLICIES.names())}; one of {QUEUE_POLICIES.names()}")
        )
    fair = sequencer.fair_order
    reporting = fair.nodes or [] if fair is not None else []
    for index, name in enumerate(reporting):
        if name not in nodes:
            problems.append((("sequencer", "fair_order", "nodes", index),
                             f"unknown node {name!r}{did_you_mean(name, nodes)}; nodes are {hint_nodes}"))
        elif name in reporting[:index]:
            problems.append((("sequencer", "fair_order", "nodes", index),
                             f"node {name!r} is listed twice: each node reports once"))
    if scenario.target in TARGETS:  # the target's own checks (``Target.problems``)
        problems += TARGETS[scenario.target].problems(scenario)
        problems += _section_problems(scenario)

    for index, agent in enumerate(scenario.agents):
        if agent.region is not None and agent.region not in regions:
            problems.append((("agents", index, "region"), f"unknown region {agent.region!r}{did_you_mean(agent.region, regions)}; regions are {sorted(regions)}"))
        if agent.node is not None and agent.node not in nodes:
            problems.append((("agents", index, "node"), f"unknown node {agent.node!r}{did_you_mean(agent.node, nodes)}; nodes are {hint_nodes}"))
        arrivals: list[tuple[tuple[str | int, ...], object]] = [(("arrival",), agent.arrival)]
        if isinstance(agent.arrival, PhasesArrival):
            arrivals += [(("arrival", "phases", i, "arrival"), phase.arrival)
                         for i, phase in enumerate(agent.arrival.phases)]
        for where, spec in arrivals:
            if not isinstance(spec, ReplayArrival):
                continue
            if not Path(spec.path).is_file():
                problems.append((("agents", index, *where, "path"), f"replay file not found: {spec.path}"))
                continue
            from msgstorm.scenario.replay import (
                read_replay_offsets_ns,  # pyarrow: only when replaying
            )

            try:  # read it now: a bad column or value must fail validation, not the run
                read_replay_offsets_ns(spec.path, spec.column, spec.time_unit, spec.speed)
            except (ValueError, OSError) as error:
                problems.append((("agents", index, *where, "column"), str(error)))
    names_seen: set[str] = set()
    for index, agent in enumerate(scenario.agents):
        if agent.name in names_seen:
            problems.append((("agents", index, "name"), f"agent name {agent.name!r} is used twice"))
        names_seen.add(agent.name)

    problems += _link_sample_problems(scenario)
    problems += _fault_target_problems(scenario)
    problems += _nemesis_draw_problems(scenario)
    problems += _unposted_problems(scenario)
    for name, expression in scenario.slo.items():
        if not slo_metric_known(name):
            problems.append((("slo", name), f"unknown SLO metric{did_you_mean(name, SLO_METRICS)}; see the SLO metrics in docs/scenario.md"))
            continue
        problem = slo_problem(name, expression)
        if problem is not None:
            problems.append((("slo", name), problem))
    problems += _market_references(scenario, regions, nodes, names_seen, hint_nodes)
    problems += _controller_references(scenario)
    return problems


def process_problems(scenario: Scenario, runs_processes: bool) -> list[Problem]:
    """``[live.nats]``'s client processes asked of a target whose clients run in no
    processes of their own (``runs_processes``: its driver declares ``Processes``)."""
    if runs_processes:
        return []
    nats = scenario.live.nats
    return [(("live", "nats", field), f"applies to target = \"nats\" only (this scenario's target is "
                                      f"{scenario.target!r}, whose clients run in no processes of their own)")
            for field, used in (("generator_processes", nats.generator_processes > 1),
                                ("consumer_processes", nats.consumer_processes)) if used]


def simulated_fault_problems(scenario: Scenario) -> list[Problem]:  # noqa: C901
    """The simulator's fault entries against its network: the regions and nodes they name,
    one surrounding eclipse at a time (``TARGETS["sim"]``'s own checks)."""
    problems: list[Problem] = []
    network = scenario.network
    regions, nodes, hint_nodes = _places(scenario)
    names = regions | nodes
    surrounds: list[tuple[tuple[str | int, ...], int, int | None]] = []  # (place, start, end): surrounding eclipses
    for where, fault in fault_entries(scenario):
        place: tuple[str | int, ...] = where[1:]  # the place under "faults"
        if fault.kind == "partition":
            seen_in: dict[int, int] = {}
            for g, group in enumerate(fault.groups):
                for name in group:
                    members = ([node_names(network).index(name)] if name in nodes
                               else [i for i, r in enumerate(node_regions(network)) if r == name])
                    for node in members:
                        if seen_in.setdefault(node, g) != g:
                            problems.append((("faults", *place, "groups", g),
                                             f"{name!r} puts node {node_names(network)[node]!r} in two groups"))
            for g, group in enumerate(fault.groups):
                for name in group:
                    if name not in names:
                        problems.append(
                            (("faults", *place, "groups", g), f"unknown region or node {name!r}{did_you_mean(name, names)}; regions are {sorted(regions)}")
                        )
        elif fault.kind == "crash":
            if fault.node != "sequencer" and fault.node not in nodes:
                problems.append((("faults", *place, "node"), f"unknown node {fault.node!r}{did_you_mean(fault.node, [*nodes, 'sequencer'])}; nodes are {hint_nodes} or \"sequencer\""))
        elif fault.kind == "degrade":
            for name in [*(fault.between or ()), *(fault.nodes or ())]:
                if name not in names:
                    field = "between" if fault.between else "nodes"
                    problems.append((("faults", *place, field), f"unknown region or node {name!r}{did_you_mean(name, names)}"))
        elif fault.kind == "equivocate":
            producers = scenario.blocks.producers
            if producers is None:
                problems.append((("faults", *place, "kind"), "an equivocating producer needs [blocks.producers]"))
            elif fault.node not in nodes:
                problems.append((("faults", *place, "node"), f"unknown node {fault.node!r}{did_you_mean(fault.node, nodes)}; nodes are {hint_nodes}"))
            elif producers.nodes and fault.node not in producers.nodes:
                problems.append((("faults", *place, "node"),
                                 f"node {fault.node!r} is not a producer; blocks.producers.nodes are {producers.nodes}"))
        elif fault.kind in ("equivocate_votes", "withhold_votes", "twins"):
            problems += _voter_problems(scenario, fault, place, nodes)
        elif fault.kind == "eclipse":
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
            if fault.surrounds:
                surrounds.append((place, fault.at, fault.at + fault.duration if fault.duration is not None else None))
        elif fault.kind in ("censor_nodes", "delay_nodes", "reorder_nodes", "flood_invalid"):
            for index, name in enumerate(fault.nodes):
                if name not in nodes:
                    problems.append((("faults", *place, "nodes", index),
                                     f"unknown node {name!r}{did_you_mean(name, nodes)}; nodes are {hint_nodes}"))
            if fault.count is not None and fault.count > len(nodes):
                what = {"censor_nodes": "censoring", "delay_nodes": "delaying", "reorder_nodes": "reordering",
                        "flood_invalid": "flooding"}
                problems.append((("faults", *place, "count"), f"{fault.count} {what[fault.kind]} nodes drawn from "
                                                              f"{len(nodes)} nodes"))
            if fault.kind == "flood_invalid":
                problems += _flood_problems(scenario, fault, place, len(nodes))
            if fault.kind == "censor_nodes" and fault.agents is not None:
                senders = sending_agents(scenario)
                for index, name in enumerate(fault.agents):
                    if name not in senders:
                        problems.append((("faults", *place, "agents", index),
                                         f"unknown agent {name!r}{did_you_mean(name, senders)}; agents are {senders}"))
        elif fault.kind == "oracle":
            if scenario.market is None:
                problems.append((("faults", *place, "kind"), "a byzantine oracle needs a [market] (its oracle)"))
            elif fault.instrument is not None and fault.instrument not in (known := [i.name for i in scenario.market.instruments]):
                problems.append((("faults", *place, "instrument"),
                                 f"unknown instrument {fault.instrument!r}{did_you_mean(fault.instrument, known)}"))
    # One surrounding eclipse at a time (sim/eclipse.py: its end restores the whole overlay).
    surrounds.sort(key=lambda entry: entry[1])
    for (_, _, end), (place, start, _) in zip(surrounds, surrounds[1:], strict=False):
        if end is None or start < end:
            problems.append((("faults", *place, "at"), "it surrounds a node while an earlier surrounding eclipse "
                                                       "is on: one at a time"))

    return problems


# Sections a target runs only when it names them in ``Target.sections``.
_SECTIONS = {"rollup": "[rollup]", "crosschain": "[crosschain]", "sentinel": "[market.sentinel]"}


def _section_problems(scenario: Scenario) -> list[Problem]:
    """The optional sections the scenario gives that its target does not run."""
    runs = TARGETS[scenario.target].sections
    given = {"rollup": scenario.rollup is not None, "crosschain": scenario.crosschain is not None,
             "sentinel": scenario.market is not None and scenario.market.sentinel is not None}
    problems: list[Problem] = []
    for section, present in given.items():
        if present and section not in runs:
            where: tuple[str | int, ...] = ("market", "sentinel") if section == "sentinel" else (section,)
            able = sorted(name for name in TARGETS if section in TARGETS[name].sections)
            problems.append((where, f"{_SECTIONS[section]} runs on target {' or '.join(map(repr, able))} only: "
                                    f"target {scenario.target!r} cannot run it (drop {_SECTIONS[section]}, or "
                                    f"{' or '.join(f'--target {name}' for name in able)})"))
    return problems


def live_problems(scenario: Scenario, market: list[Problem] | None) -> list[Problem]:
    """What a real system cannot run of a scenario (a live ``Target``'s checks common to
    every live target): the simulator's ordering protocols, lane, producers and
    controllers, and ``[market]`` unless the target runs it (``market``: what it says of
    the section; None: it does not run it)."""
    problems: list[Problem] = []
    sequencer = scenario.sequencer
    if scenario.market is not None:
        if market is not None:
            problems += market
        else:
            problems.append((("market",), f"market agents run on the simulator and on a chain node only (target "
                                          f"{scenario.target!r}): drop [market] or run with --target sim"))
    # The ordering protocols live in the simulator's sequencer; a broker has its own order.
    if sequencer.policy in ORDERING_SETTINGS:
        problems.append((("sequencer", "policy"), f"queue policy {sequencer.policy!r} runs on the simulator only "
                                                  f"(target {scenario.target!r}): drop it or run with --target sim"))
    for name in ORDERING_SETTINGS:
        if getattr(sequencer, name) is not None:
            problems.append((("sequencer", name), f"[sequencer.{name}] applies on the simulator only (target "
                                                  f"{scenario.target!r}): drop it or run with --target sim"))
    if scenario.sequencer.lane is not None:
        problems.append((("sequencer", "lane"), f"the liquidation lane is the simulator's sequencer's (target "
                                                f"{scenario.target!r}): drop it or run with --target sim"))
    if scenario.blocks.producers is not None:
        problems.append((("blocks", "producers"), f"producers across the nodes are the simulator's (target "
                                                  f"{scenario.target!r}): drop [blocks.producers] or run "
                                                  "with --target sim"))
    for index, _ in enumerate(scenario.controllers):
        problems.append((("controllers", index), f"controllers steer the simulator only (target "
                                                 f"{scenario.target!r}): drop [[controllers]] or run with "
                                                 "--target sim"))
    return problems


# The fault kinds a distributed run applies (from the driver's process, on the servers it
# started or the routes of its cluster; ``live/distributed.py``): a toxic only on a
# cluster's routes (the clients' links would need the fault proxy between every generator
# and the server), and a process fault naming a server (the leader or followers are asked
# of a client of the driver's, which a distributed run's driver does not connect).
DISTRIBUTED_FAULTS = ("crash", "pause", "restart", "partition", "bridge", "toxic")
# A crash's or pause's ``node`` naming the stream's leader or followers (``live/faults/crash.py``).
LEADER_OR_FOLLOWERS = ("sequencer", "leader", "followers")


def distributed_problems(scenario: Scenario) -> list[Problem]:
    """``[live] generators`` above 1: what a distributed run cannot do (yet), by field."""
    live = scenario.live
    if live.generators == 1:
        return []
    problems: list[Problem] = []
    target = TARGETS.get(scenario.target)
    if target is None or target.generator_names(live, 0) is None:  # no generators' names of its own
        spread = distributed_targets(live)
        problems.append((("live", "generators"), f"{live.generators} generators: a run spread over a Ray cluster "
                                                 f"drives targets {spread} (this scenario's "
                                                 f"target is {scenario.target!r}; docs/live.md, \"Load from many "
                                                 "hosts\", says why not the others); set live.generators = 1"))
    else:
        problems += [(("live", *where), said) for where, said in name_problems(live, scenario.target)]
    for where, spec in fault_entries(scenario):
        if spec.kind not in DISTRIBUTED_FAULTS:
            problems.append((where, f"a {spec.kind} fault with live.generators = {live.generators}: a distributed "
                                    f"run applies {list(DISTRIBUTED_FAULTS)} only; drop it or set "
                                    "live.generators = 1"))
        elif isinstance(spec, ToxicFault) and spec.link != "routes":
            problems.append(((*where, "link"), f"a toxic on the {spec.link} links with live.generators = "
                                               f"{live.generators}: a distributed run's clients do not go through "
                                               "the fault proxy; only link = \"routes\" (a cluster's) applies"))
        elif isinstance(spec, CrashFault | PauseFault) and spec.node in LEADER_OR_FOLLOWERS:
            problems.append(((*where, "node"), f"node = {spec.node!r} with live.generators = {live.generators}: the "
                                               "leader is asked of a client a distributed run's driver does not "
                                               "connect; name a server"))
    if live.nats.generator_processes > 1:
        problems.append((("live", "nats", "generator_processes"), "generator processes and live.generators "
                                                                  "together: use one of them"))
    return problems


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
        elif live:
            problems += [((*where, *field), message) for field, message in kinds[fault.kind].problems(scenario, fault)]
    return problems


def _controller_references(scenario: Scenario) -> list[Problem]:
    """One controller of each kind (two would steer the same thing against each other); a
    throttle sheds no kind the lane's workers serve; a block_time controller starts from a
    ``blocks.interval`` within its bounds."""
    problems: list[Problem] = []
    first_of: dict[str, int] = {}
    lane = scenario.sequencer.lane
    lane_kinds = set(lane.kinds) if lane is not None and lane.workers else set()
    for index, spec in enumerate(scenario.controllers):
        if spec.kind in first_of:
            problems.append((("controllers", index, "kind"),
                             f"a second {spec.kind!r} controller (the first is controllers[{first_of[spec.kind]}]): "
                             "two would steer the same thing against each other; keep one"))
        first_of.setdefault(spec.kind, index)
        if spec.kind == "throttle" and lane_kinds & set(spec.nonessential):
            both = sorted(lane_kinds & set(spec.nonessential))
            problems.append((("controllers", index, "nonessential"),
                             f"{both} are also sequencer.lane.kinds, which the lane serves unshed: drop them here "
                             "or from the lane"))
        if spec.kind == "block_time":
            interval = scenario.blocks.interval
            for field, outside in (("min_interval", interval < spec.min_interval),
                                   ("max_interval", interval > spec.max_interval)):
                if outside:
                    problems.append((("controllers", index, field),
                                     f"blocks.interval ({format_duration(interval)}) is outside [min_interval, "
                                     f"max_interval] ({format_duration(spec.min_interval)}, "
                                     f"{format_duration(spec.max_interval)}): the controller starts from it"))
    return problems


def _voter_problems(scenario: Scenario, fault: EquivocateVotesFault | WithholdVotesFault | TwinsFault,
                    place: tuple[str | int, ...], nodes: set[str]) -> list[Problem]:
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


def _producer_references(scenario: Scenario, nodes: set[str], hint_nodes: str) -> list[Problem]:
    """``[blocks.producers]``: named producers exist, no more are drawn than there are nodes,
    and the rules it replaces (controllers steering the one sequencer's blocks) are not set."""
    producers = scenario.blocks.producers
    if producers is None:
        return []
    problems: list[Problem] = []
    for index, name in enumerate(producers.nodes):
        if name not in nodes:
            problems.append((("blocks", "producers", "nodes", index),
                             f"unknown node {name!r}{did_you_mean(name, nodes)}; nodes are {hint_nodes}"))
    if producers.count is not None and producers.count > len(nodes):
        problems.append((("blocks", "producers", "count"),
                         f"{producers.count} producers drawn from {len(nodes)} nodes"))
    if not producers.nodes and producers.count is None and isinstance(producers.shares, list) and producers.shares and len(producers.shares) != len(nodes):
        problems.append((("blocks", "producers", "shares"),
                         f"shares has {len(producers.shares)} entries; every node ({len(nodes)}) produces"))
    if scenario.controllers:
        problems.append((("controllers",), "controllers steer the one sequencer's blocks; drop them or "
                                           "[blocks.producers]"))
    return problems


def _relay_sample_problems(scenario: Scenario) -> list[Problem]:
    """``network.relay.sample`` (sim/sampled_pool.py) gives unsampled messages their arrival
    at the producers only: it needs ``[blocks.producers]`` and the simulator, and nothing
    that must see every message at a node (a market's reactors, a twin's own mempool)."""
    if scenario.network.relay.sample is None:
        return []
    place = ("network", "relay", "sample")
    needs = ("unsampled messages reach producers only (docs/networks.md); remove network.relay.sample or ")
    if not simulated(scenario):
        return [(place, "a relay sample is the simulator's: remove it for a live target")]
    if scenario.blocks.producers is None:
        return [(place, needs + "add [blocks.producers]")]
    if scenario.market is not None:
        return [(place, needs + "[market] (its agents react to every message they see)")]
    twins = [where for where, fault in fault_entries(scenario) if isinstance(fault, TwinsFault)]
    if twins:
        return [(place, needs + f"the twins fault at {'.'.join(map(str, twins[0]))} (a twin keeps its own mempool)")]
    overload = load_problem(scenario, messages_per_agent(scenario))
    return [] if overload is None else [(place, overload)]


# The most invalid messages the flood faults of one run may send (each is a Python call and
# a validation at every peer): a larger flood is refused before the run starts.
MAX_FLOOD_MESSAGES = 5_000_000


def _flood_problems(scenario: Scenario, fault: FloodInvalidFault, place: tuple[str | int, ...],
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


def _market_references(scenario: Scenario, regions: set[str], nodes: set[str], agent_names: set[str],
                       hint_nodes: str) -> list[Problem]:
    """``[market]``: its nodes and regions exist, its agents' names are not the traffic
    agents', its files exist, and it runs on the simulator."""
    market = scenario.market
    if market is None:
        return []
    problems: list[Problem] = []  # on a live target, its own checks say whether it runs [market]
    oracle = market.oracle
    if oracle.node is not None and oracle.node not in nodes:
        problems.append((("market", "oracle", "node"),
                         f"unknown node {oracle.node!r}{did_you_mean(oracle.node, nodes)}; nodes are {hint_nodes}"))
    if oracle.name in agent_names:
        problems.append((("market", "oracle", "name"), f"{oracle.name!r} is also the name of an agent"))
    for index, keeper in enumerate(market.keepers):
        if keeper.region is not None and keeper.region not in regions:
            problems.append((("market", "keepers", index, "region"),
                             f"unknown region {keeper.region!r}{did_you_mean(keeper.region, regions)}; "
                             f"regions are {sorted(regions)}"))
        if keeper.node is not None and keeper.node not in nodes:
            problems.append((("market", "keepers", index, "node"),
                             f"unknown node {keeper.node!r}{did_you_mean(keeper.node, nodes)}; nodes are {hint_nodes}"))
        if keeper.name in agent_names:
            problems.append((("market", "keepers", index, "name"), f"{keeper.name!r} is also the name of an agent"))
    topups = market.topups
    if topups is not None:
        if topups.node is not None and topups.node not in nodes:
            problems.append((("market", "topups", "node"),
                             f"unknown node {topups.node!r}{did_you_mean(topups.node, nodes)}; nodes are {hint_nodes}"))
        if topups.name in agent_names:
            problems.append((("market", "topups", "name"), f"{topups.name!r} is also the name of an agent"))
    for index, runner in enumerate(market.frontrunners):
        for field, node in (("node", runner.node), ("watch", runner.watch)):
            if node is not None and node not in nodes:
                problems.append((("market", "frontrunners", index, field),
                                 f"unknown node {node!r}{did_you_mean(node, nodes)}; nodes are {hint_nodes}"))
        if runner.name in agent_names:
            problems.append((("market", "frontrunners", index, "name"), f"{runner.name!r} is also the name of an agent"))
    instruments = [instrument.name for instrument in market.instruments]
    orders = market.orders
    if orders is not None and orders.instrument is not None and orders.instrument not in instruments:
        problems.append((("market", "orders", "instrument"),
                         f"unknown instrument {orders.instrument!r}{did_you_mean(orders.instrument, instruments)}; "
                         f"instruments are {instruments}"))
    for index, group in enumerate(market.accounts):
        if group.instrument is not None and group.instrument not in instruments:
            problems.append((("market", "accounts", index, "instrument"),
                             f"unknown instrument {group.instrument!r}{did_you_mean(group.instrument, instruments)}; "
                             f"instruments are {instruments}"))
        if group.file is not None and not Path(group.file).is_file():
            problems.append((("market", "accounts", index, "file"), f"accounts file not found: {group.file}"))
    for index, instrument in enumerate(market.instruments):
        if instrument.replay is not None and not Path(instrument.replay).is_file():
            problems.append((("market", "instruments", index, "replay"), f"price file not found: {instrument.replay}"))
    return problems


def _link_sample_problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """Empirical link models whose samples cannot be read (read now: a bad file, column or
    value must fail validation, not the run)."""
    models: list[tuple[tuple[str | int, ...], LinkModel]] = [(("network", "link"), scenario.network.link)]
    models += [(("network", "links", i, "dist"), link.dist) for i, link in enumerate(scenario.network.links)
               if link.dist is not None]
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for where, model in models:
        if model.dist != "empirical" or model.samples is None or model.column is None:
            continue
        if not Path(model.samples).is_file():
            problems.append(((*where, "samples"), f"link samples file not found: {model.samples}"))
            continue
        from msgstorm.scenario.replay import read_delays_ns  # pyarrow: only with empirical links

        try:
            read_delays_ns(model.samples, model.column, model.unit)
        except (ValueError, OSError) as error:
            problems.append(((*where, "column"), str(error)))
    return problems
