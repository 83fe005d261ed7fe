"""The load's costs read from live validators' own counters (analysis/comet_costs.py,
live/chain/comet_counters.py), on counters written by hand with figures worked on paper."""

from __future__ import annotations

import pytest

from msgstorm.analysis.comet_costs import costs_lines, costs_of
from msgstorm.live.chain.comet_counters import parse_counters

EXPOSITION = """\
# HELP cometbft_abci_connection_method_timing_seconds Timing for each ABCI method.
# TYPE cometbft_abci_connection_method_timing_seconds histogram
cometbft_abci_connection_method_timing_seconds_bucket{chain_id="c",method="check_tx",type="async",le="0.0001"} 1200
cometbft_abci_connection_method_timing_seconds_sum{chain_id="c",method="check_tx",type="async"} 0.003
cometbft_abci_connection_method_timing_seconds_count{chain_id="c",method="check_tx",type="async"} 1200
cometbft_abci_connection_method_timing_seconds_sum{chain_id="c",method="finalize_block",type="sync"} 0.004
cometbft_abci_connection_method_timing_seconds_count{chain_id="c",method="finalize_block",type="sync"} 10
cometbft_abci_connection_method_timing_seconds_sum{chain_id="c",method="process_proposal",type="sync"} 0.001
cometbft_abci_connection_method_timing_seconds_count{chain_id="c",method="process_proposal",type="sync"} 10
cometbft_abci_connection_method_timing_seconds_sum{chain_id="c",method="commit",type="sync"} 0.02
cometbft_abci_connection_method_timing_seconds_count{chain_id="c",method="commit",type="sync"} 10
cometbft_mempool_recheck_times{chain_id="c"} 200
cometbft_mempool_tx_size_bytes_sum{chain_id="c"} 1.024e+06
cometbft_mempool_tx_size_bytes_count{chain_id="c"} 1000
cometbft_p2p_message_receive_bytes_total{chain_id="c",message_type="mempool_Txs"} 2.048e+06
cometbft_p2p_message_receive_bytes_total{chain_id="c",message_type="consensus_BlockPart"} 1.536e+06
cometbft_consensus_step_duration_seconds_sum{chain_id="c",step="Propose"} 1.1
cometbft_consensus_step_duration_seconds_count{chain_id="c",step="Propose"} 10
cometbft_consensus_total_txs{chain_id="c"} 1000
cometbft_consensus_latest_block_height{chain_id="c"} 10
cometbft_mempool_size{chain_id="c"} 3
go_goroutines 120
"""


def test_the_counters_kept_are_keyed_by_name_and_labels_without_the_chain() -> None:
    counters = parse_counters(EXPOSITION)
    assert counters['abci_connection_method_timing_seconds_count{method="check_tx",type="async"}'] == 1200
    assert counters['p2p_message_receive_bytes_total{message_type="mempool_Txs"}'] == 2_048_000
    assert counters["consensus_total_txs"] == 1000
    # Buckets, gauges not kept and other programs' series are left out.
    assert not any("bucket" in key or key.startswith(("mempool_size{", "go_")) for key in counters)
    assert "mempool_size" not in counters


def test_costs_worked_by_hand() -> None:
    """One validator of four (three peers): 1,200 CheckTx in 3 ms is 2.5 us each; 200 rechecks
    over 10 heights is 20 a height; FinalizeBlock 4 ms over 1,000 transactions is 4 us each,
    ProcessProposal 1 us; Commit 2 ms; 2,048,000 bytes of mempool_Txs received over the
    1,024,000 bytes taken in is 2 copies a transaction, two thirds of the 3 peers; 1,536,000
    bytes of block parts over 1,000 transactions of 1,024 bytes is 1.5 times each block."""
    one = parse_counters(EXPOSITION)
    others = {f"validator-{i}": {} for i in range(1, 4)}  # counted nothing: left out of the medians
    costs = costs_of({"validator-0": one, **others})
    assert costs is not None
    assert costs.validators == 4 and costs.heights == 10 and costs.transactions == 1000
    assert costs.check_tx_ns == pytest.approx(2_500)
    assert costs.rechecks_per_height == pytest.approx(20)
    assert costs.finalize_per_tx_ns == pytest.approx(4_000)
    assert costs.process_proposal_per_tx_ns == pytest.approx(1_000)
    assert costs.commit_ns == pytest.approx(2_000_000)
    assert costs.copies_per_tx == pytest.approx(2.0)
    assert costs.copies_per_peer == pytest.approx(2 / 3)
    assert costs.part_bytes_per_block_byte == pytest.approx(1.5)
    assert costs.step_ms == {"Propose": pytest.approx(110)}
    text = "\n".join(costs_lines(costs))
    assert "CheckTx (and a recheck) 2.50 us" in text and "2.00 copies" in text and "(67% of the peers" in text


def test_the_median_over_validators_and_none_without_commits() -> None:
    slow = parse_counters(EXPOSITION.replace("method=\"check_tx\",type=\"async\"} 0.003", "method=\"check_tx\",type=\"async\"} 0.012"))
    fast = parse_counters(EXPOSITION.replace("method=\"check_tx\",type=\"async\"} 0.003", "method=\"check_tx\",type=\"async\"} 0.0012"))
    costs = costs_of({"a": slow, "b": parse_counters(EXPOSITION), "c": fast})
    assert costs is not None and costs.check_tx_ns == pytest.approx(2_500)  # 10, 2.5 and 1 us
    assert costs_of({"a": {}, "b": {"consensus_total_txs": 0.0}}) is None
