"""The table of points a sweep prints at its end, and where a sweep writes without --out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import msgstorm.sweep
from msgstorm.cli import app
from msgstorm.sweep import SweepResult
from msgstorm.sweep.grid import plan_sweep
from msgstorm.sweep.html import write_sweep_report
from msgstorm.sweep.points import short_keys
from msgstorm.sweep.results import write_results

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _guard_summary(point: dict[str, Any], seed: int) -> dict[str, Any]:
    """A guard's run: bad debt from the grace period and the outage, p99 from the outage."""
    outage_min = int(point["faults[0].duration"][:-3])
    debt = {"0s": 0.0, "30min": 6_373_743.79, "1h": 6_776_203.67}[point["market.sentinel.grace"]]
    return {"throughput_per_s": 5.335, "latency_ms": {"p99": outage_min * 60_000.0 - 30_000.0 + seed - 2023},
            "messages": {"lost": 0}, "market": {"bad_debt": {"absolute": debt if outage_min > 30 else debt / 2}}}


def _fake_sweep(made: list[Path]) -> Any:
    """``msgstorm.sweep.sweep`` without runs: the tables and page of hand-made outcomes."""
    def sweep(scenario_path: Any, grids: list[tuple[str, list[Any]]], *, seeds: int = 1, out_dir: Any,
              **_: Any) -> SweepResult:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        made.append(out)
        plan = plan_sweep(grids, zipped=False, seeds=seeds, base_seed=2023)
        outcomes = {spec.run_id: {"status": "ok", "summary": _guard_summary(plan.points[spec.point], spec.seed)}
                    for spec in plan.runs}
        table = write_results(out, plan, outcomes)
        write_sweep_report(out, plan, table)
        return SweepResult(plan, table, 0, len(plan.runs), 0, out)

    return sweep


GUARD_GRID = ["--grid", 'market.sentinel.grace="0s","30min","1h"', "--grid", 'faults[0].duration="30min","78min"']

# What the terminal shows, on any terminal: before, only the three paths.
GUARD_TABLE = """\
points: mean over 2 seeds (95% intervals in sweep.json)
┏━━━━━━━┳━━━━━━━┳━━━━━━━━━━┳━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━┳━━━━━━━━━━━┓
┃ point ┃ grace ┃ duration ┃ runs ┃ throughput ┃      p99 ┃ lost ┃  bad debt ┃
┡━━━━━━━╇━━━━━━━╇━━━━━━━━━━╇━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━╇━━━━━━━━━━━┩
│     0 │ 0s    │ 30min    │    2 │     5.33/s │ 29.5 min │    0 │         0 │
│     1 │ 0s    │ 78min    │    2 │     5.33/s │ 77.5 min │    0 │         0 │
│     2 │ 30min │ 30min    │    2 │     5.33/s │ 29.5 min │    0 │ 3,186,872 │
│     3 │ 30min │ 78min    │    2 │     5.33/s │ 77.5 min │    0 │ 6,373,744 │
│     4 │ 1h    │ 30min    │    2 │     5.33/s │ 29.5 min │    0 │ 3,388,102 │
│     5 │ 1h    │ 78min    │    2 │     5.33/s │ 77.5 min │    0 │ 6,776,204 │
└───────┴───────┴──────────┴──────┴────────────┴──────────┴──────┴───────────┘
grace: market.sentinel.grace; duration: faults[0].duration"""


@pytest.mark.parametrize("columns", ["80", "200"])
def test_a_sweep_prints_a_table_of_its_points_at_its_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          columns: str) -> None:
    """Per point its values, runs and the means of throughput, p99, loss and bad debt, the
    same 80 columns on a terminal of 80 or 200; then the paths."""
    made: list[Path] = []
    monkeypatch.setattr(msgstorm.sweep, "sweep", _fake_sweep(made))
    result = CliRunner().invoke(app, ["sweep", str(EXAMPLES / "rollup-outage.toml"), *GUARD_GRID, "--seeds", "2",
                                      "--out", str(tmp_path / "s")], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.output.splitlines()]
    start = lines.index("points: mean over 2 seeds (95% intervals in sweep.json)")
    assert "\n".join(lines[start:start + 12]) == GUARD_TABLE
    assert max(len(line) for line in result.output.splitlines()[start:start + 12]) <= 80
    assert lines[start + 12].startswith("12 run(s) now, 0 finished before, 0 failed; table ")
    quiet = CliRunner().invoke(app, ["sweep", str(EXAMPLES / "rollup-outage.toml"), *GUARD_GRID, "--seeds", "2",
                                     "--out", str(tmp_path / "q"), "-q"])
    assert quiet.exit_code == 0 and "points:" not in quiet.output


def test_a_sweeps_default_directory_is_named_a_sweeps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: runs/<time>-rollup-outage, as a run's. Now: runs/<time>-rollup-outage-sweep."""
    made: list[Path] = []
    monkeypatch.setattr(msgstorm.sweep, "sweep", _fake_sweep(made))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", str(EXAMPLES / "rollup-outage.toml"), *GUARD_GRID, "-q"])
    assert result.exit_code == 0, result.output
    [out] = made
    assert out.parent == Path("runs") and out.name.endswith("Z-rollup-outage-sweep"), out
    assert (tmp_path / out / "sweep.html").is_file()


def test_each_key_is_named_by_the_shortest_end_no_other_key_shares() -> None:
    assert short_keys(["market.sentinel.grace", "faults[0].duration"]) == {
        "market.sentinel.grace": "grace", "faults[0].duration": "duration"}
    assert short_keys(["agents.0.count", "agents.1.count", "seed"]) == {
        "agents.0.count": "0.count", "agents.1.count": "1.count", "seed": "seed"}
