"""Link delays between nodes for the Python side of the shadow network, and link faults.

Gossip receipts take their delays inside the compiled kernel (``sim/kernel.py``); this
module serves the direct node-to-leader traffic that stays in Python (finality votes, block
catch-up round trips) and keeps the fault state both sides share: partition colours
(links between colours are cut) and active degradations, which ``ShadowNetwork`` copies
into the kernel's arrays. ``LinkState.delay(i, j)``: base one-way latency of the region
pair (or a node-pair override), varied by the link model, plus any active degradation;
``None`` means lost on the way.
"""

from __future__ import annotations

import numpy as np

from msgstorm import draws
from msgstorm.scenario.schema import DegradeFault, LinkModel, PartitionFault
from msgstorm.sim.topology import Topology

__all__ = ["LinkState"]

_BLOCK = 8192


class _UnitDraws:
    """Buffered standard draws (uniform, normal, Pareto multiplier) for the hot loop, made
    CPU-independent by ``msgstorm.draws``."""

    __slots__ = ("alpha", "ni", "normal", "pareto", "pi", "rng", "ui", "uniform")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.uniform: list[float] = []
        self.normal: list[float] = []
        self.pareto: list[float] = []
        self.ui = self.ni = self.pi = 0
        self.alpha = 0.0

    def u(self) -> float:
        if self.ui >= len(self.uniform):
            self.uniform = self.rng.random(_BLOCK).tolist()
            self.ui = 0
        self.ui += 1
        return self.uniform[self.ui - 1]

    def z(self) -> float:
        if self.ni >= len(self.normal):
            self.normal = draws.standard_normal(self.rng, _BLOCK).tolist()
            self.ni = 0
        self.ni += 1
        return self.normal[self.ni - 1]

    def p(self, alpha: float) -> float:
        if self.pi >= len(self.pareto) or alpha != self.alpha:
            self.pareto = draws.pareto_multiplier(self.rng, alpha, _BLOCK).tolist()
            self.alpha = alpha
            self.pi = 0
        self.pi += 1
        return self.pareto[self.pi - 1]


class LinkState:
    """Delays and cuts between nodes; faults change it through ``apply_*``."""

    def __init__(self, topology: Topology, rng: np.random.Generator) -> None:
        self.topology = topology
        self.region_of = topology.region_of
        self.base_ns = topology.base_ns
        self.draws = _UnitDraws(rng)
        self.colour = [0] * topology.size
        self._partitions: dict[int, list[int]] = {}  # fault_id -> group per node
        # fault_id -> (flag per node, between?, added latency, jitter, loss)
        self.degrades: dict[int, tuple[list[int], bool, int, int, float]] = {}
        self.models = topology.region_model
        self.constant = all(m.dist == "constant" for row in self.models for m in row) and not topology.node_overrides

    # --- delays -------------------------------------------------------------------

    def delay(self, i: int, j: int) -> int | None:
        """One-way delay for a transmission from node i to j, or None if it is lost."""
        ri = self.region_of[i]
        rj = self.region_of[j]
        if self.constant and not self.degrades:
            return self.base_ns[ri][rj]
        override = self.topology.node_overrides.get((i, j)) if self.topology.node_overrides else None
        if override is None:
            base = self.base_ns[ri][rj]
            model = self.models[ri][rj]
        else:
            base, model = override
        delay = self._vary(base, model)
        if self.degrades:
            for side, between, extra, jitter, loss in self.degrades.values():
                if between:  # one end on side A (bit 1), the other on side B (bit 2)
                    fi, fj = side[i], side[j]
                    hit = bool((fi & 1 and fj & 2) or (fi & 2 and fj & 1))
                else:  # any link touching a flagged node
                    hit = bool(side[i] or side[j])
                if hit:
                    if loss > 0.0 and self.draws.u() < loss:
                        return None
                    delay += extra
                    if jitter:
                        delay += int(abs(self.draws.z()) * jitter)
        return delay

    def _vary(self, base: int, model: LinkModel) -> int:
        dist = model.dist
        if dist == "constant":
            return base
        if dist == "uniform":
            return base + int(self.draws.u() * model.jitter)
        if dist == "normal":
            return max(0, base + int(self.draws.z() * model.jitter))
        if dist == "lognormal":
            return int(base * draws.exp(model.sigma * self.draws.z()))
        return int(base * self.draws.p(model.alpha))  # Pareto(1, alpha) multiplier

    # --- faults ---------------------------------------------------------------------------

    def start_partition(self, fault_id: int, fault: PartitionFault, node_index: dict[str, int]) -> None:
        groups = [len(fault.groups)] * self.topology.size  # unnamed nodes: one more group
        for g, members in enumerate(fault.groups):
            for name in members:
                for node in self._resolve(name, node_index):
                    groups[node] = g
        self._partitions[fault_id] = groups
        self._recolour()

    def end_partition(self, fault_id: int) -> None:
        self._partitions.pop(fault_id, None)
        self._recolour()

    def _recolour(self) -> None:
        keys: dict[tuple[int, ...], int] = {}
        columns = list(self._partitions.values())
        self.colour = [keys.setdefault(tuple(col[n] for col in columns), len(keys)) for n in range(self.topology.size)]

    def start_degrade(self, fault_id: int, fault: DegradeFault, node_index: dict[str, int]) -> None:
        """Flag the degraded nodes: ``nodes`` degrades every link touching them; ``between``
        only links with one end in each of the two groups (regions or nodes)."""
        side = [0] * self.topology.size
        if fault.nodes is not None:
            for name in fault.nodes:
                for node in self._resolve(name, node_index):
                    side[node] = 1
            self.degrades[fault_id] = (side, False, fault.latency, fault.jitter, fault.loss)
        else:
            assert fault.between is not None
            a, b = fault.between
            for node in self._resolve(a, node_index):
                side[node] |= 1
            for node in self._resolve(b, node_index):
                side[node] |= 2
            self.degrades[fault_id] = (side, True, fault.latency, fault.jitter, fault.loss)

    def end_degrade(self, fault_id: int) -> None:
        self.degrades.pop(fault_id, None)

    def _resolve(self, name: str, node_index: dict[str, int]) -> list[int]:
        if name in node_index:
            return [node_index[name]]
        regions = self.topology.regions
        region = regions.index(name)
        return [n for n, r in enumerate(self.region_of) if r == region]
