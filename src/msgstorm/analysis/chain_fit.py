"""The chain's rules read from a chain node's blocks: the twin of an EVM node.

Place in the pipeline: ``analysis/calibrate.py`` asks **fit_chain(history, ...)** when the
run's blocks carry a gas limit (the ``anvil`` target writes one per ``block_produced``
event: gas used, gas limit, base fee in wei, msgstorm's transactions); the ``ChainFit`` it
returns makes the twin a simulated EIP-1559 sequencer (``report/twin.py``) instead of the
one-queue model, and ``base_fee_path`` compares the twin's base fees with the node's after
``--check``. Like every analysis it reads only the history.

What is fitted, from the blocks the node made while the low-load steps were offered (so the
knee the twin finds is a prediction: a block-limited chain's knee is set by gas limit / gas
per transaction / block interval, and every block shows all three):

- the block interval: the median time between consecutive heads (said; the twin's blocks
  come at the node's pace over every step the knee credited, ``analysis/node_pace.py``);
- the gas limit: the most common one of those blocks;
- gas per message kind: least squares of each block's gas used on how many of msgstorm's
  transactions of each kind it held (blocks holding only msgstorm's); one kind: the mean;
- the pool's order: the scenario's ``sequencer.policy``, the order the node was started with;
- the base-fee rule: ``b[n+1] / b[n] - 1 = max_change * (used[n] / (target * limit) - 1)``
  is a straight line in the block's use, so least squares over consecutive blocks gives
  ``max_change`` (minus the intercept) and ``target`` (``max_change`` / the slope); the base fee
  of the run's first block is the twin's starting fee, and one wei its floor.

``recomputed_error`` then recomputes every block's base fee of the whole run from the block
before it with the fitted rule (``rules/base_fee.py``, the simulator's own rule): its
largest relative error says whether the rule is the node's.

The twin's sequencer stands for the node's pool: one worker handing transactions to the
next block at the chain's own rate (the block interval times the mean gas of a transaction
over the gas limit), in the pool's order, so a backlog waits in the pool's order, not in
the order it arrived, and each block holds what the chain can hold. A transaction whose fee
cap is under the base fee is refused (``underpriced = "reject"``): the node refuses it on
arrival, and one the base fee overtakes in the pool is never included while it stays so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from msgstorm.analysis._common import events_of
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.rules.base_fee import next_base_fee

__all__ = ["BaseFeePath", "BaseFeeRule", "ChainBlocks", "ChainFit", "base_fee_path", "chain_blocks", "fit_chain"]

# Fewer consecutive block pairs than this do not fit a line of two unknowns with one left over.
MIN_FEE_PAIRS = 3
_DEFAULT_UNIT_WEI = 1_000_000_000


@dataclass(frozen=True)
class ChainBlocks:
    """A chain node's blocks as the history holds them, in height order."""

    t: np.ndarray  # int64 ns: the head's arrival
    height: np.ndarray  # int64
    txs: np.ndarray  # int64: every transaction in the block
    ours: np.ndarray  # int64: msgstorm's among them
    gas_used: np.ndarray  # int64
    gas_limit: np.ndarray  # int64
    base_fee_wei: np.ndarray  # int64: the base fee in force in the block

    @property
    def count(self) -> int:
        return int(self.t.shape[0])


def chain_blocks(history: History) -> ChainBlocks | None:
    """The blocks of a chain node's run, or None when the history's blocks carry no gas
    limit (a simulated chain, a broker)."""
    rows = events_of(history, EventKind.BLOCK_PRODUCED)
    fields: list[tuple[int, int, int, int, int, int, int]] = []
    for t, txs, number, detail in zip(rows.t.tolist(), rows.value.tolist(), rows.heights(), rows.column("detail")):
        facts = json.loads(detail) if detail else {}
        if number is None or "gas_limit" not in facts or "base_fee_wei" not in facts:
            continue
        fields.append((int(t), int(number), int(txs), int(facts.get("ours", 0)), int(facts["gas"]),
                       int(facts["gas_limit"]), int(facts["base_fee_wei"])))
    if not fields:
        return None
    fields.sort(key=lambda row: row[1])
    columns = [np.asarray(column, dtype=np.int64) for column in zip(*fields)]
    return ChainBlocks(*columns)


