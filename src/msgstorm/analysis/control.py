"""Self-healing controllers: what each decided and what it shed, read from ``control`` events.

Place in the pipeline: analysis, beside ``failure`` (which excuses a throttle's own drops)
and before the reports (``report/control.py`` draws the decisions read here; the terminal
and summary.json say what each controller did). A controller (``sim/control.py``) records a
``control`` event at each decision: value, its new output; detail, the controller, its
output before, the strain it saw and (a throttle) the arrivals it had shed so far.

``control_summary``: ``{controller: {decisions, output, lowest, highest, last, shed,
sheds}}``, or None for a run without decisions. ``output`` names what the values are:
``admitted_share`` (a throttle: the share of its non-essential kinds' arrivals admitted) or
``block_interval_ms`` (``block_time``). ``shed``: the arrivals a throttle had shed by its
last decision (null for a controller that sheds nothing); ``sheds``: the kinds it may shed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from msgstorm.analysis._common import NS_PER_S, events_of, scenario_section
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["OUTPUTS", "Decision", "controller_decisions", "control_summary", "throttle_sheds"]

# controller -> (what its output is, the factor from the event's value to that unit)
OUTPUTS: dict[str, tuple[str, float]] = {
    "throttle": ("admitted_share", 1.0),
    "block_time": ("block_interval_ms", 1e-6),
}


@dataclass(frozen=True)
class Decision:
    """One decision: when (seconds into the run), the output it set (the event's value, in
    the controller's own unit), the strain it read, and the arrivals shed by then (None for
    a controller that does not count them)."""

    t_s: float
    output: float
    strain: float
    shed: int | None


@dataclass(frozen=True)
class Decisions:
    """A controller's decisions: the strain signal it reads, its output before the first,
    and every decision in time order."""

    signal: str
    first: float
    made: list[Decision]


def controller_decisions(history: History) -> dict[str, Decisions]:
    """controller -> its decisions, from the history's ``control`` events."""
    rows = events_of(history, EventKind.CONTROL)
    details = rows.events.column("detail").to_pylist()
    out: dict[str, Decisions] = {}
    for t, value, row in zip(rows.t.tolist(), rows.value.tolist(), rows.rows.tolist(), strict=True):
        detail = json.loads(details[row] or "{}")
        name = str(detail.get("controller"))
        signal = str(detail.get("signal") or ("block_backlog_blocks" if name == "block_time" else "queue_depth"))
        shed = int(detail["shed"]) if "shed" in detail else None
        decisions = out.setdefault(name, Decisions(signal, float(detail.get("previous", value)), []))
        decisions.made.append(Decision(t / NS_PER_S, value, float(detail.get("strain", 0.0)), shed))
    return out


def throttle_sheds(history: History) -> list[str]:
    """The kinds a throttle of the scenario may shed (none without a throttle)."""
    controllers = history.scenario.get("controllers") or []
    return sorted({str(kind) for spec in controllers if isinstance(spec, dict) and spec.get("kind") == "throttle"
                   for kind in spec.get("nonessential") or []})


def control_summary(history: History) -> dict[str, Any] | None:
    """What each controller did (see the module docstring); None without decisions."""
    decisions = controller_decisions(history)
    if not decisions:
        return None
    sheds = throttle_sheds(history)
    summary: dict[str, Any] = {}
    for name, of in decisions.items():
        output, scale = OUTPUTS.get(name, (f"{name}_output", 1.0))
        values = [decision.output * scale for decision in of.made]
        shed = of.made[-1].shed
        summary[name] = {"decisions": len(of.made), "output": output, "lowest": round(min(values), 6),
                         "highest": round(max(values), 6), "last": round(values[-1], 6), "shed": shed,
                         "sheds": sheds if name == "throttle" else []}
    return summary


def backpressure_drops(history: History) -> bool:
    """Whether the scenario's backpressure may drop arrivals (any mode but ``unbounded``)."""
    return str(scenario_section(history, "backpressure").get("mode", "unbounded")) != "unbounded"
