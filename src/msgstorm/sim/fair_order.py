"""The order in which a node serves its peers: a seeded permutation per node and item.

Place in the pipeline: inside the simulator. When a node forwards an item, its copies
leave one after another on its uplink, so the peer served first has it first. Serving peers
in node-index order would favour the nodes listed first (and so the regions listed first in
``network.regions``); the gossip kernel (``sim/kernel.py``) instead serves them in the order
``peer_order`` draws, different for every (node, item) and the same on every run of a seed.

Why written by hand: the order is drawn inside the compiled kernel, for every forward, from
integers only (SplitMix64, Steele, Lea and Flood 2014, the generator Java's
``SplittableRandom`` uses), so it is the same on every CPU and costs no draws from the
link streams. ``tests/test_sim_fair_order.py`` checks that every position is equally likely
for every peer.
"""

from __future__ import annotations

import numpy as np

from msgstorm.jit import borrowing, nb

__all__ = ["order_key", "peer_order"]

_GAMMA = 0x9E3779B97F4A7C15


@nb.njit(cache=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    """SplitMix64's finaliser: a bijection of uint64 whose output bits all depend on every input bit."""
    z = (z ^ (z >> nb.uint64(30))) * nb.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> nb.uint64(27))) * nb.uint64(0x94D049BB133111EB)
    return z ^ (z >> nb.uint64(31))


@nb.njit(cache=True, inline="always")
def order_key(seed: int, node: int, item: int, kind: int) -> int:
    """The state a forward of ``item`` (of ``kind``) by ``node`` draws its order from (its
    64 bits as an int64)."""
    h = _mix(nb.uint64(seed) + nb.uint64(_GAMMA) * nb.uint64(node + 1))
    return int(nb.int64(_mix(h + nb.uint64(_GAMMA) * nb.uint64((item << 2) | kind))))


@borrowing()
def peer_order(key: int, first: int, count: int, order: np.ndarray) -> None:
    """Write a permutation of ``first`` .. ``first + count - 1`` to ``order[:count]``
    (Fisher-Yates, each swap drawn from the SplitMix64 stream at ``key``)."""
    for i in range(count):
        order[i] = first + i
    state = nb.uint64(key)
    for i in range(count - 1, 0, -1):
        state = state + nb.uint64(_GAMMA)
        j = int(_mix(state) % nb.uint64(i + 1))
        swap = order[i]
        order[i] = order[j]
        order[j] = swap
