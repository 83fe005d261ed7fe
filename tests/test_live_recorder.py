"""The live recorder writes, a flush at a time, the rows the end-of-run write made in one go.

Random runs are made on paper (sends in bursts, receipts stamped by the target or by consumer
processes and reaching it late and out of order, duplicates, losses, strays, acks, generator
processes reporting their sends late), handed to the recorder in intakes at random moments
that keep the contract (every receipt before the horizon is in), and the history it writes is
compared with what the end-of-run write (kept here as it was) makes of the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from msgstorm.history.reader import read_table
from msgstorm.history.writer import HistoryWriter
from msgstorm.live import receipts as receipts_module
from msgstorm.live import recorder as recorder_module
from msgstorm.live.receipts import Acks, Receipts, first_arrivals
from msgstorm.live.recorder import FAR, Intake, LiveRecorder
from msgstorm.scenario.schema import MESSAGE_KINDS
from msgstorm.traffic.generate import MessageBatch

MS = 1_000_000
US = 1_000
AGENTS = ["traders", "makers"]


def _end_of_run_rows(batches: list[MessageBatch], sent: np.ndarray, receipts: Receipts, acks: Acks | None,
                     consumers: list[str], interrupted: bool) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """messages and deliveries as ``LiveTarget._write_messages`` made them at the end of a run
    (before rows were written while it ran), as columns of Python values."""
    batch = MessageBatch.concat(batches)
    receipts_consumer, receipts_msg, receipts_t = receipts.columns()
    deliveries = {"msg_id": receipts_msg.tolist(), "node": [consumers[c] for c in receipts_consumer.tolist()],
                  "t_delivered": receipts_t.tolist(), "hops": [1] * receipts_msg.size}
    keep = sent >= 0
    ids = batch.msg_id[keep]
    n = ids.size
    first_t = np.full(n, -1, dtype=np.int64)
    seq_no = np.full(n, -1, dtype=np.int64)
    rows, at = first_arrivals(ids, receipts_msg)
    first_t[rows] = receipts_t[at]
    seq_no[rows] = np.arange(rows.size)
    if acks is not None:
        ack_msg, ack_order, ack_t_all = acks.columns()
        ack_t = np.full(n, -1, dtype=np.int64)
        order = np.full(n, -1, dtype=np.int64)
        rows, at = first_arrivals(ids, ack_msg)
        ack_t[rows] = ack_t_all[at]
        order[rows] = ack_order[at]
        acked = ack_t >= 0
        first_t = np.where(acked, ack_t, first_t)
        seq_no = np.where(acked, order, -1)

    def nullable(values: np.ndarray) -> list[int | None]:
        return [None if v < 0 else v for v in values.tolist()]

    messages = {
        "msg_id": ids.tolist(), "kind": [MESSAGE_KINDS[k] for k in batch.kind[keep].tolist()],
        "agent": [AGENTS[a] for a in batch.agent[keep].tolist()], "node": ["publisher"] * n,
        "key": batch.key[keep].tolist(), "size": batch.size[keep].tolist(), "fee": batch.fee[keep].tolist(),
        "t_intended": batch.t_intended[keep].tolist(), "t_sent": sent[keep].tolist(),
        "t_received": [None] * n if acks is not None else nullable(first_t), "t_dequeued": [None] * n,
        "t_sequenced": nullable(np.where(seq_no >= 0, first_t, -1)), "seq_no": nullable(seq_no),
        "t_committed": nullable(first_t), "block": [None] * n,
        "status": ["committed" if t >= 0 else ("pending" if interrupted else "lost") for t in first_t.tolist()],
    }
    return messages, deliveries


class _Run:
    """One run made on paper: what reaches the target, and when."""

    def __init__(self, rng: np.random.Generator, acks: bool, timed: bool, shares: int, consumers: int) -> None:
        n = int(rng.integers(300, 3000))
        t_intended = np.cumsum(rng.exponential(60 * US, n)).astype(np.int64)
        cuts = np.sort(rng.choice(np.arange(1, n), size=int(rng.integers(1, 6)), replace=False))
        ids = np.arange(n, dtype=np.int64)
        keys = rng.integers(0, 12, n).astype(np.int64)
        self.batches = [MessageBatch(ids[a:b], t_intended[a:b], rng.integers(0, 2, b - a).astype(np.int32),
                                     rng.integers(0, len(MESSAGE_KINDS), b - a).astype(np.int8),
                                     np.zeros(b - a, dtype=np.int32), keys[a:b],
                                     rng.integers(16, 200, b - a).astype(np.int32), rng.random(b - a))
                        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), n])]
        share = keys % shares
        # Sends leave in bursts (a time shared by the messages due together), in id order per share.
        burst = 50 * US
        t_sent = ((t_intended + rng.integers(0, 30 * US, n)) // burst + 1) * burst
        for k in range(shares):
            mine = share == k
            t_sent[mine] = np.maximum.accumulate(t_sent[mine])
        stop = int(n * rng.uniform(0.85, 1.0))  # the rest was never sent (the run ended)
        t_sent[stop:] = -1
        self.t_sent = t_sent
        self.share = share
        self.n = n
        # Own sends as the target's arrays (filled as time goes); the others' as reports.
        self.sent_arrays = [np.full(len(b), -1, dtype=np.int64) for b in self.batches]
        self.events: list[tuple[int, int, str, Any]] = []
        counter = iter(range(10**9))

        def event(arrival: int, kind: str, data: Any) -> None:
            self.events.append((int(arrival), next(counter), kind, data))

        frame = 20 * MS
        # Generator processes' reports: a frame covers the sends before its time.
        self.report_frames: dict[int, list[int]] = {}
        for k in range(1, shares):
            offset = int(rng.integers(0, frame))
            mine = np.flatnonzero((share == k) & (t_sent >= 0))
            frames = (t_sent[mine] - offset) // frame * frame + frame + offset
            last = int(frames.max()) if frames.size else offset
            for f in range(offset, last + frame, frame):
                inside = mine[frames == f]
                event(f + rng.integers(0, 3 * MS), "sent", (k, ids[inside], t_sent[inside], f))
        # Receipts: per consumer some lost, some twice, stamped on a read's grid.
        for c in range(consumers):
            sent_ids = np.flatnonzero(t_sent >= 0)
            got = sent_ids[rng.random(sent_ids.size) > 0.05]
            again = got[rng.random(got.size) < 0.03]
            msg = np.concatenate([got, again])
            read = 30 * US
            t = ((t_sent[msg] + rng.exponential(300 * US, msg.size).astype(np.int64)) // read + 1) * read
            t[got.size:] += rng.integers(1, 5 * MS, again.size) // read * read
            strays = np.concatenate([rng.integers(stop, n + 50, 3), rng.integers(0, stop, 2)])
            strays = strays[(strays >= n) | (t_sent[np.minimum(strays, n - 1)] < 0)]  # never sent: strays
            msg = np.concatenate([msg, strays]).astype(np.int64)
            t = np.concatenate([t, rng.integers(0, int(t_intended[-1]) + 1, strays.size) // read * read])
            order = np.argsort(t, kind="stable")
            msg, t = msg[order], t[order]
            if not timed:
                for m, stamp in zip(msg.tolist(), t.tolist()):
                    event(stamp, "receipt", (c, m, stamp))
                continue
            # A consumer process: its reads go up in frames, every frame with the time it was made.
            offset = int(rng.integers(0, frame))
            frames = (t - offset) // frame * frame + frame + offset
            last = int(frames.max()) if frames.size else offset
            for f in range(offset, last + 2 * frame, frame):
                inside = frames == f
                times, counts = np.unique(t[inside], return_counts=True)
                event(f + rng.integers(0, 4 * MS), "frame", (c, msg[inside], times, counts, f))
        if acks:
            acked = np.flatnonzero((t_sent >= 0) & (rng.random(n) > 0.05))
            t_ack = ((t_sent[acked] + rng.exponential(200 * US, acked.size).astype(np.int64)) // (40 * US) + 1) * 40 * US
            order = np.argsort(t_ack, kind="stable")
            for rank, i in enumerate(order.tolist()):
                event(t_ack[i], "ack", (int(acked[i]), rank + 1, int(t_ack[i])))
        self.events.sort()
        self.end = max(int(t_intended[-1]), max(e[0] for e in self.events)) + 10 * MS


def _feed(run: _Run, recorder: LiveRecorder, rng: np.random.Generator, timed: bool, shares: int, consumers: int,
          interrupted: bool, windows_only: bool = False) -> tuple[Receipts, Acks]:
    """Hand ``run`` to ``recorder`` in intakes at random moments; everything it got, for the
    reference. ``windows_only``: as a run without ``record_every``, only the windows (and the
    sends reported) before the last intake, which takes every receipt and ack."""
    all_receipts, all_acks = Receipts(), Acks()
    receipts, acks = Receipts(), Acks()
    sent_elsewhere: list[tuple[np.ndarray, np.ndarray]] = []
    reported = dict.fromkeys(range(consumers), -1)  # consumer process -> its last frame's time
    shares_through = [-1] * (shares - 1)
    windows_taken = 0
    starts = [int(b.t_intended[0]) for b in run.batches]
    at = 0
    moment = 0
    while True:
        moment += int(rng.integers(1 * MS, 40 * MS))
        final = moment >= run.end
        while at < len(run.events) and (final or run.events[at][0] <= moment):
            _, _, kind, data = run.events[at]
            at += 1
            if kind == "receipt":
                for target in (receipts, all_receipts):
                    target.add(*data)
            elif kind == "frame":
                c, ids, times, counts, f = data
                for target in (receipts, all_receipts):
                    target.add_timed(c, ids, times, counts)
                reported[c] = f
            elif kind == "ack":
                for acks_ in (acks, all_acks):
                    acks_.add(*data)
            else:
                k, ids, times, f = data
                sent_elsewhere.append((ids, times))
                shares_through[k - 1] = f
        # The sender's own sends, as far as it got (the recorder reads them a little later).
        later = FAR if final else moment + int(rng.integers(0, 3 * MS))
        for batch, sent in zip(run.batches, run.sent_arrays):
            own = (run.share[batch.msg_id] == 0) & (run.t_sent[batch.msg_id] >= 0) & (run.t_sent[batch.msg_id] <= later)
            sent[own] = run.t_sent[batch.msg_id][own]
        made = len(run.batches) if final else sum(1 for s in starts if s <= moment)
        windows = list(zip(run.batches[windows_taken:made], run.sent_arrays[windows_taken:made]))
        windows_taken = made
        horizon = moment if not timed else min(moment, *reported.values())
        if windows_only and not final:
            recorder.take_windows(windows, sent_elsewhere)
            sent_elsewhere = []
            continue
        intake = Intake(windows, receipts.take(), acks.take(), sent_elsewhere, horizon,
                        [FAR] * (shares - 1) if final else list(shares_through))
        sent_elsewhere = []
        if final:
            recorder.finish(intake, interrupted)
            return all_receipts, all_acks
        recorder.flush(intake)


@pytest.mark.parametrize("windows_only", [False, True], ids=["flushed", "windows-only"])
@pytest.mark.parametrize("final_slice", [None, 5], ids=["last-intake-whole", "last-intake-in-slices-of-5"])
@pytest.mark.parametrize("seed", range(24))
def test_rows_written_as_the_run_goes_are_the_end_of_run_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              seed: int, final_slice: int | None,
                                                              windows_only: bool) -> None:
    if final_slice is not None:  # the last intake's receipts and acks taken a few at a time: the same rows
        monkeypatch.setattr(recorder_module, "_FINAL_SLICE", final_slice)
        # and the receipts and acks held folded into arrays every few: the same rows too
        monkeypatch.setattr(receipts_module, "_LOOSE", 2)
        monkeypatch.setattr(receipts_module, "_LOOSE_SINGLES", 3)
    rng = np.random.default_rng(seed)
    acks = seed % 4 == 1
    timed = not acks and seed % 3 == 0
    shares = 1 if acks else int(rng.integers(1, 4))
    consumers = int(rng.integers(1, 4))
    interrupted = seed % 5 == 0
    run = _Run(rng, acks, timed, shares, consumers)
    names = [f"consumer-{c}" for c in range(consumers)]
    writer = HistoryWriter(tmp_path / "history", row_group_size=512)
    recorder = LiveRecorder(writer, AGENTS, names, acks, shares, remake=lambda: iter(run.batches),
                            hold_schedule=not windows_only)
    all_receipts, all_acks = _feed(run, recorder, rng, timed, shares, consumers, interrupted, windows_only)
    writer.close()
    sent = np.where(run.t_sent >= 0, run.t_sent, -1)
    messages, deliveries = _end_of_run_rows(run.batches, sent, all_receipts, all_acks if acks else None, names,
                                            interrupted)
    written = read_table(tmp_path / "history", "messages")
    if windows_only:  # every row made by the last intake: in msg_id order as they are
        assert written.to_pydict() == messages
    written = written.sort_by("msg_id")
    assert written.to_pydict() == messages
    # Deliveries in the same order: receipt order, ties in the order they came. On a target
    # with acks a read whose message waits for its ack is written after later reads, whole:
    # in time order (as the audit reads them) the same.
    table = read_table(tmp_path / "history", "deliveries")
    if acks:
        order = np.argsort(np.asarray(table.column("t_delivered")), kind="stable")
        table = table.take(order)
        expected = np.argsort(np.asarray(deliveries["t_delivered"]), kind="stable").tolist()
        deliveries = {name: [values[i] for i in expected] for name, values in deliveries.items()}
    assert table.to_pydict() == deliveries
    assert recorder.messages_written == len(messages["msg_id"])


def test_a_delivery_is_never_on_disk_before_its_message(tmp_path: Path) -> None:
    """After each flush the history on disk is whole: every receipt written has its message's
    row (a run killed then leaves no delivery without its message)."""
    rng = np.random.default_rng(7)
    run = _Run(rng, acks=True, timed=False, shares=1, consumers=2)
    writer = HistoryWriter(tmp_path / "history", row_group_size=256)
    recorder = LiveRecorder(writer, AGENTS, ["consumer-0", "consumer-1"], acks=True, remake=lambda: iter(run.batches),
                            hold_schedule=True)
    original = recorder.flush
    checked = []

    def flush_and_check(intake: Intake) -> None:
        original(intake)
        writer.sync()
        messages = set(read_table(tmp_path / "history", "messages", ["msg_id"]).column("msg_id").to_pylist())
        delivered = set(read_table(tmp_path / "history", "deliveries", ["msg_id"]).column("msg_id").to_pylist())
        sent = set(np.flatnonzero(run.t_sent >= 0).tolist())
        assert delivered & sent <= messages
        checked.append(len(messages))

    recorder.flush = flush_and_check  # type: ignore[method-assign]
    _feed(run, recorder, rng, timed=False, shares=1, consumers=2, interrupted=False)
    writer.close()
    assert max(checked) > 0.5 * run.n, "most rows are written before the end"


def test_receipts_taken_keep_counting_and_come_in_time_order() -> None:
    receipts = Receipts()
    receipts.add(0, 5, 10)
    taken = receipts.take()
    receipts.add_timed(1, np.array([6, 7]), np.array([3, 20]), np.array([1, 1]))
    assert receipts.count == 3 and taken.count == 1
    assert [c.tolist() for c in taken.columns()] == [[0], [5], [10]]
    assert [c.tolist() for c in receipts.take().columns()] == [[1, 1], [6, 7], [3, 20]]
    assert [c.size for c in receipts.columns()] == [0, 0, 0]


def _batch(ids: list[int], t: list[int], keys: list[int]) -> MessageBatch:
    n = len(ids)
    return MessageBatch(np.array(ids, dtype=np.int64), np.array(t, dtype=np.int64), np.zeros(n, np.int32),
                        np.zeros(n, np.int8), np.zeros(n, np.int32), np.array(keys, dtype=np.int64),
                        np.full(n, 64, np.int32), np.zeros(n))


def test_a_generator_process_send_received_before_this_process_made_its_window(tmp_path: Path) -> None:
    """This process fell behind: a generator process sent message 2 (its share) and reported
    it, a consumer received it, and the window holding it is not made here yet. Its receipt
    waits for the window; the message is committed, not a stray receipt and a lost message."""
    writer = HistoryWriter(tmp_path / "history")
    windows = [_batch([0, 1], [100, 200], [0, 0]), _batch([2, 3], [1000, 1100], [1, 0])]
    recorder = LiveRecorder(writer, ["a"], ["consumer-0"], acks=False, shares=2, remake=lambda: iter(windows),
                            hold_schedule=True)
    receipts = Receipts()
    for msg, t in ((0, 150), (1, 250), (2, 1050)):
        receipts.add(0, msg, t)
    recorder.flush(Intake([(windows[0], np.array([100, 200]))], receipts, Acks(),
                          [(np.array([2]), np.array([1000]))], horizon=2000, shares_through=[1500]))
    later = Receipts()
    later.add(0, 3, 1150)
    recorder.finish(Intake([(windows[1], np.array([-1, 1100]))], later, Acks(), [],
                           FAR, [FAR]), interrupted=False)
    writer.close()
    messages = read_table(tmp_path / "history", "messages").sort_by("msg_id").to_pydict()
    assert messages["status"] == ["committed"] * 4
    assert messages["seq_no"] == [0, 1, 2, 3] and messages["t_received"] == [150, 250, 1050, 1150]


def test_a_message_whose_ack_never_comes_holds_back_no_other_receipt(tmp_path: Path) -> None:
    """On a target with acks, message 0 is received but its ack is lost (with a connection):
    the receipts after it are written flush by flush all the same; its own waits to the end."""
    writer = HistoryWriter(tmp_path / "history")
    n = 1000
    ids = np.arange(n, dtype=np.int64)
    t = ids * 1000 + 1000
    window = _batch(ids.tolist(), t.tolist(), ids.tolist())
    recorder = LiveRecorder(writer, ["a"], ["consumer-0"], acks=True, remake=lambda: iter([window]), hold_schedule=True)
    recorder.flush(Intake([(window, t.copy())], Receipts(), Acks(), [],
                          horizon=0, shares_through=[]))
    for lo in range(0, n, 250):
        part = ids[lo:lo + 250]
        receipts = Receipts()
        receipts.add_timed(0, part, t[part] + 500, np.ones(part.size, dtype=np.int64))
        acks = Acks()
        acked = part[part != 0]
        acks.add_read(acked, acked + 1, int(t[part[-1]]) + 600)
        recorder.flush(Intake([], receipts, acks, [], horizon=int(t[part[-1]]) + 1000, shares_through=[]))
        assert recorder.deliveries_written == lo + part.size - 1  # all but message 0's
    recorder.finish(Intake([], Receipts(), Acks(), [], FAR, []), interrupted=False)
    writer.close()
    messages = read_table(tmp_path / "history", "messages").sort_by("msg_id").to_pydict()
    assert messages["status"] == ["committed"] * n and messages["seq_no"][0] is None
    assert read_table(tmp_path / "history", "deliveries").num_rows == n


def test_the_last_intake_makes_the_windows_again_for_the_rows_no_window_brought(tmp_path: Path) -> None:
    """Without record_every the recorder holds no schedule: the last intake writes every row
    from the windows made again. This process took only the first window (it stopped behind);
    a generator process sent message 3 (key 1, its share) of a window never taken here. Rows:
    what was sent, and what the schedule intended before the end (2,050) and nobody sent."""
    writer = HistoryWriter(tmp_path / "history")
    windows = [_batch([0, 1], [100, 200], [0, 0]), _batch([2, 3], [1000, 1100], [0, 1]),
               _batch([4, 5], [2000, 2100], [0, 0])]
    recorder = LiveRecorder(writer, ["a"], ["consumer-0"], acks=False, shares=2, remake=lambda: iter(windows))
    recorder.take_windows([(windows[0], np.array([150, 250]))], [(np.array([3]), np.array([1150]))])
    receipts = Receipts()
    receipts.add_read(0, np.array([0]), 300)
    receipts.add_read(0, np.array([3, 5]), 1200)  # 5 was never sent: a stray receipt, no row
    recorder.finish(Intake([], receipts, Acks(), [], FAR, [FAR]), interrupted=False, unsent_before=2050)
    writer.close()
    messages = read_table(tmp_path / "history", "messages").to_pydict()
    assert messages["msg_id"] == [0, 1, 2, 3, 4]
    assert messages["status"] == ["committed", "lost", "unsent", "committed", "unsent"]
    assert messages["t_sent"] == [150, 250, None, 1150, None]
    assert messages["t_intended"] == [100, 200, 1000, 1100, 2000] and messages["key"] == [0, 0, 0, 1, 0]
    assert messages["seq_no"] == [0, None, None, 1, None] and messages["t_received"] == [300, None, None, 1200, None]
    assert read_table(tmp_path / "history", "deliveries").column("msg_id").to_pylist() == [0, 3, 5]
    assert recorder.messages_written == 5


def test_receipts_in_slices_are_the_columns_without_joining_them() -> None:
    receipts = Receipts()
    receipts.add_read(0, np.array([1, 2, 3]), 10)
    receipts.add(1, 4, 11)
    receipts.add_read(1, np.array([5, 6]), 12)
    assert receipts.in_arrival_order_is_time_order()
    slices = [[c.tolist() for c in part] for part in receipts.slices(2)]
    assert slices == [[[0, 0, 0], [1, 2, 3], [10, 10, 10]], [[1, 1, 1], [4, 5, 6], [11, 12, 12]]]
    assert [c.tolist() for c in receipts.columns()] == [[0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6], [10, 10, 10, 11, 12, 12]]
    late = Receipts()
    late.add_read(0, np.array([1]), 20)
    late.add_read(1, np.array([2]), 19)  # came later than it happened: the slices would not be in time order
    assert not late.in_arrival_order_is_time_order()


def test_reads_held_to_the_end_are_folded_into_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 3 reads (``_LOOSE``) are folded into one chunk of arrays: the receipts and acks
    come out as they went in, the chunks stay few, and no folded chunk keeps a view into
    the window the publisher's ids came from."""
    monkeypatch.setattr(receipts_module, "_LOOSE", 3)
    monkeypatch.setattr(receipts_module, "_LOOSE_SINGLES", 2)
    window_ids = np.arange(100, 120, dtype=np.int64)  # a traffic window's ids: acks are views into it
    receipts, acks = Receipts(), Acks()
    receipts.add_read(0, np.array([100, 101]), 10)
    receipts.add_read(1, np.array([102]), 11)
    receipts.add_read(0, np.zeros(0, dtype=np.int64), 12)  # every payload unreadable: no id
    receipts.add_read(1, np.array([103, 104, 105]), 13)  # the 4th read: the first 3 are one chunk
    receipts.add(0, 106, 14)
    receipts.add(1, 107, 15)  # the 2nd single: folded too
    receipts.add(0, 108, 16)
    assert receipts.count == 9
    assert len(receipts._chunks) == 3  # 3 reads, 1 read, 2 singles; 1 single loose
    assert receipts.in_arrival_order_is_time_order()
    assert [c.tolist() for c in receipts.columns()] == [
        [0, 0, 1, 1, 1, 1, 0, 1, 0], [100, 101, 102, 103, 104, 105, 106, 107, 108], [10, 10, 11, 13, 13, 13, 14, 15, 16]]
    late = Receipts()
    for consumer, t in ((0, 20), (1, 21), (0, 19)):  # folded, the last read came later than it happened
        late.add_read(consumer, np.array([t]), t)
    assert len(late._chunks) == 1 and not late.in_arrival_order_is_time_order()

    for first, t in ((0, 30), (2, 31), (3, 32), (6, 33)):
        acks.add_read(window_ids[first:first + 2], window_ids[first:first + 2] * 10, t)
    acks.add(120, 1200, 34)
    assert acks.count == 9 and len(acks._chunks) == 2  # 3 reads folded, 1 read with 1 single loose
    folded = acks._chunks[0]
    assert isinstance(folded[0], receipts_module._Packed) and isinstance(folded[1], receipts_module._Packed)
    assert not np.shares_memory(folded[0].offsets, window_ids) and not np.shares_memory(folded[1].offsets, window_ids)
    expected = [[100, 101, 102, 103, 103, 104, 106, 107, 120], [1000, 1010, 1020, 1030, 1030, 1040, 1060, 1070, 1200],
                [30, 30, 31, 31, 32, 32, 33, 33, 34]]
    assert [c.tolist() for c in acks.columns()] == expected
    sliced = list(acks.slices(4))  # chunks of 6, then 3 (2 + the single): not split
    assert [len(part[0]) for part in sliced] == [6, 3]
    assert [np.concatenate([part[k] for part in sliced]).tolist() for k in range(3)] == expected
    assert acks._chunks == [] and acks.count == 9  # handed over as walked; the count stays


