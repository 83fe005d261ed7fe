"""A validator network's protocol read from its commits: the twin of a CometBFT run.

Place in the pipeline: ``msgstorm calibrate RUN_DIR`` asks **comet_heights(history)**; a
history with a ``heights`` table (a live ``cometbft`` run, or a sim run with
``blocks.producers.consensus = "tendermint"``: both write it) is calibrated by
**fit_comet(history)** instead of the one-queue model (``analysis/calibrate.py``), the twin
is a sim run of the round-based protocol (``report/twin.py``: ``comet_twin_scenario``) and
``--check`` compares the two runs step by step with **comet_steps** and **check_comet**.
Like every analysis it reads only the history.

The model: a height's interval (first commit of the height before to first commit of this
one, by whichever validator) is ``timeout_commit`` + the block's propose, execution and
vote rounds. With one round and a link of one-way latency ``L`` between any two
validators, the simulator's first commit comes ``HOPS`` = 4 link delays after the proposal is
built (measured on it: with 2 ms and 5 ms links the intervals differ by 12 ms; the block's
parts, the prevotes, the precommits, and one more on the way of the parts or the proposal
message to the validators that must hold both), so

    interval = timeout_commit + HOPS x L + execution + per_tx x transactions in the block.

What is fitted, from what (the low-load steps: passing steps whose generator kept its
schedule, offered at most ``low_load_fraction`` of the measured knee, or of the ramp's
highest passing step when no step failed):

- the validators: how many nodes the ``heights`` table names;
- the timeouts: as configured, from the run's scenario (live: ``blocks.interval`` is
  ``timeout_commit``, ``live.cometbft.timeout_propose`` and ``timeout_vote`` the round
  timeouts, each ``_delta`` half of itself, as ``live/chain/cometbft.py`` writes them; sim:
  ``blocks.producers.tendermint``), and the mempool's size;
- ``per_tx`` and the intercept: least squares of each round-0 height's interval on its
  block's transactions (``block_produced`` events, one per height); ``per_tx`` is the slope
  (CheckTx, the block's parts, ProcessProposal and FinalizeBlock per transaction);
- ``execution``: the intercept less ``timeout_commit`` and the ``HOPS`` link delays (at least 0).

- the admission delay: how long after a validator accepted a transaction (``t_received``)
  it can still miss the next proposal (CheckTx, and the mempool's gossip to the proposer,
  which CometBFT's reactor paces). A transaction arriving at a random time waits for the next
  proposal the mean residual of the intervals, ``E[T^2] / (2 E[T])``, so the admission delay
  is the measured mean ``t_dequeued - t_received`` less that, less the twin's own hop to the
  proposer (``L`` for all but the proposer's own share, ``(n - 1) / n``), at least 0. The
  twin gives it to every transaction on its way in: its agents send to a node of a region of
  their own (``entry``), that far from the validators, so a transaction joins the proposals
  that late and the block interval is untouched. Without ``t_dequeued`` (a target that does
  not stamp its proposals) it is 0, said.

What is not identifiable: the link latency apart from the execution. Every commit time the
history holds is the same sum of link delays and the execution (the proposal-to-commit stage
of a message, ``t_committed - t_dequeued``, is that sum too, since the first validator to
complete a proposal is its proposer), so ``L`` is taken from the run's scenario: a latency
toxic on every route from the start (``link = "routes"``, no ``between``), else the sim's
``network.intra_region_latency`` of a one-region network, else a loopback hop
(``LOOPBACK_HOP_NS``, said); the execution takes the rest. A twin with a wrong split still
has the right interval at low load; it differs only where a hop and the execution weigh
differently (a proposal later than ``timeout_propose``). Nor does the fit see rounds above 0
(only round-0 heights enter the line) or the mempool's gossip (one hop, inside a message's
commit latency, not the interval).

Per ramp step (``comet_steps``, the same for both runs): the median interval of the heights
first committed in it, the p50 commit latency (``t_committed - t_intended``) of the messages
intended in it, and whether the generator was behind there (live: ``capacity``'s saturated
intervals; a step whose bulk left late was not offered as asked, so it is not judged).
``check_comet`` judges each step within ``PREDICTION_TOLERANCE`` on both; the twin is not a
prediction when no step can be judged, when a step misses on a machine busy with other work
(``calibrate.machine_limit``), or when every step that misses holds fewer than
``MIN_STEP_HEIGHTS`` heights: a step of a few blocks has a p50 commit latency that moves by
about half an interval over its heights with where those blocks fall in it (the phase of the
chain against the ramp, which neither run controls), more than 15% of it for a ramp of 3 s
steps and 800 ms blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from msgstorm.analysis._common import MessageArrays, events_of, percentile
from msgstorm.analysis.calibrate import PREDICTION_TOLERANCE, machine_limit
from msgstorm.analysis.capacity import capacity, find_step_ramp, saturated_intervals
from msgstorm.analysis.comet_costs import CometCosts, comet_costs
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.history.schema import is_simulated

__all__ = ["LOOPBACK_HOP_NS", "MIN_FIT_HEIGHTS", "MIN_STEP_HEIGHTS", "PREDICTION_TOLERANCE", "CometCheck", "CometFit", "CometHeights",
           "CometStep", "StepVerdict", "check_comet", "comet_heights", "comet_steps", "comet_timeouts", "fit_comet"]

# One hop between two processes on one machine through msgstorm's proxy, when nothing says more.
LOOPBACK_HOP_NS = 100_000
# Fewer round-0 heights than this in the low-load steps fit no line of two unknowns with any left over.
MIN_FIT_HEIGHTS = 4
# A step of fewer heights than this does not resolve 15% (``check_comet`` says why).
MIN_STEP_HEIGHTS = 8
HOPS = 4  # link delays from a proposal built to its first commit, in the simulator (the module says)


@dataclass(frozen=True)
class CometHeights:
    """Each height's first commit (by any validator), in height order."""

    height: np.ndarray  # int64
    t: np.ndarray  # int64 ns: its first commit
    round: np.ndarray  # int64: the round it was decided in (at that first commit)
    txs: np.ndarray  # int64: transactions in its block (-1: no block_produced event for it)
    validators: int  # nodes that committed any height

    @property
    def count(self) -> int:
        return int(self.t.shape[0])

    def intervals(self) -> tuple[np.ndarray, np.ndarray]:
        """(index of each height whose predecessor is the height before, its interval in ns)."""
        follows = np.flatnonzero(np.diff(self.height) == 1) + 1
        return follows, self.t[follows] - self.t[follows - 1]


