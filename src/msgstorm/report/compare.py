"""``msgstorm compare``: runs side by side, differences against the first, regressions flagged.

Place in the pipeline: reads only each run directory's ``summary.json`` (and, for the page's
plots, ``windows.csv`` and the messages' latencies when present), so sim and live runs, old
and new versions, compare by the same code. Each summary.json is read once through its type
(``analysis.summary_model.Summary``): a section a run does not have (no market, no forks)
stays None, and a file that does not fit the type is refused naming the file and the field.
Each metric reads its value from the typed summary (``Metric.read``), so mypy checks every
field a metric names.

Each metric has a direction: for latency, jitter, losses, queue depth, desync, failing SLOs and
invalid checks *lower* is better; for throughput, capacity and the failure threshold *higher*
is. A run regresses on a metric when it is worse than the baseline (the first run) by more than
``tolerance`` x |baseline| (so with a baseline of 0, any worsening counts: the first dropped
message is a regression). Offered rate and wall time are shown but never flagged: the first
says whether the runs are comparable at all, the second depends on the host.

Metrics are ranked by what the scenario measures (``Metric.concern``): with a market, money
first (bad debt, liquidations, their delay), then the headline numbers of the layer
(throughput, p99 latency, capacity, failure threshold, losses, SLOs, checks, recovery), then
the details (other percentiles, stages, jitter, relay, forks). The table is in that order,
the regressions are named in it, and the verdict opens with the changes beyond the tolerance
of the first concern the runs have (``Comparison.headline``), improvements too: a bad debt
down 98.5% is said before an IPDV p99 up 5.7%.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pydantic
from rich.console import Console

from msgstorm.analysis.summary_model import Summary
from msgstorm.report.cells import KeptTable
from msgstorm.report.text import duration_ms, duration_s

__all__ = [
    "METRICS",
    "Comparison",
    "Delta",
    "Metric",
    "RunDirError",
    "RunSummary",
    "compare_runs",
    "format_delta",
    "load_group",
    "load_run",
    "parse_tolerance",
    "print_comparison",
    "print_regressions",
]

Better = Literal["lower", "higher"]
Concern = Literal["money", "headline", "detail"]
CONCERNS: tuple[Concern, ...] = ("money", "headline", "detail")  # ranked: what a scenario measures first
Status = Literal["same", "better", "worse", "regression", "improved", "n/a"]


# What a metric reads of a summary: a number, or None where it is null or its section absent.
Read = Callable[[Summary], float | None]
_Section = TypeVar("_Section")


def _within(section: Callable[[Summary], _Section | None], read: Callable[[_Section], float | None]) -> Read:
    """A metric of an optional section (market, forks, ...): None when the run has none."""
    def value(summary: Summary) -> float | None:
        found = section(summary)
        return None if found is None else read(found)

    return value


@dataclass(frozen=True)
class Metric:
    """A summary value to compare: how it is read from the typed summary, its unit, which way
    is better (None: not judged) and what a null means ("n/a", or "best" for a threshold
    that never fired)."""

    name: str
    read: Read
    unit: str = ""
    better: Better | None = "lower"
    null_is_best: bool = False
    concern: Concern = "detail"


def _slo_failing(summary: Summary) -> float:
    return float(sum(1 for slo in summary.slo if slo.verdict == "fail"))


def _checks_not_valid(summary: Summary) -> float:
    return float(sum(1 for check in summary.checks if check.verdict != "valid"))


def _recovery_max(summary: Summary) -> float | None:
    """The slowest recovery of the faults that ended (None: none did, or none recovered)."""
    times = [fault.recovery_s for fault in summary.faults if fault.end_s is not None and fault.recovery_s is not None]
    return max(times) if times else None


def _faults_unrecovered(summary: Summary) -> float | None:
    """Faults that ended and never recovered (None: no fault ended). One with no baseline was
    not measured (``analysis/recovery.py``): not "never recovered"."""
    ended = [fault for fault in summary.faults if fault.end_s is not None]
    return float(sum(1 for fault in ended if fault.recovery_s is None and fault.no_baseline is None)) \
        if ended else None


def _metrics() -> list[Metric]:
    metrics = [
        Metric("offered rate", lambda s: s.offered_rate_per_s, "/s", None),
        Metric("throughput", lambda s: s.throughput_per_s, "/s", "higher", concern="headline"),
        Metric("latency p50", lambda s: s.latency_ms.p50, " ms"),
        Metric("latency p90", lambda s: s.latency_ms.p90, " ms"),
        Metric("latency p99", lambda s: s.latency_ms.p99, " ms", concern="headline"),
        Metric("latency p99.9", lambda s: s.latency_ms.p999, " ms"),
        Metric("latency max", lambda s: s.latency_ms.max, " ms"),
        Metric("latency mean", lambda s: s.latency_ms.mean, " ms"),
        Metric("jitter stddev", lambda s: s.jitter_ms.stddev, " ms"),
        Metric("jitter p99−p50", lambda s: s.jitter_ms.p99_minus_p50, " ms"),
        Metric("IPDV p99", lambda s: s.jitter_ms.ipdv_p99, " ms"),
        Metric("propagation p99", lambda s: s.latency_stages_ms.propagation.p99, " ms"),
        Metric("queue wait p99", lambda s: s.latency_stages_ms.queue_wait.p99, " ms"),
        Metric("service p99", lambda s: s.latency_stages_ms.service.p99, " ms"),
        Metric("block wait p99", lambda s: s.latency_stages_ms.block_wait.p99, " ms"),
        Metric("capacity (knee)", _within(lambda s: s.capacity, lambda c: c.knee_rate_per_s), "/s", "higher",
               concern="headline"),
        Metric("failure threshold", _within(lambda s: s.failure_threshold, lambda f: f.rate_per_s), "/s", "higher",
               null_is_best=True, concern="headline"),
        Metric("messages committed", lambda s: s.messages.committed, "", "higher", concern="headline"),
        Metric("messages dropped", lambda s: s.messages.dropped, concern="headline"),
        Metric("messages rejected", lambda s: s.messages.rejected),
        Metric("messages lost", lambda s: s.messages.lost, concern="headline"),
        Metric("messages pending", lambda s: s.messages.pending),
        Metric("receipts lost (live)", _within(lambda s: s.delivery, lambda d: d.lost.total), concern="headline"),
        Metric("client disconnects (live)", _within(lambda s: s.connections, lambda c: c.disconnects)),
        Metric("bad debt (market)", _within(lambda s: s.market, lambda m: m.bad_debt.absolute), concern="money"),
        Metric("bad debt % of open interest", _within(lambda s: s.market, lambda m: m.bad_debt.pct_of_open_interest),
               "%", concern="money"),
        Metric("liquidations executed", _within(lambda s: s.market, lambda m: m.liquidations.executed), "", "higher",
               concern="money"),
        Metric("liquidations late", _within(lambda s: s.market, lambda m: m.liquidations.late), concern="money"),
        Metric("liquidation delay p99", _within(lambda s: s.market, lambda m: m.liquidation_delay_ms.p99), " ms",
               concern="money"),
        Metric("price staleness p99", _within(lambda s: s.market, lambda m: m.price_staleness_ms.p99), " ms"),
        Metric("front-run successes", _within(lambda s: s.fairness, lambda f: f.front_run_successes)),
        Metric("extracted value (front-running)", _within(lambda s: s.fairness, lambda f: f.extracted_value)),
        Metric("order inversions", _within(lambda s: s.fairness, lambda f: f.inversions)),
        Metric("auction cleared volume", _within(lambda s: s.auction, lambda a: a.cleared_volume), "", "higher"),
        Metric("auction fill rate", _within(lambda s: s.auction, lambda a: a.fill_rate), "", "higher"),
        Metric("clearing price deviation rms", _within(lambda s: s.auction, lambda a: a.price_deviation_bps.rms),
               " bps"),
        Metric("stale rate (forks)", _within(lambda s: s.forks, lambda f: f.blocks.stale_rate)),
        Metric("reorg depth max (forks)", _within(lambda s: s.forks, lambda f: f.reorgs.max_depth)),
        Metric("final reorgs (forks)", _within(lambda s: s.forks, lambda f: f.reorgs.final)),
        Metric("block arrival p90 (forks)", _within(lambda s: s.forks, lambda f: f.arrival_ms.get("p90")), " ms"),
        Metric("relay payloads sent", _within(lambda s: s.relay, lambda r: r.payloads)),
        Metric("relay announcements", _within(lambda s: s.relay, lambda r: r.announcements)),
        Metric("relay requests", _within(lambda s: s.relay, lambda r: r.requests)),
        Metric("relay duplicates avoided", _within(lambda s: s.relay, lambda r: r.duplicates_avoided), "", "higher"),
        Metric("compact block round trips", _within(lambda s: s.relay, lambda r: r.compact.getblocktxn)),
        Metric("compact missing bytes", _within(lambda s: s.relay, lambda r: r.compact.missing_bytes), " B"),
        Metric("queue depth max", lambda s: s.queue.max_depth),
        Metric("desync episodes", lambda s: s.desync.episodes),
        Metric("desync max height gap", lambda s: s.desync.max_height_gap),
        Metric("fault recovery max", _recovery_max, " s", concern="headline"),
        Metric("faults not recovered", _faults_unrecovered, concern="headline"),
        Metric("SLOs failing", _slo_failing, concern="headline"),
        Metric("checks not valid", _checks_not_valid, concern="headline"),
        Metric("wall time", lambda s: s.wall_s, " s", None),
    ]
    return metrics


METRICS: list[Metric] = _metrics()


class RunDirError(ValueError):
    """A path that is not a usable run directory; the message says what is wrong."""


@dataclass(frozen=True)
class RunSummary:
    """One run to compare: its label (A, B, ...), directory and summary.json; or a group of
    replicas (several seeds of one setting), ``replicas`` their summaries and ``summary``
    the first."""

    label: str
    path: Path
    summary: Summary
    replicas: tuple[Summary, ...] = ()
    # The run directories it stands for (a group's every replica); empty: ``path`` alone.
    sources: tuple[Path, ...] = ()
    given_as_list: bool = False  # a group given as DIR1,DIR2,... (``path`` is only where they lie)

    @property
    def where(self) -> str:
        """The side as the user gave it: a directory, or a group's listed directories."""
        if self.given_as_list:
            return ",".join(str(source) for source in self.sources)
        return str(self.path)

    @property
    def name(self) -> str:
        count = f" ({len(self.replicas)} runs)" if self.replicas else ""
        if self.given_as_list:
            return f"{self.label}: {self.sources[0].name},...{count}"
        return f"{self.label}: {self.path.name or self.path}{count}"

    @property
    def summaries(self) -> tuple[Summary, ...]:
        return self.replicas or (self.summary,)


