"""Scenario: the validated, frozen description of a stress test, loaded from TOML.

The names below load on first use: the analysis reads ``scenario.slo`` and
``scenario.registry`` from a run's history without needing the schema (pydantic), which
``load_scenario`` and ``Scenario`` bring in.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_HOMES = {
    "ScenarioError": "errors", "ScenarioIssue": "errors",
    "load_scenario": "loader", "parse_scenario": "loader", "scenario_hash": "loader",
    "node_names": "refs", "node_regions": "refs",
    "MESSAGE_KINDS": "schema", "Scenario": "schema",
}


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'msgstorm.scenario' has no attribute {name!r}")
    return getattr(import_module(f"msgstorm.scenario.{home}"), name)
