"""msgstorm: stress-test the messaging layer of a trading system.

Load a scenario, run it on the embedded shadow network, read the verdicts::

    import msgstorm
    scenario = msgstorm.load_scenario("examples/quickstart.toml")
    result = msgstorm.run(scenario)
    print(result.summary["latency_ms"]["p99"])
"""

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


def __getattr__(name: str) -> object:
    # The runner pulls in the simulator and analysis; import them only when used so that
    # ``msgstorm validate`` and scenario tooling stay light.
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
