"""Self-healing controllers (sim/control.py): the throttle settles on a constant overload,
sheds only the kinds marked non-essential and lets them back when the strain ends; the
block interval follows the block backlog within its bounds."""

from __future__ import annotations

from heapq import heappop
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from control_scenarios import OVERLOAD_TOML

from msgstorm.runner import run
from msgstorm.scenario import load_scenario
from msgstorm.scenario.errors import ScenarioError


def _controls(result, name: str) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    events = result.history.events
    rows = events.filter(pc.equal(events["kind"], "control")).to_pylist()
    return [(row["t"] / 1e9, row["value"]) for row in rows if f'"controller": "{name}"' in row["detail"]]


def test_throttle_settles_on_a_constant_overload(scenario_from, run_scenario) -> None:
    # 1,800 messages/s against 1,000/s of service: with 300/s essential, the share of the
    # flood that fits is 700 / 1,500 = 0.467, between the grid's 0.45 and 0.5.
    result = run_scenario(scenario_from(OVERLOAD_TOML.format(duration_s=60, bots_stop="")))
    controls = _controls(result, "throttle")
    settled = [share for t, share in controls if t >= 20]
    assert controls and controls[0][1] < 1.0  # it reacted
    # Settled: only the two steps around the share that fits, a bounded number of changes a
    # minute, and the queue held near its set point.
    assert max(settled) - min(settled) <= 0.05 + 1e-9, settled
    assert min(settled) <= 700 / 1500 <= max(settled)
    assert len(settled) <= 15 * 40 / 60, len(settled)
    events = result.history.events
    depth = events.filter(pc.and_(pc.equal(events["kind"], "queue_depth"), pc.greater_equal(events["t"], 20e9)))
    assert 100 <= float(np.mean(depth["value"].to_numpy())) <= 300


def test_throttle_sheds_only_the_nonessential_kinds(scenario_from, run_scenario) -> None:
    result = run_scenario(scenario_from(OVERLOAD_TOML.format(duration_s=20, bots_stop="")))
    messages = result.history.messages
    dropped = messages.filter(pc.equal(messages["status"], "dropped"))
    assert dropped.num_rows > 5_000
    assert set(dropped["kind"].to_pylist()) == {"spam"}  # orders, cancels and quotes all go through


def test_throttle_lets_the_flood_back_when_it_ends(scenario_from, run_scenario) -> None:
    result = run_scenario(scenario_from(OVERLOAD_TOML.format(duration_s=60, bots_stop='stop = "20s"')))
    controls = _controls(result, "throttle")
    assert min(share for _, share in controls) < 0.6
    assert controls[-1][1] == 1.0 and controls[-1][0] > 20
    detail = result.history.events.filter(pc.equal(result.history.events["kind"], "control"))["detail"][0].as_py()
    assert '"strain"' in detail and '"output"' in detail


def test_block_time_follows_the_backlog_within_its_bounds(scenario_from, run_scenario) -> None:
    # Blocks of 100 messages every 500 ms carry 200/s; 800/s arrive from 2 s to 6 s.
    text = OVERLOAD_TOML.replace("""[blocks]
interval = "100ms"
max_messages = 1000000""", """[blocks]
interval = "500ms"
max_messages = 100""").split("[[controllers]]")[0]
    text = text.replace('rate = "300/s"', 'rate = "100/s"').replace('rate = "1500/s"', 'rate = "800/s"')
    text = text.replace("{bots_stop}", 'start = "2s"\nstop = "6s"')
    text += """
[[controllers]]
kind = "block_time"
min_interval = "100ms"
max_interval = "500ms"
every = "500ms"
"""
    result = run_scenario(scenario_from(text.format(duration_s=20)))
    controls = _controls(result, "block_time")
    intervals = [interval for _, interval in controls]
    assert min(intervals) == pytest.approx(100e6, rel=0.25) and min(intervals) >= 100e6
    assert max(intervals) <= 500e6 and intervals[-1] == 500e6  # back to the slowest once the flood is gone
    first_faster = next(t for t, interval in controls if interval < 500e6)
    assert 2 <= first_faster <= 6
    events = result.history.events
    produced = events.filter(pc.equal(events["kind"], "block_produced"))["t"].to_numpy()
    gaps = np.diff(produced)
    assert gaps.min() >= 100e6 and gaps.max() <= 500e6 and gaps.min() < 200e6


def test_a_controller_refuses_inverted_bounds(scenario_from) -> None:
    text = OVERLOAD_TOML.split("[[controllers]]")[0].format(duration_s=1, bots_stop="") + """
[[controllers]]
kind = "block_time"
min_interval = "1s"
max_interval = "100ms"
"""
    with pytest.raises(ScenarioError, match="'min_interval' must not exceed 'max_interval'"):
        scenario_from(text)


