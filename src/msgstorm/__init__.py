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


def __getattr__(name: str) -> object:
    # Every name loads on first use: ``import msgstorm.<module>`` runs this package first, and
    # a command that does not read a scenario (``report``, ``compare``) should not pay for the
    # scenario schema, nor ``validate`` for the simulator and analysis.
    if name in ("Scenario", "ScenarioError", "load_scenario", "parse_scenario"):
        return getattr(import_module("msgstorm.scenario"), name)
    if name == "scenario":  # the subpackage, as ``msgstorm.scenario`` read before it was imported
        return import_module("msgstorm.scenario")
    if name in ("run", "RunResult"):
        from msgstorm import runner

        return getattr(runner, name)
    if name == "read_history":
        from msgstorm.history import read_history

        return read_history
    if name == "analyse":
        from msgstorm.analysis import analyse

        return analyse
    raise AttributeError(f"module 'msgstorm' has no attribute {name!r}")
