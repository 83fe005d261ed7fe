"""Prometheus metrics of a run while it goes (``msgstorm run --prometheus PORT``).

Place in the pipeline: beside the target. ``RunMetrics`` is fed the simulator's progress
snapshots (see ``live``) and, once the run is analysed, the final analysis; it is a
prometheus-client collector, so every scrape reads the latest state. ``PrometheusExporter``
serves it over HTTP, bound to 127.0.0.1 unless told otherwise, from its own registry (no
global state).

During the run the metrics come from the snapshots: messages generated, committed and
dropped (counters), queue depth, offered and committed rate (over a sliding span of virtual
time), faults active (as the target reports them),
virtual time, and a latency histogram of the commits each snapshot carries (exact quantiles
come with the final analysis). After ``finish`` every value equals summary.json's: the
``msgstorm_messages_total{status}`` counters its ``messages``, the rates its
``offered_rate_per_s``/``throughput_per_s``, the histogram's count the committed messages.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Self

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from msgstorm.history.schema import STATUSES
from msgstorm.progress import ProgressSnapshot
from msgstorm.report.live import NS_PER_S, SnapshotRates

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from msgstorm.analysis import Analysis
    from msgstorm.analysis.summary_model import Latency, Messages
    from msgstorm.history.reader import History
    from msgstorm.scenario import Scenario

__all__ = ["LATENCY_BUCKETS_S", "PrometheusExporter", "RunMetrics"]

# Upper bounds of the latency histogram, seconds (+Inf is added).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)


def _quantiles_ms(latency: Latency) -> dict[str, float | None]:
    """summary.json's latency percentiles by the quantile label they export as (1: the max)."""
    return {"0.5": latency.p50, "0.9": latency.p90, "0.99": latency.p99, "0.999": latency.p999, "1": latency.max}


def _status_counts(messages: Messages) -> dict[str, int]:
    """summary.json's message counts by final status, in the history's order of the statuses
    (``history/schema.py``): a status the summary does not count fails here, not as a 0."""
    counted = {"committed": messages.committed, "dropped": messages.dropped, "rejected": messages.rejected,
               "lost": messages.lost, "pending": messages.pending, "unsent": messages.unsent}
    return {status: counted[status] for status in STATUSES}


