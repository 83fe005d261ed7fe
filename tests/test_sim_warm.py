"""The helper process that compiles the simulator's loop on a cold start (``sim/warm.py``).

It must compile exactly the signatures a run calls, into the cache the run reads; a run
must write the same history with or without it, and no helper process may be left running
or unreaped. Checks that need an empty numba cache run in a fresh interpreter whose
``NUMBA_CACHE_DIR`` is in ``tmp_path`` (the in-tree cache of other tests stays as it is).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from msgstorm.history import History, HistoryWriter, read_history
from msgstorm.runner import write_run_row
from msgstorm.scenario import Scenario, parse_scenario
from msgstorm.sim import kernel, warm
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.traffic import generate_traffic

ROOT = Path(__file__).resolve().parent.parent

# Small, but calling every warmed function: normal link jitter (link_delay), a degradation
# (degrade), blocks gossiped from the leader (inject).
GOSSIP = """
[run]
name = "warm-gossip"
seed = 7
duration = "600ms"
drain = "300ms"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 3
processing = { dist = "lognormal", median = "40us", sigma = 0.4 }
link = { dist = "normal", jitter = "2ms" }

[blocks]
interval = "100ms"

[[agents]]
name = "traders"
count = 4
arrival = { process = "poisson", rate = "200/s" }

[[faults]]
kind = "degrade"
at = "200ms"
duration = "200ms"
between = ["us-east", "eu-west"]
latency = "5ms"
jitter = "1ms"
loss = "1%"
"""
# The same network whose items go by announce and fetch: the loop with the relay events.
GOSSIP_ANNOUNCED = GOSSIP.replace("[network]\n", '[network]\nrelay = { protocol = "announce" }\n')

ONE_NODE = """
[run]
name = "warm-one-node"
duration = "500ms"
drain = "200ms"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = { dist = "lognormal", median = "20us", sigma = 0.3 }

[sequencer]
service = { dist = "exponential", mean = "200us" }

[[agents]]
name = "traders"
arrival = { process = "poisson", rate = "2000/s" }
"""

# Runs a scenario the way msgstorm.runner does, with ShadowNetwork's helper_cpus given.
SIMULATE = """
from pathlib import Path
import numpy as np
from msgstorm.history import HistoryWriter
from msgstorm.scenario import parse_scenario
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.traffic import generate_traffic

def simulate(text, out, helper_cpus):
    scenario = parse_scenario(text, source="warm.toml")
    writer = HistoryWriter(Path(out), scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed, helper_cpus=helper_cpus)
    sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window, min_rows=sim.traffic_rows,
                             compile_windows=sim.helper is None and sim.compile_all))
    sim.finish()
    writer.close()
    return sim
"""


def _fresh_interpreter(code: str, cache_dir: Path) -> Any:
    """Run ``SIMULATE`` + ``code`` with an empty numba cache in ``cache_dir``; the JSON it
    printed last."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    result = subprocess.run([sys.executable, "-c", SIMULATE + code], capture_output=True, text=True, cwd=ROOT,
                            env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


# One fresh interpreter on an empty cache for the two tests of what a cold run compiles (a
# minute of compiling each): a small run first (below ``COMPILE_FROM_MESSAGES``: it leaves the
# windows and the block step uncompiled), then, every run counted as large, the same scenario
# again (the two histories compared) and the other two, each dispatcher listing at the end the
# signatures it was called with by all four.
COLD_RUNS = f"""
import json
import pyarrow.parquet as pq
from msgstorm import poisson_kernel
from msgstorm.sim import block_step_loop, warm
def compiled():
    return [len(poisson_kernel.windows.signatures), len(block_step_loop.replay.signatures)]
small = simulate({GOSSIP!r}, "{{out}}/small", helper_cpus=0)
before = compiled()
warm.COMPILE_FROM_MESSAGES = 0  # every run counts as large: it compiles the paying loops too
large = simulate({GOSSIP!r}, "{{out}}/large", helper_cpus=0)
after = compiled()
same = all(pq.read_table(Path("{{out}}/small") / table).to_pydict()
           == pq.read_table(Path("{{out}}/large") / table).to_pydict()
           for table in ("messages", "events", "deliveries"))
simulate({GOSSIP_ANNOUNCED!r}, "{{out}}/announced", helper_cpus=0)
simulate({ONE_NODE!r}, "{{out}}/one-node", helper_cpus=0)
print(json.dumps({{"flags": [small.compile_all, large.compile_all], "before": before, "after": after,
                  "same": same,
                  "loops": {{loop.name: [[str(t) for t in loop.signature],
                                        [[str(t) for t in sig] for sig in loop.function.signatures]]
                            for split in warm.SPLITS.values() for loop in split().loops}}}}))
"""


@pytest.fixture(scope="module")
def cold_runs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """What ``COLD_RUNS`` printed (tests/conftest.py's ``SHARED_FIXTURES``: one worker runs
    the tests that read it, so it runs once)."""
    out = tmp_path_factory.mktemp("cold-runs")
    return _fresh_interpreter(COLD_RUNS.replace("{out}", str(out)), out / "numba-cache")