@dataclass(frozen=True)
class BaseFeeRule:
    """The fitted EIP-1559 rule: ``target`` share of the gas limit, ``max_change`` a block."""

    target: float
    max_change: float
    pairs: int  # consecutive block pairs it was fitted on
    # Over every consecutive pair of the run: the largest relative error of the base fee the
    # rule gives from the block before, and the pairs it was checked on.
    recomputed_error: float
    recomputed_pairs: int


@dataclass(frozen=True)
class ChainFit:
    """What the twin of a chain node is made of."""

    measured_interval_ns: float  # the median time between consecutive heads
    gas_limit: int
    gas_per_kind: dict[str, int]
    mean_gas: float  # of msgstorm's transactions in the fitted blocks
    policy: str  # the pool's order: "fee_priority" or "fifo"
    rule: BaseFeeRule
    initial_base_fee: float  # fee units: the base fee in force in the run's first block
    min_base_fee: float  # fee units: one wei
    fee_unit_wei: int
    blocks: int  # blocks the fit read
    fullest_block: int  # the most of msgstorm's transactions one block of the run held

    @property
    def txs_per_block(self) -> float:
        return self.gas_limit / self.mean_gas

    @property
    def capacity_per_s(self) -> float:
        """Transactions a second the chain holds: gas limit / gas per transaction / interval."""
        return self.txs_per_block * 1e9 / self.measured_interval_ns

    def service_ns(self, interval_ns: int) -> int:
        """The twin's pool worker with blocks every ``interval_ns``: one transaction's share
        of a block's time."""
        return max(1, round(interval_ns * self.mean_gas / self.gas_limit))


def fit_chain(history: History, start_ns: int, end_ns: int) -> ChainFit | None:
    """The chain's rules from the blocks whose heads arrived in ``[start_ns, end_ns)`` (the
    low-load steps); None when the history holds no chain node's blocks. ``ValueError`` when
    those blocks cannot give a fit (the message says why)."""
    blocks = chain_blocks(history)
    if blocks is None:
        return None
    inside = (blocks.t >= start_ns) & (blocks.t < end_ns)
    if int(inside.sum()) < MIN_FEE_PAIRS + 1:
        raise ValueError(f"only {int(inside.sum())} block(s) arrived during the low-load steps; the chain fit needs "
                         f"at least {MIN_FEE_PAIRS + 1}: use longer steps")
    chosen = np.flatnonzero(inside)
    consecutive = chosen[:-1][np.diff(blocks.height[chosen]) == 1]
    if consecutive.size < MIN_FEE_PAIRS:
        raise ValueError("the low-load steps' blocks have too few consecutive heights to fit the base-fee rule")
    measured_interval = float(np.median(blocks.t[consecutive + 1] - blocks.t[consecutive]))
    limits, counts = np.unique(blocks.gas_limit[chosen], return_counts=True)
    gas_limit = int(limits[np.argmax(counts)])
    gas_per_kind, mean_gas = _gas_per_kind(history, blocks, chosen)
    rule = _fee_rule(blocks, consecutive)
    scenario = history.scenario
    unit = int(((scenario.get("live") or {}).get("anvil") or {}).get("fee_unit_wei") or _DEFAULT_UNIT_WEI)
    first = int(np.flatnonzero(blocks.t >= 0)[0]) if np.any(blocks.t >= 0) else 0
    return ChainFit(
        measured_interval_ns=measured_interval,
        gas_limit=gas_limit, gas_per_kind=gas_per_kind, mean_gas=mean_gas,
        policy=str((scenario.get("sequencer") or {}).get("policy") or "fifo"), rule=rule,
        initial_base_fee=int(blocks.base_fee_wei[first]) / unit, min_base_fee=1 / unit, fee_unit_wei=unit,
        blocks=int(chosen.size), fullest_block=int(blocks.ours.max()))


