"""What a relay sample leaves out, and what it leaves of each node: the unsampled messages'
load on the nodes' uplinks, downlinks and CPUs (``[network.relay] sample_load``).

Place in the pipeline: the scenario's checks (``refs``: a load the nodes cannot carry is
refused before the run, from the scenario's mean rate) and the simulator
(``sim/background_load.py``: each traffic window's unsampled messages derate every node for
the sampled items). The rule is stated once here; docs/networks.md says it to users.

The rule. A message relayed by protocol P costs a node, on average over the network:

- **upload copies**: ``push``: degree − 1 (every forwarding peer but the one it came from);
  ``push_sqrt``: ⌈√degree⌉ · (degree − 1) / degree (the pushes, less the sender's share);
  ``announce``: 1 (a network of n nodes makes n − 1 transfers of it, one for each node that
  lacks it; which node serves is left to the mean);
- **download copies**: ``announce``: 1; ``push`` and ``push_sqrt``: the copies its peers
  send it, Σ over the peers p forwarding to it of up(p) / degree(p) (before the run, on the
  mean degree: its upload copies);
- **validations**: its download copies (every payload copy received is processed).

Announcements and requests cost no uplink time, as in the gossip kernel. The utilisation a
window's unsampled messages put on a node's uplink is ρ = rate × upload copies × (size × ns
per byte, plus the mean link delay of its forwarding links when the uplink is ``held``: a
copy holds it until it has arrived) / 10⁹; on its downlink rate × download copies × size ×
ns per byte / 10⁹; on its CPU rate × validations × mean processing / 10⁹. A sampled item's
copy then moves its bytes at ns per byte / (1 − ρ): the capacity the load leaves it (the
mean of processor sharing, exact for a ``fair_share`` uplink; the fluid view of a
``serial`` one; under ``held`` only the bytes stretch, not the link delay of its own hold).
Its validation takes the processing drawn / (1 − ρ) of the CPU, with ρ the network's mean
(the kernel draws one processing stream for every node). ρ is capped at ``RHO_CAP`` within
a window (a burst); a mean load of 1 or more is refused before the run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from msgstorm.scenario.budget import forwarding_degree
from msgstorm.scenario.network import RELAY_PROTOCOLS
from msgstorm.scenario.regions import region_base_ns

if TYPE_CHECKING:
    from msgstorm.scenario.schema import Scenario

__all__ = ["RHO_CAP", "cpu_load", "derating", "download_copies", "downlink_load", "load_problem", "upload_copies",
           "uplink_load"]

# Within a window a load may exceed the node (a burst): the sample then gets this much of it
# at least (a copy takes at most 20 times its bytes' time), and the window counts as saturated.
RHO_CAP = 0.95
_PUSH, _ANNOUNCE, _PUSH_SQRT = (RELAY_PROTOCOLS.index(name) for name in ("push", "announce", "push_sqrt"))


def upload_copies(protocol: int, degree: np.ndarray) -> np.ndarray:
    """Payload copies a node of each ``degree`` uploads per message relayed by ``protocol``
    (its code in ``RELAY_PROTOCOLS``)."""
    degree = np.asarray(degree, dtype=np.float64)
    if protocol == _ANNOUNCE:
        return np.ones_like(degree)
    others: np.ndarray = np.maximum(degree - 1, 0)
    if protocol == _PUSH_SQRT:
        pushes: np.ndarray = np.ceil(np.sqrt(degree))
        share: np.ndarray = np.divide(others, degree, out=np.zeros_like(degree), where=degree > 0)
        return np.asarray(pushes * share, dtype=np.float64)
    return others


def download_copies(protocol: int, up: np.ndarray, fwd_ptr: np.ndarray, fwd_idx: np.ndarray) -> np.ndarray:
    """Payload copies each node downloads per message: 1 under announce; otherwise the
    upload copies ``up`` of each peer forwarding to it, shared over that peer's links."""
    nodes = fwd_ptr.size - 1
    if protocol == _ANNOUNCE:
        return np.ones(nodes)
    degree = np.diff(fwd_ptr).astype(np.float64)
    share = np.divide(up, degree, out=np.zeros(nodes), where=degree > 0)
    return np.bincount(fwd_idx, weights=np.repeat(share, np.diff(fwd_ptr)), minlength=nodes)


