"""Peak memory of each msgstorm process of one run, servers left out.

Run by hand (CI runs it on ``examples/live-zmq.toml --set 'run.duration="1s"'``, a smoke run):

    python benchmarks/live_memory.py examples/live-cometbft.toml [msgstorm run options...]

Runs ``python -m msgstorm run FILE --out TMP ...`` and, every 50 ms until it ends, reads the
resident set (``VmRSS`` of ``/proc/PID/status``) of every Python process in its process tree:
msgstorm's own, its child processes (generator, consumers, the route proxy, the analysis
apart). The servers it starts (brokers, nodes, validators) are not Python and are left out:
their memory is theirs, not msgstorm's. Prints each process's peak, largest first, and the
largest against the 500 MB a live process may take, with the messages the run sent of its
schedule. Sampling, not ``ru_maxrss``: that gives
the largest of all descendants, the servers included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_MB = 500


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _sent(summary: Path) -> str:
    """How many messages the run sent, of its schedule (a peak grows with the messages sent)."""
    try:
        messages = json.loads(summary.read_text())["messages"]
    except (OSError, ValueError, KeyError):
        return "messages sent: unknown (no summary)"
    return f"sent {messages['sent']:,} of {messages['sent'] + messages['unsent']:,} messages"


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    with tempfile.TemporaryDirectory() as directory:
        command = [sys.executable, "-m", "msgstorm", "run", sys.argv[1], "--out", f"{directory}/run", *sys.argv[2:]]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        peaks: dict[tuple[int, str], int] = {}
        deadline = time.monotonic() + 3600  # bounded: an hour at most
        while process.poll() is None and time.monotonic() < deadline:
            tree, i = [process.pid], 0
            while i < len(tree):
                tree += _children(tree[i])
                i += 1
            for pid in tree:
                try:
                    with open(f"/proc/{pid}/cmdline") as cmdline:
                        what = cmdline.read().replace("\0", " ").strip()
                    if "python" not in what.split(" ", 1)[0]:
                        continue
                    with open(f"/proc/{pid}/status") as status:
                        rss = int(status.read().split("VmRSS:")[1].split()[0]) * 1024
                except (OSError, IndexError, ValueError):
                    continue
                key = (pid, what.split(" -m ", 1)[-1][:70])
                peaks[key] = max(peaks.get(key, 0), rss)
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait()
        sent = _sent(Path(directory) / "run" / "summary.json")
    for (pid, what), rss in sorted(peaks.items(), key=lambda kv: -kv[1]):
        print(f"{rss / 1e6:8.0f} MB  pid {pid}  {what}")
    top = max(peaks.values(), default=0) / 1e6
    print(f"largest: {top:.0f} MB ({'within' if top <= LIMIT_MB else 'OVER'} {LIMIT_MB} MB); {sent}; exit {process.returncode}")
    return process.returncode


if __name__ == "__main__":
    raise SystemExit(main())
