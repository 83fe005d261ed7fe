"""Shared fixtures: scenarios written from TOML text, run on the simulator into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
