"""The link model: one transmission's delay, its variation and any active degradation.

Place in the pipeline: inside the simulator. One implementation serves both sides of the
shadow network: the gossip kernel (``sim/kernel.py``) compiles these functions into its
loop, and ``LinkState`` (``sim/links.py``) calls the same compiled functions for the
direct traffic that stays in Python (finality votes, block catch-up). Both feed them
uniforms from their own seeded generators, so a link's delay has one distribution however
the message travels.

A transmission on a varied link takes one uniform (constant links take none); each
degradation touching the link takes one more for its loss and one for its jitter. The
uniforms become normal and Pareto variations through ``msgstorm.draws`` (IEEE basic
operations only), so the same seed gives the same delays on every CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from msgstorm.draws import inner_exp, inner_log, inner_normal_ppf
from msgstorm.jit import borrowing, nb

# Only a type here: without the scenario schema (pydantic) imported, a helper process
# compiling the kernel (sim/warm.py) starts sooner.
if TYPE_CHECKING:
    from msgstorm.scenario.schema import LinkModel
    from msgstorm.sim.link_samples import LinkSamples

__all__ = ["MAX_DEGRADES", "MODEL_CODES", "Degradations", "degrade", "link_delay", "model_code"]

MODEL_CODES = {"constant": 0, "uniform": 1, "normal": 2, "lognormal": 3, "pareto": 4, "empirical": 5}
MAX_DEGRADES = 32
# Columns of a degradation's parameters: between (1.0) or nodes (0.0), added latency ns,
# jitter ns (scale of |N(0, 1)|), loss probability.
D_BETWEEN, D_LATENCY, D_JITTER, D_LOSS = range(4)


# A model's int64 code: its distribution (MODEL_CODES) in the low bits, its fixed overhead in
# ns above them; 0 is a constant link without overhead, which draws and adds nothing.
_DIST_BITS = 8
_DIST_MASK = (1 << _DIST_BITS) - 1


def model_code(spec: LinkModel, samples: LinkSamples) -> tuple[int, float]:
    """A link model as the compiled functions take it: (code, parameter); an empirical
    model's parameter is where its delays start in ``samples.array`` (sim/link_samples.py)."""
    if spec.dist == "empirical":
        param = float(samples.offset(spec))
    else:
        param = {"constant": 0.0, "uniform": float(spec.jitter), "normal": float(spec.jitter),
                 "lognormal": spec.sigma, "pareto": spec.alpha}[spec.dist]
    return MODEL_CODES[spec.dist] | (spec.overhead << _DIST_BITS), param


# Compiled without numba's runtime (msgstorm.jit.borrowing): they only read the arrays they
# are given, and with the runtime every call would count references to each array (the
# gossip kernel calls link_delay for every copy it sends).
@borrowing()
def link_delay(base: int, code: int, param: float, uniform: np.ndarray, unif: int,
               samples: np.ndarray) -> tuple[int, int]:
    """A transmission's link delay (the model's variation of ``base``, or an empirical
    sample, plus its fixed overhead) and the index of the next unused uniform."""
    d, unif = _varied(base, code & _DIST_MASK, param, uniform, unif, samples)
    return d + (code >> _DIST_BITS), unif


@nb.njit(cache=True, inline="always")
def _varied(base: int, model: int, param: float, uniform: np.ndarray, unif: int,
            samples: np.ndarray) -> tuple[int, int]:
    if model == 0:
        return base, unif
    if model == 5:
        # Empirical: a sample, picked by one uniform (u < 1, so the index stays below count).
        first = int(param)
        count = samples[first]
        return samples[first + 1 + int(uniform[unif] * count)], unif + 1
    if model == 1:
        return base + int(uniform[unif] * param), unif + 1
    if model == 2 or model == 3:
        # One standard normal per transmission, by inverse CDF from one uniform.
        z = inner_normal_ppf(uniform[unif])
        if model == 2:
            d = base + int(z * param)
            return (d if d > 0 else 0), unif + 1
        return int(base * inner_exp(param * z)), unif + 1
    # Pareto(1, alpha) multiplier: (1 - u) ** (-1 / alpha)
    return int(base * inner_exp(-inner_log(1.0 - uniform[unif]) / param)), unif + 1


@borrowing()
def degrade(d: int, node: int, peer: int, n_deg: int, deg_nodes: np.ndarray, deg_params: np.ndarray,
            uniform: np.ndarray, unif: int) -> tuple[int, int, bool]:
    """Apply the active degradations to one transmission: (delay, next uniform, lost)."""
    for k in range(n_deg):
        fa = deg_nodes[k, node]
        fb = deg_nodes[k, peer]
        if deg_params[k, D_BETWEEN] > 0.5:  # between: one end on side A (bit 1), one on B (bit 2)
            hit = ((fa & 1) != 0 and (fb & 2) != 0) or ((fa & 2) != 0 and (fb & 1) != 0)
        else:  # any link touching a flagged node
            hit = fa != 0 or fb != 0
        if hit:
            if deg_params[k, D_LOSS] > 0.0:
                u = uniform[unif]
                unif += 1
                if u < deg_params[k, D_LOSS]:
                    return d, unif, True
            d += int(deg_params[k, D_LATENCY])
            if deg_params[k, D_JITTER] > 0.0:
                z = inner_normal_ppf(uniform[unif])
                unif += 1
                d += int(abs(z) * deg_params[k, D_JITTER])
    return d, unif, False


class Degradations:
    """The active link degradations, as the arrays ``degrade`` reads: rows 0..count-1 of
    ``nodes`` (uint8 flags per node: bit 1 side A or degraded node, bit 2 side B) and
    ``params``. Shared by ``LinkState`` and the gossip kernel, so both see one state."""

    def __init__(self, n: int) -> None:
        self.nodes = np.zeros((MAX_DEGRADES, n), dtype=np.uint8)
        self.params = np.zeros((MAX_DEGRADES, 4), dtype=np.float64)
        self.ids: list[int] = []

    @property
    def count(self) -> int:
        return len(self.ids)

    def add(self, fault_id: int, side: list[int], between: bool, latency: int, jitter: int, loss: float) -> None:
        if len(self.ids) >= MAX_DEGRADES:
            raise ValueError(f"at most {MAX_DEGRADES} link degradations may be active at once")
        row = len(self.ids)
        self.ids.append(fault_id)
        self.nodes[row] = np.asarray(side, dtype=np.uint8)
        self.params[row] = (1.0 if between else 0.0, latency, jitter, loss)

    def remove(self, fault_id: int) -> None:
        if fault_id not in self.ids:
            return
        row = self.ids.index(fault_id)
        last = len(self.ids) - 1
        # Keep active rows contiguous: move the last row into the freed one.
        self.nodes[row] = self.nodes[last]
        self.params[row] = self.params[last]
        self.ids[row] = self.ids[last]
        self.ids.pop()
