"""Load from many hosts: the open-loop generator and its consumers as Ray actors, one per node.

Place in the pipeline: ``runner`` -> **record_distributed** -> N x (``GeneratorTarget`` in a
Ray actor) -> their histories merged -> ``HistoryWriter``, in place of one ``LiveTarget``.
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
- **Subjects.** Generator k publishes on ``live.subject`` + ``.gK`` and its own consumers
  (``live.consumers`` of them, named as in a one-generator run) read that subject, on the
  same node: a message's latency is measured on one host's clock (CLOCK_MONOTONIC), never
  across two, so no clock error enters it.
- **One instant.** Each node's wall clock is compared with the driver's (``estimate_offset``:
  NTP's round trip, best of ``CLOCK_ROUNDS`` by the shortest round trip; its error is within
  half that round trip); the driver picks an instant ``START_LEAD_S`` ahead on its own clock,
  and generator k, once connected, starts its schedule when its clock reads that instant plus
  its offset (``GeneratorTarget._before_schedule``): its time axis (``t = 0``) is that
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

Safety: the scenario's ``live.url`` rule holds (loopback only unless ``allow_remote``); a
server msgstorm starts itself listens on loopback, so generators on other hosts need a
``live.url`` the user runs (docs/live.md). Every wait is bounded: the actors' start by
``live.start_timeout``, the run by its duration, drain and lead plus ``_RESULT_MARGIN_S``.
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
from msgstorm.live.lifecycle import START_FAILED
from msgstorm.live.target import LiveTarget
from msgstorm.scenario import Scenario
from msgstorm.scenario.refs import is_loopback_url
from msgstorm.traffic.generate import MessageBatch

__all__ = ["CLOCK_ROUNDS", "GENERATORS_DIR", "START_LEAD_S", "ClockOffset", "GeneratorActor", "GeneratorHistory",
           "GeneratorTarget", "estimate_offset", "merge_histories", "record_distributed", "share", "share_ids"]

# Round trips to each node whose shortest gives its clock offset.
CLOCK_ROUNDS = 8
# The agreed start is this far ahead of the offsets' measurement: time for every generator
# to connect its publisher and consumers.
START_LEAD_S = 3.0
# A start instant further ahead than this is refused by the actor (a wrong clock, not a wait).
_MAX_WAIT_S = 120.0
# Beyond the run's duration, drain and lead, how long the driver waits for the generators.
_RESULT_MARGIN_S = 120.0
# Where each generator's own tables are kept in the run directory.
GENERATORS_DIR = "generators"
# The tables a generator returns and the merge joins.
_TABLES = ("messages", "deliveries", "events", "run")


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


class GeneratorTarget(LiveTarget):
    """A ``LiveTarget`` that sends one share of the schedule and starts it at an agreed
    instant, ``start_at_ns`` on this node's wall clock (``time.time_ns``)."""

    def __init__(self, scenario: Scenario, writer: HistoryWriter, run_dir: Path, index: int, count: int,
                 start_at_ns: int) -> None:
        super().__init__(scenario, writer, run_dir)
        self.index, self.count = index, count
        self.start_at_ns = start_at_ns
        self.start_late_ns: int | None = None  # how late the schedule's start found it awake

    def _traffic_again(self) -> Iterator[MessageBatch]:
        return share(super()._traffic_again(), self.index, self.count)

    async def _before_schedule(self) -> int:
        """Wait for the agreed instant; the schedule starts at it, however late this wakes
        up (the first messages are then sent late, as send lag). Bounded: the instant is at
        most ``_MAX_WAIT_S`` ahead (``GeneratorActor.run``)."""
        while (left := self.start_at_ns - time.time_ns()) > 0:
            await asyncio.sleep(left / 1e9)
        self.start_late_ns = time.time_ns() - self.start_at_ns
        return self.start_late_ns


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
            start_at_ns: int) -> tuple[dict[str, pa.Table], int, str | None]:
        """Run share ``index`` of ``count``; return its tables, how late it started (ns,
        on this node's clock), and why it never started (None if it did)."""
        from msgstorm.traffic import generate_traffic

        if start_at_ns - time.time_ns() > _MAX_WAIT_S * 1e9:
            raise TargetError(f"generator g{index}: the agreed start is more than {_MAX_WAIT_S:g} s ahead of this "
                              "node's clock; is its clock right?")
        work = Path(tempfile.mkdtemp(prefix=f"msgstorm-g{index}-"))
        try:
            writer = HistoryWriter(work / "history", scenario.history.row_group_size, durable=False)
            target = GeneratorTarget(scenario, writer, work, index, count, start_at_ns)
            write_run_row(writer, scenario, target, 0, completed=False)
            try:
                target.run(share(generate_traffic(scenario, seed, window_ns=scenario.run.window), index, count),
                           seed)
            except TargetError:
                pass  # its history says why (a client_error event, the run row not completed)
            finally:
                t_end = target.finish()
                write_run_row(writer, scenario, target, t_end, completed=target.start_error is None)
                writer.close()
            tables = {name: pq.read_table(work / "history" / name, schema=TABLES[name]) for name in _TABLES}
            return tables, target.start_late_ns or 0, target.start_error
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


