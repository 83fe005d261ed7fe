"""A live message's payload: the burst forms (compiled) lay out and read back exactly the
bytes of the one-message forms, on random messages."""

from __future__ import annotations

import numpy as np
import pytest

from msgstorm.live.payload import (
    HEADER,
    STAGED_BYTES,
    StoredCopy,
    _check,
    message_id,
    pack_payloads,
    payload,
    read_ids,
    slice_ends,
)


def _messages(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=n, dtype=np.int64, endpoint=True)
    keys = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=n, dtype=np.int64, endpoint=True)
    sizes = rng.choice(np.array([0, 1, 15, 16, 17, 64, 128, 1000, 70_000], dtype=np.int32), size=n)
    return ids, keys, sizes


@pytest.mark.parametrize("seed", range(5))
def test_packed_payloads_are_the_one_message_payloads_back_to_back(seed: int) -> None:
    ids, keys, sizes = _messages(np.random.default_rng(seed), 200)
    data, ends = pack_payloads(ids, keys, sizes)
    expected = [payload(i, k, s) for i, k, s in zip(ids.tolist(), keys.tolist(), sizes.tolist())]
    assert data.tobytes() == b"".join(expected)
    assert ends.tolist() == np.cumsum([len(p) for p in expected]).tolist()
    assert min(len(p) for p in expected) >= HEADER.size  # a short message still carries its id


def test_an_empty_burst_packs_to_nothing() -> None:
    data, ends = pack_payloads(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32))
    assert data.size == 0 and ends.size == 0


@pytest.mark.parametrize("seed", range(5))
def test_read_ids_reads_what_message_id_reads_and_skips_short_payloads(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids, keys, sizes = _messages(rng, 100)
    received = [payload(i, k, s) for i, k, s in zip(ids.tolist(), keys.tolist(), sizes.tolist())]
    # Payloads nobody in msgstorm sent: too short to carry an id, or just long enough.
    received += [rng.bytes(int(n)) for n in rng.integers(0, 24, size=40)]
    rng.shuffle(received)  # type: ignore[arg-type]
    starts = np.cumsum([0] + [len(p) for p in received])[:-1].astype(np.int64)
    lengths = np.asarray([len(p) for p in received], dtype=np.int64)
    data = np.frombuffer(b"".join(received), dtype=np.uint8)
    expected = [message_id(p) for p in received]
    assert read_ids(data, starts, lengths).tolist() == [m for m in expected if m is not None]
    # Every payload msgstorm made is read; too short ones never are (random bytes of 17-23
    # almost never pass the check byte and the zero padding either).
    assert set(ids.tolist()) <= set(expected)
    assert expected.count(None) >= sum(len(p) < HEADER.size for p in received) > 0


@pytest.mark.parametrize("size", [17, 64, 250])
def test_any_one_byte_changed_in_a_padded_payload_reads_as_damaged(size: int) -> None:
    """A payload changed in flight (the fault proxy's corrupt toxic) is no receipt: every
    position, each a few ways, in both forms."""
    original = payload(123456789, 42, size)
    assert message_id(original) == 123456789
    rng = np.random.default_rng(size)
    for position in range(size):
        for flip in rng.integers(1, 256, size=3).tolist():
            damaged = bytearray(original)
            damaged[position] ^= flip
            assert message_id(bytes(damaged)) is None, (position, flip)
            data = np.frombuffer(bytes(damaged), dtype=np.uint8)
            assert read_ids(data, np.zeros(1, dtype=np.int64), np.array([size], dtype=np.int64)).size == 0


@pytest.mark.parametrize("seed", range(3))
def test_the_compiled_check_bytes_are_the_python_check_byte(seed: int) -> None:
    """``_check`` and its compiled copies: the byte ``pack_payloads`` writes is ``_check`` of
    the header, and ``read_ids`` accepts a payload exactly when its last byte is that."""
    rng = np.random.default_rng(seed)
    headers = [rng.bytes(HEADER.size) for _ in range(300)]
    ids = np.asarray([HEADER.unpack(h)[0] for h in headers], dtype=np.int64)
    keys = np.asarray([HEADER.unpack(h)[1] for h in headers], dtype=np.int64)
    data, ends = pack_payloads(ids, keys, np.full(len(headers), 32, dtype=np.int32))
    assert data.reshape(-1, 32)[:, -1].tolist() == [_check(h) for h in headers]
    # The last byte right for half of them, any other for the rest.
    received = []
    for k, header in enumerate(headers):
        last = _check(header) if k % 2 else int(rng.integers(0, 256))
        received.append(header + bytes(15) + bytes((last,)))
    starts = np.arange(len(received), dtype=np.int64) * 32
    lengths = np.full(len(received), 32, dtype=np.int64)
    read = read_ids(np.frombuffer(b"".join(received), dtype=np.uint8), starts, lengths).tolist()
    assert read == [m for p in received if (m := message_id(p)) is not None]
    assert len(read) >= len(headers) // 2


def test_a_stored_copy_taken_a_page_at_a_time_keeps_the_readable_ids_in_order_and_counts_the_damaged() -> None:
    damaged = bytearray(payload(5, 1, 40))
    damaged[20] ^= 1
    copy = StoredCopy()
    assert len(copy) == 0 and copy.ids.tolist() == [] and copy.damaged == 0
    copy.add([payload(7, 0, 40), bytes(damaged), payload(3, 2, 16)])
    copy.add(iter([b"x", payload(9, 0, 128)]))
    copy.add([])
    assert copy.ids.tolist() == [7, 3, 9] and copy.ids.dtype == np.int64
    assert copy.damaged == 2 and len(copy) == 5


def test_a_slice_holds_at_most_2048_messages_or_a_megabyte_of_payloads_past_its_first() -> None:
    """Small messages: 2,048 a slice. Messages of 900 kB: one each (a second would pass
    1 MiB), so the first send never waits for a whole window's payloads to be built. Two of
    400 kB fit (800,000 B), a third does not; a 16-byte payload counts 16 B however small
    its size (the header), so 400 kB + 16 B + 16 B follow in one slice."""
    assert STAGED_BYTES == 1_048_576
    assert slice_ends(np.full(5000, 64, dtype=np.int64)) == [2048, 4096, 5000]
    assert slice_ends(np.full(3, 900_000, dtype=np.int64)) == [1, 2, 3]
    assert slice_ends(np.array([400_000, 400_000, 400_000, 1, 16], dtype=np.int64)) == [2, 5]
    assert slice_ends(np.array([2_000_000, 10], dtype=np.int64)) == [1, 2]
    assert slice_ends(np.zeros(0, dtype=np.int64)) == []
