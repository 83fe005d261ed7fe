"""The calibrated twin as a scenario file: a one-node sim scenario with the source's traffic.

Place in the pipeline: ``analysis/calibrate.py`` -> ``Calibration`` -> **twin_toml** ->
``twin.toml`` -> ``msgstorm run twin.toml``. The twin keeps the source run's ``[run]``,
``[[agents]]``, ``[analysis]``, ``[history]``, ``[limits]`` and ``[slo]`` (so it replays the
same traffic and judges its knee the same way) and replaces the rest with the fit:

- one node, whose CPU costs nothing (``network.processing = 0``): a one-node network has no
  links, and its CPU is a FIFO that would also serialise, so it cannot hold a plain delay;
- the sequencer: the fitted ``workers`` and service-time distribution, the resource that queues;
- blocks every fitted interval: the commit wait, uniform between 0 and the interval, is the
  delay that does not queue (a block holds everything sequenced since the last one).

The twin of a chain node's run (``Calibration.chain``) is its chain instead: the pool as the
sequencer, the node's gas limit, gas per kind and base-fee rule, blocks at the node's own
pace (``_chain_sections``).

The twin of a validator network's run (``CometFit``, ``analysis/comet_fit.py``) is that
network in the simulator instead (``comet_twin_scenario``): as many validators, one region
whose links have the fitted latency, every node a validator of equal power, round-based
consensus (``blocks.producers.consensus = "tendermint"``) with the run's timeouts and
mempool size, the fitted execution and cost a transaction; the same traffic.

The source's scenario is stored normalised (ns, per second, bytes); it is written back with
units (``"2000000000ns"``, ``"5000.0/s"``, ``"128.0B"``). The file is parsed with the
scenario loader before it is written, so a twin that would not load is never written.
The body is written with tomli-w; the fit's numbers go in comments above it.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from msgstorm.analysis.calibrate import (
    MAX_IDLE_SHARE,
    MAX_WORKERS,
    MIN_UTILISATION,
    RANGE_TOLERANCE,
    Calibration,
    service_table,
)
from msgstorm.analysis.chain_fit import ChainFit
from msgstorm.analysis.comet_fit import HOPS, CometFit
from msgstorm.history.schema import SIM_TARGET
from msgstorm.report.text import duration_ms
from msgstorm.scenario import parse_scenario

__all__ = ["TWIN_REGION", "comet_twin_scenario", "comet_twin_toml", "twin_scenario", "twin_toml", "write_twin"]

TWIN_REGION = "local"
COMET_ENTRY_REGION = "entry"  # a validator network's twin: the node its agents send to
_BACK_FROM_VALIDATORS_NS = 3_600_000_000_000  # an hour: nothing a validator sends reaches the agents' node in a run
# Far above what a block interval of a few milliseconds collects at any rate msgstorm reaches:
# the twin's blocks must never hold a message back.
_BLOCK_CAPACITY = 1_000_000
_RATE_FIELDS = ("rate", "start", "step", "end", "baseline")
_DURATION_FIELDS = ("every", "decay")
_QUANTITY_FIELDS = ("value", "low", "high", "mean", "std", "median", "scale")


def _ns(value: Any) -> str:
    """A duration in the largest unit that keeps it exact: "2s", "3433us", "6986ns"."""
    ns = int(value)
    for unit, size in (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)):
        if ns and ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def _number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _rate(value: Any) -> str:
    return f"{_number(value)}/s"


def _bytes(value: Any) -> str:
    return f"{_number(value)}B"


def _dist(table: dict[str, Any], unit: Callable[[Any], str]) -> dict[str, Any]:
    """A distribution table with its quantities written in ``unit`` (plain numbers stay)."""
    return {key: unit(value) if key in _QUANTITY_FIELDS else value
            for key, value in table.items() if value is not None}


def _arrival(arrival: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in arrival.items():
        if value is None:
            continue
        if key in _RATE_FIELDS:
            out[key] = _rate(value)
        elif key in _DURATION_FIELDS:
            out[key] = _ns(value)
        elif key == "phases":
            out[key] = [{"duration": _ns(p["duration"]), "arrival": _arrival(p["arrival"])} for p in value]
        else:
            out[key] = value
    return out


def _agent(agent: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    first = ("name", "role", "count")  # the stored scenario's keys are sorted; these read best first
    ordered = {key: agent[key] for key in first if key in agent} | agent
    for key, value in ordered.items():
        if value is None or key in ("node", "region"):  # the twin has one node: every agent uses it
            continue
        if key == "arrival":
            out[key] = _arrival(value)
        elif key == "size":
            out[key] = _dist(value, _bytes)
        elif key in ("start", "stop"):
            out[key] = _ns(value)
        else:
            out[key] = value
    return out


def twin_scenario(calibration: Calibration) -> dict[str, Any]:
    """The twin as a raw scenario table (units as strings), ready for TOML."""
    source = calibration.scenario
    run = dict(source["run"])
    table: dict[str, Any] = {
        "target": SIM_TARGET,
        "run": {"name": f"{run['name']}-twin", "seed": int(run.get("seed", 1)),
                **{key: _ns(run[key]) for key in ("duration", "drain", "window", "sample_interval") if key in run}},
        "network": {"regions": [TWIN_REGION], "nodes_per_region": 1, "processing": "0ns"},
        "sequencer": {"workers": calibration.workers, "policy": "fifo",
                      "service": _dist(calibration.service_dist, _ns)},
        "blocks": {"interval": _ns(calibration.block_interval_ns), "max_messages": _BLOCK_CAPACITY},
        "agents": [_agent(agent) for agent in source["agents"]],
    }
    if calibration.chain is not None:
        table.update(_chain_sections(calibration, calibration.chain))
    return table | _carried_over(source)


def _chain_sections(calibration: Calibration, chain: ChainFit) -> dict[str, Any]:
    """A chain node's twin: its pool as the sequencer (one worker at the chain's rate, in the
    pool's order), its blocks' gas limit and gas per kind, its base-fee rule
    (``analysis/chain_fit.py`` says why each)."""
    return {
        "sequencer": {"workers": 1, "policy": chain.policy, "service": _dist(calibration.service_dist, _ns)},
        "blocks": {"interval": _ns(calibration.block_interval_ns), "max_messages": _BLOCK_CAPACITY,
                   "max_gas": chain.gas_limit, "gas": dict(sorted(chain.gas_per_kind.items()))},
        "backpressure": {"mode": "eip1559", "initial_base_fee": chain.initial_base_fee,
                         "min_base_fee": chain.min_base_fee, "target": round(chain.rule.target, 6),
                         "max_change": round(chain.rule.max_change, 6), "underpriced": "reject"},
    }


def _chain_header(calibration: Calibration, chain: ChainFit, source_label: str, version: str) -> list[str]:
    rule = chain.rule
    gas = ", ".join(f"{kind} {g:,d}" for kind, g in sorted(chain.gas_per_kind.items()))
    lines = [
        f"Calibrated twin of the chain of run '{calibration.scenario_name}' (target {calibration.target}, "
        f"seed {calibration.seed}): {source_label}",
        f"written by `msgstorm calibrate` (msgstorm {version}); run it with `msgstorm run <this file>`.",
        "",
        f"Method: the node's rules read from the {chain.blocks} blocks it made during the low-load step(s) "
        f"{', '.join(str(s.step) for s in calibration.steps)}",
        f"(offered <= {calibration.low_load_fraction:.0%} of the measured knee {calibration.measured_knee_text}"
        + (f"; {calibration.low_load_note}" if calibration.low_load_note else "") + "; the knee only chose them):",
        *_pace_lines(calibration),
        f"- gas limit {chain.gas_limit:,d}; gas per transaction (least squares over blocks of msgstorm's only): {gas};",
        f"  so {chain.txs_per_block:,.1f} transactions a block, {chain.capacity_per_s:,.1f}/s (the fullest block of "
        f"the run held {chain.fullest_block:,d});",
        f"- pool order: {chain.policy} (the node's); the pool is one worker handing a transaction to the next block",
        f"  every {_us(float(calibration.service_dist['value']))} (the chain's rate), so a backlog waits in that order;",
        f"- base fee: target {rule.target:.4f} of the gas limit, at most {rule.max_change:.4f} a block (least squares "
        f"over {rule.pairs} block pairs);",
        f"  the rule recomputes every block's base fee of the run ({rule.recomputed_pairs} pairs) from the block before "
        f"within {rule.recomputed_error:.2e};",
        f"  first base fee {chain.initial_base_fee:.9g} (the run's first block), floor one wei; a fee cap under the "
        "base fee is refused.",
        f"Low-load p99 measured {_ms(calibration.low_load_p99_ns)}; the model's {_ms(calibration.twin_low_load_p99_ns)} "
        "(the worker's service and a wait for the next block).",
        f"Measured knee: {calibration.measured_knee_text}; the twin's own knee is its prediction"
        + (", except that it is not one here:" if calibration.doubts else "."),
        *[line for doubt in calibration.doubts
          for line in textwrap.wrap(doubt, 96, initial_indent="- ", subsequent_indent="  ")],
        "",
        "What the twin cannot model: the JSON-RPC answer and the head's delivery (a few ms at low",
        "load), a machine that slows the node only after the steps its pace was read from, and",
        "transactions from anyone but msgstorm.",
    ]
    return lines + _faults_left_out(calibration.scenario)


def _pace_lines(calibration: Calibration) -> list[str]:
    """The node's block timer as the twin has it, and its answers (``analysis/node_pace.py``)."""
    pace = calibration.pace
    if pace is None:
        return []
    steps = f"steps {pace.steps[0]}-{pace.steps[-1]}" if len(pace.steps) > 1 else f"step {pace.steps[0]}"
    return [
        f"- block timer, the node's pace over {steps} (those the knee credited): a head every "
        f"{_ms(pace.block_interval_ns)} ({pace.heads} heads; configured {_ms(pace.configured_interval_ns)}, so "
        f"{_ms(pace.production_delay_ns)} late a block); the twin's blocks every {_ms(calibration.block_interval_ns)};",
        "- the node's answer (send -> accepted), mean per step: "
        + ", ".join(f"{rate:,.0f}/s {_ms(mean)}" for rate, mean in zip(pace.offered_per_s, pace.answer_mean_ns))
        + " (not modelled: late answers did not limit what the node took);",
    ]


