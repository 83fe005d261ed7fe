"""CPU time of the market benchmark's runs, for a machine whose wall times are not to be trusted.

    python benchmarks/market_cpu.py market split plain
    python benchmarks/market_cpu.py --root /path/to/an/older/checkout market plain
    python benchmarks/market_cpu.py --smoke market split plain   # market.py's --smoke runs: CI's

Each named run (``market``: racing keepers, ``split``: keepers splitting the accounts,
``plain``: the same flash crash without a market; the scenarios of ``benchmarks/market.py``)
is timed in this process by user + system CPU time (``resource.getrusage``), after a short
warm-up run that loads the compiled code from numba's cache. ``--root`` runs another source
tree's code (one with ``benchmarks/market.py`` and ``src/``): alternate the two trees, one
process each, to compare code before and after on a shared machine. ``--smoke`` times the
small runs of ``market.py --smoke`` (200 accounts, 2 keepers, 3 s): that the script runs.
"""

from __future__ import annotations

import argparse
import importlib
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", choices=["market", "split", "plain"])
    parser.add_argument("--root", type=Path, default=HERE, help="the source tree to run (default: this one)")
    parser.add_argument("--smoke", action="store_true",
                        help="market.py's --smoke runs (200 accounts, 2 keepers, 3 s): that the script runs")
    args = parser.parse_args()
    root = args.root.resolve()
    sys.path.insert(0, str(root / "benchmarks"))
    bench = importlib.import_module("market")  # puts root/src first on the path
    import msgstorm

    if not Path(msgstorm.__file__).resolve().is_relative_to(root):
        sys.exit(f"msgstorm was imported from {msgstorm.__file__}, not from {root}")
    warm_up = bench.parse_scenario(
        (root / "examples" / "flash-crash.toml").read_text() + bench.MARKET.format(accounts=100, keepers=2, race="true"),
        source="flash-crash.toml", base_dir=root / "examples", overrides=['run.duration="1s"', 'run.drain="1s"'])
    with tempfile.TemporaryDirectory() as directory:
        msgstorm.run(warm_up, Path(directory) / "run")
    for name in args.runs:
        scenario = (bench._scenario(name != "plain", 200, 2, race=name != "split", smoke=True) if args.smoke
                    else bench._scenario(name != "plain", 10_000, 20, race=name != "split"))
        with tempfile.TemporaryDirectory() as directory:
            cpu_before, wall_before = _cpu_s(), time.perf_counter()
            msgstorm.run(scenario, Path(directory) / "run")
            cpu_s, wall_s = _cpu_s() - cpu_before, time.perf_counter() - wall_before
        print(f"{root.name} {name}: cpu {cpu_s:.2f} s, wall {wall_s:.2f} s", flush=True)


if __name__ == "__main__":
    main()
