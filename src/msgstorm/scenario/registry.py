"""Extension points: the names a scenario may use, and what implements each.

Place in the pipeline: the scenario layer, below every engine. Thirteen registries map a name
that appears in a scenario or a report to its implementation:

- ``TARGETS``: ``target`` -> a ``TargetFace`` (``scenario/target_face.py``; ``Target`` of
  ``targets/base.py``): what the scenario runs on,
  its own checks, its cost estimate and the recording of a run (``targets/sim.py``: the
  shadow network; ``targets/live.py``: every broker driver, ``anvil``, ``cometbft``).
  ``runner.run`` is the entry's ``record`` followed by the analysis; nothing else tells
  targets apart by name;

- ``QUEUE_POLICIES``: ``sequencer.policy`` -> a no-argument factory of a ``QueuePolicy``
  (``sim/policies.py``: fifo, fee_priority; one file each for the ordering protocols:
  ``policies_batch``, ``policies_commit_reveal``, ``policies_fair``). A policy that needs a
  clock, every node's receive order or a second message implements the optional hooks
  of ``QueuePolicy`` (``attach`` gets a ``PolicyHost``) and reads its settings from the
  scenario there (``sequencer.<policy name>``). The simulator looks the hooks up once
  (``Ordering.of``) and composes the policy with the other parts of its one ``Sequencer``
  (``sim/sequencer.py``: backpressure, the worker pools and the liquidation lane of
  ``sim/lane.py``), so a new policy works with a lane and every backpressure mode without
  code of its own there; ``tests/test_sim_sequencer.py`` runs every registered policy
  against them and checks that no message is left pending;
- ``BACKPRESSURE_MODES``: ``backpressure.mode`` -> a factory taking the mode's spec and
  returning a ``Backpressure`` (``sim/backpressure.py``), the admission part of the
  sequencer (a lane's kinds skip it);
- ``FAULT_KINDS``: ``faults[].kind`` -> a ``FaultKind`` applying the fault's start and end
  (``sim/fault_injector.py``; the adversary's ``tamper`` and ``replay``, ``sim/integrity.py``;
  the byzantine producer and voters, ``equivocate``, ``equivocate_votes`` and ``withhold_votes``,
  ``sim/equivocation.py``; censoring relays and producers, ``censor_nodes``, ``sim/censor.py``;
  delaying and reordering relays, ``delay_nodes`` and ``reorder_nodes``, ``sim/byzantine_relay.py``;
  flooding nodes, ``flood_invalid``, ``sim/flood.py``; an eclipsed node, ``eclipse``,
  ``sim/eclipse.py``; two instances of a validator, ``twins``, ``sim/twins.py``; a rollup's
  sequencer down, ``sequencer_outage``, ``sim/rollup/outage.py``);
- ``LIVE_FAULT_KINDS``: ``faults[].kind`` on a live target -> a ``LiveFaultKind`` checking
  the entry against the target and applying its start and end to real servers and links
  (``live/faults/``, one module a kind; the live rollup's sequencer down, ``sequencer_outage``,
  ``live/faults/sequencer_outage.py``). A kind registered in one of the two fault registries only is
  refused at validation on the other side's targets, naming the entry;
- ``TOXICS``: ``faults[].toxic`` (a ``toxic`` fault) -> a ``Toxic`` class of the fault
  proxy (``live/toxics.py``; the adversary's ``tamper`` and ``replay`` of NATS publishes,
  ``live/adversary_toxics.py``): its parameters, the entry's settings it reads, what it does to
  a chunk or a connection. Validation, the nemesis, the proxy and the reference read the
  kinds from here;
- ``ARRIVAL_PROCESSES``: ``agents[].arrival.process`` -> a builder of an ``ArrivalProcess``
  (``traffic/arrivals.py``);
- ``CHECKERS``: a name in the report's checks -> a ``Checker`` reading the history
  (``analysis/delivery.py``);
- ``LIVE_DRIVERS``: a broker target's name -> its ``Driver`` class (``live/drivers/``); a
  chain node (``live/chain/anvil.py``: ``AnvilNode``, driven with transactions by
  ``live/chain/target.py``) and a validator network (``live/chain/cometbft.py``:
  ``CometNetwork``, driven by ``live/chain/comet_target.py``) are targets of their own in
  ``TARGETS``, not drivers. Each of these classes declares what it can do beyond ``Driver``
  in its ``capabilities`` class attribute (``live/drivers/capabilities.py``), which the live
  target gives (``LiveRun.driver``), pinned per class in ``tests/test_live_capabilities.py``;
- ``REACTORS``: reactive agents of the simulator (every run asks each) -> a factory
  ``(scenario, host, seed) -> Reactor | None`` (``traffic/reactor.py``, the host a ``SimHost``
  of ``sim/host.py``; the market,
  ``market/reactor.py``; the adversary that tampers and replays and the leader's
  verification, ``sim/integrity.py``): agents that create messages during the run in
  reaction to what is delivered and committed;
- ``CONTROLLERS``: ``controllers[].kind`` -> a factory ``(spec, host) -> Controller``
  (``sim/control.py``): self-healing controllers that look at the run's strain every
  ``every`` and steer it (shed non-essential kinds, change the block interval), each
  decision a ``control`` event; one that sheds arrivals gives the sequencer its ``Gate``
  (``Sequencer.gate_with``);
- ``PRODUCER_RULES``: ``blocks.producers.rule`` -> a ``ProducerRule`` class (``sim/producers.py``:
  ``pow``, Poisson blocks weighted by hash share; ``pos``, slots with a seeded leader
  schedule weighted by stake) that says when the next block comes and who makes it; the
  chain of views and forks (``sim/forks.py``) is the same for every rule. Without
  ``[blocks.producers]`` the one sequencer makes the blocks (``sim/chain.py``).

A registry may declare the names its built-in modules register (``builtin_names``), so
that validation asks about a built-in name without importing its engine (``msgstorm
validate`` loads no simulator); loading checks the declaration.

Implementations register themselves with ``@REGISTRY.register("name")`` in the module that
defines them; the scenario layer never imports those modules. A registry imports its
built-in modules by name, the first time it is asked for a name (as a plugin loader does),
and then the modules listed in ``MSGSTORM_EXTENSIONS`` (module names or ``.py`` files,
separated by ``,`` or the path separator): a new policy can live in one file outside the
package. Backpressure modes, fault kinds, arrival processes and controllers take settings, so
a new one also adds its spec class to its union (backpressure: ``scenario/schema.py``;
arrival processes: ``scenario/traffic.py``; fault kinds: ``scenario/faults.py``; controllers:
``ControllerSpec`` in ``scenario/control.py``); a toxic that reads a setting
``ToxicFault`` lacks adds the field there and its name to ``TOXIC_SETTINGS``; queue policies
and checkers need nothing else.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from msgstorm.scenario.target_face import TargetFace

__all__ = [
    "ARRIVAL_PROCESSES",
    "BACKPRESSURE_MODES",
    "CHECKERS",
    "CONTROLLERS",
    "DEFAULT_TARGET",
    "EXTENSIONS_ENV",
    "FAULT_KINDS",
    "LIVE_DRIVERS",
    "LIQUIDATION_MECHANISMS",
    "LIVE_FAULT_KINDS",
    "QUEUE_POLICIES",
    "PRODUCER_RULES",
    "REACTORS",
    "Registry",
    "TARGETS",
    "TOXICS",
    "load_extensions",
]

T = TypeVar("T")
EXTENSIONS_ENV = "MSGSTORM_EXTENSIONS"
_loaded_extensions: set[str] = set()


class Registry(Mapping[str, T]):
    """Names to implementations of one extension point (a read-only mapping; entries are
    added only through ``register``)."""

    def __init__(self, what: str, builtin_modules: tuple[str, ...], builtin_names: tuple[str, ...] = ()) -> None:
        self.what = what
        self.builtin_modules = builtin_modules
        # Names the built-in modules register, declared here so that validation can ask
        # ``name in registry`` of a built-in without importing the engine that implements it
        # (``msgstorm validate`` loads no simulator); loading checks the declaration.
        self.builtin_names = frozenset(builtin_names)
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class or function under ``name``."""

        def add(implementation: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing is not implementation:
                raise ValueError(f"{self.what} {name!r} is registered twice ({existing!r}, {implementation!r})")
            self._entries[name] = implementation
            return implementation

        return add

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.builtin_modules:
                importlib.import_module(module)
            undeclared = self.builtin_names - set(self._entries)
            if undeclared:
                raise RuntimeError(f"{self.what}: {sorted(undeclared)} declared built in, but no module registers them")
            load_extensions()

    def __getitem__(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} {name!r}; one of {self.names()}") from None

    def __contains__(self, name: object) -> bool:
        if name in self.builtin_names:
            return True
        self._load()
        return name in self._entries

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        """Built-ins first, in the order of their modules in ``builtin_modules`` (not the
        order something happened to import them: the simulator hands reactors their seeds
        in this order), then extensions in registration order."""
        self._load()
        rank = {module: i for i, module in enumerate(self.builtin_modules)}
        return iter(sorted(self._entries,
                           key=lambda name: rank.get(getattr(self._entries[name], "__module__", ""), len(rank))))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)


