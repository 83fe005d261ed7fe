"""report/text.py: how numbers, durations and a broker's replies read, terminal and page alike."""

from __future__ import annotations

import pytest

from msgstorm.report.text import broker_said, duration_ms, duration_s, number


@pytest.mark.parametrize(("ms", "shown"), [
    (0.1234, "0.123 ms"), (8.7, "8.7 ms"), (999.4, "999.4 ms"), (1000.0, "1 s"), (1234.0, "1.23 s"),
    (15_196.447, "15.2 s"), (65_230.839, "65.2 s"), (152_000.0, "152 s"), (599_400.0, "599 s"),
    (972_000.0, "16.2 min"), (1_234_567.0, "20.6 min"), (4_861_000.0, "81 min"), (7_199_000.0, "120 min"),
    (14_031_000.0, "3.9 h"), (42_459_000.0, "11.8 h"), (86_400_000.0, "24 h"), (13_008.562, "13 s"),
    (None, "—"), (0, "0 ms"),
])
def test_a_duration_reads_in_the_unit_that_fits_it(ms: float | None, shown: str) -> None:
    """Milliseconds below a second, seconds below ten minutes, minutes below two hours, hours
    from there on, each with three significant digits: a day-long run's latencies read as
    "3.9 h", not "14,031 s"."""
    assert duration_ms(ms) == shown


@pytest.mark.parametrize(("seconds", "shown"), [
    (2.64946, "2.64946 s"), (0.02, "0.02 s"), (59.5, "59.5 s"), (65.25, "1 min 5.25 s"),
    (43_212.2, "12 h 0 min 12.2 s"), (86_400.0, "24 h 0 min 0 s"),
])
def test_a_time_into_the_run_reads_in_hours_and_minutes_past_a_minute(seconds: float, shown: str) -> None:
    from msgstorm.report.text import run_time_s

    assert run_time_s(seconds) == shown


def test_seconds_read_by_the_same_rule() -> None:
    assert duration_s(15.196447) == "15.2 s" and duration_s(0.0087) == "8.7 ms" and duration_s(None) == "—"


def test_numbers_keep_their_rules() -> None:
    assert number(2890.101, "/s") == "2,890/s" and number(12.345, "/s") == "12.3/s"
    assert number(1_234_567) == "1,234,567" and number(0.1234) == "0.123" and number(True) == "yes"


@pytest.mark.parametrize(("said", "shown"), [
    ("NATS/1.0 503\r\nNats-Subject: msgstorm.orders\r\n\r\n", "503 no responders"),
    ("NATS/1.0 408 Request Timeout\r\n\r\n", "408 Request Timeout"),
    ('{"error": {"code": 503, "err_code": 10077, "description": "JetStream system temporarily unavailable"}}',
     "503 JetStream system temporarily unavailable"),
    ("status 503", "503 no responders"),
    ("publish refused: NATS/1.0 503\r\n", "publish refused: 503 no responders"),
    ("ConnectionResetError: [Errno 104] Connection reset\nby peer", "ConnectionResetError: [Errno 104] Connection reset by peer"),
])
def test_what_a_broker_said_is_its_status_and_description(said: str, shown: str) -> None:
    assert broker_said(said) == shown


def test_a_fault_is_worded_from_its_type_and_a_misspelt_row_is_refused() -> None:
    """The faults tables word a typed fault (``Fault``, summary.json's row read through its
    type); a misspelt key (``no_baselin``) is refused naming it, where read by string keys it
    was left unread and the fault said "not recovered"."""
    import pydantic

    from msgstorm.analysis.summary_model import Fault
    from msgstorm.report.text import baseline_span, recovered_after

    row = {"fault_id": 3, "kind": "partition", "start_s": 4.0, "end_s": 6.0, "pre_fault_p99_ms": None,
           "baseline_s": None, "no_baseline": {"reason": "fault_before", "fault_id": 2}, "recovery_s": None}
    assert recovered_after(Fault.model_validate(row)) == "no baseline (fault 2 before)"
    assert baseline_span(Fault.model_validate(row)) == "—"
    measured = {**row, "no_baseline": None, "baseline_s": [1.0, 3.5], "recovery_s": 1.25}
    assert recovered_after(Fault.model_validate(measured)) == "1.25 s"
    assert baseline_span(Fault.model_validate(measured)) == "1–3.5 s"
    assert recovered_after(Fault.model_validate({**measured, "recovery_s": None})) == "not recovered"
    assert recovered_after(Fault.model_validate({**measured, "end_s": None, "recovery_s": None})) == "still active"
    misspelt = {**row, "no_baselin": row.pop("no_baseline")}
    with pytest.raises(pydantic.ValidationError, match="no_baselin"):
        Fault.model_validate(misspelt)
