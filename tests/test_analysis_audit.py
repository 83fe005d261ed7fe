"""The delivery audit on hand-built live histories: every count and class exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_analysis_history import MS, event, message, scenario_dict, write_history

from msgstorm.analysis.audit import check_delivery, delivery_summary


def _history(tmp_path: Path, receipts: dict[str, list[int]], *, sent: int = 10, fanout: bool = True,
             keys: dict[int, int] | None = None, acked: set[int] | None = None, stored: list[int] | None = None,
             consumers: int | None = None, interrupted: bool = False, copies: dict[str, list[int]] | None = None,
             events: list[dict[str, Any]] | None = None, scenario: dict[str, Any] | None = None) -> Any:
    keys = keys or {}
    rows = [message(i, i * MS, key=keys.get(i, 0), status="committed", t_sent=i * MS + 1) for i in range(sent)]
    for row in rows:
        if acked is not None and row["msg_id"] in acked:
            row["seq_no"] = row["t_sequenced"] = row["msg_id"]
    deliveries = [{"msg_id": m, "node": node, "t_delivered": 100 * MS + n, "hops": 1}
                  for node, ids in receipts.items() for n, m in enumerate(ids)]
    deliveries += [{"msg_id": m, "node": "stream", "t_delivered": 200 * MS, "hops": 0} for m in stored or []]
    deliveries += [{"msg_id": m, "node": f"stream@{name}", "t_delivered": 200 * MS, "hops": 0}
                   for name, ids in (copies or {}).items() for m in ids]
    start = event(0, "run_start", target="nats", fanout=fanout, acks=acked is not None,
                  consumers=len(receipts) if consumers is None else consumers)
    return write_history(tmp_path, rows, [start, *(events or [])], deliveries, target="nats", interrupted=interrupted,
                         scenario=scenario)


def _placed(lost: dict[str, Any]) -> dict[str, Any]:
    """Where the lost receipts sit in send order (and how many were acked)."""
    return {key: lost[key] for key in ("total", "prefix", "middle", "postfix", "acked")}


def test_a_clean_fanout_run_is_valid(tmp_path: Path) -> None:
    history = _history(tmp_path, {"consumer-0": list(range(10)), "consumer-1": list(range(10))})
    summary = delivery_summary(history)
    assert summary is not None
    assert (summary["expected"], summary["received"], summary["lost"]["total"]) == (20, 20, 0)
    assert check_delivery(history).status == "valid"


def test_losses_are_placed_before_between_and_after_the_receipts(tmp_path: Path) -> None:
    # consumer-0 misses 0 and 1 (prefix), 5 (middle) and 9 (postfix); consumer-1 misses 4 and 6.
    history = _history(tmp_path, {"consumer-0": [2, 3, 4, 6, 7, 8], "consumer-1": [0, 1, 2, 3, 5, 7, 8, 9]})
    summary = delivery_summary(history)
    assert summary is not None
    assert _placed(summary["lost"]) == {"total": 6, "prefix": 2, "middle": 3, "postfix": 1, "acked": 0}
    verdict = check_delivery(history)
    assert verdict.status == "invalid" and "6 of 20 receipts lost" in verdict.detail


def test_a_consumer_that_received_nothing_lost_everything_as_postfix(tmp_path: Path) -> None:
    history = _history(tmp_path, {"consumer-0": list(range(10))}, consumers=2)
    summary = delivery_summary(history)
    assert summary is not None
    assert summary["lost"]["postfix"] == 10 and summary["expected"] == 20


def test_duplicates_unexpected_and_reordering_per_key(tmp_path: Path) -> None:
    keys = {i: i % 2 for i in range(10)}  # even ids key 0, odd ids key 1
    # 4 arrives after 6 (same key 0): one reorder; 3 before 2 is a different key: none.
    # 7 twice: one duplicate; 99 never sent: unexpected.
    history = _history(tmp_path, {"consumer-0": [0, 1, 3, 2, 6, 4, 5, 7, 7, 8, 99, 9]}, keys=keys)
    summary = delivery_summary(history)
    assert summary is not None
    assert (summary["duplicated"], summary["unexpected"], summary["reordered"]) == (1, 1, 1)
    assert summary["lost"]["total"] == 0
    detail = check_delivery(history).detail
    assert "1 receipts duplicated" in detail and "1 receipts never sent" in detail and "1 receipts out of key order" in detail


def test_shared_consumers_count_a_message_once_across_the_group(tmp_path: Path) -> None:
    history = _history(tmp_path, {"consumer-0": [0, 2, 4, 6, 8], "consumer-1": [1, 3, 6, 9]}, fanout=False)
    summary = delivery_summary(history)
    assert summary is not None
    assert summary["expected"] == 10
    assert _placed(summary["lost"]) == {"total": 2, "prefix": 0, "middle": 2, "postfix": 0, "acked": 0}  # 5 and 7
    assert summary["lost"]["by_consumer"] is None  # shared: a loss is the group's
    assert summary["duplicated"] == 1  # 6 went to both


def test_the_stream_read_back_against_the_acks(tmp_path: Path) -> None:
    acked = set(range(8))  # 8 and 9 never acked
    history = _history(tmp_path, {"consumer-0": list(range(10))}, acked=acked, stored=[0, 1, 2, 4, 5, 6, 7, 7, 9])
    summary = delivery_summary(history)
    assert summary is not None
    assert summary["stream"] == {"stored": 9, "acked_missing": 1, "duplicated": 1, "unexpected": 0}
    verdict = check_delivery(history)
    assert verdict.status == "invalid" and "1 acked messages missing from the stream" in verdict.detail


def test_acked_losses_are_counted(tmp_path: Path) -> None:
    history = _history(tmp_path, {"consumer-0": [0, 1, 2, 3, 5, 6, 7, 9]}, acked=set(range(6)))
    summary = delivery_summary(history)
    assert summary is not None
    assert summary["lost"]["total"] == 2 and summary["lost"]["acked"] == 1  # 4 acked, 8 not


def test_an_interrupted_run_with_only_a_missing_tail_is_unknown(tmp_path: Path) -> None:
    history = _history(tmp_path, {"consumer-0": list(range(7))}, interrupted=True)
    assert check_delivery(history).status == "unknown"
    gap = _history(tmp_path / "gap", {"consumer-0": [0, 1, 3, 4, 5, 6]}, interrupted=True)
    assert check_delivery(gap).status == "invalid"


def test_the_simulator_has_no_delivery_audit(tmp_path: Path) -> None:
    history = write_history(tmp_path, [message(0, 0, latency_ns=MS)])
    assert delivery_summary(history) is None
    assert check_delivery(history).status == "valid"


def test_a_burst_is_in_msg_id_order_whatever_the_order_of_its_rows(tmp_path: Path) -> None:
    """Messages sent in one burst share their t_sent; a live run writes each row when it
    settles, so the table need not hold them in msg_id order. Send order is still msg_id
    order: receipts of one key in that order are not reordered, a lost one sits where it was sent."""
    rows = [message(i, 0, key=0, status="committed", t_sent=MS) for i in range(6)]
    rows[4]["status"] = "lost"  # 4 was never received: a gap between 3 and 5
    shuffled = [rows[i] for i in (5, 2, 0, 3, 1, 4)]
    deliveries = [{"msg_id": m, "node": "consumer-0", "t_delivered": 2 * MS, "hops": 1} for m in (0, 1, 2, 3, 5)]
    start = event(0, "run_start", target="nats", fanout=True, acks=False, consumers=1)
    for name, table in (("ordered", rows), ("shuffled", shuffled)):
        summary = delivery_summary(write_history(tmp_path / name, table, [start], deliveries, target="nats"))
        assert summary is not None
        assert summary["reordered"] == 0, name
        assert _placed(summary["lost"]) == {"total": 1, "prefix": 0, "middle": 1, "postfix": 0, "acked": 0}, name


def test_lost_receipts_are_classed_by_what_the_stream_holds_per_consumer(tmp_path: Path) -> None:
    """An R3 stream: every server's copy holds 0 .. 8 (9 was never stored). consumer-0 misses
    9; consumer-1 misses 4 and 5, which all three copies hold (stored, never delivered to it),
    and 9."""
    on_disk = list(range(9))
    history = _history(tmp_path, {"consumer-0": list(range(9)), "consumer-1": [0, 1, 2, 3, 6, 7, 8]},
                       acked=set(range(9)), stored=on_disk, copies={f"nats-{i}": on_disk for i in range(3)})
    summary = delivery_summary(history)
    assert summary is not None
    lost = summary["lost"]
    assert (lost["total"], lost["stored"], lost["not_stored"], lost["acked"]) == (4, 2, 2, 2)
    assert lost["by_consumer"]["consumer-0"] == {"total": 1, "prefix": 0, "middle": 0, "postfix": 1, "acked": 0,
                                                 "stored": 0, "not_stored": 1}
    assert lost["by_consumer"]["consumer-1"] == {"total": 3, "prefix": 0, "middle": 2, "postfix": 1, "acked": 2,
                                                 "stored": 2, "not_stored": 1}
    verdict = check_delivery(history)
    assert verdict.status == "invalid"
    assert "2 stored in the stream and never delivered, 2 never stored" in verdict.detail


def test_a_node_copy_alone_marks_a_lost_receipt_stored_and_nothing_read_back_tells_nothing(tmp_path: Path) -> None:
    # The leader's stream read nothing back; one follower's copy holds 5: stored there.
    history = _history(tmp_path, {"consumer-0": [0, 1, 2, 3, 4, 6, 7, 8, 9]}, copies={"nats-1": [5]})
    summary = delivery_summary(history)
    assert summary is not None
    assert (summary["lost"]["stored"], summary["lost"]["not_stored"]) == (1, 0)
    unread = delivery_summary(_history(tmp_path / "unread", {"consumer-0": [0, 1, 2, 3, 4, 6, 7, 8, 9]}))
    assert unread is not None
    assert (unread["lost"]["stored"], unread["lost"]["not_stored"]) == (None, None)
    assert unread["lost"]["by_consumer"]["consumer-0"]["middle"] == 1
    # A consumer that received nothing is counted under its own name.
    silent = delivery_summary(_history(tmp_path / "silent", {"consumer-0": list(range(10))}, consumers=2,
                                       stored=list(range(10))))
    assert silent is not None
    assert silent["lost"]["by_consumer"]["consumer-1"]["stored"] == 10


def test_the_read_back_says_its_own_bound(tmp_path: Path) -> None:
    scenario = scenario_dict()
    scenario.setdefault("live", {})["read_back_timeout"] = 4_000_000_000
    history = _history(tmp_path, {"consumer-0": list(range(10))}, scenario=scenario,
                       events=[event(300 * MS, "read_back", seconds=4.1),
                               event(300 * MS, "client_error", client="read_back", error="the control connection is down")])
    summary = delivery_summary(history)
    assert summary is not None
    assert summary["read_back"] == {"done": False, "stored": None, "seconds": 4.1,
                                    "error": "the control connection is down", "timeout_s": 4.0}


def test_key_order_is_carried_across_the_chunks_it_is_checked_in(tmp_path: Path, monkeypatch: Any) -> None:
    from msgstorm.analysis import audit

    monkeypatch.setattr(audit, "_CHUNK", 2)
    keys = {i: i % 2 for i in range(10)}
    # 8 (key 0) comes first: 0, 2, 4, 6 of key 0 come after it, in later chunks of two; key 1
    # is in order. 9 comes before 7 (key 1): one more.
    history = _history(tmp_path, {"consumer-0": [8, 0, 1, 2, 3, 4, 5, 6, 9, 7]}, keys=keys)
    summary = delivery_summary(history)
    assert summary is not None
    assert summary["reordered"] == 5
