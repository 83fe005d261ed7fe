"""Real signing and verification of messages, one ``Scheme`` per ``[security] scheme``.

Place in the pipeline: under ``sim/integrity.py`` (``verify = "real"``), the live generator
and consumers (``live/signing.py``) and ``security/costs.py`` (which times these very calls).
The crypto is the ``cryptography`` library's (HMAC-SHA256 and Ed25519 from OpenSSL); msgstorm
writes only the layout of what is signed: ``SIGNED`` (chain id, sender, nonce) followed by the
message's own bytes. A tag covers all of it, so a changed byte, a copy with another chain id
and a copy under another sender fail verification; a copy of the same bytes verifies, and the
receiver rejects it by its nonce (``NonceBook``).

Neither ``cryptography`` nor PyNaCl offers Ed25519 batch verification (one call checking many
signatures at once, cheaper per signature): every message is verified on its own, and the
cost measured is that of one verification.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["SCHEME_CLASSES", "SIGNED", "Ed25519Scheme", "HmacScheme", "NonceBook", "Scheme", "make_scheme",
           "signed_bytes"]

# What precedes a message's bytes in what is signed: chain id, sender, nonce (little-endian).
SIGNED = struct.Struct("<qqq")


def signed_bytes(chain_id: int, sender: int, nonce: int, body: bytes) -> bytes:
    """The bytes a sender signs: ``SIGNED`` then the message's own bytes."""
    return SIGNED.pack(chain_id, sender, nonce) + body


class Scheme(Protocol):
    """One authentication scheme, with a key per sender derived from a seed."""

    name: str
    tag_bytes: int

    def sign(self, sender: int, data: bytes) -> bytes: ...

    def verify(self, sender: int, data: bytes, tag: bytes) -> bool: ...


def _ed25519() -> Any:
    """The library's Ed25519 module, imported when the first key is made: every simulator run
    loads this module (the reactor registry), and a run without Ed25519 should not pay the
    import of OpenSSL's bindings (docs/performance.md)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def _key_seed(seed: int, sender: int) -> bytes:
    """32 bytes of key material for one sender, from the run's seed (a run's keys are the
    same every time, so its outcome is too)."""
    return hashlib.sha256(struct.pack("<qq", seed, sender)).digest()


@dataclass
class HmacScheme:
    """HMAC-SHA256 with a key shared between each sender and the receivers."""

    seed: int
    name: str = "hmac-sha256"
    tag_bytes: int = 32
    _keys: dict[int, bytes] = field(default_factory=dict)

    def _key(self, sender: int) -> bytes:
        key = self._keys.get(sender)
        if key is None:
            key = self._keys[sender] = _key_seed(self.seed, sender)
        return key

    def sign(self, sender: int, data: bytes) -> bytes:
        return hmac.digest(self._key(sender), data, "sha256")

    def verify(self, sender: int, data: bytes, tag: bytes) -> bool:
        return hmac.compare_digest(hmac.digest(self._key(sender), data, "sha256"), tag)


@dataclass
class Ed25519Scheme:
    """Ed25519: each sender signs with its private key, receivers verify with its public key."""

    seed: int
    name: str = "ed25519"
    tag_bytes: int = 64
    _private: dict[int, Ed25519PrivateKey] = field(default_factory=dict)
    _public: dict[int, Ed25519PublicKey] = field(default_factory=dict)

    def _keys(self, sender: int) -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
        private = self._private.get(sender)
        if private is None:
            private = self._private[sender] = _ed25519().Ed25519PrivateKey.from_private_bytes(
                _key_seed(self.seed, sender))
            self._public[sender] = private.public_key()
        return private, self._public[sender]

    def sign(self, sender: int, data: bytes) -> bytes:
        return self._keys(sender)[0].sign(data)

    def verify(self, sender: int, data: bytes, tag: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature  # loaded with the keys (``_ed25519``)

        try:
            self._keys(sender)[1].verify(tag, data)
        except InvalidSignature:
            return False
        return True


SCHEME_CLASSES: dict[str, type[HmacScheme] | type[Ed25519Scheme]] = {
    "hmac-sha256": HmacScheme, "ed25519": Ed25519Scheme}


def make_scheme(name: str, seed: int) -> Scheme | None:
    """The scheme called ``name`` with keys from ``seed``; None for ``"none"``."""
    if name == "none":
        return None
    return SCHEME_CLASSES[name](seed)


class NonceBook:
    """What a receiver remembers of nonces: the message each ``(sender, nonce)`` first came
    with. The same message again (sent again after a crash) is not a replay; another message
    under a nonce already seen is."""

    def __init__(self) -> None:
        self._first: dict[tuple[int, int], int] = {}

    def fresh(self, sender: int, nonce: int, msg_id: int) -> bool:
        first = self._first.setdefault((sender, nonce), msg_id)
        return first == msg_id
