"""How the simulator scales: wall time and peak RSS against network size and message count.

Run by hand (no extra dependencies; CI runs ``--skip-cli --points 10:1000``, a smoke run):

    python benchmarks/scaling.py                         # full grid, ~10 min (the 10^7 point ~4)
    python benchmarks/scaling.py --max-messages 1000000  # skip the 10^7 point
    python benchmarks/scaling.py --quick                 # small grid, under a minute
    python benchmarks/scaling.py --skip-cli              # no cold/warm `msgstorm run` timing

Every grid point runs in a fresh subprocess (``--child``), so its peak RSS and its numba
cache load are its own. The child first makes a tiny untimed warm-up run (50 messages) so
the kernel is loaded from numba's cache — or compiled, if the cache does not match the
source, which the details table then flags — before the clock starts. It reports its own
``ru_maxrss`` (RUSAGE_SELF) after the warm-up (the baseline: interpreter, imports, the
loaded kernel) and after the run; the parent times the whole subprocess too.

The scenario (``SCENARIO_TOML``): one region, constant 1 ms links, 20 us of processing per
receipt, gossip mesh of degree 8 over 16 peers, Poisson traffic from every node (one
sender per node, ``count = nodes``, so a message's origin is a uniformly random node) at
2,000 messages/s in total, blocks every 1 s (big enough never to be the limit), the
default sequencer (exponential service, mean 100 us: rho 0.2), history written, but at
most 1,000,000 delivery rows.

Grid:

* (a) nodes 10, 100, 1,000, 10,000 at 2,000 messages (1 s of traffic);
* the target point: 1,000 nodes at 100,000 messages (~680M receipts), which should run at
  5M receipts per wall second or more (a line after the tables says whether it did;
  ``--skip-target`` leaves it out, ``--quick`` too);
* (b) messages 10^4 .. 10^7 at 10 nodes (the 10^7 point is 5,000 s of virtual time and
  runs last; ``--max-messages`` caps the grid).

``--points 1000:100000 10:1000000`` runs just the points given.

What the times mean:

* ``wall s``: in the child, the simulator as ``msgstorm.run`` pays it minus analysis and
  report: building the network, generating traffic, the event loop, settling and writing
  the Parquet history. Rates are per this time.
* ``process s``: the whole subprocess, from spawn to exit (interpreter start, imports,
  the warm-up with loading numba's cached machine code, the run, teardown).
* ``kernel s``/``traffic s``: the parts of ``wall s`` spent in ``GossipState.run`` (the
  numba gossip kernel and its refills) and in the traffic generator; the rest is the
  Python engine (sequencer, blocks, votes, faults, per-message bookkeeping) and history
  writing. Timing them wraps those calls (two ``perf_counter`` calls each, a few percent
  at most); ``--no-split`` turns the wrappers off.

Then ``msgstorm run examples/quickstart.toml`` (the CLI, as a subprocess, timed end to end
including analysis and report) once with a cold numba cache (the kernel's ``*.nbi`` and
``*.nbc`` files under ``src/msgstorm/sim/__pycache__`` deleted first) and twice warm.

Message counts are Poisson, so a point's ``messages`` is near, not at, its target. The
machine's load average is printed: other processes skew the timings. One run per point.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RATE_PER_S = 2_000  # messages per second, all senders together
NODES_GRID = (10, 100, 1_000, 10_000)
NODES_GRID_MESSAGES = 2_000
MESSAGES_GRID = (10_000, 100_000, 1_000_000, 10_000_000)
MESSAGES_GRID_NODES = 10
MAX_DELIVERIES = 1_000_000  # history.max_deliveries; --max-deliveries changes it
# The throughput target: at least 5M receipts per wall second at 1,000 nodes, 100k messages.
TARGET_POINT = (1_000, 100_000)
TARGET_RECEIPTS_PER_S = 5_000_000

SCENARIO_TOML = """
[run]
name = "scaling"
seed = 1
duration = "{duration_ns}ns"
drain = "5s"
sample_interval = "1s"

[network]
regions = ["us-east"]
nodes_per_region = {nodes}
intra_region_latency = "1ms"
processing = "20us"

[gossip]
mode = "mesh"
degree = 8
peers = 16

[blocks]
interval = "1s"
max_messages = 10000000

[history]
max_deliveries = {max_deliveries}

