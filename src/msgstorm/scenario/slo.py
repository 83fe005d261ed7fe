"""SLO verdicts: the scenario's ``[slo]`` table checked against the summary.

Place in the pipeline: the last analysis step. An entry such as ``"latency.p99" = "< 250ms"``
names a metric (an alias into summary.json, listed in ``SLO_METRICS``) and a comparison:
an operator (<, <=, >, >=, ==, !=) and a number with an optional unit:

- a duration ("250ms", "1.5s", "800us") for millisecond metrics, compared in ms, and
  nothing else: a duration without its unit ("< 800") is refused, as everywhere in a scenario;
- a rate ("2000/s", "5k/s") for per-second metrics, and nothing else (likewise);
- a percentage ("10%") or a plain number (0.1) for fractions (``loss_rate``);
- a plain number for counts.

Each entry becomes ``{name, verdict, value, threshold}``: verdict "pass" or "fail", or
"unknown" when the metric is null (e.g. no committed messages) or the entry does not parse;
``value`` is the metric's value, ``threshold`` the comparison as written (e.g. "< 250ms").
A knee of a ramp that passed every step is only a lower bound on the knee
(``capacity.knee_reached`` false): its entry adds ``bound`` and ``reason``, and is judged
only where the bound decides the comparison ("unknown", not judged, otherwise).
The scenario loader calls ``slo_metric_known``; ``slo_problem`` also checks the comparison.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from msgstorm.scenario.units import parse_duration_ns, parse_rate_per_s

__all__ = [
    "SLO_METRICS",
    "SloError",
    "SloRule",
    "evaluate_slos",
    "parse_slo",
    "slo_metric_known",
    "slo_problem",
    "slo_value",
]

Unit = Literal["ms", "per_s", "fraction", "count"]

_STAGES = ("propagation", "queue_wait", "service", "block_wait")


def _metrics() -> dict[str, tuple[tuple[str, ...], Unit]]:
    table: dict[str, tuple[tuple[str, ...], Unit]] = {}
    for name in ("p50", "p90", "p99", "p999", "max", "mean"):
        table[f"latency.{name}"] = (("latency_ms", name), "ms")
    for name in ("stddev", "p99_minus_p50", "ipdv_mean", "ipdv_p99"):
        table[f"jitter.{name}"] = (("jitter_ms", name), "ms")
    for stage in _STAGES:
        for name in ("p50", "p99"):
            table[f"stage.{stage}.{name}"] = (("latency_stages_ms", stage, name), "ms")
    table["throughput"] = (("throughput_per_s",), "per_s")
    table["offered_rate"] = (("offered_rate_per_s",), "per_s")
    table["capacity.knee_rate"] = (("capacity", "knee_rate_per_s"), "per_s")
    table["failure_threshold.rate"] = (("failure_threshold", "rate_per_s"), "per_s")
    for name in ("sent", "sequenced", "committed", "dropped", "rejected", "lost", "pending", "unsent"):
        table[f"messages.{name}"] = (("messages", name), "count")
    table["loss_rate"] = (("loss_rate",), "fraction")  # computed from messages, see slo_value
    table["queue.max_depth"] = (("queue", "max_depth"), "count")
    table["queue.mean_depth"] = (("queue", "mean_depth"), "count")
    table["desync.episodes"] = (("desync", "episodes"), "count")
    table["desync.max_height_gap"] = (("desync", "max_height_gap"), "count")
    # Round-based consensus (null without it: "unknown").
    for name in ("p50", "p99", "max", "mean"):
        table[f"block_interval.{name}"] = (("consensus", "interval_ms", name), "ms")
    table["consensus.rounds_max"] = (("consensus", "rounds_max"), "count")
    table["consensus.lag_max"] = (("consensus", "lag_max"), "count")
    # A live run's own (null on the simulator: "unknown", which --strict fails).
    table["delivery.lost"] = (("delivery", "lost", "total"), "count")
    for name in ("duplicated", "unexpected", "reordered"):
        table[f"delivery.{name}"] = (("delivery", name), "count")
    for name in ("p50", "p99", "max"):
        table[f"generator.send_lag.{name}"] = (("generator", "send_lag_ms", name), "ms")
    for name in ("disconnects", "errors"):
        table[f"connections.{name}"] = (("connections", name), "count")
    table["connections.servers_exited"] = (("connections", "servers_exited"), "count")  # how many, see slo_value
    return table


# Metric name -> (path into summary.json, unit).
SLO_METRICS: dict[str, tuple[tuple[str, ...], Unit]] = _metrics()

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPRESSION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(\S.*?)\s*$")


class SloError(ValueError):
    """An SLO entry that names an unknown metric or whose comparison does not parse."""


@dataclass(frozen=True)
class SloRule:
    """One parsed SLO: ``metric op threshold`` with the threshold in the metric's unit."""

    name: str
    op: str
    threshold: float
    expression: str  # as written, stripped: "< 250ms"

    @property
    def path(self) -> tuple[str, ...]:
        return SLO_METRICS[self.name][0]

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.threshold)


def slo_metric_known(name: str) -> bool:
    """Whether ``name`` is an SLO metric (see ``SLO_METRICS``)."""
    return name in SLO_METRICS


