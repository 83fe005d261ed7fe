"""report.html's tables of the optional sections, each read from its typed section of the summary.

Place in the pipeline: sections of ``report/html.py``'s page, from ``Analysis.result`` (a
``Summary``): ordering fairness, authentication and integrity, the batch auction, forks and
block propagation, relay, the latency split per hop, and the counts by message kind and
agent. A section the run has not (``None`` on the summary) gives no section. Each table row
reads its field through the section's type (mypy checks the reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from msgstorm.analysis.hops import HOP_SPLIT_PATHS, HOP_STAGES
from msgstorm.analysis.summary_chain import Forks, Relay, Validators
from msgstorm.analysis.summary_model import Auction, Fairness, Group, Summary
from msgstorm.history.schema import STATUSES
from msgstorm.report.page import esc, table
from msgstorm.report.text import duration_ms, number

__all__ = ["auction_section", "fairness_section", "forks_section", "groups_section", "hop_split_section",
           "integrity_section", "relay_section", "validators_section"]

Section = list[tuple[str, str, str]]
_Model = TypeVar("_Model", bound=BaseModel)
# (label, how its value is read from the section, what it means)
_Row = tuple[str, Callable[[_Model], object], str]


def _metric_rows(section: _Model, rows: tuple[_Row[_Model], ...]) -> list[list[str]]:
    return [[esc(label), f'<td class="num">{esc(number(read(section)))}</td>', esc(note)] for label, read, note in rows]


_FAIRNESS_ROWS: tuple[_Row[Fairness], ...] = (
    ("queue policy", lambda f: f.policy, "sequencer.policy"),
    ("front-run attempts", lambda f: f.front_run_attempts, "races front-runners started"),
    ("front-run successes", lambda f: f.front_run_successes, "races whose order took effect before the victim's"),
    ("extracted value", lambda f: f.extracted_value, "what the won races earned: notional × the victim's price impact"),
    ("inversions", lambda f: f.inversions,
     "pairs a gamma share of the nodes received in one order, sequenced in the other"),
    ("inversion rate", lambda f: f.inversion_rate, "inversions / pairs compared"),
    ("pairs compared", lambda f: f.pairs,
     "committed messages received at every node, at most 1,000 sequence numbers apart"),
    ("gamma", lambda f: f.gamma, "the share of nodes that makes an inversion"),
)


def fairness_section(summary: Summary) -> Section:
    """The section "Ordering fairness" of a run with front-runners or an ordering protocol."""
    if not summary.fairness:
        return []
    rows = _metric_rows(summary.fairness, _FAIRNESS_ROWS)
    return [("fairness", "Ordering fairness", table(["metric", "value", "what"], rows, attrs='id="fairness-table"'))]


_INTEGRITY_ROWS = (
    ("tampered", "tampered", "messages an adversary altered on the way"),
    ("replayed", "replayed", "copies of earlier messages an adversary sent again"),
    ("replayed from another chain", "replayed_other_chain", "of those, copies signed on another chain"),
    ("detected", "detected", "rejected by verification (signature, nonce, chain id)"),
    ("accepted", "accepted", "taken as genuine: what the adversary got through"),
    ("censored", "censored", "kept out of the producer's queue (censor faults)"),
)


def integrity_section(summary: Summary) -> Section:
    """The section "Authentication and integrity": the scheme and its verification cost, what
    the adversaries did and the verdict (``analysis/integrity.py``), read from the typed sections."""
    security, integrity = summary.security, summary.integrity
    if not security and not integrity:
        return []
    parts = []
    if security and security.verify_cost_us is None:
        parts.append(f"<p>Scheme <b>{esc(str(security.scheme))}</b> ({esc(str(security.verify))}): "
                     "no message is signed or verified, so verifying costs nothing.</p>")
    elif security:
        sign = security.sign_cost_us
        parts.append(f"<p>Scheme <b>{esc(str(security.scheme))}</b> ({esc(str(security.verify))}): "
                     f"verifying a message costs {esc(number(security.verify_cost_us))} us of a receiving node's "
                     "CPU" + ("" if sign is None else f", signing it {esc(number(sign))} us")
                     + f" (from {esc(str(security.source))}).</p>")
    if integrity:
        forged = integrity.tampered + integrity.replayed
        accepted = integrity.accepted
        verdict = ("no tampered or replayed message" if not forged else
                   f"VALID: all {forged:,} tampered or replayed messages rejected" if not accepted else
                   f"INVALID: {accepted:,} of {forged:,} tampered or replayed messages accepted")
        parts.append(f'<p id="integrity-verdict">{esc(verdict)}</p>')
        counts = integrity.model_dump()
        rows = [[esc(label), f'<td class="num">{esc(number(counts[key]))}</td>', esc(note)]
                for label, key, note in _INTEGRITY_ROWS]
        parts.append(table(["metric", "value", "what"], rows, attrs='id="integrity-table"'))
    return [("integrity", "Authentication and integrity", "".join(parts))]


_AUCTION_ROWS: tuple[_Row[Auction], ...] = (
    ("batches", lambda a: a.batches, "batches in which at least one order took effect"),
    ("batches cleared", lambda a: a.batches_cleared, "batches in which orders crossed"),
    ("orders", lambda a: a.orders, "limit orders drawn for the order flow"),
    ("orders in batches", lambda a: a.orders_in_batches, "those that took effect"),
    ("cleared volume", lambda a: a.cleared_volume, "what the batches traded (one side)"),
    ("fill rate", lambda a: a.fill_rate, "filled share of the quantity that took effect"),
    ("mean clearing price", lambda a: a.mean_clearing_price, "over the batches that cleared"),
    ("last clearing price", lambda a: a.last_clearing_price, "the last batch's uniform price"),
    ("deviation, mean", lambda a: a.price_deviation_bps.mean, "clearing price vs the true price at the close, bps"),
    ("deviation, rms", lambda a: a.price_deviation_bps.rms, "its root mean square, bps"),
)


def auction_section(summary: Summary) -> Section:
    """The section "Batch auction" of a run whose batch auction cleared limit orders."""
    if not summary.auction:
        return []
    rows = _metric_rows(summary.auction, _AUCTION_ROWS)
    return [("auction", "Batch auction", table(["metric", "value", "what"], rows, attrs='id="auction-table"'))]


_FORK_ROWS: tuple[_Row[Forks], ...] = (
    ("blocks made", lambda f: f.blocks.made, "by every producer"),
    ("stale blocks", lambda f: f.blocks.stale, "off the canonical chain at the end"),
    ("stale rate", lambda f: f.blocks.stale_rate, "stale / made"),
    ("fork heights", lambda f: f.blocks.fork_heights, "heights with more than one block"),
    ("fork rate", lambda f: f.blocks.fork_rate, "fork heights / canonical height"),
    ("reorgs", lambda f: f.reorgs.count, "a node's view moved to another branch"),
    ("reorg depth, max", lambda f: f.reorgs.max_depth, "blocks one move dropped"),
    ("reorg depth, mean", lambda f: f.reorgs.mean_depth, "blocks dropped per move"),
    ("final reorgs", lambda f: f.reorgs.final, "canonical reorgs deeper than confirmations"),
    ("block arrival, p50", lambda f: f.arrival_ms.get("p50"), "ms after its making, at each other node"),
    ("block arrival, p90", lambda f: f.arrival_ms.get("p90"), "ms"),
    ("fork probability from arrivals", lambda f: f.expected.fork_probability if f.expected else None,
     "mean over blocks of 1 - exp(-sum of hash share x arrival / interval) (proof of work)"),
    ("its standard error", lambda f: f.expected.stderr if f.expected else None, "over the blocks"),
)


def forks_section(summary: Summary) -> Section:
    """The section "Forks" of a run with producers across the nodes."""
    forks = summary.forks
    if not forks:
        return []
    rows = _metric_rows(forks, _FORK_ROWS)
    for share, times in forks.reach_ms.items():
        for q, value in (("p50", times.p50), ("p90", times.p90)):
            rows.append([esc(f"reach {share} of nodes, {q}"), f'<td class="num">{esc(number(value))}</td>',
                         esc(f"ms from a block's making ({number(times.blocks_reached)} blocks got there)")])
    return [("forks", "Forks and block propagation", table(["metric", "value", "what"], rows,
                                                          attrs='id="forks-table"'))]


_RELAY_ROWS: tuple[_Row[Relay], ...] = (
    ("payloads sent", lambda r: r.payloads,
     "payload copies put on uplinks (pushes, answers, compact blocks, missing messages)"),
    ("announcements", lambda r: r.announcements, "received"),
    ("requests", lambda r: r.requests, "served: a payload sent on request"),
    ("fallbacks", lambda r: r.fallbacks, "requests to another peer after a timeout"),
    ("duplicates avoided", lambda r: r.duplicates_avoided, "announcements that led to no transfer"),
    ("compact duplicates", lambda r: r.compact.duplicates, "compact blocks a node had already"),
    ("getblocktxn", lambda r: r.compact.getblocktxn, "round trips for a block's missing messages"),
    ("missing messages", lambda r: r.compact.missing, "asked for in those round trips"),
    ("missing bytes", lambda r: r.compact.missing_bytes, "sent in answer"),
    ("messages held", lambda r: r.compact.held, "in compact blocks, held by their receivers already"),
)


def relay_section(summary: Summary) -> Section:
    """The section "Relay" of a sim run relaying by a protocol other than push."""
    relay = summary.relay
    if not relay:
        return []
    rows = _metric_rows(relay, _RELAY_ROWS)
    for region, total in relay.uploaded_bytes.items():
        rows.append([esc(f"uploaded, {region}"), f'<td class="num">{esc(number(total))}</td>',
                     esc(f"payload bytes, {number(relay.uploaded_bytes_per_node.get(region))} per node")])
    return [("relay", "Relay", table(["metric", "value", "what"], rows, attrs='id="relay-table"'))]


def hop_split_section(summary: Summary) -> Section:
    """The section "Latency split per hop": blocks' and sampled messages' time in each relay
    stage, in ms (means: along the path to a node, to each item's median node, in one hop)."""
    if not summary.hop_split:
        return []
    rows = []
    for kind, values in summary.hop_split.items():
        paths = {"path_ms": values.path_ms, "median_node_ms": values.median_node_ms, "hop_ms": values.hop_ms}
        for key, label in HOP_SPLIT_PATHS:
            stages = paths[key].model_dump()
            rows.append([esc(f"{kind}, {label}"),
                         *(f'<td class="num">{esc(number(stages[stage]))}</td>' for stage in (*HOP_STAGES, "total"))])
    return [("hops", "Latency split per hop",
             table(["item, mean over", *(f"{stage} (ms)" for stage in (*HOP_STAGES, "total"))], rows,
                   attrs='id="hop-split-table"'))]


_TIMELINE_ROWS = 500  # heights shown in the timeline, at most (the first ones)


def _num(value: object) -> str:
    return f'<td class="num">{esc(number(value))}</td>'


def validators_section(summary: Summary) -> Section:
    """The section "Validators" of a validator network's run: a row per validator, the
    evidence of misbehaviour the chain committed (when any), then the per-height timeline
    (round, proposer, interval since the height before)."""
    found: Validators | None = summary.validators
    if not found:
        return []
    rows = [[esc(v.name), *(_num(x) for x in (v.heights, v.proposed, v.rounds_above_0, v.interval_p50_ms,
                                              v.interval_max_ms, v.mempool_mean, v.mempool_max, v.height_lag_max))]
            for v in found.validators]
    per_validator = table(["validator", "heights", "proposed", "rounds above 0", "interval p50 (ms)",
                           "interval max (ms)", "mempool mean", "mempool max", "height lag max"], rows,
                          attrs='id="validators-table"')
    halt = (f"<p>Longest stretch without a commit: {esc(duration_ms(found.longest_halt_ms))}, from "
            f"{esc(number(found.halt_from_s))} s to {esc(number(found.halt_to_s))} s; the highest round any height "
            f"needed: {esc(number(found.max_round))}.</p>")
    shown = found.heights[:_TIMELINE_ROWS]
    timeline = table(["height", "first commit (s)", "round", "proposer", "interval (ms)"],
                     [[_num(h.height), _num(h.t_s), _num(h.round), esc(h.proposer), _num(h.interval_ms)]
                      for h in shown], attrs='id="heights-table"')
    more = (f"<p>The first {len(shown)} of {len(found.heights)} heights; every one is in summary.json's "
            "<code>validators.heights</code>.</p>") if len(found.heights) > len(shown) else ""
    sections: list[tuple[str, str, str]] = [("validators", "Validators", per_validator + halt)]
    if found.evidence:
        sections.append(("evidence", "Evidence committed", table(
            ["committed at (s)", "in height", "validator", "type", "votes at height", "round"],
            [[_num(e.t_s), _num(e.height), esc(e.validator), esc(e.type), _num(e.vote_height), _num(e.round)]
             for e in found.evidence], attrs='id="evidence-table"')))
    return [*sections, ("heights", "Heights, one by one", timeline + more)]


def _status_counts(group: Group) -> list[int]:
    """A group's counts in the order of the history's STATUSES."""
    by_status = {"committed": group.committed, "dropped": group.dropped, "rejected": group.rejected,
                 "lost": group.lost, "pending": group.pending, "unsent": group.unsent}
    return [by_status[status] for status in STATUSES]


def groups_section(summary: Summary) -> str:
    """Per message kind and per agent: counts by status and committed latency (typed ``Group``s)."""
    parts = []
    for groups, label, table_id in ((summary.by_kind, "kind", "by-kind"), (summary.by_agent, "agent", "by-agent")):
        rows = [[esc(name), f'<td class="num">{number(g.sent)}</td>',
                 *(f'<td class="num">{number(count)}</td>' for count in _status_counts(g)),
                 f'<td class="num">{duration_ms(g.latency_ms.p50)}</td>',
                 f'<td class="num">{duration_ms(g.latency_ms.p99)}</td>']
                for name, g in groups.items()]
        parts.append(f'<h2 style="margin-top:14px">By {label}</h2>' + (
            table([label, "sent", *STATUSES, "p50", "p99"], rows, attrs=f'id="{table_id}"') if rows
            else '<p class="note">No messages.</p>'))
    return "".join(parts)
