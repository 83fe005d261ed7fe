"""Signed live payloads: the publisher signs each message, the consumers verify each one.

Place in the pipeline: between ``live/payload.py`` (the bytes a message carries) and the
core-NATS wire client (``drivers/nats.py``), for a run with ``[security]``. A signed payload
is the message's payload (``payload.py``'s layout, check byte included) followed by a
trailer: the chain id and the nonce (the message's id) as little-endian int64s, then the
tag of ``security/crypto.py``'s ``signed_bytes(chain id, sender 0, nonce, payload)``.

A consumer takes a payload as a receipt only when its tag verifies under the run's chain id
and its nonce is new to that consumer; anything else is left out, as a damaged payload is,
and counted: ``tampered`` (the tag failed: a byte changed, or another chain's message) and
``replayed`` (a nonce it had already received). Under ``none`` nothing is signed and the
payloads are ``payload.py``'s.

Written in Python, a call into the crypto library per message: the library's call is the
cost being measured (microseconds for an Ed25519 verification), not the loop around it.
"""

from __future__ import annotations

import struct

import numpy as np

from msgstorm.live.payload import read_ids
from msgstorm.security.crypto import Scheme, make_scheme, signed_bytes

__all__ = ["TRAILER", "PayloadSigner", "PayloadVerifier", "signing_pair"]

TRAILER = struct.Struct("<qq")  # chain id, nonce
_SENDER = 0  # one publisher identity per run


class PayloadSigner:
    """Appends each payload's trailer and tag."""

    def __init__(self, scheme: Scheme, chain_id: int) -> None:
        self.scheme = scheme
        self.chain_id = chain_id

    @property
    def extra_bytes(self) -> int:
        return TRAILER.size + self.scheme.tag_bytes

    def sign(self, data: np.ndarray, ends: np.ndarray, msg_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Packed payloads (``pack_payloads``' ``data, ends``) signed, in the same form."""
        raw = data.tobytes()
        sign = self.scheme.sign
        chain_id = self.chain_id
        pieces: list[bytes] = []
        start = 0
        for end, nonce in zip(ends.tolist(), msg_ids.tolist(), strict=True):
            body = raw[start:end]
            pieces += [body, TRAILER.pack(chain_id, nonce), sign(_SENDER, signed_bytes(chain_id, _SENDER, nonce, body))]
            start = end
        extra = self.extra_bytes
        signed_ends: np.ndarray = ends + extra * np.arange(1, ends.size + 1, dtype=np.int64)
        # Writable (a bytearray's buffer, not bytes'): the wire client's compiled framing was
        # warmed for writable arrays, and a read-only one would compile anew in the first burst.
        return np.frombuffer(bytearray().join(pieces), dtype=np.uint8), signed_ends


class PayloadVerifier:
    """One consumer's verification: the nonces it has received, what it refused."""

    def __init__(self, scheme: Scheme, chain_id: int) -> None:
        self.scheme = scheme
        self.chain_id = chain_id
        self.extra = TRAILER.size + scheme.tag_bytes
        self.seen: set[int] = set()
        self.tampered = 0
        self.replayed = 0

    def read(self, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The ids of the payloads that verify, in order (``read_ids`` of their bodies)."""
        raw = data.tobytes()
        verify = self.scheme.verify
        chain_id = self.chain_id
        extra = self.extra
        tag_bytes = self.scheme.tag_bytes
        keep_starts: list[int] = []
        keep_lengths: list[int] = []
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            if length < extra:
                self.tampered += 1
                continue
            body_end = start + length - extra
            _, nonce = TRAILER.unpack_from(raw, body_end)
            body = bytes(raw[start:body_end])
            tag = bytes(raw[start + length - tag_bytes:start + length])
            if not verify(_SENDER, signed_bytes(chain_id, _SENDER, nonce, body), tag):
                self.tampered += 1
                continue
            if nonce in self.seen:
                self.replayed += 1
                continue
            self.seen.add(nonce)
            keep_starts.append(start)
            keep_lengths.append(length - extra)
        return read_ids(data, np.asarray(keep_starts, dtype=np.int64), np.asarray(keep_lengths, dtype=np.int64))


def signing_pair(scheme_name: str, chain_id: int, seed: int) -> tuple[PayloadSigner, Scheme] | None:
    """The publisher's signer and the scheme consumers verify with; None for ``none``."""
    scheme = make_scheme(scheme_name, seed)
    if scheme is None:
        return None
    return PayloadSigner(scheme, chain_id), scheme
