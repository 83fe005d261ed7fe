"""A live run's connection trouble on hand-built histories: counts, time down, servers that
exited early, the incidents in time order; null on the simulator."""

from __future__ import annotations

from pathlib import Path

from test_analysis_history import MS, S, event, message, write_history

from msgstorm.analysis.connections import INCIDENTS_SHOWN, connections_summary
from msgstorm.analysis.summary import analyse
from msgstorm.report.html import render_run_report
from msgstorm.report.series import shaded_spans
from msgstorm.report.terminal import print_summary


def _live(tmp_path: Path, events: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    rows = [message(i, i * MS, status="committed", t_sent=i * MS + 1) for i in range(5)]
    return write_history(tmp_path, rows, [event(0, "run_start", target="nats", fanout=True, acks=False, consumers=2),
                                          *events], target="nats", t_end=5 * S)


def test_disconnects_pair_with_reconnects_and_one_never_back_is_down_to_the_end(tmp_path: Path) -> None:
    history = _live(tmp_path, [
        event(1 * S, "disconnected", client="c0"),
        event(1 * S + 250 * MS, "reconnected", client="c0"),
        event(2 * S, "disconnected", client="c0"),
        event(2 * S + 100 * MS, "reconnected", client="c0"),
        event(4 * S, "disconnected", client="c1"),  # never back: down until t_end (5 s)
        event(int(1.5 * S), "client_error", client="c0", error="nats-server: Slow Consumer Detected"),
        event(5 * S, "server_stop", name="nats-server", returncode=0),  # stopped by msgstorm: no incident
    ])
    summary = connections_summary(history)
    assert summary is not None
    assert (summary["disconnects"], summary["reconnects"], summary["errors"]) == (3, 2, 1)
    assert summary["clients"] == {"c0": {"disconnects": 2, "down_s": 0.35, "reconnect_attempts": 0},
                                  "c1": {"disconnects": 1, "down_s": 1.0, "reconnect_attempts": 0}}
    assert summary["servers_exited"] == []
    assert [(i["t_s"], i["kind"], i["client"]) for i in summary["incidents"]] == [
        (1.0, "disconnected", "c0"), (1.5, "client_error", "c0"), (2.0, "disconnected", "c0"),
        (4.0, "disconnected", "c1")]
    assert summary["incidents"][1]["error"] == "nats-server: Slow Consumer Detected"
    # The report shades each span without a connection, the open one up to the run's end.
    spans = [(s.label, s.start_s, s.end_s) for s in shaded_spans(history, analyse(history))
             if s.kind == "disconnected"]
    assert spans == [("disconnected: c0", 1.0, 1.25), ("disconnected: c0", 2.0, 2.1), ("disconnected: c1", 4.0, 5.0)]


def test_a_server_that_exited_on_its_own_is_named_with_its_code(tmp_path: Path) -> None:
    history = _live(tmp_path, [
        event(2 * S, "disconnected", client="msgstorm-publisher"),
        event(5 * S, "server_stop", name="nats-server", returncode=-9, exited_early=True),
        event(5 * S, "client_error", client="msgstorm-publisher", error="publishes dropped while disconnected",
              dropped=1234),
    ])
    summary = connections_summary(history)
    assert summary is not None
    assert summary["servers_exited"] == [{"name": "nats-server", "returncode": -9}]
    assert summary["clients"]["msgstorm-publisher"] == {"disconnects": 1, "down_s": 3.0, "reconnect_attempts": 0}
    errors = {i["kind"]: i["error"] for i in summary["incidents"]}
    refused = _live(tmp_path / "refused", [event(S, "client_error", client="msgstorm-publisher", refused=7,
                                                error="OOM command not allowed")])
    said = connections_summary(refused)
    assert said is not None and said["incidents"][0]["error"] == "OOM command not allowed (7 refused)"
    assert errors["server_stop"] == "exited with code -9 before msgstorm stopped it"
    assert errors["client_error"] == "publishes dropped while disconnected (1,234 messages)"


def test_incidents_stop_at_the_first_twenty_but_counts_do_not(tmp_path: Path) -> None:
    events = [event(i * 10 * MS, kind, client="c0") for i in range(1, 61)
              for kind in ("disconnected", "reconnected")]
    summary = connections_summary(_live(tmp_path, events))
    assert summary is not None
    assert summary["disconnects"] == summary["reconnects"] == 60
    assert len(summary["incidents"]) == INCIDENTS_SHOWN
    assert [i["t_s"] for i in summary["incidents"]] == [round(i * 0.01, 9) for i in range(1, INCIDENTS_SHOWN + 1)]


def test_a_live_run_cut_off_before_it_wrote_its_events_cannot_tell(tmp_path: Path) -> None:
    """A live run writes its events at its end: after a SIGKILL the history has none, which
    says nothing about its connections (not "no trouble")."""
    _live(tmp_path, [])
    import pyarrow as pa
    import pyarrow.parquet as pq

    from msgstorm.history import read_history

    part = next((tmp_path / "history" / "run").glob("part-*.parquet"))
    row = pq.read_table(part)
    flags = pa.array([False] * row.num_rows)
    pq.write_table(row.set_column(row.schema.get_field_index("completed"), "completed", flags), part)
    cut = read_history(tmp_path)  # its run row is the one written at the start: killed before the end
    assert cut.cut_off
    assert connections_summary(cut) is None


def test_a_clean_live_run_has_zero_trouble_and_the_simulator_none(tmp_path: Path) -> None:
    live = analyse(_live(tmp_path / "live", [])).summary
    assert live["connections"] == {"disconnects": 0, "reconnects": 0, "errors": 0, "clients": {},
                                   "servers_exited": [], "incidents": [], "cleanup": None}
    sim = write_history(tmp_path / "sim", [message(0, 0, status="committed")], [], target="sim")
    assert analyse(sim).summary["connections"] is None


def test_the_terminal_and_the_page_show_the_trouble(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console

    history = _live(tmp_path, [event(1 * S, "disconnected", client="msgstorm-consumer-0"),
                               event(1 * S, "client_error", client="msgstorm-consumer-0",
                                     error="nats-server: Slow Consumer Detected: MaxPending of 67108864 Exceeded")])
    analysis = analyse(history)
    print_summary(analysis.summary, Console(width=200, force_terminal=False))
    out = capsys.readouterr().out
    assert "disconnects 1, reconnects 0, errors 1; down: msgstorm-consumer-0 4 s" in out
    assert "Slow Consumer Detected: MaxPending of 67108864 Exceeded" in out
    page = render_run_report(history, analysis)
    # What clients and servers say is text, never terminal markup.
    summary = {**analysis.summary, "connections": {**analysis.summary["connections"], "incidents": [
        {"t_s": 1.0, "kind": "client_error", "client": "c[0]", "error": "socket [closed] [/x]"}]}}
    print_summary(summary, Console(width=200, force_terminal=False))
    assert "socket [closed] [/x]" in capsys.readouterr().out
    assert 'id="connections-table"' in page and "Slow Consumer Detected" in page
    assert "1 disconnect, 0 reconnects, 1 error, 0 servers exited early; msgstorm-consumer-0 down 4 s." in page


def test_an_outage_is_one_disconnect_with_its_reconnect_attempts_as_detail(tmp_path: Path) -> None:
    """A client retrying every 100 ms through a long outage is one disconnect: the failed
    attempts its driver counted are a detail of it, not errors (one that never came back
    ends in a closing client_error, folded the same way)."""
    history = _live(tmp_path, [
        event(1 * S, "disconnected", client="control"),
        event(3 * S, "reconnected", client="control", attempts=19, last_error="ConnectionRefusedError: refused"),
        event(4 * S, "disconnected", client="c0", error="-ERR 'Slow Consumer'"),
        event(5 * S, "client_error", client="c0", attempts=9, last_error="OSError: down",
              error="still disconnected at the run's end"),
        event(5 * S, "client_error", client="msgstorm-publisher", error="publishes dropped while disconnected",
              dropped=40),
    ])
    summary = connections_summary(history)
    assert summary is not None
    assert (summary["disconnects"], summary["reconnects"], summary["errors"]) == (2, 1, 1)
    assert summary["clients"] == {"control": {"disconnects": 1, "down_s": 2.0, "reconnect_attempts": 19},
                                  "c0": {"disconnects": 1, "down_s": 1.0, "reconnect_attempts": 9}}
    said = {(i["kind"], i["client"]): i["error"] for i in summary["incidents"]}
    assert said == {
        ("disconnected", "control"): "19 reconnect attempts failed, the last: ConnectionRefusedError: refused",
        ("disconnected", "c0"): "-ERR 'Slow Consumer'; 9 reconnect attempts failed, the last: OSError: down",
        ("client_error", "msgstorm-publisher"): "publishes dropped while disconnected (40 messages)"}
