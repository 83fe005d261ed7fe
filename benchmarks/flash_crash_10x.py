"""examples/flash-crash.toml at 10x its traffic: wall time, messages, and where the time goes.

Run by hand (no extra dependencies); CI runs ``--smoke``:

    python benchmarks/flash_crash_10x.py                 # ~5 min on 2 cores: 3 runs of 10x, 1 of 1x
    python benchmarks/flash_crash_10x.py --factor 3      # another multiplier
    python benchmarks/flash_crash_10x.py --skip-profile  # no cProfile run
    python benchmarks/flash_crash_10x.py --smoke         # every run at 2x, cut to 3 s: that it runs

Traffic is scaled by multiplying every agent's ``count`` by the factor, with the same
overrides ``--set`` takes (``agents.0.count=2000``, ...). Each instance keeps its own
arrival process, so Poisson agents send ``factor`` times as much; an agent with count 1
(the Hawkes ``panic`` burst, the ``flooder``) becomes ``factor`` independent instances of
itself, which is ``factor`` times its rate in expectation. The network, sequencer
(~5,500 messages/s), shedding and faults stay as they are, so at 10x most of the extra
load is shed at the sequencer; every message still gossips to every node first.

Three runs of the scaled scenario through ``msgstorm.run`` (the library call behind
``msgstorm run``; history, analysis, ``summary.json`` and ``report.html`` are written to
a temporary directory), plus one of the original for comparison:

1. **plain**: no instrumentation; wall time (``RunResult.wall_s``: the simulator and the
   history writing; and the total with analysis and report), messages by status, peak RSS.
2. **split**: the same, with timers around the parts (monkeypatched in this process only):
   network setup (``ShadowNetwork.__init__``), traffic generation (the batch generator),
   the gossip kernel (``GossipState.run``: the numba event loop plus its refills), history
   writing (``Recorder.flush_*`` and ``Recorder.deliveries`` — row building and Parquet — and
   ``HistoryWriter.close``), analysis, report; within the kernel, the compiled loop
   (``kernel.run_until``) apart from the Python around it; the Python engine is the simulator's wall
   time minus setup, traffic, kernel and history. The timers cost a few percent.
3. **profile**: under cProfile, top 15 functions by cumulative and by internal time. cProfile
   adds a fixed cost to every Python call, so it inflates the Python engine (many small
   calls) against the kernel (one call per return to Python); read its split as an upper
   bound on the Python share. The split of run 2 is the faithful one.

One run each; another process on the machine skews the timings (the load average is printed).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgstorm
from msgstorm import traffic as traffic_package
from msgstorm.analysis import analyse
from msgstorm.history import HistoryWriter
from msgstorm.report import rerun, write_run_files
from msgstorm.runner import run as run_scenario
from msgstorm.sim import gossip as gossip_module
from msgstorm.sim import kernel as kernel_module
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.recorder import Recorder
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.traffic import generate_traffic

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = REPO / "examples" / "flash-crash.toml"


def scaled_overrides(path: Path, factor: int) -> list[str]:
    base = msgstorm.load_scenario(path)
    return [f"agents.{i}.count={agent.count * factor}" for i, agent in enumerate(base.agents)]


def rss_now_mb() -> float | None:
    """Current resident set size (Linux), for snapshots between the phases of a run."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return None


def crossing_cost_us(sim: ShadowNetwork, calls: int = 100_000) -> tuple[float, float]:
    """Cost of one return to Python with nothing to do, after the run, in us: the bare
    ``kernel.run_until`` call (numba unboxing its arguments) and ``GossipState.run``."""
    gossip = sim.gossip
    args = gossip._args
    run_until = kernel_module.run_until if gossip.relays else kernel_module.run_until_push
    run_until(0, *args)  # until=0: every pending event is later, so it returns at once
    start = time.perf_counter()
    for _ in range(calls):
        run_until(0, *args)
    bare = (time.perf_counter() - start) / calls * 1e6
    start = time.perf_counter()
    for _ in range(calls):
        gossip.run(0)
    wrapped = (time.perf_counter() - start) / calls * 1e6
    return bare, wrapped


def maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def messages_line(summary: dict[str, Any]) -> str:
    m = summary["messages"]
    return ", ".join(f"{key} {m[key]:,}" for key in
                     ("sent", "committed", "dropped", "rejected", "lost", "pending"))