def load_extensions(spec: str | None = None) -> None:
    """Import the extension modules named in ``spec`` (default: ``$MSGSTORM_EXTENSIONS``),
    each once: dotted module names, or paths of ``.py`` files."""
    text = os.environ.get(EXTENSIONS_ENV, "") if spec is None else spec
    for entry in (part.strip() for part in re.split(rf"[,{re.escape(os.pathsep)}]", text)):
        if not entry or entry in _loaded_extensions:
            continue
        _loaded_extensions.add(entry)
        if entry.endswith(".py"):
            path = Path(entry).expanduser().resolve()
            if not path.is_file():
                raise ImportError(f"{EXTENSIONS_ENV}: extension file not found: {entry}")
            name = f"msgstorm_extension_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(entry)


QUEUE_POLICIES: Registry[Callable[[], Any]] = Registry("queue policy", (
    "msgstorm.sim.policies",
    "msgstorm.sim.policies_batch",
    "msgstorm.sim.policies_commit_reveal",
    "msgstorm.sim.policies_fair",
), ("fifo", "fee_priority", "batch_auction", "commit_reveal", "fair_order"))
BACKPRESSURE_MODES: Registry[Callable[[Any], Any]] = Registry("backpressure mode", ("msgstorm.sim.backpressure",))
FAULT_KINDS: Registry[Any] = Registry("fault kind", ("msgstorm.sim.fault_injector", "msgstorm.sim.integrity",
                                                        "msgstorm.sim.equivocation", "msgstorm.sim.censor",
                                                        "msgstorm.sim.byzantine_relay", "msgstorm.sim.flood",
                                                        "msgstorm.sim.eclipse", "msgstorm.sim.twins",
                                                        "msgstorm.sim.rollup.outage"),
                                      ("partition", "crash", "degrade", "tamper", "replay", "oracle", "censor", "equivocate",
                                       "equivocate_votes", "withhold_votes", "censor_nodes", "delay_nodes",
                                       "reorder_nodes", "flood_invalid", "eclipse", "twins", "sequencer_outage"))
