"""A probe book's calls made many at once against one by one, in one process.

    python benchmarks/probe_calls.py                   # venue-partial, accounts at 4x, 3 pairs
    python benchmarks/probe_calls.py --scenario examples/venue-close-factor.toml --accounts 8
    python benchmarks/probe_calls.py --smoke           # 200 accounts, 3 s, one pair: that it runs (CI)

A run of the scenario with probe books at the safe-leverage search's grid (24 leverages over
1 to 19, ``market.probes.leverages``) and every account at ``--accounts``, as a search's run
is made: first once to warm the compiled code, then in pairs, the book's calls made many at
once (``ProbeBook.batched``, the default) and one by one, alternating, each timed by CPU.
Prints each run's CPU seconds and probe rows, the median ratio one-by-one / at-once, and
whether the two ``probe_executions`` tables are the same row for row (they must be:
``tests/test_market_probe_calls.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from msgstorm.history.reader import read_table  # noqa: E402
from msgstorm.market.probes import ProbeBook  # noqa: E402
from msgstorm.runner import run  # noqa: E402
from msgstorm.scenario import load_scenario  # noqa: E402
from msgstorm.sweep.grid import toml_value  # noqa: E402
from msgstorm.sweep.leverage import uniform_leverage  # noqa: E402
from msgstorm.sweep.leverage_probes import GRID_POINTS, probe_grid  # noqa: E402


def one_run(scenario: str, sets: list[str], batched: bool, out: Path) -> tuple[float, pa.Table]:
    """CPU seconds of one run with the calls made so, and its probe table."""
    ProbeBook.batched = batched
    loaded = load_scenario(scenario, sets)
    started = time.process_time()
    run(loaded, out, overwrite=True, write_report=False, durable=False)
    return time.process_time() - started, read_table(out / "history", "probe_executions")


def same(left: pa.Table, right: pa.Table) -> bool:
    """Row for row, NaN beside NaN."""
    if left.schema != right.schema or len(left) != len(right):
        return False
    for name in left.column_names:
        a, b = left[name].to_numpy(zero_copy_only=False), right[name].to_numpy(zero_copy_only=False)
        equal = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
        if not bool(np.all(equal)):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="examples/venue-partial.toml")
    parser.add_argument("--accounts", type=float, default=4.0, help="every account's leverage (default 4)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="200 accounts, 3 s of the scenario, one pair")
    args = parser.parse_args()
    scenario = str(ROOT / args.scenario) if not Path(args.scenario).is_absolute() else args.scenario
    groups = len(load_scenario(scenario).market.accounts)  # type: ignore[union-attr]
    sets = [*uniform_leverage(groups, args.accounts),
            f"market.probes.leverages={toml_value(probe_grid(1.0, 19.0, GRID_POINTS))}"]
    if args.smoke:
        args.pairs = 1
        sets += ['run.duration="3s"', 'run.drain="1s"', "market.accounts.0.count=200"]
    with tempfile.TemporaryDirectory() as scratch:
        one_run(scenario, sets, True, Path(scratch) / "warm")
        ratios, agree = [], True
        for pair in range(1, args.pairs + 1):
            at_once, rows = one_run(scenario, sets, True, Path(scratch) / f"at-once-{pair}")
            one_by_one, rows_alone = one_run(scenario, sets, False, Path(scratch) / f"one-by-one-{pair}")
            agree &= same(rows, rows_alone)
            ratios.append(one_by_one / at_once)
            print(f"pair {pair}: at once {at_once:.2f} s CPU, one by one {one_by_one:.2f} s CPU, "
                  f"{len(rows):,} probe rows", flush=True)
    print(f"{Path(args.scenario).name}, accounts at {args.accounts:g}x, probe books at {GRID_POINTS} leverages: "
          f"one by one / at once, median over {args.pairs} pairs: {statistics.median(ratios):.2f}x; "
          f"probe tables {'the same' if agree else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