def _us(ns: float) -> str:
    return f"{ns / 1e3:,.1f} us"


def _ms(ns: float) -> str:
    return duration_ms(ns / 1e6)


def _header(calibration: Calibration, source_label: str, version: str) -> list[str]:
    fit = calibration.service
    steps = calibration.steps
    low, high = fit.capacity_range_per_s
    # The wait's queue fit, whatever the twin models (its own service_dist when the twin
    # models a server's CPU instead).
    dist = service_table(fit.mean_service_ns, fit.scv)
    shape = {"constant": "constant", "exponential": "exponential"}.get(
        dist["dist"], f"lognormal, median {_us(dist.get('median', 0))}, sigma {dist.get('sigma')}")
    shared = steps[0].waited_share is not None
    lines = [
        f"Calibrated one-node twin of run '{calibration.scenario_name}' (target {calibration.target}, "
        f"seed {calibration.seed}): {source_label}",
        f"written by `msgstorm calibrate` (msgstorm {version}); run it with `msgstorm run <this file>`.",
        "",
        f"Method: the mean wait for the serialising resource ({calibration.wait_source}) of each",
        "low-load step, fitted with the Allen-Cunneen M/G/c mean wait (Erlang C x (1 + scv) / 2)",
        f"over workers 1..{MAX_WORKERS} and the mean service time (scv by least squares on relative errors)",
        *(["and the share of messages that waited, fitted with Erlang C."] if shared else
          ["(a send lag is never exactly 0, so the share that waited is not used)."]),
        "The delay that does not queue is the commit wait (uniform up to the block interval),",
        "sized so that the twin's low-load p99 (the least of the p99s of the same steps) is",
        "the measured one: the knee's latency bar is a multiple of that p99. The interval divides",
        "the ramp's step, so every step's throughput window holds the same number of blocks.",
        f"Low-load steps used: {', '.join(str(s.step) for s in steps)} (offered <= "
        f"{calibration.low_load_fraction:.0%} of the measured knee {calibration.measured_knee_text};"
        + (f" {calibration.low_load_note};" if calibration.low_load_note else ""),
        "the knee only chose them; no step at or past it was used):",
        "  step   offered/s   messages   mean wait measured / fitted   latency mean / p99"
        + ("     waited measured / fitted" if shared else ""),
    ]
    for s in steps:
        share = (f"     {s.waited_share:.1%} / {s.fitted_waited_share:.1%}"
                 if s.waited_share is not None and s.fitted_waited_share is not None else "")
        lines.append(f"  {s.step:4d}  {s.offered_per_s:10,.0f}  {s.messages:9,d}   "
                     f"{_us(s.mean_wait_ns):>12} / {_us(s.fitted_wait_ns):<12}  "
                     f"{_ms(s.mean_latency_ns)} / {_ms(s.p99_latency_ns)}{share}")
    lines += [
        f"Fit: workers {fit.workers}, mean service {_us(fit.mean_service_ns)}, scv {fit.scv:.2f} ({shape}):",
        f"  capacity {fit.capacity_per_s:,.0f}/s (fits whose RMS error is at most {RANGE_TOLERANCE:.0%} above the best: "
        f"{low:,.0f}-{high:,.0f}/s); RMS relative error of the fit {fit.rms_relative_error:.1%};",
        f"  utilisation at the highest low step {fit.utilisation(steps[-1].offered_per_s):.0%}.",
        *([] if fit.identified else [
            "  NOT IDENTIFIED: the best fit's waits grow about linearly with the rate (utilisation",
            f"  under {MIN_UTILISATION:.0%} at the highest low step), so the low-load steps do not show where",
            "  the queue saturates; the twin takes the lowest capacity they allow: its knee is a",
            "  lower estimate within this model, not a prediction."]),
        *_cpu_lines(calibration),
        f"Commit wait: blocks every {_ms(calibration.block_interval_ns)}, "
        f"{calibration.step_ns // calibration.block_interval_ns:,d} to a ramp step of {_ms(calibration.step_ns)};",
        f"  modelled low-load p99 {_ms(calibration.twin_low_load_p99_ns)} (measured {_ms(calibration.low_load_p99_ns)}: "
        f"the least of the p99s of steps {', '.join(str(s) for s in calibration.baseline_steps)}),",
        f"  modelled first-step mean latency {_ms(calibration.twin_low_load_mean_latency_ns)} "
        f"(measured {_ms(steps[0].mean_latency_ns)}).",
        f"Measured knee: {calibration.measured_knee_text}; the twin's own knee is its prediction"
        + (", except that it is not one here:" if calibration.doubts else "."),
        *[line for doubt in calibration.doubts
          for line in textwrap.wrap(doubt, 96, initial_indent="- ", subsequent_indent="  ")],
        "",
        "What the twin cannot model:",
        "- a service cost that changes with load: the twin keeps the low-load cost per message,",
        "  while a live client batches under load (one socket write or read for many messages),",
        "  so it may keep up past the twin's capacity;",
        "- the shape of the delay that does not queue: the twin's is uniform (the commit wait), so",
        "  it matches the low-load p99 but not the mean or median latency at low load;",
        "- queues the wait columns do not show (live: the consumer side of the same thread), other",
        "  processes taking the CPU, the broker's own limits, slow-consumer disconnects and losses.",
    ]
    faults = calibration.scenario.get("faults") or []
    if faults:
        lines.append(f"- the source's {len(faults)} fault(s): the twin has none.")
    return lines


