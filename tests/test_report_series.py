"""Plot-ready series: thinning a long series for the screen, and propagation by region."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from test_analysis_history import MS, S, event, message, write_history

from msgstorm.analysis import analyse
from msgstorm.analysis._common import message_rows
from msgstorm.history import read_history
from msgstorm.report.html import render_run_report
from msgstorm.report.series import (
    MACHINE_LINE,
    bucket_peaks,
    bucket_starts,
    cpu_series,
    percentile_spectrum,
    region_matrix,
    thin_lowest_highest,
)
from msgstorm.runner import run
from msgstorm.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHORT = ['run.duration="2s"', 'run.drain="1s"']


@pytest.mark.parametrize("ids", [[0, 1, 2, 3, 4], [0, 2, 1, 3, 4], [1, 2, 3, 4, 5], [0, 1, 1, 3, 4], [7, 10**12, 3]])
def test_a_message_row_is_found_however_the_ids_lie(ids: list[int]) -> None:
    # In order from 0 (a live run's rows: no table is made), shuffled, shifted, repeated,
    # sparse: each wanted id's row is one that holds it, and ids no row holds are not known.
    msg_id = np.array(ids, dtype=np.int64)
    wanted = np.array([-1, 0, 1, 3, 4, 5, 7, 10**12, 10**13], dtype=np.int64)
    row, known = message_rows(msg_id, wanted)
    assert known.tolist() == [int(w) in ids for w in wanted.tolist()]
    assert (msg_id[row[known]] == wanted[known]).all()


def test_buckets_split_the_points_evenly() -> None:
    for n, buckets in ((10, 3), (2_001, 1_000), (5, 5)):
        starts = bucket_starts(n, buckets)
        sizes = np.diff(np.append(starts, n))
        assert starts[0] == 0 and sizes.sum() == n and sizes.max() - sizes.min() <= 1


def test_a_short_series_is_drawn_whole() -> None:
    values = np.array([3.0, np.nan, 1.0])
    assert thin_lowest_highest(values, max_points=3).tolist() == [0, 1, 2]
    first, last, peak = bucket_peaks(values, max_points=3)
    assert first.tolist() == last.tolist() == [0, 1, 2]


@pytest.mark.parametrize("seed", range(5))
def test_thinning_keeps_every_runs_lowest_and_highest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, max_points = int(rng.integers(101, 5_000)), 100
    values = rng.normal(size=n)
    values[rng.integers(0, n, size=n // 10)] = np.nan  # windows with nothing committed
    keep = thin_lowest_highest(values, max_points)
    assert keep.size <= max_points and np.all(np.diff(keep) > 0) and keep[0] == 0 and keep[-1] == n - 1
    starts = bucket_starts(n, max_points // 2 - 1)
    for start, end in zip(starts, np.append(starts[1:], n)):
        run_values = values[start:end]
        kept = values[keep[(keep >= start) & (keep < end)]]
        if np.isnan(run_values).all():
            assert kept.size >= 1 and np.isnan(kept).all()  # a gap stays a gap
        else:
            assert np.nanmin(kept) == np.nanmin(run_values) and np.nanmax(kept) == np.nanmax(run_values)


def test_bars_keep_each_runs_largest() -> None:
    values = np.arange(1_000, dtype=np.float64) % 7
    first, last, peak = bucket_peaks(values, max_points=30)
    assert first.size == 30 and first[0] == 0 and last[-1] == 999 and np.all(first[1:] == last[:-1] + 1)
    assert all(peak[i] == values[first[i]:last[i] + 1].max() for i in range(30))


def _brute_force(history) -> dict[tuple[str, str], tuple[float, float, int]]:  # type: ignore[no-untyped-def]
    """Each (origin, receiver) region pair's p50, p99 and count, one pair at a time."""
    messages, deliveries = history.messages, history.deliveries
    region_of = {node["name"]: node.get("region", "unknown") for node in history.nodes}
    row, known = message_rows(messages["msg_id"].to_numpy(), deliveries["msg_id"].to_numpy())
    sent = messages["t_sent"].to_numpy(zero_copy_only=False)[row]
    known &= ~np.isnan(sent)
    propagation = deliveries["t_delivered"].to_numpy() - sent
    origin = np.array([region_of.get(name, "unknown") for name in messages["node"].to_pylist()])[row]
    receiver = np.array([region_of.get(name, "unknown") for name in deliveries["node"].to_pylist()])
    cells = {}
    for pair in {(a, b) for a, b in zip(origin[known], receiver[known])}:
        values = propagation[known & (origin == pair[0]) & (receiver == pair[1])]
        cells[pair] = (round(float(np.percentile(values, 50, method="inverted_cdf")) / 1e6, 3),
                       round(float(np.percentile(values, 99, method="inverted_cdf")) / 1e6, 3), int(values.size))
    return cells


