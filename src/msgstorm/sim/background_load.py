"""The unsampled messages' load under a relay sample, window by window: every node's uplink,
downlink and CPU derated for the sampled items (``[network.relay] sample_load = "derate"``).

Place in the pipeline: inside the simulator, beside ``sim/sampled_pool.py``: ``sim/shadow.py``
hands it each traffic batch with the mask of the messages the kernel relays, before their
sends; it sets the gossip kernel's ns per byte (upload and download, per node) and its
processing scale for the window. The rule is ``scenario/sample_load.py``'s.
"""

from __future__ import annotations

import numpy as np

from msgstorm.scenario.sample_load import (
    RHO_CAP,
    cpu_load,
    derating,
    downlink_load,
    download_copies,
    uplink_load,
    upload_copies,
)
from msgstorm.sim import kernel as k
from msgstorm.sim.gossip import GossipState
from msgstorm.traffic.generate import MessageBatch

__all__ = ["BackgroundLoad"]


class BackgroundLoad:
    """Derates the nodes for the sample by each window's unsampled messages."""

    def __init__(self, gossip: GossipState, window_ns: int, duration_ns: int, held: bool,
                 processing_mean_ns: float) -> None:
        self.gossip = gossip
        self.window_ns = window_ns
        self.duration_ns = duration_ns
        self.base = gossip.ns_per_byte.copy()
        self.processing_mean_ns = processing_mean_ns
        ptr, idx = gossip.fwd_ptr, gossip.fwd_idx
        degree = np.diff(ptr)
        # Under a held uplink a copy holds it for a link delay too: each node's mean over its links.
        self.hold_ns = np.zeros(degree.size)
        if held and idx.size:
            sums = np.bincount(np.repeat(np.arange(degree.size), degree), weights=gossip.fwd_base, minlength=degree.size)
            self.hold_ns = np.divide(sums, degree, out=np.zeros(degree.size), where=degree > 0)
        self.relay_of_kind = gossip.message_relay
        self.up: dict[int, np.ndarray] = {}
        self.down: dict[int, np.ndarray] = {}
        for code in np.unique(self.relay_of_kind).tolist():
            self.up[code] = upload_copies(code, degree)
            self.down[code] = download_copies(code, self.up[code], ptr, idx)
        self.windows = 0
        self.sampled_bytes = 0
        self.saturated = 0
        self.peak = {"upload": 0.0, "download": 0.0, "cpu": 0.0}
        self.total = {"upload": 0.0, "download": 0.0, "cpu": 0.0}

    def window(self, batch: MessageBatch, sampled: np.ndarray) -> None:
        """Set the nodes' derating for the window ``batch`` covers, from its messages not in
        ``sampled`` (before the window's sends)."""
        left = ~sampled
        # The traffic windows tile the run (the last may be cut short by its end); a batch is
        # one window's messages, from its first message's window on.
        start = int(batch.t_intended[0]) // self.window_ns * self.window_ns if len(batch) else 0
        span_s = max(min(self.window_ns, self.duration_ns - start), 1) / 1e9
        protocol = self.relay_of_kind[batch.kind[left].astype(np.int64)]
        sizes = batch.size[left].astype(np.float64)
        nodes = self.base.shape[1]
        rho_up, rho_down, rho_cpu = np.zeros(nodes), np.zeros(nodes), 0.0
        measured = self._measured_copies()
        for code in np.unique(protocol).tolist():
            mine = protocol == code
            per_s = float(np.count_nonzero(mine)) / span_s
            bytes_per_s = float(sizes[mine].sum()) / span_s
            up = self.up[code] if measured is None else measured
            down = self.down[code]
            rho_up += uplink_load(per_s, bytes_per_s, up, self.base[0], self.hold_ns)
            rho_down += downlink_load(bytes_per_s, down, self.base[1])
            rho_cpu += cpu_load(per_s, float(down.mean()), self.processing_mean_ns)
        self.gossip.ns_per_byte[0] = self.base[0] * derating(rho_up)
        self.gossip.ns_per_byte[1] = self.base[1] * derating(rho_down)
        self.gossip.set_processing_scale(float(derating(rho_cpu)))
        self.windows += 1
        worst = {"upload": float(rho_up.max(initial=0.0)), "download": float(rho_down.max(initial=0.0)),
                 "cpu": rho_cpu}
        if max(worst.values()) > RHO_CAP:
            self.saturated += 1
        for what, rho in worst.items():
            self.peak[what] = max(self.peak[what], rho)
        self.total["upload"] += float(rho_up.mean()) if nodes else 0.0
        self.total["download"] += float(rho_down.mean()) if nodes else 0.0
        self.total["cpu"] += rho_cpu

    def sent(self, batch: MessageBatch) -> None:
        """The sampled messages of a window, as they go to the kernel: their bytes, against
        which each node's uploads of them are measured."""
        self.sampled_bytes += int(batch.size.sum())

    def _measured_copies(self) -> np.ndarray | None:
        """Each node's upload copies per message as the sample measured them so far (the
        bytes of messages it uploaded over the bytes of the sampled messages sent): who
        serves whom under announce and fetch is the network's, not the mean's (a node many
        peers hear from first serves many); None before the sample has moved."""
        uploaded = self.gossip.nodes[k.N_UP_MSG_BYTES]
        if self.sampled_bytes <= 0 or not uploaded.any():
            return None
        return np.asarray(uploaded / self.sampled_bytes, dtype=np.float64)

    def detail(self) -> dict[str, object]:
        """For the ``relay_sample`` event: the load's mean over windows and nodes, its
        largest at any node, and the windows in which some node was saturated."""
        windows = max(self.windows, 1)
        return {"load": "derate", "windows": self.windows, "saturated_windows": self.saturated,
                "rho_cap": RHO_CAP,
                "mean": {what: round(total / windows, 6) for what, total in self.total.items()},
                "peak": {what: round(rho, 6) for what, rho in self.peak.items()}}
