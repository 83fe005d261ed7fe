"""Same seed, same history on every x86-64 CPU: the run is repeated under numpy's SIMD settings.

numpy picks a code path per CPU at import (AVX2, AVX-512, ...); ``NPY_DISABLE_CPU_FEATURES``
turns the higher ones off, which makes this machine behave like an older CPU. A scenario that
draws from every sampler msgstorm has (normal, lognormal, Pareto, exponential and uniform
distributions; lognormal, normal and Pareto link models; degradation jitter and loss; Poisson,
Hawkes, constant and ramp arrivals; gossip over several nodes) runs once per setting the
machine can take, each in a fresh process, and every column of every history table must hash
the same. On an AVX-512 machine that is four settings (all on; AVX512_ICL off; AVX-512 off;
AVX2 and above off); on an AVX2 machine two; a machine with nothing dispatched runs one, and
the test still checks that a second run in another process gives the same digests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SCENARIO = """
[run]
name = "determinism"
seed = 11
duration = "1s"
drain = "1s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 3
processing = { dist = "pareto", scale = "15us", alpha = 2.5 }
link = { dist = "lognormal", sigma = 0.3 }
links = [{ between = ["us-east", "eu-west"], latency = "35ms", dist = { dist = "pareto", alpha = 3.0 } },
         { between = ["us-east-0", "us-east-1"], latency = "1ms", dist = { dist = "normal", jitter = "200us" } }]

[gossip]
degree = 3
peers = 4

[sequencer]
service = { dist = "normal", mean = "120us", std = "40us" }

[blocks]
interval = "200ms"

[[agents]]
name = "bursty"
count = 2
arrival = { process = "hawkes", baseline = "300/s", branching = 0.6, decay = "5ms" }
fee = { dist = "lognormal", median = 2.0, sigma = 0.7 }
size = { dist = "exponential", mean = "300B" }

[[agents]]
name = "steady"
role = "market_maker"
arrival = { process = "poisson", rate = "400/s" }
size = { dist = "uniform", low = "100B", high = "400B" }
fee = { dist = "normal", mean = 1.0, std = 0.5 }

[[agents]]
name = "ramp"
role = "oracle"
arrival = { process = "step_ramp", start = "50/s", step = "50/s", every = "250ms", steps = 4 }

[[agents]]
name = "metronome"
arrival = { process = "constant", rate = "100/s" }

[[faults]]
kind = "degrade"
at = "300ms"
duration = "400ms"
between = ["us-east", "eu-west"]
latency = "5ms"
jitter = "3ms"
loss = "2%"
"""

CHILD = """
import json, sys
from pathlib import Path
import msgstorm
try:
    from numpy._core import _multiarray_umath as umath
except ImportError:  # numpy 1.x
    from numpy.core import _multiarray_umath as umath
from test_golden import column_digests
scenario = msgstorm.parse_scenario(Path(sys.argv[1]).read_text(), source=sys.argv[1])
history = msgstorm.run(scenario, sys.argv[2]).history
enabled = [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]
print(json.dumps({"enabled": enabled, "digests": column_digests(history)}))
"""


def _dispatched_here() -> list[str]:
    """numpy's dispatched CPU features this machine has, lowest level first."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy 1.x
        from numpy.core import _multiarray_umath as umath  # type: ignore[no-redef]

    return [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]


def _run_child(scenario: Path, run_dir: Path, disabled: list[str]) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    env["NPY_DISABLE_CPU_FEATURES"] = " ".join(disabled)
    done = subprocess.run([sys.executable, "-c", CHILD, str(scenario), str(run_dir)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_the_same_seed_gives_the_same_history_under_every_simd_setting(tmp_path: Path) -> None:
    scenario = tmp_path / "determinism.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    available = _dispatched_here()
    # Turn off the top k levels, k = 0 .. all; with nothing dispatched, run twice as it is.
    settings = [available[len(available) - k:] if k else [] for k in range(len(available) + 1)]
    if len(settings) == 1:
        settings.append([])
    outcomes = [_run_child(scenario, tmp_path / f"run{index}", disabled) for index, disabled in enumerate(settings)]
    for disabled, outcome in zip(settings, outcomes):  # the setting took effect in the child
        assert not set(disabled) & set(outcome["enabled"]), (disabled, outcome["enabled"])
    reference = outcomes[0]["digests"]
    assert isinstance(reference, dict) and len(reference) > 20
    for disabled, outcome in zip(settings[1:], outcomes[1:]):
        digests = outcome["digests"]
        assert isinstance(digests, dict)
        changed = sorted(column for column in reference if reference[column] != digests.get(column))
        assert not changed, f"with {disabled} off, these columns differ: {changed}"
