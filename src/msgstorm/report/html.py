"""report.html: one run on one self-contained page (plotly.js embedded, no network).

Place in the pipeline: History + Analysis -> **html** -> ``RUN_DIR/report.html``, written by
``msgstorm run`` and ``msgstorm report``. Sections: headline numbers and SLO verdicts;
throughput, latency over time (faults, backpressure and desync shaded), latency vs load (knee),
percentile spectrum, latency stages, queue depth and base fee, gossip validation backlog,
propagation by region, the overlay (topology and region path latencies), per kind and
agent; delivery checks and faults; market outcomes when the summary has them; the scenario.

The page is about 5 MB, almost all of it plotly.js (4.8 MB, embedded once); the data of a
run is thinned to what a screen shows (percentile spectrum, queue samples, and a run of
more windows than ``series.MAX_POINTS``, said so under its plots) so it stays a few
hundred kB at most. Each figure is a plain plotly.js specification (``plotspec``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msgstorm.analysis import Analysis
from msgstorm.analysis.connections import trouble_counts
from msgstorm.analysis.hops import HOP_SPLIT_PATHS, HOP_STAGES
from msgstorm.analysis.summary_chain import HopSplit
from msgstorm.analysis.summary_model import Group, Integrity, Security
from msgstorm.history.reader import History
from msgstorm.history.schema import SIM_TARGET, STATUSES, is_simulated
from msgstorm.report import figures
from msgstorm.report.chain_fee import chain_sections, observed_note
from msgstorm.report.collateral import collateral_section, market_bad_debt_label
from msgstorm.report.control import control_section
from msgstorm.report.crosschain import crosschain_section
from msgstorm.report.market import market_plots, market_section
from msgstorm.report.page import Plot, esc, figure_block, page, table
from msgstorm.report.safety import safety_section
from msgstorm.report.series import (
    cpu_series,
    latency_ns,
    percentile_spectrum,
    queue_depth_series,
    region_matrix,
    shaded_spans,
    validation_backlog_series,
)
from msgstorm.report.text import (
    baseline_span,
    broker_said,
    duration_ms,
    duration_s,
    number,
    recovered_after,
    slo_value,
)
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
    "crosschain", "collateral",
    "hop_split",
})
_MARKET_KEYS = ("market", "impact", "liquidations", "liquidation", "bad_debt", "safe_leverage", "fairness")


def fmt(value: Any, unit: str = "", digits: int = 3) -> str:
    """A number for people (``report.text.number``: separators, trailing zeros dropped)."""
    return number(value, unit, digits)


def _card(label: str, value: str, sub: str = "") -> str:
    sub_html = f'<div class="sub">{sub}</div>' if sub else ""
    return f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{value}</div>{sub_html}</div>'


def _verdict(verdict: Any) -> str:
    text = esc(verdict)
    return f'<span class="verdict verdict-{text}">{text}</span>'


def _market_cards(market: dict[str, Any] | None, bad_debt_label: str) -> list[str]:
    """What delay cost, in the headline: bad debt and the liquidations (the section "What
    delay cost" has the rest)."""
    if not market:
        return []
    bad = market.get("bad_debt") or {}
    liquidations = market.get("liquidations") or {}
    return [
        _card(bad_debt_label, esc(fmt(bad.get("absolute"))),
              esc(f"{fmt(bad.get('pct_of_open_interest'))}% of open interest, {fmt(bad.get('accounts'))} accounts")),
        _card("liquidations executed", esc(fmt(liquidations.get("executed"))),
              esc(f"of {fmt(liquidations.get('eligible'))} eligible; late {fmt(liquidations.get('late'))}, "
                  f"not attempted {fmt(liquidations.get('not_attempted'))}")),
    ]


def _control_cards(control: dict[str, Any] | None, by_kind: dict[str, Any]) -> list[str]:
    """What a self-healing throttle shed on purpose (not a failure: its own decision)."""
    cards = []
    for name, done in (control or {}).items():
        if done.get("output") != "admitted_share":
            continue
        kinds = ", ".join(f"{kind} {fmt((by_kind.get(kind) or {}).get('dropped'))} of "
                          f"{fmt((by_kind.get(kind) or {}).get('sent'))}" for kind in done.get("sheds") or [])
        cards.append(_card(f"{name}: shed on purpose", esc(fmt(done.get("shed"))), esc(kinds + " dropped")))
    return cards


def _headline(summary: dict[str, Any]) -> str:
    latency = summary.get("latency_ms") or {}
    jitter = summary.get("jitter_ms") or {}
    messages = summary.get("messages") or {}
    capacity = summary.get("capacity")
    failure = summary.get("failure_threshold")
    not_committed = sum(int(messages.get(k) or 0) for k in ("dropped", "rejected", "lost", "pending", "unsent"))
    cards = [
        _card("offered rate", fmt(summary.get("offered_rate_per_s"), "/s")),
        _card("throughput (committed)", fmt(summary.get("throughput_per_s"), "/s")),
        *_market_cards(summary.get("market"), market_bad_debt_label(summary)),
        _card("latency p50", duration_ms(latency.get("p50"))),
        _card("latency p99", duration_ms(latency.get("p99")), f"p99.9 {duration_ms(latency.get('p999'))}"),
        _card("latency max", duration_ms(latency.get("max")), f"mean {duration_ms(latency.get('mean'))}"),
        _card("jitter (stddev)", duration_ms(jitter.get("stddev")), f"p99−p50 {duration_ms(jitter.get('p99_minus_p50'))}"),
        _card("capacity (knee)", fmt(capacity.get("knee_rate_per_s"), "/s") if capacity else "—",
              (f"limited by {esc(capacity['limited_by'])}" if capacity.get("limited_by") else "step ramp")
              if capacity else "no step ramp"),
        _card("failure threshold", fmt(failure.get("rate_per_s"), "/s") if failure else "none",
              esc(failure.get("reason")) if failure else "no criterion fired"),
        *_control_cards(summary.get("control"), summary.get("by_kind") or {}),
        _card("messages committed", fmt(messages.get("committed")), f"of {fmt(messages.get('sent'))} sent"),
        _card("not committed", fmt(not_committed),
              ", ".join(f"{k} {fmt(messages.get(k))}" for k in ("dropped", "rejected", "lost", "pending", "unsent"))),
        _card("queue depth max", fmt((summary.get("queue") or {}).get("max_depth")),
              f"mean {fmt((summary.get('queue') or {}).get('mean_depth'))}"),
        _card("desync episodes", fmt((summary.get("desync") or {}).get("episodes")),
              f"max height gap {fmt((summary.get('desync') or {}).get('max_height_gap'))}"),
        _card("run time", duration_s(summary.get("duration_s")),
              f"wall {duration_s(summary.get('wall_s'))}" if summary.get("wall_s") is not None else ""),
    ]
    slos = summary.get("slo") or []
    rows = [
        [esc(s.get("name")), esc(s.get("threshold")), f'<td class="num">{slo_value(str(s.get("name")), s.get("value"))}</td>',
         f'<td data-verdict="{esc(s.get("verdict"))}">{_verdict(s.get("verdict"))}</td>']
        for s in slos
    ]
    slo_html = (table(["SLO", "threshold", "value", "verdict"], rows, attrs='id="slo-table"') if slos
                else '<p class="note" id="slo-table-empty">The scenario sets no SLOs.</p>')
    if summary.get("cut_off"):
        interrupted = ('<p class="note"><b>This run was cut off</b> (killed before it could finish): numbers '
                       'cover what was flushed to the history before the kill.</p>')
    elif summary.get("interrupted"):
        interrupted = '<p class="note"><b>This run was interrupted</b>: numbers cover what was recorded.</p>'
    else:
        interrupted = ""
    return f'{interrupted}<div class="cards">{"".join(cards)}</div><h2 style="margin-top:16px">SLO verdicts</h2>{slo_html}'


def _spectrum_table(latency: dict[str, Any]) -> str:
    names = [("p50", "50%"), ("p90", "90%"), ("p99", "99%"), ("p999", "99.9%"), ("max", "max")]
    return table([label for _, label in names], [[f'<td class="num">{duration_ms(latency.get(k))}</td>' for k, _ in names]])


def _groups(summary: dict[str, Any]) -> str:
    """Per message kind and per agent: counts by status and committed latency (typed ``Group``s)."""
    statuses = STATUSES
    parts = []
    for key, label, table_id in (("by_kind", "kind", "by-kind"), ("by_agent", "agent", "by-agent")):
        groups = {name: Group.model_validate(raw) for name, raw in (summary.get(key) or {}).items()}
        rows = [[esc(name), f'<td class="num">{fmt(g.sent)}</td>',
                 *(f'<td class="num">{fmt(count)}</td>' for count in _status_counts(g)),
                 f'<td class="num">{duration_ms(g.latency_ms.p50)}</td>',
                 f'<td class="num">{duration_ms(g.latency_ms.p99)}</td>']
                for name, g in groups.items()]
        parts.append(f'<h2 style="margin-top:14px">By {label}</h2>' + (
            table([label, "sent", *statuses, "p50", "p99"], rows, attrs=f'id="{table_id}"') if rows
            else '<p class="note">No messages.</p>'))
    return "".join(parts)


def _status_counts(group: Group) -> list[int]:
    """A group's counts in the order of the history's STATUSES."""
    by_status = {"committed": group.committed, "dropped": group.dropped, "rejected": group.rejected,
                 "lost": group.lost, "pending": group.pending, "unsent": group.unsent}
    return [by_status[status] for status in STATUSES]


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


def _checks(summary: dict[str, Any]) -> str:
    checks = summary.get("checks") or []
    rows = [[esc(c.get("name")), f'<td data-verdict="{esc(c.get("verdict"))}">{_verdict(c.get("verdict"))}</td>',
             esc(c.get("detail"))] for c in checks]
    parts = [table(["checker", "verdict", "detail"], rows, attrs='id="checks-table"') if checks
             else '<p class="note">No delivery checks ran.</p>']
    faults = summary.get("faults") or []
    if faults:
        fault_rows = [[esc(f.get("fault_id")), esc(f.get("kind")), f'<td class="num">{fmt(f.get("start_s"), " s")}</td>',
                       f'<td class="num">{fmt(f.get("end_s"), " s") if f.get("end_s") is not None else "still active"}</td>',
                       f'<td class="num">{duration_ms(f.get("pre_fault_p99_ms"))}</td>',
                       f'<td class="num">{esc(baseline_span(f))}</td>',
                       f'<td class="num">{esc(recovered_after(f))}</td>']
                      for f in faults]
        parts.append('<h2 style="margin-top:16px">Faults</h2>' + table(
            ["id", "kind", "start", "end", "p99 before", "over", "recovered after"], fault_rows,
            attrs='id="faults-table"')
            + '<p class="note">P99 before: over the last whole seconds in a row, within the 5 s before the fault '
              "(after the fault before), in which the layer dropped no message; over: that span. "
              "Recovered after: from the fault\'s end to the first 100 ms with throughput at least 90% of offered "
              "and p99 at most twice the p99 before; no baseline: nothing to measure against, and why.</p>")
    else:
        parts.append('<p class="note">No fault was active during the run.</p>')
    parts.append(_copies(summary.get("delivery")))
    parts.append(_connections(summary.get("connections")))
    return "".join(parts)


def _copies(delivery: dict[str, Any] | None) -> str:
    """Each server's own copy of the stream, read back node by node (a replicated stream)."""
    nodes = (delivery or {}).get("nodes") or {}
    if not nodes:
        return ""
    rows = [[esc(node), *(
        [f'<td class="num">{fmt(copy.get(key))}</td>' for key in ("stored", "acked_missing", "duplicated", "unexpected")]
        if copy is not None else ["not read", "—", "—", "—"])] for node, copy in nodes.items()]
    return ('<h2 style="margin-top:16px">Stream copies, node by node</h2><p class="note">Each server\'s own copy '
            "of the stream, read back from that server alone after the run, against what was acked.</p>"
            + table(["node", "stored", "acked, missing", "duplicated", "unexpected"], rows, attrs='id="copies-table"'))


def _connections(connections: dict[str, Any] | None) -> str:
    """A live run's connection trouble: the counts, then each incident (empty on the simulator)."""
    if connections is None:
        return ""
    incidents = connections.get("incidents") or []
    if not incidents:
        return '<p class="note">No client lost its connection and no server went away.</p>'
    clients = connections.get("clients") or {}
    down = "; ".join(f"{esc(name)} down {duration_s(entry.get('down_s'))}" for name, entry in clients.items())
    note = f'<p class="note">{esc(trouble_counts(connections))}' + (f"; {down}" if down else "") + ".</p>"
    rows = [[f'<td class="num">{fmt(i.get("t_s"), " s")}</td>', esc(i.get("kind")), esc(i.get("client")),
             esc(broker_said(i.get("error")) if i.get("error") else "")] for i in incidents]
    return ('<h2 style="margin-top:16px">Connection trouble</h2>' + note
            + table(["time", "event", "client", "what it said"], rows, attrs='id="connections-table"'))


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


_FAIRNESS_ROWS = (
    ("queue policy", "policy", "sequencer.policy"),
    ("front-run attempts", "front_run_attempts", "races front-runners started"),
    ("front-run successes", "front_run_successes", "races whose order took effect before the victim's"),
    ("extracted value", "extracted_value", "what the won races earned: notional × the victim's price impact"),
    ("inversions", "inversions", "pairs a gamma share of the nodes received in one order, sequenced in the other"),
    ("inversion rate", "inversion_rate", "inversions / pairs compared"),
    ("pairs compared", "pairs", "committed messages received at every node, at most 1,000 sequence numbers apart"),
    ("gamma", "gamma", "the share of nodes that makes an inversion"),
)


_AUCTION_ROWS = (
    ("batches", ("batches",), "batches in which at least one order took effect"),
    ("batches cleared", ("batches_cleared",), "batches in which orders crossed"),
    ("orders", ("orders",), "limit orders drawn for the order flow"),
    ("orders in batches", ("orders_in_batches",), "those that took effect"),
    ("cleared volume", ("cleared_volume",), "what the batches traded (one side)"),
    ("fill rate", ("fill_rate",), "filled share of the quantity that took effect"),
    ("mean clearing price", ("mean_clearing_price",), "over the batches that cleared"),
    ("last clearing price", ("last_clearing_price",), "the last batch's uniform price"),
    ("deviation, mean", ("price_deviation_bps", "mean"), "clearing price vs the true price at the close, bps"),
    ("deviation, rms", ("price_deviation_bps", "rms"), "its root mean square, bps"),
)


_FORK_ROWS = (
    ("blocks made", ("blocks", "made"), "by every producer"),
    ("stale blocks", ("blocks", "stale"), "off the canonical chain at the end"),
    ("stale rate", ("blocks", "stale_rate"), "stale / made"),
    ("fork heights", ("blocks", "fork_heights"), "heights with more than one block"),
    ("fork rate", ("blocks", "fork_rate"), "fork heights / canonical height"),
    ("reorgs", ("reorgs", "count"), "a node's view moved to another branch"),
    ("reorg depth, max", ("reorgs", "max_depth"), "blocks one move dropped"),
    ("reorg depth, mean", ("reorgs", "mean_depth"), "blocks dropped per move"),
    ("final reorgs", ("reorgs", "final"), "canonical reorgs deeper than confirmations"),
    ("block arrival, p50", ("arrival_ms", "p50"), "ms after its making, at each other node"),
    ("block arrival, p90", ("arrival_ms", "p90"), "ms"),
    ("fork probability from arrivals", ("expected", "fork_probability"),
     "mean over blocks of 1 - exp(-sum of hash share x arrival / interval) (proof of work)"),
    ("its standard error", ("expected", "stderr"), "over the blocks"),
)


def _forks(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The section "Forks" of a run with producers across the nodes."""
    forks = summary.get("forks")
    if not forks:
        return []
    rows = []
    for label, path, note in _FORK_ROWS:
        value: Any = forks
        for key in path:
            value = None if value is None else value.get(key)
        rows.append([esc(label), f'<td class="num">{esc(fmt(value))}</td>', esc(note)])
    for share, times in (forks.get("reach_ms") or {}).items():
        for q in ("p50", "p90"):
            rows.append([esc(f"reach {share} of nodes, {q}"), f'<td class="num">{esc(fmt(times.get(q)))}</td>',
                         esc(f"ms from a block's making ({fmt(times.get('blocks_reached'))} blocks got there)")])
    return [("forks", "Forks and block propagation", table(["metric", "value", "what"], rows,
                                                          attrs='id="forks-table"'))]


_RELAY_ROWS = (
    ("payloads sent", ("payloads",), "payload copies put on uplinks (pushes, answers, compact blocks, missing messages)"),
    ("announcements", ("announcements",), "received"),
    ("requests", ("requests",), "served: a payload sent on request"),
    ("fallbacks", ("fallbacks",), "requests to another peer after a timeout"),
    ("duplicates avoided", ("duplicates_avoided",), "announcements that led to no transfer"),
    ("compact duplicates", ("compact", "duplicates"), "compact blocks a node had already"),
    ("getblocktxn", ("compact", "getblocktxn"), "round trips for a block's missing messages"),
    ("missing messages", ("compact", "missing"), "asked for in those round trips"),
    ("missing bytes", ("compact", "missing_bytes"), "sent in answer"),
    ("messages held", ("compact", "held"), "in compact blocks, held by their receivers already"),
)


def _relay(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The section "Relay" of a sim run relaying by a protocol other than push."""
    relay = summary.get("relay")
    if not relay:
        return []
    rows = []
    for label, path, note in _RELAY_ROWS:
        value: Any = relay
        for key in path:
            value = None if value is None else value.get(key)
        rows.append([esc(label), f'<td class="num">{esc(fmt(value))}</td>', esc(note)])
    per_node = relay.get("uploaded_bytes_per_node") or {}
    for region, total in (relay.get("uploaded_bytes") or {}).items():
        rows.append([esc(f"uploaded, {region}"), f'<td class="num">{esc(fmt(total))}</td>',
                     esc(f"payload bytes, {fmt(per_node.get(region))} per node")])
    return [("relay", "Relay", table(["metric", "value", "what"], rows, attrs='id="relay-table"'))]


def _hop_split(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The section "Latency split per hop": blocks' and sampled messages' time in each relay
    stage, in ms (means: along the path to a node, to each item's median node, in one hop)."""
    split = summary.get("hop_split")
    if not split:
        return []
    rows = []
    for kind, raw in split.items():
        values = HopSplit.model_validate(raw)
        paths = {"path_ms": values.path_ms, "median_node_ms": values.median_node_ms, "hop_ms": values.hop_ms}
        for key, label in HOP_SPLIT_PATHS:
            stages = paths[key].model_dump()
            rows.append([esc(f"{kind}, {label}"),
                         *(f'<td class="num">{esc(fmt(stages[stage]))}</td>' for stage in (*HOP_STAGES, "total"))])
    return [("hops", "Latency split per hop",
             table(["item, mean over", *(f"{stage} (ms)" for stage in (*HOP_STAGES, "total"))], rows,
                   attrs='id="hop-split-table"'))]


def _auction(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The section "Batch auction" of a run whose batch auction cleared limit orders."""
    auction = summary.get("auction")
    if not auction:
        return []
    rows = []
    for label, path, note in _AUCTION_ROWS:
        value: Any = auction
        for key in path:
            value = None if value is None else value.get(key)
        rows.append([esc(label), f'<td class="num">{esc(fmt(value))}</td>', esc(note)])
    return [("auction", "Batch auction", table(["metric", "value", "what"], rows, attrs='id="auction-table"'))]


def _fairness(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The section "Ordering fairness" of a run with front-runners or an ordering protocol."""
    fairness = summary.get("fairness")
    if not fairness:
        return []
    rows = [[esc(label), f'<td class="num">{esc(fmt(fairness.get(key)))}</td>', esc(note)]
            for label, key, note in _FAIRNESS_ROWS]
    return [("fairness", "Ordering fairness", table(["metric", "value", "what"], rows, attrs='id="fairness-table"'))]


_INTEGRITY_ROWS = (
    ("tampered", "tampered", "messages an adversary altered on the way"),
    ("replayed", "replayed", "copies of earlier messages an adversary sent again"),
    ("replayed from another chain", "replayed_other_chain", "of those, copies signed on another chain"),
    ("detected", "detected", "rejected by verification (signature, nonce, chain id)"),
    ("accepted", "accepted", "taken as genuine: what the adversary got through"),
    ("censored", "censored", "kept out of the producer's queue (censor faults)"),
)


def _integrity(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The section "Authentication and integrity": the scheme and its verification cost, what
    the adversaries did and the verdict (``analysis/integrity.py``), read from the typed sections."""
    security = Security.model_validate(summary["security"]) if summary.get("security") else None
    integrity = Integrity.model_validate(summary["integrity"]) if summary.get("integrity") else None
    if not security and not integrity:
        return []
    parts = []
    if security and security.verify_cost_us is None:
        parts.append(f"<p>Scheme <b>{esc(str(security.scheme))}</b> ({esc(str(security.verify))}): "
                     "no message is signed or verified, so verifying costs nothing.</p>")
    elif security:
        sign = security.sign_cost_us
        parts.append(f"<p>Scheme <b>{esc(str(security.scheme))}</b> ({esc(str(security.verify))}): "
                     f"verifying a message costs {esc(fmt(security.verify_cost_us))} us of a receiving node's "
                     "CPU" + ("" if sign is None else f", signing it {esc(fmt(sign))} us")
                     + f" (from {esc(str(security.source))}).</p>")
    if integrity:
        forged = integrity.tampered + integrity.replayed
        accepted = integrity.accepted
        verdict = ("no tampered or replayed message" if not forged else
                   f"VALID: all {forged:,} tampered or replayed messages rejected" if not accepted else
                   f"INVALID: {accepted:,} of {forged:,} tampered or replayed messages accepted")
        parts.append(f'<p id="integrity-verdict">{esc(verdict)}</p>')
        counts = integrity.model_dump()
        rows = [[esc(label), f'<td class="num">{esc(fmt(counts[key]))}</td>', esc(note)]
                for label, key, note in _INTEGRITY_ROWS]
        parts.append(table(["metric", "value", "what"], rows, attrs='id="integrity-table"'))
    return [("integrity", "Authentication and integrity", "".join(parts))]


def _other_results(summary: dict[str, Any]) -> tuple[str, str] | None:
    keys = [k for k in summary if k not in _KNOWN_KEYS]
    if not keys:
        return None
    heading = "Market outcomes" if any(k in _MARKET_KEYS for k in keys) else "Other results"
    ordered = sorted(keys, key=lambda k: (k not in _MARKET_KEYS, k))
    rows = [[esc(name), f'<td class="num">{esc(fmt(value))}</td>'] for key in ordered
            for name, value in _flatten(summary[key], key)]
    return heading, table(["metric", "value"], rows, attrs='id="other-results"')


# Scenario keys whose numbers are durations in ns (``DurationNs`` fields of the scenario
# schema; the report loads no pydantic, so they are named here).
_DURATION_KEYS = frozenset({"at", "duration", "start", "stop", "every", "decay", "drain", "window", "interval",
                            "latency", "jitter", "restart_after", "sample_interval", "min_duration",
                            "failover_timeout", "intra_region_latency", "close_delay", "down", "flush_interval",
                            "granularity", "max_interval", "min_interval", "read_back_timeout", "record_every",
                            "reveal_delay", "send_timeout", "slice_delay", "start_timeout", "timeout", "until"})
# Distributions of a time (their numbers are ns): every number inside but shape parameters.
_DURATION_DISTS = frozenset({"service", "processing", "link"})
_SHAPE_KEYS = frozenset({"sigma", "alpha", "shape", "weight", "p"})
_RATE_KEYS = frozenset({"rate", "baseline"})
# An arrival process (a table with ``process``): a ramp's ``start``, ``step`` and ``end`` are
# rates there (an agent's own ``start`` is a time).
_ARRIVAL_RATE_KEYS = frozenset({"rate", "baseline", "start", "step", "end"})


def _regions_value(network: dict[str, Any]) -> str:
    """The regions and their node counts, as the scenario gives them."""
    regions = network.get("regions") or []
    if network.get("shares"):
        shares = network["shares"]
        return f"{network.get('total_nodes')} nodes: " + ", ".join(f"{r} {shares.get(r, 0):g}" for r in regions)
    counts = network.get("nodes") or {}
    if counts:
        each = network.get("nodes_per_region")
        return ", ".join(f"{r} × {counts.get(r, each)}" for r in regions) + " nodes"
    return f"{', '.join(regions)} × {network.get('nodes_per_region')} nodes"


def _scenario_value(key: str, value: Any, in_duration: bool = False, rate_keys: frozenset[str] = _RATE_KEYS) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key in rate_keys:
            return fmt(value, "/s")
        if key in _DURATION_KEYS or (in_duration and key not in _SHAPE_KEYS):
            return duration_ms(value / 1e6)
    if isinstance(value, dict):
        inner = in_duration or key in _DURATION_DISTS
        rates = _ARRIVAL_RATE_KEYS if "process" in value else _RATE_KEYS
        return "{" + ", ".join(f"{k}={_scenario_value(k, v, inner, rates)}" for k, v in value.items()
                               if v is not None) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_scenario_value(key, v, in_duration, rate_keys) for v in value) + "]"
    return str(value)


# The [live] settings of every driver, each under its own table: a run shows its own only.
_LIVE_DRIVERS = ("nats", "jetstream", "redis", "zmq", "anvil")


def _scenario_facts(scenario: dict[str, Any]) -> list[tuple[str, Any]]:
    """The settings that applied to the run: on the simulator the network, sequencer, blocks
    and backpressure it modelled; on a live target its [live] settings (its own driver's
    only), none of the simulator's."""
    target = str(scenario.get("target") or SIM_TARGET)
    run = _scenario_value("run", scenario.get("run") or {})
    if not is_simulated(target):
        live = dict(scenario.get("live") or {})
        own = {key: value for key, value in live.items() if key not in _LIVE_DRIVERS}
        return [("target", target), ("live", _scenario_value("live", own)),
                *([(f"live.{target}", _scenario_value(target, live[target]))] if live.get(target) else []),
                ("run", run)]
    network = scenario.get("network") or {}
    return [
        ("target", target),
        ("regions", _regions_value(network)),
        ("sequencer", _scenario_value("sequencer", scenario.get("sequencer") or {})),
        ("blocks", _scenario_value("blocks", scenario.get("blocks") or {})),
        ("backpressure", _scenario_value("backpressure", scenario.get("backpressure") or {})),
        ("run", run),
    ]


def _scenario(history: History) -> str:
    scenario = history.scenario
    facts = _scenario_facts(scenario)
    parts = [table(["", ""], [[esc(k), esc(v)] for k, v in facts])]
    agents = scenario.get("agents") or []
    if agents:
        rows = [[esc(a.get("name")), esc(a.get("role")), f'<td class="num">{esc(a.get("count"))}</td>',
                 esc(a.get("region") or a.get("node") or "any"), esc(_scenario_value("arrival", a.get("arrival") or {}))]
                for a in agents]
        parts.append('<h2 style="margin-top:14px">Agents</h2>' + table(["agent", "role", "count", "where", "arrival"], rows))
    faults = scenario.get("faults") or []
    if faults:
        rows = [[esc(f.get("kind")), esc(_scenario_value("fault", {k: v for k, v in f.items() if k != "kind"}))]
                for f in faults]
        parts.append('<h2 style="margin-top:14px">Fault schedule</h2>' + table(["kind", "settings"], rows))
    text = json.dumps(scenario, indent=2, sort_keys=True)
    parts.append(
        "<details><summary>The full scenario as run (validated; times in ns, rates per second, sizes in bytes)"
        f"</summary><pre>{esc(text)}</pre></details>")
    return "".join(parts)


def _plots(history: History, analysis: Analysis,
           depth: tuple[list[float], list[float]] | None = None) -> dict[str, Plot]:
    """Every plot of the page; ``depth``: the queue depth series when the caller has it."""
    if depth is None:
        depth = queue_depth_series(history)
    summary = analysis.summary
    spans = shaded_spans(history, analysis)
    percentiles, inverse, values = percentile_spectrum(latency_ns(history))
    thinned = figures.thinning_note(analysis.windows.num_rows)
    steps = analysis.steps
    cpu_lines = cpu_series(history)
    return {
        "throughput": Plot("throughput", figures.throughput_figure(analysis.windows, spans, summary.get("failure_threshold")),
                           _joined("Offered: messages intended per window. Achieved: messages committed per window.",
                                   thinned)),
        "latency-time": Plot("latency-time", figures.latency_time_figure(analysis.windows, spans),
                             _joined("Latency from the intended send time to commit, of the messages committed in "
                                     "each window.", thinned)),
        "latency-load": Plot("latency-load", figures.latency_load_figure(steps, analysis.windows, summary.get("capacity")),
                             _joined(esc((summary.get("capacity") or {}).get("method") or ""),
                                     "" if steps is not None and steps.num_rows else
                                     figures.thinning_note(figures.load_points(analysis.windows), points=True))),
        "spectrum": Plot("spectrum", figures.spectrum_figure(percentiles, inverse, values)),
        "stages": Plot("stages", figures.stages_figure(summary.get("latency_stages_ms") or {}),
                       "Committed messages only. Stage percentiles are separate populations: they need not add up."),
        "queue": Plot("queue", figures.queue_fee_figure(depth, analysis.timelines.get("base_fee", []), spans)),
        "backlog": Plot("backlog", figures.validation_backlog_figure(validation_backlog_series(history), depth, spans),
                        "Sampled every run.sample_interval: each node's queued validation work in receipts' "
                        "worth (queued CPU time / mean processing time), for the most backlogged nodes."),
        "topology": Plot("topology", topology_figure(history.edges)),
        "cpu": Plot("cpu", figures.cpu_figure(cpu_lines, spans),
                    "The CPU time each server msgstorm started and msgstorm's own processes used, and the "
                    "machine's total (every process on it), sampled every run.sample_interval, as CPUs busy "
                    "between samples; dashed: the CPUs a server may run on at once (its GOMAXPROCS), and the "
                    "machine's cores. " + _cpu_caption(cpu_lines)),
        "regions": Plot("regions", figures.region_heatmap_figure(region_matrix(history, summary.get("propagation_ms"))),
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


def _market(history: History, analysis: Analysis, summary: dict[str, Any],
            depth: tuple[list[float], list[float]]) -> list[tuple[str, str, str]]:
    """The section "What delay cost" of a run with ``[market]`` (none without)."""
    if summary.get("market") is None:
        return []
    figures_of = market_plots(history, summary, depth, analysis.timelines.get("base_fee", []))
    if figures_of is None:
        return []
    captions = {
        "market-prices": "The true price at every step (market.resolution), the price on chain (the newest "
                         "committed oracle message) and the price each executed liquidation closed at.",
        "market-bad-debt": "Solid: the bad debt left by the liquidations executed so far plus what the accounts "
                           "not yet liquidated would owe at the true price then; it falls as liquidations "
                           "save accounts and rises while they wait. Dotted: the executed liquidations' own.",
        "market-delay": "From the true price crossing an account's maintenance line to its liquidation "
                        "committed; above, the mean split into the oracle's, the keeper's and the messaging "
                        "layer's part.",
    }
    blocks = ""
    for slug, fig in figures_of.items():
        figures.label_if_empty(fig)
        blocks += figure_block(Plot(slug, fig, captions[slug]))
    return [("market", "What delay cost", market_section(summary) + blocks)]


def _control(history: History, summary: dict[str, Any],
             depth: tuple[list[float], list[float]]) -> list[tuple[str, str, str]]:
    """The section "Self-healing" of a run whose controllers decided something (none without)."""
    blocks = history.scenario.get("blocks") or {}
    body = control_section(history, depth, float(summary.get("duration_s") or 0.0),
                           float(blocks.get("max_messages") or 1))
    return [("control", "Self-healing controllers", body)] if body else []


def render_run_report(history: History, analysis: Analysis, wall_s: float | None = None) -> str:
    """The whole report page as HTML text (``wall_s``: the run's wall time, when known)."""
    summary = dict(analysis.summary)
    if wall_s is not None:
        summary["wall_s"] = round(wall_s, 3)
    depth = queue_depth_series(history)  # the queue plot's, and the market's beside its bad debt
    plots = _labelled(_plots(history, analysis, depth))
    live = not is_simulated(summary.get("target"))
    # Sections only a simulated run can fill (the inside of the layer).
    simulated = [
        ("stages", "Where the time goes", figure_block(plots["stages"])),
        ("queue", "Queue and base fee", figure_block(plots["queue"])),
        ("backlog", "Gossip validation backlog", figure_block(plots["backlog"])),
        ("regions", "Propagation by region", figure_block(plots["regions"])),
        ("topology", "Overlay", figure_block(plots["topology"]) + _topology(history)),
    ]
    sections = [
        ("headline", "Headline", _headline(summary)),
        *([("observed", "What a live run observes", f"<p>{esc(observed_note(analysis, depth))}</p>")] if live else []),
        ("throughput", "Throughput", figure_block(plots["throughput"])),
        ("latency", "Latency over time", figure_block(plots["latency-time"])),
        ("load", "Latency vs load", figure_block(plots["latency-load"])),
        ("spectrum", "Percentile spectrum", figure_block(plots["spectrum"]) + _spectrum_table(summary.get("latency_ms") or {})),
        *([("cpu", "CPU of the run's processes", figure_block(plots["cpu"]))]
          if any(trace.get("x") for trace in plots["cpu"].figure["data"]) else []),
        *([] if live else simulated),
        *chain_sections(history, analysis, depth, live),
        *_market(history, analysis, summary, depth),
        *_fairness(summary),
        *_integrity(summary),
        *_control(history, summary, depth),
        *_auction(summary),
        *_forks(summary),
        *_relay(summary),
        *crosschain_section(summary),
        *collateral_section(summary),
        *_hop_split(summary),
        *safety_section(history, summary),
        ("groups", "By message kind and agent", _groups(summary)),
        ("checks", "Delivery checks and faults", _checks(summary)),
    ]
    other = _other_results(summary)
    if other is not None:
        sections.append(("outcomes", other[0], other[1]))
    sections.append(("scenario", "Scenario", _scenario(history)))
    title = f"msgstorm · {summary.get('scenario')}"
    meta = esc(f"seed {summary.get('seed')} · target {summary.get('target')} · msgstorm {summary.get('msgstorm_version')}"
               f" · scenario {str(summary.get('scenario_hash') or '')[:12]}"
               + (" · CUT OFF" if summary.get("cut_off") else " · INTERRUPTED" if summary.get("interrupted") else ""))
    return page(title, meta, sections, extra={"summary": summary})


def write_run_report(run_dir: str | Path, history: History, analysis: Analysis,
                     wall_s: float | None = None) -> Path:
    """Write ``RUN_DIR/report.html``; returns its path."""
    path = Path(run_dir) / REPORT_FILE
    path.write_text(render_run_report(history, analysis, wall_s), encoding="utf-8")
    return path
