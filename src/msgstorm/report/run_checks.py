"""report.html's section "Delivery checks and faults", from the typed summary.

Place in the pipeline: a section of ``report/html.py``'s page, read from ``Analysis.result``
(a ``Summary``): each checker's verdict; each fault, when it was active, the p99 before it
and how long the layer took to recover (``analysis/recovery.py``, worded by ``report.text``);
a replicated stream's copies read back node by node; a live run's connection trouble.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from msgstorm.analysis.connections import trouble_counts
from msgstorm.analysis.summary_model import (
    Check,
    Connections,
    Delivery,
    Fault,
    StreamReadBack,
    Summary,
)
from msgstorm.report.page import esc, table
from msgstorm.report.run_headline import verdict_badge
from msgstorm.report.text import (
    baseline_span,
    broker_said,
    duration_ms,
    duration_s,
    number,
    recovered_after,
    run_time_s,
)

__all__ = ["checks_section", "connections_table", "copies_table"]

_FAULTS_NOTE = ('<p class="note">P99 before: over the last whole seconds in a row, within the 5 s before the fault '
                "(after the fault before), in which the layer dropped no message; over: that span. "
                "Recovered after: from the fault's end to the first 100 ms with throughput at least 90% of offered "
                "and p99 at most twice the p99 before; no baseline: nothing to measure against, and why.</p>")


def _checks_table(checks: list[Check]) -> str:
    if not checks:
        return '<p class="note">No delivery checks ran.</p>'
    rows = [[esc(check.name), f'<td data-verdict="{esc(check.verdict)}">{verdict_badge(check.verdict)}</td>',
             esc(check.detail)] for check in checks]
    return table(["checker", "verdict", "detail"], rows, attrs='id="checks-table"')


def _whole_run_note(faults: list[Fault], whole_run: Collection[int | None]) -> str:
    """Which faults were in force for the whole run, and why the charts do not shade them."""
    named = [f"fault {fault.fault_id} ({fault.kind}, from {number(fault.start_s, ' s')} to "
             + (f"{number(fault.end_s, ' s')})" if fault.end_s is not None else "the end)")
             for fault in faults if fault.fault_id in whole_run]
    if not named:
        return ""
    return (f'<p class="note" id="whole-run-faults">In force for the whole run: {esc("; ".join(named))}. A condition '
            "of the run rather than an incident in it: the charts do not shade it.</p>")


def _faults_table(faults: list[Fault], whole_run: Collection[int | None] = ()) -> str:
    if not faults:
        return '<p class="note">No fault was active during the run.</p>'
    rows = [[esc(fault.fault_id), esc(fault.kind), f'<td class="num">{run_time_s(fault.start_s, 3)}</td>',
             f'<td class="num">{run_time_s(fault.end_s, 3) if fault.end_s is not None else "still active"}</td>',
             f'<td class="num">{duration_ms(fault.pre_fault_p99_ms)}</td>',
             f'<td class="num">{esc(baseline_span(fault))}</td>',
             f'<td class="num">{esc(recovered_after(fault))}</td>'] for fault in faults]
    return ('<h2 style="margin-top:16px">Faults</h2>'
            + table(["id", "kind", "start", "end", "p99 before", "over", "recovered after"], rows,
                    attrs='id="faults-table"') + _whole_run_note(faults, whole_run) + _FAULTS_NOTE)


def checks_section(summary: Summary, whole_run: Collection[int | None] = ()) -> str:
    """Checks, faults, the stream's copies node by node and the connection trouble;
    ``whole_run``: the ids of the faults in force for the whole run (``series.whole_run_faults``)."""
    return (_checks_table(summary.checks) + _faults_table(summary.faults, whole_run) + copies_table(summary.delivery)
            + connections_table(summary.connections))


def copies_table(delivery: Delivery | None) -> str:
    """Each server's own copy of the stream, read back node by node (a replicated stream)."""
    nodes: Mapping[str, StreamReadBack | None] = (delivery.nodes if delivery else None) or {}
    if not nodes:
        return ""
    rows = [[esc(node), *(
        [f'<td class="num">{number(count)}</td>'
         for count in (copy.stored, copy.acked_missing, copy.duplicated, copy.unexpected)]
        if copy is not None else ["not read", "—", "—", "—"])] for node, copy in nodes.items()]
    return ('<h2 style="margin-top:16px">Stream copies, node by node</h2><p class="note">Each server\'s own copy '
            "of the stream, read back from that server alone after the run, against what was acked.</p>"
            + table(["node", "stored", "acked, missing", "duplicated", "unexpected"], rows, attrs='id="copies-table"'))


def connections_table(connections: Connections | None) -> str:
    """A live run's connection trouble: the counts, then each incident (empty on the simulator)."""
    if connections is None:
        return ""
    if not connections.incidents:
        return '<p class="note">No client lost its connection and no server went away.</p>'
    down = "; ".join(f"{esc(name)} down {duration_s(entry.down_s)}" for name, entry in connections.clients.items())
    note = (f'<p class="note">{esc(trouble_counts(connections.model_dump(mode="json")))}'
            + (f"; {down}" if down else "") + ".</p>")
    rows = [[f'<td class="num">{number(incident.t_s, " s")}</td>', esc(incident.kind), esc(incident.client),
             esc(broker_said(incident.error) if incident.error else "")] for incident in connections.incidents]
    return ('<h2 style="margin-top:16px">Connection trouble</h2>' + note
            + table(["time", "event", "client", "what it said"], rows, attrs='id="connections-table"'))