[[agents]]
name = "senders"
count = {nodes}
arrival = {{ process = "poisson", rate = "{rate_per_sender}/s" }}
"""

REPO = Path(__file__).resolve().parent.parent


def scenario_text(nodes: int, messages: int, max_deliveries: int = MAX_DELIVERIES) -> str:
    duration_ns = round(messages / RATE_PER_S * 1e9)
    return SCENARIO_TOML.format(duration_ns=duration_ns, nodes=nodes, max_deliveries=max_deliveries,
                                rate_per_sender=repr(RATE_PER_S / nodes))


def _maxrss_mb() -> float:
    """Peak RSS of this process so far (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


# --- the child: one grid point ---------------------------------------------------------------


def _warm_up(out_dir: Path) -> tuple[float, bool]:
    """Load (or compile) the numba kernel before the clock starts, with a tiny untimed run.

    If the kernel's source changed since the cache was written, it compiles here, and the
    row says so instead of counting the compile as simulator time. Returns (seconds,
    whether it compiled).
    """
    import numpy as np

    from msgstorm.history import HistoryWriter
    from msgstorm.scenario import parse_scenario
    from msgstorm.sim import kernel
    from msgstorm.sim.shadow import ShadowNetwork
    from msgstorm.traffic import generate_traffic

    started = time.perf_counter()
    scenario = parse_scenario(scenario_text(10, 50), source="warmup.toml")
    writer = HistoryWriter(out_dir / "history")
    traffic_seed, sim_seed = np.random.SeedSequence(1).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed)
    sim.run(generate_traffic(scenario, traffic_seed))
    sim.finish()
    writer.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    compiled = sum(sum(d.stats.cache_misses.values()) for d in (kernel.run_until, kernel.run_until_push,
                                                                    kernel.inject))
    return time.perf_counter() - started, compiled > 0


def child(nodes: int, messages: int, out_dir: Path, split: bool, max_deliveries: int) -> dict[str, Any]:
    import numpy as np
    from timing import timed_batches

    from msgstorm.history import HistoryWriter
    from msgstorm.runner import write_run_row
    from msgstorm.scenario import parse_scenario
    from msgstorm.sim.shadow import ShadowNetwork
    from msgstorm.traffic import generate_traffic

    warmup_s, compiled = _warm_up(out_dir / "warmup")
    baseline_mb = _maxrss_mb()
    scenario = parse_scenario(scenario_text(nodes, messages, max_deliveries), source="scaling.toml")
    perf = time.perf_counter
    clock = {"traffic": 0.0, "kernel": 0.0}

    started = perf()
    writer = HistoryWriter(out_dir / "history", scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed)
    traffic = generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window)
    if split:
        kernel_run = sim.gossip.run

        def timed_kernel(until: int) -> Any:
            start = perf()
            try:
                return kernel_run(until)
            finally:
                clock["kernel"] += perf() - start

        sim.gossip.run = timed_kernel  # type: ignore[method-assign]  # the loop looks it up per call
        traffic = timed_batches(iter(traffic), clock)
    sim.run(traffic)
    start = perf()
    t_end = sim.finish()  # settles the rest, flushes the buffered delivery rows
    finish_s = perf() - start
    write_run_row(writer, scenario, sim, t_end)
    writer.close()
    wall = perf() - started
    return {
        "nodes": nodes, "target_messages": messages, "messages": sim.msgs.count,
        "committed": sim.ctx.tally.committed, "receipts": sim.gossip.receipts,
        "block_receipts": sim.gossip.block_receipts, "wall_s": wall,
        "kernel_s": clock["kernel"] if split else None, "traffic_s": clock["traffic"] if split else None,
        "baseline_rss_mb": baseline_mb, "peak_rss_mb": _maxrss_mb(),
        "delivery_rows": writer.rows("deliveries"), "message_rows": writer.rows("messages"),
        "finish_s": finish_s, "warmup_s": warmup_s, "kernel_compiled": compiled,
        "history_mb": sum(f.stat().st_size for f in (out_dir / "history").iterdir()) / 2**20,
    }


# --- the parent ------------------------------------------------------------------------------


def run_point(nodes: int, messages: int, workdir: Path, split: bool,
              max_deliveries: int = MAX_DELIVERIES) -> dict[str, Any]:
    out_dir = workdir / f"n{nodes}-m{messages}"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    command = [sys.executable, __file__, "--child", str(nodes), str(messages), str(out_dir),
               "--max-deliveries", str(max_deliveries)]
    if not split:
        command.append("--no-split")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"child {nodes} nodes / {messages} messages failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = process_s
    shutil.rmtree(out_dir, ignore_errors=True)  # the 10^7 history is a few hundred MB
    return result


