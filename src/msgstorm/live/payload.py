"""What a live message carries: its id and key, padded to its size.

Place in the pipeline: under both ``target.py`` (which sends the traffic model's messages
and reads the ids back from what consumers receive) and the drivers (the core-NATS wire
client frames many payloads at once from columns, ``drivers/nats_wire.py``). Every payload
starts with the message's id and key as little-endian int64s (``HEADER``); the rest is zero
padding up to the message's size, so a payload is ``max(size, HEADER.size)`` bytes, except
its last byte, which is a check of the header (the XOR of its 16 bytes, ``_check``). A payload
changed in flight (the fault proxy's ``corrupt`` toxic, a broken link) therefore reads as
damaged, not as a receipt: any one byte changed in a padded payload is caught. A 16-byte
payload has no room for the check, so a scenario with a ``corrupt`` toxic is refused at
validation when an agent's size can be 16 bytes or less (``live/faults/toxic.py``).

The layout has one Python form (``payload``, ``message_id``: one message at a time, for
drivers that publish and receive one message per call) and one compiled form for whole
bursts (``pack_payloads``, ``read_ids``: the hot loop of a burst-driven run, where a
Python step per message would cost more than the broker's work). Tests hold the two to
the same bytes on random inputs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from msgstorm.jit import nb
from msgstorm.scenario.budget import STAGED_MESSAGES

__all__ = ["HEADER", "STAGED_BYTES", "Staged", "StoredCopy", "message_id", "pack_payloads", "payload", "read_ids",
           "readable_ids", "slice_ends", "warm_up"]

HEADER = struct.Struct("<qq")
_ID_BYTES = 8
# A generator builds a slice's payloads and frames while its clock runs: at most
# ``STAGED_MESSAGES`` messages, and no more payload bytes than this beyond a slice's first
# message, so that messages of a megabyte do not stall the first send behind building
# gigabytes (building runs at a few hundred MB/s: about 3 ms a slice at most).
STAGED_BYTES = 1 << 20


def _check(header: bytes) -> int:
    """The check byte of a payload's 16-byte header: the XOR of its bytes. Written out by
    hand, and deliberately again in the compiled forms (``pack_payloads``, ``read_ids``, whose
    loops cannot call Python); ``tests/test_live_payload.py`` holds the copies to this one on
    random headers."""
    check = 0
    for byte in header:
        check ^= byte
    return check


def payload(msg_id: int, key: int, size: int) -> bytes:
    """One message's payload."""
    header = HEADER.pack(msg_id, key)
    padding = max(size - HEADER.size, 0)
    return header if not padding else header + bytes(padding - 1) + bytes((_check(header),))


def message_id(data: bytes) -> int | None:
    """The id a payload carries; None when it is too short to carry one or damaged (its
    padding or check byte not what msgstorm writes): not a receipt of any message."""
    if len(data) < HEADER.size:
        return None
    if len(data) > HEADER.size and (data[-1] != _check(data[:HEADER.size]) or any(data[HEADER.size:-1])):
        return None
    return int(HEADER.unpack_from(data)[0])


def readable_ids(payloads: list[bytes]) -> tuple[list[int], int]:
    """The ids the payloads carry, in order, and how many were left out (``message_id`` is
    None): a payload changed before a broker stored it (an upstream ``corrupt`` toxic) is
    not filed under another message's id."""
    ids = [msg_id for data in payloads if (msg_id := message_id(data)) is not None]
    return ids, len(payloads) - len(ids)


class StoredCopy:
    """A broker's copy of the stream read back after the run: the ids its payloads carry
    (in the broker's order) and how many carried none (``damaged``, see ``readable_ids``).
    Taken a page of payloads at a time (``add``), so a read-back holds 8 bytes a stored
    message rather than every payload (a bytes object each, about 200 bytes at 128 B).
    ``len``: the payloads read, damaged ones included."""

    def __init__(self) -> None:
        self._pages: list[np.ndarray] = []
        self.damaged = 0
        self._count = 0

    def add(self, payloads: Iterable[bytes]) -> None:
        page = list(payloads)
        ids, damaged = readable_ids(page)
        self._pages.append(np.asarray(ids, dtype=np.int64))
        self.damaged += damaged
        self._count += len(page)

    def add_ids(self, ids: np.ndarray, damaged: int) -> None:
        """A page already read: its readable ids (int64, in order) and how many payloads in
        it carried none."""
        self._pages.append(np.asarray(ids, dtype=np.int64))
        self.damaged += damaged
        self._count += int(ids.size) + damaged

    def __len__(self) -> int:
        return self._count

    @property
    def ids(self) -> np.ndarray:
        """The readable ids, int64, in the broker's order."""
        return np.concatenate(self._pages) if self._pages else np.zeros(0, dtype=np.int64)


