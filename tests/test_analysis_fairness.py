"""Ordering fairness: inversions of receive order, ties within a batch, the reporting nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from msgstorm.analysis.fairness import count_inversions
from msgstorm.scenario import load_scenario

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "front-running.toml"
SHORT = ['run.duration="4s"', 'run.drain="3s"']


def test_a_pair_sequenced_against_every_nodes_receive_order_is_an_inversion_unless_it_is_a_tie() -> None:
    # Rows in sequence order; every node received row 1 before row 0.
    received = np.array([[5, 5, 5], [1, 2, 3], [9, 9, 9]], dtype=np.int64)
    assert count_inversions(received, 1.0) == (1, 3)
    # Rows 0 and 1 took effect at once (one batch): a tie, not an inversion.
    assert count_inversions(received, 1.0, ranks=np.array([0, 0, 1])) == (0, 3)
    assert count_inversions(received, 1.0, ranks=np.array([0, 1, 2])) == (1, 3)
    # Two of three nodes suffice at gamma 2/3.
    two = np.array([[5, 5, 1], [1, 2, 3]], dtype=np.int64)
    assert count_inversions(two, 1.0) == (0, 1) and count_inversions(two, 2 / 3) == (1, 1)


def test_a_batch_auctions_shuffle_within_a_batch_is_no_inversion(run_scenario) -> None:
    result = run_scenario(load_scenario(EXAMPLE, [*SHORT, 'sequencer.policy="batch_auction"']))
    ranks = result.history.table("ranks")
    messages = result.history.messages
    committed = messages.filter(pc.equal(messages["status"], "committed"))
    assert ranks.num_rows == committed.num_rows
    # Each batch takes effect at once: many messages share a rank, ranks follow sequence order.
    rank_of = dict(zip(ranks["msg_id"].to_pylist(), ranks["rank"].to_pylist(), strict=True))
    in_order = [rank_of[m] for m in committed.sort_by("seq_no")["msg_id"].to_pylist()]
    assert in_order == sorted(in_order) and len(set(in_order)) < len(in_order) // 10
    assert result.summary["fairness"]["inversions"] == 0
    # Without ranks the shuffle within each batch would count (as it did before).
    fifo = run_scenario(load_scenario(EXAMPLE, [*SHORT, 'sequencer.policy="fifo"']))
    assert fifo.history.table("ranks").num_rows == 0
    assert not (fifo.run_dir / "history" / "ranks").exists()


def test_inversions_are_counted_over_the_reporting_nodes(run_scenario) -> None:
    # Under fifo the front-runner's order is sequenced before the whale's. The whale's region
    # received the whale's first, the other four nodes the front-runner's: over all six nodes
    # at gamma 1 no pair binds; over the whale's two nodes (fair_order.nodes, as the policy
    # would count them) every node agrees the whale's came first.
    whales = '["ap-south-0", "ap-south-1"]'
    everyone = run_scenario(load_scenario(EXAMPLE, [*SHORT, 'sequencer.policy="fifo"'])).summary["fairness"]
    two = run_scenario(load_scenario(EXAMPLE, [*SHORT, 'sequencer.policy="fifo"',
                                               f"sequencer.fair_order.nodes={whales}"])).summary["fairness"]
    assert everyone["inversions"] == 0
    assert two["inversions"] >= two["front_run_successes"] > 5
