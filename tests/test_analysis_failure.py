"""Failure threshold: the first window (or ramp step) with loss, desync, overload or an SLO breach."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_analysis_capacity import RAMP, ramp_messages
from test_analysis_history import BASE_SCENARIO, MS, S, event, message, scenario_dict, write_history

from msgstorm.analysis import capacity, failure_threshold


def steady(rate: int = 10, seconds: int = 5, latency_ms: float = 1) -> list[dict[str, Any]]:
    return [
        message(i, i * S // rate, latency_ns=int(latency_ms * MS)) for i in range(rate * seconds)
    ]


def test_nothing_fires_on_a_healthy_run(tmp_path: Path) -> None:
    assert failure_threshold(write_history(tmp_path, steady())) is None


def test_loss_fires_at_the_first_window_with_a_drop(tmp_path: Path) -> None:
    rows = steady()
    rows[25] = message(25, rows[25]["t_intended"], status="dropped")  # 2.5 s
    rows[42] = message(42, rows[42]["t_intended"], status="lost")  # 4.2 s: later, not reported
    assert failure_threshold(write_history(tmp_path, rows)) == {
        "rate_per_s": 10.0,
        "reason": "loss",
        "t_ns": 2 * S,
    }


def test_desync_fires_when_an_episode_overlaps(tmp_path: Path) -> None:
    rows = steady()
    rows[25] = message(25, rows[25]["t_intended"], status="dropped")
    events = [
        event(1500 * MS, "desync_start", node="n3", value=3.0),
        event(1700 * MS, "desync_end", node="n3", value=0.0, max_gap=5),
    ]
    assert failure_threshold(write_history(tmp_path, rows, events)) == {
        "rate_per_s": 10.0,
        "reason": "desync",
        "t_ns": 1 * S,
    }


def test_open_desync_episode_counts_until_the_end(tmp_path: Path) -> None:
    events = [event(4500 * MS, "desync_start", node="n3", value=3.0)]
    result = failure_threshold(write_history(tmp_path, steady(), events))
    assert result is not None and (result["reason"], result["t_ns"]) == ("desync", 4 * S)


def test_overload_needs_short_throughput_and_a_growing_queue(tmp_path: Path) -> None:
    rows = steady(rate=10, seconds=2)
    # from 2 s the layer is offered 20/s but commits only 10/s
    for j in range(40):
        t = 2 * S + j * 50 * MS
        rows.append(message(100 + j, t, latency_ns=2 * S + j * 100 * MS + MS - t))
    events = [
        event(2 * S, "queue_depth", value=0.0),
        event(3 * S, "queue_depth", value=10.0),
        event(4 * S, "queue_depth", value=20.0),
    ]
    # window 2 is compared with the previous window's 10/s (the pipeline may be filling);
    # window 3 falls short of its own 20/s while the queue grows: overload there
    assert failure_threshold(write_history(tmp_path, rows, events, t_end=7 * S)) == {
        "rate_per_s": 20.0,
        "reason": "overload",
        "t_ns": 3 * S,
    }


def _outage(tmp_path: Path, fault: bool) -> dict[str, Any] | None:
    """``test_overload_needs_short_throughput_and_a_growing_queue``'s history, with or without a
    sequencer outage (fault 0) from 2.5 s to the end (it never ends)."""
    rows = steady(rate=10, seconds=2)
    for j in range(40):
        t = 2 * S + j * 50 * MS
        rows.append(message(100 + j, t, latency_ns=2 * S + j * 100 * MS + MS - t))
    events = [event(2 * S, "queue_depth", value=0.0), event(3 * S, "queue_depth", value=10.0),
              event(4 * S, "queue_depth", value=20.0)]
    if fault:
        events.insert(1, event(2_500 * MS, "fault_start", fault_id=0, kind="sequencer_outage"))
    return failure_threshold(write_history(tmp_path, rows, events, t_end=7 * S))


def test_a_shortfall_while_a_fault_is_active_is_the_faults_not_an_overload(tmp_path: Path) -> None:
    """The window from 3 s falls short of its 20/s while the queue grows: without a fault that
    is an overload; inside a sequencer outage it is the fault's doing, and the threshold names
    the fault active in its window."""
    assert _outage(tmp_path / "plain", fault=False) == {"rate_per_s": 20.0, "reason": "overload", "t_ns": 3 * S}
    assert _outage(tmp_path / "outage", fault=True) == {
        "rate_per_s": 20.0, "reason": "fault", "t_ns": 3 * S,
        "faults": [{"fault_id": 0, "kind": "sequencer_outage"}]}


def test_a_loss_during_a_fault_names_the_fault(tmp_path: Path) -> None:
    """A drop at 2.5 s, in the window from 2 s, which a partition from 2.2 s to 2.4 s overlaps
    (the next window, from 3 s, it does not: a span is ``[start, end)``)."""
    rows = steady()
    rows[25] = message(25, rows[25]["t_intended"], status="dropped")
    events = [event(2_200 * MS, "fault_start", fault_id=3, kind="partition"),
              event(2_400 * MS, "fault_end", fault_id=3, kind="partition")]
    assert failure_threshold(write_history(tmp_path, rows, events)) == {
        "rate_per_s": 10.0, "reason": "loss", "t_ns": 2 * S, "faults": [{"fault_id": 3, "kind": "partition"}]}


def test_pipeline_filling_in_the_first_window_is_not_overload(tmp_path: Path) -> None:
    # 300 ms latency: the first window commits only 70% of what it is offered
    events = [event(1 * S, "queue_depth", value=2.0), event(2 * S, "queue_depth", value=3.0)]
    history = write_history(tmp_path, steady(latency_ms=300), events, t_end=6 * S)
    assert failure_threshold(history) is None


def test_slo_breach_in_a_window(tmp_path: Path) -> None:
    scenario = scenario_dict(
        BASE_SCENARIO + '\n[slo]\n"latency.p99" = "< 10ms"\n"throughput" = "> 1M/s"\n'
    )
    rows = steady()
    for i in range(30, 40):  # window 3 commits at 20 ms latency
        rows[i] = message(i, rows[i]["t_intended"], latency_ns=20 * MS)
    # the throughput SLO is a whole-run metric: it does not fire per window
    assert failure_threshold(write_history(tmp_path, rows, scenario=scenario)) == {
        "rate_per_s": 10.0,
        "reason": "slo",
        "t_ns": 3 * S,
    }


def test_ramp_steps_are_walked_in_increasing_offered_rate(tmp_path: Path) -> None:
    rows = ramp_messages([1, 1, 1, 1, 1], {0: 50, 2: 50})  # losses in steps 1 and 3
    # background traffic lifts step 1's offered rate above step 3's
    rows += [message(10_000 + i, i * MS, latency_ns=MS, agent="bg") for i in range(1000)]
    history = write_history(tmp_path, rows, scenario=scenario_dict(RAMP), t_end=6 * S)
    assert failure_threshold(history) == {"rate_per_s": 300.0, "reason": "loss", "t_ns": 2 * S}


def _live(tmp_path: Path, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return failure_threshold(write_history(tmp_path, rows, scenario=scenario_dict(RAMP), t_end=6 * S, target="nats"))


def test_a_live_ramp_with_nothing_wrong_fires_nothing(tmp_path: Path) -> None:
    assert _live(tmp_path, ramp_messages([1, 1, 1.2, 1.5, 2])) is None


def test_a_live_ramp_whose_p99_climbs_fires_latency(tmp_path: Path) -> None:
    """No queue can be seen inside a broker: its p99 over 3 x the low-load p99 fires."""
    failure = _live(tmp_path, ramp_messages([1, 1, 1.2, 50, 200]))
    assert failure == {"rate_per_s": 400.0, "reason": "latency", "t_ns": 3 * S}
    # The same history on the simulator: its overload needs a growing queue, latency alone is its SLOs'
    sim = failure_threshold(write_history(tmp_path / "sim", ramp_messages([1, 1, 1.2, 50, 200]),
                                          scenario=scenario_dict(RAMP), t_end=6 * S))
    assert sim is None


def test_a_live_ramp_short_of_its_offered_rate_fires_overload(tmp_path: Path) -> None:
    """Step 4 commits a third of its messages (in time: its p99 stays under the bar); the
    rest were accepted and never committed."""
    rows = ramp_messages([1, 1, 1, 1, 1])
    step4 = [row for row in rows if 3 * S <= row["t_intended"] < 4 * S]
    for row in step4[::3] + step4[1::3]:
        row.update(t_sequenced=None, t_committed=None, status="pending")
    failure = _live(tmp_path, rows)
    assert failure is not None and failure["reason"] == "overload" and failure["rate_per_s"] == 400.0


def test_a_live_ramp_step_committed_late_is_short_and_slow(tmp_path: Path) -> None:
    """Step 4 commits two thirds of its messages an hour late: they count against its
    throughput (not carried at the rate offered) and its p99; the latency is named."""
    rows = ramp_messages([1, 1, 1, 1, 1])
    step4 = [row for row in rows if 3 * S <= row["t_intended"] < 4 * S]
    for row in step4[::3] + step4[1::3]:
        for stage in ("t_received", "t_dequeued", "t_sequenced", "t_committed"):
            if row.get(stage) is not None:
                row[stage] += 3600 * S
    history = write_history(tmp_path, rows, scenario=scenario_dict(RAMP), t_end=6 * S, target="nats")
    _, steps, _ = capacity(history)
    assert steps is not None
    assert steps.column("throughput_per_s").to_pylist()[3] == 133.0  # 133 of 400 within the bar, in a 1 s step
    assert failure_threshold(history) == {"rate_per_s": 400.0, "reason": "latency", "t_ns": 3 * S}


def test_a_live_ramp_whose_generator_fell_behind_fires_generator(tmp_path: Path) -> None:
    rows = ramp_messages([1, 1, 1, 1, 1])
    for row in rows:
        if 3 * S <= row["t_intended"] < 4 * S:
            row["t_sent"] = row["t_intended"] + 5 * MS
    failure = _live(tmp_path, rows)
    assert failure == {"rate_per_s": 400.0, "reason": "generator", "t_ns": 3 * S}


def test_a_live_ramp_losing_a_message_fires_loss(tmp_path: Path) -> None:
    rows = ramp_messages([1, 1, 1, 1, 1])
    lost = next(row for row in rows if row["t_intended"] >= 2 * S)
    lost.update(status="lost", t_received=None, t_dequeued=None, t_sequenced=None, seq_no=None, t_committed=None)
    failure = _live(tmp_path, rows)
    assert failure == {"rate_per_s": 300.0, "reason": "loss", "t_ns": 2 * S}


THROTTLED = BASE_SCENARIO + """
[[controllers]]
kind = "throttle"
nonessential = ["spam"]
target = 100
"""


def test_a_throttles_own_shedding_is_not_loss(tmp_path: Path) -> None:
    """The throttle drops spam on purpose (its ``control`` events say how much): no failure
    threshold fires for that. A dropped order is still loss, and so is dropped spam when
    backpressure could have dropped it too (the history does not tell the two apart)."""
    rows = steady()
    for i in (12, 25, 33):
        rows[i] = message(i, rows[i]["t_intended"], status="dropped", kind="spam")
    decided = [event(1200 * MS, "control", value=0.5, controller="throttle", previous=1.0, strain=300.0, shed=0)]
    history = write_history(tmp_path / "shed", rows, decided, scenario=scenario_dict(THROTTLED))
    assert failure_threshold(history) is None
    rows[42] = message(42, rows[42]["t_intended"], status="dropped")  # an order: 4.2 s
    history = write_history(tmp_path / "order", rows, decided, scenario=scenario_dict(THROTTLED))
    assert failure_threshold(history) == {"rate_per_s": 10.0, "reason": "loss", "t_ns": 4 * S}
    shedding = THROTTLED + '\n[backpressure]\nmode = "shed"\ncapacity = 1000\n'
    history = write_history(tmp_path / "both", rows, decided, scenario=scenario_dict(shedding))
    assert failure_threshold(history) == {"rate_per_s": 10.0, "reason": "loss", "t_ns": 1 * S}