def slice_ends(sizes: np.ndarray) -> list[int]:
    """Where the generator's slices of messages of ``sizes`` end (positions): each holds at
    most ``STAGED_MESSAGES`` messages and, past its first, payloads of at most
    ``STAGED_BYTES`` in all (a payload is at least ``HEADER.size`` bytes)."""
    total = np.cumsum(np.maximum(sizes, HEADER.size))
    ends: list[int] = []
    first, before = 0, 0
    while first < sizes.size:
        fits = int(np.searchsorted(total, before + STAGED_BYTES, side="right"))
        last = min(max(fits, first + 1), first + STAGED_MESSAGES, sizes.size)
        ends.append(last)
        first, before = last, int(total[last - 1])
    return ends


@nb.njit(cache=True)
def _put_int64(out: np.ndarray, position: int, value: int) -> None:
    """``value`` as 8 little-endian bytes at ``out[position:]``."""
    for k in range(_ID_BYTES):
        out[position + k] = (value >> (8 * k)) & 0xFF


@dataclass
class Staged:
    """Messages a wire publisher laid out and has not all written yet (``pack_payloads``'s
    output): message i is ``data[ends[i]:ends[i + 1]]``, of id ``msg_ids[i]``; ``taken`` of
    them written."""

    msg_ids: list[int]
    data: memoryview
    ends: list[int]
    taken: int = 0


@nb.njit(cache=True)
def pack_payloads(msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The payloads of a burst back to back (uint8), and where each one ends (int64)."""
    n = msg_ids.size
    ends = np.empty(n, dtype=np.int64)
    total = 0
    for i in range(n):
        total += max(sizes[i], 2 * _ID_BYTES)
        ends[i] = total
    out = np.zeros(total, dtype=np.uint8)
    start = 0
    for i in range(n):
        _put_int64(out, start, msg_ids[i])
        _put_int64(out, start + _ID_BYTES, keys[i])
        if ends[i] - start > 2 * _ID_BYTES:
            check = 0  # ``_check``, compiled (a deliberate copy; tested against it)
            for k in range(2 * _ID_BYTES):
                check ^= out[start + k]
            out[ends[i] - 1] = check
        start = ends[i]
    return out, ends


@nb.njit(cache=True)
def read_ids(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The ids carried by the payloads at ``data[starts[i]:starts[i] + lengths[i]]``, in
    order, leaving out payloads too short to carry one or damaged (``message_id`` is None)."""
    ids = np.empty(starts.size, dtype=np.int64)
    count = 0
    for i in range(starts.size):
        if lengths[i] < 2 * _ID_BYTES:
            continue
        if lengths[i] > 2 * _ID_BYTES:
            check = 0  # ``_check``, compiled (a deliberate copy; tested against it)
            for k in range(2 * _ID_BYTES):
                check ^= data[starts[i] + k]
            intact = data[starts[i] + lengths[i] - 1] == check
            for k in range(starts[i] + 2 * _ID_BYTES, starts[i] + lengths[i] - 1):
                if data[k] != 0:
                    intact = False
                    break
            if not intact:
                continue
        value = 0
        for k in range(_ID_BYTES):
            value |= int(data[starts[i] + k]) << (8 * k)
        ids[count] = value
        count += 1
    return ids[:count]


def warm_up() -> None:
    """Compile (or load from numba's cache) the burst forms for the column types a run
    passes them (``MessageBatch``'s), so that the first burst does not wait for the compiler."""
    data, ends = pack_payloads(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int32))
    assert read_ids(data, ends - ends, ends).tolist() == [0]
