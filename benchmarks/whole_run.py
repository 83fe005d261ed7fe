"""msgstorm as a user times it: ``msgstorm run`` as a whole process against a SimPy model
process of the same queue, and ``msgstorm report`` on a million and ten million messages.

Run by hand (needs the ``bench`` extra for SimPy); CI runs ``--smoke``:

    python benchmarks/whole_run.py               # 3 pairs, then report on 1M and 10M messages
    python benchmarks/whole_run.py --pairs 5
    python benchmarks/whole_run.py --skip-10m    # leave out the ten-million-message run and report
    python benchmarks/whole_run.py --quick       # the pairs and the 1M report only (~1 min)
    python benchmarks/whole_run.py --report-only --skip-10m   # only ``msgstorm report`` timings
    python benchmarks/whole_run.py --keep DIR    # keep the runs (a later --report-only reuses them)
    python benchmarks/whole_run.py --quick --against /tmp/before/src   # also another msgstorm, pair by pair
    python benchmarks/whole_run.py --smoke       # one pair and one report of 8,000 customers: that it runs

The queue: M/M/1 at rho 0.8, one million customers. msgstorm: one node, ``processing = 0``,
exponential service 100 us, Poisson 8,000/s for 125 s, blocks every 100 ms, ``msgstorm run
mm1.toml -q`` through the console entry (simulation, history, analysis, summary.json,
report.html, windows.csv).
SimPy: ``Resource(capacity=1)``, a source process and one process per customer, printing the
mean wait. Each side is its own process, started fresh (imports included), the two
alternating pair by pair, with Python's bytecode cache on (PYTHONDONTWRITEBYTECODE is
removed from their environment); the wall time is the median over the pairs and the peak RSS the
largest the kernel reports for the child (``wait4``). The ten-million-message run is the same
queue at 80,000/s with 10 us service. Blocks take up to a million messages, so the sequencer's
queue is the only one (the default 5,000 a block would cap the 10M run at 50,000/s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MM1 = """
[run]
name = "mm1"
duration = "{duration}"
drain = "10s"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = 0

[sequencer]
service = {{ dist = "exponential", mean = "{service}" }}

[blocks]
interval = "100ms"
max_messages = 1000000

[[agents]]
name = "traders"
arrival = {{ process = "poisson", rate = "{rate}/s" }}
"""

SIMPY = """
import random, sys
import simpy

ARRIVAL, SERVICE, CUSTOMERS = 8000.0, 10000.0, int(sys.argv[1])
random.seed(1)
env = simpy.Environment()
server = simpy.Resource(env, capacity=1)
waits = []

def customer(env):
    arrived = env.now
    with server.request() as request:
        yield request
        waits.append(env.now - arrived)
        yield env.timeout(random.expovariate(SERVICE))

def source(env):
    for _ in range(CUSTOMERS):
        env.process(customer(env))
        yield env.timeout(random.expovariate(ARRIVAL))

