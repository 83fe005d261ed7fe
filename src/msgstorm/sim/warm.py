"""A helper process that compiles the simulator's loop while a cold run starts.

Place in the pipeline: beside ``ShadowNetwork``, from its construction to its first loop
call. numba compiles the gossip kernel (``sim/kernel.py``) or the one-node loop
(``sim/solo_loop.py``) on first use and keeps the machine code in its on-disk cache. The
first run after install finds no cache: the quick start compiled its traffic's draws and
then the kernel, one after the other (docs/performance.md, "The examples", cold start),
since numba's compiler is Python under one global lock and threads cannot share the work. A
second process can. When the loop a run will use has no cache entry and this process may use
a second CPU, ``start`` launches ``python -m msgstorm.sim.warm``, which compiles the loop
into the same cache while this process generates traffic (a run too small to win a compile
back draws it without compiling: ``draws.numpy_until_compiled``). Before
its first call the simulator waits for the helper (``Helper.wait``), and numba loads the
loop from the cache instead of compiling it.

The helper changes no result: it compiles the same functions with the signatures the
simulator calls them with (``gossip_split``, ``solo_split``; ``tests/test_sim_warm.py``
compares them with a run's), into the cache this process reads, and numba's cache holds
machine code for one exact signature. If it fails, is slow, or would write elsewhere (it
checks that its cache path is this process's), this process compiles for itself as it
would without it. Both processes may write the same entry (a function
both compile, such as ``draws.exp``): numba writes each cache file under a unique
temporary name and renames it into place (``numba/core/caching.py``,
``IndexDataCacheFile._open_for_write``), and both write the same key and file name, so a
reader finds one whole file or none (and then compiles).

Lifecycle of a ``Helper``: started by ``start``; ``wait()`` blocks until it exits (at most
``WAIT_S``, then it is killed); ``stop()`` kills it if it still runs and reaps it. Both
are idempotent; ``ShadowNetwork.finish`` calls ``stop()``, and a helper left behind by an
exception is stopped when its ``Helper`` is collected or the interpreter exits.
"""

from __future__ import annotations

import gc
import inspect
import os
import subprocess
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from numba.core import config as numba_config
from numba.core import types as nbt

from msgstorm import poisson_kernel
from msgstorm.jit import available
from msgstorm.processes import usable_cpus
from msgstorm.sim import kernel, link_model

__all__ = ["SPLITS", "WAIT_S", "Helper", "Loop", "Split", "gossip_split", "missing", "solo_split", "start"]

# numba's settings (read from the environment at its import; mypy cannot see them).
_config: Any = numba_config
# How long the simulator waits for a helper before compiling for itself. The helper does
# the same work this process would, so waiting is never slower unless it hangs; this
# bounds that case (the quick start's kernel compiles in about 3 s).
WAIT_S = 120.0


@dataclass(frozen=True)
class Loop:
    """A compiled function and the one signature the simulator calls it with."""

    function: Any  # a numba Dispatcher
    signature: tuple[nbt.Type, ...]

    @classmethod
    def of(cls, function: Any, **parameters: nbt.Type) -> Loop:
        """The signature by parameter name; every parameter must be named."""
        names = list(inspect.signature(function.py_func).parameters)
        if sorted(names) != sorted(parameters):
            raise TypeError(f"{function.__name__} takes {names}, got types for {list(parameters)}")
        return cls(function, tuple(parameters[name] for name in names))

    @property
    def name(self) -> str:
        return f"{self.function.py_func.__module__}.{self.function.__name__}"

    def ready(self) -> bool:
        """Whether a helper has nothing to do for this loop: this process has the signature
        compiled, or numba's on-disk cache has an index for the function at all
        (``jit.available``).

        An index without this signature's key counts as ready too: it is a stale entry (the
        source changed, or msgstorm was upgraded in place) whose old data file may still be
        on disk, and numba writes an entry's index before its data without a lock, so a
        second process reading it in between would load the old machine code. The helper
        is for a function with no entry at all (a fresh install or checkout); a stale one
        is rewritten by this process alone, as before."""
        return available(self.function, self.signature)


# Argument types as the simulator passes them: int64 scalars, and C-contiguous arrays.
INT, FLOAT = nbt.int64, nbt.float64
I64, F64, U8 = nbt.int64[::1], nbt.float64[::1], nbt.uint8[::1]
I64_2D, F64_2D, U8_2D = nbt.int64[:, ::1], nbt.float64[:, ::1], nbt.uint8[:, ::1]


