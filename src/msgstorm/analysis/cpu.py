"""The CPU a live run's processes used, from the history's ``cpu_seconds`` events.

Place in the pipeline: history ``events`` -> **process_cpu** -> ``calibrate`` (a server's CPU
per message, by the utilisation law) and ``capacity`` (what limited a ramp); **machine_cpu**
-> ``capacity`` (a machine busy with other work). ``live/cpu.py`` writes the samples: for
each process, the CPU seconds it had used since it started, every ``run.sample_interval``,
and the CPU seconds every core of the machine had spent busy, whoever used them. The CPU used
between two times is the difference of that cumulative curve (linear between samples), so
the mean CPUs busy over a ramp step needs no sample at the step's edges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from msgstorm.analysis._common import F64, I64, events_of
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["MACHINE", "ProcessCpu", "host_cpus", "machine_cpu", "process_cpu"]

# The name ``machine_cpu`` gives the machine's curve (no process has it: the samples are of
# their own event kind).
MACHINE = "machine"


@dataclass(frozen=True)
class ProcessCpu:
    """One process's samples (or the machine's): ``seconds[i]`` CPU seconds used by time ``t[i]`` (ns)."""

    name: str
    t: I64
    seconds: F64
    cpus: int | None  # the CPUs a server may run on at once (its server_start), None: not said
    # (the machine's: its cores, from the run's host facts)

    def cores(self, start_ns: int, end_ns: int) -> float | None:
        """Mean CPUs busy from ``start_ns`` to ``end_ns`` (CPU seconds per second), over the
        part of that time the samples span (the first is taken a moment after the schedule
        starts); None when they span less than half of it."""
        if self.t.size < 2:
            return None
        start, end = max(start_ns, int(self.t[0])), min(end_ns, int(self.t[-1]))
        if end <= start or (end - start) * 2 < end_ns - start_ns:
            return None
        before, after = np.interp([start, end], self.t, self.seconds)
        return float(after - before) / ((end - start) / 1e9)


def process_cpu(history: History) -> dict[str, ProcessCpu]:
    """Every sampled process by name (servers, and ``publisher`` for msgstorm's own)."""
    samples = events_of(history, EventKind.CPU_SECONDS)
    if samples.t.size == 0:
        return {}
    cpus: dict[str, int] = {}
    starts = events_of(history, EventKind.SERVER_START)
    for detail in starts.details():
        if isinstance(detail.get("name"), str) and isinstance(detail.get("cpus"), int):
            cpus[detail["name"]] = detail["cpus"]
    nodes = np.asarray(samples.nodes(), dtype=object)
    found: dict[str, ProcessCpu] = {}
    for name in dict.fromkeys(nodes.tolist()):
        if not isinstance(name, str):
            continue
        mine = nodes == name
        t, seconds = samples.t[mine], samples.value[mine]
        # A process's CPU time only grows: a sample below an earlier one is of another process
        # by that name (a server started again by hand); the curve ends before it.
        fell = np.flatnonzero(seconds[1:] < seconds[:-1])
        if fell.size:
            t, seconds = t[:fell[0] + 1], seconds[:fell[0] + 1]
        found[name] = ProcessCpu(name=name, t=np.ascontiguousarray(t), seconds=np.ascontiguousarray(seconds),
                                 cpus=cpus.get(name))
    return found


def machine_cpu(history: History) -> ProcessCpu | None:
    """The machine's busy CPU time, every core's, whoever used it (``machine_cpu_seconds``
    events); None for a history without them (the simulator; a live run before they were
    recorded). ``cpus`` is the machine's cores as the run's host facts say."""
    samples = events_of(history, EventKind.MACHINE_CPU_SECONDS)
    if samples.t.size == 0:
        return None
    return ProcessCpu(name=MACHINE, t=np.ascontiguousarray(samples.t), seconds=np.ascontiguousarray(samples.value),
                      cpus=host_cpus(history))


def host_cpus(history: History) -> int | None:
    """The CPUs of the machine the run ran on (the ``run`` table's host facts), None: not said."""
    try:
        cpus = json.loads(history.run_info.get("host") or "{}").get("cpus")
    except ValueError:
        return None
    return int(cpus) if isinstance(cpus, int) and cpus > 0 else None
