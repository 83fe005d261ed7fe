"""Scenario mutations for the fuzz test and the long fuzz script: bad input must never crash.

Place: tests/test_fuzz_scenarios.py (a few hundred cases in CI) and
benchmarks/fuzz_scenarios.py (10,000 cases, run by hand) both draw mutations of the shipped
examples from here and check one contract on each: ``msgstorm validate`` and, for a scenario
that validates, a short capped ``msgstorm run`` end with exit 0, 1 or 2, within a time bound,
and never with a traceback.

A mutation is one of: drop a field, duplicate a value (or an array element) elsewhere, retype a
field, set an extreme or special number, set an odd string, add an unknown name, or blow up a
count. The result is written back as TOML with tomli-w, so the loader's own path (file, line,
field) is what gets exercised.
"""

from __future__ import annotations

import math
import signal
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import strategies as st
from typer.testing import CliRunner

from msgstorm.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHIPPED = ("quickstart.toml", "flash-crash.toml", "ramp.toml", "matching-engine.toml")
# Exit codes a user can meet: ok, an SLO failed, bad input. (An interrupted run has its own
# code, but nothing interrupts these runs.)
ALLOWED_EXITS = frozenset({0, 1, 2})
# A short capped run: long enough to exercise the engine, short enough for hundreds of cases.
CAP_DURATION = "300ms"
CAP_DRAIN = "300ms"
CAP_FAULT_AT = "100ms"  # where the capped examples' faults start
CASE_TIMEOUT_S = 120  # a bound on a hang, not a speed target

SPECIAL_NUMBERS: tuple[Any, ...] = (
    0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 10**12, 0.0, -0.0, 1e-308, 5e-324,
    1e308, -1e308, math.inf, -math.inf, math.nan, 0.5, 1.0000001, 0.999999,
)
ODD_STRINGS: tuple[str, ...] = (
    "", " ", "1ns", "0s", "-5ms", "1e12/s", "0/s", "-1/s", "1e400/s", "999999h", "1e300s", "100%",
    "1000%", "-3%", "nan", "inf", "mars", "us-east-999", "sequencer", "0B", "1PiB", "1e30B",
    "unlimited", "\u00e9t\u00e9", "a" * 300, "1/0", "5k/s", "2ms", "1Gbit/s",
)
UNKNOWN_NAMES: tuple[str, ...] = ("bogus", "Duration", "agents", "mars-north", "__class__", "kind")
HUGE_COUNTS: tuple[int, ...] = (10**4, 10**6, 10**9, 10**12, 2**62)


def load_example(name: str) -> dict[str, Any]:
    with open(EXAMPLES / name, "rb") as handle:
        return tomllib.load(handle)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value (tables and arrays included) below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for step in path[:-1]:
        node = node[step]
    return node


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for step in path:
        node = node[step]
    return node


@dataclass(frozen=True)
class Mutation:
    """One change to a scenario, described so a failing case reads as a recipe."""

    op: str
    path: tuple[Any, ...]
    value: Any = None

    def apply(self, root: dict[str, Any]) -> None:
        parent = _parent(root, self.path)
        last = self.path[-1]
        if self.op == "drop":
            del parent[last]
        elif self.op == "duplicate_element":
            parent.insert(last, _copy(parent[last]))
        elif self.op == "add_unknown":
            node = _get(root, self.path)
            if isinstance(node, dict):
                node[self.value] = 1
            else:
                parent[last] = self.value
        else:  # "set": retype, extreme number, odd string, huge count, copy of another value
            parent[last] = self.value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


_SCALARS = st.one_of(
    st.sampled_from(SPECIAL_NUMBERS), st.sampled_from(ODD_STRINGS), st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(("dist", "process", "mode", "rate", "value", "mean", "kind")), _SCALARS,
                    max_size=3),
)


