"""The compiled one-node loop (sim/solo.py): which scenarios it takes, interruption, memory.

That it writes the Python loop's history row for row is tested on random scenarios in
test_sim_solo_differential.py; the scenarios here are templates for the other properties.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msgstorm.history import HistoryWriter, read_history
from msgstorm.progress import ProgressSnapshot
from msgstorm.scenario import parse_scenario
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.traffic import generate_traffic

SOLO_TOML = """
[run]
name = "solo"
seed = {seed}
duration = "{duration}"
drain = "{drain}"
sample_interval = "{sample}"
window = "{window}"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = {processing}

[sequencer]
workers = {workers}
service = {service}
policy = "{policy}"

[blocks]
interval = "{block}"
max_messages = {max_messages}
{gas}

[backpressure]
{backpressure}

[history]
delivery_sample = "{sample_share}"
max_deliveries = {max_deliveries}

[[agents]]
name = "traders"
count = 5
arrival = {{ process = "poisson", rate = "{rate}/s" }}
fee = {{ dist = "lognormal", median = 2.0, sigma = 0.4 }}
mix = {{ order = 0.5, cancel = 0.3, liquidation = 0.2 }}

[[agents]]
name = "flooder"
start = "2s"
stop = "4s"
arrival = {{ process = "constant", rate = "{flood}/s" }}
size = "120B"
fee = 0.2
mix = {{ spam = 0.7, quote = 0.3 }}
"""

SHED = 'mode = "shed"\ncapacity = 400\nlevels = { spam = "25%", quote = "60%" }\nprotect = ["liquidation"]'

CASES = {
    # Fee priority under a flood, shedding spam and quotes, capped blocks.
    "fee-shed": dict(seed=1, duration="6s", drain="1s", sample="100ms", window="1s", processing='"20us"',
                     workers=1, service='{ dist = "exponential", mean = "500us" }', policy="fee_priority",
                     block="250ms", max_messages=300, gas="", backpressure=SHED, sample_share="5%",
                     max_deliveries=100, rate=300, flood=2000),
    # FIFO, two workers, constant service, drop_tail dropping and recovering, gas-limited blocks.
    "fifo-droptail-gas": dict(seed=2, duration="6s", drain="300ms", sample="50ms", window="500ms",
                              processing='{ dist = "uniform", low = "10us", high = "30us" }', workers=2,
                              service='"400us"', policy="fifo", block="100ms", max_messages=1000,
                              gas="max_gas = 2000000", backpressure='mode = "drop_tail"\ncapacity = 200',
                              sample_share="100%", max_deliveries=100000, rate=500, flood=3000),
    # Zero processing, constant service: equal-time ties everywhere; a drain too short to finish.
    "ties-short-drain": dict(seed=3, duration="5s", drain="10ms", sample="1s", window="1s", processing='"0ns"',
                             workers=1, service='"1ms"', policy="fifo", block="1s", max_messages=100000, gas="",
                             backpressure='mode = "unbounded"', sample_share="0%", max_deliveries=10,
                             rate=100, flood=1000),
    # Heavy-tailed service on four workers, blocks far too small: a backlog pending at the end.
    "pareto-backlog": dict(seed=4, duration="5s", drain="2s", sample="100ms", window="1s", processing='"50us"',
                           workers=4, service='{ dist = "pareto", scale = "200us", alpha = 1.5 }',
                           policy="fee_priority", block="50ms", max_messages=5, gas="",
                           backpressure='mode = "drop_tail"\ncapacity = 50', sample_share="1%",
                           max_deliveries=1000, rate=1000, flood=5000),
    # A long drain with frequent blocks and samples: the run stops early once all settled.
    "early-stop": dict(seed=5, duration="4s", drain="60s", sample="10ms", window="1s",
                       processing='{ dist = "lognormal", median = "30us", sigma = 0.5 }', workers=1,
                       service='{ dist = "exponential", mean = "300us" }', policy="fifo", block="10ms",
                       max_messages=100000, gas="", backpressure='mode = "unbounded"', sample_share="50%",
                       max_deliveries=100000, rate=400, flood=1500),
}


@pytest.mark.parametrize("old, new", [
    ("nodes_per_region = 1", "nodes_per_region = 2"),
    ('mode = "unbounded"', 'mode = "suspend"\nhigh = 100\nlow = 10'),
    ('mode = "unbounded"', 'mode = "eip1559"'),
    # Values int64 sums could overflow ("never" written as centuries): the Python loop's
    # integers hold them exactly.
    ('sample_interval = "1s"', 'sample_interval = "6e9s"'),  # 190 years: over 2**62 ns
    ('drain = "10ms"', 'drain = "6e9s"'),
    ('max_messages = 100000', 'max_messages = 100000\ngas = { order = 5000000000000000000 }'),
])
def test_scenarios_outside_the_compiled_loop_use_the_python_loop(old: str, new: str, tmp_path: Path) -> None:
    text = SOLO_TOML.format(**CASES["ties-short-drain"])
    assert old in text
    scenario = parse_scenario(text.replace(old, new), source="other.toml")
    writer = HistoryWriter(tmp_path / "history", scenario.history.row_group_size)
    sim = ShadowNetwork(scenario, writer, np.random.SeedSequence(1))
    writer.close()
    assert sim.solo is None


def test_faults_keep_a_one_node_network_in_the_python_loop(tmp_path: Path) -> None:
    text = SOLO_TOML.format(**CASES["ties-short-drain"]) + (
        '\n[[faults]]\nkind = "crash"\nnode = "sequencer"\nat = "1s"\nrestart_after = "1s"\n')
    scenario = parse_scenario(text, source="crash.toml")
    writer = HistoryWriter(tmp_path / "history", scenario.history.row_group_size)
    sim = ShadowNetwork(scenario, writer, np.random.SeedSequence(1))
    writer.close()
    assert sim.solo is None


def test_an_interrupted_compiled_run_keeps_what_was_sent(tmp_path: Path) -> None:
    from msgstorm.runner import run

    case = dict(CASES["early-stop"], duration="120s", drain="1s")
    scenario = parse_scenario(SOLO_TOML.format(**case), source="interrupt.toml")

    def stop_soon(snapshot: ProgressSnapshot) -> None:
        if snapshot.t_ns > 5_000_000_000:
            raise KeyboardInterrupt

    result = run(scenario, tmp_path / "r", progress=stop_soon)
    messages = result.history.messages
    t_sent = messages["t_sent"].to_pylist()
    assert result.summary["interrupted"] is True
    assert "interrupted" in result.history.events["kind"].to_pylist()
    # Everything written was sent, and the run stopped well before its traffic ended.
    assert messages.num_rows > 1000 and None not in t_sent
    assert max(t_sent) < 60_000_000_000
    assert sorted(messages["msg_id"].to_pylist()) == list(range(messages.num_rows))


def test_a_starving_message_does_not_hold_memory(tmp_path: Path) -> None:
    """Under fee priority and overload a low-fee message can wait for the whole run; the
    records of the messages settled after it must still be reused, not kept."""
    case = dict(CASES["fee-shed"], duration="20s", drain="0ns", rate=4000, flood=0, workers=1,
                service='{ dist = "exponential", mean = "60us" }', block="10ms", max_messages=100000,
                backpressure='mode = "drop_tail"\ncapacity = 100', sample_share="0%")
    scenario = parse_scenario(SOLO_TOML.format(**case), source="starve.toml")
    writer = HistoryWriter(tmp_path / "history", scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed)
    assert sim.solo is not None
    sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window))
    sim.finish()
    writer.close()
    messages = read_history(tmp_path).messages
    status = messages["status"].to_pylist()
    first_pending = min((m for m, s in zip(messages["msg_id"].to_pylist(), status) if s == "pending"), default=None)
    assert len(status) > 300_000 and status.count("dropped") > 1000
    # Some message waited from early on to the end, and the record table stayed small.
    assert first_pending is not None and first_pending < 100_000
    assert sim.solo.solo.records.shape[0] <= 1 << 16


def _history(scenario_text: str, out: Path, compiled: bool) -> tuple[dict[str, dict[str, list[object]]], int]:
    scenario = parse_scenario(scenario_text, source="deep.toml")
    writer = HistoryWriter(out / "history", scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed, reference=not compiled)
    assert (sim.solo is not None) == compiled
    sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window))
    t_end = sim.finish()
    writer.close()
    history = read_history(out)
    return {table: getattr(history, table).to_pydict() for table in ("messages", "events", "deliveries")}, t_end


def test_a_fifo_queue_thousands_deep_is_served_in_arrival_order_as_in_the_python_loop(tmp_path: Path) -> None:
    """The compiled loop keeps a FIFO queue as a ring that doubles while messages wrap around
    it; served in arrival order, it must write the Python loop's history."""
    case = dict(CASES["ties-short-drain"], duration="3s", drain="20s", sample="50ms", service='"1ms"',
                rate=1500, flood=4000, max_messages=100000, block="100ms")
    text = SOLO_TOML.format(**case)
    compiled, t_compiled = _history(text, tmp_path / "compiled", compiled=True)
    python, t_python = _history(text, tmp_path / "python", compiled=False)
    depths = [value for kind, value in zip(python["events"]["kind"], python["events"]["value"])
              if kind == "queue_depth_max"]
    assert max(depths) > 4 * 1024  # the ring (1,024 at first) grew at least three times
    assert t_compiled == t_python
    for table in ("messages", "events", "deliveries"):
        assert compiled[table] == python[table], table
    # FIFO: service starts in arrival order at the sequencer.
    messages = compiled["messages"]
    served = sorted((received, msg_id, dequeued) for received, msg_id, dequeued
                    in zip(messages["t_received"], messages["msg_id"], messages["t_dequeued"])
                    if dequeued is not None)
    assert len(served) > 20_000
    dequeued = [row[2] for row in served]
    assert all(a <= b for a, b in zip(dequeued, dequeued[1:]))


