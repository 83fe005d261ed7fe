"""CPU time of the simulation alone, for two source trees side by side (before and after a change).

Run by hand (CI runs ``--trees src src --pairs 1 --set network.nodes_per_region=5``, a smoke run):

    python benchmarks/sim_cpu.py --trees /path/to/before/src /path/to/after/src --pairs 3

Each run is a fresh process with one tree's ``src`` first on ``PYTHONPATH``; it builds the
shadow network for ``examples/quickstart.toml`` at 100 nodes a region (300 nodes, a
degree-6 mesh; 3 s of traffic, 2 s drain), loads the compiled kernel, and times
``ShadowNetwork.run`` and ``finish`` with ``time.process_time`` (the history is written to a
temporary directory; traffic generation, analysis and reports are left out). The trees
alternate pair by pair (the first pair's order reversed in the next) so that drift on a
shared machine falls on both; it prints every run, the median of each tree and the ratio,
and the gossip receipts each counted (equal when the change leaves results alone).
``--set KEY=VALUE`` (repeatable) overrides the scenario further, as ``msgstorm run --set``
does: e.g. ``--set 'network.relay={protocol="announce"}'`` relays by announce and fetch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.toml"
SETS = ["network.nodes_per_region=100", 'run.duration="3s"', 'run.drain="2s"']


def _one(extra: list[str]) -> None:
    """The timed run, in this process (``--child``)."""
    import numpy as np

    from msgstorm.history import HistoryWriter
    from msgstorm.scenario import load_scenario
    from msgstorm.sim.shadow import ShadowNetwork
    from msgstorm.traffic import generate_traffic

    scenario = load_scenario(EXAMPLE, [*SETS, *extra])
    with tempfile.TemporaryDirectory() as out:
        writer = HistoryWriter(Path(out) / "history")
        traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
        sim = ShadowNetwork(scenario, writer, sim_seed)
        traffic = generate_traffic(scenario, traffic_seed)
        sim.gossip.run(0)  # the compiled kernel loaded (or compiled) before the clock starts
        start = time.process_time()
        sim.run(traffic)
        sim.finish()
        cpu = time.process_time() - start
        writer.close()
    print(f"{cpu:.3f} {sim.gossip.receipts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs=2, metavar="SRC", help="two source directories (each holding msgstorm/)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a scenario override")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _one(args.set)
        return
    if not args.trees:
        parser.error("--trees SRC SRC is required")
    cpu: dict[str, list[float]] = {tree: [] for tree in args.trees}
    for pair in range(-1, args.pairs):  # pair -1 compiles each tree's kernel into numba's cache
        order = args.trees if pair % 2 == 0 else args.trees[::-1]
        for tree in order:
            env = dict(os.environ, PYTHONPATH=tree)
            sets = [f"--set={value}" for value in args.set]
            done = subprocess.run([sys.executable, __file__, "--child", *sets], env=env, capture_output=True, text=True,
                                  check=True)
            seconds, receipts = done.stdout.split()
            if pair >= 0:
                cpu[tree].append(float(seconds))
                print(f"{tree}: {float(seconds):.2f} s CPU, {int(receipts):,} receipts", flush=True)
    before, after = (statistics.median(cpu[tree]) for tree in args.trees)
    print(f"median CPU: {before:.2f} s, {after:.2f} s; ratio after / before {after / before:.3f}")


if __name__ == "__main__":
    main()
