"""A byzantine oracle: its schedule of ``price`` messages changed within ``oracle`` faults.

Place in the pipeline: after ``market/oracle.py`` (the honest schedule), before the run.
Like the honest schedule, the attacked one depends only on the price paths and the faults,
so it is known before the run and merged into the traffic; the chain and the keepers then
act on what the messages carry. Each ``oracle`` fault (``scenario/schema.py``) acts on the
updates due within its window, of its instrument (every one when not given):

- ``stale``: none of them is published; at the window's end the oracle publishes the
  instrument's price then (it comes back, as a heartbeat would), if it had one due;
- ``delay``: each is published ``delay`` late, carrying the price of when it was due;
- ``manipulate``: each carries the true price moved by ``band`` (down: ``x (1 - band)``,
  up: ``x (1 + band)``): a lie within a band, the kind a sanity check of the deviation
  between updates lets through.

``OracleUpdates.step`` stays the step of the true price behind an update, so the history's
``oracle`` table keeps the true price and its time, and the market's staleness and delay
split show what the attack cost.
"""

from __future__ import annotations

import numpy as np

from msgstorm.market.oracle import OracleUpdates
from msgstorm.market.prices import PricePaths
from msgstorm.scenario.schema import OracleFault

__all__ = ["attacked_updates"]


def attacked_updates(updates: OracleUpdates, paths: PricePaths, faults: list[OracleFault]) -> OracleUpdates:
    """The schedule with every fault applied, in time order (the instrument's at ties)."""
    t, instrument = updates.t.copy(), updates.instrument.copy()
    price, step = updates.price.copy(), updates.step.copy()
    keep = np.ones(len(t), dtype=bool)
    extra: list[tuple[int, int, float, int]] = []
    resolution = paths.resolution_ns
    for fault in faults:
        which = (paths.names.index(fault.instrument) if fault.instrument is not None else None)
        end = fault.at + fault.duration
        hit = (updates.t >= fault.at) & (updates.t < end)
        if which is not None:
            hit &= updates.instrument == which
        if fault.mode == "stale":
            keep &= ~hit
            for i in sorted(set(updates.instrument[hit].tolist())):
                at_step = min(paths.steps, -(-end // resolution))
                extra.append((at_step * resolution, i, float(paths.prices[i, at_step]), at_step))
        elif fault.mode == "delay":
            assert fault.delay is not None
            t[hit] += fault.delay
        else:
            assert fault.band is not None
            price[hit] *= (1.0 - fault.band) if fault.bias == "down" else (1.0 + fault.band)
    if extra:
        t = np.concatenate([t[keep], np.array([row[0] for row in extra], dtype=np.int64)])
        instrument = np.concatenate([instrument[keep], np.array([row[1] for row in extra], dtype=np.int32)])
        price = np.concatenate([price[keep], np.array([row[2] for row in extra], dtype=np.float64)])
        step = np.concatenate([step[keep], np.array([row[3] for row in extra], dtype=np.int64)])
    else:
        t, instrument, price, step = t[keep], instrument[keep], price[keep], step[keep]
    order = np.lexsort((instrument, t))
    return OracleUpdates(t[order], instrument[order], price[order], step[order])