def _cpu_lines(calibration: Calibration) -> list[str]:
    """The servers' CPU lines and which resource the twin models."""
    if not calibration.cpu:
        return ["The history has no server CPU samples (a sim run, or a server msgstorm did not start):",
                "  the twin models the wait's queue."]
    lines = ["Server CPU over the same steps, by the utilisation law (busy CPUs = idle + rate x CPU per",
             "message, least squares); a server saturates where it is busy on every CPU it may use:"]
    for fit in calibration.cpu:
        measured = ", ".join(f"{cores:.2f}" for cores in fit.step_cores)
        lines += [f"  {fit.server}: {fit.cpus} CPU(s), idle {fit.idle_cores:.2f}, {_us(fit.cpu_per_message_ns)} a "
                  f"message -> capacity {fit.capacity_per_s:,.0f}/s;",
                  f"    busy CPUs per step {measured} (RMS error {fit.rms_error_cores:.3f})"]
        if not fit.linear:
            lines += [f"    NOT USED: busy {fit.idle_cores:.2f} CPU at no load on the line, more than "
                      f"{MAX_IDLE_SHARE:.0%} of its CPU at the highest low",
                      "    step: its CPU per message falls as the load grows (batching, a runtime that spins",
                      "    while idle), so the line does not say where it saturates."]
    bottleneck = calibration.bottleneck
    if bottleneck is None:
        lines.append("The wait's queue saturates first: the twin models it.")
    else:
        lines += [f"{bottleneck.server}'s CPU saturates first ({bottleneck.capacity_per_s:,.0f}/s, below the wait's "
                  f"queue's {calibration.service.capacity_per_s:,.0f}/s): the twin models it,",
                  f"  {calibration.workers} worker(s) with an exponential service time of mean "
                  f"{_us(calibration.workers / bottleneck.capacity_per_s * 1e9)} (the samples give the mean cost, "
                  "not its spread)."]
    return lines


