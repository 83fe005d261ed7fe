"""The leader's intake read from the gossip kernel's log against handing every validation back.

By default (``sim/intake_log.py``) the kernel logs the leader's
validations and runs on to the next Python event that is not a service completion; Python
replays the intakes and the completions in time order. ``reference=True`` hands back
each validation and keeps completions with the other Python events, the reference: from
the same seed both must write the same history, row for row, and end at the same time —
for the flash crash (with its leader crashing and the standby taking over: its mempool is
what the standby sequences), for every example with a market, front-runners or controllers
(shortened), and for hypothesis-drawn small market scenarios with a crash, under each
backpressure mode. The reference runs every part on its Python path (the standbys'
mempools too), so these whole-run checks are written here once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_runs import (
    LEADER_CRASH,
    REACTING_EXAMPLES,
    built_network,
    example_scenario,
    market_scenarios,
    same_both_ways,
    shared_tables,
    simulate_tables,
)

from msgstorm.history.events import EventKind
from msgstorm.scenario import Scenario, parse_scenario
from msgstorm.sim.intake_log import LoggedIntake

CASES = int(os.environ.get("MSGSTORM_INTAKE_CASES", "12"))



def _logs_intake(scenario: Scenario) -> bool:
    """Whether the network built for ``scenario`` reads the leader's intake from the log."""
    return bool(built_network(scenario, lambda sim: sim.intake_log is not None))


@pytest.mark.slow
def test_the_flash_crash_sequences_the_same_with_a_failover() -> None:
    """The leader crashes while the burst is on; its standby takes over and sequences what
    its mempool saw (logged in the same pass as the leader's intake)."""
    scenario = example_scenario("flash-crash", ['run.duration="8s"', 'run.drain="3s"'], LEADER_CRASH)
    assert _logs_intake(scenario)
    history = same_both_ways(scenario)
    events = history["events"]
    changes = [t for t, kind in zip(events["t"], events["kind"], strict=True) if kind == EventKind.LEADER_CHANGE]
    assert changes, "the crash must hand the sequencer to the standby"
    messages = history["messages"]
    assert any(t is not None and t >= changes[0] for t in messages["t_sequenced"])
    assert messages["status"].count("dropped") > 0  # the shedding admitted and dropped at intake


def test_losing_the_leaders_log_changes_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberate mutation: intake that never reaches the sequencer must show."""
    scenario = example_scenario("flash-crash", ['run.duration="2s"', 'run.drain="1s"'])
    reference = shared_tables(scenario, reference=True)[0]  # made before the mutation
    with tempfile.TemporaryDirectory() as tmp:
        monkeypatch.setattr(LoggedIntake, "replay", lambda self, t_limit, inclusive: 0)
        lost, _, _ = simulate_tables(scenario, Path(tmp) / "lost")
    assert lost["messages"] != reference["messages"]


def test_events_that_only_send_run_ahead_of_the_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keepers' liquidations (``ReactorHost.schedule_send``) run without the log's replay
    before each: most of them in a Black Thursday second with its flood, and the history is
    the reference's. Every event run ahead (a block's commit too) must show."""
    scenario = example_scenario("black-thursday", ['run.duration="12s"', 'run.drain="2s"'])
    ahead = []
    before_event = LoggedIntake.before_event

    def counted(self: LoggedIntake, event: tuple[Any, ...], allowed: bool) -> int:
        ahead.append(allowed and event[2] in self.ahead)
        return before_event(self, event, allowed)

    reference, t_reference = shared_tables(scenario, reference=True)  # made before the counting
    monkeypatch.setattr(LoggedIntake, "before_event", counted)
    with tempfile.TemporaryDirectory() as tmp:
        logged, t_logged, _ = simulate_tables(scenario, Path(tmp) / "logged")
        assert (logged, t_logged) == (reference, t_reference)
        assert sum(ahead) > len(ahead) / 2, (sum(ahead), len(ahead))

        def every_one(self: LoggedIntake, event: tuple[Any, ...], allowed: bool) -> int:
            self.ahead.add(event[2])  # a deliberate mutation: any event runs ahead
            return before_event(self, event, allowed)

        monkeypatch.setattr(LoggedIntake, "before_event", every_one)
        every, _, _ = simulate_tables(scenario, Path(tmp) / "every")
    assert every != reference


def test_policies_with_hooks_and_suspending_senders_keep_the_hand_back() -> None:
    base = ['run.duration="1s"', 'run.drain="1s"']
    assert _logs_intake(example_scenario("flash-crash", base))
    assert not _logs_intake(example_scenario("flash-crash", [*base, 'sequencer.policy="batch_auction"']))
    assert not _logs_intake(example_scenario("flash-crash", [*base, 'backpressure={mode="suspend", high=400, low=100}']))


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(REACTING_EXAMPLES))
def test_examples_write_the_same_history(example: str) -> None:
    same_both_ways(example_scenario(example, REACTING_EXAMPLES[example]))


# Every backpressure mode the drawn scenarios run under (suspend keeps the hand-back).
BACKPRESSURE = [
    {"mode": "unbounded"},
    {"mode": "drop_tail", "capacity": 40},
    {"mode": "shed", "capacity": 60, "levels": {"spam": "25%", "order": "60%"}, "protect": ["liquidation"]},
    {"mode": "eip1559", "underpriced": "wait"},
    {"mode": "suspend", "high": 50, "low": 10},
]


@pytest.mark.slow
def test_drawn_market_scenarios_write_the_same_history() -> None:
    failovers = 0
    logged = 0

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(market_scenarios(), st.sampled_from(BACKPRESSURE), st.sampled_from(["100us", "300us", "1ms"]))
    def check(spec: dict[str, Any], backpressure: dict[str, Any], service: str) -> None:
        nonlocal failovers, logged
        spec = {**spec, "backpressure": backpressure,
                "sequencer": {**spec["sequencer"], "service": {"dist": "exponential", "mean": service}}}
        scenario = parse_scenario(tomli_w.dumps(spec), source="intake.toml")
        logged += _logs_intake(scenario)
        history = same_both_ways(scenario)
        failovers += EventKind.LEADER_CHANGE in history["events"]["kind"]

    check()
    if CASES >= 6:  # the drawn cases must include failovers and runs that read the log
        assert failovers >= 2, failovers
        assert logged >= CASES // 2, logged
