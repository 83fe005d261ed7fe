"""The ``sim`` target: the shadow network, msgstorm's discrete-event model of the layer.

Place in the pipeline: ``TARGETS["sim"]``. ``record`` runs the simulator
(``sim/shadow.py``) on the scenario's traffic and, for ``[crosschain]``, the destination
chain after it in ``RUN_DIR/destination``; ``problems`` checks the simulated fault entries
against the network (``scenario/refs.py``); ``estimate`` is the simulator's cost model
(``scenario/budget.py``). The engine loads only when a run starts: validation of a
simulated scenario imports no simulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from msgstorm.scenario.budget import WorkEstimate, estimate_simulated
from msgstorm.scenario.refs import process_problems, simulated_fault_problems
from msgstorm.scenario.registry import TARGETS
from msgstorm.targets.base import Problem, RunContext

if TYPE_CHECKING:
    from pathlib import Path

    from msgstorm.history.writer import HistoryWriter
    from msgstorm.progress import Progress
    from msgstorm.scenario.live import LiveSpec, OwnNames
    from msgstorm.scenario.schema import Scenario

__all__ = ["SimTarget"]


class SimTarget:
    """The shadow network (``Target``): every section, every simulated setting."""

    simulated = True
    sections = frozenset({"rollup", "crosschain", "sentinel"})
    analyse_apart = False

    def problems(self, scenario: Scenario) -> list[Problem]:
        return simulated_fault_problems(scenario) + process_problems(scenario, runs_processes=False)

    def estimate(self, scenario: Scenario) -> WorkEstimate:
        return estimate_simulated(scenario)

    def url_schemes(self) -> dict[str, str]:
        return {}  # nothing to reach: it runs here

    def generator_names(self, live: LiveSpec, index: int) -> OwnNames | None:
        return None

    def driver(self) -> type | None:
        return None  # it drives no live system

    def record(self, run: RunContext) -> None:
        from msgstorm.heap import release_freed_memory
        from msgstorm.report.rerun import without_cycle_collection

        with without_cycle_collection():
            _record_sim(run.scenario, run.writer, run.traffic_seed, run.target_seed, run.progress)
            if run.scenario.crosschain is not None:
                _record_destination(run.scenario, run.run_dir, run.progress, write_report=run.write_report,
                                    durable=run.durable)
        release_freed_memory()  # what the simulator freed is not kept under the analysis either


TARGETS.register("sim")(SimTarget())


def _record_sim(scenario: Scenario, writer: HistoryWriter, traffic_seed: np.random.SeedSequence,
                sim_seed: np.random.SeedSequence, progress: Progress | None) -> None:
    from msgstorm.draws import numpy_until_compiled
    from msgstorm.history.run_row import write_run_row
    from msgstorm.sim.rollup.stage import write_rollup
    from msgstorm.sim.shadow import ShadowNetwork
    from msgstorm.traffic import generate_traffic

    sim = ShadowNetwork(scenario, writer, sim_seed, progress)
    write_run_row(writer, scenario, sim, 0, completed=False)  # a killed run still says what ran
    writer.sync()
    try:
        # A run too small to win a compile back draws by numpy what numba has not compiled.
        with numpy_until_compiled(not sim.compile_all):
            sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window,
                                     min_rows=sim.traffic_rows, compile_windows=sim.helper is None and sim.compile_all))
    except KeyboardInterrupt:  # raised outside the loop (e.g. while generating traffic)
        sim.interrupted = True
    finally:
        t_end = sim.finish()
        if scenario.rollup is not None and not sim.interrupted:  # the L1 behind the L2 run (sim/rollup/)
            write_rollup(writer, scenario.rollup)
        write_run_row(writer, scenario, sim, t_end)
        writer.close()
    # On return the simulator's per-message state is freed before analysis.


def _record_destination(source: Scenario, run_dir: Path, progress: Progress | None, *, write_report: bool,
                        durable: bool) -> None:
    """The second chain of a ``[crosschain]`` run, after the source's: its relayers read the
    source's history (``sim/relayers.py``), their messages are written as replay files, and
    the destination runs in ``RUN_DIR/destination`` with them as timed arrivals; its history
    holds the ``relays`` table that says which source message each one carries."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from msgstorm.history import HistoryWriter, read_history
    from msgstorm.history.reader import DESTINATION_DIR
    from msgstorm.report.rerun import analyse_run_dir
    from msgstorm.scenario.destination import RelayedStream, default_node, destination_scenario
    from msgstorm.sim.relayers import plan_relays

    spec = source.crosschain
    assert spec is not None
    base = destination_scenario(source, [])
    plan = plan_relays(read_history(run_dir), source, default_node(base),
                       np.random.SeedSequence(source.run.seed).spawn(3)[2])  # [0], [1]: the source's own
    dest_dir = run_dir / DESTINATION_DIR
    (dest_dir / "relays").mkdir(parents=True, exist_ok=True)
    relayers = dict(spec.relayer_names())
    streams = []
    for agent, (relayer, kind, times) in plan.streams.items():
        path = dest_dir / "relays" / f"{agent}.parquet"
        pq.write_table(pa.table({"t": pa.array(times, type=pa.int64())}), path)
        settings = relayers[relayer]
        streams.append(RelayedStream(agent, kind, settings.node or default_node(base), settings.size,
                                     settings.fee, str(path.resolve()), int(times[0])))
    destination = destination_scenario(source, streams)
    writer = HistoryWriter(dest_dir / "history", destination.history.row_group_size, durable=durable)
    writer.append("relays", {name: plan.relays.column(name).combine_chunks() for name in plan.relays.column_names})
    traffic_seed, sim_seed = np.random.SeedSequence(destination.run.seed).spawn(2)
    started = time.perf_counter()
    _record_sim(destination, writer, traffic_seed, sim_seed, progress)
    wall_s = time.perf_counter() - started
    analyse_run_dir(dest_dir, wall_s, write_report=write_report)
