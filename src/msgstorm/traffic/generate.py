"""Traffic generation: a scenario's agents turned into batches of intended messages.

traffic: ``Scenario`` -> per agent, an arrival process (``arrivals``) and attribute draws ->
**generate_traffic** -> ``MessageBatch`` per time window -> sim engine / live scheduler.

The run is cut into consecutive windows ``[k·w, (k+1)·w)``; each batch holds every message
intended in one window, sorted by ``t_intended``, so memory is bounded by one window's
messages however long the run. Every agent draws from its own generator, derived from
the seed by index, so editing one agent never shifts another agent's stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from msgstorm import poisson_kernel
from msgstorm.sampling import sample_array, sample_from_uniforms
from msgstorm.scenario.distributions import Constant
from msgstorm.scenario.refs import node_names, node_regions
from msgstorm.scenario.schema import MESSAGE_KINDS, Scenario
from msgstorm.scenario.traffic import AgentSpec
from msgstorm.traffic.arrivals import ArrivalProcess, make_arrival
from msgstorm.traffic.compiled import PoissonWindows

__all__ = ["DEFAULT_WINDOW_NS", "MessageBatch", "generate_traffic"]

DEFAULT_WINDOW_NS = 1_000_000_000
_INT32_MAX = np.iinfo(np.int32).max


@dataclass(frozen=True, eq=False)
class MessageBatch:
    """Messages intended in one window, one row per message, sorted by ``t_intended``.

    ``eq=False``: numpy arrays do not compare to one bool; compare columns instead.
    """

    msg_id: np.ndarray  # int64, consecutive across batches: 0, 1, 2, ...
    t_intended: np.ndarray  # int64 ns from run start
    agent: np.ndarray  # int32, index into scenario.agents
    kind: np.ndarray  # int8, index into MESSAGE_KINDS
    node: np.ndarray  # int32, origin node index in node_names(scenario.network) order
    key: np.ndarray  # int64, in [0, agent.keys)
    size: np.ndarray  # int32 bytes
    fee: np.ndarray  # float64

    def __post_init__(self) -> None:
        n = len(self.msg_id)
        for name in ("t_intended", "agent", "kind", "node", "key", "size", "fee"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"MessageBatch column {name!r} has a different length")

    def __len__(self) -> int:
        return len(self.msg_id)

    @classmethod
    def concat(cls, batches: list[MessageBatch]) -> MessageBatch:
        """Consecutive batches as one (the one-node loop takes traffic in larger pieces)."""
        if len(batches) == 1:
            return batches[0]
        return cls(*(np.concatenate([getattr(b, name) for b in batches]) for name in _COLUMNS))

    def take(self, rows: np.ndarray) -> MessageBatch:
        """The messages ``rows`` selects (a bool mask or indices), in their order."""
        return MessageBatch(*(getattr(self, name)[rows] for name in _COLUMNS))


_COLUMNS = ("msg_id", "t_intended", "agent", "kind", "node", "key", "size", "fee")  # MessageBatch's, in order


# One agent's share of a window, in batch column order minus msg_id.
_Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _candidate_nodes(spec: AgentSpec, scenario: Scenario) -> np.ndarray:
    """Node indices an agent's instances attach to, round-robin."""
    names = node_names(scenario.network)
    if spec.node is not None:
        if spec.node not in names:
            raise ValueError(f"agent {spec.name!r}: unknown node {spec.node!r}")
        return np.array([names.index(spec.node)], dtype=np.int32)
    if spec.region is not None:
        regions = node_regions(scenario.network)
        indices = [i for i, region in enumerate(regions) if region == spec.region]
        if not indices:
            raise ValueError(f"agent {spec.name!r}: unknown region {spec.region!r}")
        return np.array(indices, dtype=np.int32)
    return np.arange(len(names), dtype=np.int32)