# A regression between groups of replicas must also be significant: Welch's t test at this level.
SIGNIFICANCE = 0.05


def load_group(text: str, label: str) -> RunSummary:
    """Several runs as one side: ``DIR1,DIR2,...``, or a directory holding run directories
    (a sweep's ``--out`` or its ``runs/``: every run in it)."""
    listed = "," in text
    if listed:
        paths = [Path(part) for part in text.split(",") if part]
        where = Path(os.path.commonpath([path.absolute() for path in paths])) if paths else Path(text)
    else:
        where = Path(text)
        paths = sorted({found.parent for pattern in ("*/summary.json", "runs/*/summary.json")
                        for found in where.glob(pattern)})
        if not paths:
            raise RunDirError(f"{where}: not a msgstorm run directory (no summary.json and no history/), "
                              "nor a group of them (no run directory in it)")
    runs = [load_run(path, label) for path in paths]
    return RunSummary(label, where, runs[0].summary, tuple(run.summary for run in runs), tuple(paths), listed)


def load_run(path: str | Path, label: str) -> RunSummary:
    """Read a run directory's summary.json; raises ``RunDirError`` saying what is wrong."""
    directory = Path(path)
    if not directory.exists():
        raise RunDirError(f"{directory}: no such run directory")
    if not directory.is_dir():
        raise RunDirError(f"{directory}: not a directory (give a run directory, the one holding summary.json)")
    summary_path = directory / "summary.json"
    if not summary_path.is_file():
        if (directory / "history").is_dir():
            raise RunDirError(f"{directory}: no summary.json; its history is there, so "
                              f"`msgstorm report {directory}` will write it")
        raise RunDirError(f"{directory}: not a msgstorm run directory (no summary.json and no history/)")
    try:
        document = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise RunDirError(f"{summary_path}: cannot read it ({error})") from None
    except ValueError as error:
        raise RunDirError(f"{summary_path}: not valid JSON ({error}); "
                          f"`msgstorm report {directory}` rewrites it from the history") from None
    if not isinstance(document, dict):
        raise RunDirError(f"{summary_path}: not a msgstorm summary (a JSON {type(document).__name__}, not an object)")
    try:
        summary = Summary.model_validate(document)
    except pydantic.ValidationError as error:
        raise RunDirError(f"{summary_path}: not a msgstorm summary ({_first_problem(error)}"
                          + (f"; `msgstorm report {directory}` rewrites it from the history)"
                             if (directory / "history").is_dir() else ")")) from None
    return RunSummary(label, directory, summary)