@st.composite
def mutations(draw: st.DrawFn, root: dict[str, Any]) -> Mutation:
    """One mutation of ``root`` (its paths are enumerated, so every field can be hit)."""
    paths = list(_paths(root))
    leaves = [path for path in paths if not isinstance(_get(root, path), (dict, list))]
    # Mostly leaves (a number or a string a user typed), sometimes whole tables and arrays.
    path = draw(st.sampled_from(leaves)) if leaves and draw(st.integers(0, 4)) else draw(st.sampled_from(paths))
    target = _get(root, path)
    choices = ["drop", "set_value", "set_special", "set_odd", "add_unknown", "copy_other"]
    if isinstance(_parent(root, path), list):
        choices.append("duplicate_element")
    if isinstance(target, int) and not isinstance(target, bool):
        choices.append("huge_count")
    op = draw(st.sampled_from(choices))
    if op == "drop":
        return Mutation("drop", path)
    if op == "duplicate_element":
        return Mutation("duplicate_element", path)
    if op == "add_unknown":
        return Mutation("add_unknown", path, draw(st.sampled_from(UNKNOWN_NAMES)))
    if op == "huge_count":
        return Mutation("set", path, draw(st.sampled_from(HUGE_COUNTS)))
    if op == "set_special":
        return Mutation("set", path, draw(st.sampled_from(SPECIAL_NUMBERS)))
    if op == "set_odd":
        return Mutation("set", path, draw(st.sampled_from(ODD_STRINGS)))
    if op == "copy_other":
        return Mutation("set", path, _copy(_get(root, draw(st.sampled_from(paths)))))
    return Mutation("set", path, draw(_VALUES))


@st.composite
def mutated_scenarios(draw: st.DrawFn) -> tuple[str, list[Mutation], dict[str, Any]]:
    """An example shortened to a capped run, then one to three mutations of it (so a mutation
    of ``run.duration`` itself stands, and the loader must judge it)."""
    name = draw(st.sampled_from(SHIPPED))
    root = capped(load_example(name))
    applied: list[Mutation] = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if not root:
            break
        mutation = draw(mutations(root))
        try:
            mutation.apply(root)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed the path
            continue
        applied.append(mutation)
    return name, applied, root


def write_scenario(root: dict[str, Any], path: Path) -> bool:
    """Write ``root`` as TOML; False when TOML cannot hold it (e.g. an integer beyond 64 bits)."""
    try:
        text = tomli_w.dumps(root)
    except (TypeError, ValueError, OverflowError):
        return False
    path.write_text(text, encoding="utf-8")
    return True


def capped(root: dict[str, Any]) -> dict[str, Any]:
    """An example with its run shortened to a few hundred ms of virtual time (agents' own stop
    times dropped; its faults moved to ``CAP_FAULT_AT``, inside the capped run, so that they
    still fire: a fault after the run's end is refused, and a mutation of ``at`` is something
    the loader must judge)."""
    capped_root = _copy(root)
    capped_root["run"]["duration"] = CAP_DURATION
    capped_root["run"]["drain"] = CAP_DRAIN
    for agent in capped_root.get("agents", []):
        agent.pop("stop", None)
    for fault in capped_root.get("faults", []):
        fault["at"] = CAP_FAULT_AT
    return capped_root


@dataclass(frozen=True)
class Outcome:
    command: str
    exit_code: int | None
    output: str
    error: BaseException | None


class CaseTimeout(Exception):
    """A case ran past ``CASE_TIMEOUT_S``: a hang, whatever the input."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def invoke(args: list[str]) -> Outcome:
    with time_limit(CASE_TIMEOUT_S):
        result = CliRunner().invoke(app, args)
    error = result.exception if not isinstance(result.exception, SystemExit) else None
    return Outcome(" ".join(args), result.exit_code, result.output, error)


def check_case(root: dict[str, Any], workdir: Path) -> list[Outcome]:
    """Validate the scenario and, when it validates, run it capped. Returns what ran."""
    scenario_path = workdir / "scenario.toml"
    if not write_scenario(root, scenario_path):
        return []
    outcomes = [invoke(["validate", str(scenario_path)])]
    if outcomes[0].exit_code == 0:
        outcomes.append(invoke(["run", str(scenario_path), "--out", str(workdir / "run"), "-q"]))
    return outcomes


def problem(outcome: Outcome) -> str | None:
    """What is wrong with an outcome, or None."""
    if outcome.error is not None:
        return f"{outcome.command}: raised {type(outcome.error).__name__}: {outcome.error}"
    if outcome.exit_code not in ALLOWED_EXITS:
        return f"{outcome.command}: exit {outcome.exit_code}"
    if "Traceback (most recent call last)" in outcome.output:
        return f"{outcome.command}: printed a traceback"
    return None