def _fmt_int(value: float) -> str:
    return f"{value:,.0f}"


TABLE_HEADER = ("| nodes | messages | gossip receipts | wall s | receipts/s | messages/s | peak RSS MB "
                "| RSS over baseline MB | kernel s | traffic s | process s |\n"
                "|" + "---:|" * 11)


def table_row(r: dict[str, Any]) -> str:
    kernel = "-" if r["kernel_s"] is None else f"{r['kernel_s']:.2f}"
    traffic = "-" if r["traffic_s"] is None else f"{r['traffic_s']:.2f}"
    return (f"| {_fmt_int(r['nodes'])} | {_fmt_int(r['messages'])} | {_fmt_int(r['receipts'])} "
            f"| {r['wall_s']:.2f} | {_fmt_int(r['receipts'] / r['wall_s'])} "
            f"| {_fmt_int(r['messages'] / r['wall_s'])} | {r['peak_rss_mb']:.0f} "
            f"| {r['peak_rss_mb'] - r['baseline_rss_mb']:.0f} | {kernel} | {traffic} | {r['process_s']:.2f} |")


def rss_per_million(rows: list[dict[str, Any]]) -> str | None:
    """Least-squares slope of peak RSS against messages on the messages grid."""
    points = [(r["messages"], r["peak_rss_mb"]) for r in rows if r["nodes"] == MESSAGES_GRID_NODES]
    points = [p for p in points if p[0] >= 100_000]
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return (f"peak RSS grows by ~{slope * 1e6:.0f} MB per million messages "
            f"(least squares over the {n} points of >= 100k messages at {MESSAGES_GRID_NODES} nodes)")


def numba_cache_files() -> list[Path]:
    import importlib.util

    spec = importlib.util.find_spec("msgstorm.sim")
    assert spec is not None and spec.submodule_search_locations
    cache = Path(next(iter(spec.submodule_search_locations))) / "__pycache__"
    return sorted([*cache.glob("*.nbi"), *cache.glob("*.nbc")])


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("msgstorm")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from msgstorm.cli import app; app()"]


