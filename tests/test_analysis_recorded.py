"""Analysis that streams over a history's parts gives what the whole-column analysis gave.

``tests/data/live/`` holds four short live runs (NATS core on a step ramp, Redis Streams
read back, ZeroMQ with shared consumers, JetStream with its leader killed and a node
restarted: losses, acks, the stream read back node by node) as recorded, with the
summary.json (``wall_s`` aside), windows.csv and latency.hlog that ``msgstorm report`` wrote
on them before the analysis read the deliveries a part at a time and kept compact columns.
``msgstorm report`` on a copy must write the same files, digit for digit and byte for byte,
whether the tables come in the parts the run wrote or cut into many small ones (the
streamed passes carry their state across parts). A simulated run gives the same summary
however its history is cut too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from msgstorm.analysis import _intervals, audit
from msgstorm.history import read_history
from msgstorm.history.reader import read_table
from msgstorm.report import hdr_log
from msgstorm.report.rerun import reanalyse
from msgstorm.runner import run
from msgstorm.scenario import load_scenario

RECORDED = Path(__file__).resolve().parent / "data" / "live"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RUNS = sorted(path.name for path in RECORDED.iterdir() if path.is_dir())


def recut(history_dir: Path, table: str, rows_per_part: int) -> None:
    """Rewrite ``table`` as parts of ``rows_per_part`` rows (same rows, same order)."""
    whole = read_table(history_dir, table)
    shutil.rmtree(history_dir / table)
    (history_dir / table).mkdir()
    for index, start in enumerate(range(0, max(whole.num_rows, 1), rows_per_part)):
        pq.write_table(whole.slice(start, rows_per_part), history_dir / table / f"part-{index:06d}.parquet")


def _summary_text(run_dir: Path) -> str:
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("wall_s", None)
    return json.dumps(summary, indent=1, sort_keys=True) + "\n"


def test_every_recorded_run_is_here() -> None:
    assert RUNS == ["jetstream-kill", "nats-ramp", "redis", "zmq"]


@pytest.mark.parametrize("cut", [None, 700], ids=["as-recorded", "parts-of-700"])
@pytest.mark.parametrize("name", RUNS)
def test_report_on_a_recorded_live_run_is_what_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                                      cut: int | None) -> None:
    run_dir = tmp_path / name
    shutil.copytree(RECORDED / name / "history", run_dir / "history")
    if cut is not None:
        # Chunked passes carry their state across chunks: chunks of a few hundred rows here.
        monkeypatch.setattr(audit, "_CHUNK", 300)
        monkeypatch.setattr(_intervals, "_BIN_CHUNK", 300)
        monkeypatch.setattr(hdr_log, "_CHUNK", 300)
        for table in ("messages", "deliveries"):
            recut(run_dir / "history", table, cut)
        assert len(list((run_dir / "history" / "deliveries").iterdir())) > 1
    reanalyse(run_dir)
    assert _summary_text(run_dir) == (RECORDED / name / "summary.json").read_text(), f"{name}: summary.json differs"
    for written in ("windows.csv", "latency.hlog"):
        assert (run_dir / written).read_bytes() == (RECORDED / name / written).read_bytes(), f"{name}: {written} differs"


@pytest.mark.slow
def test_a_simulated_run_gives_the_same_summary_however_its_history_is_cut(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run(load_scenario(EXAMPLES / "quickstart.toml", ['run.duration="3s"', 'run.drain="2s"']), run_dir)
    whole = _summary_text(run_dir)
    assert read_history(run_dir).num_rows("deliveries") > 3_000  # gossip: deliveries across regions
    for table in ("messages", "deliveries"):
        recut(run_dir / "history", table, 1_000)
    reanalyse(run_dir)
    assert _summary_text(run_dir) == whole