def test_region_matrix_is_each_region_pairs_propagation(tmp_path: Path) -> None:
    result = run(load_scenario(EXAMPLES / "quickstart.toml", SHORT), tmp_path / "run")
    history = read_history(result.run_dir)
    matrix = region_matrix(history, result.analysis.result.propagation_ms)  # three regions: from the deliveries
    expected = _brute_force(history)
    assert len(matrix.origins) == 3 and len(expected) == 9
    for i, origin in enumerate(matrix.origins):
        for j, receiver in enumerate(matrix.destinations):
            assert (matrix.p50_ms[i][j], matrix.p99_ms[i][j], matrix.count[i][j]) == expected[(origin, receiver)]


def test_one_regions_matrix_is_the_summarys_propagation_of_it(tmp_path: Path) -> None:
    one_region = [*SHORT, 'network.regions=["us-east"]', "network.nodes_per_region=6", 'agents.1.region="us-east"',
                  "faults=[]"]
    result = run(load_scenario(EXAMPLES / "quickstart.toml", one_region), tmp_path / "run")
    history = read_history(result.run_dir)
    computed = region_matrix(history)
    taken = region_matrix(history, result.analysis.result.propagation_ms)  # the typed section
    assert taken == computed and computed.count[0][0] > 0
    assert _brute_force(history) == {("us-east", "us-east"): (computed.p50_ms[0][0], computed.p99_ms[0][0],
                                                               computed.count[0][0])}


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 123_457])
def test_percentile_spectrum_reads_the_sorted_latencies_at_its_ranks(n: int) -> None:
    """The spectrum's latencies are the nearest-rank order statistics of a full sort (ties
    included), and the input is left as it was."""
    latencies = np.random.default_rng(n).integers(0, 50 if n % 2 else 10**9, n)
    kept = latencies.copy()
    percentiles, inverse, values = percentile_spectrum(latencies)
    assert np.array_equal(latencies, kept)
    ordered = np.sort(latencies)
    assert values[-1] == round(float(ordered[-1]) / 1e6, 3) and inverse[-1] == float(n)
    for percent, value in zip(percentiles[:-1], values[:-1], strict=True):
        # Nearest rank; the percentages are rounded to 6 decimals, so either side of a boundary.
        ranks = {int(np.clip(math.ceil(percent / 100.0 * n + d), 1, n)) - 1 for d in (-1e-3, 0.0, 1e-3)}
        assert value in {round(float(ordered[k]) / 1e6, 3) for k in ranks}, (percent, value)
    assert values == sorted(values)