def time_cli(workdir: Path, warm_runs: int) -> list[tuple[str, float, float | None]]:
    """Cold (numba cache deleted) then warm runs of ``msgstorm run examples/quickstart.toml``."""
    if os.environ.get("NUMBA_CACHE_DIR") or os.environ.get("NUMBA_DISABLE_JIT"):
        print("note: NUMBA_CACHE_DIR / NUMBA_DISABLE_JIT is set; the cold run may not be cold", flush=True)
    results: list[tuple[str, float, float | None]] = []
    removed = numba_cache_files()
    for path in removed:
        path.unlink(missing_ok=True)
    for label in ["cold", *["warm"] * warm_runs]:
        out_dir = workdir / f"quickstart-{label}-{len(results)}"
        shutil.rmtree(out_dir, ignore_errors=True)
        started = time.perf_counter()
        done = subprocess.run([*cli_command(), "run", str(REPO / "examples" / "quickstart.toml"),
                               "--out", str(out_dir)], capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode not in (0, 1):  # 1: an SLO failed, still a complete run
            raise RuntimeError(f"msgstorm run failed ({done.returncode}):\n{done.stderr}")
        sim_wall = json.loads((out_dir / "summary.json").read_text()).get("wall_s")
        results.append((label, elapsed, sim_wall))
        shutil.rmtree(out_dir, ignore_errors=True)
    print(f"\n`msgstorm run examples/quickstart.toml`, end to end ({len(removed)} numba cache files "
          f"deleted before the cold run):\n")
    print("| run | wall s (process) | summary wall_s (sim only) |")
    print("|---|---:|---:|")
    for label, elapsed, sim_wall in results:
        print(f"| {label} | {elapsed:.2f} | {sim_wall} |")
    warm = min(e for label, e, _ in results if label == "warm") if warm_runs else math.nan
    print(f"\ncold - best warm = {results[0][1] - warm:.1f} s (numba compiling the gossip kernel)", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-messages", type=int, default=max(MESSAGES_GRID),
                        help="leave out message-grid points above this (default: all, up to 10^7)")
    parser.add_argument("--quick", action="store_true", help="nodes up to 1,000, messages up to 10^5")
    parser.add_argument("--skip-cli", action="store_true", help="skip the cold/warm `msgstorm run` timing")
    parser.add_argument("--skip-nodes", action="store_true", help="skip the network-size grid")
    parser.add_argument("--skip-target", action="store_true",
                        help="skip the target point (1,000 nodes, 100k messages: ~1.5 min)")
    parser.add_argument("--points", nargs="+", metavar="NODES:MESSAGES",
                        help="run only these points, e.g. --points 1000:100000 10000:1000")
    parser.add_argument("--no-split", action="store_true", help="no kernel/traffic timers in the children")
    parser.add_argument("--max-deliveries", type=int, default=MAX_DELIVERIES,
                        help=f"history.max_deliveries of the scenario (default {MAX_DELIVERIES:,})")
    parser.add_argument("--workdir", type=Path, default=None, help="where run directories go (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--child", nargs=3, metavar=("NODES", "MESSAGES", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    split = not args.no_split
    if args.child:
        nodes, messages, out_dir = int(args.child[0]), int(args.child[1]), Path(args.child[2])
        print(json.dumps(child(nodes, messages, out_dir, split, args.max_deliveries)))
        return

    own_workdir = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="msgstorm-scaling-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# msgstorm simulator scaling\n\nhost: {platform.platform()}, python {platform.python_version()}, "
          f"{os.cpu_count()} cpus, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n", flush=True)
    if not args.skip_cli:
        time_cli(workdir, warm_runs=2)
    else:  # make sure the kernel is compiled before the first timed point
        run_point(10, 1_000, workdir, split, args.max_deliveries)

    nodes_grid = [n for n in NODES_GRID if not args.quick or n <= 1_000]
    messages_grid = sorted(m for m in MESSAGES_GRID
                           if m <= args.max_messages and (not args.quick or m <= 100_000))
    grid = [] if args.skip_nodes else [(n, NODES_GRID_MESSAGES) for n in nodes_grid]
    if not (args.skip_target or args.quick):
        grid.append(TARGET_POINT)
    grid += [(MESSAGES_GRID_NODES, m) for m in messages_grid]  # largest last
    if args.points:
        grid = [(int(n), int(m)) for n, m in (point.split(":") for point in args.points)]
    print(f"\nsimulator scaling: {RATE_PER_S:,}/s Poisson from random nodes, 1 region, 1 ms links, "
          f"20 us processing, mesh 8/16, blocks 1 s, deliveries capped at {args.max_deliveries:,} rows; "
          f"one fresh subprocess per row\n", flush=True)
    rows: list[dict[str, Any]] = []
    print(TABLE_HEADER, flush=True)
    for nodes, messages in grid:  # rows print as they finish: an interrupted run keeps them
        row = run_point(nodes, messages, workdir, split, args.max_deliveries)
        rows.append(row)
        print(table_row(row), flush=True)
    print("\ndetails (finish s: `ShadowNetwork.finish`, which settles what is left and writes the "
          "delivery rows buffered during the run):\n")
    print("| nodes | messages | delivery rows | history MB | finish s | baseline RSS MB | warm-up s "
          "| kernel compiled in warm-up |")
    print("|" + "---:|" * 8)
    for r in rows:
        print(f"| {_fmt_int(r['nodes'])} | {_fmt_int(r['messages'])} | {_fmt_int(r['delivery_rows'])} "
              f"| {r['history_mb']:.1f} | {r['finish_s']:.2f} | {r['baseline_rss_mb']:.0f} "
              f"| {r['warmup_s']:.2f} | {'yes' if r['kernel_compiled'] else 'no'} |")
    if any(r["kernel_compiled"] for r in rows):
        print("\n(a 'yes' means the numba cache did not match the kernel source, e.g. because it was "
              "edited during the benchmark; the compile fell in the untimed warm-up)")
    for r in rows:
        if (r["nodes"], round(r["messages"], -4)) == TARGET_POINT:
            rate = r["receipts"] / r["wall_s"]
            print(f"\ntarget: >= {TARGET_RECEIPTS_PER_S:,} receipts/s at {TARGET_POINT[0]:,} nodes, "
                  f"{TARGET_POINT[1]:,} messages: {'met' if rate >= TARGET_RECEIPTS_PER_S else 'NOT MET'} "
                  f"({rate:,.0f}/s)")
    slope = rss_per_million(rows)
    if slope:
        print(f"\n{slope}")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if own_workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
