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
    pytester.makeini("[pytest]\nmarkers =\n    slow: long tests\n    serial: one worker\n")
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


def test_the_slowest_tests_are_listed_longest_first_with_their_phases_apart(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_timed="""
import time

import pytest

@pytest.fixture
def slow_setup():
    time.sleep(0.3)

def test_long_setup(slow_setup):
    pass

def test_long_call():
    time.sleep(0.6)

def test_short():
    pass
""")
    result = suite.runpytest("--slowest", "2", "-p", "no:xdist")
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "2 slowest tests" in line)
    table = lines[start + 1:start + 3]
    assert table[0].endswith("test_timed.py::test_long_call") and table[1].endswith("test_timed.py::test_long_setup")
    total, _, setup, _, call, _, teardown = table[1].split()[:7]
    assert float(setup) >= 0.3 and float(call) < 0.3  # the fixture's time is the setup's, not the call's
    assert float(total) == pytest.approx(float(setup) + float(call) + float(teardown), abs=0.02)


def test_ties_in_the_slowest_tests_read_in_name_order() -> None:
    from conftest import slowest_tests

    phases = {"b": {"setup": 1.0, "call": 1.0}, "a": {"call": 2.0}, "c": {"call": 3.0, "teardown": 0.5}}
    assert slowest_tests(phases, 2) == [("c", 0.0, 3.0, 0.5), ("a", 0.0, 2.0, 0.0)]
    assert [row[0] for row in slowest_tests(phases, 5)] == ["c", "a", "b"]


def test_live_and_serial_tests_run_in_lanes_a_module_on_one_worker(suite: pytest.Pytester) -> None:
    """Under ``--dist loadgroup`` the tests of tests/test_live_*.py modules and of
    SERIAL_MODULES, and the tests marked serial, run in SERIAL_LANES lanes, a module's on
    one worker one after another; the others are shared by whichever worker is free."""
    many = "".join(f"def test_{k}():\n    pass\n\n" for k in range(6))
    marked = "import pytest\n\n@pytest.mark.serial\ndef test_marked():\n    pass\n\n"
    # A module of SERIAL_MODULES, by another name than the suite's own (one process imports both).
    suite.makeconftest(CONFTEST.read_text().replace('frozenset({"test_cli_signals.py"})', 'frozenset({"test_timed_signals.py"})'))
    suite.makepyfile(test_live_broker=many, test_live_node=many.replace("test_", "test_node_"),
                     test_timed_signals="def test_signal():\n    pass\n", test_sim=marked + many.replace("test_", "test_sim_"))
    result = suite.runpytest("-n", "3", "--dist", "loadgroup", "-v", "-m", "serial or not serial")
    result.assert_outcomes(passed=22)  # and test_two.py's two
    workers: dict[str, set[str]] = {}
    for line in result.stdout.lines:
        if line.startswith("[gw") and "PASSED" in line:
            test = line.split()[-1]
            module = "test_sim.py::test_marked" if test.endswith("test_marked") else test.split("::")[0]
            workers.setdefault(module, set()).add(line.split("]")[0].lstrip("["))
    serial = {module: ran for module, ran in workers.items() if module not in ("test_sim.py", "test_two.py")}
    assert len(serial) == 4 and all(len(ran) == 1 for ran in serial.values()), serial
    # The two live modules (six tests each) in lanes apart.
    assert serial["test_live_broker.py"] != serial["test_live_node.py"]
    result = suite.runpytest("-p", "no:xdist", "-m", "serial", "--co", "-q")
    assert len([line for line in result.stdout.lines if "::" in line]) == 14


def test_a_live_module_on_paper_is_any_workers_and_the_others_a_lanes() -> None:
    """tests/test_live_*.py is serial by its name, but for the modules that run on paper
    (``PAPER_LIVE_MODULES``, each a file of the suite); SERIAL_MODULES are serial too."""
    from conftest import PAPER_LIVE_MODULES, is_serial_module

    assert not is_serial_module("tests/test_live_recorder.py::test_drawn_runs[3]")
    assert is_serial_module("tests/test_live_nats.py::test_a_run") and is_serial_module("tests/test_cli_signals.py::t")
    assert is_serial_module("tests/test_live_jetstream_wire.py::t")  # asyncio on the wall clock: a lane's
    assert not is_serial_module("tests/test_sim.py::t")
    assert all((Path(__file__).parent / module).is_file() for module in PAPER_LIVE_MODULES)


def test_serial_lanes_keep_a_module_whole_and_balance_the_seconds() -> None:
    from conftest import SERIAL_SLOW_SECONDS, SERIAL_TEST_SECONDS, serial_lanes

    tests = [f"tests/test_live_a.py::test_{k}" for k in range(3)] + [f"tests/test_live_b.py::test_{k}" for k in range(2)]
    tests += ["tests/test_live_c.py::test_0", "tests/test_docs.py::test_live_example"]
    lanes = serial_lanes(tests, 2)
    assert {lanes[t] for t in tests if "test_live_a" in t} == {0}  # 6 s: the heaviest, to lane 0
    assert {lanes[t] for t in tests if "test_live_b" in t} == {1}  # 4 s to the emptier lane
    # 2 s each: test_docs.py first by name, to lane 1 (4 s, now 6), then test_live_c.py to lane 0 (a tie: the lowest)
    assert lanes["tests/test_docs.py::test_live_example"] == 1 and lanes["tests/test_live_c.py::test_0"] == 0
    assert SERIAL_TEST_SECONDS * 3 == 6.0
    assert set(serial_lanes(tests, 1).values()) == {0}
    # A test marked slow counts SERIAL_SLOW_SECONDS: test_live_c.py's one (30 s) outweighs
    # test_live_a.py's three (6 s) and goes first, to lane 0; a, 6 s, to lane 1; b, 4 s, to
    # lane 1 too (6 s against 30), then test_docs.py (2 s) to lane 1 (10 s against 30).
    lanes = serial_lanes(tests, 2, slow={"tests/test_live_c.py::test_0"})
    assert lanes["tests/test_live_c.py::test_0"] == 0 and SERIAL_SLOW_SECONDS == 30.0
    assert {lanes[t] for t in tests if "test_live_c" not in t} == {1}


def test_the_slow_tests_are_handed_out_before_the_others(suite: pytest.Pytester) -> None:
    """Under ``--dist loadgroup`` a worker takes the tests marked slow before the quick ones
    whatever their place in the collection, so that no long test starts last."""
    quick = "".join(f"def test_a{k}():\n    pass\n\n" for k in range(5))
    suite.makepyfile(test_a=quick, test_z="import pytest\n\n@pytest.mark.slow\ndef test_z():\n    pass\n")
    result = suite.runpytest("-n", "1", "--dist", "loadgroup", "-v", "--run-slow")
    result.assert_outcomes(passed=8)
    ran = [line.split()[-1] for line in result.stdout.lines if line.startswith("[gw") and "PASSED" in line]
    assert [test.split("::")[-1] for test in ran[:2]] == ["test_long", "test_z"], ran


def test_the_work_order_puts_lanes_and_shared_groups_then_slow_tests_first() -> None:
    from conftest import SERIAL_GROUP, work_order

    slow = {"tests/test_a.py::test_long"}
    assert work_order(f"{SERIAL_GROUP}-1", slow) == work_order("shared-readme_safe_leverage", slow) == 0
    assert work_order("tests/test_a.py::test_long", slow) == 1
    assert work_order("tests/test_a.py::test_quick", slow) == 2
