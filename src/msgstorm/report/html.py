"""report.html: one run on one self-contained page (plotly.js embedded, no network).

Place in the pipeline: History + Analysis -> **html** -> ``RUN_DIR/report.html``, written by
``msgstorm run`` and ``msgstorm report``. Sections: headline numbers and SLO verdicts;
throughput, latency over time (faults, backpressure and desync shaded), latency vs load (knee),
percentile spectrum, latency stages, queue depth and base fee, gossip validation backlog,
propagation by region, the overlay (topology and region path latencies), per kind and
agent; delivery checks and faults; market outcomes when the summary has them; the scenario.
This module lays the page out and draws its plots; each section is made by the module of
its role from the typed summary (``Analysis.result``): the headline by ``run_headline``,
checks and faults by ``run_checks``, the optional sections' tables by ``run_tables``,
``crosschain``, ``collateral``, ``market`` and ``safety``, the scenario by ``scenario_facts``.

Most of the page is plotly.js, embedded once; the data of a run is thinned to what a
screen shows (percentile spectrum, queue samples, and a run of more windows than
``series.MAX_POINTS``, said so under its plots), so its size does not grow with the run's.
Each figure is a plain plotly.js specification (``plotspec``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msgstorm.analysis import Analysis
from msgstorm.analysis.summary_model import Summary
from msgstorm.history.reader import History
from msgstorm.history.schema import is_simulated
from msgstorm.report import figures
from msgstorm.report.chain_fee import chain_sections, observed_note
from msgstorm.report.collateral import collateral_section
from msgstorm.report.consensus import consensus_section
from msgstorm.report.control import control_section
from msgstorm.report.cross import cross_section
from msgstorm.report.crosschain import crosschain_section
from msgstorm.report.market import market_plots, market_section
from msgstorm.report.page import Plot, esc, figure_block, page, table
from msgstorm.report.rollup import rollup_section
from msgstorm.report.run_checks import checks_section
from msgstorm.report.run_headline import headline, spectrum_table
from msgstorm.report.run_tables import (
    auction_section,
    fairness_section,
    forks_section,
    groups_section,
    hop_split_section,
    integrity_section,
    relay_section,
    validators_section,
)
from msgstorm.report.safety import safety_section
from msgstorm.report.scenario_facts import scenario_section
from msgstorm.report.series import (
    cpu_series,
    latency_ns,
    percentile_spectrum,
    queue_depth_series,
    region_matrix,
    shaded_spans,
    validation_backlog_series,
    whole_run_faults,
)
from msgstorm.report.text import duration_ms, number
from msgstorm.report.topology import region_path_rows, topology_figure

__all__ = ["REPORT_FILE", "fmt", "render_run_report", "write_run_report"]

REPORT_FILE = "report.html"

# summary.json keys the page shows in their own sections; any other top-level key (market
# outcomes, fairness, ... as analysis grows) is shown generically.
_KNOWN_KEYS = frozenset({
    "scenario", "seed", "target", "msgstorm_version", "scenario_hash", "duration_s", "interrupted",
    "offered_rate_per_s", "throughput_per_s", "latency_ms", "latency_stages_ms", "jitter_ms", "capacity",
    "failure_threshold", "queue", "backpressure", "base_fee", "messages", "desync", "propagation_ms",
    "faults", "checks", "slo", "wall_s", "by_kind", "by_agent", "gossip_backlog", "cut_off", "generator", "delivery",
    "connections", "market", "fairness", "auction", "control", "security", "integrity", "forks", "relay", "finality",
    "consensus",
    "crosschain", "collateral",
    "hop_split",
})
_MARKET_KEYS = ("market", "impact", "liquidations", "liquidation", "bad_debt", "safe_leverage", "fairness")


def fmt(value: Any, unit: str = "", digits: int = 3) -> str:
    """A number for people (``report.text.number``: separators, trailing zeros dropped)."""
    return number(value, unit, digits)


def _topology(history: History) -> str:
    edges = history.edges
    if edges.num_rows == 0:
        return '<p class="note">This history has no overlay (edges table).</p>'
    rows = [[esc(r["from"]), esc(r["to"]), f'<td class="num">{duration_ms(r["direct_ms"])}</td>',
             f'<td class="num">{duration_ms(r["mesh_mean_ms"])}</td>', f'<td class="num">{duration_ms(r["mesh_max_ms"])}</td>',
             f'<td class="num">{fmt(r["mesh_hops_max"])}</td>', f'<td class="num">{fmt(r["unreachable"])}</td>']
            for r in region_path_rows(edges)]
    note = ('<p class="note">Base one-way latency of a direct link vs the shortest path over the gossip mesh '
            "(sum of base latencies, mean and max over the node pairs measured). Messages travel the mesh: "
            "where it has no direct link between two nodes, even two nodes of one region are several hops "
            "apart.</p>")
    return note + table(["from", "to", "direct link", "mesh path mean", "mesh path max", "hops (max)",
                         "unreachable"], rows, attrs='id="region-paths"')


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = []
        for key, inner in value.items():
            items.extend(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return items
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [(prefix, json.dumps(value))] if len(value) > 20 else [
            item for i, v in enumerate(value) for item in _flatten(v, f"{prefix}[{i}]")]
    return [(prefix, value)]


def _other_results(summary: dict[str, Any]) -> tuple[str, str] | None:
    keys = [k for k in summary if k not in _KNOWN_KEYS]
    if not keys:
        return None
    heading = "Market outcomes" if any(k in _MARKET_KEYS for k in keys) else "Other results"
    ordered = sorted(keys, key=lambda k: (k not in _MARKET_KEYS, k))
    rows = [[esc(name), f'<td class="num">{esc(fmt(value))}</td>'] for key in ordered
            for name, value in _flatten(summary[key], key)]
    return heading, table(["metric", "value"], rows, attrs='id="other-results"')


def _plots(history: History, analysis: Analysis,
           depth: tuple[list[float], list[float]] | None = None) -> dict[str, Plot]:
    """Every plot of the page; ``depth``: the queue depth series when the caller has it."""
    if depth is None:
        depth = queue_depth_series(history)
    summary = analysis.result
    spans = shaded_spans(history, analysis)
    percentiles, inverse, values = percentile_spectrum(latency_ns(history))
    thinned = figures.thinning_note(analysis.windows.num_rows)
    steps = analysis.steps
    cpu_lines = cpu_series(history)
    return {
        "throughput": Plot("throughput", figures.throughput_figure(analysis.windows, spans, summary.failure_threshold),
                           _joined("Offered: messages intended per window. Achieved: messages committed per window.",
                                   thinned)),
        "latency-time": Plot("latency-time", figures.latency_time_figure(analysis.windows, spans),
                             _joined("Latency from the intended send time to commit, of the messages committed in "
                                     "each window.", thinned)),
        "latency-load": Plot("latency-load", figures.latency_load_figure(steps, analysis.windows, summary.capacity),
                             _joined(esc(summary.capacity.method if summary.capacity else ""),
                                     "" if steps is not None and steps.num_rows else
                                     figures.thinning_note(figures.load_points(analysis.windows), points=True))),
        "spectrum": Plot("spectrum", figures.spectrum_figure(percentiles, inverse, values)),
        "stages": Plot("stages", figures.stages_figure(summary.latency_stages_ms),
                       "Committed messages only. Stage percentiles are separate populations: they need not add up."),
        "queue": Plot("queue", figures.queue_fee_figure(depth, analysis.timelines.get("base_fee", []), spans,
                                                        (summary.base_fee.unit if summary.base_fee else None) or "")),
        "backlog": Plot("backlog", figures.validation_backlog_figure(validation_backlog_series(history), depth, spans),
                        "Sampled every run.sample_interval: each node's queued validation work in receipts' "
                        "worth (queued CPU time / mean processing time), for the most backlogged nodes."),
        "topology": Plot("topology", topology_figure(history.edges)),
        "cpu": Plot("cpu", figures.cpu_figure(cpu_lines, spans),
                    "The CPU time each server msgstorm started and msgstorm's own processes used, and the "
                    "machine's total (every process on it), sampled every run.sample_interval, as CPUs busy "
                    "between samples; dashed: the CPUs a server may run on at once (its GOMAXPROCS), and the "
                    "machine's cores. " + _cpu_caption(cpu_lines)),
        "regions": Plot("regions", figures.region_heatmap_figure(region_matrix(history, summary.propagation_ms)),
                        "Time from a message's send to its first delivery at each node, grouped by the sending "
                        "node's region (rows) and the receiving node's region (columns)."),
    }


def _cpu_caption(lines: list[Any]) -> str:
    """What the CPU plot shows, from its own data: each process's mean and peak CPUs busy."""
    said = []
    for line in lines:
        if line.cores:
            mean, peak = sum(line.cores) / len(line.cores), max(line.cores)
            said.append(f"{line.name} {mean:.2f} on average, {peak:.2f} at most")
    return ("CPUs busy: " + "; ".join(said) + ".") if said else ""


