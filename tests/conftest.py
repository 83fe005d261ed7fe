"""Shared fixtures: scenarios written from TOML text, run on the simulator into tmp_path."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from msgstorm.scenario import Scenario, parse_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def scenario_from() -> Callable[..., Scenario]:
    def build(text: str, *overrides: str) -> Scenario:
        return parse_scenario(text, source="test.toml", overrides=overrides)

    return build


@pytest.fixture
def run_scenario(tmp_path: Path) -> Callable[..., object]:
    counter = iter(range(1_000))

    def go(scenario: Scenario, name: str | None = None) -> object:
        from msgstorm.runner import run

        return run(scenario, tmp_path / (name or f"run{next(counter)}"))

    return go


def require_program(*names: str, install: str) -> str:
    """The path of the first of ``names`` on PATH. Missing: skip with how to install it, except
    under ``CI=true``, where a missing OS package is a broken CI set-up and fails the test."""
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    reason = f"{names[0]} is not installed (install it with: {install})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must install it in .ci/run")
    pytest.skip(reason)


def assert_checks_valid(summary: dict[str, Any], names: list[str]) -> None:
    """Every check in ``names`` valid; the generator's verdict (when named) must agree with
    its own measurement instead: whether a generator keeps a 1 ms schedule on a shared test
    machine depends on the machine's load, which a test must not."""
    verdicts = {check["name"]: check["verdict"] for check in summary["checks"]}
    assert set(verdicts) == set(names), verdicts
    if "generator" in names:
        expected = "invalid" if summary["generator"]["saturated"] else "valid"
        assert verdicts.pop("generator") == expected
    assert verdicts == dict.fromkeys(verdicts, "valid"), verdicts