@pytest.mark.slow
def test_self_healing_example_trades_spam_for_liquidations(tmp_path, example_run) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    healing = example_run("self-healing")  # the tour's run of it (tests/test_docs.py)
    without = run(load_scenario(examples / "self-healing.toml", ["controllers=[]"]), tmp_path / "without")
    market = [result.summary["market"] for result in (without, healing)]
    assert market[1]["bad_debt"]["absolute"] <= 0.1 * market[0]["bad_debt"]["absolute"]
    assert market[1]["liquidation_delay_ms"]["p99"] < 0.5 * market[0]["liquidation_delay_ms"]["p99"]
    spam = [result.summary["by_kind"]["spam"] for result in (without, healing)]
    assert spam[0]["committed"] == spam[0]["sent"] and spam[1]["committed"] < 0.5 * spam[1]["sent"]
    messages = healing.history.messages
    shed = set(messages.filter(pc.equal(messages["status"], "dropped"))["kind"].to_pylist())
    assert shed <= {"spam", "quote"}


def test_a_lane_or_controller_on_a_live_target_is_refused_at_validation() -> None:
    from typer.testing import CliRunner

    from msgstorm.cli import app

    examples = Path(__file__).resolve().parent.parent / "examples"
    for example, expected in (("self-healing.toml", "controllers[0]: controllers steer the simulator only"),
                              ("black-thursday-lane.toml", "sequencer.lane: the liquidation lane is the simulator's")):
        result = CliRunner().invoke(app, ["validate", str(examples / example), "--target", "nats"])
        assert result.exit_code == 2, result.output
        assert expected in result.output.replace("\n", " "), result.output


def test_throttle_on_the_block_backlog(scenario_from, run_scenario) -> None:
    # Blocks carry 500 messages/s while the sequencer serves 1,000/s: the backlog waiting for
    # block space is the strain; the throttle holds it near 500 by shedding spam.
    text = OVERLOAD_TOML.replace('max_messages = 1000000', 'max_messages = 50').replace(
        "target = 200", 'target = 500\nsignal = "block_backlog"').replace('rate = "300/s"', 'rate = "200/s"')
    result = run_scenario(scenario_from(text.format(duration_s=40, bots_stop="")))
    controls = _controls(result, "throttle")
    assert controls and min(share for _, share in controls) <= 0.25  # (500 - 200) / 1,500 = 0.2 fits
    events = result.history.events
    backlog = events.filter(pc.and_(pc.equal(events["kind"], "block_backlog"), pc.greater_equal(events["t"], 20e9)))
    assert 250 <= float(np.mean(backlog["value"].to_numpy())) <= 1000
    messages = result.history.messages
    assert set(messages.filter(pc.equal(messages["status"], "dropped"))["kind"].to_pylist()) == {"spam"}


def test_the_height_gap_is_the_furthest_behind_live_node(scenario_from, tmp_path) -> None:
    from msgstorm.history import HistoryWriter
    from msgstorm.sim.shadow import ShadowNetwork

    text = OVERLOAD_TOML.replace("nodes_per_region = 1", "nodes_per_region = 4").replace(
        "target = 200", 'target = 2\nsignal = "height_gap"')
    writer = HistoryWriter(tmp_path / "history")
    sim = ShadowNetwork(scenario_from(text.format(duration_s=1, bots_stop="")), writer, np.random.SeedSequence(1))
    writer.close()
    (throttle,) = sim.controllers
    sim.chain.height[:] = [9, 7, 3, 8]
    sim.cluster.leader = 0
    assert throttle.read() == 6.0
    sim.cluster.up[2] = False  # a crashed node is not desynchronised
    assert throttle.read() == 2.0


def test_a_controller_that_never_decides_changes_nothing(scenario_from, run_scenario) -> None:
    # A set point no queue reaches: the throttle looks every 100 ms and never acts, so the
    # run is the run without it, message for message and event for event.
    idle = run_scenario(scenario_from(OVERLOAD_TOML.replace("target = 200", "target = 1e9").format(
        duration_s=5, bots_stop="")), "idle")
    plain = run_scenario(scenario_from(OVERLOAD_TOML.split("[[controllers]]")[0].format(
        duration_s=5, bots_stop="")), "plain")
    assert not _controls(idle, "throttle")
    assert idle.history.messages.equals(plain.history.messages)
    assert idle.history.events.equals(plain.history.events)


def test_each_controller_looks_at_its_own_rate() -> None:
    from msgstorm.sim.context import EventQueue
    from msgstorm.sim.control import start_controllers

    class Counter:
        def __init__(self, every_ns: int) -> None:
            self.every_ns = every_ns
            self.looks: list[int] = []

        def decide(self, t: int) -> None:
            self.looks.append(t)

    class Ctx:
        events = EventQueue()
        hard_stop = 1_000

    first, second = Counter(100), Counter(100)
    start_controllers([first, second], Ctx)  # type: ignore[arg-type]
    while Ctx.events.heap:
        t, _, handler, a, b, c, d = heappop(Ctx.events.heap)
        handler(t, a, b, c, d)
    assert first.looks == second.looks == list(range(100, 1_001, 100))


