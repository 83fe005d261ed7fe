"""Targets: what a scenario runs on, one entry each in ``TARGETS`` (``scenario/registry.py``).

Place in the pipeline: between the scenario and the engines. ``runner.run`` asks the
registry for the scenario's target, has it ``record`` the run into the history, then
analyses what it wrote; validation asks the same entry for the target's own ``problems``
and its cost ``estimate``. ``sim`` is the shadow network (``targets/sim.py``); every
broker driver, ``anvil`` and ``cometbft`` is a live target (``targets/live.py``). Adding a
target is one module and one registry line (``docs/extending.md``).
"""

from msgstorm.targets.base import RunContext, Target

__all__ = ["RunContext", "Target"]