@dataclass(frozen=True)
class Split:
    """How a cold start shares a loop's compiling: ``helper`` is compiled (in order) by the
    helper process; ``here`` by this process once it has nothing else to do before the
    loop's first call (``Helper.wait``), instead of idling.

    numba compiles a function's callees while it types it, so the helper compiles the top
    function and with it the whole tree below. ``here`` takes functions the helper reaches
    last (its leaves), so that it finds them in the cache, and functions the helper does
    not need at all. A function both happen to compile costs time, never a result.

    ``paying``: loops this process compiles after ``here`` only for a run large enough to
    win their compile back (``worth_compiling``). Each has a Python path that gives the same
    results (the traffic windows: window by window; the block step: message by message),
    which a smaller run takes unless numba's cache has the loop already."""

    helper: tuple[Loop, ...]
    here: tuple[Loop, ...] = ()
    paying: tuple[Loop, ...] = ()

    @property
    def loops(self) -> tuple[Loop, ...]:
        return self.helper + self.here + self.paying


# Messages from which a cold run compiles the ``paying`` loops: compiling the traffic
# windows and the block step's loop costs 13 s of CPU (6-7 s each), their Python paths
# about 5 us a message more (the block step; the windows, less).
COMPILE_FROM_MESSAGES = 1_000_000


def worth_compiling(messages: float) -> bool:
    """Whether a run of about ``messages`` compiles the ``paying`` loops it lacks."""
    return messages >= COMPILE_FROM_MESSAGES


def block_step_loop() -> Loop:
    """The block step's loop (``sim/block_step.py``) with the signature it is called with."""
    from msgstorm.sim import block_step_loop as step

    return Loop.of(step.replay, rows=I64_2D, flags=I64, fees=F64, kinds=I64, keys=F64, ties=I64,
                   msgs=I64, qfees=F64, qs=I64, run=F64_2D, run_fees=F64, done=I64_2D, svc=I64,
                   p=I64, sc=I64, log=I64, joins=I64, join_fees=F64, limits=I64, protected=I64,
                   base_fee=FLOAT, mode=INT,
                   limit_t=INT, limit_eid=INT, stamp=INT, epoch=INT, leader=INT, depth=INT,
                   depth_max=INT, busy=INT, next_seq=INT, eid=INT, svc_i=INT, now=INT, pos=INT)


def uses_block_step(large: bool) -> bool:
    """Whether a run takes the block step's compiled loop: a large run (``worth_compiling``)
    compiles it if need be, a smaller one takes it only from the cache."""
    return large or block_step_loop().ready()


# Traffic windows of Poisson agents (``poisson_kernel``): a cold run draws its first traffic
# window by window (``generate_traffic(compile_windows=False)``), compiles these while it
# waits for the helper, and draws the rest with them.
TRAFFIC_WINDOWS = Loop(poisson_kernel.windows, poisson_kernel.WINDOWS_SIGNATURE)


def gossip_split(relays: bool = True) -> Split:
    """The gossip kernel: its loop with the relay protocols' events, or (``relays`` False)
    the one for a network whose items all go by push (``kernel._event_loop``). The helper
    compiles the loop (with the heap functions and _forward), then the link model, which the
    loop's typing compiled already (in _forward: link_delay, then degrade) and which
    LinkState calls from Python too: this process compiles nothing of the kernel, so that a
    run which compiles nothing else (a small one: ``draws.numpy_until_compiled``) never
    starts numba's compiler. Paying: the traffic windows, the block step's loop, and
    ``inject``, which a small run calls by the interpreter instead (``GossipState.inject``:
    a block or spam item at a time, 0.5 s of compiling for about 30 us a call)."""
    loop = kernel.run_until if relays else kernel.run_until_push
    return Split(
        helper=(
            Loop.of(loop, until=INT, max_degree=INT, keys=I64, payload=I64, pool=I64, scalars=I64,
                    nodes=I64_2D, slots=I64_2D, seen=U8_2D, free_slots=I64, watch=U8, fwd_ptr=I64, fwd_idx=I64,
                    fwd_base=I64, fwd_model=I64, fwd_param=F64, samples=I64, uniform=F64, processing=I64,
                    ns_per_byte=F64_2D, deg_nodes=U8_2D, deg_params=F64_2D, deliveries=I64_2D, mempool_log=I64_2D,
                    sends=I64_2D, order=I64, held=U8_2D, contents=I64_2D, block_parent=I64,
                    block_holds=U8_2D, hop_log=I64_2D, release=I64_2D, quiet=I64_2D, votes=I64_2D,
                    tally=I64_2D, votes_held=U8_2D),
            Loop.of(link_model.link_delay, base=INT, code=INT, param=FLOAT, uniform=F64, unif=INT, samples=I64),
            Loop.of(link_model.degrade, d=INT, node=INT, peer=INT, n_deg=INT, deg_nodes=U8_2D,
                    deg_params=F64_2D, uniform=F64, unif=INT),
        ),
        paying=(TRAFFIC_WINDOWS, block_step_loop(),
                Loop.of(kernel.inject, keys=I64, payload=I64, pool=I64, scalars=I64, slots=I64_2D, seen=U8_2D,
                        free_slots=I64, t=INT, node=INT, item=INT, kind=INT, size=INT, relay=INT, content=INT,
                        ntx=INT, full_size=INT)),
    )