def test_a_throttle_and_a_block_time_both_decide(scenario_from, run_scenario) -> None:
    text = OVERLOAD_TOML.replace('max_messages = 1000000', 'max_messages = 50') + """
[[controllers]]
kind = "block_time"
min_interval = "20ms"
max_interval = "100ms"
every = "500ms"
"""
    result = run_scenario(scenario_from(text.format(duration_s=10, bots_stop="")))
    assert _controls(result, "throttle") and _controls(result, "block_time")


def test_a_step_that_does_not_divide_one_still_returns_to_one(scenario_from, run_scenario) -> None:
    # The grid is counted down from 1: with steps of 0.3 the shares are 1, 0.7, 0.4, 0.1.
    text = OVERLOAD_TOML.replace("target = 200", "target = 200\nstep = 0.3")
    result = run_scenario(scenario_from(text.format(duration_s=60, bots_stop='stop = "15s"')))
    shares = [share for _, share in _controls(result, "throttle")]
    assert min(shares) < 1.0 and set(shares) <= {1.0, 0.7, 0.4, 0.1}, shares
    assert shares[-1] == 1.0


@pytest.mark.parametrize(("extra", "where", "message"), [
    ('[[controllers]]\nkind = "throttle"\nnonessential = ["quote"]\ntarget = 50\n', "controllers[1].kind",
     "a second 'throttle' controller"),
    ('[[controllers]]\nkind = "block_time"\nmin_interval = "10ms"\nmax_interval = "50ms"\n',
     "controllers[1].max_interval", r"blocks.interval \(100ms\) is outside"),
])
def test_a_scenario_refuses_controllers_that_would_fight(scenario_from, extra: str, where: str,
                                                         message: str) -> None:
    text = OVERLOAD_TOML.format(duration_s=1, bots_stop="") + "\n" + extra
    with pytest.raises(ScenarioError, match=message) as error:
        scenario_from(text)
    assert where in str(error.value) and ".toml:" in str(error.value), str(error.value)


def test_only_a_throttle_gates_the_sequencer(scenario_from, tmp_path) -> None:
    from msgstorm.history import HistoryWriter
    from msgstorm.sim.control import ThrottleController
    from msgstorm.sim.shadow import ShadowNetwork

    block_time = '[[controllers]]\nkind = "block_time"\nmin_interval = "20ms"\nmax_interval = "100ms"\n'
    base = OVERLOAD_TOML.format(duration_s=1, bots_stop="")
    gates = []
    for name, text in (("block_time", base.split("[[controllers]]")[0] + block_time),
                       ("both", base + "\n" + block_time)):
        writer = HistoryWriter(tmp_path / name)
        sim = ShadowNetwork(scenario_from(text), writer, np.random.SeedSequence(1))
        writer.close()
        gates.append((type(sim.sequencer.gate), len(sim.controllers)))
    assert gates == [(type(None), 1), (ThrottleController, 2)]


def test_the_throttle_holds_its_share_through_a_failover(scenario_from, run_scenario) -> None:
    # The sequencer crashes at 10 s and its standby leads 2 s later: in between the queue is
    # empty because nobody sequences, not because the flood ended.
    text = OVERLOAD_TOML.replace("nodes_per_region = 1", "nodes_per_region = 2").replace(
        "[sequencer]\n", '[sequencer]\nstandby = ["us-east-1"]\nfailover_timeout = "2s"\n') + """
[[faults]]
kind = "crash"
node = "sequencer"
at = "10s"
"""
    result = run_scenario(scenario_from(text.format(duration_s=14, bots_stop="")))
    events = result.history.events
    changed = events.filter(pc.equal(events["kind"], "leader_change"))["t"].to_pylist()
    assert len(changed) == 1 and changed[0] == pytest.approx(12e9, abs=1e8)
    controls = _controls(result, "throttle")
    assert [t for t, _ in controls if t < 10] and not [t for t, _ in controls if 10 < t <= changed[0] / 1e9]


def test_a_lane_and_two_controllers_give_the_same_run_for_the_same_seed(scenario_from, run_scenario) -> None:
    text = OVERLOAD_TOML.replace('max_messages = 1000000', 'max_messages = 50').replace(
        "[sequencer]\nworkers = 1\n", '[sequencer]\nworkers = 2\nlane = {{ kinds = ["order"], workers = 1, '
                                      'block_share = "20%" }}\n').replace('mean = "1ms"', 'mean = "2ms"') + """
[[controllers]]
kind = "block_time"
min_interval = "20ms"
max_interval = "100ms"
every = "500ms"
"""
    runs = [run_scenario(scenario_from(text.format(duration_s=5, bots_stop="")), name) for name in ("a", "b")]
    assert _controls(runs[0], "throttle") and _controls(runs[0], "block_time")
    assert runs[0].history.messages.equals(runs[1].history.messages)
    assert runs[0].history.events.equals(runs[1].history.events)
