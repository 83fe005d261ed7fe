"""Load from many hosts: the open-loop generator and its consumers as Ray actors, one per node.

Place in the pipeline: ``runner`` -> **record_distributed** -> N x (``LiveTarget`` holding an
``AgreedStart``, in a Ray actor) -> their histories merged -> ``HistoryWriter``, in place of
one ``LiveTarget``.
``msgstorm run --ray ADDRESS`` (or ``[live] generators = N``) runs it:

- **Shares.** Generator k of N sends the messages of the scenario's schedule whose key is k
  modulo N (``share``, as generator processes share it, ``generator_process.share_of``):
  each key's messages leave from one generator, in order, so the per-key order the delivery
  check judges is the broker's, not a race between hosts (a share by message id put a key's
  messages on two subjects, and their receipts out of key order). Every generator makes the
  whole traffic from the scenario and the run's seed, keeps its share and numbers it 0, 1,
  2, ... (its own run is an ordinary one); the driver maps the numbers back to the
  schedule's ids (``share_ids``). The shares are disjoint and together are the schedule: a
  scenario at rate R x N offers about R from each generator (keys drawn uniformly), R x N in
  all, and the merged ``messages`` table has the ids a one-generator run has, each once.
- **Names.** Generator k publishes on a subject, stream, key, topic or queue of its own
  (the driver's ``generator_names``, ``scenario/generators.py``: ``live.subject`` + ``.gK``
  on NATS) and its own consumers (``live.consumers`` of them, named as in a one-generator
  run) read it, on the same node: a message's latency is measured on one host's clock
  (CLOCK_MONOTONIC), never across two, so no clock error enters it. Its driver reads its
  own back after the run; the merge joins those rows, so the delivery audit judges the union.
- **One instant.** Each node's wall clock is compared with the driver's (``estimate_offset``:
  NTP's round trip, best of ``CLOCK_ROUNDS`` by the shortest round trip; its error is within
  half that round trip). Each generator, once connected, says so to the ``StartGate``
  actor; when all have, the driver sets an instant ``START_LEAD_S`` ahead on its own clock,
  and generator k starts its schedule when its clock reads that instant plus its offset
  (``AgreedStart.wait``, the start its ``LiveTarget`` holds): its time axis (``t = 0``) is that
  instant, the driver's ``T`` read on its clock through the offset, so every generator's
  send and receipt times are on one axis. A generator that wakes up late (its connection
  took longer than the lead, a sleep woke late) still keeps the agreed schedule: it sends
  what fell due meanwhile at once, and that lateness is its send lag and its messages'
  latency, not hidden. The offset, its round trip and how late each generator woke
  (``start_late_ns``, on its own clock) are in the ``run_start`` event's detail
  (``generators``).
- **One history.** The merged run directory has the tables of a one-generator run
  (``merge_histories``, in ``live/distributed_merge.py``): ``messages`` and ``deliveries`` of every generator with their ids
  and times mapped, ``seq_no`` counted again over all of them in ``t_sequenced`` order
  (ties by generator, then its own order); ``events`` of all, on the one time axis, with one
  ``run_start``, ``run_end`` and ``cleanup``; a generator's process CPU samples are named
  ``NAME@gK`` (K > 0), and only generator 0's machine samples are kept (each node is a
  machine of its own). Percentiles are computed from the merged ``messages`` table, so they
  are those of the union of the generators' histories, exactly; ``latency.hlog`` is their
  merged HDR histograms. Each generator's own tables, as it wrote them, are kept under
  ``RUN_DIR/generators/gK/``.

- **Faults.** The driver applies the scenario's faults once (``Nemesis``, in
  ``_faulted``): on the servers it started and the routes of their cluster, on the run's
  axis (its zero the agreed instant, read on the driver's monotonic clock), healed when the
  schedule ends; its ``fault_start`` / ``fault_end`` events join the merged history. The
  generators' scenarios have no faults; ``scenario/refs.py`` refuses the kinds a driver's
  process cannot apply (``DISTRIBUTED_FAULTS``).

Safety: the scenario's ``live.url`` rule holds (loopback only unless ``allow_remote``); a
server msgstorm starts itself listens on loopback, so generators on other hosts need a
``live.url`` the user runs (docs/live.md). Every wait is bounded: the actors' start by
``live.start_timeout`` plus ``_RESULT_MARGIN_S``, so is their connecting, the run by its duration,
drain and ``live.start_timeout`` plus ``_RESULT_MARGIN_S``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from msgstorm.errors import TargetError
from msgstorm.history.events import EventKind
from msgstorm.history.run_row import write_run_row
from msgstorm.history.schema import TABLES
from msgstorm.history.writer import HistoryWriter
from msgstorm.live.distributed_merge import ClockOffset, GeneratorHistory, merge_histories, t_end_of
from msgstorm.live.lifecycle import START_FAILED, Lifecycle, RunState
from msgstorm.live.nemesis import Nemesis, cleanup_report
from msgstorm.live.target import LiveTarget
from msgstorm.processes import connect_ray
from msgstorm.scenario import Scenario
from msgstorm.scenario.generators import generator_live
from msgstorm.scenario.refs import distributed_problems, is_loopback_url
from msgstorm.traffic.generate import MessageBatch

__all__ = ["CLOCK_ROUNDS", "GENERATORS_DIR", "START_LEAD_S", "AgreedStart", "ClockOffset", "GeneratorActor",
           "GeneratorHistory", "StartGate", "estimate_offset", "merge_histories", "record_distributed", "share", "share_ids"]

# Round trips to each node whose shortest gives its clock offset.
CLOCK_ROUNDS = 8
# The agreed start is this far ahead of the moment every generator has connected: time for
# each to read it (one poll of the gate).
START_LEAD_S = 0.5
# A start instant further ahead than this is refused by the actor (a wrong clock, not a wait).
_MAX_WAIT_S = 120.0
# How often the driver and the generators look whether every generator has connected (s).
_GATE_POLL_S = 0.05
# Beyond the run's duration, drain and lead, how long the driver waits for the generators.
_RESULT_MARGIN_S = 120.0
# Where each generator's own tables are kept in the run directory.
GENERATORS_DIR = "generators"
# The tables a generator returns and the merge joins.
_TABLES = ("messages", "deliveries", "events", "run")
# How often the driver, applying faults, looks whether a generator has ended early (s).
_FAULT_POLL_S = 0.05
# An event the driver's process records: (ns, kind, node, detail).
_DriverEvent = tuple[int, str, "str | None", dict[str, Any]]


# --- shares and clocks ---------------------------------------------------------------------------


def share(traffic: Iterable[MessageBatch], index: int, count: int) -> Iterator[MessageBatch]:
    """Generator ``index`` of ``count``'s share of ``traffic``: the messages whose key is
    ``index`` modulo ``count`` (as ``generator_process.share_of``), numbered 0, 1, 2, ... again."""
    first = 0
    for batch in traffic:
        mine = batch.key % count == index
        size = int(np.count_nonzero(mine))
        yield MessageBatch(msg_id=np.arange(first, first + size, dtype=np.int64), t_intended=batch.t_intended[mine],
                           agent=batch.agent[mine], kind=batch.kind[mine], node=batch.node[mine],
                           key=batch.key[mine], size=batch.size[mine], fee=batch.fee[mine])
        first += size


def share_ids(traffic: Iterable[MessageBatch], count: int) -> list[np.ndarray]:
    """For each share, the schedule's ids of its messages by their number in the share
    (``share``'s ``msg_id``): what the merge maps them back with."""
    parts: list[list[np.ndarray]] = [[] for _ in range(count)]
    for batch in traffic:
        which = batch.key % count
        for index in range(count):
            parts[index].append(batch.msg_id[which == index])
    return [np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64) for ids in parts]


