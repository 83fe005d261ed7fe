"""Latency percentiles, stage split, jitter and RFC 3393 IPDV on hand-built histories."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from test_analysis_history import MS, message, write_history

from msgstorm.analysis import _common as common_module
from msgstorm.analysis import latency as latency_module
from msgstorm.analysis._common import MessageArrays, percentile, percentiles
from msgstorm.analysis.latency import (
    ipdv_ms,
    jitter_ms,
    latency_and_jitter_ms,
    latency_ms,
    stage_breakdown_ms,
)


def test_percentiles_are_exact_nearest_rank(tmp_path: Path) -> None:
    rows = [message(i, i * MS, latency_ns=(i + 1) * MS) for i in range(100)]  # 1..100 ms
    random.Random(3).shuffle(rows)  # rows are not sorted by msg_id in real histories
    rows.append(message(100, 0, status="dropped"))  # no latency: not counted
    arrays = MessageArrays.from_history(write_history(tmp_path, rows))
    assert latency_ms(arrays.latency_ns()) == {
        "p50": 50.0,
        "p90": 90.0,
        "p99": 99.0,
        "p999": 100.0,
        "max": 100.0,
        "mean": 50.5,
    }


def test_latency_is_rounded_to_microseconds() -> None:
    result = latency_ms(np.array([1_234_567], dtype=np.int64))
    assert result["p50"] == 1.235
    assert result["mean"] == 1.235


def test_empty_population_gives_nulls() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert set(latency_ms(empty).values()) == {None}
    assert jitter_ms(empty) == {"stddev": None, "p99_minus_p50": None}


def test_stage_split_of_committed_messages(tmp_path: Path) -> None:
    rows = [
        message(1, 0, stages_ns=(10 * MS, 20 * MS, 1 * MS, 100 * MS)),
        message(2, 5 * MS, stages_ns=(30 * MS, 40 * MS, 3 * MS, 200 * MS)),
        # reached the sequencer but was never committed: not part of the latency split
        message(3, 0, status="pending", t_received=900 * MS, t_dequeued=990 * MS),
    ]
    stages = stage_breakdown_ms(MessageArrays.from_history(write_history(tmp_path, rows)))
    assert stages == {
        "propagation": {"p50": 10.0, "p99": 30.0},
        "queue_wait": {"p50": 20.0, "p99": 40.0},
        "service": {"p50": 1.0, "p99": 3.0},
        "block_wait": {"p50": 100.0, "p99": 200.0},
    }


def test_jitter_is_stddev_and_p99_minus_p50() -> None:
    latency = np.array([10, 10, 20, 20], dtype=np.int64) * MS
    assert jitter_ms(latency) == {"stddev": 5.0, "p99_minus_p50": 10.0}


def test_ipdv_per_agent_stream_in_intended_order(tmp_path: Path) -> None:
    rows = [
        # stream a: delays 5, 7, 4, 4 ms in t_intended order -> |IPDV| 2, 3, 0
        message(4, 30 * MS, latency_ns=4 * MS, agent="a"),
        message(1, 0, latency_ns=5 * MS, agent="a"),
        message(3, 20 * MS, latency_ns=4 * MS, agent="a"),
        message(2, 10 * MS, latency_ns=7 * MS, agent="a"),
        message(9, 25 * MS, status="dropped", agent="a"),  # not committed: skipped
        # stream b: delays 10, 11 -> |IPDV| 1; never paired with stream a
        message(5, 5 * MS, latency_ns=10 * MS, agent="b"),
        message(6, 15 * MS, latency_ns=11 * MS, agent="b"),
        # a stream of one message has no IPDV
        message(7, 0, latency_ns=90 * MS, agent="c"),
    ]
    result = ipdv_ms(MessageArrays.from_history(write_history(tmp_path, rows)))
    assert result == {"ipdv_mean": 1.5, "ipdv_p99": 3.0}


def test_ipdv_without_pairs_is_null(tmp_path: Path) -> None:
    rows = [message(1, 0, latency_ns=MS, agent="a"), message(2, 0, latency_ns=MS, agent="b")]
    assert ipdv_ms(MessageArrays.from_history(write_history(tmp_path, rows))) == {
        "ipdv_mean": None,
        "ipdv_p99": None,
    }


@pytest.mark.parametrize("seed", range(6))
def test_percentiles_in_one_partition_are_each_percentile(seed: int) -> None:
    """Several ranks selected at once give what one call per percentile gives, in the
    order asked, with ties and repeated qs, on the caller's copy or a scratch array."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    values = rng.integers(0, 50 if seed % 2 else 10**9, n)
    qs = (99.9, 50.0, 0.0, 100.0, 90.0, 50.0, float(rng.uniform(0, 100)))
    expected = [percentile(values, q) for q in qs]
    kept = values.copy()
    assert percentiles(values, qs) == expected
    assert np.array_equal(values, kept), "without scratch the array is left as it was"
    assert percentiles(values.copy(), qs, scratch=True) == expected


