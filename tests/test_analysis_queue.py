"""What waits to be served (analysis/queue.py): the queue-wait stage counted from the messages."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import msgstorm
from msgstorm.analysis._common import MessageArrays
from msgstorm.analysis.queue import waiting_depth
from msgstorm.history.reader import History, read_history
from msgstorm.history.schema import DELIVERIES, EVENTS, MESSAGES, RUN

S = 1_000_000_000
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _history(rows: list[tuple[int | None, int | None, str]]) -> History:
    """Messages of (t_received, t_dequeued, status), the rest filled in."""
    n = len(rows)
    received, dequeued, status = ([row[k] for row in rows] for k in range(3))
    messages = pa.table({
        "msg_id": list(range(n)), "kind": ["order"] * n, "agent": ["a"] * n, "node": ["n"] * n, "key": [0] * n,
        "size": [100] * n, "fee": [1.0] * n, "t_intended": [0] * n, "t_sent": [0] * n, "t_received": received,
        "t_dequeued": dequeued, "t_sequenced": dequeued, "seq_no": [None] * n, "t_committed": [None] * n,
        "block": [None] * n, "status": status,
    }, schema=MESSAGES)
    return History(messages=messages, deliveries=DELIVERIES.empty_table(), events=EVENTS.empty_table(),
                   run=RUN.empty_table())


def test_every_message_between_receipt_and_service_counts_and_the_mean_is_over_time() -> None:
    # A run of 10 s. Waiting (half-open [received, dequeued)):
    #   m0 [0, 4), m1 [1, 2), m2 served as it came (no wait), m3 pending to the end [3, 10),
    #   m4 dropped at 3 s with no dequeue (not counted), m5 never received (not counted),
    #   m6 [5, 6) (dropped after service started: it waited), m7 [3.5, 4), m8 [6, 7): it
    #   arrives as m6 leaves, so the two are never counted together.
    # Depth: [0,1) 1, [1,2) 2, [2,3) 1, [3,3.5) 2, [3.5,4) 3, [4,5) 1, [5,6) 2, [6,7) 2, [7,10) 1:
    # at most 3; the waits sum to 4 + 1 + 7 + 1 + 0.5 + 1 = 14.5 s over 10 s, a mean of 1.45.
    history = _history([(0, 4 * S, "committed"), (1 * S, 2 * S, "committed"), (2 * S, 2 * S, "committed"),
                        (3 * S, None, "pending"), (3 * S, None, "dropped"), (None, None, "lost"),
                        (5 * S, 6 * S, "dropped"), (3_500_000_000, 4 * S, "committed"),
                        (6 * S, 7 * S, "committed")])
    most, mean = waiting_depth(MessageArrays(history), 10 * S)
    assert most == 3
    assert mean == pytest.approx(1.45, rel=1e-12)


def test_nothing_in_the_stage_gives_no_depth() -> None:
    # A live broker's rows: a receipt, no service start, committed: no queue-wait stage.
    assert waiting_depth(MessageArrays(_history([(S, None, "committed"), (None, None, "lost")])), 10 * S) == (
        None, None)
    assert waiting_depth(MessageArrays(_history([(S, S, "committed")])), 10 * S) == (0, 0.0)


def test_a_mempool_s_waits_count_where_no_sequencer_queue_is_sampled(tmp_path: Path) -> None:
    """Round-based consensus keeps what waits in its nodes' mempools, which no queue sample
    sees (the sampled sequencer queue stays 0): the summary's depth counts them, and its mean
    times the run's span is the sum of the messages' queue waits, exactly."""
    scenario = msgstorm.load_scenario(EXAMPLES / "cometbft.toml", ['run.duration="8s"', 'run.drain="3s"'])
    result = msgstorm.run(scenario, tmp_path / "run")
    history = read_history(result.run_dir)
    sampled = [e["value"] for e in history.events.to_pylist() if e["kind"] in ("queue_depth", "queue_depth_max")]
    assert sampled and max(sampled) == 0  # the sequencer's own queue: empty throughout
    t_end = int(history.run_info["t_end"])
    waits = [(m["t_dequeued"] if m["t_dequeued"] is not None else t_end) - m["t_received"]
             for m in history.messages.to_pylist()
             if m["t_received"] is not None and (m["t_dequeued"] is not None or m["status"] == "pending")]
    queue = result.summary["queue"]
    assert queue["max_depth"] > 0 and result.summary["latency_stages_ms"]["queue_wait"]["p50"] > 0
    assert queue["mean_depth"] == pytest.approx(sum(waits) / t_end, abs=1e-3)
