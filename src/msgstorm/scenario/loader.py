"""Loading a scenario: TOML text -> overrides -> validated, frozen ``Scenario``.

Every failure becomes a ``ScenarioError`` whose issues name file, line and field; the CLI
prints them and exits 2. ``--set dotted.key=value`` overrides are applied to the raw
table before validation, so they are validated like the file itself; an error they cause
names the option that gave them (``--set``, or e.g. ``--grid`` for a sweep's point).
"""

from __future__ import annotations

import functools
import re
import tomllib
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from msgstorm.canon import canonical_hash
from msgstorm.scenario import schema
from msgstorm.scenario.budget import check_budget
from msgstorm.scenario.destination import destination_problems
from msgstorm.scenario.errors import Loc, ScenarioError, ScenarioIssue, TomlLocator, format_field
from msgstorm.scenario.market import cross_margin_problems, leverage_problems
from msgstorm.scenario.refs import check_references, did_you_mean, fault_time_problems, simulated
from msgstorm.scenario.schema import Scenario

__all__ = ["MAX_SCENARIO_BYTES", "Override", "apply_override", "load_scenario", "parse_scenario", "scenario_fields",
           "scenario_hash"]

# A scenario describes a run; a larger file is almost surely the wrong file.
MAX_SCENARIO_BYTES = 1 << 20

# ``dotted.key=value`` from ``--set``, or ``(option, dotted.key=value)`` from another option
# (``--grid``, ``--seeds``): the errors it causes name that option.
Override = str | tuple[str, str]


def load_scenario(path: str | Path, overrides: Iterable[Override] = ()) -> Scenario:
    """Read, override, validate and cross-check a scenario file."""
    file = Path(path)
    try:
        if not file.exists():
            raise ScenarioError([ScenarioIssue(str(file), None, "", "no such scenario file")])
        if not file.is_file():  # a directory, /dev/zero, a FIFO: reading could block or never end
            raise ScenarioError([ScenarioIssue(str(file), None, "", "not a regular file (a scenario is a TOML file)")])
        with file.open("rb") as handle:
            data = handle.read(MAX_SCENARIO_BYTES + 1)
    except OSError as error:
        raise ScenarioError([ScenarioIssue(str(file), None, "", f"cannot read: {error.strerror or error}")]) from None
    if len(data) > MAX_SCENARIO_BYTES:
        raise ScenarioError([ScenarioIssue(str(file), None, "", f"larger than {MAX_SCENARIO_BYTES // 2**20} MiB: "
                                           "not a scenario file (put large traffic in a replay file)")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ScenarioError([ScenarioIssue(str(file), line, "", f"not UTF-8 text: {error.reason} at byte {error.start}")]) from None
    if file.suffix.lower() in (".yaml", ".yml"):
        return _omb_scenario(text, file, overrides)
    return parse_scenario(text, source=str(file), base_dir=file.parent, overrides=overrides)


def _omb_scenario(text: str, file: Path, overrides: Iterable[Override]) -> Scenario:
    """An OpenMessaging Benchmark workload (``scenario/omb.py``) as a scenario, on the target
    the options name (a workload names none)."""
    from msgstorm.scenario.omb import omb_scenario_text

    converted = omb_scenario_text(text, str(file))
    scenario = parse_scenario(converted.toml, source=f"{file} (as a scenario)", base_dir=file.parent,
                              overrides=overrides)
    if simulated(scenario):
        raise ScenarioError([ScenarioIssue(str(file), None, "target", "an OpenMessaging Benchmark workload names "
                                           "no broker (its driver file does): give one with --target (nats, "
                                           "jetstream, redis, zmq, mqtt, rabbitmq, or a server URL)")])
    return scenario


def parse_scenario(
    text: str,
    source: str = "<scenario>",
    base_dir: Path | None = None,
    overrides: Iterable[Override] = (),
) -> Scenario:
    """Validate scenario TOML text; ``base_dir`` resolves relative replay paths."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"line (\d+)", str(error))
        line = int(match.group(1)) if match else None
        raise ScenarioError([ScenarioIssue(source, line, "", f"not valid TOML: {error}")]) from None
    locator = TomlLocator(text)
    overridden: dict[Loc, str] = {}  # each overridden key -> the option that set it last
    for entry in overrides:
        option, override = entry if isinstance(entry, tuple) else ("--set", entry)
        try:
            loc = apply_override(raw, override)
        except ValueError as error:
            raise ScenarioError([ScenarioIssue(option, None, override, str(error))]) from None
        overridden.pop(loc, None)
        overridden[loc] = option
    _resolve_paths(raw, base_dir or Path("."))
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as error:
        raise ScenarioError(_issues(error, source, locator, overridden, raw)) from None
    problems = check_references(scenario) + destination_problems(scenario)
    if not shortened_run(overridden):
        problems += fault_time_problems(scenario)
    if scenario.market is not None:
        problems += leverage_problems(scenario.market) + cross_margin_problems(scenario.market)
    if not problems:  # the estimate needs names that resolve
        problems = check_budget(scenario)
    if problems:
        raise ScenarioError(
            [_issue(loc, message, source, locator, overridden) for loc, message in problems]
        )
    return scenario


def shortened_run(overridden: Iterable[Loc]) -> bool:
    """Whether an option (``--set``, ``--grid``) set the run's end (``run.duration`` or
    ``run.drain``) and none set a fault: a shortened run of a file whose faults fit its own
    run. Those it cuts off do not fire, and are not an error: ``msgstorm validate`` and
    ``run`` say which (``fault_time_problems``); a fault the options wrote must fit."""
    set_keys = [tuple(loc) for loc in overridden]
    return (any(loc[:2] in (("run", "duration"), ("run", "drain")) or loc == ("run",) for loc in set_keys)
            and not any(loc[:1] == ("faults",) for loc in set_keys))


def scenario_hash(scenario: Scenario) -> str:
    """A stable hash of the validated scenario (units already normalised)."""
    return canonical_hash(scenario)


# A dotted key: parts (a quoted part keeps its dots) joined by single dots, none empty.
_KEY_PART = r""""[^"]*"|'[^']*'|[^."']+"""
_DOTTED_KEY = re.compile(rf"(?:{_KEY_PART})(?:\.(?:{_KEY_PART}))*")