def _joined(*sentences: str) -> str:
    return " ".join(sentence for sentence in sentences if sentence)


def _labelled(plots: dict[str, Plot]) -> dict[str, Plot]:
    for plot in plots.values():
        figures.label_if_empty(plot.figure)
    return plots


def _market(history: History, analysis: Analysis, summary: Summary,
            depth: tuple[list[float], list[float]]) -> list[tuple[str, str, str]]:
    """The section "What delay cost" of a run with ``[market]`` (none without)."""
    if summary.market is None:
        return []
    figures_of = market_plots(history, summary.market, depth, analysis.timelines.get("base_fee", []),
                              (summary.base_fee.unit if summary.base_fee else None) or "")
    if figures_of is None:
        return []
    captions = {
        "market-prices": "The true price at every step (market.resolution), the price on chain (the newest "
                         "committed oracle message) and the price each executed liquidation closed at.",
        "market-bad-debt": "Solid: the bad debt left by the liquidations executed so far (after the insurance "
                           "fund, deleveraging and socialised losses) plus what the accounts not yet liquidated "
                           "would owe at the true price then, with the size and collateral the venue's books "
                           "left them; it falls as liquidations save accounts and rises while they wait, and "
                           "its last point, at the run's end, is the summary's bad debt. Dotted: the executed "
                           "liquidations' own.",
        "market-delay": "From the true price crossing an account's maintenance line to its liquidation "
                        "committed; above, the mean split into the oracle's, the keeper's and the messaging "
                        "layer's part.",
    }
    blocks = ""
    for slug, fig in figures_of.items():
        figures.label_if_empty(fig)
        blocks += figure_block(Plot(slug, fig, captions[slug]))
    return [("market", "What delay cost", market_section(summary) + blocks)]


