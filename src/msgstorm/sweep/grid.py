"""A sweep's plan: the grid of points, the seeds, and one run per point and seed.

Place in the pipeline: the first step of ``msgstorm sweep``. ``--grid key=v1,v2,...`` takes
TOML values as ``--set`` does (``--grid 'sequencer.policy="fifo","fee_priority"'``); the
points are the cartesian product of the grids (or, with ``zip``, their values side by side).
Every point runs the same seeds, ``run.seed``, ``run.seed + 1``, ... (common random numbers:
two points differ only by what the grid changes). A run's id is a digest of the scenario
file's content, its point's settings, its seed and the sweep's ``--set``, so a sweep run again
with the same ``--out`` knows which runs it has, and an edited scenario never reuses a run.

A point's values are the plan's typed TOML values (int, float, bool, string, array, table)
everywhere: ``sweep.json`` holds them as JSON, ``sweep.parquet`` one column per key in the
values' own type (``grid_column``), and the page joins runs to points by the point's index,
labelling values with ``value_label``; nothing matches values by their text.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

__all__ = ["GridError", "Plan", "RunSpec", "grid_column", "parse_grid", "plan_points", "plan_sweep", "point_key",
           "toml_value", "value_label"]


class GridError(ValueError):
    """A ``--grid`` that cannot be read (the message names it)."""


def toml_value(value: Any) -> str:
    """A value as TOML text, as ``--set`` takes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)} = {toml_value(item)}" for key, item in value.items()) + "}"
    raise GridError(f"cannot write {value!r} as TOML")


def value_label(value: Any) -> str:
    """How a page or a line shows a grid value: a string as itself, anything else as TOML."""
    return value if isinstance(value, str) else toml_value(value)


def point_key(point: dict[str, Any]) -> str:
    """A point's identity as text (its values as canonical JSON): equal for equal points."""
    return json.dumps(point, sort_keys=True)


def grid_column(values: list[Any]) -> pa.Array:
    """One grid key's values as a Parquet column of their own type: booleans, integers,
    numbers (integers and floats mixed: float64), strings; arrays, tables and mixed kinds as
    their TOML text."""
    if all(isinstance(v, bool) for v in values):
        return pa.array(values, pa.bool_())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.array(values, pa.int64())
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return pa.array([float(v) for v in values], pa.float64())
    if all(isinstance(v, str) for v in values):
        return pa.array(values, pa.string())
    return pa.array([toml_value(v) for v in values], pa.string())


def parse_grid(text: str, option: str = "--grid") -> tuple[str, list[Any]]:
    """``key=v1,v2,...`` as (key, [values]); the values are TOML, as ``--set`` takes them.
    ``option`` is the option that gave it (``--grid``, or safe-leverage's ``--vary``): an
    error names it."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise GridError(f"{option} {text!r}: expected KEY=VALUE,VALUE,... (TOML values, as --set takes them)")
    try:
        parsed = tomllib.loads(f"values = [{values}]")["values"]
    except tomllib.TOMLDecodeError as error:
        raise GridError(f"{option} {key}: cannot read the values {values!r} as TOML ({error}); "
                        f"quote strings: {option} 'sequencer.policy=\"fifo\",\"fee_priority\"'") from None
    if not parsed:
        raise GridError(f"{option} {key}: no values")
    return key, parsed


@dataclass(frozen=True)
class RunSpec:
    """One run of the sweep."""

    run_id: str
    point: int  # index of its point
    values: dict[str, Any]  # the grid's values at the point
    seed: int

    @property
    def overrides(self) -> list[tuple[str, str]]:
        """The point's settings and the seed, each with the option it came from (an error
        names it: ``--grid``, ``--seeds``)."""
        return [("--grid", f"{key}={toml_value(value)}") for key, value in self.values.items()] + [
            ("--seeds", f"run.seed={self.seed}")]


@dataclass(frozen=True)
class Plan:
    keys: list[str]
    points: list[dict[str, Any]]
    seeds: list[int]
    runs: list[RunSpec]


def plan_sweep(grids: list[tuple[str, list[Any]]], zipped: bool, seeds: int, base_seed: int,
               fixed: list[str] | None = None, scenario_digest: str = "") -> Plan:
    """The points (cartesian product, or zipped lists of one length) times the seeds.
    ``fixed``: the sweep's ``--set`` overrides and ``scenario_digest`` the scenario file's
    content digest, both part of every run's id."""
    keys = [key for key, _ in grids]
    if len(set(keys)) != len(keys):
        raise GridError(f"--grid names a key twice: {keys}")
    if zipped:
        lengths = {len(values) for _, values in grids}
        if len(lengths) > 1:
            raise GridError(f"--zip needs grids of one length, got {[len(values) for _, values in grids]}")
        combos = list(zip(*(values for _, values in grids), strict=True))
    else:
        combos = list(itertools.product(*(values for _, values in grids)))
    points = [dict(zip(keys, combo, strict=True)) for combo in combos] or [{}]
    return plan_points(keys, points, [base_seed + i for i in range(seeds)], fixed, scenario_digest)


def plan_points(keys: list[str], points: list[dict[str, Any]], seeds: list[int], fixed: list[str] | None = None,
                scenario_digest: str = "") -> Plan:
    """The plan of given points times the seeds (a sweep's points may come from its manifest)."""
    runs = []
    for index, point in enumerate(points):
        for seed in seeds:
            digest = hashlib.sha256(json.dumps({"point": point, "seed": seed, "set": fixed or [],
                                                "scenario": scenario_digest},
                                               sort_keys=True).encode()).hexdigest()[:16]
            runs.append(RunSpec(digest, index, point, seed))
    return Plan(list(keys), points, list(seeds), runs)
