"""report.html's headline: the cards of a run's numbers and its SLO verdicts, from the typed summary.

Place in the pipeline: a section of ``report/html.py``'s page, read from ``Analysis.result``
(a ``Summary``): offered and achieved rate, what delay cost (the market's cards), latency and jitter, the knee
and what limited it, the failure threshold, what a throttle shed on purpose, messages, queue,
desync and run time; then the SLO table. Numbers and durations are worded by ``report.text``.
"""

from __future__ import annotations

from collections.abc import Mapping

from msgstorm.analysis.summary_model import (
    Capacity,
    Controller,
    Group,
    Latency,
    Market,
    SloVerdict,
    Summary,
)
from msgstorm.history.schema import is_simulated
from msgstorm.report.collateral import market_bad_debt_label
from msgstorm.report.headline_terms import covered_first, past_bankruptcy
from msgstorm.report.page import esc, table
from msgstorm.report.text import amount, duration_ms, duration_s, failure_where, number, slo_shown

__all__ = ["card", "headline", "spectrum_table", "verdict_badge"]


def card(label: str, value: str, sub: str = "") -> str:
    """One headline card: a label, a value (HTML) and a line under it (HTML)."""
    sub_html = f'<div class="sub">{sub}</div>' if sub else ""
    return f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{value}</div>{sub_html}</div>'


def verdict_badge(verdict: str) -> str:
    """A verdict (pass, fail, valid, ...) as its coloured badge."""
    text = esc(verdict)
    return f'<span class="verdict verdict-{text}">{text}</span>'


def _market_cards(market: Market | None, bad_debt_label: str) -> list[str]:
    """What delay cost, in the headline: bad debt and the liquidations (the section "What
    delay cost" has the rest)."""
    if market is None:
        return []
    bad, liquidations = market.bad_debt, market.liquidations
    covered = covered_first(market.venue, market.currency)
    return [
        card(bad_debt_label, esc(amount(bad.absolute, market.currency)),
             esc((f"after {covered}; " if covered else "") + f"{number(bad.pct_of_open_interest)}% of open "
                 f"interest, {number(bad.accounts)} accounts")),
        card("liquidations executed", esc(number(liquidations.executed)),
             esc(f"of {number(liquidations.eligible)} eligible; {past_bankruptcy(liquidations)}, "
                 f"not attempted {number(liquidations.not_attempted)}")),
    ]


def _control_cards(control: Mapping[str, Controller], by_kind: Mapping[str, Group]) -> list[str]:
    """What a self-healing throttle shed on purpose (not a failure: its own decision)."""
    cards = []
    for name, done in control.items():
        if done.output != "admitted_share":
            continue
        kinds = ", ".join(f"{kind} {number(group.dropped if group else None)} of "
                          f"{number(group.sent if group else None)}"
                          for kind, group in ((kind, by_kind.get(kind)) for kind in done.sheds))
        cards.append(card(f"{name}: shed on purpose", esc(number(done.shed)), esc(kinds + " dropped")))
    return cards


def _slo_table(slos: list[SloVerdict]) -> str:
    """Each SLO: its threshold, its value in the threshold's unit, the verdict."""
    if not slos:
        return '<p class="note" id="slo-table-empty">The scenario sets no SLOs.</p>'
    why = any(slo.reason for slo in slos)  # a verdict on a bound, or none: why, in a column of its own
    rows = [[esc(slo.name), esc(slo.threshold), f'<td class="num">{esc(slo_shown(slo))}</td>',
             f'<td data-verdict="{esc(slo.verdict)}">{verdict_badge(slo.verdict)}</td>',
             *([esc(slo.reason or "")] if why else [])] for slo in slos]
    return table(["SLO", "threshold", "value", "verdict", *(["why"] if why else [])], rows, attrs='id="slo-table"')