def uplink_load(per_s: float, bytes_per_s: float, copies: np.ndarray | float, ns_per_byte: np.ndarray | float,
                hold_ns: np.ndarray | float) -> np.ndarray | float:
    """ρ of an uplink: ``copies`` a message of ``per_s`` messages (``bytes_per_s`` bytes) a
    second, each taking its bytes' time plus ``hold_ns`` (a held uplink's link delay)."""
    return copies * (bytes_per_s * ns_per_byte + per_s * hold_ns) / 1e9


def downlink_load(bytes_per_s: float, copies: np.ndarray | float, ns_per_byte: np.ndarray | float) -> np.ndarray | float:
    """ρ of a downlink: ``copies`` of ``bytes_per_s`` bytes a second."""
    return copies * bytes_per_s * ns_per_byte / 1e9


def cpu_load(per_s: float, validations: float, processing_ns: float) -> float:
    """ρ of a CPU: ``validations`` a message of ``per_s`` messages a second."""
    return per_s * validations * processing_ns / 1e9


def derating(rho: np.ndarray | float) -> np.ndarray:
    """How much longer the sample's bytes (or validations) take under a load ``rho``."""
    return 1.0 / (1.0 - np.minimum(np.asarray(rho, dtype=np.float64), RHO_CAP))


def load_problem(scenario: Scenario, messages_per_agent: list[float]) -> str | None:
    """Why the nodes cannot carry the unsampled messages at the scenario's mean rate (a
    utilisation of 1 or more of a region's uplink or downlink, or of the CPUs), if so; on
    the mean degree of the overlay."""
    network, relay = scenario.network, scenario.network.relay
    seconds = scenario.run.duration / 1e9
    if relay.sample is None or relay.sample_load == "none" or seconds <= 0:
        return None
    left_out = 1.0 - 1.0 / relay.sample_stride
    counts = network.region_counts()
    nodes = sum(counts)
    fanout = forwarding_degree(scenario, nodes)
    # Per protocol: messages a second and bytes a second left out of the sample.
    rate: dict[int, float] = {}
    byte_rate: dict[int, float] = {}
    for agent, messages in zip(scenario.agents, messages_per_agent, strict=True):
        for kind, weight in agent.kind_mix.items():
            code = relay.code(kind)
            per_s = messages * weight * left_out / seconds
            rate[code] = rate.get(code, 0.0) + per_s
            byte_rate[code] = byte_rate.get(code, 0.0) + per_s * agent.size.mean
    base = np.asarray(region_base_ns(network), dtype=np.float64)
    weights = np.asarray(counts, dtype=np.float64)
    mean_delay = base @ weights / max(weights.sum(), 1.0)  # a region's mean link delay to a node
    held = network.uplink == "held"
    copies = {code: float(upload_copies(code, np.array([fanout]))[0]) for code in rate}  # up, down and validations
    worst: tuple[float, str] = (0.0, "")
    for r, region in enumerate(network.regions):
        if not counts[r]:
            continue
        up_bps, down_bps = network.upload_bps(region), network.download_bps(region)
        up_ns = 8e9 / up_bps if up_bps > 0 else 0.0
        down_ns = 8e9 / down_bps if down_bps > 0 else 0.0
        hold_ns = float(mean_delay[r]) if held else 0.0
        rho_up = sum(float(uplink_load(rate[code], byte_rate[code], copies[code], up_ns, hold_ns)) for code in rate)
        rho_down = sum(float(downlink_load(byte_rate[code], copies[code], down_ns)) for code in rate)
        for rho, what in ((rho_up, f"{region}'s uplinks"), (rho_down, f"{region}'s downlinks")):
            if rho > worst[0]:
                worst = (rho, what)
    cpu = sum(cpu_load(rate[code], copies[code], network.processing.mean) for code in rate)
    if cpu > worst[0]:
        worst = (cpu, "every node's CPU")
    rho, what = worst
    if rho < 1.0 or not math.isfinite(rho):
        return None
    total = sum(rate.values())
    return (f"the {total:,.0f} unsampled messages a second would keep {what} busy {rho:.0%} of the time "
            "(docs/networks.md, \"A relay sample\"): lower the traffic or the processing, raise the bandwidth, "
            "or set network.relay.sample_load = \"none\" to relay the sample alone (its arrivals are then a floor)")