def estimate_offset(read_remote: Callable[[], int], now: Callable[[], int] = time.time_ns,
                    rounds: int = CLOCK_ROUNDS) -> ClockOffset:
    """NTP's estimate, best of ``rounds``: ``t1`` the driver's clock before asking, ``t2``
    the node's answer, ``t3`` the driver's clock after; offset ``t2 - (t1 + t3) / 2``
    (exact when the way there and back take as long), from the round trip ``t3 - t1`` that
    was shortest (the least room for the two ways to differ)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    best: ClockOffset | None = None
    for _ in range(rounds):
        t1 = now()
        t2 = read_remote()
        t3 = now()
        sample = ClockOffset(t2 - (t1 + t3) // 2, t3 - t1)
        if best is None or sample.rtt_ns < best.rtt_ns:
            best = sample
    assert best is not None
    return best


# --- a generator (in its actor) -----------------------------------------------------------------


class AgreedStart:
    """When generator ``index`` starts its schedule (the ``start`` its ``LiveTarget`` holds):
    once connected it says so (``connected()``), then asks for the instant on the driver's
    clock (``instant()``, None until every generator has connected) and starts when its own
    wall clock (``time.time_ns``) reads that instant plus ``offset_ns``."""

    def __init__(self, scenario: Scenario, index: int, offset_ns: int, connected: Callable[[], None],
                 instant: Callable[[], int | None]) -> None:
        self.scenario, self.index, self.offset_ns = scenario, index, offset_ns
        self.connected, self.instant = connected, instant
        self.start_late_ns: int | None = None  # how late the schedule's start found it awake

    async def wait(self) -> int:
        """Say it has connected, wait for the agreed instant; the schedule starts at it,
        however late this wakes up (the first messages are then sent late, as send lag).
        Bounded: an instant that does not come within ``_gate_wait_s``, or lies more than
        ``_MAX_WAIT_S`` ahead, is a start that failed."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.connected)
        wait_s = _gate_wait_s(self.scenario)
        deadline = time.monotonic() + wait_s
        while (instant := await loop.run_in_executor(None, self.instant)) is None:
            if time.monotonic() > deadline:
                raise TargetError(f"generator g{self.index}: no start instant came within {wait_s:g} s of "
                                  "connecting (another generator did not connect)")
            await asyncio.sleep(_GATE_POLL_S)
        start_at_ns = instant + self.offset_ns
        if start_at_ns - time.time_ns() > _MAX_WAIT_S * 1e9:
            raise TargetError(f"generator g{self.index}: the agreed start is more than {_MAX_WAIT_S:g} s ahead of "
                              "this node's clock; is its clock right?")
        while (left := start_at_ns - time.time_ns()) > 0:
            await asyncio.sleep(left / 1e9)
        self.start_late_ns = time.time_ns() - start_at_ns
        return self.start_late_ns