def _key_parts(dotted: str) -> list[str | int]:
    """The parts of an override's dotted key: a quoted segment whole, a list index an int."""
    segments = re.findall(r""""[^"]*"|'[^']*'|[^.]+""", dotted.strip())
    parts: list[str | int] = []
    for segment in segments:
        if segment[:1] in "\"'":
            parts.append(segment[1:-1])
            continue
        indexed = re.fullmatch(r"([^\[\]]*)((?:\[\s*\d+\s*\])+)", segment)
        if indexed is not None:
            if indexed.group(1):
                parts.append(indexed.group(1))
            parts.extend(int(index) for index in re.findall(r"\d+", indexed.group(2)))
        elif "[" in segment or "]" in segment:
            raise ValueError(f"bad key {dotted!r}: a list element is agents.0 or agents[0]")
        else:
            parts.append(int(segment) if segment.isdigit() else segment)
    return parts


def apply_override(raw: dict[str, Any], override: str) -> Loc:
    """Apply ``dotted.key=value`` to a raw table; the value is read as TOML, else a string."""
    if "=" not in override:
        raise ValueError("expected dotted.key=value, e.g. run.seed=7")
    dotted, value_text = override.split("=", 1)
    # Quoted segments keep their dots: --set 'slo."latency.p99"="< 1s"'. A list element is
    # a segment of its own (agents.0.count), or an index after its list (agents[0].count).
    if _DOTTED_KEY.fullmatch(dotted.strip()) is None:
        parts_written = re.findall(_KEY_PART, dotted)
        raise ValueError(f"bad key {dotted!r}: a part of it is empty (two dots in a row, or a dot at an end); "
                         f"did you mean {'.'.join(parts_written)!r}?")
    parts = _key_parts(dotted)
    if not parts or any(p == "" for p in parts):
        raise ValueError(f"bad key {dotted!r}")
    try:
        value: Any = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError as error:
        # A bare word is a string (--set sequencer.policy=fifo); a value that opens a table,
        # an array or a quoted string was meant as TOML, and how it is broken is the answer.
        if value_text.strip()[:1] in ("{", "[", '"', "'"):
            raise ValueError(f"{dotted.strip()}: {value_text.strip()!r} is not valid TOML: {error}") from None
        value = value_text.strip()
    node: Any = raw
    for part in parts[:-1]:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ValueError(f"{dotted}: no element {part}")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise ValueError(f"{dotted}: {part!r} is not a table")
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ValueError(f"{dotted}: no element {last}")
        node[last] = value
    else:
        if not isinstance(node, dict):
            raise ValueError(f"{dotted}: not a table")
        node[last] = value
    return tuple(parts)