def _capacity_card(capacity: Capacity | None) -> str:
    """The knee and what limited it; a ramp that passed every step reached no knee: its
    highest rate is only a lower bound."""
    if capacity is None:
        return card("capacity (knee)", "—", "no step ramp")
    if not capacity.knee_reached:
        return card("capacity (knee)", esc(f"≥ {number(capacity.knee_rate_per_s, '/s')}"),
                    "no knee reached: every step passed")
    return card("capacity (knee)", number(capacity.knee_rate_per_s, "/s"),
                f"limited by {esc(capacity.limited_by)}" if capacity.limited_by else "step ramp")


def _queue_cards(summary: Summary) -> list[str]:
    """The queue's card; none on a live run that saw no queue (a broker's is inside it: the
    page's note says what a live run cannot see), rather than a card of dashes."""
    if not is_simulated(summary.target) and summary.queue.max_depth is None:
        return []
    return [card("queue depth max", number(summary.queue.max_depth),
                 f"mean over time {number(summary.queue.mean_depth)}; every message in queue_wait "
                 "(the base-fee pool's too), as the queue chart draws it")]


def headline(summary: Summary) -> str:
    """The section "Headline": a note when the run was cut off or interrupted, the cards, the SLOs."""
    latency, jitter, messages = summary.latency_ms, summary.jitter_ms, summary.messages
    capacity, failure = summary.capacity, summary.failure_threshold
    not_committed = (("dropped", messages.dropped), ("rejected", messages.rejected), ("lost", messages.lost),
                     ("pending", messages.pending), ("unsent", messages.unsent))
    cards = [
        card("offered rate", number(summary.offered_rate_per_s, "/s")),
        card("throughput (committed)", number(summary.throughput_per_s, "/s")),
        *_market_cards(summary.market, market_bad_debt_label(summary)),
        card("latency p50", duration_ms(latency.p50)),
        card("latency p99", duration_ms(latency.p99), f"p99.9 {duration_ms(latency.p999)}"),
        card("latency max", duration_ms(latency.max), f"mean {duration_ms(latency.mean)}"),
        card("jitter (stddev)", duration_ms(jitter.stddev), f"p99−p50 {duration_ms(jitter.p99_minus_p50)}"),
        _capacity_card(capacity),
        card("failure threshold", number(failure.rate_per_s, "/s") if failure else "none",
             esc(f"{failure.reason} {failure_where(failure, capacity is not None)}") if failure
             else "no criterion fired"),
        *_control_cards(summary.control or {}, summary.by_kind),
        card("messages committed", number(messages.committed), f"of {number(messages.sent)} sent"),
        card("not committed", number(sum(count for _, count in not_committed)),
             ", ".join(f"{status} {number(count)}" for status, count in not_committed)),
        *_queue_cards(summary),
        card("desync episodes", number(summary.desync.episodes),
             f"max height gap {number(summary.desync.max_height_gap)}"),
        card("run time", duration_s(summary.duration_s),
             f"wall {duration_s(summary.wall_s)}" if summary.wall_s is not None else ""),
    ]
    if summary.cut_off:
        interrupted = ('<p class="note"><b>This run was cut off</b> (killed before it could finish): numbers '
                       'cover what was flushed to the history before the kill.</p>')
    elif summary.interrupted:
        interrupted = '<p class="note"><b>This run was interrupted</b>: numbers cover what was recorded.</p>'
    else:
        interrupted = ""
    return (f'{interrupted}<div class="cards">{"".join(cards)}</div><h2 style="margin-top:16px">SLO verdicts</h2>'
            f"{_slo_table(summary.slo)}")


def spectrum_table(latency: Latency) -> str:
    """The percentiles under the spectrum plot: p50, p90, p99, p99.9 and max."""
    names = [("50%", latency.p50), ("90%", latency.p90), ("99%", latency.p99), ("99.9%", latency.p999),
             ("max", latency.max)]
    return table([label for label, _ in names], [[f'<td class="num">{duration_ms(value)}</td>' for _, value in names]])
