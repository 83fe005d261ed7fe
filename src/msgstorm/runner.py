"""Running a scenario end to end: target -> history -> analysis -> summary.json.

``run(scenario)`` is the library entry point behind ``msgstorm run``. The history is
written while the target runs; on Ctrl-C the target stops, what it recorded is settled
and written, and analysis still produces a summary (marked ``interrupted``).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from msgstorm.analysis import Analysis, analyse
from msgstorm.history import History, HistoryWriter, read_history
from msgstorm.report import write_run_files
from msgstorm.scenario import Scenario, scenario_hash
from msgstorm.sim.shadow import Progress, ShadowNetwork
from msgstorm.traffic import generate_traffic

__all__ = ["RunResult", "default_run_dir", "msgstorm_version", "reanalyse", "run", "write_run_row"]


def msgstorm_version() -> str:
    try:
        return version("msgstorm")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


@dataclass(frozen=True)
class RunResult:
    """What a run leaves: the scenario, its history, the analysis and where it all is."""

    scenario: Scenario
    run_dir: Path
    history: History
    analysis: Analysis
    wall_s: float

    @property
    def summary(self) -> dict[str, object]:
        return self.analysis.summary

    @property
    def verdicts(self) -> list[object]:
        return list(self.analysis.verdicts)


def default_run_dir(scenario: Scenario, root: Path = Path("runs")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return root / f"{stamp}-{scenario.run.name}"


def _host_facts() -> str:
    facts = {"python": platform.python_version(), "platform": platform.platform(),
             "machine": platform.machine(), "cpus": os.cpu_count()}
    return json.dumps(facts, sort_keys=True)


def write_run_row(writer: HistoryWriter, scenario: Scenario, sim: ShadowNetwork, t_end: int) -> None:
    """The history's ``run`` table: what ran, where, and how far it got."""
    nodes = [{"name": name, "region": sim.topology.regions[r]}
             for name, r in zip(sim.topology.names, sim.topology.region_of)]
    writer.append("run", {
        "scenario_name": [scenario.run.name],
        "scenario_hash": [scenario_hash(scenario)],
        "scenario_json": [json.dumps(scenario.model_dump(mode="json", by_alias=True), sort_keys=True)],
        "seed": [scenario.run.seed],
        "msgstorm_version": [msgstorm_version()],
        "target": [scenario.target],
        "nodes_json": [json.dumps(nodes)],
        "t_end": [t_end],
        "interrupted": [sim.interrupted],
        "host": [_host_facts()],
    })


def run(scenario: Scenario, out_dir: str | Path | None = None, progress: Progress | None = None) -> RunResult:
    """Run a scenario on its target and analyse the history it wrote."""
    import time

    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(scenario)
    run_dir.mkdir(parents=True, exist_ok=True)
    writer = HistoryWriter(run_dir / "history", scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    started = time.perf_counter()
    sim = ShadowNetwork(scenario, writer, sim_seed, progress)
    try:
        sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window))
    except KeyboardInterrupt:  # raised outside the loop (e.g. while generating traffic)
        sim.interrupted = True
    finally:
        t_end = sim.finish()
        write_run_row(writer, scenario, sim, t_end)
        writer.close()
    del sim  # its per-message state is in the history now; free it before analysis
    wall_s = time.perf_counter() - started
    history = read_history(run_dir)
    analysis = analyse(history)
    write_summary(run_dir, analysis, wall_s)
    write_run_files(run_dir, history, analysis, wall_s)  # report.html, windows.csv
    return RunResult(scenario, run_dir, history, analysis, wall_s)


def write_summary(run_dir: Path, analysis: Analysis, wall_s: float | None = None) -> Path:
    summary = dict(analysis.summary)
    if wall_s is not None:
        summary["wall_s"] = round(wall_s, 3)
    path = run_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def reanalyse(run_dir: str | Path) -> Analysis:
    """Analyse a run directory from its history alone; rewrite summary.json, report.html
    and windows.csv."""
    directory = Path(run_dir)
    previous = directory / "summary.json"
    wall_s = None
    if previous.is_file():
        try:
            wall_s = json.loads(previous.read_text()).get("wall_s")
        except (ValueError, OSError):
            wall_s = None
    history = read_history(directory)
    analysis = analyse(history)
    write_summary(directory, analysis, wall_s)
    write_run_files(directory, history, analysis, wall_s)  # report.html, windows.csv
    return analysis
