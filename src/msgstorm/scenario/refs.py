"""Cross-reference checks on a validated scenario: names that must exist elsewhere in it.

Pydantic checks each field alone; this pass checks that regions, nodes, files, queue
policies and SLO metrics named in one place exist, and returns ``(location, message)``
pairs that the loader turns into file:line errors. The faults' checks are in
``scenario/fault_refs.py``, what a live target cannot run in ``scenario/live_refs.py``, and
the names they share in ``scenario/ref_names.py``; their public names are importable from
here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from msgstorm.scenario.budget import messages_per_agent
from msgstorm.scenario.fault_refs import (
    MAX_FLOOD_MESSAGES,
    fault_entry_problems,
    fault_time_problems,
    simulated_fault_problems,
)
from msgstorm.scenario.live_refs import (
    DISTRIBUTED_FAULTS,
    LEADER_OR_FOLLOWERS,
    ChecksScenario,
    RunsMarket,
    distributed_problems,
    is_loopback_url,
    live_problems,
    process_problems,
    section_problems,
)
from msgstorm.scenario.ref_names import (
    Problem,
    did_you_mean,
    node_names,
    node_regions,
    places,
    sending_agents,
    simulated,
)
from msgstorm.scenario.regions import default_one_way_ns
from msgstorm.scenario.registry import QUEUE_POLICIES, TARGETS
from msgstorm.scenario.sample_load import load_problem
from msgstorm.scenario.schema import LinkModel, TwinsFault, fault_entries
from msgstorm.scenario.slo import SLO_METRICS, slo_metric_known, slo_problem
from msgstorm.scenario.traffic import PhasesArrival, ReplayArrival
from msgstorm.scenario.units import format_duration

if TYPE_CHECKING:
    from msgstorm.scenario.schema import Scenario

__all__ = ["DISTRIBUTED_FAULTS", "LEADER_OR_FOLLOWERS", "MAX_FLOOD_MESSAGES",
           "ChecksScenario", "Problem", "RunsMarket", "check_references", "did_you_mean", "distributed_problems",
           "fault_time_problems", "is_loopback_url", "live_problems", "node_names", "node_regions",
           "process_problems", "sending_agents", "simulated", "simulated_fault_problems"]


def _region_pair(key: str) -> tuple[str, str] | None:
    parts = key.split("/")
    return (parts[0].strip(), parts[1].strip()) if len(parts) == 2 else None


def check_references(scenario: Scenario) -> list[Problem]:
    """Every name used is defined; every region pair has a latency."""
    problems: list[Problem] = []
    regions, nodes, hint_nodes = places(scenario)
    problems += _network_problems(scenario, regions, nodes)
    gossip = scenario.gossip
    if gossip.mode == "mesh" and gossip.degree > gossip.peers:
        problems.append((("gossip", "degree"), f"mesh degree {gossip.degree} exceeds peers {gossip.peers}"))

    problems += _producer_references(scenario, nodes, hint_nodes)
    problems += _relay_sample_problems(scenario)
    problems += _sequencer_references(scenario, nodes, hint_nodes)
    if scenario.target in TARGETS:  # the target's own checks (``Target.problems``)
        problems += TARGETS[scenario.target].problems(scenario)
        problems += section_problems(scenario)

    problems += _agent_references(scenario, regions, nodes, hint_nodes)
    problems += _link_sample_problems(scenario)
    problems += fault_entry_problems(scenario)
    problems += _slo_problems(scenario)
    agent_names = {agent.name for agent in scenario.agents}
    problems += _market_references(scenario, regions, nodes, agent_names, hint_nodes)
    problems += _controller_references(scenario)
    return problems


def _network_problems(scenario: Scenario, regions: set[str], nodes: set[str]) -> list[Problem]:
    """Latency keys name two known regions, every pair of regions has a latency (given, by a
    link, or built in), and a link lies between known regions or nodes."""
    problems: list[Problem] = []
    network = scenario.network
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
    return problems


def _sequencer_references(scenario: Scenario, nodes: set[str], hint_nodes: str) -> list[Problem]:
    """The sequencer's node and standbys exist, a live URL is on this machine unless allowed,
    a distributed run can do what is asked, the target and queue policy are known, and the
    fair-order nodes exist, each once."""
    problems: list[Problem] = []
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
        hint = did_you_mean(scenario.target, TARGETS.names())
        problems.append((("target",), f"unknown target {scenario.target!r}{hint}; "
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
    return problems


def _agent_references(scenario: Scenario, regions: set[str], nodes: set[str],
                      hint_nodes: str) -> list[Problem]:
    """Each agent's region and node exist and its replay files read; no two agents share a name."""
    problems: list[Problem] = []
    for index, agent in enumerate(scenario.agents):
        if agent.region is not None and agent.region not in regions:
            problems.append((("agents", index, "region"), f"unknown region {agent.region!r}{did_you_mean(agent.region, regions)}; regions are {sorted(regions)}"))
        if agent.node is not None and agent.node not in nodes:
            problems.append((("agents", index, "node"), f"unknown node {agent.node!r}{did_you_mean(agent.node, nodes)}; nodes are {hint_nodes}"))
        problems += _replay_problems(scenario, index)
    names_seen: set[str] = set()
    for index, agent in enumerate(scenario.agents):
        if agent.name in names_seen:
            problems.append((("agents", index, "name"), f"agent name {agent.name!r} is used twice"))
        names_seen.add(agent.name)
    return problems


def _replay_problems(scenario: Scenario, index: int) -> list[Problem]:
    """Agent ``index``'s replayed arrivals (its own, or a phase's) exist and read."""
    agent = scenario.agents[index]
    problems: list[Problem] = []
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
    return problems


def _slo_problems(scenario: Scenario) -> list[Problem]:
    """Each SLO names a known metric with a threshold it can be compared against."""
    problems: list[Problem] = []
    for name, expression in scenario.slo.items():
        if not slo_metric_known(name):
            problems.append((("slo", name), f"unknown SLO metric{did_you_mean(name, SLO_METRICS)}; see the SLO metrics in docs/scenario.md"))
            continue
        problem = slo_problem(name, expression)
        if problem is not None:
            problems.append((("slo", name), problem))
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


def _market_references(  # noqa: C901
    scenario: Scenario, regions: set[str], nodes: set[str], agent_names: set[str],
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
