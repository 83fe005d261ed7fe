"""A chain run's base fee on the report page, and what a live run's page says it observed.

Place in the pipeline: ``report/html.py`` -> **chain_sections**, **observed_note** -> the
page. A chain run (the simulator's blocks under ``backpressure.mode = "eip1559"``, or a real
EVM node such as anvil) records the base fee in force in each block (``base_fee`` events)
and each block's messages (``block_produced``): ``chain_sections`` draws them as one chart,
"Base fee per block", and, on a live chain run, the node's pool depth beside the base fee
(the simulator's page has that chart among its inside-the-layer sections already). What a
live run's page says it cannot see is read from the history, not fixed: a chain node's pool
depth and base fee are observed, a broker's queue is not.
"""

from __future__ import annotations

from typing import Any

from msgstorm.analysis import Analysis
from msgstorm.analysis._common import events_of
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.report import figures
from msgstorm.report.page import Plot, esc, figure_block
from msgstorm.report.series import shaded_spans

__all__ = ["chain_sections", "observed_note"]


def chain_sections(history: History, analysis: Analysis, depth: tuple[list[float], list[float]],
                   live: bool) -> list[tuple[str, str, str]]:
    """The page's sections of a chain run: "Base fee per block" when base fees were
    recorded (a simulated run's under ``backpressure.mode = "eip1559"``), and on a live run with pool samples "Pool and base fee"; none otherwise."""
    base_fee: list[dict[str, Any]] = analysis.timelines.get("base_fee", [])
    unit = (analysis.result.base_fee.unit if analysis.result.base_fee is not None else None) or ""
    backpressure = history.scenario.get("backpressure") or {}
    if not live and backpressure.get("mode") != "eip1559":
        base_fee = []  # a simulated run without EIP-1559 has no base fee that moves: no chart
    sections: list[tuple[str, str, str]] = []
    spans = shaded_spans(history, analysis) if base_fee or (live and depth[0]) else []
    if live and depth[0]:
        plot = Plot("queue", figures.queue_fee_figure(depth, base_fee, spans, unit),
                    "The node's pool: its pending transactions sampled every run.sample_interval "
                    "(txpool_status), and the base fee in force in each block.")
        sections.append(("queue", "Pool and base fee", figure_block(plot)))
    if base_fee:
        blocks = events_of(history, EventKind.BLOCK_PRODUCED)
        fig = figures.base_fee_figure(base_fee, blocks.t.tolist(), blocks.value.tolist(), spans, unit)
        fees = [entry["base_fee"] for entry in base_fee]
        rises = sum(b > a for a, b in zip(fees, fees[1:], strict=False))
        caption = (f"The base fee in force in each of {len(fees):,} blocks (EIP-1559: up to 12.5% a block toward "
                   f"half-full blocks), from {fees[0]:,.4g} to {fees[-1]:,.4g} {unit} (at most {max(fees):,.4g}); "
                   f"it rose in {rises:,} blocks. {figures.block_bars_note(len(blocks.t))}")
        sections.append(("base-fee", "Base fee per block", figure_block(Plot("base-fee", fig, esc(caption)))))
    return sections


def observed_note(analysis: Analysis, depth: tuple[list[float], list[float]]) -> str:
    """What a live run measures and what it cannot see, from what its history holds: a chain
    node's pool samples and base fees are observed (and drawn), a broker's queue is not."""
    base_fee = bool(analysis.timelines.get("base_fee"))
    chain = base_fee or bool(depth[0])
    seen = ["the end-to-end latency from each message's intended send time to its ack, receipt or block",
            "the generator's send lag", "every receipt (the delivery audit)", "connection trouble",
            "the CPU of the processes msgstorm started and of the machine"]
    if chain:
        seen.append("the node's pool depth" + (" and each block's base fee" if base_fee else ""))
    unseen = ([] if chain else ["queue depth", "base fee"]) + ["gossip validation backlog",
                                                               "overlay or propagation by region"]
    return (f"A live run measures what a client sees: {', '.join(seen)}. It cannot see inside "
            f"{'the node' if chain else 'the broker'}: no {', '.join(unseen)}, and no split of the latency into "
            "propagation, queue wait, service and block wait; those sections appear in simulated runs only.")
