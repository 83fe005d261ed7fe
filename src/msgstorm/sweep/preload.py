"""What a sweep's worker processes start with: imported once, in the server that forks them.

Place in the pipeline: under ``execute.WorkerPool``. A local sweep's workers are forked from
multiprocessing's fork server, which imports this module (``set_forkserver_preload``) once,
before it forks any worker: it imports the runner (msgstorm, numpy, pyarrow, numba) and
makes one small simulator run in a temporary directory, so the compiled functions a run
calls are loaded from numba's on-disk cache (docs/dev/performance-log.md, "The fork server's start,
measured", says what both cost). Every worker forked afterwards has both in its memory from
the start, and the server stays for the life of the sweep's process, so a second sweep (a
safe-leverage search's next step, another ``sweep()`` call) starts its workers without
either.

The run is a warm-up only: what it returns is dropped, and one that fails leaves the workers
to load what they call themselves, as a worker started by ``spawn`` would (the fork server
imports its preload modules and goes on if they fail). Forking after it is safe: the
simulator's compiled loops start no threads, and Arrow's thread pools are rebuilt in a forked
child (Arrow's own fork handlers). Last, the objects loaded are frozen out of the cycle
collector's reach (``gc.freeze``, as Python's documentation advises before forking).
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

from msgstorm.runner import run
from msgstorm.scenario import parse_scenario

__all__ = ["WARM_SCENARIO", "warm"]

# A quickstart in miniature (gossip mesh, one sequencer, blocks, two kinds of traders, a
# degraded link, a window of traffic): the compiled paths of most sweeps' runs, in about 0.1 s once loaded.
WARM_SCENARIO = """
[run]
name = "warm"
seed = 1
duration = "1s"
drain = "200ms"
window = "1s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 2
processing = { dist = "lognormal", median = "40us", sigma = 0.4 }
link = { dist = "normal", jitter = "2ms" }

[gossip]
mode = "mesh"
degree = 2
peers = 3

[sequencer]
node = "us-east-0"
service = { dist = "exponential", mean = "150us" }

[blocks]
interval = "250ms"
max_messages = 100

[backpressure]
mode = "drop_tail"
capacity = 1000

[[agents]]
name = "traders"
role = "trader"
count = 2
arrival = { process = "poisson", rate = "20/s" }
size = { dist = "uniform", low = "150B", high = "400B" }
fee = { dist = "lognormal", median = 2.0, sigma = 0.5 }

[[agents]]
name = "makers"
role = "market_maker"
count = 1
arrival = { process = "constant", rate = "20/s" }

[[faults]]
kind = "degrade"
at = "400ms"
duration = "200ms"
between = ["us-east", "eu-west"]
latency = "40ms"
jitter = "10ms"
loss = "1%"
"""


def warm() -> bool:
    """Make the warm-up run; whether it ran (a failure is not raised: see the docstring)."""
    try:
        with tempfile.TemporaryDirectory(prefix="msgstorm-warm-") as directory:
            run(parse_scenario(WARM_SCENARIO, source="<warm-up>"), Path(directory) / "run", write_report=False,
                durable=False)
    except Exception:  # noqa: BLE001 - a warm-up only: the workers load what they call themselves
        return False
    return True


WARMED = warm()
# Everything loaded so far stays for the server's life: frozen, the workers' cycle collector
# never visits it, so collections neither copy its pages (copy-on-write) nor spend time on it.
gc.freeze()
