"""SLO entries: metric names, operators, units and verdicts."""

from __future__ import annotations

import pytest

from msgstorm.scenario.slo import (
    SLO_METRICS,
    SloError,
    evaluate_slos,
    parse_slo,
    slo_metric_known,
    slo_problem,
)

SUMMARY = {
    "latency_ms": {
        "p50": 12.0,
        "p90": 40.0,
        "p99": 250.0,
        "p999": 400.0,
        "max": 900.0,
        "mean": 20.0,
    },
    "jitter_ms": {"stddev": 5.0, "p99_minus_p50": 238.0, "ipdv_mean": 1.0, "ipdv_p99": 4.0},
    "latency_stages_ms": {"queue_wait": {"p50": 1.0, "p99": 9.0}},
    "throughput_per_s": 1900.0,
    "offered_rate_per_s": 2000.0,
    "capacity": None,
    "messages": {
        "sent": 1000,
        "sequenced": 990,
        "committed": 980,
        "dropped": 15,
        "rejected": 0,
        "lost": 5,
        "pending": 0,
    },
    "queue": {"max_depth": 120, "mean_depth": 3.5},
    "desync": {"episodes": 0, "max_height_gap": 0},
}


@pytest.mark.parametrize(
    ("expression", "verdict"),
    [
        ("< 250ms", "fail"),
        ("<= 250ms", "pass"),
        ("> 249.9ms", "pass"),
        (">= 251ms", "fail"),
        ("== 250ms", "pass"),
        ("!= 250ms", "fail"),
        ("< 0.3s", "pass"),
        ("<250000us", "fail"),
    ],
)
def test_each_operator_and_duration_units(expression: str, verdict: str) -> None:
    [result] = evaluate_slos(SUMMARY, {"latency.p99": expression})
    assert (result["name"], result["verdict"], result["value"]) == ("latency.p99", verdict, 250.0)
    assert result["threshold"] == parse_slo("latency.p99", expression).expression


def test_thresholds_are_converted_to_the_metric_unit() -> None:
    assert parse_slo("latency.p99", "< 1.5s").threshold == 1500.0
    assert parse_slo("jitter.stddev", "<= 800us").threshold == 0.8
    assert parse_slo("throughput", ">= 2000/s").threshold == 2000.0
    assert parse_slo("offered_rate", ">= 5k/s").threshold == 5000.0
    assert parse_slo("loss_rate", "< 10%").threshold == pytest.approx(0.1)
    assert parse_slo("loss_rate", "< 0.1").threshold == 0.1
    assert parse_slo("messages.dropped", "== 0").threshold == 0.0
    assert parse_slo("latency.p99", " <  250ms ").expression == "< 250ms"
    assert parse_slo("latency.p99", "<250000us").expression == "< 250000us"


@pytest.mark.parametrize(
    ("name", "expression"),
    [
        ("messages.dropped", "< 5ms"),  # duration on a count
        ("latency.p99", "< 2000/s"),  # rate on a latency
        ("latency.p99", "< 10%"),  # percentage on a latency
        ("latency.p99", "< fast"),
        ("latency.p99", "about 250ms"),  # no operator
        ("latency.p42", "< 250ms"),  # unknown metric
        ("latency.p99", "< 800"),  # a duration without its unit: 800 ms or 800 s?
        ("stage.queue_wait.p99", "< 0.2"),
        ("throughput", ">= 2000"),  # a rate without its unit: a second or a minute?
    ],
)
def test_bad_entries_raise_and_are_described(name: str, expression: str) -> None:
    with pytest.raises(SloError):
        parse_slo(name, expression)
    problem = slo_problem(name, expression)
    assert problem is not None and name in problem


def test_metric_names() -> None:
    for name in (
        "latency.p50",
        "latency.p999",
        "latency.mean",
        "jitter.stddev",
        "jitter.p99_minus_p50",
        "throughput",
        "offered_rate",
        "messages.committed",
        "messages.pending",
        "loss_rate",
        "queue.max_depth",
        "queue.mean_depth",
        "desync.episodes",
        "desync.max_height_gap",
        "stage.queue_wait.p99",
        "stage.propagation.p50",
        "capacity.knee_rate",
    ):
        assert slo_metric_known(name), name
    for name in ("latency.p42", "latency", "stage.queue_wait.p90", "throughput_per_s", ""):
        assert not slo_metric_known(name), name
    assert "latency.p99" in SLO_METRICS


def test_rates_counts_and_loss_rate() -> None:
    results = evaluate_slos(
        SUMMARY,
        {
            "throughput": ">= 2000/s",
            "messages.dropped": "== 15",
            "loss_rate": "<= 2%",
            "queue.max_depth": "< 100",
            "stage.queue_wait.p99": "< 10ms",
        },
    )
    assert [(r["name"], r["verdict"], r["value"]) for r in results] == [
        ("throughput", "fail", 1900.0),
        ("messages.dropped", "pass", 15),
        ("loss_rate", "pass", 0.02),
        ("queue.max_depth", "fail", 120),
        ("stage.queue_wait.p99", "pass", 9.0),
    ]


