"""Units in scenario files."""

from __future__ import annotations

import re

import pytest

from msgstorm.scenario.units import (
    parse_bandwidth_bps,
    parse_duration_ns,
    parse_fraction,
    parse_rate_per_s,
    parse_size_bytes,
)


@pytest.mark.parametrize("text, ns", [("50us", 50_000), ("2s", 2_000_000_000), ("1.5ms", 1_500_000),
                                      ("0.5ms", 500_000), ("1min", 60_000_000_000), (0, 0)])
def test_durations(text, ns) -> None:
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text, rate", [("2000/s", 2000.0), ("5k/s", 5000.0), ("120/min", 2.0), ("1e3/s", 1000.0)])
def test_rates(text, rate) -> None:
    assert parse_rate_per_s(text) == pytest.approx(rate)


@pytest.mark.parametrize("text, bps", [("1Gbit/s", 1e9), ("100Mbps", 1e8), ("10MB/s", 8e7), ("unlimited", 0.0)])
def test_bandwidths(text, bps) -> None:
    assert parse_bandwidth_bps(text) == bps


def test_sizes_and_fractions() -> None:
    assert parse_size_bytes("1.5KiB") == 1536
    assert parse_size_bytes("250B") == 250
    assert parse_fraction("10%") == pytest.approx(0.1)
    assert parse_fraction(0.25) == 0.25


@pytest.mark.parametrize("parse, bad", [(parse_duration_ns, "5"), (parse_duration_ns, "2 parsecs"),
                                        (parse_rate_per_s, "5 per s"), (parse_rate_per_s, 100),
                                        (parse_fraction, "150%"), (parse_size_bytes, "big"),
                                        (parse_bandwidth_bps, "fast")])
def test_bad_units_say_what_was_expected(parse, bad) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse(bad)


@pytest.mark.parametrize("parse, bad, words", [
    (parse_duration_ns, "-1s", "a duration cannot be negative, got '-1s'"),
    (parse_duration_ns, " -250 ms", "a duration cannot be negative"),
    (parse_rate_per_s, "-5/s", "a rate cannot be negative, got '-5/s'"),
    (parse_duration_ns, "-x", "expected a duration with a unit"),  # not a negative duration: not a duration
])
def test_a_negative_quantity_is_called_negative(parse, bad, words) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        parse(bad)
