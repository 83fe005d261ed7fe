"""Terminal summary: the headline numbers of a run as rich tables, read from summary.json."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["print_summary", "rate_digits"]


def rate_digits(value: float) -> int:
    """Decimals a rate (per second) is shown with: none from 100/s, where a fraction of a
    message is noise (summary.json keeps the full value)."""
    size = abs(value)
    return 0 if size >= 100 else 1 if size >= 10 else 2


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        digits = rate_digits(value) if unit == "/s" else 3
        text = f"{value:,.{digits}f}".rstrip("0").rstrip(".") if digits and abs(value) < 1e6 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def _connections_line(connections: dict[str, Any]) -> str:
    """Disconnects and errors, the clients cut off (how long) and the servers that went away."""
    text = (f"disconnects {_fmt(connections.get('disconnects'))}, reconnects {_fmt(connections.get('reconnects'))}, "
            f"errors {_fmt(connections.get('errors'))}")
    clients = connections.get("clients") or {}
    if clients:
        text += "; down: " + ", ".join(f"{escape(name)} {_fmt(entry.get('down_s'))} s" for name, entry in clients.items())
    exited = connections.get("servers_exited") or []
    if exited:
        text += "; EXITED EARLY: " + ", ".join(f"{escape(str(e.get('name')))} (code {e.get('returncode')})"
                                               for e in exited)
    cleanup = connections.get("cleanup")
    if cleanup:
        stopped = f"{cleanup.get('servers_stopped')} server(s) stopped" + (
            f", {cleanup.get('proxies_closed')} proxy closed" if cleanup.get("proxies_closed") else "") + (
            f", resumed {', '.join(escape(n) for n in cleanup.get('resumed') or [])}" if cleanup.get("resumed") else "")
        text += (f"; cleanup verified ({stopped})" if cleanup.get("verified") else
                 "; CLEANUP LEFT: " + ", ".join(escape(str(what)) for what in cleanup.get("left") or []))
    return text


def _limit(capacity: dict[str, Any]) -> str:
    """What limited a live ramp, beside its knee: ``; limited by the generator (send lag p50
    4.2 ms; CPUs busy: publisher 1.0, nats-server 0.8 of 2)``."""
    limited_by = capacity.get("limited_by")
    if not limited_by:
        return ""
    at = capacity.get("at_limit") or {}
    facts = []
    if at.get("send_lag_p50_ms") is not None:
        facts.append(f"send lag p50 {_fmt(at['send_lag_p50_ms'])} ms")
    cpu = at.get("cpu_busy") or {}
    if cpu:
        machine = at.get("machine_cpus")
        facts.append("CPUs busy: " + ", ".join(f"{escape(name)} {cores:.2f}" for name, cores in cpu.items())
                     + (f" of {machine}" if machine else ""))
    who = {"generator": "the generator (msgstorm's own limit)", "machine CPU": "the machine's CPUs",
           "broker": "the broker"}.get(str(limited_by), str(limited_by))
    return f"; limited by {who}" + (f" ({'; '.join(facts)})" if facts else "")


def _market_rows(market: dict[str, Any]) -> list[tuple[str, str]]:
    """What delay cost, as rows of the summary table."""
    liquidations = market.get("liquidations") or {}
    delay = market.get("liquidation_delay_ms") or {}
    split = delay.get("split") or {}
    bad = market.get("bad_debt") or {}
    stale = market.get("price_staleness_ms") or {}
    rows = [
        ("liquidations", f"eligible {_fmt(liquidations.get('eligible'))}, triggered {_fmt(liquidations.get('triggered'))}, "
                         f"executed {_fmt(liquidations.get('executed'))}, late {_fmt(liquidations.get('late'))}, "
                         f"no-op {_fmt(liquidations.get('no_op'))}, not attempted "
                         f"{_fmt(liquidations.get('not_attempted'))}"),
        ("liquidation delay p50 / p99 / max", f"{_fmt(delay.get('p50'))} / {_fmt(delay.get('p99'))} / "
                                              f"{_fmt(delay.get('max'))} ms"),
    ]
    if split:
        rows.append(("delay split (mean)", f"oracle {_fmt(split.get('oracle'))}, keeper {_fmt(split.get('keeper'))}, "
                                           f"messaging {_fmt(split.get('messaging'))} ms"))
    rows.append(("bad debt", f"{_fmt(bad.get('absolute'))} ({_fmt(bad.get('pct_of_open_interest'))}% of open "
                             f"interest {_fmt(market.get('open_interest'))}), {_fmt(bad.get('accounts'))} accounts"))
    rows.append(("price staleness p50 / p99 / max", f"{_fmt(stale.get('p50'))} / {_fmt(stale.get('p99'))} / "
                                                    f"{_fmt(stale.get('max'))} ms"))
    return rows


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    title = f"msgstorm · {summary.get('scenario')} · seed {summary.get('seed')} · {summary.get('target')}"
    if summary.get("cut_off"):
        title += " · CUT OFF"
    elif summary.get("interrupted"):
        title += " · INTERRUPTED"
    head = Table(title=title, show_header=True, header_style="bold")
    head.add_column("metric")
    head.add_column("value", justify="right")
    head.add_row("offered rate", _fmt(summary.get("offered_rate_per_s"), "/s"))
    head.add_row("throughput", _fmt(summary.get("throughput_per_s"), "/s"))
    latency = summary.get("latency_ms") or {}
    head.add_row("latency p50 / p99 / p99.9",
                 " / ".join(_fmt(latency.get(k)) for k in ("p50", "p99", "p999")) + " ms")
    head.add_row("latency max / mean", f"{_fmt(latency.get('max'))} / {_fmt(latency.get('mean'))} ms")
    jitter = summary.get("jitter_ms") or {}
    head.add_row("jitter stddev / p99−p50",
                 f"{_fmt(jitter.get('stddev'))} / {_fmt(jitter.get('p99_minus_p50'))} ms")
    capacity = summary.get("capacity")
    head.add_row("capacity (knee)", (_fmt(capacity.get("knee_rate_per_s"), "/s") + _limit(capacity)) if capacity
                 else "— (no ramp)")
    failure = summary.get("failure_threshold")
    head.add_row("failure threshold",
                 f"{_fmt(failure.get('rate_per_s'), '/s')} ({failure.get('reason')})" if failure else "none fired")
    queue = summary.get("queue") or {}
    head.add_row("queue depth max / mean", f"{_fmt(queue.get('max_depth'))} / {_fmt(queue.get('mean_depth'))}")
    desync = summary.get("desync") or {}
    head.add_row("desync episodes / max gap",
                 f"{_fmt(desync.get('episodes'))} / {_fmt(desync.get('max_height_gap'))}")
    messages = summary.get("messages") or {}
    head.add_row("messages", ", ".join(f"{k} {_fmt(v)}" for k, v in messages.items()))
    generator = summary.get("generator")
    if generator:
        lag = generator.get("send_lag_ms") or {}
        unsent = int(generator.get("unsent") or 0)
        head.add_row("generator send lag p99 / max",
                     f"{_fmt(lag.get('p99'))} / {_fmt(lag.get('max'))} ms"
                     + (f"; unsent {_fmt(unsent)} (behind at the run's end)" if unsent else "")
                     + (" — SATURATED: the schedule was not kept" if generator.get("saturated") else ""))
    delivery = summary.get("delivery")
    if delivery:
        lost = delivery.get("lost") or {}
        head.add_row("delivery (received / expected)",
                     f"{_fmt(delivery.get('received'))} / {_fmt(delivery.get('expected'))}; lost {_fmt(lost.get('total'))}"
                     f" (prefix {_fmt(lost.get('prefix'))}, middle {_fmt(lost.get('middle'))}, "
                     f"postfix {_fmt(lost.get('postfix'))}), duplicated {_fmt(delivery.get('duplicated'))}, "
                     f"unexpected {_fmt(delivery.get('unexpected'))}, reordered {_fmt(delivery.get('reordered'))}")
        read_back = delivery.get("read_back")
        if read_back:
            head.add_row("stream read back (after the run)",
                         f"{_fmt(read_back.get('stored'))} messages in {_fmt(read_back.get('seconds'))} s"
                         if read_back.get("done") else
                         f"NOT DONE after {_fmt(read_back.get('seconds'))} s: {escape(str(read_back.get('error')))}")
    connections = summary.get("connections")
    if connections:
        head.add_row("connections", _connections_line(connections))
    market = summary.get("market")
    if market:
        for label, text in _market_rows(market):
            head.add_row(label, text)
    fairness = summary.get("fairness")
    if fairness:
        head.add_row("front-running", f"{_fmt(fairness.get('front_run_successes'))} of "
                                      f"{_fmt(fairness.get('front_run_attempts'))} races won, extracted "
                                      f"{_fmt(fairness.get('extracted_value'))} ({fairness.get('policy')})")
        head.add_row("order inversions", f"{_fmt(fairness.get('inversions'))} of {_fmt(fairness.get('pairs'))} pairs "
                                         f"(gamma {_fmt(fairness.get('gamma'))})")
    auction = summary.get("auction")
    if auction:
        deviation = auction.get("price_deviation_bps") or {}
        head.add_row("batch auction", f"{_fmt(auction.get('batches_cleared'))} of {_fmt(auction.get('batches'))} "
                                      f"batches cleared {_fmt(auction.get('cleared_volume'))}, fill rate "
                                      f"{_fmt(auction.get('fill_rate'))}")
        head.add_row("clearing price mean / last", f"{_fmt(auction.get('mean_clearing_price'))} / "
                                                   f"{_fmt(auction.get('last_clearing_price'))} "
                                                   f"(vs true price: rms {_fmt(deviation.get('rms'))} bps)")
    if summary.get("wall_s") is not None:
        head.add_row("wall time", _fmt(summary.get("wall_s"), " s"))
    console.print(head)

    # A live run sees no stage inside the broker (queue wait, service, block wait): no table.
    stages = summary.get("latency_stages_ms") or {} if summary.get("target") in (None, "sim") else {}
    if stages:
        table = Table(title="where the time goes (ms)", header_style="bold")
        table.add_column("stage")
        table.add_column("p50", justify="right")
        table.add_column("p99", justify="right")
        for stage, values in stages.items():
            table.add_row(stage, _fmt((values or {}).get("p50")), _fmt((values or {}).get("p99")))
        console.print(table)

    incidents = (connections or {}).get("incidents") or []
    if incidents:
        table = Table(title="connection trouble", header_style="bold")
        for column in ("t (s)", "event", "client", "what it said"):
            table.add_column(column)
        for incident in incidents:
            # What clients and servers said is text, not markup: "[closed]" would vanish.
            table.add_row(_fmt(incident.get("t_s")), str(incident.get("kind")), escape(_fmt(incident.get("client"))),
                          escape(_fmt(incident.get("error"))))
        console.print(table)

    slos = summary.get("slo") or []
    if slos:
        table = Table(title="SLOs", header_style="bold")
        for column in ("name", "threshold", "value", "verdict"):
            table.add_column(column)
        colours = {"pass": "green", "fail": "red", "unknown": "yellow"}
        for slo in slos:
            verdict = str(slo.get("verdict"))
            table.add_row(escape(str(slo.get("name"))), escape(str(slo.get("threshold"))), _fmt(slo.get("value")),
                          f"[{colours.get(verdict, 'white')}]{verdict}[/]")
        console.print(table)