def _threshold(name: str, text: str, unit: Unit) -> float:
    try:
        plain = float(text)
    except ValueError:
        pass
    else:
        # A duration or a rate is written with its unit everywhere in a scenario: "800" could
        # be 800 ms or 800 s, 2000 a second or a minute.
        if unit == "ms":
            raise SloError(f"{name}: a duration needs its unit, such as '{text}ms' or '{text}s', got {text!r}")
        if unit == "per_s":
            raise SloError(f"{name}: a rate needs its unit, such as '{text}/s' or '{text}/min', got {text!r}")
        return plain
    if text.endswith("%"):
        if unit != "fraction":
            raise SloError(
                f"{name}: a percentage fits only fractions such as loss_rate, got {text!r}"
            )
        try:
            return float(text[:-1]) / 100.0
        except ValueError:
            raise SloError(f"{name}: expected a percentage such as '10%', got {text!r}") from None
    try:
        duration_ns = parse_duration_ns(text)
    except ValueError:
        pass
    else:
        if unit != "ms":
            raise SloError(f"{name}: a duration fits only latency metrics, got {text!r}")
        return duration_ns / 1_000_000
    try:
        rate = parse_rate_per_s(text)
    except ValueError:
        pass
    else:
        if unit != "per_s":
            raise SloError(
                f"{name}: a rate fits only throughput, offered_rate or capacity, got {text!r}"
            )
        return rate
    raise SloError(
        f"{name}: expected a number, a duration such as '250ms', a rate such as '2000/s' "
        f"or a percentage such as '10%', got {text!r}"
    )


def parse_slo(name: str, expression: str) -> SloRule:
    """Parse one ``[slo]`` entry; raises ``SloError`` saying what is wrong."""
    if not slo_metric_known(name):
        raise SloError(f"unknown SLO metric {name!r}; known: {', '.join(sorted(SLO_METRICS))}")
    match = _EXPRESSION.match(expression)
    if match is None:
        raise SloError(
            f"{name}: expected an operator (<, <=, >, >=, ==, !=) and a value such as "
            f"'< 250ms', got {expression!r}"
        )
    op, text = match.groups()
    threshold = _threshold(name, text, SLO_METRICS[name][1])
    return SloRule(name, op, threshold, f"{op} {text}")


def slo_problem(name: str, expression: str) -> str | None:
    """What is wrong with an ``[slo]`` entry, or None when it parses (for scenario checks)."""
    try:
        parse_slo(name, expression)
    except SloError as error:
        return str(error)
    return None


def slo_value(summary: Mapping[str, Any], name: str) -> float | None:
    """The metric's value in a summary (None when null or absent)."""
    if name == "loss_rate":
        counts = summary.get("messages") or {}
        sent = counts.get("sent") or 0
        if not sent:
            return None
        return round(((counts.get("dropped") or 0) + (counts.get("lost") or 0)) / sent, 9)
    node: Any = summary
    for key in SLO_METRICS[name][0]:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return None
        node = node[key]
    if isinstance(node, list):  # a list of things counted: its length
        return len(node)
    return node if isinstance(node, (int, float)) and not isinstance(node, bool) else None


# Metrics whose value may be only a lower bound: the summary's flag, false when it is, and why.
_LOWER_BOUNDS: dict[str, tuple[tuple[str, ...], str]] = {
    "capacity.knee_rate": (("capacity", "knee_reached"),
                           "no knee reached: every step of the ramp passed, so the knee is at least the highest "
                           "rate offered"),
}


def _lower_bound(summary: Mapping[str, Any], name: str) -> str | None:
    """Why the metric's value is only a lower bound on it, or None when it is the metric."""
    if name not in _LOWER_BOUNDS:
        return None
    path, why = _LOWER_BOUNDS[name]
    node: Any = summary
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return why if node is False else None


def _judged_on_lower_bound(rule: SloRule, bound: float) -> str:
    """The verdict of ``rule`` on a metric known only to be at least ``bound``: pass or fail
    where every value from the bound up gives the same, else unknown (a knee above the ramp
    may lie either side of the threshold)."""
    if rule.op in (">", ">="):  # holds for every value from the bound up once it holds at the bound
        return "pass" if rule.holds(bound) else "unknown"
    if rule.op in ("<", "<="):  # fails for every value from the bound up once it fails at the bound
        return "unknown" if rule.holds(bound) else "fail"
    if bound > rule.threshold:  # == fails and != holds for every value above the threshold
        return "pass" if rule.op == "!=" else "fail"
    return "unknown"


def evaluate_slos(summary: Mapping[str, Any], slos: Mapping[str, str]) -> list[dict[str, Any]]:
    """[{name, verdict, value, threshold}] for every ``[slo]`` entry, in the given order. On a
    metric whose value is only a lower bound (a ramp that passed every step: no knee) the
    entry adds ``bound: "lower"`` and a ``reason``, and its verdict is pass or fail only where
    the bound decides it (``_judged_on_lower_bound``), else unknown: not judged."""
    results: list[dict[str, Any]] = []
    for name, expression in slos.items():
        value = slo_value(summary, name) if slo_metric_known(name) else None
        bound = _lower_bound(summary, name) if value is not None else None
        try:
            rule = parse_slo(name, expression)
        except SloError:
            verdict = "unknown"
            threshold = expression.strip()
            bound = None  # not judged for a reason of its own: the entry does not parse
        else:
            threshold = rule.expression
            if value is None:
                verdict = "unknown"
            elif bound is not None:
                verdict = _judged_on_lower_bound(rule, float(value))
            else:
                verdict = "pass" if rule.holds(value) else "fail"
        entry: dict[str, Any] = {"name": name, "verdict": verdict, "value": value, "threshold": threshold}
        if bound is not None:
            decided = {"pass": "it holds whatever the knee above it", "fail": "it fails whatever the knee above it",
                       "unknown": "not judged: the knee may lie either side of the threshold (a ramp to higher "
                                  "rates would find it)"}[verdict]
            entry |= {"bound": "lower", "reason": f"{bound}; {decided}"}
        results.append(entry)
    return results
