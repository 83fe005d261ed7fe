"""Where the tests marked slow run: deselected by default, run under CI=true, --run-slow or -m."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
TESTS = """
import pytest

def test_quick():
    pass

@pytest.mark.slow
def test_long():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    slow: long tests\n")
    pytester.makepyfile(test_two=TESTS)
    return pytester


def test_slow_tests_are_deselected_by_default_saying_how_to_run_them(suite: pytest.Pytester) -> None:
    result = suite.runpytest()
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["1 slow tests deselected *: run them too with --run-slow (or CI=true), "
                                 "or only them with -m slow"])


@pytest.mark.parametrize(("args", "ci", "passed"), [(["--run-slow"], "", 2), ([], "true", 2), (["-m", "slow"], "", 1)])
def test_ci_run_slow_or_a_mark_expression_choose_instead(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                          args: list[str], ci: str, passed: int) -> None:
    if ci:
        monkeypatch.setenv("CI", ci)
    result = suite.runpytest(*args)
    assert result.parseoutcomes().get("passed") == passed
    result.stdout.no_fnmatch_line("*slow tests deselected*")
