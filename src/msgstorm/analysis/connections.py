"""Connection trouble of a live run: clients cut off, their errors, servers that went away.

Place in the pipeline: one analysis step, reading the ``disconnected``, ``reconnected``,
``client_error`` and ``server_stop`` events a live target records (``history/events.py``).
Lost messages say that something went wrong; these say what and when: a consumer the
broker cut off as too slow, a server that died, a publisher that dropped while it
reconnected. ``connections_summary`` gives summary.json's ``connections`` (null on the
simulator, and for a live run cut off before it could write its events):

- ``disconnects``, ``reconnects``, ``errors``: how many of each event. An outage is one
  disconnect however long it lasts: the drivers count the failed reconnect attempts into
  it (``attempts`` in its ``reconnected`` event, or in the one ``client_error`` of an
  outage the run's end found open), and that closing ``client_error`` is not an error.
- ``clients``: {client: {disconnects, down_s, reconnect_attempts}}, ``down_s`` the time from
  each disconnect to its reconnection (to the run's end when it never came back), for every
  client that lost its connection at least once.
- ``servers_exited``: [{name, returncode}] of the servers msgstorm started that had exited
  on their own (killed, crashed) before msgstorm stopped them.
- ``incidents``: the first ``INCIDENTS_SHOWN`` of these events in time order, each {t_s,
  kind, client, error}: the disconnect or error with what the client or server said (a
  disconnect adds how many reconnect attempts failed, and the last one's error).
"""

from __future__ import annotations

from typing import Any

from msgstorm.analysis._common import events_of, rounded, run_t_end_ns, seconds
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["INCIDENTS_SHOWN", "connections_summary", "down_spans", "trouble_counts"]

INCIDENTS_SHOWN = 20


def _error_text(detail: dict[str, Any]) -> str | None:
    """What a client_error (or a server stop) says, in one line."""
    if "error" in detail:
        text = str(detail["error"])
        counts = [f"{detail[key]:,} {what}" for key, what in (("dropped", "messages"), ("refused", "refused"),
                                                                  ("ack_timeouts", "acks overdue"))
                  if isinstance(detail.get(key), int) and detail[key]]
        return text + (f" ({', '.join(counts)})" if counts else "")
    if "refused" in detail:
        return f"{detail['refused']:,} publishes refused"
    if "returncode" in detail:
        return f"exited with code {detail['returncode']} before msgstorm stopped it"
    return None


def trouble_counts(connections: dict[str, Any]) -> str:
    """"2 disconnects, 1 reconnect, 0 errors, 1 server exited early": the summary's counts in words."""
    def counted(n: int, one: str, many: str) -> str:
        return f"{n:,} {one if n == 1 else many}"

    exited = len(connections.get("servers_exited") or [])
    return ", ".join([counted(int(connections.get("disconnects") or 0), "disconnect", "disconnects"),
                      counted(int(connections.get("reconnects") or 0), "reconnect", "reconnects"),
                      counted(int(connections.get("errors") or 0), "error", "errors"),
                      counted(exited, "server exited early", "servers exited early")])


def down_spans(history: History) -> list[tuple[str, int, int | None]]:
    """(client, disconnected at, reconnected at or None when it never came back) of every
    disconnect, in time order: what the report shades. Empty on the simulator."""
    if history.is_simulated:
        return []
    rows = events_of(history, EventKind.DISCONNECTED, EventKind.RECONNECTED)
    spans: list[tuple[str, int, int | None]] = []
    open_at: dict[str, int] = {}  # client -> index of its open span
    for t, kind, detail in zip(rows.t.tolist(), rows.kinds(), rows.details()):
        client = detail.get("client")
        if client is None:
            continue
        name = str(client)
        if kind == EventKind.DISCONNECTED and name not in open_at:
            open_at[name] = len(spans)
            spans.append((name, t, None))
        elif kind == EventKind.RECONNECTED and name in open_at:
            index = open_at.pop(name)
            spans[index] = (name, spans[index][1], t)
    return spans


