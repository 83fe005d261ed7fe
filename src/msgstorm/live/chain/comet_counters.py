"""A CometBFT validator's own counters, read from its Prometheus ``/metrics`` at a run's end.

Place in the pipeline: ``live/chain/cometbft.py`` starts every validator with Prometheus on
(``instrumentation.prometheus``) and, before it stops them, hands each one's text to
**parse_counters**; the live target writes the result into the history as one
``validator_counters`` event a validator (``detail``), which ``analysis/comet_costs.py``
reads. Only the series that say what the load cost are kept (``KEPT``): the ABCI calls'
times (``abci_connection_method_timing_seconds``, per method), the mempool's rechecks and
transactions, the bytes received per message type, the consensus steps' durations, the
heights and transactions committed. A series' key is its name (without ``cometbft_``) and
its labels but ``chain_id``, as Prometheus writes them: ``name{label="value",...}``.
"""

from __future__ import annotations

import re

__all__ = ["KEPT", "parse_counters"]

KEPT = (
    "abci_connection_method_timing_seconds_sum",
    "abci_connection_method_timing_seconds_count",
    "mempool_recheck_times",
    "mempool_tx_size_bytes_sum",
    "mempool_tx_size_bytes_count",
    "p2p_message_receive_bytes_total",
    "p2p_message_send_bytes_total",
    "consensus_step_duration_seconds_sum",
    "consensus_step_duration_seconds_count",
    "consensus_block_interval_seconds_sum",
    "consensus_block_interval_seconds_count",
    "consensus_total_txs",
    "consensus_latest_block_height",
    "consensus_block_gossip_parts_received",
)
_LINE = re.compile(r"^cometbft_([a-z0-9_]+)(?:\{([^}]*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


def parse_counters(text: str) -> dict[str, float]:
    """The kept series of a Prometheus text exposition: key -> value (labels sorted, no ``chain_id``)."""
    counters: dict[str, float] = {}
    for line in text.splitlines():
        found = _LINE.match(line.strip())
        if found is None or found.group(1) not in KEPT:
            continue
        labels = sorted((k, v) for k, v in _LABEL.findall(found.group(2) or "") if k != "chain_id")
        key = found.group(1) + ("{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else "")
        try:
            counters[key] = float(found.group(3))
        except ValueError:
            continue
    return counters