def twin_toml(calibration: Calibration, source_label: str, version: str) -> str:
    """The twin scenario file's text: the fit as comments, then the scenario."""
    lines = (_header(calibration, source_label, version) if calibration.chain is None
             else _chain_header(calibration, calibration.chain, source_label, version))
    header = "".join(f"# {line}".rstrip() + "\n" for line in lines)
    return header + "\n" + tomli_w.dumps(twin_scenario(calibration))


def comet_twin_scenario(fit: CometFit) -> dict[str, Any]:
    """The twin of a validator network as a raw scenario table (units as strings)."""
    source = fit.scenario
    run = dict(source["run"])
    n = fit.validators
    table: dict[str, Any] = {
        "target": SIM_TARGET,
        "run": {"name": f"{run['name']}-twin", "seed": int(run.get("seed", 1)),
                **{key: _ns(run[key]) for key in ("duration", "drain", "window", "sample_interval") if key in run}},
        "network": {"regions": [TWIN_REGION], "nodes_per_region": n, "intra_region_latency": _ns(fit.link_latency_ns),
                    "processing": "0ns", "bandwidth": "unlimited"},
        "blocks": {"max_messages": _BLOCK_CAPACITY,
                   "producers": {"consensus": "tendermint", "tendermint": {
                       **{key: _ns(value) for key, value in fit.timeouts.items() if key != "mempool_size"},
                       "execution": _ns(fit.execution_ns), "execution_per_tx": _ns(round(fit.per_tx_ns)),
                       "mempool_size": fit.timeouts["mempool_size"]}}},
        "agents": [_agent(agent) for agent in source["agents"]],
    }
    if fit.costs is not None:  # what the validators counted: the block applied and the mempool rechecked
        tendermint = table["blocks"]["producers"]["tendermint"]
        tendermint["finalize_per_tx"] = _ns(round(fit.costs.finalize_per_tx_ns))
        tendermint["recheck_per_tx"] = _ns(round(fit.costs.check_tx_ns))
    peers = n - 1
    if fit.admission_ns > 0:  # the agents' own node, the admission delay away from every validator
        table["network"] |= {"regions": [TWIN_REGION, COMET_ENTRY_REGION], "nodes": {COMET_ENTRY_REGION: 1},
                             # Back towards the agents' node, the run's length: a path through it
                             # must never be a shortcut between validators.
                             "latency": {f"{TWIN_REGION}/{COMET_ENTRY_REGION}": _ns(_BACK_FROM_VALIDATORS_NS)},
                             "links": [{"between": [COMET_ENTRY_REGION, TWIN_REGION],
                                        "latency": _ns(fit.admission_ns), "one_way": True}]}
        table["blocks"]["producers"]["nodes"] = [f"{TWIN_REGION}-{i}" for i in range(n)]
        table["agents"] = [agent | {"region": COMET_ENTRY_REGION} for agent in table["agents"]]
        peers = n
    if peers > 0:  # every node a peer of every other, as the live network's persistent peers are
        table["gossip"] = {"mode": "flood", "degree": peers, "peers": peers}
    return table | _carried_over(source)


