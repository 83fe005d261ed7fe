"""A golden history pins the simulator's semantics on a small scenario.

The digest covers the content of every history table (not the Parquet bytes, which depend
on the pyarrow version). A change to the engine that alters any message's fate or timing
changes it: if that change is intended (for example a new use of the random streams),
re-pin the digest once and say why in the change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.compute as pc

import msgstorm
from msgstorm.history import History

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GOLDEN = {
    "messages": 3019,
    "committed": 3019,
    "digest": "a56c328390c138ee4d88ef8e04e605e9372eb24eec6e0aee490922af789248f6",
}


def _content_digest(history: History) -> str:
    digest = hashlib.sha256()
    messages = history.messages.take(pc.sort_indices(history.messages["msg_id"]))
    for table in (messages, history.deliveries, history.events):
        digest.update(json.dumps(table.to_pydict(), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def test_golden_history(tmp_path) -> None:
    scenario = msgstorm.load_scenario(EXAMPLES / "quickstart.toml", ['run.duration="1s"', 'run.drain="2s"'])
    result = msgstorm.run(scenario, tmp_path)
    counts = result.summary["messages"]
    observed = {"messages": counts["sent"], "committed": counts["committed"],
                "digest": _content_digest(result.history)}
    assert observed == GOLDEN
