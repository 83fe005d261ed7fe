"""What a ``[rollup]`` run shows: its headline rows (terminal and report.html).

Place in the pipeline: reports, from summary.json's ``rollup`` alone, read as its typed
section (``analysis.summary_chain.Rollup``; computed by ``analysis/rollup.py``): the latency
to each commit level, the split by stage, the batches and what L1 charged them; and each
sequencer outage's backlog and drain (summary.json's ``outages``).
"""

from __future__ import annotations

from collections.abc import Sequence

from msgstorm.analysis.summary_chain import (
    FirstLastMax,
    Outage,
    Rollup,
    RollupLevel,
    SentinelResult,
)
from msgstorm.analysis.summary_model import Summary
from msgstorm.report.page import Plot, esc, figure_block, table
from msgstorm.report.text import duration_ms, number

__all__ = ["LEVEL_NAMES", "SPLIT_NAMES", "outage_rows", "rollup_rows", "rollup_section", "sentinel_rows"]

# soft is the L2 block holding the message (the sequencer's soft confirmation), not its
# sequencing (docs/model.md, "Rollups").
LEVEL_NAMES = {"soft": "soft", "safe": "safe", "final": "final"}
SPLIT_NAMES = {"sequencing": "sequencing", "batch_and_l1": "batch + L1", "finality": "finality"}


def _level(level: RollupLevel) -> str:
    return " / ".join(duration_ms(value) for value in (level.p50, level.p99, level.max))


def _fee(fee: FirstLastMax | None, unit: str) -> str:
    if fee is None:
        return "—"
    return f"{fee.first:,.3f} → {fee.last:,.3f} (max {fee.max:,.3f}) {unit}"


def rollup_rows(rollup: Rollup) -> list[tuple[str, str]]:
    """(label, text) rows of summary.json's ``rollup``, from its typed section."""
    rows = [(f"rollup {label} p50 / p99 / max", _level(rollup.latency_ms[key])) for key, label in LEVEL_NAMES.items()]
    rows.append(("rollup split p50", ", ".join(f"{label} {duration_ms(rollup.split_ms[key].p50)}"
                                               for key, label in SPLIT_NAMES.items())))
    batches = rollup.batches
    interval = "—" if batches.interval_s_mean is None else f"{batches.interval_s_mean:,.1f} s"
    size = "—" if batches.compressed_bytes_mean is None else f"{batches.compressed_bytes_mean:,.0f} B"
    rows.append(("rollup batches", f"{number(batches.count)} as {batches.data} ({number(batches.full)} full), "
                                   f"every {interval}, {size} compressed"))
    l1 = rollup.l1
    # Every batch is an L1 transaction paying gas at the base fee (calldata's 16 a byte, or a
    # blob transaction's 21,000); only blob batches pay the blob base fee, so only they show it.
    rows.append(("rollup L1 cost / base fee", f"{l1.cost_eth:,.4f} ETH over {number(l1.blocks)} blocks / "
                                              f"{_fee(l1.base_fee_gwei, 'gwei')}"))
    if batches.data == "blobs":
        rows.append(("rollup blob base fee", _fee(l1.blob_base_fee_wei, "wei")))
    return rows


def outage_rows(outages: list[Outage]) -> list[tuple[str, str]]:
    """A row per sequencer outage: when, how long down, the backlog and its drain."""
    rows = []
    for outage in outages:
        down = "to the end" if outage.down_s is None else duration_ms(outage.down_s * 1e3)
        drain = "—" if outage.drain_s is None else duration_ms(outage.drain_s * 1e3)
        lost = "" if outage.lost_unposted is None else f", lost unposted {number(outage.lost_unposted)}"
        rows.append((f"sequencer down at {duration_ms(outage.at_s * 1e3)}",
                     f"for {down}: backlog {number(outage.backlog)}, drained in {drain}{lost}"))
    return rows


def sentinel_rows(sentinel: SentinelResult) -> list[tuple[str, str]]:
    """The uptime guard's row: its rule, what it paused and let through, and bad debt."""
    bound = "none" if sentinel.health_factor_bound is None else f"{sentinel.health_factor_bound:g}"
    return [(f"uptime guard (grace {duration_ms(sentinel.grace_s * 1e3)}, bound {bound})",
             f"blocked {number(sentinel.blocked)} (executed after {number(sentinel.after_pause)}), let through "
             f"{number(sentinel.let_through)}, bad debt {sentinel.bad_debt:,.0f}")]


def rollup_section(summary: Summary, plots: Sequence[Plot] = ()) -> list[tuple[str, str, str]]:
    """report.html's section "Rollup" (none without ``[rollup]``, an outage or a guard): the
    same rows as the terminal's, then ``plots`` (the batches and the L1's fees, drawn from
    the history's ``batches`` and ``l1_blocks``)."""
    rows = [*(rollup_rows(summary.rollup) if summary.rollup else []),
            *(outage_rows(summary.outages) if summary.outages else []),
            *(sentinel_rows(summary.sentinel) if summary.sentinel else [])]
    if not rows:
        return []
    return [("rollup", "Rollup", table(["metric", "value"], [[esc(label), esc(text)] for label, text in rows],
                                        attrs='id="rollup-table"') + "".join(figure_block(plot) for plot in plots))]
