"""Live views of a running target: rates from progress snapshots, and the progress bar.

Place in the pipeline: beside the target while it runs. The simulator calls
``progress(snapshot)`` every ~1000 events, a live target every quarter second of wall time, with a ``ProgressSnapshot`` (``msgstorm.progress``:
virtual time, counts so far, the commit latencies since the previous snapshot). ``SnapshotRates`` turns successive
snapshots into rates over a sliding span of virtual time; ``LiveProgress`` draws a rich bar
from them; ``tee`` feeds one snapshot to several consumers (the bar and the Prometheus
exporter). Nothing here changes the run: a consumer only reads the snapshot.
``SweepProgress`` is the same for a sweep: runs done and failed and the time left, from each
run's outcome as it comes back (a few lines in all when the output is not a terminal).

``sent`` counts messages the schedule has *generated*, and traffic is generated a window
(``run.window``) at a time, so it runs ahead of virtual time by up to one window; the offered
rate is therefore measured over a span of at least two windows.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from msgstorm.history.schema import is_simulated
from msgstorm.progress import ProgressSnapshot, RecentLatencies
from msgstorm.report.text import duration_ms, duration_s

__all__ = ["LiveProgress", "SnapshotRates", "SweepProgress", "tee"]

Snapshot = ProgressSnapshot
NS_PER_S = 1_000_000_000


def tee(*consumers: Callable[[Snapshot], None] | None) -> Callable[[Snapshot], None] | None:
    """One progress callback calling each given consumer in turn (None when none is given)."""
    chosen = [consumer for consumer in consumers if consumer is not None]
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]

    def both(snapshot: Snapshot) -> None:
        for consumer in chosen:
            consumer(snapshot)

    return both


class SnapshotRates:
    """Offered (generated) and achieved (committed) rates per second of virtual time, over
    the last ``span_ns`` of virtual time."""

    def __init__(self, span_ns: int = 2 * NS_PER_S) -> None:
        self.span_ns = max(1, span_ns)
        self._points: deque[tuple[int, int, int]] = deque()  # (t_ns, sent, committed)

    def update(self, snapshot: Snapshot) -> None:
        point = (snapshot.t_ns, snapshot.sent, snapshot.committed)
        points = self._points
        if points and point[0] < points[-1][0]:  # time went back: a new run
            points.clear()
        points.append(point)
        # Keep one point at or before the span's start so the span is fully covered.
        while len(points) > 2 and points[1][0] <= point[0] - self.span_ns:
            points.popleft()

    def _rate(self, index: int) -> float | None:
        if len(self._points) < 2:
            return None
        first, last = self._points[0], self._points[-1]
        elapsed_ns = last[0] - first[0]
        if elapsed_ns <= 0:
            return None
        return (last[index] - first[index]) * NS_PER_S / elapsed_ns

    @property
    def offered_per_s(self) -> float | None:
        return self._rate(1)

    @property
    def committed_per_s(self) -> float | None:
        return self._rate(2)


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


class LiveProgress:
    """A rich progress bar fed by snapshots: virtual time, committed rate, queue depth,
    drops and the simulation's speed (virtual seconds per wall second). Redraws at most
    every ``min_interval_s`` of wall time. Use as a context manager around the run."""

    def __init__(self, console: Console, span_ns: int = 2 * NS_PER_S, min_interval_s: float = 0.1) -> None:
        self.rates = SnapshotRates(span_ns)
        self.latencies = RecentLatencies()
        self.min_interval_s = min_interval_s
        self._bar = Progress(TextColumn("[bold]{task.fields[label]}"), BarColumn(), TextColumn("{task.fields[status]}"),
                             TimeElapsedColumn(), console=console, transient=True)
        self._task = self._bar.add_task("run", total=1.0, status="starting", label="run")
        self._started = time.monotonic()
        self._last_draw = 0.0

    def __enter__(self) -> Self:
        self._started = time.monotonic()
        self._bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._bar.__exit__(kind, error, trace)

    def __call__(self, snapshot: Snapshot) -> None:
        self.rates.update(snapshot)
        self.latencies.add(snapshot.latencies_ns)
        now = time.monotonic()
        if now - self._last_draw < self.min_interval_s:
            return
        self._last_draw = now
        self._bar.update(self._task, completed=min(1.0, snapshot.t_ns / max(1, snapshot.end_ns)),
                         status=self.status(snapshot, now - self._started), label=snapshot.target)

    def status(self, snapshot: Snapshot, wall_s: float) -> str:
        """The text beside the bar: virtual time and speed on the simulator; on a live target
        wall time against the duration, offered and achieved rates, the send lag, receipts
        and the publishes lost so far."""
        t_s = snapshot.t_ns / NS_PER_S
        p99_ms = self.latencies.p99_ms()
        p99 = f" p99 {duration_ms(p99_ms)}" if p99_ms is not None else ""
        if not is_simulated(snapshot.target):
            lag = "" if snapshot.send_lag_ns is None else f" send lag {duration_ms(snapshot.send_lag_ns / 1e6)}"
            return (f"{t_s:.1f}/{snapshot.end_ns / NS_PER_S:.1f}s "
                    f"offered {_count(self.rates.offered_per_s)}/s achieved {_count(self.rates.committed_per_s)}/s"
                    f"{lag} receipts {snapshot.receipts:,} {_red('lost', snapshot.dropped)}")
        speed = f" ×{t_s / wall_s:.2g}" if wall_s > 0 else ""
        return (f"t={t_s:.2f}/{snapshot.end_ns / NS_PER_S:.2f}s{speed} "
                f"committed {_count(self.rates.committed_per_s)}/s{p99} "
                f"queue {snapshot.queue_depth:,} "
                f"{_red('dropped', snapshot.dropped)} {_red('rejected', snapshot.rejected)}")


def _red(name: str, count: int) -> str:
    """``name N``, red when N is not 0: messages the layer dropped, refused or lost."""
    return f"{name} [red]{count:,}[/]" if count else f"{name} 0"


# Away from a terminal (a log, CI) a sweep's progress is a line at its first run, at each
# tenth of the runs, at least every this many seconds while runs come back, and at each
# failure: a few lines for a sweep of hundreds of runs, and never a long silence.
LINE_EVERY_S = 30.0
LINE_EVERY_SHARE = 0.1
# The time left is said once this share of the runs (and at least ETA_MIN_RUNS) is back: the
# first runs carry the workers' start (and the simulator's compile), which the rate leaves out.
ETA_AFTER_SHARE = 0.05
ETA_MIN_RUNS = 3


class SweepProgress:
    """Runs done, failed and the time left in a sweep, from each run's outcome as it comes
    back: on a terminal a bar redrawn in place; elsewhere (a log, CI) a line now and then
    (``LINE_EVERY_SHARE`` of the runs, ``LINE_EVERY_S``) and one for each failed run.
    ``total`` is None when the number of runs is not known ahead: the bar then counts
    without an ETA; with ``at_most`` it is an upper bound (a search that may stop early) and
    the count and ETA say so. The ETA comes once enough runs are back to measure their rate
    (``ETA_AFTER_SHARE``), from the first run's return on. ``quiet`` (``-q``) counts and
    shows nothing. ``clock`` (seconds) is injectable. Use as a context manager around the
    sweep."""

    def __init__(self, console: Console, label: str = "sweep", clock: Callable[[], float] = time.monotonic,
                 quiet: bool = False) -> None:
        self.console = console
        self.clock = clock
        self.quiet = quiet
        self.done = 0
        self.failed = 0
        self.total: int | None = None
        self.at_most = False  # the total is an upper bound (a search may stop early)
        self._first_back: float | None = None  # when the first run came back
        self._said_at: float | None = None  # when the last line was written (not on a terminal)
        self._said_done = 0  # runs done at that line
        self._bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.fields[status]}"),
                             TimeElapsedColumn(), console=console, transient=True)
        self._task = self._bar.add_task(label, total=None, status="starting")

    @property
    def _drawn(self) -> bool:
        """A bar redrawn in place: on a terminal, not quiet."""
        return self.console.is_terminal and not self.quiet

    def __enter__(self) -> Self:
        if self._drawn:
            self._bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._drawn:
            self._bar.__exit__(kind, error, trace)

    def start(self, total: int, at_most: bool = False) -> None:
        """The number of runs to make (those a previous sweep finished not counted), or with
        ``at_most`` the most a search can make: the count and the ETA are then upper bounds."""
        self.total = total
        self.at_most = at_most
        self._bar.update(self._task, total=max(total, 1), completed=0, status=self.status())

    def left_s(self) -> float | None:
        """Seconds left at the rate runs came back since the first (an upper bound with
        ``at_most``), or None while too few are back to say (``ETA_AFTER_SHARE``)."""
        if self.total is None or self._first_back is None:
            return None
        if self.done < max(ETA_MIN_RUNS, math.ceil(ETA_AFTER_SHARE * self.total)):
            return None
        return max(self.total - self.done, 0) * (self.clock() - self._first_back) / (self.done - 1)

    def status(self) -> str:
        """``N/T done, F failed, ETA 1.2 min`` (``N done`` while the total is unknown; ``N/≤T``
        and ``ETA ≤ 1.2 min`` when the total is an upper bound; no ETA until it means
        something)."""
        most = "≤" if self.at_most else ""
        done = f"{self.done:,}/{most}{self.total:,} done" if self.total is not None else f"{self.done:,} done"
        failed = f"[red]{self.failed:,} failed[/]" if self.failed else "0 failed"
        left_s = self.left_s()
        return f"{done}, {failed}" + ("" if left_s is None else f", ETA {most}{duration_s(left_s)}")

    def _line_due(self, now: float) -> bool:
        """Whether a log line is due: the first run back, a tenth of the runs since the last
        line, ``LINE_EVERY_S`` since it, or the last run."""
        if self._said_at is None or now - self._said_at >= LINE_EVERY_S:
            return True
        if self.total is None:
            return False
        step = max(1, math.ceil(LINE_EVERY_SHARE * self.total))
        return self.done // step > self._said_done // step or self.done >= self.total

    def __call__(self, outcome: dict[str, Any]) -> None:
        now = self.clock()
        if self._first_back is None:
            self._first_back = now
        self.done += 1
        ok = outcome.get("status") == "ok"
        self.failed += not ok
        if self.quiet:
            return
        status = self.status()
        if self._drawn:
            self._bar.update(self._task, completed=self.done, status=status)
            if not ok:
                self._bar.console.print(f"run {outcome.get('run_id')} failed: {outcome.get('error')}",
                                        highlight=False, markup=False)
            return
        if ok and not self._line_due(now):
            return
        self._said_at, self._said_done = now, self.done
        failure = "" if ok else f"  (run {outcome.get('run_id')}: {outcome.get('error')})"
        self.console.print(f"  {Text.from_markup(status).plain}{failure}", highlight=False, markup=False)