def record_distributed(scenario: Scenario, writer: HistoryWriter, run_dir: Path, seed: np.random.SeedSequence,
                       address: str | None) -> None:
    """Run ``scenario`` on ``live.generators`` Ray actors (or one per node of the cluster at
    ``address`` when it says 1), merge what they wrote into ``writer``, and write the run row.
    ``address``: a Ray address (``auto``, host:port, ``ray://``), or None for the one
    ``RAY_ADDRESS`` names or a Ray started here."""
    import logging

    try:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    except ImportError as error:
        raise TargetError(f"a distributed run needs Ray: {error}; install the cluster extra: "
                          "pip install -e '.[cluster]'") from None
    from msgstorm.live.nemesis import cleanup_report
    from msgstorm.scenario.registry import LIVE_DRIVERS

    write_run_row(writer, scenario, _RunFacts([], False), 0, completed=False)  # a killed run still says what ran
    writer.sync()
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    nodes = _cluster_nodes(ray)
    if not nodes:
        raise TargetError(f"the Ray cluster at {address or 'this machine'} has no node alive")
    count = scenario.live.generators if scenario.live.generators > 1 or address is None else len(nodes)
    driver_events: list[tuple[int, str, dict[str, Any]]] = []  # (unix ns, kind, detail)
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
                scenario.live, run_dir.resolve(), lambda kind, detail: driver_events.append((time.time_ns(), kind, detail)))
            for started in server.start_servers():
                driver_events.append((time.time_ns(), EventKind.SERVER_START, started))
            url = getattr(server, "url", None)
            if url is None:
                raise TargetError(f"{scenario.target}: the server msgstorm started has no URL for the generators")
        if not scenario.live.allow_remote and not is_loopback_url(url):
            raise TargetError(f"{url}: not a loopback address; load goes only to 127.0.0.0/8 or ::1 unless "
                              "live.allow_remote = true (--allow-remote)")
        remote: Any = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(GeneratorActor)
        actors = [remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[k % len(nodes)], soft=False))
                  .remote() for k in range(count)]
        hosts = ray.get([actor.ready.remote(scenario, seed) for actor in actors],
                        timeout=scenario.live.start_timeout / 1e9 + _RESULT_MARGIN_S)
        offsets = [estimate_offset(_clock_of(ray, actor)) for actor in actors]
        start_at = time.time_ns() + int(START_LEAD_S * 1e9)
        runs = [actor.run.remote(_share_scenario(scenario, url, k), seed, k, count, start_at + offsets[k].offset_ns)
                for k, actor in enumerate(actors)]
        results = ray.get(runs, timeout=START_LEAD_S + (scenario.run.duration + scenario.run.drain
                                                         + scenario.live.start_timeout) / 1e9 + _RESULT_MARGIN_S)
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
        if server is not None:
            server.stop_servers()
            for managed in getattr(server, "servers", []):
                driver_events.append((time.time_ns(), EventKind.SERVER_STOP,
                                      {"name": managed.name, "returncode": managed.returncode}))
            driver_events.append((time.time_ns(), EventKind.CLEANUP,
                                  cleanup_report(list(getattr(server, "servers", [])), None, [])))
        if interrupted or failure is not None:
            _write_failed(writer, scenario, driver_events, failure, write_run_row)
    _write_merged(writer, run_dir, scenario, parts, start_at, driver_events, write_run_row)


def _clock_of(ray: Any, actor: Any) -> Callable[[], int]:
    """Reads ``actor``'s clock (a round trip through Ray, at most 30 s)."""
    return lambda: int(ray.get(actor.clock.remote(), timeout=30))


def _share_scenario(scenario: Scenario, url: str, index: int) -> Scenario:
    """Generator ``index``'s scenario: an ordinary one-generator run on its own subject."""
    live = scenario.live.model_copy(update={"url": url, "subject": f"{scenario.live.subject}.g{index}",
                                            "generators": 1})
    return scenario.model_copy(update={"live": live})


def _driver_events(events: list[tuple[int, str, dict[str, Any]]], start_at: int) -> pa.Table:
    return pa.table({
        "t": pa.array([t - start_at for t, _, _ in events], pa.int64()),
        "kind": [kind for _, kind, _ in events], "node": pa.array([None] * len(events), pa.string()),
        "value": pa.array([None] * len(events), pa.float64()), "height": pa.array([None] * len(events), pa.int64()),
        "detail": [json.dumps(detail) for _, _, detail in events]}, schema=TABLES["events"])


def _append(writer: HistoryWriter, name: str, table: pa.Table) -> None:
    if len(table):
        columns: dict[str, Any] = {column: table.column(column).combine_chunks() for column in table.column_names}
        if name == "events":  # the writer checks each kind by value
            columns["kind"] = columns["kind"].to_pylist()
        writer.append(name, columns)


def _write_merged(writer: HistoryWriter, run_dir: Path, scenario: Scenario, parts: list[GeneratorHistory],
                  start_at: int, driver_events: list[tuple[int, str, dict[str, Any]]],
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


def _write_failed(writer: HistoryWriter, scenario: Scenario, driver_events: list[tuple[int, str, dict[str, Any]]],
                  failure: str | None, write_run_row: Callable[..., None]) -> None:
    """No merged history (the run failed, ``failure`` says why, or was interrupted: None): the
    driver's events, the reason, and a run row not completed, so ``report`` names the failure."""
    now = time.time_ns()
    ending = ((now, EventKind.INTERRUPTED, {}) if failure is None
              else (now, EventKind.CLIENT_ERROR, {"client": START_FAILED, "error": failure}))
    _append(writer, "events", _driver_events(
        [(now, EventKind.RUN_START, {"target": scenario.target, "generators": scenario.live.generators}),
         *driver_events, ending], now))
    write_run_row(writer, scenario, _RunFacts([], failure is None), 0, completed=False)
    writer.close()