def test_the_cpu_chart_draws_the_machines_total_beside_the_runs_processes(tmp_path: Path) -> None:
    """msgstorm's process used 0.5 CPUs for 2 s while the machine's 2 cores were busy 1.5:
    the chart has the process's line and the machine's, at 1.5, its limit the 2 cores."""
    events = [{"t": k * 100 * MS, "kind": "cpu_seconds", "node": "publisher", "value": 0.5 * k / 10, "height": None,
               "detail": None} for k in range(21)]
    events += [{"t": k * 100 * MS, "kind": "machine_cpu_seconds", "node": None, "value": 100.0 + 1.5 * k / 10,
                "height": None, "detail": None} for k in range(21)]
    history = write_history(tmp_path, [message(0, 0, latency_ns=MS)], events, t_end=2 * S, target="nats",
                            host='{"cpus": 2}')
    lines = {line.name: line for line in cpu_series(history)}
    assert set(lines) == {"publisher", MACHINE_LINE}
    assert lines[MACHINE_LINE].cpus == 2 and lines["publisher"].cpus is None
    assert len(lines[MACHINE_LINE].cores) == 20
    assert lines[MACHINE_LINE].cores == pytest.approx([1.5] * 20)
    assert lines["publisher"].cores == pytest.approx([0.5] * 20)


def test_a_fault_in_force_for_the_whole_run_is_a_note_not_a_shaded_incident(tmp_path: Path) -> None:
    """black-thursday-2020's oracle, an hour late all day, was shaded "fault active" over the
    whole day. A fault from the run's start to the end of its traffic (run.duration 5 s) is
    named under the faults table and not shaded; one from 1 s to 2 s still is."""
    events = [event(0, "fault_start", fault_id=0, kind="oracle"), event(5 * S, "fault_end", fault_id=0, kind="oracle"),
              event(1 * S, "fault_start", fault_id=1, kind="pause"), event(2 * S, "fault_end", fault_id=1, kind="pause")]
    history = write_history(tmp_path, [message(i, i * 10 * MS, latency_ns=5 * MS) for i in range(500)], events,
                            t_end=6 * S)
    page = render_run_report(history, analyse(history))
    shaded = set()
    for found in re.finditer(r'<script type="application/json" id="fig-([^"]+)">(.*?)</script>', page, re.S):
        for shape in json.loads(found.group(2))["layout"].get("shapes", []):
            if shape.get("legendgroup") == "fault":
                shaded.add((shape["x0"], shape["x1"]))
    assert shaded == {(1.0, 2.0)}
    note = re.search(r'<p class="note" id="whole-run-faults">([^<]*)</p>', page)
    assert note is not None and html.unescape(note.group(1)) == (
        "In force for the whole run: fault 0 (oracle, from 0 s to 5 s). A condition of the run rather than an "
        "incident in it: the charts do not shade it.")


@pytest.mark.slow
def test_the_queue_chart_draws_the_depth_the_card_names(example_run) -> None:
    """black-thursday's base-fee pool holds most of what waits: the card's queue depth (every
    message in queue_wait) is what the queue chart draws, peak for peak and mean for mean
    (before, the chart drew the sequencer's sampled queue: about half the card's max)."""
    from test_report_html import _cards, _figure

    from msgstorm.analysis._common import MessageArrays, run_t_end_ns
    from msgstorm.analysis.queue import depth_samples, waiting_series
    from msgstorm.report.figures import QUEUE_DEPTH_NAME
    from msgstorm.report.text import number

    result = example_run("black-thursday")
    page = render_run_report(result.history, result.analysis)
    queue = result.summary["queue"]
    value, sub = _cards(page)["queue depth max"]
    assert value == number(queue["max_depth"]) and "every message in queue_wait" in sub and "chart" in sub
    drawn = next(trace for trace in _figure(page, "queue")["data"] if trace["name"] == QUEUE_DEPTH_NAME)
    assert max(drawn["y"]) == queue["max_depth"]
    # The sequencer's own queue peaks lower here: a chart of it would not show the card's max.
    assert depth_samples(result.history).depth_max.max() < 0.8 * queue["max_depth"]
    t_end = run_t_end_ns(result.history)
    t, depth = waiting_series(MessageArrays.from_history(result.history), t_end)
    held_ns = np.diff(np.append(t, t_end)).astype(np.float64)
    assert round(float((depth * held_ns).sum()) / t_end, 3) == pytest.approx(queue["mean_depth"], abs=1e-3)