def _first_problem(error: pydantic.ValidationError) -> str:
    """The first field summary.json's type refuses, as a dotted path, and why; and how many more."""
    problems = error.errors()
    first = problems[0]
    field = ".".join(str(part) for part in first["loc"])
    more = f", and {len(problems) - 1} more" if len(problems) > 1 else ""
    return f"{field}: {first['msg'].lower()}{more}"


def parse_tolerance(text: str) -> float:
    """"5%" or "0.05" -> 0.05; raises ValueError with what would be right."""
    cleaned = text.strip()
    try:
        value = float(cleaned[:-1]) / 100.0 if cleaned.endswith("%") else float(cleaned)
    except ValueError:
        raise ValueError(f"--tolerance: expected a percentage such as '5%' or a fraction such as 0.05, "
                         f"got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"--tolerance: must be zero or more, got {text!r}")
    return value


def metric_value(summary: Summary, metric: Metric) -> float | None:
    """The metric's value in a summary (None when null or its section absent)."""
    value = metric.read(summary)
    return None if value is None else float(value)


@dataclass(frozen=True)
class Delta:
    """One run's value of a metric against the baseline's."""

    value: float | None
    diff: float | None
    relative: float | None  # diff / |baseline|; None when the baseline is 0 or null
    status: Status


def judge(metric: Metric, base: float | None, value: float | None, tolerance: float) -> Delta:
    """Compare one value with the baseline's (see the module docstring for the rule)."""
    if base is None or value is None:
        if metric.better is not None and metric.null_is_best and (base is None) != (value is None):
            return Delta(value, None, None, "regression" if base is None else "improved")
        return Delta(value, None, None, "same" if base is None and value is None else "n/a")
    diff = value - base
    relative = diff / abs(base) if base != 0 else None
    if metric.better is None or diff == 0:
        return Delta(value, diff, relative, "same" if diff == 0 else "n/a")
    worse = diff > 0 if metric.better == "lower" else diff < 0
    beyond = abs(diff) > tolerance * abs(base)
    if worse:
        return Delta(value, diff, relative, "regression" if beyond else "worse")
    return Delta(value, diff, relative, "improved" if beyond else "better")


@dataclass(frozen=True)
class Comparison:
    """Runs, the tolerance and, per metric, the baseline value and each other run's delta."""

    runs: list[RunSummary]
    tolerance: float
    rows: list[tuple[Metric, float | None, list[Delta]]]

    @property
    def regressions(self) -> list[tuple[Metric, RunSummary, Delta]]:
        """Each regression, in the rows' order: what the scenario measures first."""
        return [(metric, run, delta) for metric, _, deltas in self.rows
                for run, delta in zip(self.runs[1:], deltas) if delta.status == "regression"]

    @property
    def first_concern(self) -> Concern | None:
        """What these runs measure first: the highest-ranked concern among the judged rows."""
        present = {metric.concern for metric, _, _ in self.rows if metric.better is not None}
        return next((concern for concern in CONCERNS if concern in present), None)

    @property
    def headline(self) -> list[tuple[Metric, RunSummary, Delta]]:
        """The first concern's changes beyond the tolerance, regressions and improvements both."""
        concern = self.first_concern
        return [(metric, run, delta) for metric, _, deltas in self.rows if metric.concern == concern
                for run, delta in zip(self.runs[1:], deltas) if delta.status in ("regression", "improved")]


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def significant(base: list[float | None], other: list[float | None], level: float = SIGNIFICANCE) -> bool:
    """Whether two groups' means differ by Welch's t test at ``level`` (two-sided); groups
    without spread differ when their means do. A group of one run cannot be tested: then the
    tolerance alone decides (True). The test is computed from each group's mean and standard
    deviation (0 for a group of equal values), so a group without spread beside one with
    spread is an ordinary case rather than scipy's warning of a precision loss on data that
    are all equal."""
    a = np.asarray([v for v in base if v is not None], dtype=np.float64)
    b = np.asarray([v for v in other if v is not None], dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return True
    from scipy import stats

    spread_a = 0.0 if a.max() == a.min() else float(a.std(ddof=1))
    spread_b = 0.0 if b.max() == b.min() else float(b.std(ddof=1))
    if spread_a == 0 and spread_b == 0:
        return bool(a[0] != b[0])
    test = stats.ttest_ind_from_stats(float(a.mean()), spread_a, a.size, float(b.mean()), spread_b, b.size,
                                      equal_var=False)
    return bool(test.pvalue < level)


def compare_runs(runs: Sequence[RunSummary], tolerance: float) -> Comparison:
    """Every metric of every run (or group's mean) against the first; between groups of
    replicas a regression must also be significant (``significant``)."""
    if len(runs) < 2:
        raise ValueError("compare needs at least two run directories")
    rows = []
    for metric in METRICS:
        base_values = [metric_value(summary, metric) for summary in runs[0].summaries]
        base = _mean(base_values)
        deltas = []
        for run in runs[1:]:
            values = [metric_value(summary, metric) for summary in run.summaries]
            delta = judge(metric, base, _mean(values), tolerance)
            if delta.status in ("regression", "improved") and not significant(base_values, values):
                delta = Delta(delta.value, delta.diff, delta.relative, "worse" if delta.status == "regression" else "better")
            deltas.append(delta)
        if base is None and all(d.value is None for d in deltas):
            continue  # e.g. no ramp in any run: no knee to compare
        rows.append((metric, base, deltas))
    # What the scenario measures first: money, then the headline numbers, then the details;
    # the offered rate (whether the runs are comparable at all) stays on top.
    rows.sort(key=lambda row: -1 if row[0].better is None and row[0].name == "offered rate"
              else CONCERNS.index(row[0].concern))
    return Comparison(list(runs), tolerance, rows)


# A change of a percentage is in percentage points: 0.2% to 14.8% is +14.6 pp, not +14.6%.
_CHANGE_UNITS = {"%": " pp"}

# The metrics' duration units, each worded by its formatter (``8.7 ms``, ``65.2 s``).
_DURATIONS = {" ms": duration_ms, " s": duration_s}


def format_value(value: float | None, unit: str = "") -> str:
    """A metric's value; a duration (``" ms"``, ``" s"``) as ``report.text`` words every one."""
    if value is None:
        return "—"
    if unit in _DURATIONS:
        return _DURATIONS[unit](value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}{unit}"
    return f"{value:,.3f}".rstrip("0").rstrip(".") + unit


def format_delta(metric: Metric, delta: Delta) -> str:
    """"+12.5 ms (+3.1%)", "+6,447.2% (+14.6 pp)" for a percentage, or what a null change means."""
    if delta.diff is None:
        if delta.status == "regression":
            return "fired (was none)"
        if delta.status == "improved":
            return "none fired"
        return ""
    if delta.diff == 0:
        return "="
    sign = "+" if delta.diff > 0 else "−"
    size = abs(delta.diff)
    if metric.unit in _DURATIONS:
        amount = _DURATIONS[metric.unit](size)
    else:
        digits = 0 if size >= 100 else 1 if size >= 10 else 3
        amount = ((f"{size:,.{digits}f}".rstrip("0").rstrip(".") if digits else f"{size:,.0f}")
                  + _CHANGE_UNITS.get(metric.unit, metric.unit))
    if delta.relative is not None:
        return f"{sign}{abs(delta.relative) * 100:.1f}% ({sign}{amount})"
    return f"{sign}{amount}"


_STYLES = {"regression": "bold red", "worse": "yellow", "improved": "bold green", "better": "green"}
_MARKS = {"regression": " ▲", "improved": " ▼"}


def print_comparison(comparison: Comparison, console: Console) -> None:
    """The comparison as a rich table, then a line naming each regression."""
    tolerance = f"{comparison.tolerance * 100:g}%"
    table = KeptTable(title=f"msgstorm compare · baseline A · tolerance {tolerance} · ▲ regression ▼ improved",
                  header_style="bold")
    table.add_column("metric", no_wrap=True)
    table.add_column(comparison.runs[0].label, justify="right", no_wrap=True)
    for run in comparison.runs[1:]:
        table.add_column(run.label, justify="right", no_wrap=True)
        table.add_column(f"Δ {run.label} vs A", justify="right", no_wrap=True)
    for metric, base, deltas in comparison.rows:
        cells = [metric.name, format_value(base, metric.unit)]
        for delta in deltas:
            style = _STYLES.get(delta.status)
            text = format_delta(metric, delta) + _MARKS.get(delta.status, "")
            cells += [format_value(delta.value, metric.unit), f"[{style}]{text}[/]" if style else text]
        table.add_row(*cells)
    if console.is_terminal:
        console.print(table)
    else:  # a log or a pipe: print the table whole rather than squeezed into 80 columns
        needed = console.measure(table, options=console.options.update(max_width=10_000)).maximum
        wide = Console(file=console.file, width=max(console.width, needed), no_color=console.no_color,
                       force_terminal=False, highlight=False)
        wide.print(table)
    for run in comparison.runs:
        replicas = f" ({len(run.replicas)} runs: their mean)" if run.replicas else ""
        console.print(f"  {run.label} = {run.where}{replicas}", highlight=False, markup=False)  # a path may hold "[a]"
    if any(run.replicas for run in comparison.runs):
        console.print(f"  between groups a regression must also be significant (Welch's t, p < {SIGNIFICANCE:g})",
                      highlight=False, markup=False)
    offered = {_mean([metric_value(summary, METRICS[0]) for summary in run.summaries]) for run in comparison.runs}
    if len(offered) > 1:
        console.print("[yellow]note[/]: the runs offered different loads; differences may come from the load, "
                      "not the system", highlight=False)
    print_regressions(comparison, console)


def print_regressions(comparison: Comparison, console: Console) -> None:
    """A line naming each regression, or one saying there is none (all ``compare -q`` prints
    besides the HTML's path)."""
    tolerance = f"{comparison.tolerance * 100:g}%"
    concern = comparison.first_concern
    if concern is not None and concern != "detail":
        changes = "; ".join(f"{metric.name} in {run.name}: {format_delta(metric, delta)} "
                            f"{'[bold red]regression[/]' if delta.status == 'regression' else '[bold green]improved[/]'}"
                            for metric, run, delta in comparison.headline)
        console.print(f"[bold]{concern}[/]: {changes or f'no change beyond {tolerance}'}", highlight=False)
    regressions = comparison.regressions
    if regressions:
        for metric, run, delta in regressions:
            console.print(f"[bold red]regression[/]: {metric.name} in {run.name}: {format_delta(metric, delta)} "
                          f"(beyond {tolerance})", highlight=False)
    else:
        console.print(f"[green]no regression[/] beyond {tolerance}", highlight=False)
