"""Scenario: the validated, frozen description of a stress test, loaded from TOML."""

from msgstorm.scenario.errors import ScenarioError, ScenarioIssue
from msgstorm.scenario.loader import load_scenario, parse_scenario, scenario_hash
from msgstorm.scenario.refs import node_names, node_regions
from msgstorm.scenario.schema import MESSAGE_KINDS, Scenario

__all__ = [
    "MESSAGE_KINDS",
    "Scenario",
    "ScenarioError",
    "ScenarioIssue",
    "load_scenario",
    "node_names",
    "node_regions",
    "parse_scenario",
    "scenario_hash",
]