def test_latency_and_jitter_from_one_partition_are_latency_ms_and_jitter_ms_of_before() -> None:
    rng = np.random.default_rng(7)
    latency_ns = rng.integers(1, 10**8, 20_001)
    latency, jitter, taken = latency_and_jitter_ms(latency_ns.copy(), scratch=True)
    ms = lambda ns: round(float(ns) / 1e6, 3)  # noqa: E731
    assert latency == {"p50": ms(percentile(latency_ns, 50)), "p90": ms(percentile(latency_ns, 90)),
                       "p99": ms(percentile(latency_ns, 99)), "p999": ms(percentile(latency_ns, 99.9)),
                       "max": ms(latency_ns.max()), "mean": ms(latency_ns.mean())}
    assert jitter == {"stddev": ms(np.std(latency_ns.astype(np.float64))),
                      "p99_minus_p50": ms(percentile(latency_ns, 99) - percentile(latency_ns, 50))}
    assert taken == {q: percentile(latency_ns, q) for q in (50.0, 90.0, 99.0, 99.9)}
    assert (latency_ms(latency_ns), jitter_ms(latency_ns)) == (latency, jitter)
    empty = latency_and_jitter_ms(np.zeros(0, dtype=np.int64))
    assert empty[0]["p50"] is None and empty[1]["stddev"] is None and empty[2] == {}


def test_stddev_is_numpys_to_the_last_bit() -> None:
    """The jitter's standard deviation, taken on one float copy changed in place, is
    ``np.std`` of the float64 latencies bit for bit (the summary's numbers may not move)."""
    rng = np.random.default_rng(11)
    for size in (1, 2, 7, 1000, 250_001):
        values = (rng.lognormal(16, 2, size)).astype(np.int64)
        assert latency_module._stddev(values) == float(np.std(values.astype(np.float64)))
    assert latency_module._stddev(np.array([10, 20, 30, 40], dtype=np.int64)) == np.sqrt(125.0)  # deviations 15, 5


def test_abs_diff_in_place_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """|IPDV| written over the latencies three at a time: each difference reads the next
    latency before the next chunk overwrites it."""
    monkeypatch.setattr(latency_module, "_DIFF_CHUNK", 3)
    values = np.array([5, 9, 4, 4, 10, 1, 3, 20], dtype=np.int64)
    assert latency_module._abs_diff_in_place(values).tolist() == [4, 5, 0, 6, 9, 2, 17]
    assert latency_module._abs_diff_in_place(np.array([7], dtype=np.int64)).tolist() == []


def test_masked_latency_is_gathered_a_chunk_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``latency_ns`` of some messages, gathered two rows at a time: the committed ones in
    the mask, in row order."""
    monkeypatch.setattr(common_module, "_LATENCY_CHUNK", 2)
    rows = [message(i, i * 100 * MS, latency_ns=(i + 1) * MS) for i in range(5)] + [message(5, 600 * MS)]
    messages = MessageArrays(write_history(tmp_path, rows))
    mask = np.array([True, False, True, True, False, True])
    assert messages.latency_ns(mask).tolist() == [1 * MS, 3 * MS, 4 * MS]  # the sixth is not committed
    assert messages.latency_ns().tolist() == [1 * MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS]


def test_ipdv_send_order_is_checked_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows checked for (t_intended, msg_id) order two at a time: msg_ids 2 and 1 tie at
    100 ms in the rows on either side of a chunk's end (an uncommitted row between them),
    so the stream is sorted first: latencies 10, 15, 30 ms give |IPDV| 5 and 15 (in row
    order they would be 20 and 15)."""
    monkeypatch.setattr(latency_module, "_DIFF_CHUNK", 2)
    rows = [message(0, 0, latency_ns=10 * MS), message(2, 100 * MS, latency_ns=30 * MS),
            message(5, 150 * MS), message(1, 100 * MS, latency_ns=15 * MS)]
    assert ipdv_ms(MessageArrays(write_history(tmp_path / "tied", rows))) == {"ipdv_mean": 10.0, "ipdv_p99": 15.0}
    in_order = [message(0, 0, latency_ns=10 * MS), message(1, 100 * MS, latency_ns=30 * MS),
                message(5, 150 * MS), message(6, 200 * MS, latency_ns=15 * MS)]
    assert ipdv_ms(MessageArrays(write_history(tmp_path / "ordered", in_order))) == {"ipdv_mean": 17.5,
                                                                                       "ipdv_p99": 20.0}
