"""report.html's section "Scenario": the settings a run applied, in people's units.

Place in the pipeline: a section of ``report/html.py``'s page, read from the history's
validated scenario (as ``History.scenario`` holds it, times in ns): on the simulator the
network, sequencer, blocks and backpressure it modelled, on a live target its own driver's
[live] settings; the agents, the fault schedule and the whole scenario as run. Durations read
as durations and rates as rates (``report.text``), never raw nanoseconds.
"""

from __future__ import annotations

import json
from typing import Any

from msgstorm.history.reader import History
from msgstorm.history.schema import SIM_TARGET, is_simulated
from msgstorm.report.page import esc, table
from msgstorm.report.text import duration_ms, number
from msgstorm.scenario.registry import TARGETS

__all__ = ["scenario_facts", "scenario_section", "scenario_value"]


# Scenario keys whose numbers are durations in ns (``DurationNs`` fields of the scenario
# schema; the report loads no pydantic, so they are named here, and a test derives the same
# names from the schema: a new duration field unnamed here fails it). ``step``, ``start`` and
# ``decay`` are durations in some tables only: an arrival process's ``start`` and ``step`` are
# rates (``_ARRIVAL_RATE_KEYS`` comes first), a liquidation's ``decay`` is not shown here.
_DURATION_KEYS = frozenset({
    "at", "block_time", "close_delay", "control_overhead", "decay", "delay", "down", "drain", "duration", "every",
    "execution", "execution_per_tx", "failover_timeout", "finalize_per_tx", "flush_interval",
    "forced_inclusion_window", "grace", "granularity", "heartbeat", "interval", "intra_region_latency", "jitter",
    "latency", "linger", "max_delay", "max_interval", "max_wall_time", "min_duration", "min_interval", "over",
    "overhead", "prepare", "proof_check", "read_back_timeout", "recheck_per_tx", "record_every", "resolution",
    "restart_after", "reveal_delay", "round", "sample_interval", "send_timeout", "slice_delay", "slot", "spacing",
    "start", "start_timeout", "step", "stop", "tail", "tau", "timeout", "timeout_commit", "timeout_precommit",
    "timeout_precommit_delta", "timeout_prevote", "timeout_prevote_delta", "timeout_propose",
    "timeout_propose_delta", "timeout_vote", "ttl", "until", "verify_cost", "window"})
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


def scenario_value(key: str, value: Any, in_duration: bool = False, rate_keys: frozenset[str] = _RATE_KEYS) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key in rate_keys:
            return number(value, "/s")
        if key in _DURATION_KEYS or (in_duration and key not in _SHAPE_KEYS):
            return duration_ms(value / 1e6)
    if isinstance(value, dict):
        inner = in_duration or key in _DURATION_DISTS
        rates = _ARRIVAL_RATE_KEYS if "process" in value else _RATE_KEYS
        return "{" + ", ".join(f"{k}={scenario_value(k, v, inner, rates)}" for k, v in value.items()
                               if v is not None) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(scenario_value(key, v, in_duration, rate_keys) for v in value) + "]"
    return str(value)


def _live_tables() -> frozenset[str]:
    """The [live] tables of the live targets, one each (``TARGETS``): a run shows its own only."""
    return frozenset(name for name in TARGETS.builtin_names if not TARGETS[name].simulated)


def scenario_facts(scenario: dict[str, Any]) -> list[tuple[str, Any]]:
    """The settings that applied to the run: on the simulator the network, sequencer, blocks
    and backpressure it modelled; on a live target its [live] settings (its own driver's
    only), none of the simulator's."""
    target = str(scenario.get("target") or SIM_TARGET)
    run = scenario_value("run", scenario.get("run") or {})
    if not is_simulated(target):
        live = dict(scenario.get("live") or {})
        tables = _live_tables()
        own = {key: value for key, value in live.items() if key not in tables}
        return [("target", target), ("live", scenario_value("live", own)),
                *([(f"live.{target}", scenario_value(target, live[target]))] if live.get(target) else []),
                ("run", run)]
    network = scenario.get("network") or {}
    return [
        ("target", target),
        ("regions", _regions_value(network)),
        ("sequencer", scenario_value("sequencer", scenario.get("sequencer") or {})),
        ("blocks", scenario_value("blocks", scenario.get("blocks") or {})),
        ("backpressure", scenario_value("backpressure", scenario.get("backpressure") or {})),
        ("run", run),
    ]


def scenario_section(history: History) -> str:
    """The section "Scenario": the facts, the agents, the fault schedule and the scenario as run."""
    scenario = history.scenario
    facts = scenario_facts(scenario)
    parts = [table(["", ""], [[esc(k), esc(v)] for k, v in facts])]
    agents = scenario.get("agents") or []
    if agents:
        rows = [[esc(a.get("name")), esc(a.get("role")), f'<td class="num">{esc(a.get("count"))}</td>',
                 esc(a.get("region") or a.get("node") or "any"), esc(scenario_value("arrival", a.get("arrival") or {}))]
                for a in agents]
        parts.append('<h2 style="margin-top:14px">Agents</h2>' + table(["agent", "role", "count", "where", "arrival"], rows))
    faults = scenario.get("faults") or []
    if faults:
        rows = [[esc(f.get("kind")), esc(scenario_value("fault", {k: v for k, v in f.items() if k != "kind"}))]
                for f in faults]
        parts.append('<h2 style="margin-top:14px">Fault schedule</h2>' + table(["kind", "settings"], rows))
    text = json.dumps(scenario, indent=2, sort_keys=True)
    parts.append(
        "<details><summary>The full scenario as run (validated; times in ns, rates per second, sizes in bytes)"
        f"</summary><pre>{esc(text)}</pre></details>")
    return "".join(parts)
