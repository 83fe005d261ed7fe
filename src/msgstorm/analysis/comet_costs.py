"""What the load cost a live validator network, from the validators' own counters.

Place in the pipeline: ``msgstorm calibrate`` on a live ``cometbft`` run asks
**comet_costs(history)**; it reads the ``validator_counters`` events (one a validator,
written before they stop: ``live/chain/comet_counters.py``) and nothing else, so a run is
re-read offline like every analysis. Each figure is the median over the validators of:

- ``check_tx_ns``: the time of one CheckTx (the ABCI ``check_tx`` calls' total over their
  count). A recheck is a CheckTx of a transaction the mempool still holds after a commit,
  so it is also the cost of one recheck (``recheck_per_tx`` of the simulator's rule);
- ``rechecks_per_height``: the mempool's rechecks (``mempool_recheck_times``) per height;
- ``finalize_per_tx_ns`` and ``process_proposal_per_tx_ns``: the ``finalize_block`` and
  ``process_proposal`` calls' total time over the transactions committed (a fixed part of
  each call included, so an upper bound on the cost a transaction);
- ``commit_ns``: one ABCI ``commit``;
- ``copies_per_tx``: the mempool's gossip: bytes of ``mempool_Txs`` messages received over
  the bytes of the transactions the mempool took in (each once): how many copies of a
  transaction a node receives; ``copies_per_peer`` that over its peers (the other
  validators): the share of its peers that send it each one;
- ``part_bytes_per_block_byte``: bytes of ``BlockPart`` messages received over the bytes of
  the transactions committed: how many times a node receives a block's bytes;
- ``step_ms``: the mean time in each consensus step (``consensus_step_duration_seconds``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from msgstorm.analysis._common import events_of
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["CometCosts", "comet_costs", "costs_lines", "costs_of"]

_TIMING = 'abci_connection_method_timing_seconds_{}{{method="{}",type="{}"}}'


@dataclass(frozen=True)
class CometCosts:
    """The load's costs counted by the validators (medians over them; the module docstring)."""

    validators: int
    heights: int
    transactions: int
    check_tx_ns: float
    rechecks_per_height: float
    finalize_per_tx_ns: float
    process_proposal_per_tx_ns: float
    commit_ns: float
    copies_per_tx: float
    copies_per_peer: float
    part_bytes_per_block_byte: float
    step_ms: dict[str, float] = field(default_factory=dict)


def _method(counters: dict[str, float], method: str) -> tuple[float, float]:
    """(seconds, calls) of an ABCI method over its call types."""
    seconds = calls = 0.0
    for kind in ("sync", "async"):
        seconds += counters.get(_TIMING.format("sum", method, kind), 0.0)
        calls += counters.get(_TIMING.format("count", method, kind), 0.0)
    return seconds, calls


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom > 0 else 0.0


def costs_of(counters: dict[str, dict[str, float]]) -> CometCosts | None:
    """The costs from each validator's counters (name -> series), None when none counted a
    committed transaction."""
    peers = max(1, len(counters) - 1)
    rows: list[dict[str, float]] = []
    steps: dict[str, list[float]] = {}
    for series in counters.values():
        txs = series.get("consensus_total_txs", 0.0)
        heights = series.get("consensus_latest_block_height", 0.0)
        if txs <= 0 or heights <= 0:
            continue
        check_s, check_calls = _method(series, "check_tx")
        finalize_s, _ = _method(series, "finalize_block")
        process_s, _ = _method(series, "process_proposal")
        commit_s, commits = _method(series, "commit")
        taken_bytes = series.get("mempool_tx_size_bytes_sum", 0.0)
        received = series.get('p2p_message_receive_bytes_total{message_type="mempool_Txs"}', 0.0)
        parts = series.get('p2p_message_receive_bytes_total{message_type="consensus_BlockPart"}', 0.0)
        tx_bytes = _ratio(taken_bytes, series.get("mempool_tx_size_bytes_count", 0.0))
        copies = _ratio(received, taken_bytes)
        rows.append({"heights": heights, "txs": txs, "check": _ratio(check_s, check_calls) * 1e9,
                     "rechecks": _ratio(series.get("mempool_recheck_times", 0.0), heights),
                     "finalize": finalize_s / txs * 1e9, "process": process_s / txs * 1e9,
                     "commit": _ratio(commit_s, commits) * 1e9, "copies": copies, "per_peer": copies / peers,
                     "parts": _ratio(parts, txs * tx_bytes)})
        for key, value in series.items():
            if key.startswith("consensus_step_duration_seconds_sum{"):
                step = key.split('step="', 1)[1].rstrip('"}')
                count = series.get(key.replace("_sum{", "_count{"), 0.0)
                if count > 0:
                    steps.setdefault(step, []).append(value / count * 1e3)
    if not rows:
        return None

    def mid(name: str) -> float:
        return float(median(row[name] for row in rows))

    return CometCosts(validators=len(counters), heights=int(mid("heights")), transactions=int(mid("txs")),
                      check_tx_ns=mid("check"), rechecks_per_height=mid("rechecks"),
                      finalize_per_tx_ns=mid("finalize"), process_proposal_per_tx_ns=mid("process"),
                      commit_ns=mid("commit"), copies_per_tx=mid("copies"), copies_per_peer=mid("per_peer"),
                      part_bytes_per_block_byte=mid("parts"),
                      step_ms={step: float(median(values)) for step, values in sorted(steps.items())})


def comet_costs(history: History) -> CometCosts | None:
    """The costs of a live validator run (None: its history holds no validator's counters)."""
    found = events_of(history, EventKind.VALIDATOR_COUNTERS)
    if not found.rows.size:
        return None
    nodes = found.events.column("node").to_pylist()
    details = found.events.column("detail").to_pylist()
    counters: dict[str, dict[str, float]] = {}
    for row in found.rows.tolist():
        detail: Any = details[row]
        counters[str(nodes[row])] = json.loads(detail) if isinstance(detail, str) else dict(detail or {})
    return costs_of(counters)


def costs_lines(costs: CometCosts) -> list[str]:
    """What ``msgstorm calibrate`` prints of them."""
    steps = ", ".join(f"{step} {ms:,.0f}" for step, ms in costs.step_ms.items())
    return [
        f"the validators' own counters ({costs.validators} validators, {costs.heights} heights, "
        f"{costs.transactions:,} transactions; medians over them):",
        f"  CheckTx (and a recheck) {costs.check_tx_ns / 1e3:,.2f} us; rechecks a height "
        f"{costs.rechecks_per_height:,.1f}",
        f"  FinalizeBlock {costs.finalize_per_tx_ns / 1e3:,.2f} us a transaction, ProcessProposal "
        f"{costs.process_proposal_per_tx_ns / 1e3:,.2f} us a transaction, Commit {costs.commit_ns / 1e6:,.2f} ms",
        f"  mempool gossip: {costs.copies_per_tx:,.2f} copies of each transaction received "
        f"({costs.copies_per_peer:.0%} of the peers send each); block parts: each block's bytes received "
        f"{costs.part_bytes_per_block_byte:,.2f} times",
        f"  consensus steps, mean ms: {steps}",
    ]
