"""The core-NATS knee with signed messages against unsigned ones, in one run.

Run by hand (nats-server comes with msgstorm's install); CI runs ``--smoke``:

    python benchmarks/live_signing.py            # about a minute
    python benchmarks/live_signing.py --quick    # shorter steps
    python benchmarks/live_signing.py --smoke    # five 200 ms steps a scheme: that it runs

First ``msgstorm calibrate crypto``'s measurement (into a temporary file the runs then use):
what signing and verifying one 128-byte message costs with each scheme on this machine. Then
three step ramps of ``target = "nats"`` (the wire client, publisher and one consumer in
msgstorm's process, beside one nats-server msgstorm starts): ``[security] scheme`` none,
hmac-sha256 and ed25519. Signed, every message is signed as its PUB frame is built and
verified as the consumer reads it (``live/signing.py``), in the one Python thread that also
sends and receives: one message costs that thread about sign + verify, so the knee falls to
near ``1 / (sign + verify)`` once that is below what the thread does unsigned. Each ramp's
steps are placed around that estimate (from 10% to 150% of it; the unsigned ramp as
``examples/live-nats-ramp.toml``), and the knee is the analysis's (throughput >= 95% of
offered, p99 <= 5 x the low-load p99). Prints one line per scheme.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from msgstorm.runner import run
from msgstorm.scenario import parse_scenario
from msgstorm.security.costs import COSTS_ENV, measure, save_costs

RAMP = """
target = "nats"

[run]
name = "signing-{scheme}"
seed = 5
duration = "{duration_ms}ms"
drain = "3s"
window = "500ms"

[live]
consumers = 1

[security]
scheme = "{scheme}"

[analysis]
knee_latency_factor = 5.0
throughput_fraction = "95%"

[[agents]]
name = "ramp"
role = "trader"
arrival = {{ process = "step_ramp", start = "{start}/s", step = "{step}/s", every = "{every_ms}ms", steps = {steps} }}
size = "128B"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 ms steps instead of 500 ms")
    parser.add_argument("--smoke", action="store_true",
                        help="five 200 ms steps a scheme, the unsigned ramp from 20,000/s: that the script runs")
    args = parser.parse_args()
    every_ms = 200 if args.smoke else 300 if args.quick else 500
    with tempfile.TemporaryDirectory() as tmp:
        path = save_costs(measure(), Path(tmp) / "crypto-costs.json")
        os.environ[COSTS_ENV] = str(path)
        costs = json.loads(path.read_text())["schemes"]
        print(f"calibration ({path.name}): " + "; ".join(
            f"{name} sign {c['sign_ns'] / 1e3:.2f} us, verify {c['verify_ns'] / 1e3:.2f} us" for name, c in costs.items()))
        for scheme in ("none", "hmac-sha256", "ed25519"):
            if scheme == "none":
                start, step, steps = (20_000, 20_000, 5) if args.smoke else (50_000, 100_000, 14)
            else:
                # The thread's estimate: sign + verify per message, plus what it does unsigned.
                estimate = 1e9 / (costs[scheme]["sign_ns"] + costs[scheme]["verify_ns"] + 2_000)
                start, step, steps = round(0.1 * estimate), round(0.1 * estimate), 5 if args.smoke else 15
            text = RAMP.format(scheme=scheme, start=start, step=step, steps=steps, every_ms=every_ms,
                               duration_ms=every_ms * steps)
            result = run(parse_scenario(text, source=f"signing-{scheme}.toml"), Path(tmp) / scheme, write_report=False)
            capacity = result.summary.get("capacity") or {}
            knee = capacity.get("knee_rate_per_s")
            limited = capacity.get("limited_by")
            print(f"{scheme:12s} knee {'-' if knee is None else f'{knee:,.0f}/s':>12s}  (ramp {start:,}/s + "
                  f"{step:,}/s x {steps - 1}; limited by {limited}); {capacity.get('method', '')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
