"""The batch auction's book in the simulator: limit orders drawn for the order flow, cleared per batch.

Place in the pipeline: part of the market reactor (``market/reactor.py``), built only when
the scenario has ``[market.orders]`` and ``sequencer.policy = "batch_auction"`` (otherwise
nothing is drawn and no table is written). Before the run, as the simulator numbers each
traffic batch (``numbered``), every ``order`` message of a traffic agent gets a side, a
limit price around the instrument's true price when it is sent, and a quantity
(``AuctionOrdersSpec``), drawn with the portable draws of ``msgstorm.draws``, so the same
seed gives the same book on every CPU. During the run, ``committed`` asks the queue policy
when each order takes effect (``execution_rank``: its batch's number). At the end, each
batch's orders clear at one uniform price (``market/auction.clear``); the batch closed at
``(batch + 1) x interval``. Clearing after the run gives the same numbers as clearing at
each close: nothing in the network reads the result.

Written: ``auctions`` (one row per batch with an order: its clearing price, volume,
imbalance and the true price at its close) and ``auction_orders`` (one row per drawn
order: side, limit, quantity, the true price when sent, its batch, -1 if it never took
effect, and its fill).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm import draws
from msgstorm.market.auction import LimitOrder, clear
from msgstorm.market.prices import PricePaths
from msgstorm.sampling import sample_array
from msgstorm.scenario.market import AuctionOrdersSpec
from msgstorm.scenario.schema import MESSAGE_KINDS, BatchAuctionSpec, Scenario

__all__ = ["AuctionBook"]

ORDER = MESSAGE_KINDS.index("order")


class AuctionBook:
    """Limit orders of the order flow, grouped by batch as they take effect, cleared at the end."""

    def __init__(self, scenario: Scenario, spec: AuctionOrdersSpec, paths: PricePaths,
                 seed: np.random.SeedSequence) -> None:
        self.spec = spec
        self.paths = paths
        names = paths.names
        self.instrument = 0 if spec.instrument is None else names.index(spec.instrument)
        self.interval_ns = (scenario.sequencer.batch_auction or BatchAuctionSpec()).interval
        self.traffic_agents = len(scenario.agents)  # the scenario's agents come first in the agent index
        self.rng = np.random.default_rng(seed)
        # Per order, in the order drawn: its message, when sent, side, limit, quantity, true price.
        self.row_of: dict[int, int] = {}  # msg_id -> its row
        self.msg_id: list[int] = []
        self.t_sent: list[int] = []
        self.side: list[int] = []
        self.limit_price: list[float] = []
        self.quantity: list[float] = []
        self.true_price: list[float] = []
        self.batch: list[int] = []  # -1 until the order takes effect
        self.fill: list[float] = []

    def numbered(self, batch: Any) -> None:
        """Draw the limit order of every traffic ``order`` message of a numbered batch."""
        chosen = (batch.kind == ORDER) & (batch.agent < self.traffic_agents)
        n = int(np.count_nonzero(chosen))
        if n == 0:
            return
        spec = self.spec
        ids = batch.msg_id[chosen].tolist()
        times = batch.t_intended[chosen]
        sides = np.where(self.rng.random(n) < spec.buy_share, 1, -1)
        offset_bps = draws.normal(self.rng, spec.limit_offset_bps, spec.limit_spread_bps, n)
        quantities = sample_array(spec.quantity, self.rng, n)
        steps = np.minimum(np.maximum(times, 0) // self.paths.resolution_ns, self.paths.steps)
        true = self.paths.prices[self.instrument, steps]
        limits = true * (1.0 + sides * offset_bps / 1e4)
        first = len(self.msg_id)
        for i, msg in enumerate(ids):
            self.row_of[msg] = first + i
        self.msg_id.extend(ids)
        self.t_sent.extend(times.tolist())
        self.side.extend(sides.tolist())
        self.limit_price.extend(limits.tolist())
        self.quantity.extend(quantities.tolist())
        self.true_price.extend(true.tolist())
        self.batch.extend([-1] * n)
        self.fill.extend([0.0] * n)

    def committed(self, msg_ids: list[int], host: Any) -> None:
        """Note the batch of every committed order (the policy's ``execution_rank``)."""
        row_of = self.row_of
        for msg in msg_ids:
            row = row_of.get(msg)
            if row is not None:
                rank = host.execution_rank(msg)
                self.batch[row] = -1 if rank is None else rank

    def finish(self, host: Any) -> None:
        """Clear every batch at its uniform price and write ``auctions`` and ``auction_orders``."""
        members: dict[int, list[int]] = {}
        for row, number in enumerate(self.batch):
            if number >= 0:
                members.setdefault(number, []).append(row)
        rows: list[tuple[Any, ...]] = []
        name = self.paths.names[self.instrument]
        for number in sorted(members):
            # Rows in msg_id order: the clearing rule gives no place to any order, and this
            # order is the same whatever the arrival order was.
            batch_rows = sorted(members[number], key=lambda r: self.msg_id[r])
            orders = [LimitOrder(self.side[r], self.limit_price[r], self.quantity[r]) for r in batch_rows]
            result = clear(orders)
            for r, filled in zip(batch_rows, result.fills, strict=True):
                self.fill[r] = filled
            t_close = (number + 1) * self.interval_ns
            buys = [r for r in batch_rows if self.side[r] > 0]
            rows.append((number, t_close, name, len(batch_rows), len(buys),
                         float("nan") if result.price is None else result.price, result.volume,
                         result.imbalance, self.paths.at(self.instrument, t_close)))
        if rows:
            columns = list(zip(*rows, strict=True))
            host.append("auctions", dict(zip(
                ("batch", "t", "instrument", "orders", "buys", "price", "volume", "imbalance", "true_price"),
                (list(column) for column in columns), strict=True)))
        if self.msg_id:
            host.append("auction_orders", {
                "msg_id": self.msg_id, "t": self.t_sent, "instrument": [name] * len(self.msg_id),
                "side": self.side, "limit_price": self.limit_price, "quantity": self.quantity,
                "true_price": self.true_price, "batch": self.batch, "fill": self.fill})