def _comet_header(fit: CometFit, source_label: str, version: str) -> list[str]:
    t = fit.timeouts
    lines = [
        f"Calibrated twin of the validator network of run '{fit.scenario_name}' (target {fit.target}, "
        f"seed {fit.seed}): {source_label}",
        f"written by `msgstorm calibrate` (msgstorm {version}); run it with `msgstorm run <this file>`.",
        "",
        f"Method (analysis/comet_fit.py): {fit.validators} validators, round-based consensus in the simulator;",
        f"- timeouts as configured: propose {_ms(t['timeout_propose'])} (+{_ms(t['timeout_propose_delta'])} a round), "
        f"prevote and precommit {_ms(t['timeout_prevote'])} (+{_ms(t['timeout_prevote_delta'])}), commit "
        f"{_ms(t['timeout_commit'])}; mempool {t['mempool_size']:,d};",
        f"- interval = {_ms(fit.intercept_ns)} + {_us(fit.per_tx_ns)} a transaction (least squares over "
        f"{fit.fit_heights} round-0 heights of step(s) {', '.join(str(s) for s in fit.fit_steps)}; RMS "
        f"{_ms(fit.rms_error_ns)});",
        f"- link latency {_ms(fit.link_latency_ns)} ({fit.link_source}; not identifiable apart from the execution);",
        f"- execution {_ms(fit.execution_ns)} = the intercept - timeout_commit - {HOPS} link delays;",
        f"- admission {_ms(fit.admission_ns)}: the mean wait from acceptance to proposal less the mean residual",
        "  interval and the hop to the proposer (the agents send to a node of their own that far away).",
        *[line for note in fit.notes for line in textwrap.wrap(note, 96, initial_indent="Note: ",
                                                                subsequent_indent="  ")],
        "",
        "What the twin cannot model: rounds above 0 the run had for reasons of its own (a busy machine),",
        "the machine's other work, the RPC and WebSocket between msgstorm and the validators.",
    ]
    return lines + _faults_left_out(fit.scenario)