def test_partial_pieces_of_settled_rows_own_their_memory_and_change_no_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settled records leave the loop in pieces of a history part's size; a piece handed out
    early (the wall-time interval, the end) is copied, so a few rows never hold a whole
    piece's buffer, and however they are cut the rows are the same."""
    from msgstorm.sim import recorder, solo_driver

    case = dict(CASES["fifo-droptail-gas"], duration="3s")
    text = SOLO_TOML.format(**case).replace("[history]", "[history]\nrow_group_size = 1024")
    steady, _ = _history(text, tmp_path / "steady", compiled=True)
    pieces: list[tuple[int, bool]] = []
    settled_table = recorder.Recorder.settled_table

    def record(self: recorder.Recorder, table: np.ndarray, fee: np.ndarray) -> None:
        pieces.append((table.shape[1], table.base is None and fee.base is None))
        settled_table(self, table, fee)

    monkeypatch.setattr(recorder.Recorder, "settled_table", record)
    monkeypatch.setattr(solo_driver, "HAND_OUT_S", 0.0)  # every drain hands out what it has
    eager, _ = _history(text, tmp_path / "eager", compiled=True)
    assert eager == steady
    partial = [owns for rows, owns in pieces if rows < 1024]
    assert len(partial) >= 2 and all(partial)  # one mid-run, one at the end
    assert any(rows == 1024 for rows, _ in pieces)
