"""A rollup day: 24 h of virtual time, a 4 blocks/s L2 at 200 transactions/s, batches every
minute, L1 slots behind it; the wall time and peak memory of ``msgstorm run`` on it.

    python benchmarks/rollup.py               # the day (issue 47's target: under 2 min and 1 GB)
    python benchmarks/rollup.py --hours 2     # a shorter day, to see how it scales

It runs the scenario below as ``msgstorm run`` does (the allocator set as the command sets it,
``heap.keep_freed_memory``; history, summary.json and the report's files) and prints the wall
time of run and analysis and the process's peak resident memory (``ru_maxrss``), read as
soon as the run returns; then the rollup stage alone, run again for its time (after the peak
was read: its second run's arrays would otherwise count in it).
"""

from __future__ import annotations

# The allocator and Arrow's pool as the command has them, before anything loads pyarrow.
from msgstorm.heap import keep_freed_memory  # isort: skip

import argparse
import resource
import tempfile
import time
from pathlib import Path

from msgstorm.history.reader import History
from msgstorm.scenario.loader import parse_scenario
from msgstorm.scenario.schema import Scenario
from msgstorm.sim.rollup.stage import commit_rows, run_rollup

SCENARIO = """
[run]
name = "rollup-day"
seed = 47
duration = "{hours}h"
drain = "10s"
window = "1min"
sample_interval = "10s"

[network]
nodes_per_region = 1
processing = "20us"

[sequencer]
service = "200us"

[blocks]
max_messages = 10000

[rollup]
preset = "arbitrum-one"
batcher = {{ max_delay = "1min", max_size = 1179648, data = "blobs" }}  # 9 blobs: about a batch a minute
l1 = {{ background_blobs = 0 }}

[limits]
max_wall_time = "2h"

[[agents]]
name = "traders"
role = "trader"
arrival = {{ process = "poisson", rate = "200/s" }}
size = "200B"
"""


def scenario(hours: float, rollup: bool = True) -> Scenario:
    text = SCENARIO.format(hours=hours)
    return parse_scenario(text if rollup else _without_rollup(text), source="benchmarks/rollup.py")


def _without_rollup(text: str) -> str:
    """The scenario with its [rollup] table out and the L2 block time it gave written in [blocks]."""
    head, rest = text.split("[rollup]", 1)
    tail = rest[rest.index("[limits]"):]
    return head.replace("[blocks]", '[blocks]\ninterval = "250ms"') + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\\n\\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--no-rollup", action="store_true", help="the same L2 day without [rollup] (the baseline)")
    args = parser.parse_args()
    keep_freed_memory()
    from msgstorm.runner import run

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = run(scenario(args.hours, not args.no_rollup), Path(tmp) / "run", durable=False)
        total = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if args.no_rollup:
            print(f"{args.hours:g} h without [rollup]: run, analysis and report {total:.1f} s; peak memory {peak_mib:,.0f} MiB")
            return
        history = History(directory=Path(tmp) / "run" / "history")
        spec = result.scenario.rollup
        assert spec is not None
        rollup_started = time.perf_counter()
        rollup = run_rollup(history, spec)
        rows = sum(len(part["msg_id"]) for part in commit_rows(history, rollup))
        rollup_s = time.perf_counter() - rollup_started
        summary = result.summary
    print(f"{args.hours:g} h: {summary['messages']['committed']:,} messages committed, "
          f"{len(rollup.batches.t_closed):,} batches, {len(rollup.l1.slot):,} L1 blocks, {rows:,} commit rows")
    print(f"wall: run, analysis and report {total:.1f} s (the rollup stage alone, again: {rollup_s:.1f} s); "
          f"peak memory {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
