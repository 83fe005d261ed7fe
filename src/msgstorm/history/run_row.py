"""The history's ``run`` table: one row of what ran, where, and how far it got.

Place in the pipeline: written by every run (``runner``: the simulator and one live target;
``live/distributed.py``: a run whose generators are Ray actors) at its start, with
``completed`` False, and again at its end; a history whose last row is the first was cut
off. The scenario is read through ``canon`` (its hash is ``scenario.scenario_hash``'s).
"""

from __future__ import annotations

import json
import os
import platform
from typing import Any, Protocol

from msgstorm.canon import canonical_hash, canonical_json
from msgstorm.history.writer import HistoryWriter

__all__ = ["RunTarget", "host_facts", "msgstorm_version", "write_run_row"]


class RunTarget(Protocol):
    """What the run row needs of a target (the simulator or a live one)."""

    @property
    def nodes(self) -> list[dict[str, str]]: ...

    interrupted: bool


def msgstorm_version() -> str:
    """The package's version (``msgstorm/version.py``, which pyproject.toml reads too)."""
    from msgstorm.version import __version__

    return __version__


def host_facts() -> str:
    facts = {"python": platform.python_version(), "platform": platform.platform(),
             "machine": platform.machine(), "cpus": os.cpu_count()}
    return json.dumps(facts, sort_keys=True)


def write_run_row(writer: HistoryWriter, scenario: Any, sim: RunTarget, t_end: int, completed: bool = True) -> None:
    """Append the run row of ``scenario`` (a validated ``Scenario``) run on ``sim``."""
    writer.append("run", {
        "scenario_name": [scenario.run.name],
        "scenario_hash": [canonical_hash(scenario)],
        "scenario_json": [canonical_json(scenario)],
        "seed": [scenario.run.seed],
        "msgstorm_version": [msgstorm_version()],
        "target": [scenario.target],
        "nodes_json": [json.dumps(sim.nodes)],
        "t_end": [t_end],
        "interrupted": [sim.interrupted],
        "host": [host_facts()],
        "completed": [completed],
    })
