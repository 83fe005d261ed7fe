"""Peak memory and wall time of ``msgstorm report`` (analysis + report) on long runs.

Place: a script run by hand. It makes one-node M/M/1 runs (rho 0.8, Poisson 8,000/s, the
compiled one-node loop) of 1M and 10M messages, or takes run directories, then times
``msgstorm report RUN_DIR`` in a fresh process and reads its peak RSS from the kernel
(``getrusage(RUSAGE_CHILDREN)``). Target: 10M messages analysed in at most 1 GB.

    python benchmarks/analysis_memory.py [--messages 1000000 10000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
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


def _msgstorm(*args: str) -> list[str]:
    return [sys.executable, "-c", "from msgstorm.cli import app; app()", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="msgstorm-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{'messages':>12} {'report wall s':>14} {'report peak RSS MB':>19}")
    for count in args.messages:
        label = f"{count // 1_000_000}m" if count >= 1_000_000 else str(count)
        run_dir = workdir / f"run-{label}"
        if not (run_dir / "summary.json").is_file():
            scenario = workdir / f"mm1-{label}.toml"
            scenario.write_text(SCENARIO.format(label=label, seconds=count / RATE_PER_S), encoding="utf-8")
            subprocess.run(_msgstorm("run", str(scenario), "--out", str(run_dir), "-q", "--overwrite"), check=True,
                           capture_output=True)
        # Each measurement in its own interpreter: RUSAGE_CHILDREN keeps the largest child.
        probe = [sys.executable, "-c",
                 "import resource, subprocess, sys, time; t = time.perf_counter(); "
                 "done = subprocess.run(sys.argv[1:], capture_output=True); "
                 "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
                 "done.returncode)", *_msgstorm("report", str(run_dir))]
        line = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.split()
        wall, peak, code = float(line[0]), float(line[1]), int(line[2])
        if code not in (0, 1):
            raise SystemExit(f"msgstorm report {run_dir} exited {code}")
        print(f"{count:>12,} {wall:>14.2f} {peak:>19,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
