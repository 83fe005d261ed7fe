"""What every target is: the ``Target`` interface and the run it records.

Place in the pipeline: ``targets/``; the registry ``TARGETS`` (``scenario/registry.py``)
maps ``scenario.target`` to an object with this interface, and nothing else in the
package tells targets apart by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from msgstorm.history.writer import HistoryWriter
    from msgstorm.progress import Progress
    from msgstorm.scenario.budget import WorkEstimate
    from msgstorm.scenario.live import LiveSpec, OwnNames
    from msgstorm.scenario.schema import Scenario

__all__ = ["Problem", "RunContext", "Target"]

Problem = tuple[tuple[str | int, ...], str]  # (the field's path in the scenario, what is wrong)


@dataclass(frozen=True)
class RunContext:
    """One run as the runner hands it to its target: the scenario, the history to write
    (``writer``, in ``run_dir``), the run's two seeds (the traffic's and the target's own),
    and the caller's options (``write_report``, ``durable``: for a target that runs and
    analyses a second history, as the simulator's cross-chain destination; ``ray``: a Ray
    cluster's address for a live run spread over its nodes)."""

    scenario: Scenario
    writer: HistoryWriter
    run_dir: Path
    traffic_seed: np.random.SeedSequence
    target_seed: np.random.SeedSequence
    progress: Progress | None = None
    write_report: bool = True
    durable: bool = True
    ray: str | None = None


class Target(Protocol):
    """A target: what ``scenario.target`` names.

    ``simulated``: it runs the simulator's model, so the sections and settings only a model
    applies (ordering protocols, a liquidation lane, producers, controllers, relay samples,
    simulated fault kinds) are its to run; a real system refuses them, naming the field.
    ``sections``: the optional scenario sections it runs (``rollup``, ``crosschain``,
    ``sentinel``: ``[market.sentinel]``); the others are refused. ``analyse_apart``: the
    run's analysis goes to a new interpreter (one whose recording loaded clients and
    compiled code the analysis need not start on top of). ``problems``: what of a
    scenario it cannot run, each with its field, before anything starts (validation).
    ``estimate``: the work and memory a run of the scenario takes (``scenario/budget.py``),
    refused before it starts when it will not fit. ``record``: run the scenario, writing
    the history's tables (``history/schema.py``) through ``run.writer``, and close it; a
    Ctrl-C ends the run with what it recorded. ``url_schemes``: the schemes of a server's
    URL that pick it on the command line (``--target SCHEME://host:port``), each with the
    scheme its client connects with (none: it is picked by name only). ``generator_names``:
    the ``[live]`` fields generator ``index`` of a run spread over a Ray cluster names on
    its own (``scenario/generators.py``); None: its runs are not spread."""

    simulated: bool
    sections: frozenset[str]
    analyse_apart: bool

    def problems(self, scenario: Scenario) -> list[Problem]: ...

    def estimate(self, scenario: Scenario) -> WorkEstimate: ...

    def record(self, run: RunContext) -> None: ...

    def url_schemes(self) -> dict[str, str]: ...

    def generator_names(self, live: LiveSpec, index: int) -> OwnNames | None: ...
