"""When the validators' target decodes a WebSocket message: in the sender's gaps
(``live/chain/comet_target.py``'s ``may_decode``)."""

from __future__ import annotations

from msgstorm.live.chain.comet_target import may_decode

MS = 1_000_000


def test_a_block_is_decoded_only_when_the_next_send_is_far_enough_off() -> None:
    # 20,000 characters need 1 ms + 20,000 x 60 ns = 2.2 ms before the next send.
    assert may_decode(next_send=10 * MS + 2_300_000, now=10 * MS, chars=20_000, held_chars=20_000)
    assert not may_decode(next_send=10 * MS + 2_200_000, now=10 * MS, chars=20_000, held_chars=20_000)
    # 30,000 characters need 2.8 ms: not in a 2.3 ms gap.
    assert not may_decode(next_send=10 * MS + 2_300_000, now=10 * MS, chars=30_000, held_chars=30_000)


def test_a_send_already_due_leaves_no_gap() -> None:
    assert not may_decode(next_send=10 * MS, now=11 * MS, chars=10, held_chars=10)


def test_everything_is_decoded_once_the_sending_is_over() -> None:
    assert may_decode(next_send=None, now=0, chars=10_000_000, held_chars=10_000_000)


def test_too_much_held_is_decoded_whatever_the_schedule() -> None:
    held = 64 << 20
    assert not may_decode(next_send=MS, now=MS, chars=100, held_chars=held)
    assert may_decode(next_send=MS, now=MS, chars=100, held_chars=held + 1)
