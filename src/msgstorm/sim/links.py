"""Link delays between nodes for the Python side of the shadow network, and link faults.

Gossip receipts take their delays inside the compiled kernel (``sim/kernel.py``); this
module serves the direct node-to-leader traffic that stays in Python (finality votes, block
catch-up round trips) with the same link model (``sim/link_model.py``), and keeps the fault
state both sides share: partition colours (links between colours are cut, mirrored into
the kernel's arrays) and the active degradations (one ``Degradations``, read by both). ``LinkState.delay(i, j)``: base one-way latency of the region
pair (or a node-pair override), varied by the link model, plus any active degradation;
``None`` means lost on the way.
"""

from __future__ import annotations

import numpy as np

from msgstorm.scenario.schema import DegradeFault, PartitionFault
from msgstorm.sim.link_model import Degradations, degrade, link_delay, model_code
from msgstorm.sim.topology import Topology

__all__ = ["LinkState"]

_BLOCK = 8192


class LinkState:
    """Delays and cuts between nodes; faults change it through ``apply_*``."""

    def __init__(self, topology: Topology, rng: np.random.Generator) -> None:
        self.topology = topology
        self.region_of = topology.region_of
        self.base_ns = topology.base_ns
        self.rng = rng
        self.uniform = np.zeros(0, dtype=np.float64)
        self.unif = 0
        self.colour = [0] * topology.size
        self._partitions: dict[int, list[int]] = {}  # fault_id -> group per node
        self.degradations = Degradations(topology.size)
        self.models = [[model_code(m, topology.link_samples) for m in row] for row in topology.region_model]
        self.constant = all(code == 0 for row in self.models for code, _ in row) and not topology.node_overrides

    # --- delays -------------------------------------------------------------------

    def delay(self, i: int, j: int) -> int | None:
        """One-way delay for a transmission from node i to j, or None if it is lost."""
        ri = self.region_of[i]
        rj = self.region_of[j]
        degradations = self.degradations
        if self.constant and not degradations.ids:
            return self.base_ns[ri][rj]
        override = self.topology.node_overrides.get((i, j)) if self.topology.node_overrides else None
        if override is None:
            base = self.base_ns[ri][rj]
            code, param = self.models[ri][rj]
        else:
            base = override[0]
            code, param = model_code(override[1], self.topology.link_samples)
        count = degradations.count
        if self.unif + 1 + 2 * count > len(self.uniform):
            self.uniform = np.concatenate([self.uniform[self.unif:], self.rng.random(_BLOCK)])
            self.unif = 0
        delay, self.unif = link_delay(base, code, param, self.uniform, self.unif, self.topology.link_samples.array)
        if count:
            delay, self.unif, lost = degrade(delay, i, j, count, degradations.nodes, degradations.params,
                                             self.uniform, self.unif)
            if lost:
                return None
        return int(delay)

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
        else:
            assert fault.between is not None
            a, b = fault.between
            for node in self._resolve(a, node_index):
                side[node] |= 1
            for node in self._resolve(b, node_index):
                side[node] |= 2
        self.degradations.add(fault_id, side, fault.nodes is None, fault.latency, fault.jitter, fault.loss)

    def end_degrade(self, fault_id: int) -> None:
        self.degradations.remove(fault_id)

    def _resolve(self, name: str, node_index: dict[str, int]) -> list[int]:
        if name in node_index:
            return [node_index[name]]
        regions = self.topology.regions
        region = regions.index(name)
        return [n for n, r in enumerate(self.region_of) if r == region]
