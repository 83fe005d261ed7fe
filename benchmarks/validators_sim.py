"""CometBFT's 200-node QA testnet in the shadow network: how long its virtual minutes take.

Run by hand (CI runs ``--duration 2s``, a smoke run):

    python benchmarks/validators_sim.py                      # 10 minutes of virtual time
    python benchmarks/validators_sim.py --duration 30s       # the 30 s docs/networks.md reports, and its peer
    python benchmarks/validators_sim.py --duration 30s --no-peer
    python benchmarks/validators_sim.py --duration 2min --peer
    python benchmarks/validators_sim.py --set 'gossip.degree=8'     # any scenario override

The scenario is the TOML of docs/networks.md's section "CometBFT's 200-node QA testnet"
(read from there: 200 nodes, 175 validators on ``consensus = "tendermint"``, 400 tx/s of
1,024 B, a degree-6 mesh), its ``run.duration`` set to ``--duration``. The issue's target
(issue 46): 10 minutes of virtual time in under 1 minute.

Each run is a fresh process (``--child``) that loads the scenario, builds the shadow
network, loads the compiled kernel, and times the run as ``msgstorm run`` spends it on the
simulation: traffic, ``ShadowNetwork.run`` and ``finish`` with the history written to a
temporary directory (imports, analysis and reports are left out; ``python -m msgstorm run``
adds about 3 s of them). It prints the wall time, the events (gossip kernel events, and of
them the receipts of transactions and of consensus items), the heights committed and the
child's CPU time (user + sys, the whole process: imports and the history's writer thread
too; the steadier number on a shared machine) and peak RSS (``wait4``).

The peer, in the same run: the same network and load without round-based consensus, its
175 validators finalising by ``finality = "votes"`` (one vote each per block, sim/votes.py)
on proof-of-stake slots of 1 s (``rule = "pos"``); the line under the table gives the
ratio of the two wall times. The peer runs by default up to 1 minute of virtual time (it is
the slower of the two: 10 minutes of it take over 10 minutes here), with ``--peer`` at any
length. A warm numba cache is assumed (run once after a code change).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = ROOT / "docs" / "networks.md"
SECTION = "## CometBFT's 200-node QA testnet"
# The peer: the same validators finalising by votes on 1 s proof-of-stake slots.
PEER = ['blocks.producers.rule="pos"', 'blocks.producers.finality="votes"', 'blocks.interval="1s"']


def qa_toml() -> str:
    """The QA testnet's TOML, the first ```toml block after SECTION's heading."""
    text = NETWORKS.read_text()
    start = text.find(SECTION)
    if start < 0:
        raise SystemExit(f"{NETWORKS}: no section {SECTION!r}")
    found = re.search(r"```toml\n(.*?)```", text[start:], re.S)
    if found is None:
        raise SystemExit(f"{NETWORKS}: no ```toml block in {SECTION!r}")
    return found.group(1)


def _child(duration: str, sets: list[str], peer: bool) -> None:
    """The timed run, in this process: prints wall s, kernel events, receipts, block
    receipts, Python events and heights."""
    import numpy as np

    from msgstorm.history import HistoryWriter
    from msgstorm.scenario import load_scenario
    from msgstorm.sim import kernel as k
    from msgstorm.sim.shadow import ShadowNetwork
    from msgstorm.traffic import generate_traffic

    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / "qa-200.toml"
        text = qa_toml()
        if peer:
            text = text.replace('consensus = "tendermint"\n', "")
            sets = [*PEER, *sets]
        path.write_text(text)
        scenario = load_scenario(path, [f'run.duration="{duration}"', *sets])
        writer = HistoryWriter(Path(out) / "history")
        traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
        sim = ShadowNetwork(scenario, writer, sim_seed)
        sim.gossip.run(0)  # the compiled kernel loaded before the clock starts
        start = time.perf_counter()
        sim.run(generate_traffic(scenario, traffic_seed))
        sim.finish()
        wall = time.perf_counter() - start
        writer.close()
        chain = sim.chain
        consensus = getattr(chain, "consensus", None)
        heights = len(consensus.decided) if consensus is not None else len(getattr(chain, "canonical", [0])) - 1
    gossip = sim.gossip
    print(f"{wall:.3f} {gossip.steps} {gossip.receipts} {int(gossip.scalars[k.S_BLOCK_RECEIPTS])} {heights}")


def run(duration: str, sets: list[str], peer: bool) -> tuple[float, float, int, int, int, int, float]:
    """One child: wall s, the process's CPU s, kernel events, receipts, consensus receipts,
    heights, peak RSS (MB)."""
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep))
    command = [sys.executable, __file__, "--child", "--duration", duration, *[f"--set={s}" for s in sets],
               *(["--as-peer"] if peer else [])]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, env=env, stdout=out)
        _, status, usage = os.wait4(process.pid, 0)
        if status != 0:
            raise SystemExit(f"{' '.join(command)} failed with status {status}")
        out.seek(0)
        fields = out.read().decode().split()
    wall, steps, receipts, block_receipts, heights = float(fields[0]), *map(int, fields[1:])
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, steps, receipts, block_receipts, heights, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="10min", help="virtual time (run.duration), default 10min")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a scenario override")
    parser.add_argument("--no-peer", action="store_true", help="only the tendermint run")
    parser.add_argument("--peer", action="store_true", help="the peer too, at any duration (default: up to 1 min)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--as-peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.duration, args.set, args.as_peer)
        return
    from msgstorm.scenario.units import parse_duration_ns

    with_peer = not args.no_peer and (args.peer or parse_duration_ns(args.duration) <= 60_000_000_000)
    cases = [("tendermint", False)] + ([("votes (peer)", True)] if with_peer else [])
    print(f"CometBFT QA testnet, 200 nodes, 175 validators, 400 tx/s, {args.duration} virtual")
    print(f"{'case':<14} {'wall s':>8} {'CPU s':>7} {'events':>13} {'tx receipts':>13} {'consensus rcpt':>15} "
          f"{'heights':>8} {'peak RSS MB':>12}")
    walls = {}
    for name, peer in cases:
        wall, cpu, steps, receipts, block_receipts, heights, rss = run(args.duration, args.set, peer)
        walls[name] = wall
        print(f"{name:<14} {wall:>8.2f} {cpu:>7.1f} {steps:>13,} {receipts:>13,} {block_receipts:>15,} {heights:>8,} "
              f"{rss:>12.0f}", flush=True)
    if len(walls) == 2:
        print(f"tendermint / votes wall: {walls['tendermint'] / walls['votes (peer)']:.2f}x")
    if parse_duration_ns(args.duration) == 600_000_000_000:
        verdict = "met" if walls["tendermint"] < 60 else "NOT MET"
        print(f"target: 10 minutes virtual in under 60 s wall: {verdict} ({walls['tendermint']:.1f} s)")


if __name__ == "__main__":
    main()
