"""Units in scenario files: "50us", "2s", "2000/s", "10%", "250B", "1Gbit/s", and durations
worded back for people.

The scenario loader turns every quantity into an integer or float of a fixed unit
(nanoseconds, messages per second, a fraction, bytes, bits per second) before
the rest of the pipeline sees it, so no bare number of unknown unit travels further.
Each parser raises ``ValueError`` with what was expected; pydantic turns that into a
validation error that the loader maps back to file:line.

The other way, for people: ``duration_ms`` words a duration in the unit that reads best (ms
below a second, then s, min, h: ``8.7 ms``, ``15.2 s``, ``16.2 min``, ``3.9 h``, never
``14,031 s`` or ``13008.562 ms``), ``run_time_s`` a time into the run (``12 h 0 min 12.2 s``),
and ``duration_unit`` the unit a chart of durations is drawn in. The rule lives here, at the
bottom, so the analysis's verdicts use it as well as the report (``report/text.py``, which
words every other number, hands these on).
"""

from __future__ import annotations

import re

__all__ = [
    "DASH",
    "MAX_DURATION_NS",
    "MAX_SIZE_BYTES",
    "decimals",
    "duration_ms",
    "duration_s",
    "duration_unit",
    "format_duration",
    "parse_bandwidth_bps",
    "parse_duration_ns",
    "parse_fraction",
    "parse_rate_per_s",
    "parse_size_bytes",
    "run_time_s",
]

_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

_DURATION_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# Times are int64 nanoseconds in the history: the longest duration that fits (about 292 years).
MAX_DURATION_NS = 2**63 - 1
# Sizes are int32 bytes in the history.
MAX_SIZE_BYTES = 2**31 - 1
_DURATION_RE = re.compile(r"^\s*" + _NUMBER + r"\s*(ns|us|µs|ms|s|min|m|h)\s*$")

_RATE_PER = {"s": 1.0, "sec": 1.0, "ms": 1000.0, "min": 1 / 60.0, "m": 1 / 60.0, "h": 1 / 3600.0}
_RATE_RE = re.compile(r"^\s*" + _NUMBER + r"\s*([kKM]?)\s*/\s*(s|sec|ms|min|m|h)\s*$")
_MULT = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}

