"""A sweep on every local core against the same runs one after another.

    python benchmarks/sweep.py                 # 64 quickstart runs (32 seeds x 2 points)
    python benchmarks/sweep.py --runs 16       # fewer
    python benchmarks/sweep.py --ray 127.0.0.1:6379   # also as tasks on that Ray cluster
    python benchmarks/sweep.py --again         # also a second sweep in the same process

The peer is the same runs made one after another in this process (``msgstorm.run``, numba's
cache warm): the target is the sweep at at least 0.8 x cores x that rate. It also prints the
per-run overhead of the sweep (its wall time x workers / runs, minus a run's own time), and
the same in CPU time (user + system of this process and of every process under it: the
sweep's workers, and the fork server they are forked from, which stays for the life of this
process and is read from /proc): on a machine shared with other work the wall times drift,
the CPU times much less. ``--again`` makes a second, identical sweep into a new directory in
the same process: the overhead a safe-leverage search's later steps, or any later sweep of a
program, pay (the fork server already running, its imports and numba's cache loaded).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import msgstorm  # noqa: E402
from msgstorm.sweep import default_workers, parse_grid, sweep  # noqa: E402

QUICKSTART = str(ROOT / "examples" / "quickstart.toml")


def cpu_s() -> float:
    """User + system CPU seconds of this process, of its children that have ended, and of
    its children still running (the fork server) with the children they have reaped (its
    workers that have ended): Linux's /proc, in clock ticks."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    running = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile (then counted in RUSAGE_CHILDREN once reaped)
        if int(fields[1]) == os.getpid():
            running += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + running / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--ray", default=None, help="also run the sweep on this Ray cluster (auto or HOST:PORT)")
    parser.add_argument("--again", action="store_true", help="also a second sweep in the same process")
    args = parser.parse_args()
    workers = args.workers or default_workers()
    seeds = max(1, args.runs // 2)
    grid = [parse_grid("sequencer.workers=1,2")]
    with tempfile.TemporaryDirectory() as directory:
        msgstorm.run(msgstorm.load_scenario(QUICKSTART), Path(directory) / "warm")  # numba's cache, warm
        started, cpu_started = time.perf_counter(), cpu_s()
        for workers_value in (1, 2):
            for seed in range(seeds):
                scenario = msgstorm.load_scenario(QUICKSTART, [f"sequencer.workers={workers_value}",
                                                               f"run.seed={1 + seed}"])
                msgstorm.run(scenario, Path(directory) / f"one-{workers_value}-{seed}")
        serial_s, serial_cpu_s = time.perf_counter() - started, cpu_s() - cpu_started
        started, cpu_started = time.perf_counter(), cpu_s()
        result = sweep(QUICKSTART, grid, seeds=seeds, workers=workers, out_dir=Path(directory) / "sweep")
        sweep_s, sweep_cpu_s = time.perf_counter() - started, cpu_s() - cpu_started
        again = None
        if args.again:
            started, cpu_started = time.perf_counter(), cpu_s()
            sweep(QUICKSTART, grid, seeds=seeds, workers=workers, out_dir=Path(directory) / "again")
            again = time.perf_counter() - started, cpu_s() - cpu_started
        ray_s = None
        if args.ray is not None:
            started = time.perf_counter()
            sweep(QUICKSTART, grid, seeds=seeds, out_dir=Path(directory) / "ray", ray=args.ray)
            ray_s = time.perf_counter() - started
    runs = 2 * seeds
    serial_rate, sweep_rate = runs / serial_s, runs / sweep_s
    target = 0.8 * workers * serial_rate
    print(f"{runs} quickstart runs, {workers} workers ({result.failed} failed)")
    print(f"  one after another: {serial_s:.2f} s ({serial_rate:.2f} runs/s, {serial_s / runs:.3f} s a run)")
    print(f"  sweep:             {sweep_s:.2f} s ({sweep_rate:.2f} runs/s)")
    print(f"  speed-up {serial_s / sweep_s:.2f}x; target {0.8 * workers:.1f}x (0.8 x {workers} workers): "
          f"{'met' if sweep_rate >= target else 'NOT MET'}")
    print(f"  overhead per run: {max(0.0, sweep_s * workers / runs - serial_s / runs):.3f} s "
          "(process start, numba cache load, writing the table)")
    print(f"  CPU time: one after another {serial_cpu_s / runs:.3f} s a run, sweep {sweep_cpu_s / runs:.3f} s a run: "
          f"overhead per run {sweep_cpu_s / runs - serial_cpu_s / runs:.3f} s")
    if again is not None:
        again_s, again_cpu_s = again
        print(f"  second sweep:      {again_s:.2f} s; overhead per run "
              f"{max(0.0, again_s * workers / runs - serial_s / runs):.3f} s, "
              f"in CPU time {again_cpu_s / runs - serial_cpu_s / runs:.3f} s")
    if ray_s is not None:
        print(f"  on Ray:            {ray_s:.2f} s ({runs / ray_s:.2f} runs/s): {sweep_s / ray_s:.2f}x local processes' "
              f"rate; overhead per task {max(0.0, ray_s * workers / runs - serial_s / runs):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
