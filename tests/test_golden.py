"""A golden history pins the simulator's semantics on a small scenario.

The digests cover the content of every column of every history table (not the Parquet bytes,
which depend on the pyarrow version), so a mismatch names the table and column that changed.
A change to the engine that alters any message's fate or timing changes them: if that change
is intended (for example a new use of the random streams), re-pin the digests once and say
why in the change. The same digests must come out on every x86-64 CPU
(``tests/test_determinism.py`` checks that under several numpy SIMD settings).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import msgstorm
from msgstorm.history import History

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GOLDEN_COUNTS = {"messages": 3019, "committed": 3019}
GOLDEN = {
    "messages.msg_id": "cdacb723f40cbe9a",
    "messages.kind": "ec52f37ab4588899",
    "messages.agent": "45ebf98b8cfb6c35",
    "messages.node": "16107e2f8a0cc4e5",
    "messages.key": "0cd4ab5406373248",
    "messages.size": "02ab226ad42209e2",
    "messages.fee": "f56550c0b23a07bc",
    "messages.t_intended": "21e465134c22dffc",
    "messages.t_sent": "21e465134c22dffc",
    "messages.t_received": "3931cbd7407d17ee",
    "messages.t_dequeued": "e68763df60a28164",
    "messages.t_sequenced": "a743ce75e2af9a60",
    "messages.seq_no": "16211da61074be7e",
    "messages.t_committed": "85906bb257ddb3b9",
    "messages.block": "b26675463b11372d",
    "messages.status": "ed63e1401dd712d6",
    "deliveries.msg_id": "ec0b2aa7bee8a0d6",
    "deliveries.node": "b2f529d42acd28a7",
    "deliveries.t_delivered": "ed8f3ad569f7031c",
    "deliveries.hops": "bb6f300983b222df",
    "events.t": "1948af60c1845914",
    "events.kind": "3943cdbb3bec11cf",
    "events.node": "72441d37934488f0",
    "events.value": "4c1f0688e85a2ae0",
    "events.height": "34f92117d4e1761c",
    "events.detail": "f4ed1f9a81269f8b",
    "edges.src": "7380d5b4fa7322b2",
    "edges.dst": "4621ad0363d73c89",
    "edges.src_region": "11241b5cc3f6f5f8",
    "edges.dst_region": "a265c824a99068ec",
    "edges.base_latency_ns": "1ca4a64369d454a3",
    "edges.overlay": "6f6b1df0e0d96211",
    "edges.mesh": "4ebcd8ec5b8b3f78",
}


def column_digests(history: History) -> dict[str, str]:
    """``table.column`` -> sha256 of the column's values (messages in msg_id order)."""
    tables: dict[str, pa.Table] = {
        "messages": history.messages.take(pc.sort_indices(history.messages["msg_id"])),
        "deliveries": history.deliveries,
        "events": history.events,
        "edges": history.edges,
    }
    digests = {}
    for name, table in tables.items():
        for column in table.column_names:
            values = json.dumps(table[column].to_pylist(), default=str).encode()
            digests[f"{name}.{column}"] = hashlib.sha256(values).hexdigest()[:16]
    return digests


def golden_history(run_dir: Path) -> History:
    scenario = msgstorm.load_scenario(EXAMPLES / "quickstart.toml", ['run.duration="1s"', 'run.drain="2s"'])
    return msgstorm.run(scenario, run_dir).history


def test_golden_history(tmp_path) -> None:
    history = golden_history(tmp_path / "run")
    statuses = history.messages["status"].to_pylist()
    assert {"messages": len(statuses), "committed": statuses.count("committed")} == GOLDEN_COUNTS
    observed = column_digests(history)
    changed = {column: digest for column, digest in observed.items() if GOLDEN.get(column) != digest}
    missing = sorted(set(GOLDEN) - set(observed))
    assert not changed and not missing, f"columns that changed: {sorted(changed)}; missing: {missing}"
