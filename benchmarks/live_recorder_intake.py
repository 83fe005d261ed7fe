"""CPU time of the live recorder's intake while a run goes (``LiveRecorder.take_windows``).

Place: a script run by hand. Without ``[live] record_every`` the target hands its new
traffic windows to the recorder's thread once a second; that thread competes with the
generator for the interpreter, so its work is the generator's loss. This feeds a recorder
the windows of ``examples/live-nats-ramp.toml`` (4.9M messages), one window a call, five
times, and prints the best CPU time. Run it with an earlier checkout's ``src`` on
``PYTHONPATH`` for a before and after, side by side.

    python benchmarks/live_recorder_intake.py
    python benchmarks/live_recorder_intake.py --smoke   # the ramp's first second, once: that it runs (CI)
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time
from pathlib import Path

import numpy as np

from msgstorm.history.writer import HistoryWriter
from msgstorm.live.recorder import LiveRecorder
from msgstorm.scenario.loader import load_scenario
from msgstorm.traffic.generate import generate_traffic

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "live-nats-ramp.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="the ramp's first second, fed once: that the script runs, not a measure")
    args = parser.parse_args()
    scenario = load_scenario(EXAMPLE, ['run.duration="1s"'] if args.smoke else [])
    repeats = 1 if args.smoke else 5
    seed = np.random.SeedSequence(scenario.run.seed).spawn(2)[0]
    windows = [(batch, np.full(len(batch), 5, dtype=np.int64))
               for batch in generate_traffic(scenario, seed, window_ns=scenario.run.window)]
    # An earlier recorder took no ``remake`` (it copied the whole schedule).
    extra = {"remake": lambda: iter([])} if "remake" in inspect.signature(LiveRecorder).parameters else {}
    seconds = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="msgstorm-intake-") as directory:
            writer = HistoryWriter(Path(directory) / "history")
            recorder = LiveRecorder(writer, ["ramp"], ["consumer-0"], False, 1, **extra)
            started = time.process_time()
            for window in windows:
                recorder.take_windows([window], [])
            seconds.append(time.process_time() - started)
            writer.close()
    print(f"{sum(len(batch) for batch, _ in windows):,} messages: take_windows CPU, best of {repeats}: "
          f"{min(seconds):.3f} s (runs {', '.join(f'{s:.3f}' for s in seconds)})")


if __name__ == "__main__":
    main()
