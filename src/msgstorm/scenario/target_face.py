"""What the scenario layer knows of a target: the face every entry of ``TARGETS`` shows.

Place in the pipeline: the scenario layer, below every engine. ``TARGETS``
(``scenario/registry.py``) is a registry of ``TargetFace``, so the type checker holds each
entry to it; validation, the cost estimate and the command line ask an entry only what this
face says. ``targets/base.py``'s ``Target`` is the same face with the run it records typed
(``RunContext``, which names the history's writer, a layer this one cannot import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from msgstorm.scenario.budget import WorkEstimate
    from msgstorm.scenario.live import LiveSpec, OwnNames
    from msgstorm.scenario.schema import Scenario

__all__ = ["Problem", "TargetFace"]

Problem = tuple[tuple[str | int, ...], str]  # (the field's path in the scenario, what is wrong)


class TargetFace(Protocol):
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
    Ctrl-C ends the run with what it recorded (``run``: a ``RunContext``, typed by
    ``targets/base.py``'s ``Target``). ``url_schemes``: the schemes of a server's URL that
    pick it on the command line (``--target SCHEME://host:port``), each with the scheme its
    client connects with (none: it is picked by name only). ``generator_names``: the
    ``[live]`` fields generator ``index`` of a run spread over a Ray cluster names on its own
    (``scenario/generators.py``); None: its runs are not spread. ``driver``: the class whose
    ``capabilities`` say what a live target's system can do (a broker's driver, the EVM
    node's, the validators'); None for a target that drives no live system."""

    simulated: bool
    sections: frozenset[str]
    analyse_apart: bool

    def problems(self, scenario: Scenario) -> list[Problem]: ...

    def estimate(self, scenario: Scenario) -> WorkEstimate: ...

    def record(self, run: Any) -> None: ...

    def url_schemes(self) -> dict[str, str]: ...

    def generator_names(self, live: LiveSpec, index: int) -> OwnNames | None: ...

    def driver(self) -> type | None: ...
