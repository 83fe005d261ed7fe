"""Ordering fairness: receive-order inversions and what front-runners took.

Place in the pipeline: one analysis step, reading the history's ``deliveries`` (each node's
receive time of each message), the messages' sequence numbers and the ``frontruns`` table,
so ``msgstorm report`` gives the same numbers as the run. ``fairness_summary`` is
summary.json's ``fairness``: absent for a run with neither front-runners nor an ordering
protocol (a queue policy other than ``fifo`` and ``fee_priority``), so such runs' summaries
are unchanged.

- ``inversions``: pairs of committed messages (a, b) where at least a ``gamma`` share of
  the nodes (``sequencer.fair_order.gamma``, 1 by default: every node; of the reporting
  nodes ``sequencer.fair_order.nodes`` when set, as the policy counts) received a before b,
  and b was sequenced before a, except pairs that took effect at once (the same
  ``execution_rank`` in the ``ranks`` table: one batch of a batch auction, a commitment and
  its reveal), which are ties. Only messages with a receive time at every such node count (the
  deliveries may be sampled, ``history.delivery_sample``), and only pairs at most
  ``INVERSION_SPAN`` sequence numbers apart (a fair-ordering violation is local; the bound
  keeps the count linear in the run's length). ``pairs`` is how many pairs were compared,
  ``inversion_rate`` = inversions / pairs.
- ``front_run_attempts``: races a front-runner started (``frontruns`` rows);
  ``front_run_successes``: those its order won (took effect before the victim's);
  ``extracted_value``: what the won races earned (the market's price-impact model).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from msgstorm.analysis._common import rounded
from msgstorm.history.reader import History

__all__ = ["INVERSION_SPAN", "PLAIN_POLICIES", "count_inversions", "fairness_summary"]

INVERSION_SPAN = 1000
PLAIN_POLICIES = ("fifo", "fee_priority")


def count_inversions(received_ns: np.ndarray, gamma: float, span: int = INVERSION_SPAN,
                     ranks: np.ndarray | None = None) -> tuple[int, int]:
    """``received_ns[i, node]``: message i's receive time at each node, rows in sequence
    order. Returns (inversions, pairs compared): pairs i < j at most ``span`` apart where at
    least ``ceil(gamma x nodes)`` nodes received j strictly before i, and, given each row's
    execution rank (``ranks``), the two did not take effect at once (equal ranks: a tie)."""
    n, nodes = received_ns.shape
    need = max(1, math.ceil(gamma * nodes - 1e-9))
    inversions = pairs = 0
    for offset in range(1, min(span, n - 1) + 1):
        earlier, later = received_ns[:-offset], received_ns[offset:]
        inverted = np.count_nonzero(later < earlier, axis=1) >= need
        if ranks is not None:
            inverted &= ranks[:-offset] != ranks[offset:]
        inversions += int(np.count_nonzero(inverted))
        pairs += n - offset
    return inversions, pairs


def _gamma(scenario: dict[str, Any]) -> float:
    fair = (scenario.get("sequencer") or {}).get("fair_order") or {}
    return float(fair.get("gamma", 1.0))


def fairness_summary(history: History) -> dict[str, Any] | None:
    scenario = history.scenario
    policy = (scenario.get("sequencer") or {}).get("policy", "fifo")
    runners = ((scenario.get("market") or {}).get("frontrunners")) or []
    if policy in PLAIN_POLICIES and not runners:
        return None
    gamma = _gamma(scenario)
    received, ranks = _receive_matrix(history, _reporting_nodes(scenario))
    inversions, pairs = count_inversions(received, gamma, ranks=ranks)
    races = history.table("frontruns")
    successes, value = 0, 0.0
    if races.num_rows:
        outcome, outcomes = history.codes("frontruns", "outcome")
        won = outcome == outcomes.index("won") if "won" in outcomes else np.zeros(outcome.size, dtype=np.bool_)
        successes = int(won.sum())
        value = float(races["value"].to_numpy()[won].sum())
    return {
        "policy": policy,
        "gamma": gamma,
        "messages_compared": int(received.shape[0]),
        "pairs": pairs,
        "inversions": inversions,
        "inversion_rate": rounded(inversions / pairs, 6) if pairs else None,
        "front_run_attempts": races.num_rows,
        "front_run_successes": successes,
        "extracted_value": rounded(value, 2),
    }


def _reporting_nodes(scenario: dict[str, Any]) -> list[str] | None:
    fair = (scenario.get("sequencer") or {}).get("fair_order") or {}
    nodes = fair.get("nodes")
    return None if nodes is None else list(nodes)


def _receive_matrix(history: History, reporting: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Receive times [committed messages with a row at every node (of ``reporting``, when
    given), nodes], rows in sequence order; and each row's execution rank when the history
    has a ``ranks`` table (a policy with its own rule), else None."""
    names_all = [node["name"] for node in history.nodes]
    columns = list(range(len(names_all))) if reporting is None else [names_all.index(n) for n in reporting]
    status, statuses = history.codes("messages", "status")
    committed = status == statuses.index("committed") if "committed" in statuses else np.zeros(status.size, dtype=np.bool_)
    if not columns or not committed.any():
        return np.zeros((0, max(len(columns), 1)), dtype=np.int64), None
    messages = history.columns("messages", ["msg_id", "seq_no"])
    deliveries = history.columns("deliveries", ["msg_id", "t_delivered"])
    node_code, node_names = history.codes("deliveries", "node")
    # Each delivery's node as its index among the run's nodes (-1: a name the run has not).
    column_of = np.array([names_all.index(n) if n in names_all else -1 for n in node_names] or [-1], dtype=np.int64)
    node = column_of[node_code]
    msg = deliveries["msg_id"].to_numpy()
    t = deliveries["t_delivered"].to_numpy()
    ids = messages["msg_id"].to_numpy()[committed]
    ids = ids[np.argsort(messages["seq_no"].to_numpy(zero_copy_only=False)[committed], kind="stable")]  # sequence order
    by_id = np.argsort(ids, kind="stable")
    pos = np.minimum(np.searchsorted(ids[by_id], msg), len(ids) - 1)
    known = (ids[by_id][pos] == msg) & (node >= 0)
    rows = by_id[pos[known]]
    matrix = np.full((len(ids), len(names_all)), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(matrix, (rows, node[known].astype(np.int64)), t[known])  # a node's first receipt
    matrix = matrix[:, columns]
    complete = np.all(matrix < np.iinfo(np.int64).max, axis=1)
    ranks = None
    table = history.table("ranks")
    if table.num_rows:
        ranked_ids, ranked = table["msg_id"].to_numpy(), table["rank"].to_numpy()
        order = np.argsort(ranked_ids, kind="stable")
        ranked_ids, ranked = ranked_ids[order], ranked[order]
        wanted = ids[complete]
        at = np.minimum(np.searchsorted(ranked_ids, wanted), len(ranked_ids) - 1)
        ranks = np.where(ranked_ids[at] == wanted, ranked[at], -1)
        never = np.flatnonzero(ranks < 0)
        ranks[never] = -2 - never  # messages that never took effect tie with none
    return matrix[complete], ranks
