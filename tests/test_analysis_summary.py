"""``analyse``: the summary.json keys, their values on a small run, and an empty run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from test_analysis_history import BASE_SCENARIO, MS, S, event, message, scenario_dict, write_history

from msgstorm.analysis import Analysis, analyse, slo_failed
from msgstorm.analysis.propagation import propagation_by_region_ms
from msgstorm.scenario.registry import CHECKERS

KEYS = [
    "scenario",
    "seed",
    "target",
    "msgstorm_version",
    "scenario_hash",
    "duration_s",
    "interrupted",
    "cut_off",
    "offered_rate_per_s",
    "throughput_per_s",
    "latency_ms",
    "latency_stages_ms",
    "jitter_ms",
    "capacity",
    "failure_threshold",
    "queue",
    "backpressure",
    "base_fee",
    "messages",
    "by_kind",
    "by_agent",
    "gossip_backlog",
    "generator",
    "delivery",
    "connections",
    "market",
    "desync",
    "propagation_ms",
    "faults",
    "checks",
    "slo",
]

SLOS = '\n[slo]\n"latency.p99" = "< 50ms"\n"messages.dropped" = "== 0"\n"capacity.knee_rate" = "> 1/s"\n'

NODES = (
    {"name": "n0", "region": "us-east"},
    {"name": "n1", "region": "eu-west"},
    {"name": "n2", "region": "eu-west"},
)


def assert_plain_json(value: Any) -> None:
    """Only dict/list/str/int/float/bool/None, so json.dumps needs no custom encoder."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), (value, type(value))


def small_run(tmp_path: Path) -> Analysis:
    rows = [message(i, i * 100 * MS, stages_ns=(5 * MS, MS, MS, 3 * MS)) for i in range(40)]
    rows[10] = message(10, S, status="dropped")
    rows.append(message(40, 4 * S, status="pending"))
    events = [
        event(0, "run_start"),
        event(500 * MS, "queue_depth", value=2.0),
        event(1500 * MS, "queue_depth", value=4.0),
        event(1400 * MS, "queue_depth_max", value=9.0),
        event(1 * S, "backpressure", state="normal"),
        event(2 * S, "backpressure", state="suspended"),
        event(2500 * MS, "backpressure", state="resumed"),
        event(1 * S, "base_fee", value=1.0),
        event(3 * S, "base_fee", value=0.875),
        event(2 * S, "fault_start", fault_id=0, kind="degrade"),
        event(3 * S, "fault_end", fault_id=0, kind="degrade"),
        event(2100 * MS, "desync_start", node="n2", value=3.0),
        event(2900 * MS, "desync_end", node="n2", value=1.0, max_gap=6),
        event(5 * S, "run_end"),
    ]
    deliveries = [
        {"msg_id": 0, "node": "n0", "t_delivered": 1 * MS, "hops": 0},
        {"msg_id": 0, "node": "n1", "t_delivered": 80 * MS, "hops": 1},
        {"msg_id": 1, "node": "n2", "t_delivered": 100 * MS + 40 * MS, "hops": 2},
    ]
    history = write_history(
        tmp_path,
        rows,
        events,
        deliveries,
        scenario=scenario_dict(BASE_SCENARIO + SLOS),
        nodes=NODES,
    )
    return analyse(history)


def test_summary_keys_are_stable_and_json_ready(tmp_path: Path) -> None:
    summary = small_run(tmp_path).summary
    assert list(summary) == KEYS
    assert_plain_json(summary)
    json.dumps(summary, allow_nan=False)


