"""Keepers' nonces (``market/nonces.py``): a nonce-ordered keeper has one transaction out, and
a stuck one holds back its later ones until it is mined."""

from __future__ import annotations

from pathlib import Path

from msgstorm import read_history, run
from msgstorm.market.nonces import Nonces
from msgstorm.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
S = 1_000_000_000


def _handler(t: int, a: int, b: int, c: int, d: int) -> None:  # a send the queue holds; never run here
    raise AssertionError("not run")


def test_a_send_waits_behind_a_stuck_transaction_in_order() -> None:
    nonces = Nonces([True, False])
    assert not nonces.holds(0, 5.0, _handler, 1, 0, 0, 0)  # nothing out: it goes
    nonces.sent(0, 10, 6.0)
    assert not nonces.holds(0, 5.0, _handler, 1, 0, 0, 0)  # 10 is priced above the base fee: not stuck
    nonces.sent(0, 11, 6.0)
    nonces.sent(1, 20, 1.0)  # keeper 1 is not nonce-ordered: nothing of it is kept
    assert not nonces.holds(1, 5.0, _handler, 4, 0, 0, 0)
    assert nonces.holds(0, 7.0, _handler, 2, 0, 0, 0)  # the base fee rose: 10 and 11 are stuck
    assert nonces.holds(0, 5.0, _handler, 3, 0, 0, 0)  # not stuck now, but 2 waits before it
    assert nonces.mined(20) is None
    assert nonces.next(0, 7.0) is None  # still stuck
    assert nonces.mined(10) == 0 and nonces.next(0, 7.0) is None  # 11 is stuck still
    assert nonces.mined(11) == 0
    assert nonces.next(0, 7.0) == (_handler, 2, 0, 0, 0)
    assert not nonces.holds(0, 7.0, _handler, 2, 0, 0, 0)  # its turn: it goes, though 3 waits
    nonces.sent(0, 12, 5.0)  # priced below the base fee of 7: stuck at once
    assert nonces.next(0, 7.0) is None  # 3 waits behind 12
    assert nonces.mined(12) == 0 and nonces.next(0, 7.0) == (_handler, 3, 0, 0, 0) and nonces.next(0, 7.0) is None
    assert nonces.held == 2


def _keeper_messages(tmp_path: Path, nonce_order: bool) -> list[tuple[int, int]]:
    """The keeper's (t_sent, t_committed) in a run where the base fee is 100 from 2.5 s to
    4 s and the keeper pays a fixed 10: its liquidations of the 10 accounts (past their line
    from about 2.5 s on a 20% fall) wait in the pool until 4 s."""
    fees = tmp_path / f"fees-{nonce_order}.csv"
    fees.write_text("t,base_fee\n0,1\n2.5,100\n4,1\n")
    overrides = ['market.instruments.0.shocks=[{at="2s", fall="20%", over="2s"}]', "market.instruments.0.volatility=\"0%/s\"",
                 f'backpressure={{mode="eip1559", base_fee_file="{fees}"}}', "market.oracle.fee=1000",
                 "market.keepers.0.fee=10", f"market.keepers.0.nonce_order={str(nonce_order).lower()}"]
    result = run(load_scenario(str(EXAMPLES / "leverage-latency.toml"), overrides), tmp_path / f"run-{nonce_order}")
    messages = read_history(result.run_dir).table("messages")
    rows = [(sent, committed) for agent, sent, committed in zip(
        messages.column("agent").to_pylist(), messages.column("t_sent").to_pylist(),
        messages.column("t_committed").to_pylist(), strict=True) if agent == "keepers"]
    return sorted(rows)


def test_a_stuck_transaction_holds_back_the_keepers_later_ones(tmp_path: Path) -> None:
    """Without nonce order the keeper's liquidations are out together and commit together
    once the base fee falls at 4 s; with it, the first waits in the pool until 4 s and the
    rest go out only once it is mined."""
    free = _keeper_messages(tmp_path, False)
    assert len(free) >= 10 and all(committed is not None for _, committed in free)
    assert sum(1 for sent, _ in free if sent < 4 * S) >= 2  # several out at once while the fee is high
    ordered = _keeper_messages(tmp_path, True)
    assert len(ordered) >= 10 and all(committed is not None for _, committed in ordered)
    first_sent, first_committed = ordered[0]
    assert first_sent < 4 * S <= first_committed  # stuck until the base fee fell
    assert all(sent >= first_committed for sent, _ in ordered[1:])  # nothing went out before it was mined