def connections_summary(history: History) -> dict[str, Any] | None:
    if history.is_simulated or history.cut_off:
        return None  # a live run writes its events at its end: a run cut off first cannot tell
    rows = events_of(history, EventKind.DISCONNECTED, EventKind.RECONNECTED, EventKind.CLIENT_ERROR,
                     EventKind.SERVER_STOP)
    counts = {EventKind.DISCONNECTED: 0, EventKind.RECONNECTED: 0, EventKind.CLIENT_ERROR: 0}
    clients: dict[str, dict[str, Any]] = {}
    exited: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    outages: dict[str, dict[str, Any] | None] = {}  # client -> its open outage's incident (None: not shown)
    for t, kind, detail in zip(rows.t.tolist(), rows.kinds(), rows.details()):
        client = detail.get("client")
        name = str(client) if client is not None else None
        attempts = detail.get("attempts")
        if name is not None and isinstance(attempts, int) and kind != EventKind.DISCONNECTED:
            # The end of an outage (reconnected, or still down at the run's end): its failed
            # reconnect attempts are a detail of the one disconnect, not errors of their own.
            entry = clients.setdefault(name, {"disconnects": 0, "down_s": 0.0, "reconnect_attempts": 0})
            entry["reconnect_attempts"] += attempts
            incident = outages.pop(name, None)
            if incident is not None and attempts:
                last = detail.get("last_error")
                said = f"{attempts:,} reconnect attempt{'s' if attempts != 1 else ''} failed" + (
                    f", the last: {last}" if last else "")
                incident["error"] = f"{incident['error']}; {said}" if incident["error"] else said
            if kind == EventKind.CLIENT_ERROR:
                continue
        if kind == EventKind.SERVER_STOP:
            if not detail.get("exited_early"):
                continue  # stopped by msgstorm at the end
            exited.append({"name": detail.get("name"), "returncode": detail.get("returncode")})
            name = str(detail.get("name"))
        else:
            counts[EventKind(kind)] += 1
        if kind == EventKind.DISCONNECTED and name is not None:
            clients.setdefault(name, {"disconnects": 0, "down_s": 0.0, "reconnect_attempts": 0})["disconnects"] += 1
        if kind != EventKind.RECONNECTED and len(incidents) < INCIDENTS_SHOWN:
            incidents.append({"t_s": seconds(t), "kind": str(kind), "client": name, "error": _error_text(detail)})
            if kind == EventKind.DISCONNECTED and name is not None:
                outages[name] = incidents[-1]
        elif kind == EventKind.DISCONNECTED and name is not None:
            outages[name] = None
    t_end = run_t_end_ns(history)
    down_ns: dict[str, int] = {}
    for name, start, end in down_spans(history):
        down_ns[name] = down_ns.get(name, 0) + max((t_end if end is None else end) - start, 0)
    for name, entry in clients.items():
        entry["down_s"] = rounded(down_ns.get(name, 0) / 1e9)
    cleanup = events_of(history, EventKind.CLEANUP).details()
    return {"disconnects": counts[EventKind.DISCONNECTED], "reconnects": counts[EventKind.RECONNECTED],
            "errors": counts[EventKind.CLIENT_ERROR], "clients": clients, "servers_exited": exited,
            "incidents": incidents, "cleanup": _cleanup(cleanup[-1]) if cleanup else None}


def _cleanup(detail: dict[str, Any]) -> dict[str, Any]:
    """The run's end as verified: what was stopped, closed and resumed, and what was left."""
    left = [str(what) for what in detail.get("left") or []]
    return {"verified": not left, "servers_stopped": int(detail.get("servers_stopped") or 0),
            "proxies_closed": int(detail.get("proxies_closed") or 0),
            "resumed": [str(name) for name in detail.get("resumed") or []], "left": left}