def comet_heights(history: History) -> CometHeights | None:
    """The heights of a validator network's run, or None when the history has no ``heights`` rows."""
    if history.num_rows("heights") == 0:
        return None
    rows = history.table("heights").to_pydict()
    first: dict[int, tuple[int, int]] = {}
    for height, t, round_ in zip(rows["height"], rows["t_committed"], rows["round"]):
        seen = first.get(height)
        if seen is None or t < seen[0]:
            first[height] = (int(t), int(round_))
    txs: dict[int, int] = {}
    produced = events_of(history, EventKind.BLOCK_PRODUCED)
    for value, height in zip(produced.value.tolist(), produced.heights()):
        if height is not None:
            txs[int(height)] = int(value)  # the last block made for the height: the one a later round kept
    heights = sorted(first)
    return CometHeights(
        height=np.asarray(heights, dtype=np.int64),
        t=np.asarray([first[h][0] for h in heights], dtype=np.int64),
        round=np.asarray([first[h][1] for h in heights], dtype=np.int64),
        txs=np.asarray([txs.get(h, -1) for h in heights], dtype=np.int64),
        validators=len(set(rows["node"])))


def comet_timeouts(scenario: dict[str, Any]) -> dict[str, int]:
    """The protocol's timeouts and mempool size as the run configured them (ns; the keys of
    ``[blocks.producers.tendermint]``)."""
    live = (scenario.get("live") or {}).get("cometbft")
    if scenario.get("target") == "cometbft" or live:
        live = live or {}
        propose = int(live.get("timeout_propose") or 1_000_000_000)
        vote = int(live.get("timeout_vote") or 500_000_000)
        commit = int((scenario.get("blocks") or {}).get("interval") or 1_000_000_000)
        return {"timeout_propose": propose, "timeout_propose_delta": propose // 2,
                "timeout_prevote": vote, "timeout_prevote_delta": vote // 2,
                "timeout_precommit": vote, "timeout_precommit_delta": vote // 2,
                "timeout_commit": commit, "mempool_size": int(live.get("mempool_size") or 5000)}
    spec = ((scenario.get("blocks") or {}).get("producers") or {}).get("tendermint") or {}
    keys = ("timeout_propose", "timeout_propose_delta", "timeout_prevote", "timeout_prevote_delta",
            "timeout_precommit", "timeout_precommit_delta", "timeout_commit", "mempool_size")
    defaults = (3_000_000_000, 500_000_000, 1_000_000_000, 500_000_000, 1_000_000_000, 500_000_000,
                1_000_000_000, 5000)
    return {key: int(spec.get(key, default)) for key, default in zip(keys, defaults)}


