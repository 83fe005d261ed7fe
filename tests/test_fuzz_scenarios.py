"""Property: a mutated example scenario never crashes msgstorm.

Every mutation of a shipped example (fields dropped, duplicated or retyped, extreme and special
numbers, unknown names, huge counts) ends, under ``validate`` and, when it validates, a short
capped ``run``, with exit 0, 1 or 2, within a time bound, and with no traceback. The cases are
derandomised, so CI runs the same few hundred every time; ``benchmarks/fuzz_scenarios.py`` runs
thousands of fresh ones.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fuzz_scenarios import Mutation, check_case, mutated_scenarios, problem
from hypothesis import HealthCheck, given, settings

CASES = int(os.environ.get("MSGSTORM_FUZZ_CASES", "300"))


@pytest.mark.slow
@settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated_scenarios())
def test_a_mutated_scenario_ends_with_a_known_exit_and_no_traceback(
        case: tuple[str, list[Mutation], dict[str, Any]]) -> None:
    example, mutations, root = case
    with tempfile.TemporaryDirectory() as workdir:
        outcomes = check_case(root, Path(workdir))
    problems = [found for found in map(problem, outcomes) if found]
    assert not problems, f"{example} with {mutations}: {problems}"
