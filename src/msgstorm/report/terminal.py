"""Terminal summary: the headline numbers of a run as rich tables, read from the typed summary.

Place in the pipeline: the last stage, beside report.html, from ``Analysis.result`` (a
``Summary``; summary.json's dictionary is read through that type once, a field that does not
fit refused by name), each row reading its section's typed fields. Numbers and durations
are worded by ``report.text``, the same rules as the page's, and a wrapped cell keeps each
number with its unit (``report/cells.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape

from msgstorm.analysis.hops import HOP_SPLIT_PATHS, HOP_STAGES
from msgstorm.analysis.summary_chain import (
    Finality,
    Forks,
    HopSplit,
    RegionPropagation,
    Relay,
    Validators,
)
from msgstorm.analysis.summary_model import (
    Auction,
    Byzantine,
    Capacity,
    Check,
    Connections,
    Controller,
    Delivery,
    Fairness,
    Fault,
    Generator,
    Group,
    Integrity,
    Market,
    Messages,
    PublishedFigures,
    Security,
    SloVerdict,
    Stages,
    StreamReadBack,
    Summary,
)
from msgstorm.history.schema import is_simulated
from msgstorm.report.against import against_table, market_against_rows
from msgstorm.report.cells import KeptTable
from msgstorm.report.collateral import collateral_rows, market_bad_debt_label
from msgstorm.report.consensus import consensus_rows
from msgstorm.report.cross import cross_rows
from msgstorm.report.crosschain import crosschain_rows
from msgstorm.report.headline_terms import LOST_MESSAGES_LIVE, bad_debt_text, liquidations_text
from msgstorm.report.rollup import outage_rows, rollup_rows, sentinel_rows
from msgstorm.report.text import (
    amount,
    baseline_span,
    broker_said,
    duration_ms,
    duration_s,
    failure_where,
    number,
    recovered_after,
    run_time_s,
    slo_shown,
)

__all__ = ["QUEUE_DEPTH_LABEL", "control_lines", "print_summary", "published_figures", "security_lines"]

# What the queue depth counts (``analysis/queue.py``): every message in its queue_wait stage
# (the stage table's), from the messages table; the value says the mean is over time. Short
# enough (no longer than "latency p50 / p99 / p99.9") to leave the table's columns as they were.
QUEUE_DEPTH_LABEL = "in queue_wait max / mean"


def _fmt(value: Any, unit: str = "") -> str:
    return number(value, unit)


def published_figures(day: PublishedFigures, unit: str | None = None, currency: str | None = None) -> str:
    """The published figures a scenario gives for the day it replays, with their source; the
    zero-bid collateral in the lots' ``unit`` and the deficit in the market's ``currency``."""
    parts = [f"{label} {text}" for label, text in (
        ("zero bids", None if day.zero_bid_share is None else _percent(day.zero_bid_share) + " of lots"),
        ("zero-bid" if unit else "zero-bid units",
         None if day.zero_bid_units is None else amount(day.zero_bid_units, unit)),
        ("collateral returned", None if day.returned_share is None else _percent(day.returned_share)),
        ("deficit", None if day.deficit is None else amount(day.deficit, currency))) if text is not None]
    return f"{', '.join(parts)} ({day.source})"


def _percent(share: float | None) -> str:
    """A share (0..1) as a percentage with two decimals."""
    return "—" if share is None else f"{100 * share:.2f}%"


def _durations(*values: float | None) -> str:
    """``1.2 ms / 15.2 s / 20.1 s``: each duration (given in ms) in its own best unit."""
    return " / ".join(duration_ms(value) for value in values)


def _dict_durations(values: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """``_durations`` of the given keys of a mapping of durations (a section's percentiles by name)."""
    return _durations(*(values.get(key) for key in keys))


def _connections_line(connections: Connections) -> str:
    """Disconnects and errors, the clients cut off (how long) and the servers that went away."""
    text = (f"disconnects {_fmt(connections.disconnects)}, reconnects {_fmt(connections.reconnects)}, "
            f"errors {_fmt(connections.errors)}")
    if connections.clients:
        text += "; down: " + ", ".join(f"{escape(name)} {duration_s(entry.down_s)}"
                                       for name, entry in connections.clients.items())
    if connections.servers_exited:
        text += "; EXITED EARLY: " + ", ".join(f"{escape(str(exited.name))} (code {exited.returncode})"
                                               for exited in connections.servers_exited)
    cleanup = connections.cleanup
    if cleanup:
        stopped = f"{cleanup.servers_stopped} server(s) stopped" + (
            f", {cleanup.proxies_closed} proxy closed" if cleanup.proxies_closed else "") + (
            f", resumed {', '.join(escape(n) for n in cleanup.resumed)}" if cleanup.resumed else "")
        text += (f"; cleanup verified ({stopped})" if cleanup.verified else
                 "; CLEANUP LEFT: " + ", ".join(escape(what) for what in cleanup.left))
    return text


def _capacity(capacity: Capacity | None) -> str:
    """The knee and what limited it; a ramp that passed every step reached no knee: its
    highest rate is a lower bound (``≥ 2,963/s, no knee reached``), and nothing limited it."""
    if capacity is None:
        return "no ramp: no knee"
    if not capacity.knee_reached:
        return f"≥ {_fmt(capacity.knee_rate_per_s, '/s')}, no knee reached" + _busy_machine(capacity)
    return _fmt(capacity.knee_rate_per_s, "/s") + _limit(capacity)


def _busy_machine(capacity: Capacity) -> str:
    """A live ramp that passed every step on a machine whose CPUs its last step kept busy:
    a longer ramp would measure the machine, not the target."""
    if capacity.limited_by not in ("machine CPU", "machine"):
        return ""
    facts = _limit_facts(capacity)
    return "; the machine's CPUs were busy at the last step" + (f" ({'; '.join(facts)})" if facts else "")


def _limit_facts(capacity: Capacity) -> list[str]:
    """The facts a live ramp's limit was judged on: send lag, CPUs busy."""
    at = capacity.at_limit
    facts = []
    if at and at.send_lag_p50_ms is not None:
        facts.append(f"send lag p50 {duration_ms(at.send_lag_p50_ms)}")
    if at and at.cpu_busy:
        machine = at.machine_cpus
        facts.append("CPUs busy: " + ", ".join(f"{escape(name)} {cores:.2f}" for name, cores in at.cpu_busy.items())
                     + (f" of {machine}" if machine else ""))
    if at and at.machine_busy is not None:  # whoever limited it: the machine's total, every process's
        facts.append(f"the machine's CPUs busy: {at.machine_busy:.2f}"
                     + (f" of {at.machine_cpus}" if at.machine_cpus else ""))
    return facts


def _limit(capacity: Capacity) -> str:
    """What limited a live ramp, beside its knee: ``; limited by the generator (send lag p50
    4.2 ms; CPUs busy: publisher 1.0, nats-server 0.8 of 2)``."""
    limited_by = capacity.limited_by
    if not limited_by:
        return ""
    facts = _limit_facts(capacity)
    who = {"generator": "the generator (msgstorm's own limit)", "machine CPU": "the machine's CPUs",
           "machine": "the machine (its CPUs busy with other work)",
           "broker": "the broker"}.get(limited_by, limited_by)
    return f"; limited by {who}" + (f" ({'; '.join(facts)})" if facts else "")


def _market_headline(market: Market, bad_debt_label: str) -> list[tuple[str, str]]:
    """What delay cost, first: bad debt and liquidations (rows of the headline table)."""
    return [(bad_debt_label, bad_debt_text(market)), ("liquidations", liquidations_text(market.liquidations))]


def _market_rows(market: Market) -> list[tuple[str, str]]:
    """How late liquidations were and how stale prices got (rows after the latencies)."""
    delay, stale = market.liquidation_delay_ms, market.price_staleness_ms
    split = delay.split
    rows = [("liquidation delay p50 / p99 / max", _durations(delay.p50, delay.p99, delay.max))]
    if split is not None:
        rows.append(("delay split (mean)", f"oracle {duration_ms(split.oracle)}, keeper "
                                           f"{duration_ms(split.keeper)}, messaging "
                                           f"{duration_ms(split.messaging)}"))
    rows.append(("price staleness p50 / p99 / max", _durations(stale.p50, stale.p99, stale.max)))
    venue, currency = market.venue, market.currency
    if venue is not None:  # [market.liquidation]: where the money went (analysis/market.py, venue_summary)
        rows.append(("venue losses",
                     f"fee {amount(venue.liquidation_fee, currency)} (fund {amount(venue.insurance_fee, currency)}), "
                     f"fund used {amount(venue.insurance_fund.used, currency)}, deleveraged "
                     f"{amount(venue.deleveraged, currency)}, socialised {amount(venue.socialised, currency)}, "
                     f"partial calls {_fmt(venue.partial_calls)}"))
        funding = venue.funding
        if funding is not None:  # [market.funding]: zero-sum, so what was paid was received
            rows.append(("funding paid", f"{amount(funding.paid, currency)} in {_fmt(funding.payments)} payments "
                                         f"over {_fmt(funding.intervals)} intervals"))
        lots = venue.auctions
        if lots is not None:  # english_auction: zero bids, collateral given back, the deficit
            rows.append(("english auctions",
                         f"{_fmt(lots.lots)} lots, {_fmt(lots.zero_bid_lots)} at a zero bid "
                         f"({_fmt(lots.zero_bid_units)} of {amount(lots.units, lots.unit or 'units')}), collateral "
                         f"returned {_percent(lots.returned_share)}, deficit {amount(venue.bad_debt, currency)}"))
            if lots.published is not None:  # the day's own figures, beside the run's
                rows.append(("published for the day", published_figures(lots.published, lots.unit, currency)))
    return rows


def control_lines(control: Mapping[str, Controller], by_kind: Mapping[str, Group]) -> list[tuple[str, str]]:
    """What each self-healing controller did, as (label, text): what a throttle shed on
    purpose, of which kinds (dropped of sent), and how far it closed; a block-time
    controller's block interval."""
    rows = []
    for name, done in control.items():
        decisions = f"{_fmt(done.decisions)} decision{'' if done.decisions == 1 else 's'}"
        if done.output == "admitted_share":
            kinds = ", ".join(f"{escape(kind)} {_fmt(group.dropped if group else None)} of "
                              f"{_fmt(group.sent if group else None)}"
                              for kind, group in ((kind, by_kind.get(kind)) for kind in done.sheds))
            text = (f"shed {_fmt(done.shed)} arrivals on purpose" + (f" ({kinds} dropped)" if kinds else "")
                    + f"; admitted share fell to {_fmt(done.lowest)}, {_fmt(done.last)} at the end; "
                    + decisions)
        elif done.output == "block_interval_ms":
            text = (f"block interval {duration_ms(done.lowest)} to {duration_ms(done.highest)}, "
                    f"{duration_ms(done.last)} at the end; {decisions}")
        else:
            text = f"output {_fmt(done.lowest)} to {_fmt(done.highest)}, last {_fmt(done.last)}; {decisions}"
        rows.append((f"self-healing: {escape(name)}", text))
    return rows


def security_lines(summary: Summary) -> list[tuple[str, str]]:
    """The authentication scheme and its verification cost, and what the adversaries got
    through (``analysis/integrity.py``), as (label, text), read from the typed sections."""
    return _security_rows(summary.security, summary.integrity, summary.byzantine)


def _security_rows(security: Security | None, integrity: Integrity | None,
                   byzantine: Byzantine | None) -> list[tuple[str, str]]:
    rows = []
    if security and security.verify_cost_us is None:
        rows.append(("security", f"{escape(str(security.scheme))}: nothing signed or verified, no cost "
                     f"({escape(str(security.verify))})"))
    elif security:
        sign = security.sign_cost_us
        rows.append(("security", f"{escape(str(security.scheme))}: verify {_fmt(security.verify_cost_us)} us"
                     " a message" + ("" if sign is None else f", sign {_fmt(sign)} us")
                     + f" (from {escape(str(security.source))}; {escape(str(security.verify))})"))
    if integrity and (integrity.tampered or integrity.replayed):
        rows.append(("integrity", f"tampered {_fmt(integrity.tampered)}, replayed "
                     f"{_fmt(integrity.replayed)} ({_fmt(integrity.replayed_other_chain)} from another "
                     f"chain): detected {_fmt(integrity.detected)}, ACCEPTED {_fmt(integrity.accepted)}"
                     if integrity.accepted else
                     f"tampered {_fmt(integrity.tampered)}, replayed {_fmt(integrity.replayed)} "
                     f"({_fmt(integrity.replayed_other_chain)} from another chain): every one detected"))
    if integrity and integrity.censored:
        rows.append(("censored", f"{_fmt(integrity.censored)} messages kept out of the producer's queue"))
    if byzantine and byzantine.eclipsed:
        rows.append(("eclipsed", escape(", ".join(byzantine.eclipsed))))
    if byzantine and byzantine.faults:
        rows.append(("byzantine nodes", "; ".join(f"{escape(str(fault.kind))}: "
                                                  f"{escape(', '.join(fault.nodes)) or 'none'}"
                                                  for fault in byzantine.faults)))
        for victim in byzantine.censorship:
            rows.append((f"censored: {escape(victim.agent)}",
                         f"{_fmt(victim.censored)} of {_fmt(victim.messages)} "
                         f"{escape('/'.join(victim.kinds))} messages "
                         f"({victim.rate:.1%}) kept out of blocks"))
        if byzantine.invalid_sent:
            rows.append(("invalid flood", f"{_fmt(byzantine.invalid_sent)} sent, "
                                          f"{_fmt(byzantine.invalid_validated)} validated and dropped by receivers"))
    return rows


def _fairness_rows(fairness: Fairness) -> list[tuple[str, str]]:
    """Front-running races and receive-order inversions (``analysis/fairness.py``)."""
    return [("front-running", f"{_fmt(fairness.front_run_successes)} of {_fmt(fairness.front_run_attempts)} races "
                              f"won, extracted {_fmt(fairness.extracted_value)} ({fairness.policy})"),
            ("order inversions", f"{_fmt(fairness.inversions)} of {_fmt(fairness.pairs)} pairs "
                                 f"(gamma {_fmt(fairness.gamma)})")]


def _auction_rows(auction: Auction) -> list[tuple[str, str]]:
    """The batch auction's clearings (``analysis/auction.py``)."""
    return [("batch auction", f"{_fmt(auction.batches_cleared)} of {_fmt(auction.batches)} batches cleared "
                              f"{_fmt(auction.cleared_volume)}, fill rate {_fmt(auction.fill_rate)}"),
            ("clearing price mean / last", f"{_fmt(auction.mean_clearing_price)} / {_fmt(auction.last_clearing_price)} "
                                           f"(vs true price: rms {_fmt(auction.price_deviation_bps.rms)} bps)")]


def _forks_rows(forks: Forks) -> list[tuple[str, str]]:
    """Blocks made and stale, reorgs, block reach and arrival, and the fork probability the
    arrivals imply (``analysis/forks.py``)."""
    blocks, reorgs, reach = forks.blocks, forks.reorgs, forks.reach_ms
    rows = [
        ("blocks made / stale / fork rate", f"{_fmt(blocks.made)} / {_fmt(blocks.stale)} ({_fmt(blocks.stale_rate)}) / "
                                            f"{_fmt(blocks.fork_rate)}"),
        ("reorgs / max depth / final", f"{_fmt(reorgs.count)} / {_fmt(reorgs.max_depth)} / {_fmt(reorgs.final)}"),
        (f"block reach {' / '.join(reach)} (p50)", " / ".join(duration_ms(times.p50) for times in reach.values())),
        ("block arrival p50 / p90 / p99", _dict_durations(forks.arrival_ms, ("p50", "p90", "p99"))),
    ]
    expected = forks.expected
    if expected and expected.fork_probability is not None:
        low, high = expected.stale_rate_interval or (0.0, 1.0)
        rows.append(("fork probability from arrivals / stale rate 95%",
                     f"{_percent(expected.fork_probability)} ± {_percent(expected.stderr)} / "
                     f"{_percent(low)}–{_percent(high)}"))
    return rows


def _finality_rows(finality: Finality, checks: list[Check]) -> list[tuple[str, str]]:
    """Byzantine voters against the quorum bound, safety and liveness (``analysis/safety.py``)."""
    verdicts = {check.name: check.verdict for check in checks}
    bound = "below" if finality.within_bound else "not below"
    at = finality.conflicts_at
    more = finality.conflicting_heights - len(at)
    return [
        ("byzantine voters / stake", f"{_fmt(finality.byzantine)} of {_fmt(finality.validators)} / "
                                     f"{finality.byzantine_stake:.3f} ({bound} the 1/3 bound)"),
        ("safety / conflicting heights", f"{verdicts.get('safety', '—')} / {_fmt(finality.conflicting_heights)}"
         + (f" (at {', '.join(map(str, at))}{f' and {more} more' if more > 0 else ''})" if at else "")),
        ("liveness / longest stall", f"{verdicts.get('liveness', '—')} / {duration_ms(finality.longest_stall_ms)}"),
    ]


def _faults_table(faults: list[Fault]) -> KeptTable:
    """Each fault: when it was active, the p99 before it (and the span it was measured over)
    and how long the layer took to recover after it (``analysis/recovery.py``)."""
    table = KeptTable(title="faults", header_style="bold")
    for column in ("id", "kind", "start", "end", "p99 before", "over", "recovered after"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for fault in faults:
        table.add_row(_fmt(fault.fault_id), escape(_fmt(fault.kind)), run_time_s(fault.start_s, 3),
                      run_time_s(fault.end_s, 3) if fault.end_s is not None else "still active",
                      duration_ms(fault.pre_fault_p99_ms), baseline_span(fault), recovered_after(fault))
    return table


def _validators_table(validators: Validators) -> KeptTable:
    """One row per validator: heights, proposals, rounds above 0, commit interval, mempool, lag."""
    table = KeptTable(title="validators", header_style="bold")
    for column in ("validator", "heights", "proposed", "rounds>0", "interval p50 / max", "mempool mean / max",
                   "lag max"):
        table.add_column(column, justify="left" if column == "validator" else "right")
    for v in validators.validators:
        table.add_row(v.name, _fmt(v.heights), _fmt(v.proposed), _fmt(v.rounds_above_0),
                      _durations(v.interval_p50_ms, v.interval_max_ms),
                      f"{_fmt(v.mempool_mean)} / {_fmt(v.mempool_max)}", _fmt(v.height_lag_max))
    return table


def _copies_table(nodes: Mapping[str, StreamReadBack | None]) -> KeptTable:
    """Each server's own copy of the stream, read back node by node, against what was acked."""
    table = KeptTable(title="stream copies, node by node", header_style="bold")
    for column in ("node", "stored", "acked, missing", "duplicated", "unexpected"):
        table.add_column(column, justify="left" if column == "node" else "right")
    for node, copy in nodes.items():
        if copy is None:
            table.add_row(escape(node), "not read", "—", "—", "—")
            continue
        table.add_row(escape(node), _fmt(copy.stored), _fmt(copy.acked_missing), _fmt(copy.duplicated),
                      _fmt(copy.unexpected))
    return table


def _arrival_table(blocks: Mapping[str, RegionPropagation],
                   transactions: Mapping[str, RegionPropagation]) -> KeptTable:
    """By region: how long blocks took to reach its nodes after their making, and messages
    (transactions) after their sending."""
    table = KeptTable(title="arrival by region (p50 / p90)", header_style="bold")
    for column in ("region", "blocks", "transactions"):
        table.add_column(column, justify="left" if column == "region" else "right")
    for region in sorted(set(blocks) | set(transactions)):
        block, sent = blocks.get(region), transactions.get(region)
        table.add_row(escape(region), _durations(block.p50, block.p90) if block else _durations(None, None),
                      _durations(sent.p50, sent.p90) if sent else _durations(None, None))
    return table


def _hop_split_table(kind: str, split: HopSplit) -> KeptTable:
    """One kind's (blocks' or sampled messages') time in each relay stage: along the path to
    a node, to each item's median node, and in one hop (means; summary.json's ``hop_split``)."""
    hops = split.hops
    table = KeptTable(title=f"{kind} latency split per hop (mean)", header_style="bold",
                  caption=f"{_fmt(split.arrivals)} arrivals of {_fmt(split.items)} {kind}s, "
                          f"hops p50 {_fmt(hops.p50)}, max {_fmt(hops.max)}")
    table.add_column("stage")
    paths = {"path_ms": split.path_ms, "median_node_ms": split.median_node_ms, "hop_ms": split.hop_ms}
    for _, label in HOP_SPLIT_PATHS:
        table.add_column(label, justify="right", no_wrap=True)
    for stage in (*HOP_STAGES, "total"):
        table.add_row(stage, *(duration_ms(paths[key].model_dump()[stage]) for key, _ in HOP_SPLIT_PATHS))
    return table


def _typed(summary: Summary | Mapping[str, Any]) -> Summary:
    """A ``Summary``, or a summary as summary.json holds it read through that type (a field
    that does not fit is refused, named)."""
    return summary if isinstance(summary, Summary) else Summary.model_validate(summary)


def _generator_line(generator: Generator) -> str:
    """The send lag's p99 and max, what was never sent, and whether the schedule was kept."""
    lag = generator.send_lag_ms
    return (_durations(lag.p99, lag.max)
            + (f"; unsent {_fmt(generator.unsent)} (behind at the run's end)" if generator.unsent else "")
            + (" — SATURATED: the schedule was not kept" if generator.saturated else ""))


def _delivery_rows(delivery: Delivery) -> list[tuple[str, str]]:
    """Receipts against what a correct run has, and the stream read back after the run."""
    lost = delivery.lost
    rows = [("delivery (received / expected)",
             f"{_fmt(delivery.received)} / {_fmt(delivery.expected)}; receipts lost {_fmt(lost.total)}"
             f" (prefix {_fmt(lost.prefix)}, middle {_fmt(lost.middle)}, postfix {_fmt(lost.postfix)}), "
             f"duplicated {_fmt(delivery.duplicated)}, unexpected {_fmt(delivery.unexpected)}, "
             f"reordered {_fmt(delivery.reordered)}")]
    read_back = delivery.read_back
    if read_back:
        rows.append(("stream read back (after the run)",
                     f"{_fmt(read_back.stored)} messages in {duration_s(read_back.seconds)}" if read_back.done else
                     f"NOT DONE after {duration_s(read_back.seconds)}: {escape(broker_said(read_back.error))}"))
    return rows


def _relay_rows(relay: Relay) -> list[tuple[str, str]]:
    """What the nodes sent to relay items: payloads, compact blocks' round trips, bytes uploaded."""
    rows = [("relay payloads / announcements / requests",
             f"{_fmt(relay.payloads)} / {_fmt(relay.announcements)} / {_fmt(relay.requests)} "
             f"({_fmt(relay.duplicates_avoided)} duplicates avoided)")]
    compact = relay.compact
    if compact.getblocktxn or compact.held or compact.duplicates:
        rows.append(("compact blocks: round trips / missing",
                     f"{_fmt(compact.getblocktxn)} / {_fmt(compact.missing)} messages "
                     f"({_fmt(compact.missing_bytes)} B; {_fmt(compact.held)} held)"))
    rows.append(("uploaded per node", ", ".join(f"{region} {_fmt(total)} B"
                                                for region, total in relay.uploaded_bytes_per_node.items())))
    return rows


def _messages_line(messages: Messages, audited: bool = False) -> str:
    """Each count of the summary's ``messages``, in summary.json's order; ``audited`` (a
    delivery audit's row beside it, which counts lost receipts): ``lost`` says it counts
    messages no one got."""
    lost = _fmt(messages.lost) + (f" ({LOST_MESSAGES_LIVE})" if audited else "")
    counts = (("sent", _fmt(messages.sent)), ("sequenced", _fmt(messages.sequenced)),
              ("committed", _fmt(messages.committed)), ("dropped", _fmt(messages.dropped)),
              ("rejected", _fmt(messages.rejected)), ("lost", lost), ("pending", _fmt(messages.pending)),
              ("unsent", _fmt(messages.unsent)))
    return ", ".join(f"{name} {count}" for name, count in counts)


def _validators_rows(halt: Validators) -> list[tuple[str, str]]:
    """A validator network's highest round, its longest stretch without a commit, and the
    evidence of misbehaviour committed (when any)."""
    rows = [("max round / longest halt", f"{_fmt(halt.max_round)} / {duration_ms(halt.longest_halt_ms)}"
             + (f" ({_fmt(halt.halt_from_s)} s to {_fmt(halt.halt_to_s)} s)" if halt.halt_from_s is not None
                else ""))]
    if halt.evidence:
        against = sorted({e.validator for e in halt.evidence})
        heights = [e.height for e in halt.evidence]
        rows.append(("evidence committed", f"{_fmt(len(halt.evidence))} against {', '.join(against)} "
                                           f"(heights {_fmt(min(heights))} to {_fmt(max(heights))})"))
    return rows


def _headline(summary: Summary) -> KeptTable:
    """The headline table: one row a metric, each read from its typed section."""
    title = f"msgstorm · {summary.scenario} · seed {summary.seed} · {summary.target}"
    if summary.cut_off:
        title += " · CUT OFF"
    elif summary.interrupted:
        title += " · INTERRUPTED"
    head = KeptTable(title=title, show_header=True, header_style="bold")
    head.add_column("metric")
    head.add_column("value", justify="right")
    head.add_row("offered rate", _fmt(summary.offered_rate_per_s, "/s"))
    head.add_row("throughput", _fmt(summary.throughput_per_s, "/s"))
    market = summary.market
    if market is not None:
        for label, text in _market_headline(market, market_bad_debt_label(summary)):
            head.add_row(label, text)
    latency, jitter = summary.latency_ms, summary.jitter_ms
    head.add_row("latency p50 / p99 / p99.9", _durations(latency.p50, latency.p99, latency.p999))
    head.add_row("latency max / mean", _durations(latency.max, latency.mean))
    head.add_row("jitter stddev / p99−p50", _durations(jitter.stddev, jitter.p99_minus_p50))
    head.add_row("capacity (knee)", _capacity(summary.capacity))
    failure = summary.failure_threshold
    head.add_row("failure threshold", f"{_fmt(failure.rate_per_s, '/s')} ({failure.reason}) "
                 f"{failure_where(failure, summary.capacity is not None)}" if failure else "none fired")
    for label, text in control_lines(summary.control or {}, summary.by_kind):
        head.add_row(label, text)
    queue = summary.queue
    head.add_row(QUEUE_DEPTH_LABEL, f"{_fmt(queue.max_depth)} / {_fmt(queue.mean_depth)}"
                 + (" (mean over time)" if queue.mean_depth is not None else ""))
    base_fee = summary.base_fee
    if base_fee:  # an EIP-1559 chain: where its base fee went (on a node, in live.anvil.fee_unit_wei)
        head.add_row("base fee min / max / last", " / ".join(_fmt(fee) for fee in (base_fee.min, base_fee.max,
                                                                                      base_fee.last))
                     + (f" {base_fee.unit}" if base_fee.unit else ""))
    head.add_row("desync episodes / max gap",
                 f"{_fmt(summary.desync.episodes)} / {_fmt(summary.desync.max_height_gap)}")
    head.add_row("messages", _messages_line(summary.messages, audited=summary.delivery is not None))
    for label, text in _security_rows(summary.security, summary.integrity, summary.byzantine):
        head.add_row(label, text)
    if summary.generator:
        head.add_row("generator send lag p99 / max", _generator_line(summary.generator))
    if summary.delivery:
        for label, text in _delivery_rows(summary.delivery):
            head.add_row(label, text)
    if summary.connections:
        head.add_row("connections", _connections_line(summary.connections))
    # The sections a run may have, each its rows, in the order the table shows them.
    optional: list[Iterable[tuple[str, str]]] = [
        _market_rows(market) if market is not None else (),
        _fairness_rows(summary.fairness) if summary.fairness else (),
        _auction_rows(summary.auction) if summary.auction else (),
        _forks_rows(summary.forks) if summary.forks else (),
        _relay_rows(summary.relay) if summary.relay else (),
        _finality_rows(summary.finality, summary.checks) if summary.finality else (),
        consensus_rows(summary.consensus) if summary.consensus else (),
        _validators_rows(summary.validators) if summary.validators else (),
        crosschain_rows(summary.crosschain) if summary.crosschain else (),
        rollup_rows(summary.rollup) if summary.rollup else (),
        outage_rows(summary.outages) if summary.outages else (),
        sentinel_rows(summary.sentinel) if summary.sentinel else (),
        cross_rows(summary.cross) if summary.cross else (),
        collateral_rows(summary.collateral) if summary.collateral else (),
    ]
    for rows in optional:
        for label, text in rows:
            head.add_row(label, text)
    if summary.wall_s is not None:
        head.add_row("wall time", duration_s(summary.wall_s))
    return head


def print_summary(summary: Summary | Mapping[str, Any], console: Console | None = None) -> None:
    """The run's headline table and the tables after it (stages, arrival, hop split, faults,
    stream copies, connection trouble, SLOs, checks not valid), from the typed summary (or
    summary.json's, read through its type)."""
    console = console or Console()
    summary = _typed(summary)
    console.print(_headline(summary))
    against = market_against_rows([summary.market]) if summary.market is not None else []
    if against and summary.market is not None and summary.market.venue is not None:
        lots = summary.market.venue.auctions  # the day's published figures beside the run's
        console.print(against_table(against, lots.unit if lots else None, summary.market.currency))

    # A live run sees no stage inside the broker (queue wait, service, block wait): no table.
    if is_simulated(summary.target):
        console.print(_stages_table(summary.latency_stages_ms))

    forks = summary.forks
    if forks and forks.arrival_by_region_ms:
        console.print(_arrival_table(forks.arrival_by_region_ms, summary.propagation_ms))
    for kind, split in (summary.hop_split or {}).items():
        console.print(_hop_split_table(kind, split))

    if summary.validators:
        console.print(_validators_table(summary.validators))
    if summary.faults:
        console.print(_faults_table(summary.faults))
    nodes = summary.delivery.nodes if summary.delivery else None
    if nodes:
        console.print(_copies_table(nodes))

    incidents = summary.connections.incidents if summary.connections else []
    if incidents:
        table = KeptTable(title="connection trouble", header_style="bold")
        for column in ("t (s)", "event", "client", "what it said"):
            table.add_column(column)
        for incident in incidents:
            # What clients and servers said is text, not markup: "[closed]" would vanish.
            table.add_row(_fmt(incident.t_s), incident.kind, escape(_fmt(incident.client)),
                          escape(broker_said(incident.error)))
        console.print(table)

    if summary.slo:
        console.print(_slo_table(summary.slo))
        for slo in summary.slo:  # a verdict on a bound, or none: why
            if slo.reason:
                console.print(f"{slo.name}: {slo.reason}", highlight=False, markup=False)

    # A checker's verdict other than valid (a safety violation, lost messages, a generator
    # behind) is said here too, not only in summary.json: the valid ones would only repeat.
    doubtful = [check for check in summary.checks if check.verdict != "valid"]
    if doubtful:
        console.print(_checks_table(doubtful))


def _stages_table(stages: Stages) -> KeptTable:
    """Where the time goes: each stage's p50 and p99 (a sim run's; a live run sees none)."""
    table = KeptTable(title="where the time goes", header_style="bold")
    table.add_column("stage")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    for stage, values in (("propagation", stages.propagation), ("queue_wait", stages.queue_wait),
                          ("service", stages.service), ("block_wait", stages.block_wait)):
        table.add_row(stage, duration_ms(values.p50), duration_ms(values.p99))
    return table


def _slo_table(slos: list[SloVerdict]) -> KeptTable:
    """Each SLO: its threshold, its value in the threshold's unit, the verdict."""
    table = KeptTable(title="SLOs", header_style="bold")
    for column in ("name", "threshold", "value", "verdict"):
        table.add_column(column)
    colours = {"pass": "green", "fail": "red", "unknown": "yellow"}
    for slo in slos:
        table.add_row(escape(slo.name), escape(slo.threshold), slo_shown(slo),
                      f"[{colours[slo.verdict]}]{slo.verdict}[/]")
    return table


def _checks_table(doubtful: list[Check]) -> KeptTable:
    """The checks whose verdict is not valid, with what each said."""
    table = KeptTable(title="checks not valid", header_style="bold")
    for column in ("check", "verdict", "detail"):
        table.add_column(column)
    colours = {"invalid": "red", "unknown": "yellow"}
    for check in doubtful:
        table.add_row(escape(check.name), f"[{colours.get(check.verdict, 'white')}]{check.verdict}[/]",
                      escape(check.detail))
    return table