_SIZE_BYTES = {
    "B": 1,
    "KB": 1000,
    "kB": 1000,
    "MB": 1_000_000,
    "GB": 1_000_000_000,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*" + _NUMBER + r"\s*(B|KB|kB|MB|GB|KiB|MiB|GiB)\s*$")

_BW_BPS = {
    "bit/s": 1,
    "bps": 1,
    "kbit/s": 1e3,
    "Kbit/s": 1e3,
    "Mbit/s": 1e6,
    "Gbit/s": 1e9,
    "B/s": 8,
    "KB/s": 8e3,
    "kB/s": 8e3,
    "MB/s": 8e6,
    "GB/s": 8e9,
    "Kbps": 1e3,
    "kbps": 1e3,
    "Mbps": 1e6,
    "Gbps": 1e9,
}
_BW_RE = re.compile(
    r"^\s*" + _NUMBER + r"\s*(bit/s|bps|kbit/s|Kbit/s|Mbit/s|Gbit/s|B/s|KB/s|kB/s|MB/s|GB/s|Kbps|kbps|Mbps|Gbps)\s*$"
)


def parse_duration_ns(value: object) -> int:
    """A duration as integer nanoseconds: "50us", "2s", "1.5ms", or 0."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '50ms', got a boolean")
    if isinstance(value, int) and value == 0:
        return 0
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            ns = float(match.group(1)) * _DURATION_NS[match.group(2)]
            if not ns <= MAX_DURATION_NS:  # also catches inf from a huge exponent
                raise ValueError(f"duration {value!r} is too long: at most about 292 years "
                                 "(int64 nanoseconds)")
            return round(ns)
        if _DURATION_RE.match(value.replace("-", "", 1)) and value.strip().startswith("-"):
            raise ValueError(f"a duration cannot be negative, got {value!r}")
    raise ValueError(
        f"expected a duration with a unit (ns, us, ms, s, min, h) such as '50ms', got {value!r}"
    )


def parse_rate_per_s(value: object) -> float:
    """A rate as messages per second: "2000/s", "5k/s", "120/min"."""
    if isinstance(value, str):
        match = _RATE_RE.match(value)
        if match:
            rate = float(match.group(1)) * _MULT[match.group(2)] * _RATE_PER[match.group(3)]
            if rate == float("inf"):
                raise ValueError(f"rate {value!r} is not a finite number")
            return rate
        if _RATE_RE.match(value.replace("-", "", 1)) and value.strip().startswith("-"):
            raise ValueError(f"a rate cannot be negative, got {value!r}")
    raise ValueError(f"expected a rate such as '2000/s' or '120/min', got {value!r}")


def parse_fraction(value: object) -> float:
    """A fraction in [0, 1] from "10%" or a plain number in [0, 1]."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage such as '10%', got a boolean")
    if isinstance(value, (int, float)):
        fraction = float(value)
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            fraction = float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"expected a percentage such as '10%', got {value!r}") from None
    else:
        raise ValueError(f"expected a percentage such as '10%' or a number in [0, 1], got {value!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"expected a fraction between 0% and 100%, got {value!r}")
    return fraction


def parse_size_bytes(value: object) -> int:
    """A size as bytes: "250B", "4KiB", or a plain integer of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIZE_BYTES:
        return value
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match:
            size = float(match.group(1)) * _SIZE_BYTES[match.group(2)]
            if not size <= MAX_SIZE_BYTES:
                raise ValueError(f"size {value!r} is too large: at most 2GiB")
            return round(size)
    raise ValueError(f"expected a size such as '250B' or '4KiB', got {value!r}")


def parse_bandwidth_bps(value: object) -> float:
    """A bandwidth as bits per second: "1Gbit/s", "100MB/s"; 0 or "unlimited" means no limit."""
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return 0.0
    if isinstance(value, str):
        if value.strip() == "unlimited":
            return 0.0
        match = _BW_RE.match(value)
        if match:
            bps = float(match.group(1)) * _BW_BPS[match.group(2)]
            if bps == float("inf"):
                raise ValueError(f"bandwidth {value!r} is not a finite number")
            return bps
    raise ValueError(f"expected a bandwidth such as '1Gbit/s' or 'unlimited', got {value!r}")


def format_duration(ns: int) -> str:
    """A short human form of a nanosecond duration, for messages and tables."""
    for unit, size in (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)):
        if abs(ns) >= size:
            return f"{ns / size:g}{unit}"
    return f"{ns}ns"


# --- durations for people -----------------------------------------------------------------

DASH = "—"  # a value not known
_MS_PER_MIN = 60_000.0
_MS_PER_H = 3_600_000.0
# Seconds up to ten minutes (``599 s``), minutes up to two hours (``119 min``), hours beyond.
_SECONDS_BELOW_MS = 10 * _MS_PER_MIN
_MINUTES_BELOW_MS = 2 * _MS_PER_H
# A chart's unit: the largest that keeps its longest duration at 2 or more of it.
DURATION_UNITS: tuple[tuple[str, float], ...] = (("h", _MS_PER_H), ("min", _MS_PER_MIN), ("s", 1_000.0),
                                                  ("ms", 1.0))


def decimals(value: float, digits: int) -> str:
    """``value`` with at most ``digits`` decimals (trailing zeros dropped) and separators."""
    if not digits or abs(value) >= 1e6:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}".rstrip("0").rstrip(".")


def _three_digits(value: float) -> str:
    """Three significant digits of a value from 1 on: ``1.23``, ``15.2``, ``152``."""
    size = abs(value)
    return decimals(value, 2 if size < 10 else 1 if size < 100 else 0)


def duration_ms(value: float | int | None) -> str:
    """A duration given in milliseconds: ``8.7 ms`` below a second, ``15.2 s`` below ten
    minutes, ``16.2 min`` below two hours, ``3.9 h`` from there on."""
    if value is None:
        return DASH
    size = abs(float(value))
    if size < 1000:
        return decimals(float(value), 3) + " ms"
    if size < _SECONDS_BELOW_MS:
        return _three_digits(float(value) / 1000) + " s"
    if size < _MINUTES_BELOW_MS:
        return _three_digits(float(value) / _MS_PER_MIN) + " min"
    return _three_digits(float(value) / _MS_PER_H) + " h"


def duration_s(value: float | int | None) -> str:
    """A duration given in seconds, worded as ``duration_ms`` words it."""
    return DASH if value is None else duration_ms(float(value) * 1000)


def duration_unit(longest_ms: float) -> tuple[str, float]:
    """The unit a chart of durations up to ``longest_ms`` is drawn in, and its size in ms:
    450 ms and 1.5 s in ms, 81 minutes in min, 11 hours in h (never an axis of "40M" ms)."""
    return next((unit for unit in DURATION_UNITS if longest_ms >= 2 * unit[1]), DURATION_UNITS[-1])


def run_time_s(seconds: float, digits: int | None = None) -> str:
    """A time into the run: ``2.64946 s`` below a minute (six significant digits, or at most
    ``digits`` decimals: ``6.007 s``), then in hours, minutes and seconds to the millisecond:
    ``12 h 0 min 12.2 s``."""
    if abs(seconds) < 60:
        return f"{seconds:g} s" if digits is None else decimals(seconds, digits) + " s"
    whole_ms = round(seconds * 1000)
    hours, rest_ms = divmod(whole_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    clock = f"{minutes} min {rest_ms / 1000:g} s"
    return f"{hours} h {clock}" if hours else clock