def test_folded_ids_are_held_narrow_and_come_back_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A folded chunk holds consecutive ids as their first and count (a publisher's acks,
    reads in send order: no bytes an id), ids within 32 bits of the first as int32 offsets
    (4 bytes), and a wider span (a Redis entry order, milliseconds shifted 20 bits) as
    int64; each comes back as it went in."""
    monkeypatch.setattr(receipts_module, "_LOOSE", 2)
    ms = 1_764_000_000_000 << 20
    acks = Acks()
    acks.add_read(np.array([10, 11, 12]), np.array([ms, ms + 1, ms + 2]), 1)
    acks.add_read(np.array([13, 14]), np.array([ms + 3, ms + (3_000 << 20)]), 2)  # 3 s later: offset past 2**31
    acks.add_read(np.array([20, 16]), np.array([ms + 9, ms + 5]), 3)
    acks.add_read(np.array([2**40]), np.array([ms + 10]), 4)
    ids, orders = acks._chunks[0][0], acks._chunks[0][1]
    assert isinstance(ids, receipts_module._Packed) and ids.offsets is None and (ids.base, ids.size) == (10, 5)
    assert isinstance(orders, np.ndarray) and orders.dtype == np.int64  # over 2**31 apart: int64
    ids, orders = acks._chunks[1][0], acks._chunks[1][1]
    assert isinstance(ids, np.ndarray)  # 20, 16, 2**40: wider than 32 bits from the first
    assert isinstance(orders, receipts_module._Packed) and orders.offsets is not None
    assert orders.offsets.dtype == np.int32 and orders.offsets.tolist() == [0, -4, 1]
    assert [c.tolist() for c in acks.columns()] == [
        [10, 11, 12, 13, 14, 20, 16, 2**40], [ms, ms + 1, ms + 2, ms + 3, ms + (3_000 << 20), ms + 9, ms + 5, ms + 10],
        [1, 1, 1, 2, 2, 3, 3, 4]]
    receipts = Receipts()
    receipts.add_read(0, np.array([5, 6]), 1)
    receipts.add_read(1, np.array([7, 9]), 2)
    held = receipts._chunks[0][1]
    assert isinstance(held, receipts_module._Packed) and held.offsets is not None and held.offsets.tolist() == [0, 1, 2, 4]
    assert [c.tolist() for c in receipts.columns()] == [[0, 0, 1, 1], [5, 6, 7, 9], [1, 1, 2, 2]]


def test_the_last_intake_keeps_an_ack_order_beyond_32_bits(tmp_path: Path) -> None:
    """A broker's order is its own (a Redis entry id's, milliseconds then a sequence): the
    last intake, which holds a seq_no without acks in 4 bytes, keeps it whole with acks."""
    writer = HistoryWriter(tmp_path / "history")
    window = _batch([0, 1, 2], [100, 200, 300], [0, 0, 0])
    recorder = LiveRecorder(writer, ["a"], ["consumer-0"], acks=True, remake=lambda: iter([window]))
    recorder.take_windows([(window, np.array([150, 250, 350]))], [])
    acks = Acks()
    orders = np.array([1_764_000_000_000 << 20, (1_764_000_000_000 << 20) + 1, 2**31 + 7], dtype=np.int64)
    acks.add_read(np.array([0, 1, 2]), orders, 400)
    recorder.finish(Intake([], Receipts(), acks, [], FAR, []), interrupted=False)
    writer.close()
    messages = read_table(tmp_path / "history", "messages").sort_by("msg_id").to_pydict()
    assert messages["seq_no"] == orders.tolist()
    assert messages["status"] == ["committed"] * 3 and messages["t_committed"] == [400, 400, 400]


def test_the_last_intake_numbers_first_receipts_in_time_order_without_acks(tmp_path: Path) -> None:
    """Without acks seq_no counts first receipts in time order (held narrow, written as int64):
    receipts 2 (t 400), 0 and 2 again (t 500), 1 (t 600) give 2 -> 0, 0 -> 1, 1 -> 2."""
    writer = HistoryWriter(tmp_path / "history")
    window = _batch([0, 1, 2], [100, 200, 300], [0, 0, 0])
    recorder = LiveRecorder(writer, ["a"], ["consumer-0"], acks=False, remake=lambda: iter([window]))
    recorder.take_windows([(window, np.array([150, 250, 350]))], [])
    receipts = Receipts()
    receipts.add_read(0, np.array([2]), 400)
    receipts.add_read(0, np.array([0, 2]), 500)
    receipts.add_read(0, np.array([1]), 600)
    recorder.finish(Intake([], receipts, Acks(), [], FAR, [FAR]), interrupted=False)
    writer.close()
    table = read_table(tmp_path / "history", "messages").sort_by("msg_id")
    assert table.schema.field("seq_no").type == pa.int64()
    messages = table.to_pydict()
    assert messages["seq_no"] == [1, 2, 0] and messages["t_received"] == [500, 600, 400]