def _link_latency(scenario: dict[str, Any]) -> tuple[int, str]:
    """The one-way latency between two validators the scenario gives, and where it came from."""
    for fault in scenario.get("faults") or []:
        if (fault.get("kind") == "toxic" and fault.get("toxic") == "latency" and fault.get("link") == "routes"
                and not fault.get("between") and int(fault.get("at") or 0) <= 0 and not fault.get("duration")):
            return int(fault.get("latency") or 0), "the scenario's latency toxic on every route"
    network = scenario.get("network") or {}
    if is_simulated(scenario.get("target")) and len(network.get("regions") or ["x"]) == 1:
        return int(network.get("intra_region_latency", 500_000)), "the sim network's intra_region_latency"
    return LOOPBACK_HOP_NS, f"a loopback hop ({LOOPBACK_HOP_NS / 1e3:g} us): nothing in the run sets one"


@dataclass(frozen=True)
class CometStep:
    """One ramp step of a validator network's run, as ``--check`` compares it."""

    step: int  # 1-based
    offered_per_s: float
    passed: bool  # the knee's criterion
    heights: int  # heights first committed in the step (with their predecessor)
    interval_p50_ns: float | None
    commit_p50_ns: float | None  # t_committed - t_intended of its messages
    txs_per_block: float | None  # mean over its heights
    generator_behind: bool


def comet_steps(history: History) -> tuple[list[CometStep], dict[str, Any]]:
    """Each ramp step's block interval and commit latency, and the knee (``capacity``'s);
    ``ValueError`` without a step ramp or heights."""
    heights = comet_heights(history)
    if heights is None:
        raise ValueError("the history has no heights table: not a validator network's run")
    messages = MessageArrays.from_history(history)
    knee, table, load = capacity(history, messages)
    if knee is None or table is None or load is None:
        raise ValueError("the run has no step ramp (an agent with arrival process 'step_ramp'): the twin's check "
                         "compares its steps")
    behind = saturated_intervals(history, messages, load.edges) or [False] * load.count
    follows, intervals = heights.intervals()
    t_of = heights.t[follows]
    committed = messages.t_committed
    latency_all = committed.values - messages.t_intended
    steps = []
    offered = table.column("offered_per_s").to_pylist()
    passed = table.column("passed").to_pylist()
    for index in range(load.count):
        start, end = int(load.starts[index]), int(load.ends[index])
        inside = (t_of >= start) & (t_of < end)
        mine = (messages.t_intended >= start) & (messages.t_intended < end) & committed.present
        latency = latency_all[mine]
        txs = heights.txs[follows][inside]
        steps.append(CometStep(
            step=index + 1, offered_per_s=float(offered[index]), passed=bool(passed[index]),
            heights=int(inside.sum()),
            interval_p50_ns=float(np.median(intervals[inside])) if inside.any() else None,
            commit_p50_ns=percentile(latency, 50.0) if latency.size else None,
            txs_per_block=float(txs[txs >= 0].mean()) if (txs >= 0).any() else None,
            generator_behind=bool(behind[index])))
    return steps, knee


@dataclass(frozen=True)
class CometFit:
    """What the twin of a validator network is made of."""

    scenario_name: str
    target: str
    seed: int
    validators: int
    timeouts: dict[str, int]  # the keys of [blocks.producers.tendermint], as configured
    per_tx_ns: float  # the slope of the interval on the block's transactions
    intercept_ns: float  # the interval of an empty block
    execution_ns: int  # the intercept less timeout_commit and the HOPS link delays
    link_latency_ns: int
    link_source: str
    admission_ns: int  # a transaction's way in: accepted this long before a proposal, it may still miss it
    fit_steps: tuple[int, ...]  # 1-based: the low-load steps the line was fitted on
    fit_heights: int
    rms_error_ns: float  # of the line over those heights
    rounds_above_0: int  # heights of the whole run decided above round 0
    measured_knee_per_s: float | None
    steps: tuple[CometStep, ...]  # every ramp step, measured
    scenario: dict[str, Any]  # the source run's validated scenario (normalised units)
    notes: tuple[str, ...] = ()  # what the fit could not pin down
    machine_limit: str = ""  # calibrate.machine_limit of the knee: a doubt when a step misses
    costs: CometCosts | None = None  # the validators' own counters (live): the twin's apply and recheck


