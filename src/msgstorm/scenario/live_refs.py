"""What a live target cannot run of a scenario: the checks every live target shares, and those
of a run spread over many generator hosts.

Place in the pipeline: part of the reference pass over a validated scenario. A live
``Target`` (``targets/live.py``) runs ``live_problems`` and ``process_problems``;
``check_references`` (``scenario/refs.py``) runs ``distributed_problems`` and
``section_problems``; a target class says what else it cannot do through ``ChecksScenario``
and ``RunsMarket``. Each returns ``Problem``s, ``(location, message)`` pairs the loader turns
into file:line errors.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit

from msgstorm.scenario.faults import CrashFault, PauseFault, ToxicFault
from msgstorm.scenario.generators import distributed_targets, name_problems
from msgstorm.scenario.ref_names import Problem
from msgstorm.scenario.registry import TARGETS
from msgstorm.scenario.schema import ORDERING_SETTINGS, fault_entries

if TYPE_CHECKING:
    from msgstorm.scenario.schema import Scenario

__all__ = ["DISTRIBUTED_FAULTS", "LEADER_OR_FOLLOWERS", "ChecksScenario", "RunsMarket",
           "distributed_problems", "is_loopback_url", "live_problems", "process_problems",
           "section_problems"]


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


# Sections a target runs only when it names them in ``Target.sections``.
_SECTIONS = {"rollup": "[rollup]", "crosschain": "[crosschain]", "sentinel": "[market.sentinel]"}


def section_problems(scenario: Scenario) -> list[Problem]:
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