def timed_run(scenario: msgstorm.Scenario, out_dir: Path) -> tuple[Any, float]:
    gc.collect()
    started = time.perf_counter()
    result = run_scenario(scenario, out_dir)
    return result, time.perf_counter() - started


# --- run 2: timers around the parts -----------------------------------------------------------


class Split:
    """Monkeypatches timers into the runner, the simulator and the kernel wrapper; ``undo``
    puts the originals back."""

    def __init__(self) -> None:
        self.clock: dict[str, float] = dict.fromkeys(
            ("setup", "traffic", "kernel", "numba", "history", "finish", "analysis", "report"), 0.0)
        self.calls: dict[str, int] = dict.fromkeys(self.clock, 0)
        self.sims: list[ShadowNetwork] = []
        self.rss: dict[str, float | None] = {}
        self._undo: list[tuple[object, str, Any]] = []
        perf = time.perf_counter
        clock, calls = self.clock, self.calls

        rss = self.rss

        def timer(part: str, fn: Callable[..., Any], snapshot: bool = False) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if snapshot:
                    rss[f"before {part}"] = rss_now_mb()
                start = perf()
                try:
                    return fn(*args, **kwargs)
                finally:
                    clock[part] += perf() - start
                    calls[part] += 1
                    if snapshot:
                        rss[f"after {part}"] = rss_now_mb()
            return wrapper

        def traffic(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
            def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
                start = perf()
                batches = iter(fn(*args, **kwargs))
                clock["traffic"] += perf() - start

                def timed() -> Iterator[Any]:
                    while True:
                        start = perf()
                        batch = next(batches, None)
                        clock["traffic"] += perf() - start
                        calls["traffic"] += 1
                        if batch is None:
                            return
                        yield batch
                return timed()
            return wrapper

        original_init = ShadowNetwork.__init__

        def init(sim: ShadowNetwork, *args: Any, **kwargs: Any) -> None:
            original_init(sim, *args, **kwargs)
            self.sims.append(sim)

        # GossipState.run calls the compiled loop's machine code, which ``direct_call`` looks up
        # once (``jit.py``): time it apart from the Python around it (argument passing, refills,
        # unpacking what the kernel found) by timing what that lookup hands back.
        real_direct_call = gossip_module.direct_call

        def direct_call(function: Any, *args: Any) -> Callable[..., Any]:
            entry = real_direct_call(function, *args)
            return timer("numba", entry) if function is kernel_module.run_until else entry

        self._patch(ShadowNetwork, "__init__", timer("setup", init))
        # The sim target (targets/sim.py) imports the traffic's generator when it records a
        # run: patch it in its package, where that import finds it.
        self._patch(traffic_package, "generate_traffic", traffic(generate_traffic))
        self._patch(GossipState, "run", timer("kernel", GossipState.run))
        self._patch(gossip_module, "direct_call", direct_call)
        for name in ("flush_messages", "flush_events", "deliveries"):
            self._patch(Recorder, name, timer("history", getattr(Recorder, name)))
        self._patch(HistoryWriter, "close", timer("history", HistoryWriter.close))
        self._patch(ShadowNetwork, "finish", timer("finish", ShadowNetwork.finish, snapshot=True))
        # runner.run analyses through report/rerun.py (analyse_run_dir), by the names it imported.
        self._patch(rerun, "analyse", timer("analysis", analyse, snapshot=True))
        self._patch(rerun, "write_run_files", timer("report", write_run_files, snapshot=True))

    def _patch(self, owner: object, name: str, value: Any) -> None:
        self._undo.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)))
        setattr(owner, name, value)

    def undo(self) -> None:
        for owner, name, value in reversed(self._undo):
            setattr(owner, name, value)
        self._undo = []
        for sim in self.sims:
            sim.gossip._run_until = None  # the timed lookup it kept: looked up again, untimed


