"""Numbers, durations and what a broker said, worded for people: one rule each, used by the
terminal summary and report.html alike.

Place in the pipeline: the bottom of the report layer (summary.json keeps every value
whole; only what a person reads is rounded here).

- ``number``: thousands separators, trailing zeros dropped, rates per second without the
  fraction of a message from 100/s (``rate_digits``), None as an em dash.
- ``duration_ms`` / ``duration_s``: a duration in the unit that reads best: milliseconds
  below a second (``8.7 ms``, ``0.123 ms``), then seconds, minutes and hours with three
  significant digits (``15.2 s``, not ``15,196.447 ms``; ``3.9 h``, not ``14,031 s``).
  Every duration a person reads goes through them: the terminal summary, report.html,
  ``compare`` (values and changes) and the live progress line. ``duration_unit`` is a
  chart's unit of durations (an axis in min or h, never "40M" ms), ``run_time_s`` a time
  into the run. The rule itself is ``scenario/units.py``'s, at the bottom of the package,
  where the analysis's verdicts reach it too.
- ``UNIT_GAP``: the space between a number and its unit as these functions write them; a
  table cell that wraps keeps the two on one line (``report/cells.py``).
- ``amount``: a quantity with the unit its scenario names (``11,606,113 DAI`` of a market's
  ``currency``, ``62,890 ETH`` of an instrument), a bare number where none is named.
- ``metric_value``: a summary metric named by its dotted path (``latency_ms.p99``,
  ``throughput_per_s``, ``market.bad_debt.pct_of_open_interest``) in the unit its name
  carries (``28.2 min``, ``2,891/s``, ``0.1%``), as sweep.html shows each point's metrics
  (never ``1.692e+06``).
- ``slo_value``: an SLO's value in its metric's unit, as its threshold is written (``1.64 s``
  beside ``< 1s``, ``2,891/s`` beside ``>= 3000/s``, ``2%`` beside ``<= 2%``); ``slo_shown``
  the same after ``≥`` where the value is only a lower bound (a ramp that reached no knee).
- ``recovered_after`` / ``baseline_span``: a fault's recovery as the faults tables show it:
  the time, or why there is none (``still active``, ``not recovered``, or ``no baseline``
  with the reason: nothing was measured, so nothing is said to have failed to recover), and
  the span its p99 before was measured over (``analysis/recovery.py``). Each reads the
  fault through its type (``summary_model.Fault``), whether given typed or as summary.json
  holds it, and every reason of ``NoBaselineReasonName`` is worded (mypy checks the match).
- ``failure_where``: where a failure threshold fired: its ramp step's or window's start
  (a time into the run, ``run_time_s``) and the faults active there (``in the window from
  20 min 0 s, during fault 0 (sequencer_outage)``).
- ``broker_said``: a broker's reply as its status and description (``503 no responders``),
  not the protocol text it came in (``NATS/1.0 503\\r\\nNats-Subject: ...``).
"""

from __future__ import annotations

import json
import re
from typing import Any, assert_never

from msgstorm.analysis.summary_model import FailureThreshold, Fault, NoBaselineReason, SloVerdict
from msgstorm.scenario.slo import SLO_METRICS
from msgstorm.scenario.units import (
    DASH,
    decimals,
    duration_ms,
    duration_s,
    duration_unit,
    run_time_s,
)

__all__ = ["UNIT_GAP", "amount", "baseline_span", "broker_said", "duration_ms", "duration_s", "duration_unit",
           "failure_where", "metric_unit", "metric_value", "number", "rate_digits", "recovered_after", "run_time_s",
           "slo_shown", "slo_value"]

# The space between a number and the unit after it (``8.7 ms``, ``15.2 s``, ``3.9 h``,
# ``16.2 min``, ``4 us``, ``535 B``, ``3 bps``): where a wrapped line must not break.
UNIT_GAP = re.compile(r"(?<=\d) (?=(?:ms|s|min|h|us|B|bps)(?![\w/]))")


def rate_digits(value: float) -> int:
    """Decimals a rate (per second) is shown with: none from 100/s, where a fraction of a
    message is noise (summary.json keeps the full value)."""
    size = abs(value)
    return 0 if size >= 100 else 1 if size >= 10 else 2


def number(value: Any, unit: str = "", digits: int = 3) -> str:
    """A value for people: ``1,234``, ``0.123``, ``2,890/s``, ``yes``; None as an em dash."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    if isinstance(value, float):
        return decimals(value, rate_digits(value) if unit == "/s" else digits) + unit
    return f"{value}{unit}"


def amount(value: float | int | None, unit: str | None) -> str:
    """A quantity with its unit after it (``11,606,113 DAI``); without one, the number."""
    shown = number(value)
    return shown if not unit or value is None else f"{shown} {unit}"


def metric_unit(name: str) -> str:
    """The unit a summary metric's dotted name carries: ``ms`` (a part ending ``_ms``),
    ``/s`` (``_per_s``), ``%`` (``pct_``), `` bps`` (``_bps``), else none (a count, a
    share, a price)."""
    parts = name.split(".")
    if any(part.endswith("_ms") for part in parts):
        return "ms"
    if any(part.endswith("_per_s") for part in parts):
        return "/s"
    if any(part.startswith("pct_") for part in parts):
        return "%"
    if any(part.endswith("_bps") for part in parts):
        return " bps"
    return ""


def metric_value(name: str, value: float | int | None) -> str:
    """A summary metric's value in the unit its name carries (``metric_unit``)."""
    unit = metric_unit(name)
    if value is None or unit != "ms":
        return number(value, unit)
    return duration_ms(value)