LIVE_FAULT_KINDS: Registry[Any] = Registry("live fault kind", ("msgstorm.live.faults.pause", "msgstorm.live.faults.crash",
                                                                "msgstorm.live.faults.restart", "msgstorm.live.faults.toxic",
                                                                "msgstorm.live.faults.partition",
                                                                "msgstorm.live.faults.bridge",
                                                                "msgstorm.live.faults.sequencer_outage",
                                                                "msgstorm.live.faults.double_sign"),
                                           ("pause", "crash", "restart", "toxic", "partition", "bridge",
                                            "sequencer_outage", "double_sign"))
TOXICS: Registry[Any] = Registry("toxic", ("msgstorm.live.toxics", "msgstorm.live.adversary_toxics"))
ARRIVAL_PROCESSES: Registry[Callable[..., Any]] = Registry("arrival process", ("msgstorm.traffic.arrivals",))
CHECKERS: Registry[Any] = Registry("checker", ("msgstorm.analysis.delivery", "msgstorm.analysis.generator",
                                                "msgstorm.analysis.audit", "msgstorm.analysis.safety"))
LIVE_DRIVERS: Registry[Any] = Registry("live driver", (
    "msgstorm.live.drivers.nats",
    "msgstorm.live.drivers.jetstream",
    "msgstorm.live.drivers.zmq",
    "msgstorm.live.drivers.redis",
    "msgstorm.live.drivers.mqtt",
    "msgstorm.live.drivers.rabbitmq",
    "msgstorm.live.drivers.kafka",
))
REACTORS: Registry[Callable[..., Any]] = Registry("reactor", ("msgstorm.market.reactor", "msgstorm.market.frontrun",
                                                            "msgstorm.sim.integrity"))
CONTROLLERS: Registry[Callable[..., Any]] = Registry("controller", ("msgstorm.sim.control",))
PRODUCER_RULES: Registry[Any] = Registry("producer rule", ("msgstorm.sim.producers",), ("pow", "pos"))
LIQUIDATION_MECHANISMS: Registry[Any] = Registry("liquidation mechanism", ("msgstorm.market.liquidation",),
                                                 ("whole", "partial", "close_factor", "dutch_auction", "english_auction"))
# The target a scenario that names none runs on: the shadow network (``targets/sim.py``).
DEFAULT_TARGET = "sim"
TARGETS: Registry[TargetFace] = Registry(
    "target", ("msgstorm.targets.sim", "msgstorm.targets.live"),
    ("sim", "nats", "jetstream", "zmq", "redis", "mqtt", "rabbitmq", "kafka", "anvil", "cometbft"))
