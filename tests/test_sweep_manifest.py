"""A sweep's --out: it resumes only the same sweep (manifest), refuses anything else, and the
safe-leverage search adds its points to one sweep per curve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.sweep import SweepDirError, parse_grid, plan_sweep, sweep
from msgstorm.sweep.manifest import MANIFEST_FILE, SEARCH_FILE, Manifest, settle
from msgstorm.sweep.results import write_results

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHORT = ['run.duration="1s"', 'run.drain="1s"']


def _scenario(tmp_path: Path) -> Path:
    scenario = tmp_path / "quickstart.toml"
    shutil.copy(EXAMPLES / "quickstart.toml", scenario)
    return scenario


def test_a_runs_id_depends_on_the_scenarios_content() -> None:
    one = plan_sweep([("a", [1])], zipped=False, seeds=1, base_seed=0, scenario_digest="aa")
    other = plan_sweep([("a", [1])], zipped=False, seeds=1, base_seed=0, scenario_digest="bb")
    assert one.runs[0].run_id != other.runs[0].run_id


def test_another_sweep_into_the_same_out_is_refused_naming_what_differs(tmp_path: Path) -> None:
    scenario, out = _scenario(tmp_path), tmp_path / "out"
    first = sweep(scenario, [parse_grid("sequencer.workers=1")], workers=1, out_dir=out, sets=SHORT)
    assert first.ran == 1
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["sets"] == SHORT and manifest["keys"] == ["sequencer.workers"]
    assert manifest["points"] == [{"sequencer.workers": 1}] and len(manifest["scenario_digest"]) == 64
    table = (out / "sweep.parquet").read_bytes()
    cases = {  # what changes -> what the refusal names
        "--set": dict(grids=[parse_grid("sequencer.workers=1")], sets=[*SHORT, "sequencer.workers=2"]),
        "the grid's points": dict(grids=[parse_grid("sequencer.workers=1,2")], sets=SHORT),
        "the grid's keys": dict(grids=[parse_grid('sequencer.policy="fifo"')], sets=SHORT),
        "the seeds": dict(grids=[parse_grid("sequencer.workers=1")], sets=SHORT, seeds=2),
    }
    for differs, change in cases.items():
        with pytest.raises(SweepDirError, match="give a new --out") as refused:
            sweep(scenario, change.pop("grids"), workers=1, out_dir=out, **change)  # type: ignore[arg-type]
        assert differs in str(refused.value), str(refused.value)
    with pytest.raises(SweepDirError) as refused:  # the points of both sides, by their values
        sweep(scenario, [parse_grid("sequencer.workers=3")], workers=1, out_dir=out, sets=SHORT)
    assert ("the grid's points (1: sequencer.workers=1 there, 1: sequencer.workers=3 now)"
            in str(refused.value)), str(refused.value)
    # The scenario edited: its runs would be stale.
    scenario.write_text(scenario.read_text() + "\n# edited\n")
    result = CliRunner().invoke(app, ["sweep", str(scenario), "--grid", "sequencer.workers=1", "--out", str(out),
                                      "-q", *[arg for item in SHORT for arg in ("--set", item)]])
    assert result.exit_code == 2, result.output
    assert "the scenario's content" in result.output and "give a new --out" in result.output, result.output
    assert (out / "sweep.parquet").read_bytes() == table, "a refused sweep leaves the sweep there alone"
    assert len(list((out / "runs").iterdir())) == 1


def test_a_run_directory_or_a_directory_of_other_files_is_refused_as_out(tmp_path: Path) -> None:
    """Refused, and left as it was (no lock file made in it)."""
    run_dir = tmp_path / "run"
    (run_dir / "history").mkdir(parents=True)
    with pytest.raises(SweepDirError, match="a run directory"):
        sweep(EXAMPLES / "quickstart.toml", [], out_dir=run_dir, sets=SHORT)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["sweep", str(EXAMPLES / "quickstart.toml"), "--out", str(other), "-q"])
    assert result.exit_code == 2 and "notes.txt" in result.output and "no manifest.json" in result.output, \
        result.output
    assert sorted(path.name for path in other.iterdir()) == ["notes.txt"], "a refused directory is left as it was"
    assert sorted(path.name for path in run_dir.iterdir()) == ["history"]


@pytest.mark.slow
def test_points_added_to_a_sweep_accumulate_in_its_tables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sweep(EXAMPLES / "quickstart.toml", [parse_grid("sequencer.workers=1")], workers=1, out_dir=out, sets=SHORT,
          add_points=True)
    result = sweep(EXAMPLES / "quickstart.toml", [parse_grid("sequencer.workers=2")], workers=1, out_dir=out,
                   sets=SHORT, add_points=True)
    assert result.ran == 1 and result.skipped == 1  # the first point's run, there already
    again = sweep(EXAMPLES / "quickstart.toml", [parse_grid("sequencer.workers=1")], workers=1, out_dir=out,
                  sets=SHORT, add_points=True)
    assert again.ran == 0 and again.skipped == 2
    rows = pq.read_table(out / "sweep.parquet").to_pylist()
    assert sorted(row["sequencer.workers"] for row in rows) == [1, 2]
    assert [point["grid"] for point in json.loads((out / "sweep.json").read_text())["points"]] == [
        {"sequencer.workers": 1}, {"sequencer.workers": 2}]
    with pytest.raises(SweepDirError, match="--set"):  # adding points never changes the rest of the sweep
        sweep(EXAMPLES / "quickstart.toml", [parse_grid("sequencer.workers=3")], out_dir=out, sets=[],
              add_points=True)


def test_msgstorm_report_on_a_sweeps_directory_says_it_is_a_sweeps(tmp_path: Path) -> None:
    """Before: "error: DIR/history: no history (is DIR a msgstorm run directory?)". Now it
    says whose directory it is and where its results are, and exits 2 as for any bad input."""
    out = tmp_path / "sweep"
    out.mkdir()
    plan = plan_sweep([("sequencer.workers", [1, 2])], zipped=False, seeds=3, base_seed=1)
    settle(out, Manifest("examples/quickstart.toml", "quickstart", "ab" * 32, [], plan.seeds, plan.keys, plan.points,
                         "0.1.0"))
    said = CliRunner().invoke(app, ["report", str(out)])
    assert said.exit_code == 2
    assert f"{out}: a sweep's directory (2 points x 3 seeds of examples/quickstart.toml, manifest.json), not a " \
           "run's: msgstorm report re-analyses one run from its history. It has no sweep.html yet" in said.output
    write_results(out, plan, {spec.run_id: {"status": "ok", "summary": {"throughput_per_s": 1.0}} for spec in plan.runs})
    (out / "sweep.html").write_text("")
    kept = out / "runs" / plan.runs[0].run_id / "history"
    kept.mkdir(parents=True)
    said = CliRunner().invoke(app, ["report", str(out)])
    assert said.exit_code == 2
    assert (f"Its page is {out / 'sweep.html'}, its runs' table {out / 'sweep.parquet'}, its points "
            f"{out / 'sweep.json'}; a run it kept: msgstorm report {kept.parent}") in " ".join(said.output.split())
    search = tmp_path / "search"
    search.mkdir()
    (search / SEARCH_FILE).write_text("{}")
    said = CliRunner().invoke(app, ["report", str(search)])
    assert said.exit_code == 2 and f"{search}: a safe-leverage search's directory" in said.output
    (tmp_path / "other").mkdir()
    alone = CliRunner().invoke(app, ["report", str(tmp_path / "other")])
    assert alone.exit_code == 2 and "no history (is" in alone.output  # neither: as before
