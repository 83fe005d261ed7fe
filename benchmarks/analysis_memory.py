"""Peak memory and wall time of ``msgstorm report`` (analysis + report) on long runs.

Place: a script run by hand. It makes one-node M/M/1 runs (rho 0.8, Poisson 8,000/s, the
compiled one-node loop) of 1M and 10M messages, or takes run directories, then times
``msgstorm report RUN_DIR`` in a fresh process and reads its peak RSS from the kernel
(``getrusage(RUSAGE_CHILDREN)``). Target: 10M messages analysed in at most 1 GB.

With ``--live`` it runs each live example once (``msgstorm run examples/<name>.toml -q``,
the servers started by msgstorm: nats-server, redis-server and anvil on PATH or in
``MSGSTORM_ANVIL``), printing msgstorm's peak RSS (target: at most 500 MB) three ways:
the ``msgstorm`` process's ``ru_maxrss`` from ``wait4`` (the largest of it and every child
it reaped: the live recording's process, and the brokers it started too); the largest
peak RSS (``VmHWM``) of msgstorm's own processes (Python: the command, its recording's
process, consumer and generator processes, the fault proxy; not the brokers), sampled
every 50 ms; and the largest sum of their proportional set sizes (PSS: a page the
command and its forked recording share counts once), sampled the same way.
Then it reports on the run directories it kept (a later call
with the same ``--workdir`` reuses them instead of running live again).
``--before SRC`` times ``msgstorm report`` with the ``src`` directory of an earlier
checkout too, side by side on the same run directories, and says whether the two wrote the
same summary.json (``wall_s`` aside).

    python benchmarks/analysis_memory.py [--messages 1000000 10000000] [--workdir DIR]
    python benchmarks/analysis_memory.py --messages --live --workdir DIR [--before OLD/src]
        [--only live-anvil] [--set live.start_timeout=60s]
    python benchmarks/analysis_memory.py --messages --runs RUN_DIR... [--before OLD/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIO = """
[run]
name = "mm1-{label}"
seed = 3
duration = "{seconds}s"
drain = "2s"
[network]
regions = ["us-east"]
nodes_per_region = 1
processing = 0
[sequencer]
service = {{ dist = "exponential", mean = "100us" }}
[blocks]
interval = "100ms"
max_messages = 1000000
[[agents]]
name = "poisson"
arrival = {{ process = "poisson", rate = "8000/s" }}
"""
RATE_PER_S = 8_000
LIVE = ("live-nats-ramp", "live-redis", "live-zmq", "live-jetstream", "live-anvil")
# Sampling msgstorm's process tree this often (a child's peak between samples is missed;
# the ``msgstorm`` process's own is exact, from the kernel).
TREE_SAMPLE_S = 0.05
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _msgstorm(*args: str) -> list[str]:
    """The ``msgstorm`` command as installed (``cli.main``: the allocator set as it sets it)."""
    return [sys.executable, "-c", "import sys; from msgstorm.cli import main; sys.argv[0] = 'msgstorm'; main()", *args]


def _measured(command: list[str], src: Path | None = None) -> tuple[float, float, int]:
    """(wall s, peak RSS MB, exit code) of ``command`` in a fresh process (``src``: import
    msgstorm from there). Each measurement in its own interpreter: RUSAGE_CHILDREN keeps the
    largest child."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    probe = [sys.executable, "-c",
             "import resource, subprocess, sys, time; t = time.perf_counter(); "
             "done = subprocess.run(sys.argv[1:], capture_output=True); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
             "done.returncode)", *command]
    line = subprocess.run(probe, capture_output=True, text=True, check=True, env=env).stdout.split()
    return float(line[0]), float(line[1]), int(line[2])


def _tree(root: int) -> list[int]:
    """``root`` and every process under it (from ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rfind(")") + 2:].split()[1]), []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack += children.get(pid, [])
    return found


def _own_hwm_mb(pid: int) -> int:
    """The kernel's peak RSS so far (``VmHWM``) of ``pid`` in MB if it is one of msgstorm's
    own (Python) processes, else 0."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "python" not in fields.get("Name", "") or "VmHWM" not in fields:
        return 0
    return int(fields["VmHWM"].split()[0]) // 1024