class _AgentTraffic:
    """One agent across the run: its arrivals, where its instances sit, what they send."""

    def __init__(
        self, index: int, spec: AgentSpec, scenario: Scenario, seed: np.random.SeedSequence,
        compile_windows: bool = True,
    ) -> None:
        run_end_ns = scenario.run.duration
        self.index = index
        self.spec = spec
        self.start_ns = spec.start
        self.end_ns = min(spec.stop if spec.stop is not None else run_end_ns, run_end_ns)
        # Separate streams for times and attributes: changing an agent's size or fee
        # distribution leaves its send times alone.
        arrival_seed, attribute_seed = seed.spawn(2)
        self.arrivals: ArrivalProcess = make_arrival(
            spec.arrival,
            np.random.default_rng(arrival_seed),
            self.start_ns,
            max(self.end_ns, self.start_ns),
            instances=spec.count,
        )
        self.rng = np.random.default_rng(attribute_seed)
        self.size_dist = spec.size
        self.fee_dist = spec.fee
        self.fee_series = None
        if spec.fee_file is not None:  # only a scenario with a fee file imports its reader
            from msgstorm.scenario.fee_file import read_fee_series

            self.fee_series = read_fee_series(spec.fee_file, "fee", "fee file", zero=True)
        self.nodes = _candidate_nodes(spec, scenario)
        mix = spec.kind_mix
        self.kind_codes = np.array([MESSAGE_KINDS.index(k) for k in mix], dtype=np.int8)
        # Generator.choice(k, n, p=weights) draws n uniforms and looks them up in the
        # normalised cumulative weights; doing that here with the table built once gives the
        # same kinds from the same draws without choice's per-call checks (a third of a
        # window's cost for a small window).
        cdf = np.array(list(mix.values()), dtype=np.float64).cumsum()
        cdf /= cdf[-1]
        self.kind_cdf = cdf
        # A constant size is the same for every message: no need to round and clip per window.
        self.constant_size = (
            int(np.clip(np.rint(spec.size.value), 0, _INT32_MAX)) if isinstance(spec.size, Constant) else None
        )
        # Poisson arrivals at a piecewise-constant rate draw runs of windows in one compiled
        # call (traffic/compiled.py), the same values as ``draw`` makes window by window.
        self.compile_windows = compile_windows
        self.compiled = PoissonWindows.of(
            self.arrivals, self.rng, self.kind_cdf, self.kind_codes, keys=spec.keys,
            size_draw=self.constant_size is None, fee_draw=not isinstance(spec.fee, Constant))

    def compiled_now(self) -> PoissonWindows | None:
        """The compiled loop this agent's next windows come from, or None: window by window."""
        if self.compiled is not None and (self.compile_windows or poisson_kernel.ready()):
            return self.compiled
        return None

    def draw_run(self, window_start: np.ndarray, window_end: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """``draw`` for consecutive windows at once: the columns of all their messages, in
        window order, and where each window's rows begin and end (``edges``, one more entry
        than windows). A compiled agent draws them in one call; any other draws each window."""
        compiled = self.compiled_now()
        if compiled is None:
            return _joined([self.draw(int(a), int(b)) for a, b in zip(window_start.tolist(), window_end.tolist())])
        lo = np.maximum(window_start, self.start_ns)
        hi = np.minimum(window_end, self.end_ns)
        chunk = compiled.draw(lo, hi)
        n = chunk.times.shape[0]
        if self.nodes.size == 1:
            node = np.full(n, self.nodes[0], dtype=np.int32)
        else:
            node = self.nodes[chunk.instance % self.nodes.size]
        if self.constant_size is not None:
            size = np.full(n, self.constant_size, dtype=np.int32)
        else:
            size = np.clip(np.rint(sample_from_uniforms(self.size_dist, chunk.size_u)), 0, _INT32_MAX).astype(np.int32)
        if isinstance(self.fee_dist, Constant):
            fee = np.full(n, self.fee_dist.value, dtype=np.float64)
        else:
            fee = sample_from_uniforms(self.fee_dist, chunk.fee_u)
        if self.fee_series is not None:
            fee = fee * self.fee_series.at_many(chunk.times)
        agent = np.full(n, self.index, dtype=np.int32)
        edges = np.zeros(chunk.counts.shape[0] + 1, dtype=np.int64)
        np.cumsum(chunk.counts, out=edges[1:])
        return [chunk.times, agent, chunk.kind, node, chunk.key, size, fee], edges

    def draw(self, start_ns: int, end_ns: int) -> _Columns | None:
        lo, hi = max(start_ns, self.start_ns), min(end_ns, self.end_ns)
        if hi <= lo:
            return None
        times, instance = self.arrivals.events(lo, hi)
        n = times.size
        if n == 0:
            return None
        rng, spec = self.rng, self.spec
        if self.nodes.size == 1:
            node = np.full(n, self.nodes[0], dtype=np.int32)
        else:
            node = self.nodes[instance % self.nodes.size]
        if self.kind_codes.size == 1:
            kind = np.full(n, self.kind_codes[0], dtype=np.int8)
        else:
            kind = self.kind_codes[self.kind_cdf.searchsorted(rng.random(n), side="right")]
        key = rng.integers(0, spec.keys, n, dtype=np.int64)
        if self.constant_size is not None:
            size = np.full(n, self.constant_size, dtype=np.int32)
        else:
            size = np.clip(np.rint(sample_array(self.size_dist, rng, n)), 0, _INT32_MAX).astype(np.int32)
        fee = sample_array(self.fee_dist, rng, n)
        if self.fee_series is not None:
            fee = fee * self.fee_series.at_many(times)
        agent = np.full(n, self.index, dtype=np.int32)
        return times, agent, kind, node, key, size, fee


def _agent_seeds(seed: np.random.SeedSequence, n: int) -> list[np.random.SeedSequence]:
    """What ``seed.spawn(n)`` would return, without advancing ``seed``'s spawn counter.

    So generate_traffic is a pure function of (scenario, seed): calling it twice with
    the same SeedSequence object yields the same traffic.
    """
    return [
        np.random.SeedSequence(
            seed.entropy,
            spawn_key=(*seed.spawn_key, seed.n_children_spawned + i),
            pool_size=seed.pool_size,
        )
        for i in range(n)
    ]


def generate_traffic(
    scenario: Scenario, seed: np.random.SeedSequence, window_ns: int | None = None, min_rows: int = 0,
    compile_windows: bool = True,
) -> Iterator[MessageBatch]:
    """Batches of intended messages for windows of ``window_ns`` (default 1 s) over the run.

    With ``min_rows``, consecutive windows are joined into batches of at least that many
    messages (the last may hold fewer): the same messages in the same order, in fewer and
    larger batches, each still of whole windows (the one-node simulator takes them so).

    ``compile_windows=False``: while the compiled windows (``poisson_kernel``) are neither
    compiled in this process nor in numba's cache, agents draw window by window, the same
    messages, instead of compiling them first (a cold start compiles them while it waits
    for its helper, ``sim/warm.py``, and the agents take the compiled path from then on).

    Deterministic in (scenario, seed). Give traffic a SeedSequence of its own (e.g. one
    of ``root.spawn(k)``): agent streams are the children ``seed.spawn`` would make next,
    so spawning from the same object afterwards would reuse them. Windows with no
    messages are skipped. Agents are built here, so a bad replay file raises at the call.
    """
    window = DEFAULT_WINDOW_NS if window_ns is None else int(window_ns)
    if window <= 0:
        raise ValueError(f"window_ns must be above 0, got {window_ns}")
    seeds = _agent_seeds(seed, len(scenario.agents))
    agents = [
        _AgentTraffic(index, spec, scenario, agent_seed, compile_windows)
        for index, (spec, agent_seed) in enumerate(zip(scenario.agents, seeds, strict=True))
    ]
    return _batches(agents, scenario.run.duration, window, min_rows)


# Messages a run of windows drawn at once aims for: large enough that per-call costs vanish,
# small enough that the arrays stay a few MB.
RUN_MESSAGES = 1 << 17


def _run_length(agents: list[_AgentTraffic], window_ns: int, left: int) -> int:
    """Windows to draw at once: one when no agent is compiled (nothing to gain, and a
    window's messages are the least memory); else as many as hold about RUN_MESSAGES."""
    compiled = [windows for agent in agents if (windows := agent.compiled_now()) is not None]
    if not compiled:
        return 1
    expected = sum(windows.expected_per_window(window_ns) for windows in compiled)
    return max(1, min(left, int(RUN_MESSAGES / max(expected, 1.0))))


def _joined(windows: list[_Columns | None]) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-window columns (None: no message) as one set of columns and window edges."""
    counts = [0 if columns is None else len(columns[0]) for columns in windows]
    edges = np.zeros(len(windows) + 1, dtype=np.int64)
    np.cumsum(counts, out=edges[1:])
    present = [columns for columns in windows if columns is not None]
    if len(present) == 1:
        return list(present[0]), edges  # one window with messages: no copy
    if not present:
        return [np.empty(0, dtype=dtype) for dtype in _DTYPES], edges
    return [np.concatenate(column) for column in zip(*present, strict=True)], edges


_DTYPES = (np.int64, np.int32, np.int8, np.int32, np.int64, np.int32, np.float64)


def _merged_run(runs: list[tuple[list[np.ndarray], np.ndarray]], windows: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Several agents' runs as one: each window's messages from every agent, sorted by time."""
    if len(runs) == 1:
        return runs[0]
    merged: list[_Columns | None] = []
    for w in range(windows):
        parts = [[column[edges[w]:edges[w + 1]] for column in columns]
                 for columns, edges in runs if edges[w + 1] > edges[w]]
        if not parts:
            merged.append(None)
        elif len(parts) == 1:
            merged.append(tuple(parts[0]))  # type: ignore[arg-type]
        else:
            joined = [np.concatenate(column) for column in zip(*parts, strict=True)]
            # Stable sort on time: ties stay in agent order, then generation order.
            order = np.argsort(joined[0], kind="stable")
            merged.append(tuple(column[order] for column in joined))  # type: ignore[arg-type]
    return _joined(merged)


def _cuts(edges: list[int], min_rows: int, held: int) -> list[int]:
    """Edges at which to cut a run into batches: every non-empty window, or with
    ``min_rows`` whole windows until a batch holds at least that many (``held`` rows wait
    from the run before). The run's end is always a cut; what it leaves short is held."""
    cuts: list[int] = []
    start = edges[0] - held
    for edge in edges[1:]:
        if edge - start >= max(min_rows, 1):
            cuts.append(edge)
            start = edge
    return cuts


def _batches(agents: list[_AgentTraffic], duration_ns: int, window_ns: int,
             min_rows: int = 0) -> Iterator[MessageBatch]:
    next_msg_id = 0
    windows = -(-duration_ns // window_ns) if duration_ns > 0 else 0
    held: list[list[np.ndarray]] = []  # rows short of min_rows, waiting for the next run
    held_rows = 0
    k = 0
    while k < windows:
        run = _run_length(agents, window_ns, windows - k)
        window_start = np.arange(k, k + run, dtype=np.int64) * window_ns
        window_end = np.minimum(window_start + window_ns, duration_ns)
        k += run
        columns, edges = _merged_run([agent.draw_run(window_start, window_end) for agent in agents], run)
        edge_list = edges.tolist()
        start = 0
        for cut in _cuts(edge_list, min_rows, held_rows):
            piece = [column[start:cut] for column in columns]  # views
            if held:
                piece = [np.concatenate(parts) for parts in zip(*held, piece, strict=True)]
                held, held_rows = [], 0
            n = len(piece[0])
            msg_id = np.arange(next_msg_id, next_msg_id + n, dtype=np.int64)
            next_msg_id += n
            yield MessageBatch(msg_id, *piece)
            start = cut
        if start < edge_list[-1]:
            held.append([column[start:] for column in columns])
            held_rows += edge_list[-1] - start
    if held_rows:
        piece = held[0] if len(held) == 1 else [np.concatenate(parts) for parts in zip(*held, strict=True)]
        yield MessageBatch(np.arange(next_msg_id, next_msg_id + held_rows, dtype=np.int64), *piece)
