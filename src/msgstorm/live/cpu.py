"""CPU time of a live run's processes, sampled while the run goes.

Place in the pipeline: ``LiveTarget`` calls ``CpuSampler.sample`` every ``run.sample_interval``
(at least ``MIN_INTERVAL_S``; on a fixed grid from the schedule's start, and once after the
drain); each sample is one ``cpu_seconds``
event per process: ``value`` the CPU seconds (user + system) the process has used since it
started, ``node`` the server's name, ``publisher`` for msgstorm's own process (generator,
client library and consumers), or the name of one of its consumer or generator processes
(``[live.nats] consumer_processes``, ``generator_processes``). Beside them, one
``machine_cpu_seconds`` event a sample: the CPU seconds every core of the machine has spent
busy (not idle nor waiting for I/O; time a hypervisor gave to other guests counts as busy)
since it booted, whoever used them, so the analysis can tell the machine's own saturation by
other work from that of msgstorm's processes. Cumulative, so a sample that is late or missing costs no
accuracy: the CPU a process used between two times is the difference of the samples around
them. ``analysis/calibrate.py`` fits each server's CPU per message from them (the
utilisation law), and ``analysis/cpu.py`` reads them back.

A server's time is read from ``/proc/<pid>/stat`` (Linux; the threads that ended are counted,
in clock ticks of usually 10 ms, which a step of a second averages out); elsewhere, or for a
server that is gone (killed, stopped: a zombie counts as gone), that process's sample is
left out. The machine's from ``/proc/stat``'s ``cpu`` line, summed over its cores. Both are
read by hand: one line of a file each, which no library is needed for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

__all__ = ["MIN_INTERVAL_S", "CpuSampler", "machine_busy_seconds", "process_cpu_seconds"]

# /proc counts CPU time in clock ticks (10 ms): sampling more often measures nothing more, and
# each sample is a file read per process on the generator's event loop.
MIN_INTERVAL_S = 0.05

try:
    _TICKS_PER_S = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):  # not a POSIX system: no /proc to read either
    _TICKS_PER_S = 100.0


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, every thread's) process ``pid`` has used; None when it
    cannot be read (not Linux, the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces: the first
    # is field 3 (state), so utime (field 14) and stime (15) are at 11 and 12.
    fields = data[data.rfind(b")") + 2:].split()
    if not fields or fields[0] in (b"Z", b"X"):
        return None  # dead (a zombie until its parent reaps it): it uses no CPU, it is gone
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    except (IndexError, ValueError):
        return None


def machine_busy_seconds() -> float | None:
    """CPU seconds the machine's cores have spent busy since it booted, summed over them:
    user, nice, system, irq, softirq and steal (``/proc/stat``; guest time is inside user);
    None when it cannot be read (not Linux)."""
    try:
        with open("/proc/stat", "rb") as stat:
            line = stat.readline()
    except OSError:
        return None
    fields = line.split()
    if not fields or fields[0] != b"cpu":
        return None
    try:
        ticks = [int(value) for value in fields[1:9]]
    except ValueError:
        return None
    if len(ticks) < 8:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / _TICKS_PER_S


class CpuSampler:
    """Samples of this process's CPU time and of each ``(name, pid)`` server's, handed to
    ``emit(name, cpu_seconds)``, and of the machine's busy CPU time, handed to
    ``emit_machine(busy_seconds)``."""

    def __init__(self, own_name: str, servers: Iterable[tuple[str, int]],
                 emit: Callable[[str, float], None], emit_machine: Callable[[float], None]) -> None:
        self.own_name = own_name
        self.servers = list(servers)
        self.emit = emit
        self.emit_machine = emit_machine

    def sample(self) -> None:
        busy = machine_busy_seconds()
        if busy is not None:
            self.emit_machine(busy)
        self.emit(self.own_name, time.process_time_ns() / 1e9)
        for name, pid in self.servers:
            seconds = process_cpu_seconds(pid)
            if seconds is not None:
                self.emit(name, seconds)
