"""Prometheus export: scraped over HTTP while a run goes; the final values equal summary.json's."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

import msgstorm
from msgstorm.cli import app
from msgstorm.report.prometheus import PrometheusExporter
from msgstorm.runner import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SMALL = ['run.duration="3s"', 'run.drain="2s"', 'faults.0.at="1s"', 'faults.0.duration="1s"']


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _scrape(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return _samples(response.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return None


def test_scraped_during_run_and_final_values_match_summary(tmp_path) -> None:
    scenario = msgstorm.load_scenario(EXAMPLES / "quickstart.toml", SMALL)
    scrapes: list[dict] = []
    stop = threading.Event()
    with PrometheusExporter(0, scenario) as exporter:
        assert exporter.url.startswith("http://127.0.0.1:")

        def scrape_until_stopped() -> None:
            while not stop.is_set():
                scraped = _scrape(exporter.url)
                if scraped is not None:
                    scrapes.append(scraped)
                time.sleep(0.02)

        def observe(snapshot) -> None:  # type: ignore[no-untyped-def]
            # The simulation may pass the 1 s fault in less wall time than one scrape takes:
            # at the first snapshot with the fault active it waits (at most 10 s) until a
            # scrape after it has landed, so the test does not depend on the machine's speed.
            exporter.observe(snapshot)
            if snapshot.faults_active and not fault_seen.is_set():
                fault_seen.set()
                seen = len(scrapes)
                deadline = time.monotonic() + 10
                while len(scrapes) < seen + 2 and time.monotonic() < deadline:
                    time.sleep(0.01)

        fault_seen = threading.Event()
        scraper = threading.Thread(target=scrape_until_stopped)
        scraper.start()
        try:
            result = run(scenario, tmp_path / "run", progress=observe)
            during = list(scrapes)
            ended = _scrape(exporter.url)  # after the simulator's last snapshot, before finish()
            exporter.finish(result.analysis, result.history)
        finally:
            stop.set()
            scraper.join()
        final = _scrape(exporter.url)
    assert final is not None
    summary = json.loads((result.run_dir / "summary.json").read_text())

    live = [s for s in during if _value(s, "msgstorm_run_finished") == 0.0
            and (_value(s, "msgstorm_messages_total", status="committed") or 0) > 0]
    assert live, "no scrape saw the run in progress"
    committed = [_value(s, "msgstorm_messages_total", status="committed") for s in live]
    assert committed == sorted(committed), "a counter went back"
    assert max(committed) <= summary["messages"]["committed"]
    assert any(_value(s, "msgstorm_faults_active") == 1.0 for s in live), "the fault was active 1s..2s"
    assert all(_value(s, "msgstorm_queue_depth") is not None for s in live)
    assert any((_value(s, "msgstorm_throughput_per_second") or 0) > 0 for s in live)

    # The live histogram is fed by the snapshots alone and ends on the summary's count.
    assert ended is not None
    assert _value(ended, "msgstorm_latency_seconds_count") == summary["messages"]["committed"]
    live_counts = [_value(s, "msgstorm_latency_seconds_count") or 0 for s in live]
    assert any(0 < c < summary["messages"]["committed"] for c in live_counts)

    assert _value(final, "msgstorm_run_finished") == 1.0
    assert _value(final, "msgstorm_messages_sent_total") == summary["messages"]["sent"]
    for status in ("committed", "dropped", "rejected", "lost", "pending"):
        assert _value(final, "msgstorm_messages_total", status=status) == summary["messages"][status], status
    assert _value(final, "msgstorm_latency_seconds_count") == summary["messages"]["committed"]
    assert _value(final, "msgstorm_latency_seconds_bucket", le="+Inf") == summary["messages"]["committed"]
    assert _value(final, "msgstorm_offered_rate_per_second") == summary["offered_rate_per_s"]
    assert _value(final, "msgstorm_throughput_per_second") == summary["throughput_per_s"]
    p99_s = _value(final, "msgstorm_latency_quantile_seconds", quantile="0.99")
    assert p99_s * 1000 == pytest.approx(summary["latency_ms"]["p99"])
    assert _value(final, "msgstorm_faults_active") == 0.0
    assert _value(final, "msgstorm_client_disconnects_total") is None, "no live clients on the simulator"
    mean_s = _value(final, "msgstorm_latency_seconds_sum") / summary["messages"]["committed"]
    assert abs(mean_s * 1000 - summary["latency_ms"]["mean"]) < 0.01
    for slo in summary["slo"]:
        assert _value(final, "msgstorm_slo_passed", slo=slo["name"]) == (1.0 if slo["verdict"] == "pass" else 0.0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_cli_serves_metrics_on_loopback_while_running(tmp_path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    command = [sys.executable, "-c", "from msgstorm.cli import app; app()", "run", str(EXAMPLES / "quickstart.toml"),
               "--out", str(tmp_path / "run"), "-q", "--prometheus", str(port),
               *[arg for override in SMALL for arg in ("--set", override)]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scrapes = []
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        scraped = _scrape(url)
        if scraped is not None:
            scrapes.append(scraped)
        elif scrapes and _value(scrapes[-1], "msgstorm_run_finished") == 1.0:
            # The linger is over and the port closed: whatever answers on it from now on is
            # not this run (another process may take the freed port on a busy machine).
            break
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"prometheus metrics: {url}" in stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert scrapes, "the endpoint never answered while the run went"
    seen = [_value(s, "msgstorm_messages_total", status="committed") for s in scrapes]
    assert any(v is not None for v in seen)
    assert all(v is None or v <= summary["messages"]["committed"] for v in seen)
    # After the run the endpoint lingers (default 5 s) with the final values, so a scraper sees them.
    finished = [s for s in scrapes if _value(s, "msgstorm_run_finished") == 1.0]
    assert finished, "no scrape saw the finished run: the endpoint closed with the run"
    assert _value(finished[-1], "msgstorm_messages_total", status="committed") == summary["messages"]["committed"]
    # Before the end no scrape says finished (a scrape at start-up may not have the gauge yet).
    said = [_value(s, "msgstorm_run_finished") for s in scrapes]
    assert all(v in (0.0, None) for v in said[: len(scrapes) - len(finished)]), said
    assert _scrape(url) is None, "the server stops once the linger is over"


def test_port_in_use_exits_2(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        outcome = CliRunner().invoke(app, ["run", str(EXAMPLES / "quickstart.toml"), "--out", str(tmp_path / "r"),
                                           "-q", "--prometheus", str(port)])
    assert outcome.exit_code == 2, outcome.output
    assert f"--prometheus {port}: cannot listen on 127.0.0.1:{port}" in outcome.output
    assert not (tmp_path / "r").exists(), "nothing ran"


def test_a_live_runs_connection_trouble_is_exported_once_finished(tmp_path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from test_analysis_history import S, event, message, write_history

    from msgstorm.analysis.summary import analyse
    from msgstorm.report.prometheus import RunMetrics

    rows = [message(i, i * 1_000_000, status="committed", t_sent=i * 1_000_000 + 1) for i in range(3)]
    history = write_history(tmp_path, rows, [
        event(0, "run_start", target="nats", fanout=True, acks=False, consumers=1),
        event(S, "disconnected", client="msgstorm-consumer-0"),
        event(S, "client_error", client="msgstorm-consumer-0", error="nats-server: Slow Consumer Detected"),
        event(2 * S, "server_stop", name="nats-server", returncode=-9, exited_early=True)], target="nats")
    metrics = RunMetrics()
    registry = CollectorRegistry()
    registry.register(metrics)
    assert _value(_samples(generate_latest(registry).decode()), "msgstorm_client_disconnects_total") is None
    metrics.finish(analyse(history), history)
    final = _samples(generate_latest(registry).decode())
    assert _value(final, "msgstorm_client_disconnects_total") == 1.0
    assert _value(final, "msgstorm_client_errors_total") == 1.0
    assert _value(final, "msgstorm_servers_exited_early") == 1.0


def test_each_status_counter_reads_its_own_count_of_the_summary() -> None:
    """Each status's counter takes summary.json's count of that status (counts all different,
    so two fields swapped fail), keyed in the history's order of the statuses; a count read
    by a misspelt string key was a silent 0."""
    from msgstorm.analysis.summary_model import Messages
    from msgstorm.history.schema import STATUSES
    from msgstorm.report.prometheus import _status_counts

    messages = Messages(sent=14, sequenced=9, committed=5, dropped=4, rejected=3, lost=2, pending=1, unsent=6)
    counts = _status_counts(messages)
    assert counts == {"committed": 5, "dropped": 4, "rejected": 3, "lost": 2, "pending": 1, "unsent": 6}
    assert tuple(counts) == STATUSES
