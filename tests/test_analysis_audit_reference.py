"""The streamed delivery audit against the whole-column one it replaced, on random live
histories: dense and sparse msg_ids, repeated ids, unsent messages, ties in send and
receipt times, receipts out of time order, duplicates, ids never sent, fan-out and shared
consumers, silent consumers, acks, and copies of the stream read back; the deliveries cut
into parts of a few rows and the key-order pass into chunks of a few receipts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from audit_reference import delivery_summary as whole_column_summary
from hypothesis import given, settings
from hypothesis import strategies as st
from test_analysis_history import MS, event, message, write_history
from test_analysis_recorded import recut

from msgstorm.analysis import audit


@st.composite
def live_histories(draw: st.DrawFn) -> dict[str, Any]:
    sent = draw(st.integers(0, 30))
    sparse = draw(st.booleans())
    ids = [i * 1_000 + 7 if sparse else i for i in range(sent)]
    if sent and draw(st.booleans()):  # a repeated id
        ids[draw(st.integers(0, sent - 1))] = ids[draw(st.integers(0, sent - 1))]
    order = draw(st.permutations(range(sent)))
    big_keys = draw(st.booleans())
    rows = []
    for row in order:
        t_sent = draw(st.one_of(st.none(), st.integers(0, 8))) if draw(st.integers(0, 9)) == 0 else draw(st.integers(0, 8))
        key = draw(st.integers(0, 3)) + (10**12 if big_keys else 0)
        acked = draw(st.booleans())
        rows.append(message(ids[row], row * MS, key=key, status="committed",
                            t_sent=None if t_sent is None else t_sent * MS,
                            seq_no=row if acked else None, t_sequenced=row if acked else None))
    known = ids + [55_555]  # and an id never sent
    names = [f"consumer-{i}" for i in range(draw(st.integers(1, 3)))]
    deliveries = []
    for name in names:
        for msg in draw(st.lists(st.sampled_from(known), max_size=40)):
            deliveries.append({"msg_id": msg, "node": name, "t_delivered": draw(st.integers(0, 6)) * MS, "hops": 1})
    for node in draw(st.lists(st.sampled_from(["stream", "stream@n1", "stream@n2", "publisher"]), max_size=3)):
        deliveries += [{"msg_id": msg, "node": node, "t_delivered": 9 * MS, "hops": 0}
                       for msg in draw(st.lists(st.sampled_from(known), max_size=20))]
    deliveries = draw(st.permutations(deliveries))
    start = event(0, "run_start", target="nats", fanout=draw(st.booleans()), acks=draw(st.booleans()),
                  consumers=len(names) + draw(st.integers(0, 1)))
    return {"messages": rows, "deliveries": deliveries, "events": [start]}


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(drawn=live_histories(), part_rows=st.integers(1, 12), chunk=st.integers(1, 8))
def test_the_streamed_audit_is_the_whole_column_audit(drawn: dict[str, Any], part_rows: int, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        run_dir = Path(directory)
        write_history(run_dir, drawn["messages"], drawn["events"], drawn["deliveries"], target="nats")
        recut(run_dir / "history", "deliveries", part_rows)
        patch.setattr(audit, "_CHUNK", chunk)
        from msgstorm.history import read_history

        assert audit.delivery_summary(read_history(run_dir)) == whole_column_summary(read_history(run_dir))