@pytest.mark.slow
def test_the_warmed_signatures_are_the_ones_a_run_compiles(cold_runs: Any) -> None:
    # No helper and an empty cache: the process compiles every function it calls, callees
    # of the kernel included, and each dispatcher lists the signatures it was called with.
    found = cold_runs["loops"]
    assert set(found) == {"msgstorm.sim.kernel.run_until", "msgstorm.sim.kernel.run_until_push",
                          "msgstorm.sim.kernel.inject",
                          "msgstorm.sim.link_model.link_delay", "msgstorm.sim.link_model.degrade",
                          "msgstorm.sim.solo_loop.advance", "msgstorm.poisson_kernel.windows",
                          "msgstorm.sim.block_step_loop.replay"}
    for name, (warmed, called) in found.items():
        assert called == [warmed], name


# 40,000 messages in windows of 100 ms: more than the one-node loop's first piece of traffic.
ONE_NODE_BUSY = ONE_NODE.replace('duration = "500ms"', 'duration = "1s"\nwindow = "100ms"').replace(
    'rate = "2000/s"', 'rate = "40000/s"')


@pytest.mark.slow
def test_a_cold_run_draws_its_first_traffic_window_by_window_then_compiled(tmp_path: Path) -> None:
    """With a helper on an empty cache, the run does not compile the traffic windows before
    its first piece: it draws that piece through numpy, compiles the windows while it waits,
    and draws the rest with them. The history is the one a run without a helper writes."""
    code = f"""
import json
import pyarrow.parquet as pq
from msgstorm import draws, poisson_kernel
from msgstorm.sim import warm
warm.COMPILE_FROM_MESSAGES = 0  # a large run: it compiles the windows while it waits
helped = simulate({ONE_NODE_BUSY!r}, {str(tmp_path / "helped")!r}, helper_cpus=2)
paths = [len(draws._poisson_fill.signatures), len(poisson_kernel.windows.signatures)]
alone = simulate({ONE_NODE_BUSY!r}, {str(tmp_path / "alone")!r}, helper_cpus=0)
same = all(pq.read_table(Path({str(tmp_path / "helped")!r}) / table).to_pydict()
           == pq.read_table(Path({str(tmp_path / "alone")!r}) / table).to_pydict()
           for table in ("messages", "events", "deliveries"))
print(json.dumps({{"helper": helped.helper is not None, "paths": paths, "same": same,
                  "messages": helped.msgs.count}}))
"""
    found = _fresh_interpreter(code, tmp_path / "numba-cache")
    assert found["helper"]
    assert found["paths"] == [1, 1]  # window by window first (poisson_fill), then compiled
    assert found["messages"] > 30_000
    assert found["same"]


@pytest.mark.slow
def test_a_helper_compiles_into_the_cache_the_run_then_loads_from(tmp_path: Path) -> None:
    code = f"""
import json
from msgstorm.sim import kernel, warm
split = warm.gossip_split(relays=False)
before = [loop.name for loop in warm.missing(split.loops)]
helper = warm.start("gossip", cpus=2, relays=False)
exit_code = helper.wait()
after = [loop.name for loop in warm.missing(split.loops)]
sim = simulate({GOSSIP!r}, {str(tmp_path / "gossip")!r}, helper_cpus=2)
print(json.dumps({{"before": before, "exit_code": exit_code, "reaped": helper.process.returncode is not None,
                  "after": after, "second_helper": sim.helper is not None,
                  "hits": sum(kernel.run_until_push.stats.cache_hits.values()),
                  "misses": sum(kernel.run_until_push.stats.cache_misses.values())}}))
"""
    found = _fresh_interpreter(code, tmp_path / "numba-cache")
    # An empty cache; its items all go by push: the loop without the relay events.
    assert found["before"] == [loop.name for loop in warm.gossip_split(relays=False).loops]
    assert found["exit_code"] == 0 and found["reaped"]
    assert found["after"] == []  # the helper's loops in the cache, the others compiled here
    assert not found["second_helper"]  # nothing left to compile: no helper
    assert (found["hits"], found["misses"]) == (1, 0)  # the run loaded the kernel, compiled nothing


def test_no_helper_for_a_stale_cache_entry(tmp_path: Path) -> None:
    # An index without the current key (the source changed, or an upgrade in place) may sit
    # beside an old data file; numba writes the index before the data, so a second process
    # could load the old code in between. Only a function with no entry at all gets a helper.
    code = """
import json, os
from msgstorm.sim import kernel, warm
before = warm.start("gossip", cpus=2)
started = before is not None
if before is not None:
    before.stop()
index = kernel.run_until._cache._cache_file._index_path
os.makedirs(os.path.dirname(index), exist_ok=True)
with open(index, "wb") as stale:
    stale.write(b"an index of another version")
loop = warm.gossip_split().helper[0]
print(json.dumps({"started_on_empty_cache": started, "ready_on_stale": loop.ready(),
                  "started_on_stale": warm.start("gossip", cpus=2) is not None}))
"""
    found = _fresh_interpreter(code, tmp_path / "numba-cache")
    assert found == {"started_on_empty_cache": True, "ready_on_stale": True, "started_on_stale": False}


