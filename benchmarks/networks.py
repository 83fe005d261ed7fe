"""The Bitcoin preset as a user times it: ``msgstorm run examples/bitcoin.toml`` as a whole
process (imports, traffic, gossip engine, history, analysis, summary.json, report files),
its wall time, CPU time (user + sys) and peak RSS, and the block arrival statistics and
stale blocks of the run it wrote.

Run by hand (CI runs ``--quick --nodes 100``, a smoke run):

    python benchmarks/networks.py              # 6,000 nodes to height 30 (255 minutes: 31 blocks)
    python benchmarks/networks.py --quick      # 6,000 nodes, 1 hour (about 6 blocks)
    python benchmarks/networks.py --nodes 10000 --keep DIR
    python benchmarks/networks.py --cold       # an empty numba cache: the first run after install
    python benchmarks/networks.py --set 'blocks.header_size=1000000'   # any scenario override
    python benchmarks/networks.py --big        # 10,000 nodes, 1 MB blocks, 2,000 transactions/s, 10 minutes,
                                               # a relay sample of one in 10,000 (--sample)

The default run is SimBlock's workload (``END_BLOCK_HEIGHT = 30``): the preset until its
chain is 30 blocks high, ``run.duration="255min"`` (seed 2015 makes height 30 at 252.5
minutes; with one stale block, 31 blocks).

``--big`` is the preset with ``network.total_nodes=10000``, ``agents.0.count=10000``,
``blocks.header_size=1000000``, ``run.duration="10min"`` and ``agents.0.arrival.rate="720/h"``
(2,000 transactions a second over the network: 1.2 million), relayed with
``network.relay.sample`` (docs/networks.md, "A relay sample"), on links and CPUs that carry
that load: serial 100 Mbit/s uplinks and 100 µs of processing a message (the preset's held
uplinks and 2 ms would not: the run is refused, scenario/sample_load.py), and traffic
windows of 10 s (the unsampled load is set window by window). The preset's
blocks come every 10 minutes: seed 2015 makes none within the 12 minutes, so
``--set 'blocks.interval="1min"'`` gives the run blocks to relay.

Blocks: every node mines (``[blocks.producers]``, proof of work), one block every 10 minutes
over the network. The wall time is the process's, started fresh; CPU time and peak RSS are
what the kernel reports for the child (``wait4``): on a shared machine CPU time is the
steadier of the two. A warm numba cache is assumed (run once before timing after a code
change); ``--cold`` points the run at an empty ``NUMBA_CACHE_DIR`` instead, so it compiles
every loop it uses, as the first run after install does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "examples" / "bitcoin.toml"


def timed(command: list[str], cwd: Path, extra_env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``command``; its wall time (s), CPU time (user + sys, s) and peak RSS (MB)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | extra_env
    if env.get("PYTHONPATH"):  # the child runs elsewhere: keep a relative PYTHONPATH=src meaning this tree
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep))
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed with status {status}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def arrivals(run_dir: Path) -> tuple[list[np.ndarray], int]:
    """Each block's arrival times (s after its making) at the nodes that validated it, and
    how many blocks ended off the canonical chain."""
    from msgstorm.history import read_history

    history = read_history(run_dir)
    blocks = history.table("blocks").to_pydict()
    made = dict(zip(blocks["block"], blocks["t_produced"], strict=True))
    rows = history.table("block_arrivals").to_pydict()
    by_block: dict[int, list[int]] = {}
    for block, t in zip(rows["block"], rows["t"], strict=True):
        by_block.setdefault(block, []).append(t - made[block])
    return [np.asarray(times) / 1e9 for times in by_block.values()], blocks["canonical"].count(False)


def messages(run_dir: Path) -> str:
    """The ``messages`` table's rows by status, and the ``deliveries`` rows."""
    from collections import Counter

    from msgstorm.history import read_history

    history = read_history(run_dir)
    statuses = Counter(history.table("messages").column("status").to_pylist())
    return (", ".join(f"{count:,} {status}" for status, count in sorted(statuses.items()))
            + f"; {history.table('deliveries').num_rows:,} delivery rows")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 hour of virtual time (about 6 blocks)")
    parser.add_argument("--nodes", type=int, default=6000, help="network.total_nodes (and one miner per node)")
    parser.add_argument("--keep", type=Path, help="keep the run in this directory")
    parser.add_argument("--cold", action="store_true", help="an empty numba cache (every loop compiled)")
    parser.add_argument("--big", action="store_true",
                        help="10,000 nodes, 1 MB blocks, 2,000 transactions/s for 10 minutes, a relay sample")
    parser.add_argument("--sample", type=float, default=0.0001, help="--big: network.relay.sample")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a further scenario override (after the ones above), as msgstorm run --set")
    args = parser.parse_args()
    duration = "10min" if args.big else "1h" if args.quick else "255min"
    if args.big:
        args.nodes = 10000
        args.set = ["blocks.header_size=1000000", 'agents.0.arrival.rate="720/h"',
                    f"network.relay.sample={args.sample}", 'network.uplink="serial"', "network.upload={}",
                    "network.download={}", 'network.bandwidth="100Mbit/s"', 'network.processing="100us"',
                    'run.window="10s"', *args.set]
    work = Path(tempfile.mkdtemp(prefix="msgstorm-networks-"))
    extra_env = {"NUMBA_CACHE_DIR": str(work / "numba-cache")} if args.cold else {}
    try:
        overrides = [f'run.duration="{duration}"', f"network.total_nodes={args.nodes}", f"agents.0.count={args.nodes}",
                     *args.set]
        command = [sys.executable, "-c", "from msgstorm.cli import main; main()", "run", str(PRESET), "-q",
                   "--out", "run", "--overwrite"]
        for override in overrides:
            command += ["--set", override]
        wall, cpu, rss = timed(command, work, extra_env)
        blocks, stale = arrivals(work / "run")
        cache = "an empty numba cache" if args.cold else "a warm numba cache"
        if args.set:
            cache += ", --set " + " ".join(args.set)
        print(f"msgstorm run examples/bitcoin.toml, {args.nodes:,} nodes, {duration}, {cache}: {len(blocks)} blocks, "
              f"{stale} stale, wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {rss:.0f} MB")
        if blocks:
            every = np.concatenate(blocks)
            print(f"block arrival: median {np.median(every):.2f} s, p90 {np.percentile(every, 90):.2f} s, "
                  f"every node (mean over blocks) {np.mean([b.max() for b in blocks]):.2f} s; "
                  f"blocks reaching every node: {sum(len(b) == args.nodes for b in blocks)}/{len(blocks)}")
        print(f"messages: {messages(work / 'run')}")
        if args.keep is not None:
            shutil.copytree(work / "run", args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
