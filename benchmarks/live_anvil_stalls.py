"""Where the chain target's send lag comes from: the event loop's long callbacks during a run.

Run by hand (needs anvil, as ``benchmarks/live_anvil.py``); CI runs a 1 s run at 50/s:

    python benchmarks/live_anvil_stalls.py --rate 250
    python benchmarks/live_anvil_stalls.py --rate 50 --duration 1s   # CI's: that the script runs

It runs the ``src/`` beside it (as ``live_anvil.py`` does): to watch another version, copy
this file into that checkout's ``benchmarks/`` and run it there.

One anvil on loopback (the settings of ``live_anvil.py``), one ``msgstorm run`` of a constant
rate from this process, with every callback the event loop runs timed (asyncio's
``Handle._run`` wrapped: a few hundred ns a callback, so the lags it prints are a little
above an unwatched run's). The run's event loop runs in the recording's process, a child
forked from this one (``live/apart.py``) that inherits the wrapper: each callback over the
limit is written from there to a file this process reads after the run. A callback that runs
longer than ``--over-ms`` delays every send due meanwhile; the table names them by the
coroutine they step (``Lifecycle._main`` is the sender itself, its writes included), with
their count, mean and longest wall time, and the run's send lag beside it. Wall time includes the time the thread was off its core: on a
loaded machine a 20 us callback that is preempted shows as milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_anvil import SCENARIO  # noqa: E402  (it puts this checkout's src/ first on the path)

from msgstorm.live.chain.anvil import AnvilNode, find_anvil  # noqa: E402
from msgstorm.live.servers import ManagedServer, free_port  # noqa: E402
from msgstorm.runner import run  # noqa: E402
from msgstorm.scenario import parse_scenario  # noqa: E402


def _watch(over_ns: int, log: Path) -> None:
    """Time every callback an event loop runs, in this process and in those forked from it
    (the run's recording); each over ``over_ns`` is appended to ``log`` as a line, one write
    on a descriptor opened here and inherited by the fork."""
    original = asyncio.events.Handle._run
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def timed(handle: Any) -> None:
        started = time.monotonic_ns()
        original(handle)
        took = time.monotonic_ns() - started
        if took > over_ns:
            task = getattr(handle._callback, "__self__", None)
            # Named by qualified name only: a repr of a live object (a response half read)
            # may touch state its callback has not finished with.
            name = (getattr(task.get_coro(), "__qualname__", "?") if isinstance(task, asyncio.Task)
                    else getattr(handle._callback, "__qualname__", None) or type(handle._callback).__qualname__)
            os.write(fd, f"{took} {name}\n".encode())

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def _slow(log: Path) -> list[tuple[int, str]]:
    """(wall ns, what it stepped) of each callback ``_watch`` wrote to ``log``."""
    found = []
    for line in log.read_text().splitlines():
        took, name = line.split(" ", 1)
        found.append((int(took), name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--duration", default="3s")
    parser.add_argument("--over-ms", type=float, default=0.2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="msgstorm-stalls-"))
    port = free_port()
    template = parse_scenario(SCENARIO.format(duration="1s", url="http://127.0.0.1:1", rate=1), source="bench.toml")
    node = ManagedServer("anvil", AnvilNode(template, work).argv(find_anvil(), port) + ["--silent"], port,
                         work / "node", 60)
    node.start()
    try:
        scenario = parse_scenario(SCENARIO.format(duration=args.duration, url=f"http://127.0.0.1:{port}",
                                                  rate=args.rate), source="bench.toml")
        _watch(round(args.over_ms * 1e6), work / "callbacks.log")
        result = run(scenario, work / "run", write_report=False)
        slow = _slow(work / "callbacks.log")
        summary = json.loads((result.run_dir / "summary.json").read_text())
        print(f"msgstorm from {Path(sys.modules['msgstorm'].__file__ or '').parent.parent}")
        print(f"rate {args.rate}/s for {args.duration}, load average {os.getloadavg()[0]:.1f}: send lag "
              f"{summary['generator']['send_lag_ms']}, committed {summary['messages']['committed']}")
        count: collections.Counter[str] = collections.Counter()
        total: collections.Counter[str] = collections.Counter()
        longest: dict[str, int] = {}
        for took, name in slow:
            count[name] += 1
            total[name] += took
            longest[name] = max(longest.get(name, 0), took)
        print(f"callbacks over {args.over_ms} ms: {len(slow)}")
        for name, n in count.most_common(12):
            print(f"  {n:6d}  mean {total[name] / n / 1e6:6.2f} ms  max {longest[name] / 1e6:7.2f} ms  {name}")
    finally:
        node.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
