"""The wall-time estimate of ``msgstorm validate`` against the measured wall time of the run.

Each case is ``msgstorm run EXAMPLE -q`` with some ``--set`` options, in a fresh process: the
estimate (``scenario.budget.estimate_work(...).wall_s``) beside the wall seconds the process
took, and their ratio. The coefficients of the estimate (``src/msgstorm/scenario/budget.py``)
come from these cases; docs/performance.md ("Wall time before the run") has the last table.

    python benchmarks/wall_estimate.py            # every case, about 2 minutes
    python benchmarks/wall_estimate.py --only bitcoin
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

CASES: dict[str, tuple[str, list[str]]] = {
    "quickstart": ("quickstart", []),
    "flash-crash": ("flash-crash", []),
    "ramp": ("ramp", []),
    "matching-engine": ("matching-engine", []),
    "byzantine": ("byzantine", []),
    "forks": ("forks", []),
    "bitcoin 1,000 nodes 1 h": ("bitcoin", ["network.total_nodes=1000", 'run.duration="1h"']),
    "bitcoin 6,000 nodes 1 h": ("bitcoin", ["network.total_nodes=6000", 'run.duration="1h"']),
    "bitcoin 6,000 nodes 3 h": ("bitcoin", ["network.total_nodes=6000", 'run.duration="3h"']),
    "bitcoin 15,000 nodes 1 h": ("bitcoin", ["network.total_nodes=15000", 'run.duration="1h"']),
    "ethereum 2,000 nodes 36 s": ("ethereum", ["network.total_nodes=2000", "agents.0.count=2000",
                                               'run.duration="36s"']),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="cases whose name contains this")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from msgstorm.scenario import load_scenario
    from msgstorm.scenario.budget import estimate_work

    print(f"{'case':<28} {'estimate s':>10} {'measured s':>10} {'ratio':>6}")
    for name, (example, sets) in CASES.items():
        if args.only and args.only not in name:
            continue
        path = EXAMPLES / f"{example}.toml"
        estimate = estimate_work(load_scenario(path, sets)).wall_s
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "msgstorm", "run", str(path), "-q", "--out", str(Path(out) / "run"),
                       *[arg for item in sets for arg in ("--set", item)]]
            began = time.perf_counter()
            subprocess.run(command, check=False, capture_output=True, cwd=ROOT)
            measured = time.perf_counter() - began
        print(f"{name:<28} {estimate:>10.1f} {measured:>10.1f} {measured / estimate:>6.2f}")


if __name__ == "__main__":
    main()