class RunMetrics(Collector):
    """The state behind the metrics; thread-safe (the simulator writes, scrapes read)."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self._lock = threading.Lock()
        window_ns = scenario.run.window if scenario is not None else NS_PER_S
        self._rates = SnapshotRates(2 * int(window_ns))
        self._info = {"scenario": "", "target": "", "seed": ""}
        if scenario is not None:
            self._info = {"scenario": scenario.run.name, "target": str(scenario.target), "seed": str(scenario.run.seed)}
        self._t_ns: int | None = None
        self._end_ns: int | None = None
        self._queue_depth: int | None = None
        self._counts: dict[str, int] = {}
        self._sent = 0
        self._offered: float | None = None
        self._committed_rate: float | None = None
        self._faults_active = 0
        self._finished = False
        self._latency: tuple[list[int], float, int] | None = None  # cumulative buckets, sum_s, count
        self._quantiles_s: dict[str, float] = {}
        self._slos: list[tuple[str, str]] = []
        self._connections: dict[str, int] | None = None  # a live run's, once finished

    # --- writers -----------------------------------------------------------------------

    def observe(self, snapshot: ProgressSnapshot) -> None:
        """A progress callback: take the target's latest snapshot."""
        with self._lock:
            if self._finished:
                return
            self._rates.update(snapshot)
            self._t_ns, self._end_ns, self._queue_depth = snapshot.t_ns, snapshot.end_ns, snapshot.queue_depth
            self._sent = max(self._sent, snapshot.sent)
            for status, count in (("committed", snapshot.committed), ("dropped", snapshot.dropped),
                                  ("rejected", snapshot.rejected)):
                self._counts[status] = max(self._counts.get(status, 0), count)  # counters never go back
            self._offered = self._rates.offered_per_s
            self._committed_rate = self._rates.committed_per_s
            self._faults_active = snapshot.faults_active
            fresh = snapshot.latencies_ns
            if fresh.size:
                # Commits since the previous snapshot go into the live histogram.
                seconds = np.sort(np.asarray(fresh, dtype=np.float64)) / 1e9
                counts = np.searchsorted(seconds, np.asarray(LATENCY_BUCKETS_S), side="right")
                cumulative, sum_s, observed = self._latency or ([0] * len(LATENCY_BUCKETS_S), 0.0, 0)
                self._latency = ([a + int(b) for a, b in zip(cumulative, counts)],
                                 sum_s + float(seconds.sum()), observed + int(seconds.size))

    def finish(self, analysis: Analysis, history: History) -> None:
        """Set every metric to the final analysis' values (the snapshots stop before the end)."""
        from msgstorm.report.series import latency_ns

        result = analysis.result
        latencies_s = latency_ns(history) / 1e9
        counts = np.searchsorted(np.sort(latencies_s), np.asarray(LATENCY_BUCKETS_S), side="right")
        still_active = sum(1 for fault in result.faults if fault.end_s is None)
        with self._lock:
            messages = result.messages
            self._sent = messages.sent
            self._counts = _status_counts(messages)
            self._offered = result.offered_rate_per_s
            self._committed_rate = result.throughput_per_s
            self._faults_active = still_active
            self._latency = ([int(c) for c in counts], float(latencies_s.sum()), int(latencies_s.size))
            self._quantiles_s = {q: round(ms / 1000, 9) for q, ms in _quantiles_ms(result.latency_ms).items()
                                 if ms is not None}
            self._slos = [(slo.name, slo.verdict) for slo in result.slo]
            connections = result.connections
            self._connections = None if connections is None else {
                "disconnects": connections.disconnects,
                "errors": connections.errors,
                "servers_exited": len(connections.servers_exited)}
            if result.duration_s is not None:
                self._t_ns = round(result.duration_s * NS_PER_S)
            self._finished = True

    # --- the collector -----------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            t_ns, end_ns, queue_depth = self._t_ns, self._end_ns, self._queue_depth
            counts = dict(self._counts)
            sent, offered, committed_rate = self._sent, self._offered, self._committed_rate
            faults_active, finished = self._faults_active, self._finished
            latency, quantiles, slos = self._latency, dict(self._quantiles_s), list(self._slos)
            connections = dict(self._connections) if self._connections is not None else None
        info = GaugeMetricFamily("msgstorm_run_info", "The run being exported (value always 1).",
                                 labels=list(self._info))
        info.add_metric(list(self._info.values()), 1.0)
        yield info
        yield GaugeMetricFamily("msgstorm_run_finished", "1 once the run ended and its final analysis is exported.",
                                value=1.0 if finished else 0.0)
        if t_ns is not None:
            yield GaugeMetricFamily("msgstorm_virtual_time_seconds", "Virtual time the run has reached.",
                                    value=t_ns / NS_PER_S)
        if end_ns is not None:
            yield GaugeMetricFamily("msgstorm_virtual_end_seconds", "Virtual time at which the run stops.",
                                    value=end_ns / NS_PER_S)
        yield CounterMetricFamily("msgstorm_messages_sent", "Messages the schedule has produced so far "
                                  "(during a sim run, up to one traffic window ahead of virtual time).", value=sent)
        by_status = CounterMetricFamily("msgstorm_messages", "Messages by final status (committed and dropped "
                                        "during the run; every status once finished).", labels=["status"])
        for status, count in sorted(counts.items()):
            by_status.add_metric([status], count)
        yield by_status
        if offered is not None:
            yield GaugeMetricFamily("msgstorm_offered_rate_per_second", "Offered load, messages per second "
                                    "(sliding span while running; summary offered_rate_per_s at the end).",
                                    value=offered)
        if committed_rate is not None:
            yield GaugeMetricFamily("msgstorm_throughput_per_second", "Achieved (committed) messages per second "
                                    "(sliding span while running; summary throughput_per_s at the end).",
                                    value=committed_rate)
        if queue_depth is not None:
            yield GaugeMetricFamily("msgstorm_queue_depth", "Messages waiting in the sequencer queue.",
                                    value=float(queue_depth))
        yield GaugeMetricFamily("msgstorm_faults_active", "Scheduled faults active now.", value=float(faults_active))
        histogram = HistogramMetricFamily("msgstorm_latency_seconds", "Latency from intended send to commit of "
                                          "committed messages (as they commit; the whole run once finished).")
        if latency is not None:
            cumulative, sum_s, observed = latency
            buckets = [(repr(bound), float(c)) for bound, c in zip(LATENCY_BUCKETS_S, cumulative)]
            histogram.add_metric([], [*buckets, ("+Inf", float(observed))], sum_s)
        else:
            histogram.add_metric([], [("+Inf", 0.0)], 0.0)
        yield histogram
        if quantiles:
            family = GaugeMetricFamily("msgstorm_latency_quantile_seconds", "Exact latency quantiles of the run "
                                       "(summary latency_ms; quantile 1 is the max).", labels=["quantile"])
            for quantile, value in quantiles.items():
                family.add_metric([quantile], value)
            yield family
        if connections is not None:
            yield CounterMetricFamily("msgstorm_client_disconnects", "Times a live client lost its connection "
                                      "(the run's, once finished).", value=connections["disconnects"])
            yield CounterMetricFamily("msgstorm_client_errors", "Errors live clients reported (publishes dropped "
                                      "or refused, consumers that ended early, servers' words).",
                                      value=connections["errors"])
            yield GaugeMetricFamily("msgstorm_servers_exited_early", "Servers msgstorm started that exited on "
                                    "their own before it stopped them.", value=connections["servers_exited"])
        if slos:
            family = GaugeMetricFamily("msgstorm_slo_passed", "1 when the SLO passed, 0 when it failed, "
                                       "NaN when unknown.", labels=["slo"])
            for name, verdict in slos:
                family.add_metric([name], {"pass": 1.0, "fail": 0.0}.get(verdict, float("nan")))
            yield family


class PrometheusExporter:
    """Serves a ``RunMetrics`` at ``http://ADDR:PORT/metrics`` from a daemon thread.

    ``port=0`` picks a free port (see ``port`` after ``start``). Use as a context manager, or
    call ``start`` and ``close``."""

    def __init__(self, port: int, scenario: Scenario | None = None, addr: str = "127.0.0.1") -> None:
        self.requested_port = port
        self.addr = addr
        self.metrics = RunMetrics(scenario)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self.metrics)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/metrics"

    def start(self) -> Self:
        """Listen; raises OSError when the address is taken."""
        self._server, self._thread = start_http_server(self.requested_port, addr=self.addr, registry=self.registry)
        return self

    def observe(self, snapshot: ProgressSnapshot) -> None:
        self.metrics.observe(snapshot)

    def finish(self, analysis: Analysis, history: History) -> None:
        self.metrics.finish(analysis, history)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()