def _control(history: History, summary: Summary,
             depth: tuple[list[float], list[float]]) -> list[tuple[str, str, str]]:
    """The section "Self-healing" of a run whose controllers decided something (none without)."""
    blocks = history.scenario.get("blocks") or {}
    body = control_section(history, depth, float(summary.duration_s or 0.0),
                           float(blocks.get("max_messages") or 1))
    return [("control", "Self-healing controllers", body)] if body else []


def _rollup_plots(history: History, analysis: Analysis) -> list[Plot]:
    """The rollup's batches and its L1's fees (none for a run without batches)."""
    batches = history.table("batches")
    if batches.num_rows == 0:
        return []
    spans = shaded_spans(history, analysis)
    return [Plot("rollup-batches", figures.rollup_batches_figure(batches, spans),
                 "Each batch at the time the batcher closed it: the time from its first L2 block to the L1 block "
                 "that holds it (safe) and to that block's finality (final); diamonds: its compressed size (right axis)."),
            Plot("rollup-fees", figures.rollup_fees_figure(history.table("l1_blocks"), spans,
                                                           blobs=sum(batches.column("blobs").to_pylist()) > 0),
                 "Every L1 block from the first slot to the last a batch landed in: the base fee the batches' "
                 "calldata paid and, when they went as blobs, the blob base fee their blobs paid (EIP-1559 and "
                 "EIP-4844 rules).")]