def _gas_per_kind(history: History, blocks: ChainBlocks, chosen: np.ndarray) -> tuple[dict[str, int], float]:
    """Gas per message kind by least squares over the blocks holding only msgstorm's
    transactions (gas used = sum over kinds of count x gas), and the mean gas of one."""
    block_of, present = history.ints("messages", "block")
    codes, kinds = history.codes("messages", "kind")
    only_ours = chosen[(blocks.txs[chosen] == blocks.ours[chosen]) & (blocks.ours[chosen] > 0)]
    if only_ours.size == 0:
        raise ValueError("no block of the low-load steps held only msgstorm's transactions: the gas of one is unknown")
    row_of = {int(height): row for row, height in enumerate(blocks.height[only_ours].tolist())}
    counts = np.zeros((only_ours.size, len(kinds)), dtype=np.float64)
    for block, code in zip(block_of[present].tolist(), codes[present].tolist()):
        row = row_of.get(block)
        if row is not None:
            counts[row, code] += 1
    used = blocks.gas_used[only_ours].astype(np.float64)
    seen = np.flatnonzero(counts.sum(axis=0) > 0)
    gas, *_ = np.linalg.lstsq(counts[:, seen], used, rcond=None)
    per_kind = {str(kinds[code]): max(1, round(float(g))) for code, g in zip(seen.tolist(), gas.tolist())}
    return per_kind, float(used.sum() / counts.sum())


def _fee_rule(blocks: ChainBlocks, pairs: np.ndarray) -> BaseFeeRule:
    """The straight line of the base fee's change on the block's use, over ``pairs`` (each
    a block followed by the next height), and that rule checked on every pair of the run."""
    pairs = pairs[blocks.base_fee_wei[pairs] > 0]  # a zero base fee (a chain without one) has no ratio
    if pairs.size < MIN_FEE_PAIRS:
        raise ValueError("the low-load steps' blocks have too few base fees above zero to fit the base-fee rule")
    use = blocks.gas_used[pairs] / blocks.gas_limit[pairs]
    change = blocks.base_fee_wei[pairs + 1] / blocks.base_fee_wei[pairs] - 1.0
    if float(np.ptp(use)) <= 0:
        raise ValueError("every low-load block was equally full: the base-fee rule's slope is unknown")
    slope, intercept = np.polyfit(use, change, 1)
    max_change = float(-intercept)
    if not (max_change > 0 and slope > 0):
        raise ValueError(f"the base fee does not rise with the block's use (slope {slope:g}, intercept "
                         f"{intercept:g}): not an EIP-1559 rule")
    target = max_change / float(slope)
    every = np.flatnonzero(np.diff(blocks.height) == 1)
    worst = 0.0
    for n in every.tolist():
        known = float(blocks.base_fee_wei[n + 1])
        if known <= 0:
            continue
        fee = next_base_fee(float(blocks.base_fee_wei[n]), float(blocks.gas_used[n]), float(blocks.gas_limit[n]),
                            target, max_change, 1.0)
        worst = max(worst, abs(fee - known) / known)
    return BaseFeeRule(target=target, max_change=max_change, pairs=int(pairs.size),
                       recomputed_error=worst, recomputed_pairs=int(every.size))


@dataclass(frozen=True)
class BaseFeePath:
    """The twin's base fee against the node's, block by block from the run's start."""

    blocks: int  # compared (the blocks both made before the ramp's end)
    max_relative_error: float
    at_block: int  # 1-based: where the largest error was
    measured_last: float  # fee units, the last compared block's
    twin_last: float


def base_fee_path(measured: History, twin: History, initial_base_fee: float, fee_unit_wei: int,
                  end_ns: int) -> BaseFeePath | None:
    """Block k after the run's start (k = 1, 2, ...) in both: the node's base fee in force in
    it against the twin's (its initial fee in block 1; its ``base_fee`` event of height k - 1,
    which a simulated chain writes after block k - 1, in block k). None when either has none."""
    blocks = chain_blocks(measured)
    if blocks is None:
        return None
    keep = (blocks.t >= 0) & (blocks.t < end_ns)
    node = blocks.base_fee_wei[keep] / fee_unit_wei
    rows = events_of(twin, EventKind.BASE_FEE)
    after: dict[int, float] = {}
    for t, value, height in zip(rows.t.tolist(), rows.value.tolist(), rows.heights()):
        if height is not None and t < end_ns and not math.isnan(value):
            after[int(height)] = float(value)
    twin_fees = [initial_base_fee] + [after[k] for k in range(1, len(after) + 1) if k in after]
    count = min(node.size, len(twin_fees))
    if count == 0:
        return None
    errors = [abs(twin_fees[k] - float(node[k])) / float(node[k]) for k in range(count)]
    worst = int(np.argmax(errors))
    return BaseFeePath(blocks=count, max_relative_error=float(errors[worst]), at_block=worst + 1,
                       measured_last=float(node[count - 1]), twin_last=float(twin_fees[count - 1]))
