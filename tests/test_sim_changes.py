"""Sampled series written as they change (sim/changes.py): rows at changes, a closing row,
samples passed while nothing happens, and every figure read from them as from every sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import msgstorm.sim.shadow as shadow
from msgstorm.analysis.queue import depth_samples
from msgstorm.analysis.windows import window_metrics
from msgstorm.history import read_history
from msgstorm.history.events import EventKind
from msgstorm.report.series import queue_depth_series
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario
from msgstorm.sim.changes import ChangedSamples, close_rows, quiet_samples
from msgstorm.sim.sequencer import Sequencer

SAMPLED = ("queue_depth", "queue_depth_max", "block_backlog")

# Two nodes, a burst of traffic in the first two seconds of ten minutes, blocks every 5 s:
# 6,000 samples of 100 ms, almost all of them of an idle queue.
IDLE_TOML = """
[run]
name = "idle"
seed = 7
duration = "600s"
drain = "2s"
window = "30s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 1
processing = "200us"
latency = { "us-east/eu-west" = "40ms" }

[sequencer]
node = "us-east-0"
service = "2ms"

[blocks]
interval = "5s"
max_messages = 300

[[agents]]
name = "burst"
arrival = { process = "poisson", rate = "1000/s" }
stop = "2s"
"""


class _Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[int, str, int | None, float | None]] = []

    def event(self, t: int, kind: str, node: int | None = None, value: float | None = None) -> None:
        self.rows.append((t, kind, node, value))


def test_a_series_writes_its_changes_and_closes_at_its_last_sample() -> None:
    record = _Rows()
    samples = ChangedSamples(record)  # type: ignore[arg-type]
    for t, depth in ((10, 0.0), (20, 0.0), (30, 4.0), (40, 4.0), (50, 4.0)):
        samples.tick(t)
        samples.write(t, "queue_depth", 0, depth)
    samples.tick(60)
    samples.write(60, "queue_depth", 1, 4.0)  # the leader changed: a row, the same depth
    samples.tick(70)
    samples.close()
    assert record.rows == [(10, "queue_depth", 0, 0.0), (30, "queue_depth", 0, 4.0),
                           (60, "queue_depth", 1, 4.0), (70, "queue_depth", 1, 4.0)]


def test_close_rows_close_only_the_series_written_before_the_last_sample() -> None:
    assert close_rows(70, [("queue_depth", 30, 4.0), ("block_backlog", 70, 1.0), ("x", -1, 0.0)], "n") == [
        (70, "queue_depth", "n", 4.0, None, None)]


def test_quiet_samples_pass_up_to_the_next_anything_and_stop_where_the_end_is_looked_for() -> None:
    # t=0, every 10: samples at 10..50 come before something at 55.
    assert quiet_samples(0, 10, 55, 5, 63, 1_000, 0) == 5
    assert quiet_samples(0, 10, 50, 5, 63, 1_000, 0) == 4  # the one at 50 meets it: taken
    assert quiet_samples(0, 10, 55, 64, 63, 1_000, 0) == 0  # the loop looks for the end after this one
    assert quiet_samples(0, 10, 55, 61, 63, 1_000, 0) == 2  # step 64 (the third) is a look: taken
    assert quiet_samples(0, 10, 10**6, 61, 63, 1_000, 10**6) == 100  # before the traffic's end: to hard_stop
    assert quiet_samples(0, 10, 10**6, 61, 63, 10**6, 500) == 66  # 50th at 500; step 128 (the 67th) a look


def _run(tmp: Path) -> tuple[Any, dict[str, Any]]:
    run(parse_scenario(IDLE_TOML, source="idle.toml"), tmp)
    summary = json.loads((tmp / "summary.json").read_text())
    summary.pop("wall_s", None)
    return read_history(tmp), summary


def _every_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampler as it was: every series written at every sample, none passed."""
    def write(self: ChangedSamples, t: int, kind: str, node: int | None, value: float) -> None:
        self._record.event(t, kind, node, value)
        self._last[kind] = (t, node, value)

    monkeypatch.setattr(ChangedSamples, "write", write)
    monkeypatch.setattr(shadow, "quiet_samples", lambda *args: 0)


@pytest.mark.slow
def test_an_idle_run_writes_its_changes_and_reads_as_every_sample(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[int] = []
    sample = Sequencer.sample
    monkeypatch.setattr(Sequencer, "sample", lambda self, t: taken.append(t) or sample(self, t))
    changed, changed_summary = _run(tmp_path / "changes")
    samples_taken = len(taken)
    _every_sample(monkeypatch)
    taken.clear()
    grid, grid_summary = _run(tmp_path / "grid")
    ticks = len(taken)
    assert ticks >= 6_000  # every 100 ms of the traffic

    def rows(history: Any, kind: str) -> int:
        return int(pc.sum(pc.equal(history.events["kind"], kind)).as_py() or 0)

    assert [rows(grid, kind) for kind in SAMPLED] == [ticks] * 3
    written = sum(rows(changed, kind) for kind in SAMPLED)
    assert written < 200, written  # the burst's changes and the blocks', not 18,060 rows
    assert samples_taken < 400, samples_taken  # samples taken where something happened
    assert changed_summary == grid_summary
    assert changed.messages.equals(grid.messages)
    assert window_metrics(changed).equals(window_metrics(grid))
    assert queue_depth_series(changed) == queue_depth_series(grid)
    ours, theirs = depth_samples(changed), depth_samples(grid)
    for name in ("t", "depth", "t_max", "depth_max", "t_backlog", "backlog"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
    other = [kind.value for kind in EventKind if kind.value not in SAMPLED]
    keep = pc.is_in(changed.events["kind"], value_set=pa.array(other))
    keep_grid = pc.is_in(grid.events["kind"], value_set=pa.array(other))
    assert changed.events.filter(keep).equals(grid.events.filter(keep_grid))
