"""Analysis: everything computed from a run's history, and nothing from the simulator.

Place in the pipeline: History -> ``analyse`` -> ``Analysis`` -> reports. Modules by role:
``latency`` (percentiles, stages, jitter, IPDV), ``windows`` (per-window time series),
``capacity`` (step-ramp knee), ``failure`` (failure threshold), ``delivery`` (Jepsen-style
checkers), ``desync``, ``propagation``, ``queue`` (depth, backpressure, base fee), ``faults``,
``slo`` (SLO verdicts), ``sections`` (the registry of summary.json's sections, each a
compute function with its type on ``summary_model.Summary``) and ``summary`` (``analyse``,
which loops over them).
"""

from msgstorm.analysis.capacity import STEP_SCHEMA, capacity, find_step_ramp
from msgstorm.analysis.delivery import CHECKERS, Checker, Verdict, run_checkers
from msgstorm.analysis.failure import REASONS, failure_threshold
from msgstorm.analysis.summary import Analysis, analyse, failing_slos, slo_failed
from msgstorm.analysis.windows import WINDOW_SCHEMA, window_metrics
from msgstorm.scenario.slo import (
    SLO_METRICS,
    SloError,
    evaluate_slos,
    parse_slo,
    slo_metric_known,
    slo_problem,
)

__all__ = [
    "CHECKERS",
    "REASONS",
    "SLO_METRICS",
    "STEP_SCHEMA",
    "WINDOW_SCHEMA",
    "Analysis",
    "Checker",
    "SloError",
    "Verdict",
    "analyse",
    "capacity",
    "evaluate_slos",
    "failure_threshold",
    "find_step_ramp",
    "parse_slo",
    "run_checkers",
    "failing_slos",
    "slo_failed",
    "slo_metric_known",
    "slo_problem",
    "window_metrics",
]