def fit_comet(history: History, low_load_fraction: float = 0.5) -> CometFit:
    """The protocol's costs from the low-load steps' round-0 heights; ``ValueError`` when
    they give no fit (the message says why)."""
    heights = comet_heights(history)
    if heights is None:
        raise ValueError("the history has no heights table: not a validator network's run")
    steps, knee = comet_steps(history)
    usable = [s for s in steps if s.passed and not s.generator_behind]
    if not usable:
        raise ValueError("no step of the ramp passed with the generator on schedule: nothing at low load to fit")
    knee_rate = knee.get("knee_rate_per_s")
    reference = float(knee_rate) if knee_rate is not None else max(s.offered_per_s for s in usable)
    chosen = [s for s in usable if s.offered_per_s <= low_load_fraction * reference]
    notes: list[str] = []
    if len(chosen) < 2:
        chosen = usable[:max(2, len(chosen))]
        notes.append(f"fewer than 2 steps offered at most {low_load_fraction:.0%} of {reference:,.0f}/s: the line is "
                     f"fitted on steps {', '.join(str(s.step) for s in chosen)}")
    scenario = history.scenario
    timeouts = comet_timeouts(scenario)
    follows, intervals = heights.intervals()
    t_of = heights.t[follows]
    window = np.zeros(follows.shape[0], dtype=np.bool_)
    ramp = find_step_ramp(scenario)
    assert ramp is not None  # comet_steps found it
    for s in chosen:
        window |= (t_of >= ramp.edges[s.step - 1]) & (t_of < ramp.edges[s.step])
    use = window & (heights.round[follows] == 0) & (heights.txs[follows] >= 0)
    if int(use.sum()) < MIN_FIT_HEIGHTS:
        raise ValueError(f"only {int(use.sum())} round-0 height(s) with a known block were committed in the low-load "
                         f"steps {', '.join(str(s.step) for s in chosen)}; the fit needs {MIN_FIT_HEIGHTS}: use "
                         "longer steps")
    txs = heights.txs[follows][use].astype(np.float64)
    y = intervals[use].astype(np.float64)
    if float(np.ptp(txs)) > 0:
        slope, intercept = (float(v) for v in np.polyfit(txs, y, 1))
        if slope < 0:
            notes.append(f"the interval falls with the block's transactions (slope {slope / 1e3:,.1f} us a "
                         "transaction): no cost a transaction is visible; the twin takes 0 and the mean interval")
            slope, intercept = 0.0, float(y.mean())
    else:
        slope, intercept = 0.0, float(y.mean())
        notes.append("every low-load block held as many transactions: the cost of one is not identifiable (0)")
    rms = float(np.sqrt(np.mean((intercept + slope * txs - y) ** 2)))
    link, source = _link_latency(scenario)
    admission = _admission_ns(history, intervals[window].astype(np.float64), [
        (int(ramp.edges[s.step - 1]), int(ramp.edges[s.step])) for s in chosen], link, heights.validators, notes)
    execution = intercept - timeouts["timeout_commit"] - HOPS * link
    if execution < 0:
        notes.append(f"the empty block's interval {intercept / 1e6:,.2f} ms is under timeout_commit + {HOPS} hops "
                     f"({(timeouts['timeout_commit'] + HOPS * link) / 1e6:,.2f} ms): execution 0")
        execution = 0.0
    run = scenario.get("run") or {}
    return CometFit(
        scenario_name=str(run.get("name", "")), target=str(history.run_info.get("target") or scenario.get("target")),
        seed=int(run.get("seed") or 0), validators=heights.validators, timeouts=timeouts,
        per_tx_ns=slope, intercept_ns=intercept, execution_ns=round(execution), link_latency_ns=link,
        link_source=source, admission_ns=admission, fit_steps=tuple(s.step for s in chosen), fit_heights=int(use.sum()), rms_error_ns=rms,
        rounds_above_0=int((heights.round > 0).sum()),
        measured_knee_per_s=None if knee_rate is None else float(knee_rate), steps=tuple(steps), scenario=scenario,
        notes=tuple(notes), machine_limit=machine_limit(knee), costs=comet_costs(history))


def _admission_ns(history: History, intervals: np.ndarray, spans: list[tuple[int, int]], link: int,
                  validators: int, notes: list[str]) -> int:
    """The admission delay (the module says how) from the messages intended in ``spans``
    (the low-load steps) and the intervals of their heights."""
    received, has_received = history.ints("messages", "t_received")
    proposed, has_proposed = history.ints("messages", "t_dequeued")
    intended, _ = history.ints("messages", "t_intended")
    inside = np.zeros(intended.shape[0], dtype=np.bool_)
    for start, end in spans:
        inside |= (intended >= start) & (intended < end)
    use = inside & has_received & has_proposed & (proposed >= received)
    if not use.any() or intervals.size == 0:
        notes.append("no message of the low-load steps has both its acceptance and its proposal stamped: the "
                     "admission delay is taken as 0")
        return 0
    wait = float((proposed[use] - received[use]).mean())
    residual = float((intervals**2).mean() / (2 * intervals.mean()))
    return max(0, round(wait - residual - link * (validators - 1) / validators))


