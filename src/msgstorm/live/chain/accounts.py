"""How many sending accounts a chain run's schedule needs: one per transaction in the pool.

Place in the pipeline: beside ``live/chain/sending.py``, whose senders take an idle dev
account for each transaction (``live.anvil.accounts`` of them) and fall back to a busy one
when none is idle (anvil 1.7's fee-ordered pool then drops a later, higher-fee transaction of
the same sender). ``traffic_accounts_needed`` is the most transactions of the scenario's own
traffic the pool can hold at once if every block is filled to ``blocks.max_gas``: the
schedule's peak backlog (its messages, the run's seed, per block interval, against a block's
room at each transaction's gas) plus one interval's arrivals, those sent since the last
block. A shipped example is sized by it (``tests/test_live_anvil.py``), and the run's
``client_error`` for a busy sender names it. The market's messages have accounts of their
own (``live.anvil.market_accounts``) and are not counted.
"""

from __future__ import annotations

import numpy as np

from msgstorm.live.chain.calldata import gas_cap
from msgstorm.scenario.schema import MESSAGE_KINDS, Scenario
from msgstorm.traffic.generate import generate_traffic

__all__ = ["traffic_accounts_needed"]


def traffic_accounts_needed(scenario: Scenario) -> int:
    """The scenario's traffic's peak pool backlog, plus one block interval's arrivals."""
    interval = scenario.live.anvil.block_time or scenario.blocks.interval
    blocks = int(scenario.run.duration // interval) + 1
    gas_of = {MESSAGE_KINDS.index(kind): gas for kind, gas in scenario.blocks.gas.items()}
    arrivals = np.zeros(blocks, dtype=np.int64)
    gas = np.zeros(blocks, dtype=np.int64)
    seed = np.random.SeedSequence(scenario.run.seed).spawn(2)[0]  # the traffic's, as ``runner`` draws it
    for batch in generate_traffic(scenario, seed, window_ns=scenario.run.window):
        block = np.minimum(batch.t_intended // interval, blocks - 1).astype(np.int64)
        each = np.array([gas_of.get(int(k)) or gas_cap(int(s)) for k, s in zip(batch.kind, batch.size, strict=True)],
                        dtype=np.int64)
        np.add.at(arrivals, block, 1)
        np.add.at(gas, block, each)
    if not arrivals.any():
        return 0
    max_gas = scenario.blocks.max_gas
    if max_gas is None:
        return int(arrivals.max())
    mean_gas = float(gas.sum()) / float(arrivals.sum())
    room = max(int(max_gas // mean_gas), 1)  # transactions a full block holds
    backlog = peak = 0
    for k in range(blocks):
        peak = max(peak, backlog + int(arrivals[k]))  # in the pool as block k is built
        backlog = max(backlog + int(arrivals[k]) - room, 0)
    return peak