def _gate_wait_s(scenario: Scenario) -> float:
    """How long the driver and the generators wait for every generator to connect (s)."""
    return scenario.live.start_timeout / 1e9 + _RESULT_MARGIN_S


class StartGate:
    """The Ray actor (``ray.remote`` applied where it is used) where the generators meet:
    each says when it has connected; the driver, once all have, sets the agreed instant (its
    own wall clock), which each asks for."""

    def __init__(self) -> None:
        self.connected: set[int] = set()
        self.start_at: int | None = None

    def connect(self, index: int) -> None:
        self.connected.add(index)

    def count(self) -> int:
        return len(self.connected)

    def open(self, start_at: int) -> None:
        self.start_at = start_at

    def instant(self) -> int | None:
        return self.start_at


class GeneratorActor:
    """The Ray actor (``ray.remote`` applied where it is used): answers its clock, then runs
    one share in a directory of its own and returns the tables it wrote."""

    def ready(self, scenario: Scenario, seed: np.random.SeedSequence) -> str:
        """This node's name (host, pid and Ray node), once the actor has loaded what its run needs:
        the runner, the target's driver, and the traffic's code (its first window made,
        which compiles the draws), so none of it delays the agreed start."""
        from msgstorm.scenario.registry import LIVE_DRIVERS
        from msgstorm.traffic import generate_traffic

        LIVE_DRIVERS[scenario.target]  # noqa: B018 - registers and imports the driver
        next(iter(generate_traffic(scenario, seed, window_ns=scenario.run.window)), None)
        import ray

        return f"{socket.gethostname()} (pid {os.getpid()}, Ray node {ray.get_runtime_context().get_node_id()})"

    def clock(self) -> int:
        return time.time_ns()

    def run(self, scenario: Scenario, seed: np.random.SeedSequence, index: int, count: int,
            offset_ns: int, gate: Any) -> tuple[dict[str, pa.Table], int, str | None]:
        """Run share ``index`` of ``count``, starting at the instant ``gate`` (a ``StartGate``
        actor) gives, read on this node's clock through ``offset_ns``; return its tables,
        how late it started (ns, on this node's clock), and why it never started (None if it did)."""
        import ray

        from msgstorm.traffic import generate_traffic

        def connected() -> None:
            ray.get(gate.connect.remote(index), timeout=30)

        def instant() -> int | None:
            answer: int | None = ray.get(gate.instant.remote(), timeout=30)
            return answer

        work = Path(tempfile.mkdtemp(prefix=f"msgstorm-g{index}-"))
        try:
            writer = HistoryWriter(work / "history", scenario.history.row_group_size, durable=False)
            state = RunState(scenario, writer, work)
            start = AgreedStart(scenario, index, offset_ns, connected, instant)
            live = Lifecycle(state, LiveTarget(state, lambda traffic: share(traffic, index, count), start.wait))
            write_run_row(writer, scenario, live, 0, completed=False)
            try:
                live.run(share(generate_traffic(scenario, seed, window_ns=scenario.run.window), index, count),
                         seed)
            except TargetError:
                pass  # its history says why (a client_error event, the run row not completed)
            finally:
                t_end = live.finish()
                write_run_row(writer, scenario, live, t_end, completed=live.start_error is None)
                writer.close()
            tables = {name: pq.read_table(work / "history" / name, schema=TABLES[name]) for name in _TABLES}
            return tables, start.start_late_ns or 0, live.start_error
        finally:
            shutil.rmtree(work, ignore_errors=True)