def solo_split() -> Split:
    """The one-node loop (SoloSequencer.advance); meanwhile this process compiles the
    traffic's draws (SoloDriver takes the first batch before the loop's first call), then
    the traffic windows."""
    # Imported here: a gossip run's helper then starts without the one-node loop's imports
    # (the scenario schema and pyarrow, about 0.1 s before it can compile).
    from msgstorm.sim import solo_loop

    return Split(
        helper=(
            Loop.of(solo_loop.advance, p=I64, sc=I64, ev_t=I64, ev_eid=I64, ev_val=I64, keys=F64,
                    ties=I64, msgs=I64, qfees=F64, qs=I64, run=F64_2D, run_fees=F64, seqring=I64,
                    records=I64_2D, fees=F64, slog=I64, elog=I64_2D, evalue=F64,
                    dlog=I64_2D, service=I64, processing=I64, gas_of=I64, limit=I64, protected=U8,
                    send_t=I64, send_row=I64),
        ),
        paying=(TRAFFIC_WINDOWS,),
    )


# What a run may ask a helper for, by name (the helper's command line).
SPLITS: dict[str, Callable[[], Split]] = {
    "gossip": gossip_split, "gossip-push": lambda: gossip_split(False), "solo": solo_split}


def missing(loops: Sequence[Loop]) -> list[Loop]:
    """The loops neither compiled in this process nor in numba's cache yet."""
    return [loop for loop in loops if not loop.ready()]


class Helper:
    """A ``python -m msgstorm.sim.warm`` process compiling a split's ``helper`` loops into
    numba's cache."""

    def __init__(self, process: subprocess.Popen[bytes], split: Split, large: bool = True) -> None:
        self.process = process
        self.split = split
        self.large = large  # the run compiles the split's ``paying`` loops (``worth_compiling``)
        # Stops (and reaps) the process if this object is dropped or the interpreter exits
        # before stop() ran: no helper outlives its run, and none is left a zombie.
        self._finalizer = weakref.finalize(self, _end, process)

    def wait(self, timeout_s: float = WAIT_S) -> int | None:
        """Compile the split's ``here`` loops, and its ``paying`` ones for a large run (or load
        them from the cache), then block until the helper exits (at most ``timeout_s``, then
        stop it). Returns its exit code, or None when it was stopped."""
        try:
            for loop in self.split.here + (self.split.paying if self.large else ()):
                loop.function.compile(loop.signature)
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            return None
        except BaseException:  # Ctrl-C while waiting: no helper is left behind
            self.stop()
            raise

    def stop(self) -> None:
        """Kill the helper if it still runs and reap it (idempotent)."""
        self._finalizer()


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def start(name: str, cpus: int | None = None, relays: bool = True, large: bool = True) -> Helper | None:
    """Start a helper for ``SPLITS[name]`` when numba's cache lacks the loop it is for (the
    first of its helper loops; the others come after it) and this process may use two CPUs
    or more (``cpus``; default: as the OS says); None otherwise. ``relays`` False: a gossip
    network's items all go by push ("gossip-push"); ``large`` False: the run is too small to
    compile the split's ``paying`` loops.

    On one CPU a helper would only take turns with this process. With numba's JIT disabled
    there is nothing to compile."""
    if _config.DISABLE_JIT or (cpus if cpus is not None else usable_cpus()) < 2:
        return None
    name = "gossip-push" if name == "gossip" and not relays else name
    split = SPLITS[name]()
    todo = missing(split.helper[:1])
    if not todo:
        return None
    # The helper uses this process's cache directory, even one set in code rather than in
    # the environment. It imports msgstorm as a new interpreter finds it (-P: not from the
    # working directory), and compiles only if that is this very package: its cache path,
    # derived from the source files' directory, must be this one (main).
    env = dict(os.environ)
    # Its output goes nowhere: numba need not colour the messages of the typings it tries
    # and drops while it compiles (with colorama installed, about 0.4 s of the quick start's).
    env["NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING"] = "1"
    if _config.CACHE_DIR:
        env["NUMBA_CACHE_DIR"] = str(_config.CACHE_DIR)
    else:
        env.pop("NUMBA_CACHE_DIR", None)
    try:
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", "msgstorm.sim.warm", name, str(todo[0].function.stats.cache_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            # Its own session: Ctrl-C at the terminal reaches this process only, which stops it.
            start_new_session=True)
    except OSError:
        return None
    return Helper(process, split, large)


def main(argv: Sequence[str]) -> int:
    """The helper: compile the named split's helper loops (in order) into numba's cache.
    Exit 2, doing nothing, if this process's cache path is not the one given (the
    parent's): what it compiled would not be found."""
    name, cache_path = argv
    loops = SPLITS[name]().helper
    if str(loops[0].function.stats.cache_path) != cache_path:
        return 2
    # numba's compiler makes objects by the million and few cycles; this process ends when
    # it has compiled, so Python's cycle collector only costs it time (about 0.6 s of the
    # quick start's 10 s of compiling).
    gc.disable()
    for loop in loops:
        loop.function.compile(loop.signature)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
