"""The gossip kernel's speed in two source trees, side by side in one run (an A/B ratio).

Run by hand (CI runs ``src src --pairs 1 --nodes 3 --rate 100``, a smoke run):

    python benchmarks/kernel_ab.py A_SRC B_SRC              # 3 alternating pairs
    python benchmarks/kernel_ab.py A_SRC B_SRC --pairs 5 --nodes 300 --rate 2000

``A_SRC`` and ``B_SRC`` are ``src`` directories of two msgstorm checkouts (e.g. an export of
``main`` and a branch: ``git archive main src | tar -x -C /tmp/main``). Each run is a fresh
process with that tree first on ``PYTHONPATH``, simulating the same gossip scenario with
no adversary (a mesh of ``--nodes`` nodes in three regions, degree 8, 20 us of processing
per receipt, Poisson traffic at ``--rate`` for 10 s), A and B alternating pair by pair after
one untimed warm-up run each (numba loads or compiles each tree's kernel into its own
cache then). Each run reports the CPU time spent inside ``GossipState.run`` (the compiled
kernel and its refills; timed by wrapping the method in the child, a benchmark-only patch)
and the messages it sent; the lines give both per pair and the median of B / A. CPU time,
not wall time: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SCENARIO = """
[run]
name = "kernel-ab"
seed = 1
duration = "10s"
drain = "1s"

[network]
regions = ["us-east", "eu-west", "ap-northeast"]
nodes_per_region = {per_region}
processing = "20us"
bandwidth = "unlimited"

[gossip]
mode = "mesh"
degree = 8
peers = 16

[[agents]]
name = "traders"
count = 50
arrival = {{ process = "poisson", rate = "{rate_per_agent}/s" }}
"""

CHILD = """
import json, sys, time
import msgstorm
from msgstorm.sim.gossip import GossipState

spent = [0.0]
original = GossipState.run

def timed(self, until):
    start = time.process_time()
    try:
        return original(self, until)
    finally:
        spent[0] += time.process_time() - start

GossipState.run = timed
scenario = msgstorm.load_scenario(sys.argv[1])
start = time.process_time()
result = msgstorm.run(scenario, sys.argv[2])
print(json.dumps({"kernel_cpu_s": spent[0], "run_cpu_s": time.process_time() - start,
                  "messages": result.summary["messages"]["sent"], "file": msgstorm.__file__}))
"""


def run_once(src: Path, scenario: Path, work: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = work / "run"
    done = subprocess.run([sys.executable, "-c", CHILD, str(scenario), str(out)], env=env, check=True,
                          capture_output=True, text=True)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a_src", type=Path)
    parser.add_argument("b_src", type=Path)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--rate", type=int, default=2000, help="messages per second in all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scenario = work / "kernel-ab.toml"
        scenario.write_text(SCENARIO.format(per_region=max(1, args.nodes // 3), rate_per_agent=args.rate / 50))
        for src in (args.a_src, args.b_src):
            print(f"warm-up {src}: {run_once(src, scenario, work)['file']}", flush=True)
        ratios = []
        for pair in range(args.pairs):
            a = run_once(args.a_src, scenario, work)
            b = run_once(args.b_src, scenario, work)
            ratios.append(b["kernel_cpu_s"] / a["kernel_cpu_s"])
            print(f"pair {pair + 1}: kernel CPU A {a['kernel_cpu_s']:.3f} s, B {b['kernel_cpu_s']:.3f} s "
                  f"(B/A {ratios[-1]:.3f}); run CPU A {a['run_cpu_s']:.2f} s, B {b['run_cpu_s']:.2f} s; "
                  f"messages {a['messages']:,.0f} / {b['messages']:,.0f}", flush=True)
        print(f"median kernel CPU B/A over {args.pairs} pairs: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