# --- the driver -----------------------------------------------------------------------------------


@dataclass
class _RunFacts:
    """What the run row records of a distributed run (``runner.write_run_row``)."""

    nodes: list[dict[str, str]]
    interrupted: bool


def _cluster_nodes(ray: Any) -> list[str]:
    """The alive nodes' ids, in a fixed order (by address, then id)."""
    alive = [node for node in ray.nodes() if node.get("Alive")]
    return [node["NodeID"] for node in sorted(alive, key=lambda n: (n.get("NodeManagerAddress", ""), n["NodeID"]))]


def _why(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__


def record_distributed(  # noqa: C901
    scenario: Scenario, writer: HistoryWriter, run_dir: Path, seed: np.random.SeedSequence,
    address: str | None) -> None:
    """Run ``scenario`` on ``live.generators`` Ray actors (or one per node of the cluster at
    ``address`` when it says 1), merge what they wrote into ``writer``, and write the run row.
    ``address``: a Ray address (``auto``, host:port, ``ray://``), or None for the one
    ``RAY_ADDRESS`` names or a Ray started here."""
    try:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    except ImportError as error:
        raise TargetError(f"a distributed run needs Ray: {error}; install the cluster extra: "
                          "pip install -e '.[cluster]'") from None
    from msgstorm.scenario.registry import LIVE_DRIVERS

    write_run_row(writer, scenario, _RunFacts([], False), 0, completed=False)  # a killed run still says what ran
    writer.sync()
    connect_ray(address)
    nodes = _cluster_nodes(ray)
    if not nodes:
        raise TargetError(f"the Ray cluster at {address or 'this machine'} has no node alive")
    count = scenario.live.generators if scenario.live.generators > 1 or address is None else len(nodes)
    if scenario.live.generators == 1 and count > 1:  # one per node: what loading checked at 1, checked at count
        spread = scenario.model_copy(update={"live": scenario.live.model_copy(update={"generators": count})})
        refused = [f"{'.'.join(str(part) for part in where)}: {said}" for where, said in distributed_problems(spread)]
        if refused:
            raise TargetError(f"--ray {address} with {count} nodes: " + "; ".join(refused))
    driver_events: list[_DriverEvent] = []  # (unix ns, kind, node, detail)
    fault_events: list[_DriverEvent] = []  # the nemesis's: (ns on the run's axis, kind, node, detail)
    nemesis: Nemesis | None = None
    server = None
    actors: list[Any] = []
    parts: list[GeneratorHistory] = []
    failure: str | None = None  # why the run failed, for its history
    interrupted = False
    start_at = 0
    try:
        url = scenario.live.url
        if url is None:  # a server of msgstorm's, on loopback: for a cluster on this machine
            server = LIVE_DRIVERS[scenario.target](
                scenario.live, run_dir.resolve(), lambda kind, detail: driver_events.append((time.time_ns(), kind, None, detail)))
            if scenario.faults:  # before the servers start: a partition routes their cluster through its proxy
                nemesis = Nemesis(scenario, server, run_dir.resolve(),
                                  lambda t, kind, node, detail: fault_events.append((t, kind, node, detail)))
            for started in server.start_servers():
                driver_events.append((time.time_ns(), EventKind.SERVER_START, None, started))
            url = getattr(server, "url", None)
            if url is None:
                raise TargetError(f"{scenario.target}: the server msgstorm started has no URL for the generators")
        if not scenario.live.allow_remote and not is_loopback_url(url):
            raise TargetError(f"{url}: not a loopback address; load goes only to 127.0.0.0/8 or ::1 unless "
                              "live.allow_remote = true (--allow-remote)")
        timeout_s = START_LEAD_S + (scenario.run.duration + scenario.run.drain
                                    + scenario.live.start_timeout) / 1e9 + _RESULT_MARGIN_S

        def launch() -> _Launched:
            return _launch(ray, NodeAffinitySchedulingStrategy, actors, nodes, scenario, seed, url, count)

        if nemesis is None:
            launched = launch()
            results = ray.get(launched.runs, timeout=timeout_s)
        else:
            launched, results = asyncio.run(_faulted(nemesis, launch, ray, scenario.run.duration, timeout_s))
        start_at, hosts, offsets = launched.start_at, launched.hosts, launched.offsets
        from msgstorm.traffic import generate_traffic

        ids = share_ids(generate_traffic(scenario, seed, window_ns=scenario.run.window), count)
        for k, (tables, late, start_error) in enumerate(results):
            if start_error is not None:
                raise TargetError(f"generator g{k} on {hosts[k]}: {start_error}")
            parts.append(GeneratorHistory(k, tables, ids[k], hosts[k], offsets[k], late))
    except KeyboardInterrupt:
        interrupted = True
        raise
    except TargetError as error:
        failure = str(error)
        raise
    except Exception as error:  # noqa: BLE001 - a generator that failed (or Ray): the run failed, said why
        failure = f"{scenario.target}: a generator on the Ray cluster failed: {_why(error)}"
        raise TargetError(failure) from error
    finally:
        for actor in actors:
            ray.kill(actor)
        if nemesis is not None:
            nemesis.kill()  # the last resort: its close ran in its event loop unless that failed
        # On the run's axis (the agreed instant its zero; now, for a run that never agreed one).
        zero = start_at or time.time_ns()
        driver_events += [(zero + t, kind, node, detail) for t, kind, node, detail in fault_events]
        if server is not None:
            server.stop_servers()
            for managed in getattr(server, "servers", []):
                driver_events.append((time.time_ns(), EventKind.SERVER_STOP, None,
                                      {"name": managed.name, "returncode": managed.returncode}))
            driver_events.append((time.time_ns(), EventKind.CLEANUP, None,
                                  cleanup_report(list(getattr(server, "servers", [])), nemesis, [])))
        if interrupted or failure is not None:
            _write_failed(writer, scenario, driver_events, failure, write_run_row)
    _write_merged(writer, run_dir, scenario, parts, start_at, driver_events, write_run_row)


@dataclass
class _Launched:
    """The generators at work: their runs (Ray object refs), hosts, clock offsets, and the
    agreed start instant on the driver's wall clock."""

    runs: list[Any]
    hosts: list[str]
    offsets: list[ClockOffset]
    start_at: int


def _launch(ray: Any, affinity: Any, actors: list[Any], nodes: list[str], scenario: Scenario,
            seed: np.random.SeedSequence, url: str, count: int) -> _Launched:
    """One actor per generator (on node k mod the nodes; each put in ``actors`` as it is
    made, so the caller kills it on every way out), ready, its clock measured, then its
    share's run started at the agreed instant, ``START_LEAD_S`` ahead."""
    remote: Any = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(GeneratorActor)
    for k in range(count):
        actors.append(remote.options(scheduling_strategy=affinity(nodes[k % len(nodes)], soft=False)).remote())
    hosts = ray.get([actor.ready.remote(scenario, seed) for actor in actors],
                    timeout=scenario.live.start_timeout / 1e9 + _RESULT_MARGIN_S)
    offsets = [estimate_offset(_clock_of(ray, actor)) for actor in actors]
    gate = ray.remote(num_cpus=0, max_restarts=0)(StartGate).remote()
    actors.append(gate)
    runs = [actor.run.remote(_share_scenario(scenario, url, k), seed, k, count, offsets[k].offset_ns, gate)
            for k, actor in enumerate(actors[:count])]
    # Every generator connected (or one ended first: it failed, and the others start, to end
    # too): the instant, START_LEAD_S ahead.
    wait_s = _gate_wait_s(scenario)
    deadline = time.monotonic() + wait_s
    while ray.get(gate.count.remote(), timeout=30) < count and not ray.wait(runs, num_returns=1, timeout=0)[0]:
        if time.monotonic() > deadline:
            raise TargetError(f"{scenario.target}: the generators did not all connect within {wait_s:g} s")
        time.sleep(_GATE_POLL_S)
    start_at = time.time_ns() + int(START_LEAD_S * 1e9)
    ray.get(gate.open.remote(start_at), timeout=30)
    return _Launched(runs, hosts, offsets, start_at)


async def _faulted(nemesis: Nemesis, launch: Callable[[], _Launched], ray: Any, duration_ns: int,
                   timeout_s: float) -> tuple[_Launched, list[Any]]:
    """The generators' run with the scenario's faults applied from here, on the run's one
    time axis: the fault proxy first (a partition's routes, before any client connects),
    then the generators launched; each fault at its time after the agreed instant, the ones
    still in force healed when the schedule ends (as a one-generator run heals them when its
    sending ends), or as soon as a generator has ended early (it failed); then the
    generators' results. One event loop, on this (the main) thread: a server a fault starts
    again is spawned from it (``Nemesis.spawn_listening``)."""
    t0 = time.monotonic_ns()

    def now() -> int:  # the run's axis: 0 at the agreed instant
        return time.monotonic_ns() - t0

    try:
        await nemesis.prepare()
        launched = launch()
        t0 = time.monotonic_ns() + launched.start_at - time.time_ns()
        faulting = asyncio.ensure_future(nemesis.run(t0, now))
        try:
            while now() < duration_ns and not ray.wait(launched.runs, num_returns=1, timeout=0)[0]:
                await asyncio.sleep(_FAULT_POLL_S)
        finally:
            faulting.cancel()
            await asyncio.gather(faulting, return_exceptions=True)
            await nemesis.heal(now)
        return launched, ray.get(launched.runs, timeout=timeout_s)
    finally:
        await nemesis.close(now)


def _clock_of(ray: Any, actor: Any) -> Callable[[], int]:
    """Reads ``actor``'s clock (a round trip through Ray, at most 30 s)."""
    return lambda: int(ray.get(actor.clock.remote(), timeout=30))


def _share_scenario(scenario: Scenario, url: str, index: int) -> Scenario:
    """Generator ``index``'s scenario: an ordinary one-generator run on names of its own
    (``scenario/generators.py``), without the faults (the driver applies them, once)."""
    return scenario.model_copy(update={"live": generator_live(scenario.live, scenario.target, index, url),
                                       "faults": []})


def _driver_events(events: list[_DriverEvent], start_at: int) -> pa.Table:
    return pa.table({
        "t": pa.array([t - start_at for t, _, _, _ in events], pa.int64()),
        "kind": [kind for _, kind, _, _ in events], "node": pa.array([node for _, _, node, _ in events], pa.string()),
        "value": pa.array([None] * len(events), pa.float64()), "height": pa.array([None] * len(events), pa.int64()),
        "detail": [json.dumps(detail) for _, _, _, detail in events]}, schema=TABLES["events"])


def _append(writer: HistoryWriter, name: str, table: pa.Table) -> None:
    if len(table):
        columns: dict[str, Any] = {column: table.column(column).combine_chunks() for column in table.column_names}
        if name == "events":  # the writer checks each kind by value
            columns["kind"] = columns["kind"].to_pylist()
        writer.append(name, columns)


def _write_merged(writer: HistoryWriter, run_dir: Path, scenario: Scenario, parts: list[GeneratorHistory],
                  start_at: int, driver_events: list[_DriverEvent],
                  write_run_row: Callable[..., None]) -> None:
    for part in parts:  # each generator's own tables, as it wrote them
        own = run_dir / GENERATORS_DIR / f"g{part.index}"
        own.mkdir(parents=True, exist_ok=True)
        for name, table in part.tables.items():
            pq.write_table(table, own / f"{name}.parquet")
    merged = merge_histories(parts, start_at)
    # The driver's server events: its cleanup stands for the generators' (their ``left``
    # joined to its own).
    extra = _driver_events(driver_events, start_at)
    events = merged["events"]
    driver_cleanup = [json.loads(d) for k, d in zip(extra.column("kind").to_pylist(), extra.column("detail").to_pylist())
                      if k == EventKind.CLEANUP]
    if driver_cleanup:
        generators_left = next(json.loads(d)["left"] for k, d in zip(events.column("kind").to_pylist(),
                                                                      events.column("detail").to_pylist())
                               if k == EventKind.CLEANUP)
        driver_cleanup[0]["left"] = [*driver_cleanup[0]["left"], *generators_left]
        t_end = max(t_end_of(part) for part in parts)
        events = events.filter(pc.not_equal(events.column("kind"), EventKind.CLEANUP))
        extra = extra.filter(pc.not_equal(extra.column("kind"), EventKind.CLEANUP))
        extra = pa.concat_tables([extra, pa.table({
            "t": pa.array([t_end], pa.int64()), "kind": [EventKind.CLEANUP], "node": pa.array([None], pa.string()),
            "value": pa.array([None], pa.float64()), "height": pa.array([None], pa.int64()),
            "detail": [json.dumps(driver_cleanup[0])]}, schema=TABLES["events"])])
        # Stops and cleanup come at the run's end on its axis, as a one-generator run stamps them.
        times = np.maximum(extra.column("t").to_numpy(), np.where(
            np.isin(np.array(extra.column("kind").to_pylist(), dtype=object),
                    [EventKind.SERVER_STOP, EventKind.CLEANUP]), t_end, np.iinfo(np.int64).min))
        extra = extra.set_column(0, "t", pa.array(times, pa.int64())).cast(TABLES["events"])
    events = pa.concat_tables([events, extra])
    events = events.take(pc.sort_indices(events, [("t", "ascending")]))
    for name in ("messages", "deliveries"):
        _append(writer, name, merged[name])
    _append(writer, "events", events)
    first = parts[0].tables["run"]
    nodes = json.loads(first.column("nodes_json").to_pylist()[-1])
    write_run_row(writer, scenario, _RunFacts(nodes, any(bool(p.tables["run"].column("interrupted").to_pylist()[-1])
                                                         for p in parts)),
                  max(t_end_of(part) for part in parts))
    writer.close()


def _write_failed(writer: HistoryWriter, scenario: Scenario, driver_events: list[_DriverEvent],
                  failure: str | None, write_run_row: Callable[..., None]) -> None:
    """No merged history (the run failed, ``failure`` says why, or was interrupted: None): the
    driver's events, the reason, and a run row not completed, so ``report`` names the failure."""
    now = time.time_ns()
    ending: _DriverEvent = ((now, EventKind.INTERRUPTED, None, {}) if failure is None
                            else (now, EventKind.CLIENT_ERROR, None, {"client": START_FAILED, "error": failure}))
    _append(writer, "events", _driver_events(
        [(now, EventKind.RUN_START, None, {"target": scenario.target, "generators": scenario.live.generators}),
         *driver_events, ending], now))
    write_run_row(writer, scenario, _RunFacts([], failure is None), 0, completed=False)
    writer.close()
