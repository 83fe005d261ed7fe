"""The names a scenario defines (its nodes, regions and sending agents), and how a reference
check says one was misspelt.

Place in the pipeline: under the reference checks of a validated scenario (``scenario/refs.py``
for the scenario as a whole, ``scenario/fault_refs.py`` for its faults, ``scenario/live_refs.py``
for what a live target cannot run): each reports a ``Problem``, a ``(location, message)`` pair
that the loader turns into a file:line error.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from msgstorm.scenario.registry import TARGETS

if TYPE_CHECKING:
    from msgstorm.scenario.schema import NetworkSpec, Scenario

__all__ = ["Places", "Problem", "did_you_mean", "node_names", "node_regions", "places",
           "sending_agents", "simulated"]

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


def simulated(scenario: Scenario) -> bool:
    """Whether the scenario's target runs the simulator's model (``Target.simulated``; an
    unknown target, which validation names, counts as not)."""
    return scenario.target in TARGETS and bool(TARGETS[scenario.target].simulated)


class Places(NamedTuple):
    """The network's regions, its nodes, and the first nodes' names as a hint in a message."""

    regions: set[str]
    nodes: set[str]
    hint_nodes: str


def places(scenario: Scenario) -> Places:
    """The network's ``Places``."""
    regions = set(scenario.network.regions)
    nodes = set(node_names(scenario.network))
    return Places(regions, nodes, ", ".join(sorted(nodes)[:6]) + (" ..." if len(nodes) > 6 else ""))
