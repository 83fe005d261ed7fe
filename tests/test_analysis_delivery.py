"""Jepsen-style delivery checkers: valid, invalid, and unknown when a checker raises."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_analysis_history import MS, message, write_history
from test_analysis_recorded import recut

from msgstorm.analysis import CHECKERS, Verdict, run_checkers
from msgstorm.history import History, read_history


def healthy() -> list[dict[str, object]]:
    return [
        message(1, 0, stages_ns=(MS, MS, MS, MS)),
        message(2, MS, stages_ns=(MS, 2 * MS, MS, MS)),
        message(3, 2 * MS, status="dropped"),
        message(4, 3 * MS, status="pending", t_received=5 * MS),
    ]


def statuses(history: History) -> dict[str, str]:
    return {verdict.name: verdict.status for verdict in run_checkers(history)}


def test_a_healthy_history_is_valid(tmp_path: Path) -> None:
    deliveries = [{"msg_id": 1, "node": "n0", "t_delivered": MS, "hops": 0}]
    history = write_history(tmp_path, healthy(), deliveries=deliveries)
    assert statuses(history) == {name: "valid" for name in CHECKERS}


def test_an_empty_history_is_vacuously_valid(tmp_path: Path) -> None:
    assert set(statuses(write_history(tmp_path)).values()) == {"valid"}


def test_duplicated_msg_id_breaks_conservation(tmp_path: Path) -> None:
    rows = [*healthy(), message(2, 9 * MS, status="lost")]
    [verdict] = run_checkers(
        write_history(tmp_path, rows), {"conservation": CHECKERS["conservation"]}
    )
    assert verdict.status == "invalid"
    assert "more than one row: 2" in verdict.detail


def test_unknown_status_and_orphan_delivery_break_conservation(tmp_path: Path) -> None:
    rows = [*healthy(), message(5, 0, status="vanished")]
    deliveries = [{"msg_id": 77, "node": "n0", "t_delivered": MS, "hops": 1}]
    [verdict] = run_checkers(
        write_history(tmp_path, rows, deliveries=deliveries),
        {"conservation": CHECKERS["conservation"]},
    )
    assert verdict.status == "invalid"
    assert "vanished" in verdict.detail and "77" in verdict.detail


@pytest.mark.parametrize("base", [0, 10**12])  # dense ids (counted in place) and sparse ones (sorted)
def test_duplicates_and_orphans_are_named_whatever_the_ids(tmp_path: Path, base: int) -> None:
    rows = [message(base + i, i * MS, status="lost") for i in range(50)] + [message(base + 7, 0, status="lost")]
    deliveries = [{"msg_id": msg_id, "node": "n0", "t_delivered": MS, "hops": 1}
                  for msg_id in (base + 3, base + 3, base + 60, base + 60, -5)]
    [verdict] = run_checkers(write_history(tmp_path, rows, deliveries=deliveries),
                             {"conservation": CHECKERS["conservation"]})
    assert verdict.status == "invalid"
    assert f"1 msg_ids have more than one row: {base + 7}" in verdict.detail
    assert f"2 delivered msg_ids have no message row: -5, {base + 60}" in verdict.detail


def test_seq_no_going_backwards_in_time_breaks_ordering(tmp_path: Path) -> None:
    rows = [
        message(1, 0, stages_ns=(MS, 0, MS, MS), seq_no=2),  # sequenced at 2 ms
        message(2, 5 * MS, stages_ns=(MS, 0, MS, MS), seq_no=1),  # sequenced at 7 ms, lower seq
    ]
    verdicts = statuses(write_history(tmp_path, rows))
    assert verdicts["ordering"] == "invalid"
    assert verdicts["conservation"] == "valid"


@pytest.mark.parametrize("rows_in_seq_order", [True, False])
def test_a_late_sequencing_is_named_whether_or_not_the_rows_are_in_seq_no_order(
        tmp_path: Path, rows_in_seq_order: bool) -> None:
    # Every message sequenced; msg 13 (seq_no 3) is sequenced at 1 ms, before seq_nos 0-2.
    rows = [message(10 + seq, seq * 10 * MS, stages_ns=(MS, 0, MS, 0), seq_no=seq) for seq in range(6)]
    rows[3] = message(13, 0, stages_ns=(0, 0, MS, 0), seq_no=3)
    if not rows_in_seq_order:
        rows.reverse()
    [verdict] = run_checkers(write_history(tmp_path, rows), {"ordering": CHECKERS["ordering"]})
    assert verdict.status == "invalid"
    assert "1 messages were sequenced earlier than a lower seq_no: msg_ids 13" in verdict.detail
    rows = [row for row in rows if row["msg_id"] != 13]  # without it: in order
    [verdict] = run_checkers(write_history(tmp_path / "fixed", rows), {"ordering": CHECKERS["ordering"]})
    assert verdict.status == "valid" and verdict.detail == "5 sequenced messages in seq_no order"


def test_reused_seq_no_breaks_ordering(tmp_path: Path) -> None:
    rows = [
        message(1, 0, stages_ns=(MS, 0, 0, 0), seq_no=1),
        message(2, MS, stages_ns=(MS, 0, 0, 0), seq_no=1),
    ]
    [verdict] = run_checkers(write_history(tmp_path, rows), {"ordering": CHECKERS["ordering"]})
    assert verdict.status == "invalid" and "more than once" in verdict.detail


def test_committed_without_sequencing_is_invalid(tmp_path: Path) -> None:
    rows = [*healthy(), message(5, 0, status="committed", t_committed=4 * MS)]
    verdicts = statuses(write_history(tmp_path, rows))
    assert verdicts["committed-implies-sequenced"] == "invalid"


def test_stage_times_going_backwards_are_invalid(tmp_path: Path) -> None:
    rows = [*healthy(), message(5, 10 * MS, status="pending", t_sent=10 * MS, t_received=9 * MS)]
    assert statuses(write_history(tmp_path, rows))["stage-order"] == "invalid"


@pytest.mark.parametrize("rows_per_part", [None, 3])
def test_stage_order_names_the_first_backward_messages_across_parts(tmp_path: Path, rows_per_part: int | None) -> None:
    # Every third message of 30 was received before it was sent, each stage a column apart;
    # read a part at a time (parts of 3 rows: one bad row in each) the count and the first
    # five msg_ids are those of the whole table.
    rows = [message(100 + i, i * MS, status="pending", t_received=i * MS - 1 if i % 3 == 2 else i * MS)
            for i in range(30)]
    history = write_history(tmp_path, rows)
    if rows_per_part is not None:
        recut(tmp_path / "history", "messages", rows_per_part)
        history = read_history(tmp_path)
        assert len(list((tmp_path / "history" / "messages").iterdir())) == 10
    [verdict] = run_checkers(history, {"stage-order": CHECKERS["stage-order"]})
    assert verdict == Verdict("stage-order", "invalid", "10 messages have a stage time earlier than the stage "
                                                        "before it: 102, 105, 108, 111, 114 (+5 more)")


@pytest.mark.parametrize("rows_per_part", [None, 3])
def test_committed_implies_sequenced_names_the_same_messages_across_parts(tmp_path: Path,
                                                                         rows_per_part: int | None) -> None:
    # Of 12 committed messages, every fourth lacks its seq_no and every fourth (another one)
    # was committed before it was sequenced: the same verdict whether read whole or in parts.
    rows = [message(i, i * MS, stages_ns=(MS, 0, MS, MS), seq_no=i) for i in range(12)]
    for i in range(0, 12, 4):
        rows[i]["seq_no"] = None
        rows[i + 1]["t_committed"] = rows[i + 1]["t_sequenced"] - 1
    history = write_history(tmp_path, rows)
    if rows_per_part is not None:
        recut(tmp_path / "history", "messages", rows_per_part)
        history = read_history(tmp_path)
    [verdict] = run_checkers(history, {"committed-implies-sequenced": CHECKERS["committed-implies-sequenced"]})
    assert verdict == Verdict("committed-implies-sequenced", "invalid",
                              "3 committed messages lack seq_no, t_sequenced or t_committed: 0, 4, 8; "
                              "3 committed before being sequenced: 1, 5, 9")


def test_a_raising_checker_is_unknown_and_the_others_still_run(tmp_path: Path) -> None:
    def broken(history: History) -> Verdict:
        raise RuntimeError("checker bug")

    verdicts = run_checkers(write_history(tmp_path, healthy()), {"broken": broken, **CHECKERS})
    assert verdicts[0] == Verdict("broken", "unknown", "checker raised RuntimeError: checker bug")
    assert [v.status for v in verdicts[1:]] == ["valid"] * len(CHECKERS)