def _resolve_paths(raw: Any, base_dir: Path) -> None:
    """Make replay paths relative to the scenario file, not the working directory."""
    if isinstance(raw, dict):
        if raw.get("process") == "replay" and isinstance(raw.get("path"), str):
            path = Path(raw["path"])
            if not path.is_absolute():
                raw["path"] = str(base_dir / path)
        # [market]: an instrument's price replay, an accounts group's file; an empirical
        # link model's samples; an eip1559 queue's base fee file; an agent's fee file.
        for key in ("replay", "file", "samples", "base_fee_file", "fee_file"):
            if isinstance(raw.get(key), str) and not Path(raw[key]).is_absolute():
                raw[key] = str(base_dir / raw[key])
        for value in raw.values():
            _resolve_paths(value, base_dir)
    elif isinstance(raw, list):
        for value in raw:
            _resolve_paths(value, base_dir)


@functools.cache
def _field_names() -> frozenset[str]:
    """Every field name (and alias) of the scenario's tables, for "did you mean" on a
    misspelt one (pydantic names the unknown field, not its table's known ones)."""
    return frozenset(field.alias or name for name, field in scenario_fields())


def scenario_fields() -> Iterator[tuple[str, FieldInfo]]:
    """(name, field) of every field of the models reachable from ``Scenario`` through its
    fields, whichever module holds them, each model once."""
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [schema.Scenario]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            yield name, field
            todo += _models_in(field.annotation)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's type names: itself, or inside a union, list or dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    """Drop pydantic's union-tag and validator segments, keep the user's field path."""
    cleaned: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or "(" in part):
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _issues(
    error: ValidationError, source: str, locator: TomlLocator, overridden: dict[Loc, str],
    raw: dict[str, Any],
) -> list[ScenarioIssue]:
    issues = []
    for detail in error.errors():
        loc, tag = _written_path(_clean_loc(detail["loc"]), raw)
        message = detail["msg"]
        if detail["type"] == "extra_forbidden":
            name = str(loc[-1]) if loc else ""
            hint = did_you_mean(name, _field_names())
            close = hint.removeprefix(" (").removesuffix(")")  # "did you mean 'x'?"
            if close == f"did you mean {name!r}?":  # spelt right, a field of other tables only
                message = (f"{'this table' if tag is None else repr(tag)} has no field {name!r} "
                           "(see docs/scenario.md for its fields)")
            elif hint:
                message = f"unknown field: {close} (see docs/scenario.md)"
            else:
                message = "unknown field (check the spelling; see docs/scenario.md)"
        elif detail["type"] == "missing":
            message = "required field is missing"
        message = message.removeprefix("Value error, ")
        issues.append(_issue(loc, message, source, locator, overridden))
    return issues


def _written_path(loc: Loc, raw: dict[str, Any]) -> tuple[Loc, str | None]:
    """An error's path as the user wrote it, and the last union tag taken out of it.

    Discriminated unions put the chosen tag (a fault's kind, "oracle"; an arrival's process,
    "poisson") into the path, which the user never wrote as a key. Walk the raw table
    alongside: a segment that is a key (or index) of the current table is kept; one that is
    not (or a name where a list is), with more of the path after it, is such a tag (pydantic
    validates only what was written, so an error's path runs through written tables) and is
    dropped."""
    shown: list[str | int] = []
    tag = None
    node: Any = raw
    for index, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            shown.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            shown.append(part)
            node = node[part]
        elif isinstance(part, str) and isinstance(node, (dict, list)) and index < len(loc) - 1:
            tag = part
        else:
            shown.append(part)
            node = None
    return tuple(shown), tag


def _issue(
    loc: Loc, message: str, source: str, locator: TomlLocator, overridden: dict[Loc, str]
) -> ScenarioIssue:
    # The option that set the key (or a table around it, or a key inside it) last.
    options = [option for o, option in overridden.items() if loc and (loc[: len(o)] == o or o[: len(loc)] == loc)]
    if options:
        return ScenarioIssue(options[-1], None, format_field(loc), message)
    return ScenarioIssue(source, locator.line_of(loc), format_field(loc), message)
