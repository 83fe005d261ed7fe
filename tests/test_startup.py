"""Start-up: each command loads only what it uses, and the console entry ends cleanly.

``report`` and ``compare`` read a history: they must not load the scenario schema
(pydantic models), the simulator or numba. ``validate`` reads a scenario: it must not load
numba, pyarrow, the analysis or the report. Each check runs in a fresh interpreter, so
what another test imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = str(ROOT / "examples" / "quickstart.toml")


def _run(code: str) -> tuple[list[str], set[str]]:
    """What ``code`` printed (lines), and the modules loaded once it ran, in a fresh interpreter."""
    script = f"import sys\n{code}\nprint('--- modules')\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    printed, modules = result.stdout.split("--- modules\n")
    return printed.splitlines(), set(modules.split())


def _loaded_after(code: str) -> set[str]:
    return _run(code)[1]


def test_report_and_compare_load_no_scenario_schema_simulator_or_numba() -> None:
    loaded = _loaded_after(
        "import msgstorm.cli, msgstorm.history, msgstorm.analysis, msgstorm.report.rerun, "
        "msgstorm.report.html, msgstorm.report.compare, msgstorm.report.terminal, msgstorm.report.windows_csv")
    unwanted = {name for name in loaded
                if name.split(".")[0] in ("numba", "llvmlite", "plotly")
                or name.startswith(("msgstorm.sim", "msgstorm.traffic", "msgstorm.live"))
                or name in ("msgstorm.scenario.schema", "msgstorm.scenario.loader")}
    assert unwanted == set()
    assert "msgstorm.analysis.summary" in loaded  # the check looked at a real import


def test_validate_loads_no_numba_history_or_analysis() -> None:
    loaded = _loaded_after(
        "import msgstorm.cli, msgstorm.scenario.budget\n"
        f"from msgstorm.scenario import load_scenario\nload_scenario({QUICKSTART!r})")
    unwanted = {name for name in loaded
                if name.split(".")[0] in ("numba", "llvmlite", "pyarrow", "plotly")
                or name.startswith(("msgstorm.analysis", "msgstorm.history", "msgstorm.report", "msgstorm.live"))}
    assert unwanted == set()
    assert "msgstorm.scenario.schema" in loaded


def test_package_names_resolve_on_first_use() -> None:
    import msgstorm
    import msgstorm.scenario as scenario
    from msgstorm.scenario import schema

    assert msgstorm.Scenario is schema.Scenario
    assert scenario.MESSAGE_KINDS is schema.MESSAGE_KINDS
    for name in msgstorm.__all__:
        assert getattr(msgstorm, name) is not None
    for name in scenario.__all__:
        assert getattr(scenario, name) is not None


@pytest.mark.slow
def test_console_entry_is_main_and_a_run_through_it_leaves_whole_files(tmp_path: Path) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["msgstorm"] == "msgstorm.cli:main"
    run_dir = tmp_path / "run"
    command = [sys.executable, "-c", "from msgstorm.cli import main; main()", "run", QUICKSTART, "-q",
               "--out", str(run_dir), "--set", 'run.duration="500ms"', "--set", 'run.drain="500ms"']
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["messages"]["sent"] > 0
    assert (run_dir / "report.html").read_text().rstrip().endswith("</html>")
    assert (run_dir / "windows.csv").read_text().count("\n") > 1
    again = subprocess.run([sys.executable, "-c", "from msgstorm.cli import main; main()", "report", str(run_dir)],
                           capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "summary.json").read_text())["messages"] == summary["messages"]
    # A simulated run's report loads no numba and no Arrow compute module (its casts, filters
    # and takes: 40 ms); pydantic it loads for the summary's typed sections, not the scenario's.
    printed, loaded = _run(f"sys.argv = ['msgstorm', 'report', {str(run_dir)!r}]\nfrom msgstorm.cli import main\n"
                           "try:\n    main()\nexcept SystemExit as end:\n    print('exit', end.code)")
    assert "exit 0" in printed and "report.html" in "\n".join(printed)
    assert not {name for name in loaded if name.split(".")[0] in ("numba", "llvmlite")}
    assert "msgstorm.analysis.summary_model" in loaded and "msgstorm.scenario.schema" not in loaded
    assert "pyarrow.compute" not in loaded and "msgstorm.analysis.summary" in loaded
    # The command line itself loads no pydantic (typer 0.29 would, for its parameters).
    printed, loaded = _run("sys.argv = ['msgstorm', '--help']\nfrom msgstorm.cli import main\n"
                           "try:\n    main()\nexcept SystemExit as end:\n    print('exit', end.code)")
    assert "exit 0" in printed and not {name for name in loaded if name.split(".")[0] in ("pydantic", "pydantic_core")}


def test_python_dash_m_msgstorm_is_the_same_command_line(tmp_path: Path) -> None:
    """``python -m msgstorm``, with its exit codes: a bad scenario exits 2 naming its file."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\nname = "x"\nduration = "1s"\nbogus = 1\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "msgstorm", "validate", str(bad)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "bad.toml" in result.stderr and "bogus" in result.stderr
    result = subprocess.run([sys.executable, "-m", "msgstorm", "validate", QUICKSTART], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


ONE_NODE = """
[run]
name = "one-node"
duration = "1s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = 0

[[agents]]
name = "traders"
arrival = { process = "poisson", rate = "2000/s" }
"""


@pytest.mark.slow
def test_a_one_node_run_loads_no_plotting_metrics_scipy_or_live_clients_and_only_its_kernels(tmp_path: Path) -> None:
    scenario = tmp_path / "one-node.toml"
    scenario.write_text(ONE_NODE)
    code = (
        "import msgstorm\n"
        "from msgstorm.sim import kernel, solo_loop\n"
        f"result = msgstorm.run(msgstorm.load_scenario({str(scenario)!r}), {str(tmp_path / 'run')!r})\n"
        "assert result.summary['messages']['sent'] > 0\n"
        "print('gossip-kernel-signatures', len(kernel.run_until.signatures), len(kernel.inject.signatures))\n"
        "print('one-node-loop-signatures', len(solo_loop.advance.signatures))")
    printed, loaded = _run(code)
    unwanted = {name.split(".")[0] for name in loaded} & {
        "plotly", "prometheus_client", "simpy", "nats", "redis", "zmq", "ray"}
    assert unwanted == set()
    # numba imports scipy's top level; the overlay's shortest paths are numpy's
    # (report/topology.py), not scipy.sparse's (0.1-0.2 s to import).
    assert not {name for name in loaded if name.startswith("scipy.sparse")}
    # Arrow's compute module (about 25 ms to import) only where a rollup's stage needs it.
    assert "pyarrow.compute" not in loaded
    assert (tmp_path / "run" / "report.html").stat().st_size > 1_000_000  # plotly.js is embedded all the same
    assert "gossip-kernel-signatures 0 0" in printed  # a one-node network never loads the gossip kernel
    assert "one-node-loop-signatures 1" in printed


def test_package_names_are_listed_and_the_scenario_subpackage_reachable() -> None:
    printed, _ = _run("import msgstorm\nprint(sorted(dir(msgstorm)))\nprint(msgstorm.scenario.__name__)\n"
                      "import msgstorm.scenario as s\nprint(sorted(dir(s)))")
    names, subpackage, scenario_names = printed
    assert set(eval(names)) >= {"Scenario", "ScenarioError", "load_scenario", "run", "analyse", "read_history"}
    assert subpackage == "msgstorm.scenario"
    assert set(eval(scenario_names)) >= {"Scenario", "load_scenario", "MESSAGE_KINDS", "node_names"}


@pytest.mark.slow
def test_a_run_loads_its_compiled_loop_from_the_cache_without_the_compiler(tmp_path: Path) -> None:
    """msgstorm.jit: a cached function loads without numba importing its implementation
    modules, and a compile later in the same process still works (it refreshes on its own)."""
    scenario = tmp_path / "one-node.toml"
    scenario.write_text(ONE_NODE)
    def run(out: str) -> str:
        return ("import msgstorm\n"
                "from msgstorm.sim import solo_loop\n"
                f"result = msgstorm.run(msgstorm.load_scenario({str(scenario)!r}), {str(tmp_path / out)!r})\n"
                "print('misses', sum(solo_loop.advance.stats.cache_misses.values()), "
                "'hits', sum(solo_loop.advance.stats.cache_hits.values()))\n")

    _run(run("first"))  # fills the cache if it was cold (a fresh clone's first run compiles)
    printed, loaded = _run(run("second") + "print('arraymath-before-compile', 'numba.np.arraymath' in sys.modules)\n"
                           "from msgstorm.jit import nb\nimport numpy as np\n"
                           "total = nb.njit(lambda a: np.cumsum(a)[-1])(np.arange(5))\n"
                           "print('compiled-after', total)\n")
    assert "misses 0 hits 1" in printed
    assert "arraymath-before-compile False" in printed
    assert "compiled-after 10" in printed
    assert "numba.np.arraymath" in loaded  # the compile loaded what it needed


def test_a_simulator_run_without_ed25519_loads_no_crypto_library() -> None:
    """The reactor registry loads the adversary's module for every run; the crypto library
    comes only with an Ed25519 key."""
    loaded = _loaded_after("import msgstorm.sim.shadow; from msgstorm.scenario.registry import REACTORS; "
                           "list(REACTORS)")
    assert "msgstorm.sim.integrity" in loaded
    assert not {name for name in loaded if name.split(".")[0] == "cryptography"}
