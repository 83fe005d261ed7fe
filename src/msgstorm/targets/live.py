"""The live targets: real brokers, an EVM node, a validator network, driven with the same traffic.

Place in the pipeline: ``TARGETS`` entries for every broker driver of ``LIVE_DRIVERS``
(nats, jetstream, zmq, redis, mqtt, rabbitmq, kafka), ``anvil`` (an EVM node,
``AnvilNode``) and ``cometbft`` (validators, ``CometNetwork``), which are targets of their
own and no broker's driver. Each
``LiveRun`` names the class that drives its run (``recorder``: ``live/target.py``'s
``LiveTarget`` publishes to a broker, ``live/chain/target.py``'s ``ChainTarget`` sends
transactions to a node, ``live/chain/comet_target.py``'s ``CometTarget`` to validators),
said once here rather than asked of the driver's class. ``problems`` are what a real system
cannot run of a scenario (the simulator's settings; the driver's own checks, which it
declares in its capabilities); ``estimate`` is the live cost model (``scenario/budget.py``);
``url_schemes`` and ``generator_names`` are what the class declares of where it is reached
and how a distributed run names its generators' own subjects, streams or topics.
Their clients load only when a run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from msgstorm.scenario.budget import WorkEstimate, estimate_live
from msgstorm.scenario.refs import ChecksScenario, RunsMarket, live_problems, process_problems
from msgstorm.scenario.registry import LIVE_DRIVERS, TARGETS
from msgstorm.targets.base import Problem, RunContext

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import numpy as np

    from msgstorm.history.writer import HistoryWriter
    from msgstorm.live.drivers.capabilities import Capabilities, Processes
    from msgstorm.progress import Progress
    from msgstorm.scenario.live import LiveSpec, OwnNames
    from msgstorm.scenario.schema import Scenario
    from msgstorm.traffic.generate import MessageBatch

__all__ = ["BROKERS", "LiveRun", "Recorder", "anvil_node", "broker_driver", "broker_run", "chain_run",
           "comet_network", "validators_run"]

BROKERS = ("nats", "jetstream", "zmq", "redis", "mqtt", "rabbitmq", "kafka")



class LiveRecording(Protocol):
    """What drives a live run (``live/lifecycle.py``'s ``Lifecycle``): ``run`` the traffic,
    then ``finish`` (the run's last observed time); ``start_error`` says why it never
    started; ``nodes`` and ``interrupted`` are what the run row records."""

    interrupted: bool

    @property
    def start_error(self) -> str | None: ...

    @property
    def nodes(self) -> list[dict[str, str]]: ...

    def run(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None = None) -> None: ...

    def finish(self) -> int: ...


# What makes a run's ``LiveRecording`` from (scenario, writer, run_dir, progress).
Recorder = Callable[["Scenario", "HistoryWriter", "Path", "Progress | None"], LiveRecording]


def broker_run(scenario: Scenario, writer: HistoryWriter, run_dir: Path,
               progress: Progress | None) -> LiveRecording:
    """Publishes to a broker and reads its receipts (``live/target.py``)."""
    # The drivers' clients load only for a live run.
    from msgstorm.live.lifecycle import Lifecycle, RunState
    from msgstorm.live.target import LiveTarget

    state = RunState(scenario, writer, run_dir, progress)
    return Lifecycle(state, LiveTarget(state))


def chain_run(scenario: Scenario, writer: HistoryWriter, run_dir: Path,
              progress: Progress | None) -> LiveRecording:
    """Transactions to an EVM node, and its blocks (``live/chain/target.py``)."""
    from msgstorm.live.chain.target import ChainTarget
    from msgstorm.live.lifecycle import Lifecycle, RunState

    state = RunState(scenario, writer, run_dir, progress)
    return Lifecycle(state, ChainTarget(state))


def validators_run(scenario: Scenario, writer: HistoryWriter, run_dir: Path,
                   progress: Progress | None) -> LiveRecording:
    """Transactions to a validator network, and every node's commits (``live/chain/comet_target.py``)."""
    from msgstorm.live.chain.comet_target import CometTarget
    from msgstorm.live.lifecycle import Lifecycle, RunState

    state = RunState(scenario, writer, run_dir, progress)
    return Lifecycle(state, CometTarget(state))


def broker_driver(name: str) -> Callable[[], type]:
    """The class of broker driver ``name`` (``LIVE_DRIVERS``), loaded when asked."""
    return lambda: LIVE_DRIVERS[name]


def anvil_node() -> type:
    """The EVM node a chain run drives (``live/chain/anvil.py``)."""
    from msgstorm.live.chain.anvil import AnvilNode

    return AnvilNode


def comet_network() -> type:
    """The validators a validator-network run drives (``live/chain/cometbft.py``)."""
    from msgstorm.live.chain.cometbft import CometNetwork

    return CometNetwork


class LiveRun:
    """A live target (``Target``): what ``driver`` loads (a broker's ``Driver`` class, the
    EVM node's, the validators'), driven by what ``recorder`` makes, running the optional
    ``sections`` it names. ``driver()`` is the class whose ``capabilities`` say what the target
    can do (the live fault kinds read them) and which checks of a scenario it adds; it loads
    the target's code, which validation of another target never asks for."""

    simulated = False
    analyse_apart = True

    def __init__(self, name: str, recorder: Recorder = broker_run,
                 sections: frozenset[str] = frozenset(),
                 driver: Callable[[], type] | None = None) -> None:
        self.name = name
        self.recorder = recorder
        self.sections = sections
        self.driver = driver if driver is not None else broker_driver(name)

    def capabilities(self) -> Capabilities:
        """What the driver's class declares (``live/drivers/capabilities.py``)."""
        from msgstorm.live.drivers.capabilities import capabilities_of

        return capabilities_of(self.driver())

    def problems(self, scenario: Scenario) -> list[Problem]:
        """What the driver's class says of the scenario (``Capabilities.checks``: its own
        checks, and ``[market]`` when it runs it), then what no real system runs."""
        driver, can = self.driver(), self.capabilities()
        own = cast(ChecksScenario, driver).problems(scenario) if can.checks.scenario else []
        market: list[Problem] | None = None  # None: it does not run [market]
        if scenario.market is not None and can.checks.market:
            market = cast(RunsMarket, driver).market_problems(scenario)
        return own + live_problems(scenario, market) + process_problems(scenario, can.processes)

    def url_schemes(self) -> dict[str, str]:
        """What the driver's class declares (``url_schemes``, ``live/drivers/capabilities.py``)."""
        from msgstorm.live.drivers.capabilities import url_schemes_of

        return url_schemes_of(self.driver())

    def generator_names(self, live: LiveSpec, index: int) -> OwnNames | None:
        """What the driver's class declares (``generator_names``); None where it declares none."""
        from msgstorm.live.drivers.capabilities import generator_names_of

        names = generator_names_of(self.driver())
        return names(live, index) if names is not None else None

    def estimate(self, scenario: Scenario) -> WorkEstimate:
        # A driver with processes of its own may send from several (``Processes``).
        processes = (cast("Processes", self.driver()).generator_processes(scenario.live)
                     if self.capabilities().processes else 1)
        return estimate_live(scenario, processes)

    def record(self, run: RunContext) -> None:
        import gc

        from msgstorm.heap import release_freed_memory
        from msgstorm.live.apart import record_apart

        scenario = run.scenario
        if run.ray is not None or scenario.live.generators > 1:
            from msgstorm.live.distributed import (
                record_distributed,  # Ray loads only for such a run
            )

            record_distributed(scenario, run.writer, run.run_dir, run.traffic_seed, run.ray)
            return
        # In a process of its own (``live/apart.py``): what the recording leaves behind goes
        # with that process, and the analysis starts from what this one held before.
        record_apart(lambda shown: self._record(scenario, run.writer, run.run_dir, run.traffic_seed, shown),
                     run.progress)
        # Where the recording ran here (no fork): the live target's per-message state hangs in
        # reference cycles (the driver's callbacks are its bound methods), and the analysis
        # runs with cycle collection off: free it now, not after the analysis.
        gc.collect()
        release_freed_memory()  # what the recording freed is not kept under the analysis

    def _record(self, scenario: Scenario, writer: HistoryWriter, run_dir: Path,
                traffic_seed: np.random.SeedSequence, progress: Progress | None) -> None:
        from msgstorm.history.run_row import write_run_row
        from msgstorm.traffic import generate_traffic

        live = self.recorder(scenario, writer, run_dir, progress)
        write_run_row(writer, scenario, live, 0, completed=False)
        writer.sync()
        try:
            live.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window), traffic_seed)
        finally:
            t_end = live.finish()
            # A run that never started ends with its run row not completed, beside the event that
            # says why: ``report`` names the failure instead of reading an empty run.
            write_run_row(writer, scenario, live, t_end, completed=live.start_error is None)
            writer.close()


for _name in BROKERS:
    TARGETS.register(_name)(LiveRun(_name))
TARGETS.register("anvil")(LiveRun("anvil", chain_run, frozenset({"rollup"}), anvil_node))
TARGETS.register("cometbft")(LiveRun("cometbft", validators_run, driver=comet_network))
