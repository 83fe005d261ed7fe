"""The generator's record (``analysis/generator.py``) from histories written by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_analysis_history import MS, event, message, write_history

from msgstorm.analysis.generator import check_generator, generator_summary


def _rows() -> list[dict[str, Any]]:
    """Ten messages 100 ms apart: 0-3 committed 1 ms after they were meant (sent on time),
    4-5 sent and lost, 6-9 never sent (intended at 600, 700, 800 and 900 ms)."""
    return ([message(i, i * 100 * MS, latency_ns=MS) for i in range(4)]
            + [message(i, i * 100 * MS, status="lost") for i in (4, 5)]
            + [message(i, i * 100 * MS, status="unsent", t_sent=None) for i in range(6, 10)])


def test_unsent_messages_are_the_generators_shortfall(tmp_path: Path) -> None:
    summary = generator_summary(write_history(tmp_path, _rows(), target="nats"))
    # 4 unsent of 10: over 1% left late or never, whatever the six sends' lag (0).
    assert summary is not None and summary["unsent"] == 4 and summary["saturated"] is True


def test_what_the_loss_of_the_server_left_unsent_is_not_the_generators(tmp_path: Path) -> None:
    """The target found its server gone at 550 ms and ended the sending there: the four
    messages meant after it were never sent because of the loss (its node_down says so),
    and the generator, which sent every message before it on time, kept its schedule."""
    down = [event(550 * MS, "node_down", name="nats", url="nats://127.0.0.1:4222", error="gone")]
    history = write_history(tmp_path / "at-550", _rows(), down, target="nats")
    summary = generator_summary(history)
    assert summary is not None and summary["unsent"] == 0 and summary["saturated"] is False
    assert summary["send_lag_ms"]["max"] == 0.0
    assert check_generator(history).status == "valid"
    # Lost at 750 ms: the messages meant at 600 and 700 ms were the generator's to send.
    later = [event(750 * MS, "node_down", name="nats", url="nats://127.0.0.1:4222", error="gone")]
    summary = generator_summary(write_history(tmp_path / "at-750", _rows(), later, target="nats"))
    assert summary is not None and summary["unsent"] == 2 and summary["saturated"] is True
