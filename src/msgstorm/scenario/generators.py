"""Each generator's own names in a run spread over a Ray cluster (``live/distributed.py``).

Place in the pipeline: the scenario layer, below the targets. Each target says the names its
generator k takes (``Target.generator_names``: a broker driver's ``generator_names``, beside
its client in ``live/drivers/``; a target that says none is not spread). ``scenario/refs.py``
refuses a scenario with ``live.generators`` above 1 whose target says none
(``distributed_targets`` names those that do) or whose names the suffix makes invalid
(``name_problems``); ``live/distributed.py`` gives generator k the ``[live]`` section
``generator_live`` makes. Generator k publishes to a subject, stream, topic or queue of its
own, which its own consumers read and which its driver reads back after the run, so each
generator's run is an ordinary one-generator run on the one server, and the broker-side
audits of the generators cover disjoint shares. Each name is checked here against the
scenario's own patterns (``scenario/live.py``).
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from msgstorm.scenario.live import LiveSpec
from msgstorm.scenario.registry import TARGETS

__all__ = ["distributed_targets", "generator_live", "name_problems"]


def distributed_targets(live: LiveSpec) -> list[str]:
    """The targets whose runs can be spread over generators on a Ray cluster (each loaded to
    ask it: said when a scenario's target is not one of them)."""
    return [name for name in TARGETS if TARGETS[name].generator_names(live, 0) is not None]


def generator_live(live: LiveSpec, target: str, index: int, url: str | None) -> LiveSpec:
    """Generator ``index``'s ``[live]``: an ordinary one-generator run against ``url`` (the
    one server), on names of its own, each validated as the scenario's own are (a
    ``pydantic.ValidationError`` for a name the suffix makes too long: ``name_problems``
    finds it at load time). ValueError for a target whose runs are not spread."""
    names = TARGETS[target].generator_names(live, index)
    if names is None:
        raise ValueError(f"target {target!r} names no generators of its own: its runs are not spread")
    update: dict[str, object] = {"url": url, "generators": 1}
    for name, value in names.items():
        if isinstance(value, dict):  # a driver's section: the fields of it that change
            section = getattr(live, name).model_copy()
            for field, named in value.items():
                type(section).__pydantic_validator__.validate_assignment(section, field, named)
            update[name] = section
        else:
            checked = live.model_copy()
            type(live).__pydantic_validator__.validate_assignment(checked, name, value)
            update[name] = getattr(checked, name)
    return live.model_copy(update=update)


def name_problems(live: LiveSpec, target: str) -> list[tuple[tuple[str | int, ...], str]]:
    """The names the last generator's suffix (the longest) makes invalid: (field path under
    ``live``, why)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    last = live.generators - 1
    try:
        generator_live(live, target, last, live.url)
    except ValidationError as error:
        sections = {type(spec).__name__: name for name, spec in live if isinstance(spec, BaseModel)}
        for said in error.errors():
            where = (*([sections[error.title]] if error.title in sections else []), *said["loc"])
            problems.append((where, f"{said['input']!r}, generator {last}'s name (this name with the suffix that "
                                    f"generator adds): {said['msg']}; shorten it"))
    return problems
