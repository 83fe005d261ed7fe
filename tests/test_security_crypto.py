"""Real signing and verification (security/crypto.py) and the measured cost
(security/costs.py, `msgstorm calibrate crypto`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.errors import DataFileError
from msgstorm.security.costs import COSTS_ENV, load_costs, resolve_verify_cost
from msgstorm.security.crypto import NonceBook, make_scheme, signed_bytes


@pytest.mark.parametrize("name", ["hmac-sha256", "ed25519"])
def test_a_tag_covers_the_chain_the_sender_the_nonce_and_every_byte(name: str) -> None:
    scheme = make_scheme(name, seed=5)
    assert scheme is not None
    body = bytes(range(40))
    data = signed_bytes(1, 3, 77, body)
    tag = scheme.sign(3, data)
    assert len(tag) == scheme.tag_bytes
    assert scheme.verify(3, data, tag)
    for position in range(len(data)):  # any one byte changed
        changed = bytearray(data)
        changed[position] ^= 0x40
        assert not scheme.verify(3, bytes(changed), tag)
    assert not scheme.verify(3, signed_bytes(2, 3, 77, body), tag)  # another chain id
    assert not scheme.verify(4, signed_bytes(1, 4, 77, body), tag)  # another sender
    assert not scheme.verify(3, signed_bytes(1, 3, 78, body), tag)  # another nonce
    # Keys come from the seed: the same seed signs the same way (HMAC and Ed25519 are deterministic).
    again = make_scheme(name, seed=5)
    assert again is not None and again.sign(3, data) == tag
    other = make_scheme(name, seed=6)
    assert other is not None and not other.verify(3, data, tag)


def test_none_signs_nothing() -> None:
    assert make_scheme("none", seed=1) is None


def test_a_nonce_is_fresh_for_its_first_message_only() -> None:
    book = NonceBook()
    assert book.fresh(1, 10, msg_id=100)
    assert book.fresh(1, 10, msg_id=100)  # the same message again (resent after a crash)
    assert not book.fresh(1, 10, msg_id=200)  # another message under that nonce: a replay
    assert book.fresh(2, 10, msg_id=200)  # the nonce is the sender's own


def test_calibrate_crypto_measures_stores_and_a_run_uses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "costs.json"
    monkeypatch.setenv(COSTS_ENV, str(path))
    result = CliRunner().invoke(app, ["calibrate", "crypto"])
    assert result.exit_code == 0, result.output
    costs = load_costs(path)
    assert costs is not None and set(costs.schemes) == {"hmac-sha256", "ed25519"}
    for cost in costs.schemes.values():
        assert cost.sign_ns > 0 and cost.verify_ns > 0
    assert "ed25519: sign" in result.output and str(path) in result.output
    used = resolve_verify_cost("ed25519", None)
    assert used.verify_ns == round(costs.schemes["ed25519"].verify_ns) and used.source == str(path)
    assert resolve_verify_cost("ed25519", 5_000).verify_ns == 5_000  # the scenario's own wins


def test_no_calibration_names_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="msgstorm calibrate crypto"):
        resolve_verify_cost("hmac-sha256", None, tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"schemes": 3}))
    with pytest.raises(DataFileError, match="not a crypto calibration"):
        resolve_verify_cost("hmac-sha256", None, broken)