def print_split(split: Split, sim_wall: float, total: float) -> None:
    c = split.clock
    engine = sim_wall - c["setup"] - c["traffic"] - c["kernel"] - c["history"]
    rows = [
        ("network setup (ShadowNetwork.__init__)", c["setup"], split.calls["setup"]),
        ("traffic generation (batches)", c["traffic"], split.calls["traffic"]),
        ("gossip kernel (GossipState.run)", c["kernel"], split.calls["kernel"]),
        ("  of which the compiled loop (kernel.run_until)", c["numba"], split.calls["numba"]),
        ("  of which Python in GossipState.run (and the timer)", c["kernel"] - c["numba"], None),
        ("Python engine (event loop, sequencer, blocks, votes, settling)", engine, None),
        ("history writing (row building + Parquet, close)", c["history"], split.calls["history"]),
    ]
    print("| part | s | share of simulator wall | calls |")
    print("|---|---:|---:|---:|")
    for name, seconds, calls in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / sim_wall:.0%} | {'' if calls is None else f'{calls:,}'} |")
    print(f"| **simulator (RunResult.wall_s)** | **{sim_wall:.2f}** | 100% | |")
    print(f"| analysis (analyse) | {c['analysis']:.2f} | | |")
    print(f"| report (report.html, windows.csv) | {c['report']:.2f} | | |")
    print(f"| **total, msgstorm.run** | **{total:.2f}** | | |")
    print(f"\n(ShadowNetwork.finish, settling plus the final flushes, took {c['finish']:.2f} s of the above.)")


# --- run 3: cProfile ---------------------------------------------------------------------------