def _few_heights(off: list[StepVerdict], heights: dict[int, int]) -> str:
    """Why steps of few heights do not resolve 15%: the phase of their blocks."""
    worst = max(off, key=lambda v: abs(v.commit_error or 0) + abs(v.interval_error or 0))
    interval = worst.measured_interval_ns or 0.0
    count = max(1, heights[worst.step])
    share = interval / (2 * count) / (worst.measured_commit_ns or interval or 1.0)
    return (f"the steps off ({', '.join(str(v.step) for v in off)}) hold fewer than {MIN_STEP_HEIGHTS} heights each "
            f"(step {worst.step}: {count}): where so few blocks fall in a step moves its p50 commit latency by about "
            f"half an interval over its heights ({interval / (2 * count) / 1e6:,.0f} ms, {share:.0%} of its measured "
            f"p50) and its median interval by any one block's, which the {PREDICTION_TOLERANCE:.0%} judged does not "
            f"allow for: a ramp whose steps hold at least {MIN_STEP_HEIGHTS} heights resolves it")


@dataclass(frozen=True)
class StepVerdict:
    """One step of ``--check``: measured against the twin."""

    step: int
    offered_per_s: float
    measured_interval_ns: float | None
    twin_interval_ns: float | None
    measured_commit_ns: float | None
    twin_commit_ns: float | None
    judged: str  # "" when judged; else why not (the generator was behind, nothing committed)

    @staticmethod
    def _error(twin: float | None, measured: float | None) -> float | None:
        return None if twin is None or measured is None or measured <= 0 else (twin - measured) / measured

    @property
    def interval_error(self) -> float | None:
        return self._error(self.twin_interval_ns, self.measured_interval_ns)

    @property
    def commit_error(self) -> float | None:
        return self._error(self.twin_commit_ns, self.measured_commit_ns)

    @property
    def within(self) -> bool:
        errors = (self.interval_error, self.commit_error)
        return all(e is not None and abs(e) <= PREDICTION_TOLERANCE for e in errors)


@dataclass(frozen=True)
class CometCheck:
    """The twin's steps against the measured ones, and why they are not a prediction."""

    steps: tuple[StepVerdict, ...]
    doubts: tuple[str, ...]

    @property
    def off(self) -> list[int]:
        """Judged steps off by more than the tolerance."""
        return [s.step for s in self.steps if not s.judged and not s.within]

    @property
    def predicted(self) -> bool:
        return not self.doubts

    @property
    def within_tolerance(self) -> bool:
        return self.predicted and not self.off


def check_comet(fit: CometFit, twin_steps: list[CometStep]) -> CometCheck:
    """Compare each measured step with the twin's (by position: the twin keeps the ramp)."""
    verdicts = []
    for measured, twin in zip(fit.steps, twin_steps):
        why = ""
        if measured.generator_behind:
            why = "the generator was behind (its send lag): not offered as asked"
        elif measured.interval_p50_ns is None or measured.commit_p50_ns is None:
            why = "nothing committed"
        verdicts.append(StepVerdict(step=measured.step, offered_per_s=measured.offered_per_s,
                                    measured_interval_ns=measured.interval_p50_ns,
                                    twin_interval_ns=twin.interval_p50_ns, measured_commit_ns=measured.commit_p50_ns,
                                    twin_commit_ns=twin.commit_p50_ns, judged=why))
    doubts: list[str] = []
    judged = [v for v in verdicts if not v.judged]
    if not judged:
        behind = [s for s in fit.steps if s.generator_behind]
        doubts.append("no step can be judged: " + (
            f"the generator was behind at step(s) {', '.join(str(s.step) for s in behind)} (msgstorm's sending "
            "limit on this machine, not the chain's)" if behind else "no step committed anything"))
    if fit.machine_limit and any(not v.within for v in judged):
        doubts.append(fit.machine_limit)
    off = [v for v in judged if not v.within]
    heights = {s.step: s.heights for s in fit.steps}
    if off and all(heights[v.step] < MIN_STEP_HEIGHTS for v in off):
        doubts.append(_few_heights(off, heights))
    return CometCheck(steps=tuple(verdicts), doubts=tuple(doubts))

