"""The oracle's schedule: when it publishes which price.

Place in the pipeline: after the price paths, before the run. The oracle reads the true
price at every step and publishes a ``price`` message for an instrument when the price has
moved by ``deviation`` or more since its last update, or ``heartbeat`` has passed since it
(the common push-oracle rule, e.g. 0.5% or 1 h). The schedule depends only on the paths, so
it is known before the run and its messages are merged into the traffic (``with_oracle``, for
the market reactor's ``traffic``); a price is *known at a node* when its message is delivered
there and *on chain* when it commits.

The chain starts knowing every instrument's first price (step 0), as a deployed oracle
would have published it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from msgstorm.market.prices import PricePaths
from msgstorm.scenario.market import OracleSpec
from msgstorm.scenario.schema import MESSAGE_KINDS

__all__ = ["OracleUpdates", "oracle_updates", "with_oracle"]

PRICE = MESSAGE_KINDS.index("price")


@dataclass(frozen=True)
class OracleUpdates:
    """One row per price message, in time order (instrument order at equal times)."""

    t: np.ndarray  # int64: when it is published (a step's time)
    instrument: np.ndarray  # int32
    price: np.ndarray  # float64: the true price it carries
    step: np.ndarray  # int64: the step of that price

    def __len__(self) -> int:
        return len(self.t)


def oracle_updates(paths: PricePaths, spec: OracleSpec, until_ns: int) -> OracleUpdates:
    """The updates published at steps before ``until_ns`` (the traffic's end)."""
    resolution = paths.resolution_ns
    last_step = min(paths.steps, (until_ns - 1) // resolution)
    heartbeat_steps = max(1, -(-spec.heartbeat // resolution))
    rows: list[tuple[int, int]] = []  # (step, instrument)
    for instrument in range(paths.prices.shape[0]):
        prices = paths.prices[instrument].tolist()
        last_price, last = prices[0], 0
        for step in range(1, last_step + 1):
            price = prices[step]
            if abs(price / last_price - 1.0) >= spec.deviation or step - last >= heartbeat_steps:
                rows.append((step, instrument))
                last_price, last = price, step
    rows.sort()
    steps = np.array([row[0] for row in rows], dtype=np.int64)
    instruments = np.array([row[1] for row in rows], dtype=np.int32)
    return OracleUpdates(steps * np.int64(resolution), instruments,
                         paths.prices[instruments, steps] if rows else np.empty(0, dtype=np.float64), steps)


def with_oracle(batches: Iterable[Any], updates: OracleUpdates, spec: OracleSpec, node: int,
                host: Any) -> Iterator[Any]:
    """The traffic ``batches`` with the oracle's messages (its ``price`` messages from
    ``node``, as the host's agent ``spec.name``) merged in by time, traffic first at equal
    times: each batch takes the updates before the next batch's first time (the last, every
    one left); without traffic, one batch of them all (``host.batch``). The market reactor's
    ``traffic`` (``market/reactor.py``)."""
    agent = host.agent_index(spec.name)
    at = 0
    held = None
    for batch in batches:
        if held is not None:
            cut = int(np.searchsorted(updates.t, int(batch.t_intended[0]), side="left"))
            yield _merged(held, updates, at, cut, agent, node, spec)
            at = cut
        held = batch
    if held is not None:
        yield _merged(held, updates, at, len(updates), agent, node, spec)
    elif len(updates):
        yield host.batch(**_oracle_columns(updates, 0, len(updates), agent, node, spec))


def _oracle_columns(updates: OracleUpdates, first: int, end: int, agent: int, node: int,
                    spec: OracleSpec) -> dict[str, np.ndarray]:
    n = end - first
    return {"msg_id": np.zeros(n, dtype=np.int64), "t_intended": updates.t[first:end],
            "agent": np.full(n, agent, dtype=np.int32), "kind": np.full(n, PRICE, dtype=np.int8),
            "node": np.full(n, node, dtype=np.int32), "key": updates.instrument[first:end].astype(np.int64),
            "size": np.full(n, spec.size, dtype=np.int32), "fee": np.full(n, spec.fee, dtype=np.float64)}


def _merged(batch: Any, updates: OracleUpdates, first: int, end: int, agent: int, node: int,
            spec: OracleSpec) -> Any:
    if end <= first:
        return batch
    oracle = _oracle_columns(updates, first, end, agent, node, spec)
    columns = {name: np.concatenate([getattr(batch, name), oracle[name]]) for name in oracle}
    order = np.argsort(columns["t_intended"], kind="stable")
    return dataclasses.replace(batch, **{name: values[order] for name, values in columns.items()})
