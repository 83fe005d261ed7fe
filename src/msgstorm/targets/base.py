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

from msgstorm.scenario.target_face import Problem, TargetFace

if TYPE_CHECKING:
    from msgstorm.history.writer import HistoryWriter
    from msgstorm.progress import Progress
    from msgstorm.scenario.schema import Scenario

__all__ = ["Problem", "RunContext", "Target"]


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


class Target(TargetFace, Protocol):
    """A target (``scenario/target_face.py`` says what each member is), its ``record`` given
    the run as the runner hands it."""

    def record(self, run: RunContext) -> None: ...