def test_null_metric_is_unknown() -> None:
    results = evaluate_slos(
        SUMMARY,
        {
            "capacity.knee_rate": ">= 1000/s",  # no ramp: capacity is null
            "stage.service.p99": "< 1ms",  # stage missing
        },
    )
    assert [(r["verdict"], r["value"]) for r in results] == [("unknown", None), ("unknown", None)]
    empty = {"latency_ms": {"p99": None}, "messages": {"sent": 0, "dropped": 0, "lost": 0}}
    results = evaluate_slos(empty, {"latency.p99": "< 1s", "loss_rate": "< 1%"})
    assert [r["verdict"] for r in results] == ["unknown", "unknown"]


def test_unparseable_entry_is_unknown_not_a_crash() -> None:
    [result] = evaluate_slos(SUMMARY, {"latency.p99": "< 2000/s"})
    assert result["verdict"] == "unknown"
    assert result["threshold"] == "< 2000/s"


def test_a_live_runs_delivery_generator_and_connections() -> None:
    live = {**SUMMARY,
            "delivery": {"lost": {"total": 3}, "duplicated": 0, "unexpected": 0, "reordered": 1},
            "generator": {"saturated": False, "send_lag_ms": {"p50": 0.01, "p99": 0.4, "max": 7.0}},
            "connections": {"disconnects": 2, "errors": 0, "servers_exited": [{"name": "nats-server", "returncode": -9}]}}
    rules = {"delivery.lost": "== 0", "delivery.reordered": "<= 1", "generator.send_lag.p99": "< 1ms",
             "generator.send_lag.max": "< 5ms", "connections.disconnects": "== 0", "connections.errors": "== 0",
             "connections.servers_exited": "== 0"}
    assert [(r["name"], r["verdict"], r["value"]) for r in evaluate_slos(live, rules)] == [
        ("delivery.lost", "fail", 3), ("delivery.reordered", "pass", 1), ("generator.send_lag.p99", "pass", 0.4),
        ("generator.send_lag.max", "fail", 7.0), ("connections.disconnects", "fail", 2),
        ("connections.errors", "pass", 0), ("connections.servers_exited", "fail", 1)]
    # On the simulator these are null: unknown, which a strict gate fails.
    sim = {**SUMMARY, "delivery": None, "generator": None, "connections": None}
    assert {r["verdict"] for r in evaluate_slos(sim, rules)} == {"unknown"}


@pytest.mark.parametrize(
    ("expression", "verdict"),
    [
        (">= 3000/s", "unknown"),  # the knee is at least 2,963/s: either side of 3,000/s
        (">= 2000/s", "pass"),  # at least 2,963/s is at least 2,000/s whatever the knee
        ("> 2963/s", "unknown"),
        (">= 2963/s", "pass"),
        ("< 2000/s", "fail"),  # at least 2,963/s is never under 2,000/s
        ("<= 5000/s", "unknown"),
        ("== 2000/s", "fail"),
        ("!= 2000/s", "pass"),
        ("== 2963/s", "unknown"),
    ],
)
def test_a_knee_no_step_reached_is_judged_only_where_its_lower_bound_decides(expression: str, verdict: str) -> None:
    """A ramp that passed every step up to 2,963/s reached no knee: the knee is only known to
    be at least 2,963/s. The entry says so (``bound``, ``reason``) and is judged only where
    every knee from 2,963/s up gives the same verdict; else it is unknown: not judged."""
    summary = {**SUMMARY, "capacity": {"knee_rate_per_s": 2963.0, "knee_reached": False, "method": "..."}}
    [result] = evaluate_slos(summary, {"capacity.knee_rate": expression})
    assert (result["verdict"], result["value"], result["bound"]) == (verdict, 2963.0, "lower")
    assert result["reason"].startswith("no knee reached: every step of the ramp passed")
    assert ("not judged" in result["reason"]) == (verdict == "unknown")


def test_an_unparseable_entry_on_a_knee_no_step_reached_says_nothing_of_the_bound() -> None:
    summary = {**SUMMARY, "capacity": {"knee_rate_per_s": 2963.0, "knee_reached": False, "method": "..."}}
    [result] = evaluate_slos(summary, {"capacity.knee_rate": ">= 3000ms"})
    assert result == {"name": "capacity.knee_rate", "verdict": "unknown", "value": 2963.0, "threshold": ">= 3000ms"}


def test_a_knee_reached_is_judged_as_any_value() -> None:
    summary = {**SUMMARY, "capacity": {"knee_rate_per_s": 2963.0, "method": "..."}}
    [result] = evaluate_slos(summary, {"capacity.knee_rate": ">= 3000/s"})
    assert result == {"name": "capacity.knee_rate", "verdict": "fail", "value": 2963.0, "threshold": ">= 3000/s"}