def test_summary_values_of_a_small_run(tmp_path: Path) -> None:
    analysis = small_run(tmp_path)
    s = analysis.summary
    assert (s["scenario"], s["seed"], s["target"], s["scenario_hash"]) == (
        "analysis-test",
        7,
        "sim",
        "abc123",
    )
    assert (s["duration_s"], s["interrupted"]) == (5.0, False)
    assert s["messages"] == {
        "sent": 41,
        "sequenced": 39,
        "committed": 39,
        "dropped": 1,
        "rejected": 0,
        "lost": 0,
        "pending": 1,
        "unsent": 0,
    }
    assert s["offered_rate_per_s"] == 8.2  # 41 messages / 5 s
    assert s["throughput_per_s"] == 7.8  # 39 commits over 5 s (first intent to the window's end)
    assert s["latency_ms"]["p50"] == 10.0 and s["latency_ms"]["max"] == 10.0
    assert s["latency_stages_ms"]["propagation"] == {"p50": 5.0, "p99": 5.0}
    assert s["latency_stages_ms"]["block_wait"] == {"p50": 3.0, "p99": 3.0}
    assert s["jitter_ms"] == {
        "stddev": 0.0,
        "p99_minus_p50": 0.0,
        "ipdv_mean": 0.0,
        "ipdv_p99": 0.0,
    }
    assert s["capacity"] is None and analysis.steps is None
    assert s["failure_threshold"] == {"rate_per_s": 10.0, "reason": "loss", "t_ns": 1 * S}
    # What the queue-wait stage measures, not the queue samples: the 39 committed messages,
    # 100 ms apart, each wait 1 ms (never two at once); 39 ms over the run's 5 s = 0.0078.
    assert s["queue"] == {"max_depth": 1, "mean_depth": 0.008, "max_block_backlog": None}
    assert s["backpressure"] == {"events": 3, "first_engaged_s": 2.0}
    assert s["base_fee"] == {"min": 0.875, "max": 1.0, "last": 0.875, "unit": "gwei"}
    assert s["desync"] == {"episodes": 1, "max_height_gap": 6}
    # Every committed message 10 ms late before the fault and after it: recovered at once. The
    # message dropped in 1 .. 2 s leaves 0 .. 1 s as the baseline.
    assert s["faults"] == [{"fault_id": 0, "kind": "degrade", "start_s": 2.0, "end_s": 3.0, "pre_fault_p99_ms": 10.0,
                            "baseline_s": [0.0, 1.0], "no_baseline": None, "recovery_s": 0.0}]
    assert s["propagation_ms"] == {
        "eu-west": {"p50": 40.0, "p90": 80.0, "p99": 80.0, "count": 2},
        "us-east": {"p50": 1.0, "p90": 1.0, "p99": 1.0, "count": 1},
    }
    assert {c["name"]: c["verdict"] for c in s["checks"]} == dict.fromkeys(CHECKERS, "valid")
    assert s["slo"] == [
        {"name": "latency.p99", "verdict": "pass", "value": 10.0, "threshold": "< 50ms"},
        {"name": "messages.dropped", "verdict": "fail", "value": 1, "threshold": "== 0"},
        {"name": "capacity.knee_rate", "verdict": "unknown", "value": None, "threshold": "> 1/s"},
    ]
    assert slo_failed(analysis)
    assert analysis.windows.num_rows == 5
    assert analysis.timelines["backpressure"][1] == {"t_ns": 2 * S, "state": "suspended"}