env.process(source(env))
env.run()
print(f"customers {len(waits)}, mean wait {sum(waits) / len(waits) * 1e3:.3f} ms (theory 0.400 ms)")
"""


def timed(command: list[str], cwd: Path) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS MB, stdout, CPU seconds: user + system) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=CHILD_ENV)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    out = process.stdout.read() if process.stdout else ""
    err = process.stderr.read() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024, out, usage.ru_utime + usage.ru_stime


def msgstorm(*args: str, source: Path | None = None) -> list[str]:
    """The ``msgstorm`` console command (its entry point, with this Python); with ``source``,
    the msgstorm of that source directory (its ``src``) instead of the one this Python finds."""
    entry = "from msgstorm.cli import main; main()"
    if source is not None:
        entry = f"import sys; sys.path.insert(0, {str(source)!r}); " + entry
    return [sys.executable, "-c", entry, *args]


# Both sides run as on a user's machine: Python keeps its compiled bytecode, even when the
# shell that started the benchmark set PYTHONDONTWRITEBYTECODE (each run would compile
# every module from source again).
CHILD_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def pairs(work: Path, count: int, against: Path | None = None, customers: int = 1_000_000,
          label: str = "1M") -> None:
    """``count`` pairs, msgstorm first then SimPy, and the medians. With ``against`` (another
    msgstorm's ``src`` directory, e.g. a checkout of an earlier commit) each pair first runs
    that msgstorm on the same scenario, so the two versions alternate run by run."""
    ours, theirs, before = [], [], []
    for pair in range(count):
        if against is not None:
            before.append(timed(msgstorm("run", "mm1.toml", "-q", "--out", f"before{pair}", "--overwrite",
                                         source=against), work))
            print(f"pair {pair + 1}: msgstorm from {against}: {before[-1][0]:.2f} s ({before[-1][3]:.2f} s CPU, "
                  f"{before[-1][1]:.0f} MB)", flush=True)
        ours.append(timed(msgstorm("run", "mm1.toml", "-q", "--out", f"run{pair}", "--overwrite"), work))
        theirs.append(timed([sys.executable, "simpy_mm1.py", str(customers)], work))
        print(f"pair {pair + 1}: msgstorm {ours[-1][0]:.2f} s ({ours[-1][3]:.2f} s CPU, {ours[-1][1]:.0f} MB), "
              f"SimPy {theirs[-1][0]:.2f} s ({theirs[-1][3]:.2f} s CPU, {theirs[-1][1]:.0f} MB)  "
              f"{theirs[-1][2].strip()}", flush=True)
    ours_s, theirs_s = statistics.median(t[0] for t in ours), statistics.median(t[0] for t in theirs)
    ours_cpu, theirs_cpu = statistics.median(t[3] for t in ours), statistics.median(t[3] for t in theirs)
    print(f"msgstorm run, M/M/1 with {label} customers: {ours_s:.2f} s ({ours_cpu:.2f} s CPU), "
          f"peak RSS {max(t[1] for t in ours):.0f} MB")
    print(f"SimPy model, {label} customers:            {theirs_s:.2f} s ({theirs_cpu:.2f} s CPU), "
          f"peak RSS {max(t[1] for t in theirs):.0f} MB")
    # On a machine shared with other work the wall times stretch with the load; the CPU times
    # (user + system, what the kernel charged each child) much less: both ratios are printed.
    print(f"ratio SimPy / msgstorm (whole process): {theirs_s / ours_s:.1f}x wall, {theirs_cpu / ours_cpu:.1f}x CPU "
          "(target 10x)", flush=True)
    if before:
        before_s, before_cpu = statistics.median(t[0] for t in before), statistics.median(t[3] for t in before)
        print(f"msgstorm from {against}: {before_s:.2f} s ({before_cpu:.2f} s CPU), "
              f"peak RSS {max(t[1] for t in before):.0f} MB; this one / that one: {ours_s / before_s:.2f} wall, "
              f"{ours_cpu / before_cpu:.2f} CPU", flush=True)


def reports(work: Path, run_dir: str, label: str, times: int, target: str) -> None:
    """``msgstorm report`` on one run, ``times`` times: the median and the largest peak RSS."""
    done = [timed(msgstorm("report", run_dir), work) for _ in range(times)]
    print(f"msgstorm report on {label} messages: {statistics.median(t[0] for t in done):.2f} s "
          f"({statistics.median(t[3] for t in done):.2f} s CPU), peak RSS {max(t[1] for t in done):.0f} MB ({target})",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--skip-10m", action="store_true", help="leave out the ten-million-message run and report")
    parser.add_argument("--quick", action="store_true", help="the pairs and the 1M report only (~1 min)")
    parser.add_argument("--smoke", action="store_true",
                        help="one pair and one report of a 1 s queue (8,000 customers): that the script runs")
    parser.add_argument("--report-only", action="store_true",
                        help="time only msgstorm report (runs made once if the work directory lacks them)")
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep the runs in")
    parser.add_argument("--against", type=Path, default=None,
                        help="another msgstorm's src directory, run in each pair too (before and after a change)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="msgstorm-whole-run-"))
    work.mkdir(parents=True, exist_ok=True)
    skip_10m = args.skip_10m or args.quick or args.smoke
    # --smoke: 1 s of the queue instead of 125 s.
    seconds, label = (1, "8k") if args.smoke else (125, "1M")
    try:
        (work / "mm1.toml").write_text(MM1.format(service="100us", rate=8000, duration=f"{seconds}s"))
        (work / "mm1_10m.toml").write_text(MM1.format(service="10us", rate=80000, duration="125s"))
        (work / "simpy_mm1.py").write_text(SIMPY)
        if not args.report_only:
            # Compiled loops loaded from numba's cache once, untimed (a compile would land here).
            for source in (None, args.against) if args.against is not None else (None,):
                timed(msgstorm("run", "mm1.toml", "-q", "--out", "warm", "--overwrite", "--set", 'run.duration="1s"',
                               source=source), work)
            pairs(work, 1 if args.smoke else args.pairs, args.against.resolve() if args.against is not None else None,
                  8000 * seconds, label)
        elif not (work / "run0" / "summary.json").is_file():
            timed(msgstorm("run", "mm1.toml", "-q", "--out", "run0", "--overwrite"), work)
        reports(work, "run0", label, 1 if args.smoke else 3, "target 0.5 s")
        if not skip_10m:
            if not args.report_only or not (work / "run10m" / "summary.json").is_file():
                made = timed(msgstorm("run", "mm1_10m.toml", "-q", "--out", "run10m", "--overwrite"), work)
                print(f"msgstorm run, 10M messages: {made[0]:.2f} s ({made[3]:.2f} s CPU), peak RSS {made[1]:.0f} MB",
                      flush=True)
            reports(work, "run10m", "10M", 2, "target 5 s, 1 GB")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
