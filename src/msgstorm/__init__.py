"""msgstorm: stress-test the messaging layer of a trading system.

Load a scenario, run it on the embedded shadow network, read the verdicts::

    import msgstorm
    scenario = msgstorm.load_scenario("examples/quickstart.toml")
    result = msgstorm.run(scenario)
    print(result.summary["latency_ms"]["p99"])
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from msgstorm.version import __version__ as __version__

if TYPE_CHECKING:
    from msgstorm.analysis import analyse
    from msgstorm.history import read_history
    from msgstorm.runner import RunResult, run
    from msgstorm.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "RunResult",
    "Scenario",
    "ScenarioError",
    "analyse",
    "load_scenario",
    "parse_scenario",
    "read_history",
    "run",
]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# Where each name lives.
_HOMES = {
    "Scenario": "msgstorm.scenario", "ScenarioError": "msgstorm.scenario",
    "load_scenario": "msgstorm.scenario", "parse_scenario": "msgstorm.scenario",
    "run": "msgstorm.runner", "RunResult": "msgstorm.runner",
    "read_history": "msgstorm.history", "analyse": "msgstorm.analysis",
}


def __getattr__(name: str) -> object:
    # Every name loads on first use: ``import msgstorm.<module>`` runs this package first, and
    # a command that does not read a scenario (``report``, ``compare``) should not pay for the
    # scenario schema, nor ``validate`` for the simulator and analysis.
    if name == "scenario":  # the subpackage, read as an attribute before it was imported
        return import_module("msgstorm.scenario")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'msgstorm' has no attribute {name!r}")
    return getattr(import_module(home), name)