def test_analysis_is_frozen(tmp_path: Path) -> None:
    analysis = analyse(write_history(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        analysis.steps = None  # type: ignore[misc]


def test_empty_history_gives_nulls_not_errors(tmp_path: Path) -> None:
    scenario = scenario_dict(BASE_SCENARIO + SLOS)
    analysis = analyse(write_history(tmp_path, scenario=scenario, t_end=0))
    s = analysis.summary
    assert list(s) == KEYS
    assert_plain_json(s)
    assert set(s["latency_ms"].values()) == {None}
    assert s["jitter_ms"] == dict.fromkeys(["stddev", "p99_minus_p50", "ipdv_mean", "ipdv_p99"])
    assert s["messages"] == dict.fromkeys(
        ["sent", "sequenced", "committed", "dropped", "rejected", "lost", "pending", "unsent"], 0
    )
    assert s["offered_rate_per_s"] == 0.0 and s["throughput_per_s"] == 0.0
    assert s["queue"] == {"max_depth": None, "mean_depth": None, "max_block_backlog": None}
    assert s["base_fee"] is None and s["failure_threshold"] is None and s["capacity"] is None
    assert s["propagation_ms"] == {} and s["faults"] == []
    assert s["by_kind"] == {} and s["by_agent"] == {} and s["gossip_backlog"] is None
    assert s["generator"] is None and s["delivery"] is None and s["connections"] is None
    assert [entry["verdict"] for entry in s["slo"]] == ["unknown", "pass", "unknown"]
    assert not slo_failed(analysis)
    assert analysis.windows.num_rows == 0


def test_propagation_skips_unknown_messages_and_unlisted_nodes_are_unknown(tmp_path: Path) -> None:
    rows = [message(1, 0, latency_ns=MS), message(2, 0, status="pending", t_sent=None)]
    deliveries = [
        {"msg_id": 1, "node": "n9", "t_delivered": 7 * MS, "hops": 3},  # not in nodes
        {"msg_id": 2, "node": "n1", "t_delivered": 7 * MS, "hops": 1},  # never sent
        {"msg_id": 99, "node": "n1", "t_delivered": 7 * MS, "hops": 1},  # no such message
    ]
    history = write_history(tmp_path, rows, deliveries=deliveries, nodes=NODES)
    assert propagation_by_region_ms(history) == {
        "unknown": {"p50": 7.0, "p90": 7.0, "p99": 7.0, "count": 1}
    }


@pytest.mark.parametrize("nodes", [("n0", "n0", "n0", "n0", "n0"), ("n0", "n1", "n0", "n2", "n0")])
def test_propagation_of_one_delivery_row_per_message_in_their_order(tmp_path: Path, nodes: tuple[str, ...]) -> None:
    # The shape a one-node run writes (taken whole, no lookup), in one region and in two.
    rows = [message(i, i * MS, latency_ns=MS) for i in range(4)] + [message(4, 0, status="pending", t_sent=None)]
    deliveries = [{"msg_id": i, "node": node, "t_delivered": (i + 2 + i % 2) * MS, "hops": 0}
                  for i, node in enumerate(nodes)]  # propagation 2 ms (even ids), 3 ms (odd)
    found = propagation_by_region_ms(write_history(tmp_path, rows, deliveries=deliveries, nodes=NODES))
    if len(set(nodes)) == 1:
        assert found == {"us-east": {"p50": 2.0, "p90": 3.0, "p99": 3.0, "count": 4}}  # msg 4: never sent
    else:
        assert found == {"eu-west": {"p50": 3.0, "p90": 3.0, "p99": 3.0, "count": 2},
                         "us-east": {"p50": 2.0, "p90": 2.0, "p99": 2.0, "count": 2}}


def test_propagation_reads_a_repeated_msg_id_as_the_lookup_does(tmp_path: Path) -> None:
    # Rows and deliveries match one for one, but msg_id 0 has two rows (conservation calls
    # that invalid): each delivery of it is measured from the same row, whatever the shape.
    rows = [message(0, 0, latency_ns=MS), message(0, 10 * MS, latency_ns=MS)]
    deliveries = [{"msg_id": 0, "node": "n0", "t_delivered": 20 * MS, "hops": 0}] * 2
    found = propagation_by_region_ms(write_history(tmp_path, rows, deliveries=deliveries, nodes=NODES))
    assert found == {"us-east": {"p50": 10.0, "p90": 10.0, "p99": 10.0, "count": 2}}


def test_public_exports_resolve() -> None:
    from msgstorm import analysis

    for name in analysis.__all__:
        assert getattr(analysis, name) is not None, name
    assert analysis.slo_metric_known("latency.p99")


def test_the_readme_lists_every_check_the_summary_carries() -> None:
    from msgstorm.analysis.delivery import CHECKERS

    readme = (Path(__file__).resolve().parent.parent / "docs" / "run-directory.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `checks` |"))
    assert all(name in row for name in CHECKERS), (row, list(CHECKERS))


def test_by_kind_and_by_agent_count_statuses_and_latencies(tmp_path: Path) -> None:
    rows = [
        message(1, 0, latency_ns=10 * MS, agent="alice", kind="order"),
        message(2, 0, latency_ns=30 * MS, agent="alice", kind="order"),
        message(3, 0, latency_ns=20 * MS, agent="bob", kind="cancel"),
        message(4, 0, status="dropped", agent="bob", kind="order"),
        message(5, 0, status="lost", agent="bob", kind="cancel"),
        message(6, 0, status="pending", agent="alice", kind="cancel"),
    ]
    events = [event(S, "validation_backlog", node="n3", value=12.5),
              event(2 * S, "validation_backlog", node="n1", value=40.0),
              event(2 * S, "validation_backlog", node="n3", value=40.0)]
    s = analyse(write_history(tmp_path, rows, events)).summary
    counts = dict.fromkeys(("committed", "dropped", "rejected", "lost", "pending", "unsent"), 0)
    assert s["by_kind"] == {
        "cancel": {"sent": 3, **counts, "committed": 1, "lost": 1, "pending": 1,
                   "latency_ms": {"p50": 20.0, "p99": 20.0}},
        "order": {"sent": 3, **counts, "committed": 2, "dropped": 1, "latency_ms": {"p50": 10.0, "p99": 30.0}},
    }
    assert s["by_agent"]["alice"] == {"sent": 3, **counts, "committed": 2, "pending": 1,
                                      "latency_ms": {"p50": 10.0, "p99": 30.0}}
    assert s["by_agent"]["bob"]["latency_ms"] == {"p50": 20.0, "p99": 20.0}
    assert sum(entry["sent"] for entry in s["by_agent"].values()) == s["messages"]["sent"]
    # The first sample to reach the largest backlog names its node.
    assert s["gossip_backlog"] == {"max": 40.0, "node": "n1", "mean": 30.833, "samples": 3}


def test_throughput_is_commits_over_first_send_to_the_later_of_window_end_and_last_commit(tmp_path: Path) -> None:
    # Window 5 s (run.duration); sends from 1 s; last commit at 3 s: 4 commits over 4 s.
    rows = [message(i, S + i * MS, latency_ns=2 * S - i * MS) for i in range(4)]
    assert analyse(write_history(tmp_path / "a", rows)).summary["throughput_per_s"] == 1.0
    # A commit after the window's end (at 9 s) stretches the span to 8 s: 4 / 8.
    late = [*rows[:3], message(3, S, latency_ns=8 * S)]
    assert analyse(write_history(tmp_path / "b", late)).summary["throughput_per_s"] == 0.5


def test_the_failing_slos_are_the_typed_results_that_fail_and_with_strict_the_unknown_too() -> None:
    import pyarrow as pa
    from test_report_compare import hand_summary  # a whole summary.json, these SLOs laid over

    from msgstorm.analysis import failing_slos
    from msgstorm.analysis.summary_model import SloVerdict, Summary

    slos = [{"name": "latency.p99", "verdict": "pass", "value": 12.5, "threshold": "< 50ms"},
            {"name": "loss_rate", "verdict": "fail", "value": 0.03, "threshold": "< 1%"},
            {"name": "throughput", "verdict": "unknown", "value": None, "threshold": ">= 100/s"}]
    analysis = Analysis(result=Summary.model_validate(hand_summary(slo=slos)), verdicts=[],
                        windows=pa.table({}), steps=None)
    assert failing_slos(analysis) == [SloVerdict(name="loss_rate", verdict="fail", value=0.03, threshold="< 1%")]
    assert [entry.name for entry in failing_slos(analysis, strict=True)] == ["loss_rate", "throughput"]
    assert slo_failed(analysis) and slo_failed(analysis, strict=True)
    passing = dataclasses.replace(analysis, result=Summary.model_validate(hand_summary(slo=slos[:1])))
    assert failing_slos(passing, strict=True) == [] and not slo_failed(passing, strict=True)