def _find(stats: pstats.Stats, path_suffix: str, func: str) -> tuple[int, float, float] | None:
    """(calls, tottime, cumtime) of one function in the profile."""
    for (filename, _line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if name == func and filename.replace(os.sep, "/").endswith(path_suffix):
            return nc, tt, ct
    return None


def print_profile(profile: cProfile.Profile, top: int) -> None:
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(top)
        text = out.getvalue()
        body = text[text.index("   ncalls"):] if "   ncalls" in text else text
        print(f"\ntop {top} by {order}:\n\n```\n{body.rstrip()}\n```")
    stats = pstats.Stats(profile)
    parts = [
        ("msgstorm.run, total", "msgstorm/runner.py", "run"),
        ("ShadowNetwork.run (event loop incl. kernel and traffic)", "sim/shadow.py", "run"),
        ("  GossipState.run (kernel)", "sim/gossip.py", "run"),
        ("    kernel.run_until (compiled)", "sim/kernel.py", "run_until"),
        ("  traffic generation (_batches)", "traffic/generate.py", "_batches"),
        ("  Recorder.flush_messages (message rows)", "sim/recorder.py", "flush_messages"),
        ("  Recorder.deliveries (delivery rows)", "sim/recorder.py", "deliveries"),
        ("ShadowNetwork.finish", "sim/shadow.py", "finish"),
        ("analyse", "analysis/summary.py", "analyse"),
        ("write_run_files (report)", "report/__init__.py", "write_run_files"),
    ]
    print("\ncProfile attribution (cumulative s; the kernel is one opaque call per return to Python):\n")
    print("| function | calls | cumulative s |")
    print("|---|---:|---:|")
    found: dict[str, float] = {}
    for label, suffix, func in parts:
        hit = _find(stats, suffix, func)
        if hit is None:
            print(f"| {label} | - | not found |")
            continue
        found[label] = hit[2]
        print(f"| {label} | {hit[0]:,} | {hit[2]:.2f} |")
    loop = found.get("ShadowNetwork.run (event loop incl. kernel and traffic)")
    kernel = found.get("  GossipState.run (kernel)")
    traffic = found.get("  traffic generation (_batches)", 0.0)
    if loop and kernel is not None:
        python = loop - kernel - traffic
        print(f"\nunder cProfile, the event loop's {loop:.2f} s: kernel {kernel:.2f} s ({kernel / loop:.0%}), "
              f"traffic {traffic:.2f} s ({traffic / loop:.0%}), Python {python:.2f} s ({python / loop:.0%})")


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--factor", type=int, default=10, help="multiply every agent's count by this (default 10)")
    parser.add_argument("--top", type=int, default=15, help="rows of each cProfile table (default 15)")
    parser.add_argument("--skip-plain", action="store_true", help="skip the uninstrumented run")
    parser.add_argument("--skip-split", action="store_true", help="skip the run with timers")
    parser.add_argument("--skip-profile", action="store_true", help="skip the cProfile run")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the run of the unscaled scenario")
    parser.add_argument("--workdir", type=Path, default=None, help="run directories (default: a temp dir)")
    parser.add_argument("--smoke", action="store_true",
                        help="every run at 2x and cut to 3 s of traffic: that the script runs, not a measure")
    args = parser.parse_args()

    shortened = ['run.duration="3s"', 'run.drain="1s"'] if args.smoke else []
    if args.smoke:
        args.factor = 2
    overrides = scaled_overrides(args.scenario, args.factor) + shortened
    scenario = msgstorm.load_scenario(args.scenario, overrides)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="msgstorm-flash10x-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# {args.scenario.name} at {args.factor}x traffic\n")
    print(f"host: {platform.platform()}, python {platform.python_version()}, {os.cpu_count()} cpus, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"overrides: {' '.join(overrides)}")
    print(f"run directories under {workdir}\n")

    # Warm the numba cache (a cold compile would land in the first timed run) and the imports.
    run_scenario(msgstorm.load_scenario(args.scenario, ["run.duration=\"1s\"", "run.drain=\"1s\""]),
                 workdir / "warmup")
    rss_before = maxrss_mb()

    if not args.skip_plain:
        result, total = timed_run(scenario, workdir / "plain")
        s = result.summary
        print("## 1. plain run\n")
        print(f"simulator wall (RunResult.wall_s) {result.wall_s:.2f} s; msgstorm.run total "
              f"(with analysis and report) {total:.2f} s")
        print(f"messages: {messages_line(s)}")
        sent = s["messages"]["sent"]
        print(f"offered {s['offered_rate_per_s']:,.0f}/s over {s['duration_s']:.1f} s virtual; "
              f"{sent / result.wall_s:,.0f} messages per wall second (simulator)")
        print(f"latency p50/p99/max {s['latency_ms']['p50']:.1f}/{s['latency_ms']['p99']:.1f}/"
              f"{s['latency_ms']['max']:.1f} ms; slo: "
              + ", ".join(f"{v['name']} {v['verdict']}" for v in s["slo"]))
        print(f"peak RSS of this process: {maxrss_mb():.0f} MB (after the warm-up run: {rss_before:.0f} MB)\n")

    if not args.skip_split:
        split = Split()
        try:
            result, total = timed_run(scenario, workdir / "split")
        finally:
            split.undo()
        sim = split.sims[-1]
        print("## 2. where the time goes (timers)\n")
        print(f"messages {sim.msgs.count:,}; gossip receipts {sim.gossip.receipts:,} "
              f"(+ {sim.gossip.block_receipts:,} block receipts); kernel events {sim.gossip.steps:,}; "
              f"{sim.gossip.receipts / split.clock['kernel']:,.0f} receipts per kernel second\n")
        print_split(split, result.wall_s, total)
        bare, wrapped = crossing_cost_us(sim)
        returns = split.calls["numba"]
        print(f"\ncrossing the Python/numba boundary: an empty `kernel.run_until` call costs {bare:.2f} us "
              f"(unboxing {len(sim.gossip._args) + 1} arguments), an empty `GossipState.run` {wrapped:.2f} us; "
              f"x {returns:,} calls = {bare * returns / 1e6:.1f} s of the compiled loop's "
              f"{split.clock['numba']:.1f} s is call overhead "
              f"({returns / max(1, sim.msgs.count):.1f} returns to Python per message)")
        if any(v is not None for v in split.rss.values()):
            print("\ncurrent RSS (MB) between phases: " + ", ".join(
                f"{k} {v:.0f}" for k, v in split.rss.items() if v is not None))
        print()

    if not args.skip_profile:
        profile = cProfile.Profile()
        gc.collect()
        started = time.perf_counter()
        profile.enable()
        result = run_scenario(scenario, workdir / "profile")
        profile.disable()
        total = time.perf_counter() - started
        print(f"## 3. cProfile\n\nunder cProfile: simulator {result.wall_s:.2f} s, msgstorm.run total {total:.2f} s")
        print_profile(profile, args.top)
        print()

    if not args.skip_baseline:
        base = msgstorm.load_scenario(args.scenario, shortened)
        result, total = timed_run(base, workdir / "baseline")
        print(f"## for comparison: {args.scenario.name} as written (1x)\n")
        print(f"simulator wall {result.wall_s:.2f} s; msgstorm.run total {total:.2f} s; "
              f"messages: {messages_line(result.summary)}")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
