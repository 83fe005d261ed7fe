"""The safe-leverage search by probe books against the search by whole runs, one after the other.

    python benchmarks/safe_leverage.py                         # black-thursday, 0.1%, 1:8, 95%
    python benchmarks/safe_leverage.py --scenario examples/leverage-latency.toml --range 2:19.5 \\
        --set 'network.latency={"us-east/ap-northeast"="1s"}' --confidence 90%
    python benchmarks/safe_leverage.py --only probes           # the probe search alone
    python benchmarks/safe_leverage.py --smoke                 # the searches tiny: that they run (CI)
    python benchmarks/safe_leverage.py --venues                # each venue example, 0.1%, 1:19, --method auto

Each search is the command line itself (``python -m msgstorm safe-leverage``) in a fresh
process, into a new directory, timed from outside (wall seconds, and the runs and answer read
back from its ``safe_leverage.json``): ``--method probes`` (probe books at 24 leverages ride
along each run, seeds added in looks until the answer is decided) and ``--method runs`` (the
search before it: whole runs at each leverage, ``--seeds`` of them, a grid and bisections);
``--only bisect`` the whole runs of ``--method bisect`` (each seed's critical leverage by
bisection over the probe search's grid, seeds in its looks).
The target: the probe search prints a leverage shown within budget at 95% in at most 90 s
on two cores. The ratio line divides the runs method's wall time by the probes method's.
``--venues``: each venue example (``VENUES``: partial closes with a fund and ADL, a Dutch
auction, a close factor, cross margin) at ``--budget 0.1% --range 1:19`` with the method
``auto`` chooses, its wall and runs (deterministic: the same on any machine) against the
target of at most 20 s and 100 runs.
``--smoke`` runs the three searches as small as they go: black-thursday cut to 2 s (and 2 s
of drain), leverages 1 to 2 at 50% confidence, one seed a leverage, at most two probe runs,
a grid of 4 for the bisection.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENUES = ("venue-partial", "venue-dutch", "venue-close-factor", "venue-cross")


def search(method: str, args: argparse.Namespace, out: Path) -> dict[str, object]:
    command = [sys.executable, "-m", "msgstorm", "safe-leverage", args.scenario, "--budget", args.budget,
               "--confidence", args.confidence, "--range", args.range, "--method", method, "--out", str(out)]
    if method == "runs":
        command += ["--seeds", str(args.seeds)]
    elif method == "bisect" and args.smoke:
        command += ["--grid-points", "4"]
    elif args.smoke:
        command += ["--max-runs", "2"]
    for value in args.set:
        command += ["--set", value]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    wall = time.monotonic() - started
    document = json.loads((out / "safe_leverage.json").read_text())
    (curve,) = document["curves"]
    chosen = document["method"]
    runs = (curve["runs"] if chosen == "probes" else curve["whole_runs"] if chosen == "bisect"
            else sum(point["runs"] for point in curve["points"]))
    pilot = curve.get("pilot_seeds", 0) if chosen == "probes" else 0
    return {"method": chosen, "wall_s": wall, "runs": runs + pilot, "answer": curve["safe_leverage"],
            "boundary": curve["boundary"], "note": curve["note"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="examples/black-thursday.toml")
    parser.add_argument("--budget", default="0.1%")
    parser.add_argument("--confidence", default="95%")
    parser.add_argument("--range", default="1:8")
    parser.add_argument("--seeds", type=int, default=10, help="the runs method's seeds a leverage (its default)")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--only", choices=("probes", "runs", "bisect"))
    parser.add_argument("--venues", action="store_true",
                        help="each venue example at --budget 0.1%% --range 1:19 (method auto) against 20 s, 100 runs")
    parser.add_argument("--smoke", action="store_true",
                        help="both searches tiny (2 s runs, 1:2 at 50%%, one seed): that the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.confidence, args.range, args.seeds = "50%", "1:2", 1
        args.set = ['run.duration="2s"', 'run.drain="2s"', *args.set]
    if args.venues:
        venues(args)
        return
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for method in [args.only] if args.only else ["probes", "runs", "bisect"] if args.smoke else ["probes", "runs"]:
            result = search(method, args, Path(scratch) / method)
            results.append(result)
            print(f"{method:>6}: {result['wall_s']:7.1f} s  {result['runs']:4} runs  answer "
                  f"{result['answer'] if result['answer'] is not None else 'none shown'}  boundary "
                  f"{result['boundary']}" + (f"  ({result['note']})" if result["note"] else ""), flush=True)
    if len(results) >= 2:
        probes, runs = results[:2]
        print(f"ratio (runs method wall / probes method wall): {runs['wall_s'] / probes['wall_s']:.2f}x; "
              f"runs {runs['runs']} / {probes['runs']}; load average now {os.getloadavg()[0]:.2f}")


def venues(args: argparse.Namespace) -> None:
    """Each venue example with the method ``auto`` chooses, against the target."""
    args.budget, args.range = "0.1%", "1:19"
    with tempfile.TemporaryDirectory() as scratch:
        for venue in VENUES:
            args.scenario = f"examples/{venue}.toml"
            result = search("auto", args, Path(scratch) / venue)
            kept = result["wall_s"] <= 20 and result["runs"] <= 100
            print(f"{venue:>18} ({result['method']}): {result['wall_s']:7.1f} s  {result['runs']:4} runs  answer "
                  f"{result['answer'] if result['answer'] is not None else 'none shown'}  target 20 s, 100 runs: "
                  f"{'kept' if kept else 'NOT kept'}; load average {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