def comet_twin_toml(fit: CometFit, source_label: str, version: str) -> str:
    """The validator network's twin scenario file's text: the fit as comments, then the scenario."""
    header = "".join(f"# {line}".rstrip() + "\n" for line in _comet_header(fit, source_label, version))
    return header + "\n" + tomli_w.dumps(comet_twin_scenario(fit))


def write_twin(calibration: Calibration | CometFit, path: Path, source_label: str, version: str) -> Path:
    """Validate the twin with the scenario loader, then write it (whole or not at all).
    A ``ScenarioError`` here is a bug in this module: the file is not written."""
    text = (comet_twin_toml(calibration, source_label, version) if isinstance(calibration, CometFit)
            else twin_toml(calibration, source_label, version))
    parse_scenario(text, source=str(path), base_dir=path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _faults_left_out(scenario: dict[str, Any]) -> list[str]:
    """The header's line on the source's faults, which no twin has (none without faults)."""
    faults = scenario.get("faults") or []
    return [f"The source's {len(faults)} fault(s): the twin has none."] if faults else []


def _carried_over(source: dict[str, Any]) -> dict[str, Any]:
    """The source's sections a twin keeps as they are: analysis, history and limits (their
    set values), and its SLOs."""
    kept: dict[str, Any] = {section: {key: value for key, value in source[section].items() if value is not None}
                            for section in ("analysis", "history", "limits") if source.get(section)}
    if source.get("slo"):
        kept["slo"] = dict(source["slo"])
    return kept
