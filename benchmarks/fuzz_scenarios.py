"""Fuzz msgstorm's input handling at length: thousands of mutated example scenarios.

Place: a script run by hand (CI runs the same property, derandomised, a few hundred cases, in
tests/test_fuzz_scenarios.py). Each case mutates a shipped example (see tests/fuzz_scenarios.py),
runs ``msgstorm validate`` and, when it validates, a short capped ``msgstorm run``, and checks
that it ended with exit 0, 1 or 2, in bounded time, with no traceback. Prints the count of cases
by outcome and every problem found, with the mutations that led to it.

    python benchmarks/fuzz_scenarios.py --cases 10000 [--seed N]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fuzz_scenarios import check_case, mutated_scenarios, problem  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    args = parser.parse_args()
    outcomes: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    started = time.perf_counter()

    @settings(max_examples=args.cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=mutated_scenarios())
    def one(case: tuple[str, list[object], dict[str, object]]) -> None:
        example, mutations, root = case
        with tempfile.TemporaryDirectory() as workdir:
            ran = check_case(root, Path(workdir))
        outcomes[" then ".join(f"{o.command.split()[0]} exit {o.exit_code}" for o in ran) or "not TOML"] += 1
        for outcome in ran:
            found = problem(outcome)
            if found:
                problems.append(f"{example} with {mutations}: {found}")

    if args.seed is not None:
        one = seed(args.seed)(one)
    one()
    total = sum(outcomes.values())
    print(f"{total} cases in {time.perf_counter() - started:.0f} s; problems: {len(problems)}")
    for label, count in outcomes.most_common():
        print(f"  {count:>6}  {label}")
    for found in problems:
        print(f"PROBLEM {found}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