def failure_where(failure: FailureThreshold, ramp: bool) -> str:
    """Where a failure threshold fired: its interval's start and the faults active in it
    (``in the window from 20 min 0 s, during fault 0 (sequencer_outage)``: a time into the
    run, as the faults table words a fault's start), so a threshold from a fault's window or
    the run's first seconds does not read as the layer's capacity."""
    where = f"in the {'ramp step' if ramp else 'window'} from {run_time_s(failure.t_ns / 1e9, 3)}"
    during = ", ".join(_fault_named(fault.fault_id) + (f" ({fault.kind})" if fault.kind else "")
                       for fault in failure.faults)
    return where + (f", during {during}" if during else "")


def _fault_named(fault_id: int | None) -> str:
    return "a fault" if fault_id is None else f"fault {fault_id}"


def _no_baseline(missing: NoBaselineReason) -> str:
    """Why a fault had nothing to measure its recovery against, in a few words."""
    match missing.reason:
        case "fault_in_force":
            return f"{_fault_named(missing.fault_id)} in force"
        case "fault_before":
            return f"{_fault_named(missing.fault_id)} before"
        case "shed_before":
            return "messages dropped before"
        case "nothing_before":
            return "nothing committed before"
        case unworded:
            assert_never(unworded)


def recovered_after(fault: Fault) -> str:
    """A summary's fault (its typed ``faults`` row): how long it took to recover, or why that
    is not known."""
    if fault.recovery_s is not None:
        return duration_s(fault.recovery_s)
    if fault.end_s is None:
        return "still active"
    if fault.no_baseline is None:
        return "not recovered"
    return f"no baseline ({_no_baseline(fault.no_baseline)})"


def baseline_span(fault: Fault) -> str:
    """The span a fault's p99 before was measured over: ``1–6 s``."""
    span = fault.baseline_s
    if not span:
        return DASH
    return f"{decimals(span[0], 3)}–{decimals(span[1], 3)} s"


def slo_shown(slo: SloVerdict) -> str:
    """An SLO entry's value as the tables show it: ``slo_value``, after ``≥ `` when it is only
    a lower bound on the metric (the knee of a ramp that passed every step)."""
    shown = slo_value(slo.name, slo.value)
    return f"≥ {shown}" if slo.bound == "lower" else shown


def slo_value(name: str, value: float | int | None) -> str:
    """An SLO's value (summary.json's ``slo[].value``, in the metric's unit: ms, per second,
    a fraction, a count) worded with its unit; a metric msgstorm does not know as a number."""
    unit = SLO_METRICS[name][1] if name in SLO_METRICS else "count"
    if value is None or unit == "count":
        return number(value)
    if unit == "ms":
        return duration_ms(value)
    if unit == "per_s":
        return number(float(value), "/s")
    return number(100 * float(value), "%")


# What a NATS status code means when its reply carries no description (the protocol sends
# ``NATS/1.0 503`` alone for "no responders"; others add their own text, kept as sent).
_NATS_STATUS = {"100": "idle heartbeat", "400": "bad request", "404": "no messages", "408": "request timeout",
                "409": "conflict", "503": "no responders"}
_NATS_LINE = re.compile(r"NATS/\d+\.\d+[ \t]+(\d{3})[ \t]*([^\r\n]*)")


def broker_said(text: str | None) -> str:
    """What a client or server said, for a person, on one line: a NATS status reply (a
    JetStream publish that found no stream, a request that timed out) or a JetStream API
    error (``{"error": {"code": 503, "description": ...}}``) as ``503 no responders``;
    anything else as it was said."""
    if text is None:
        return DASH
    found = _NATS_LINE.search(text)
    if found is not None:
        code, description = found.group(1), found.group(2).strip()
        before = text[: found.start()]
    else:
        error = _api_error(text)
        if error is None:
            return " ".join(text.split())
        (code, description), before = error, ""
    said = f"{code} {description or _NATS_STATUS.get(code, 'status')}"
    before = " ".join(before.split()).rstrip(": ")
    return f"{before}: {said}" if before else said


def _api_error(text: str) -> tuple[str, str] | None:
    """(code, description) of a JetStream API error reply, or of nats-py's ``status 503``."""
    plain = re.fullmatch(r"\s*status (\d{3})\s*", text)
    if plain is not None:
        return plain.group(1), ""
    try:
        reply = json.loads(text)
    except ValueError:
        return None
    error = reply.get("error", reply) if isinstance(reply, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return None
    return str(error["code"]), str(error.get("description") or "")