def _simulate(scenario: Scenario, out: Path, helper: warm.Helper | None) -> tuple[History, list[int]]:
    """Run ``scenario`` with ``helper`` attached as a cold start attaches it; the history,
    and the exit codes its wait returned (one per call)."""
    writer = HistoryWriter(out / "history", scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed, helper_cpus=0)
    waited: list[int] = []
    if helper is not None:
        def wait() -> None:
            waited.append(helper.wait())
        sim.helper = helper
        if sim.solo is None:
            sim.gossip.before_first_call = wait
        else:
            sim.solo.solo.before_first_call = wait
    sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window))
    t_end = sim.finish()
    write_run_row(writer, scenario, sim, t_end)
    writer.close()
    return read_history(out), waited


@pytest.mark.parametrize("text", [GOSSIP, ONE_NODE], ids=["gossip", "one-node"])
def test_a_run_waits_once_for_its_helper_and_a_failed_helper_changes_nothing(tmp_path: Path, text: str) -> None:
    scenario = parse_scenario(text, source="warm.toml")
    split = warm.gossip_split() if "warm-gossip" in text else warm.solo_split()
    failing = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    alone, _ = _simulate(scenario, tmp_path / "alone", None)
    helped, waited = _simulate(scenario, tmp_path / "helped", warm.Helper(failing, split))
    assert waited == [3]  # once, however often the loop runs
    assert failing.returncode == 3
    for table in ("messages", "events", "deliveries", "edges"):
        assert getattr(helped, table).to_pydict() == getattr(alone, table).to_pydict(), table


def _sleeping() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_helper_that_overruns_its_wait_is_killed_and_reaped() -> None:
    helper = warm.Helper(_sleeping(), warm.Split(helper=()))
    assert helper.wait(timeout_s=0.2) is None
    assert helper.process.returncode is not None
    helper.stop()  # idempotent


class _Interrupted:
    """Stands in for a dispatcher: compiling it is interrupted (Ctrl-C)."""

    def compile(self, signature: object) -> None:
        raise KeyboardInterrupt


def test_ctrl_c_while_waiting_stops_and_reaps_the_helper() -> None:
    helper = warm.Helper(_sleeping(), warm.Split(helper=(), here=(warm.Loop(_Interrupted(), ()),)))
    with pytest.raises(KeyboardInterrupt):
        helper.wait()
    assert helper.process.returncode is not None


def test_a_helper_dropped_without_stop_is_killed_and_reaped() -> None:
    helper = warm.Helper(_sleeping(), warm.Split(helper=()))
    process = helper.process
    del helper
    gc.collect()
    assert process.returncode is not None


def test_finishing_a_simulation_stops_its_helper(tmp_path: Path) -> None:
    scenario = parse_scenario(GOSSIP, source="warm.toml")
    writer = HistoryWriter(tmp_path / "history", scenario.history.row_group_size)
    sim = ShadowNetwork(scenario, writer, np.random.SeedSequence(1), helper_cpus=0)
    assert sim.helper is None
    sim.helper = warm.Helper(_sleeping(), warm.gossip_split())
    sim.finish()
    writer.close()
    assert sim.helper.process.returncode is not None


def test_no_helper_on_one_cpu_or_when_the_loops_are_compiled() -> None:
    assert warm.start("gossip", cpus=1) is None
    for make in warm.SPLITS.values():
        for loop in make().helper:
            loop.function.compile(loop.signature)  # loaded from the cache, or compiled
    assert warm.start("gossip", cpus=2) is None
    assert warm.start("solo", cpus=2) is None


def test_a_helper_whose_cache_is_elsewhere_compiles_nothing() -> None:
    assert warm.main(["gossip", "/nonexistent/numba-cache"]) == 2


def test_a_signature_names_every_parameter() -> None:
    with pytest.raises(TypeError, match="inject takes"):
        warm.Loop.of(kernel.inject, keys=warm.I64)


@pytest.mark.slow
def test_a_small_cold_run_compiles_neither_the_windows_nor_the_block_step(cold_runs: Any) -> None:
    """Below ``COMPILE_FROM_MESSAGES`` an empty cache is not filled with the loops that have
    a Python path: the traffic is drawn window by window, the leader's intake replayed
    message by message, and the history is the one a large run writes with them compiled."""
    assert cold_runs["flags"] == [False, True]
    assert cold_runs["before"] == [0, 0]
    assert cold_runs["after"] == [1, 1]
    assert cold_runs["same"]


def test_a_run_compiles_the_paying_loops_from_a_million_messages() -> None:
    assert warm.COMPILE_FROM_MESSAGES == 1_000_000
    assert not warm.worth_compiling(999_999)
    assert warm.worth_compiling(1_000_000)