def _own_pss_mb(pid: int) -> int:
    """Proportional set size of ``pid`` in MB (a page shared with n processes counts 1/n in
    each: the run's process and the recording's child it forks share the interpreter's
    pages, which a sum of RSS would count twice) if it is one of msgstorm's own (Python)
    processes, else 0."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "python" not in fields.get("Name", ""):
        return 0  # a broker msgstorm started (nats-server, redis-server, anvil), or gone
    pss = [line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")]
    return int(pss[0]) // 1024 if pss else 0


def _live_measured(command: list[str]) -> tuple[float, float, float, float, int]:
    """(wall s, the msgstorm process's peak RSS MB (the largest of it and every child it
    reaped, the brokers it started among them: ``ru_maxrss`` from ``wait4``), the largest
    peak RSS of msgstorm's own processes (``VmHWM``, sampled), its process tree's largest
    sampled sum of own PSS MB, exit code) of ``command``."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree_peak = own_peak = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return (time.perf_counter() - started, usage.ru_maxrss / 1024, float(own_peak), float(tree_peak),
                    process.returncode)
        tree = _tree(process.pid)
        tree_peak = max(tree_peak, sum(_own_pss_mb(p) for p in tree))
        own_peak = max([own_peak, *(_own_hwm_mb(p) for p in tree)])
        time.sleep(TREE_SAMPLE_S)


def _summary(run_dir: Path) -> dict[str, object]:
    summary = dict(json.loads((run_dir / "summary.json").read_text()))
    summary.pop("wall_s", None)
    return summary


def _report(run_dir: Path, label: str, before: Path | None) -> None:
    """``msgstorm report`` on ``run_dir``: this checkout, and ``before``'s when given."""
    sides = [("before", before)] if before is not None else []
    summaries = {}
    for side, src in [*sides, ("now" if before is not None else "", None)]:
        wall, peak, code = _measured(_msgstorm("report", str(run_dir)), src)
        if code not in (0, 1):
            raise SystemExit(f"msgstorm report {run_dir} exited {code}")
        summaries[side] = _summary(run_dir)
        print(f"{label:>16} {side:>7} {wall:>14.2f} {peak:>19,.0f}")
    if before is not None:
        print(f"{'':>16} summary.json {'identical' if summaries['before'] == summaries['now'] else 'DIFFERS'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--live", action="store_true", help="run each live example once, then report on it")
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run directories to report on")
    parser.add_argument("--before", type=Path, default=None, help="an earlier checkout's src directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="a scenario override for every live run (msgstorm run --set), e.g. "
                             "live.start_timeout=60s where a loaded machine starts anvil slowly")
    parser.add_argument("--only", nargs="*", default=list(LIVE), choices=sorted(p.stem for p in EXAMPLES.glob("live-*.toml")),
                        help="live examples to run (default: one of each target)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="msgstorm-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    targets: list[tuple[str, Path]] = []
    if args.live:
        print(f"{'live example':>16} {'run wall s':>14} {'run peak RSS MB':>19} {'own peak MB':>12} {'own PSS MB':>11} "
              f"{'sent':>10} {'unsent':>10}")
        overrides = [arg for override in args.overrides for arg in ("--set", override)]
        for name in args.only:
            run_dir = workdir / name
            if not (run_dir / "summary.json").is_file():
                wall, peak, own, tree, code = _live_measured(_msgstorm("run", str(EXAMPLES / f"{name}.toml"), "--out",
                                                                  str(run_dir), "-q", "--overwrite", *overrides))
                if code not in (0, 1):
                    raise SystemExit(f"msgstorm run {name} exited {code}")
                counts = json.loads((run_dir / "summary.json").read_text())["messages"]
                print(f"{name:>16} {wall:>14.2f} {peak:>19,.0f} {own:>12,.0f} {tree:>11,.0f} {counts['sent']:>10,} "
                      f"{counts['unsent']:>10,}")
            targets.append((name, run_dir))
    for count in args.messages:
        label = f"{count // 1_000_000}m" if count >= 1_000_000 else str(count)
        run_dir = workdir / f"run-{label}"
        if not (run_dir / "summary.json").is_file():
            scenario = workdir / f"mm1-{label}.toml"
            scenario.write_text(SCENARIO.format(label=label, seconds=count / RATE_PER_S), encoding="utf-8")
            subprocess.run(_msgstorm("run", str(scenario), "--out", str(run_dir), "-q", "--overwrite"), check=True,
                           capture_output=True)
        targets.append((f"{count:,}", run_dir))
    targets += [(path.name, path) for path in args.runs]
    print(f"{'run':>16} {'':>7} {'report wall s':>14} {'report peak RSS MB':>19}")
    for label, run_dir in targets:
        _report(run_dir, label, args.before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