def render_run_report(history: History, analysis: Analysis, wall_s: float | None = None) -> str:
    """The whole report page as HTML text (``wall_s``: the run's wall time, when known)."""
    summary = dict(analysis.summary)  # as summary.json holds it: the page's data
    typed = analysis.result
    if wall_s is not None:
        summary["wall_s"] = round(wall_s, 3)
        typed = typed.model_copy(update={"wall_s": summary["wall_s"]})
    depth = queue_depth_series(history)  # the queue plot's, and the market's beside its bad debt
    plots = _labelled(_plots(history, analysis, depth))
    live = not is_simulated(typed.target)
    # Sections only a simulated run can fill (the inside of the layer).
    simulated = [
        ("stages", "Where the time goes", figure_block(plots["stages"])),
        ("queue", "Queue and base fee", figure_block(plots["queue"])),
        ("backlog", "Gossip validation backlog", figure_block(plots["backlog"])),
        ("regions", "Propagation by region", figure_block(plots["regions"])),
        ("topology", "Overlay", figure_block(plots["topology"]) + _topology(history)),
    ]
    sections = [
        ("headline", "Headline", headline(typed)),
        *([("observed", "What a live run observes", f"<p>{esc(observed_note(analysis, depth))}</p>")] if live else []),
        ("throughput", "Throughput", figure_block(plots["throughput"])),
        ("latency", "Latency over time", figure_block(plots["latency-time"])),
        ("load", "Latency vs load", figure_block(plots["latency-load"])),
        ("spectrum", "Percentile spectrum", figure_block(plots["spectrum"]) + spectrum_table(typed.latency_ms)),
        *([("cpu", "CPU of the run's processes", figure_block(plots["cpu"]))]
          if any(trace.get("x") for trace in plots["cpu"].figure["data"]) else []),
        *([] if live else simulated),
        *chain_sections(history, analysis, depth, live),
        *_market(history, analysis, typed, depth),
        *fairness_section(typed),
        *integrity_section(typed),
        *_control(history, typed, depth),
        *auction_section(typed),
        *forks_section(typed),
        *relay_section(typed),
        *validators_section(typed),
        *crosschain_section(typed),
        *rollup_section(typed, _rollup_plots(history, analysis)),
        *collateral_section(typed),
        *cross_section(typed),
        *hop_split_section(typed),
        *consensus_section(history, typed),
        *safety_section(history, typed),
        ("groups", "By message kind and agent", groups_section(typed)),
        ("checks", "Delivery checks and faults",
         checks_section(typed, [fault.fault_id for fault in whole_run_faults(history)])),
    ]
    other = _other_results(summary)
    if other is not None:
        sections.append(("outcomes", other[0], other[1]))
    sections.append(("scenario", "Scenario", scenario_section(history)))
    title = f"msgstorm · {typed.scenario}"
    meta = esc(f"seed {typed.seed} · target {typed.target} · msgstorm {typed.msgstorm_version}"
               f" · scenario {(typed.scenario_hash or '')[:12]}"
               + (" · CUT OFF" if typed.cut_off else " · INTERRUPTED" if typed.interrupted else ""))
    return page(title, meta, sections, extra={"summary": summary})


def write_run_report(run_dir: str | Path, history: History, analysis: Analysis,
                     wall_s: float | None = None) -> Path:
    """Write ``RUN_DIR/report.html``; returns its path."""
    path = Path(run_dir) / REPORT_FILE
    path.write_text(render_run_report(history, analysis, wall_s), encoding="utf-8")
    return path
