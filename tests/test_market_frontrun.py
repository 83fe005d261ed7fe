"""Front-runners under each ordering rule, on the same order flow (examples/front-running.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from msgstorm.market.frontrun import price_impact
from msgstorm.scenario import load_scenario

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "front-running.toml"
SHORT = ['run.duration="4s"', 'run.drain="3s"']


def _fairness(run_scenario, *overrides: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    result = run_scenario(load_scenario(EXAMPLE, [*SHORT, *overrides]))
    return dict(result.summary["fairness"])


def test_fifo_lets_a_latency_advantaged_front_runner_win(run_scenario) -> None:
    fairness = _fairness(run_scenario, 'sequencer.policy="fifo"')
    assert fairness["front_run_attempts"] > 5
    assert fairness["front_run_successes"] > 0
    assert fairness["extracted_value"] > 0


def test_commit_reveal_leaves_front_runners_nothing(run_scenario) -> None:
    fairness = _fairness(run_scenario, 'sequencer.policy="commit_reveal"')
    # It still sees the reveals and races them: every race is lost.
    assert fairness["front_run_attempts"] > 5
    assert fairness["front_run_successes"] == 0
    assert fairness["extracted_value"] == 0


# Without a latency advantage: the front-runner watches and sends at the sequencer's node, so
# it sees a whale's order just as the sequencer admits it. A loaded sequencer (the traders
# keep it about 90% busy) leaves the whale's order queued; only a higher fee passes it.
NO_ADVANTAGE = ['market.frontrunners[0].node="us-east-0"', 'market.frontrunners[0].watch="us-east-0"',
                'market.frontrunners[0].reaction="50us"', 'sequencer.service={dist="exponential", mean="4ms"}',
                'agents[1].arrival={process="poisson", rate="22/s"}']


def test_fee_priority_lets_a_higher_fee_front_runner_win(run_scenario) -> None:
    fee = _fairness(run_scenario, 'sequencer.policy="fee_priority"', *NO_ADVANTAGE)
    fifo = _fairness(run_scenario, 'sequencer.policy="fifo"', *NO_ADVANTAGE)
    assert fee["front_run_attempts"] > 5 and fee["front_run_successes"] > 0
    assert fifo["front_run_attempts"] > 5 and fifo["front_run_successes"] == 0  # the fee did it, not speed


def test_a_won_race_earns_the_victims_price_impact(run_scenario) -> None:
    result = run_scenario(load_scenario(EXAMPLE, [*SHORT, 'sequencer.policy="fifo"']))
    races = result.history.table("frontruns")
    won = races.filter(pc.equal(races["outcome"], "won")).to_pylist()
    assert won
    # A 40 kB order at 10 per byte is 400,000 of notional: 10 bps x 0.4 = 4 bps of impact.
    assert price_impact(400_000.0, 10.0, 1_000_000.0) == pytest.approx(4e-4)
    assert all(row["value"] == pytest.approx(row["notional"] * 4e-4) for row in won)
    assert result.summary["fairness"]["extracted_value"] == pytest.approx(sum(row["value"] for row in won), abs=0.01)


def test_no_fairness_section_without_front_runners_or_an_ordering_protocol(run_scenario) -> None:
    result = run_scenario(load_scenario(EXAMPLE, [*SHORT, "market.frontrunners=[]"]))
    assert "fairness" not in result.summary


def test_a_sandwich_wins_only_with_the_victims_order_between_its_two(run_scenario) -> None:
    result = run_scenario(load_scenario(EXAMPLE, [*SHORT, 'sequencer.policy="fifo"',
                                                  "market.frontrunners[0].sandwich=true"]))
    races = result.history.table("frontruns").to_pylist()
    seq = dict(zip(result.history.messages["msg_id"].to_pylist(), result.history.messages["seq_no"].to_pylist()))
    won = [race for race in races if race["outcome"] == "won"]
    assert won and all(race["back_msg_id"] >= 0 for race in races)
    assert all(seq[race["msg_id"]] < seq[race["victim_msg_id"]] < seq[race["back_msg_id"]] for race in won)
    # Under fee priority, at the sequencer's node: a back-run paying less than the victim
    # follows it; one paying more passes it too, and the sandwich fails.
    after = _fairness(run_scenario, 'sequencer.policy="fee_priority"', *NO_ADVANTAGE,
                      "market.frontrunners[0].sandwich=true")
    before = _fairness(run_scenario, 'sequencer.policy="fee_priority"', *NO_ADVANTAGE,
                       "market.frontrunners[0].sandwich=true", "market.frontrunners[0].back_fee_multiple=3.0")
    assert after["front_run_successes"] > 0
    assert before["front_run_attempts"] > 5 and before["front_run_successes"] == 0


def test_reactors_keep_their_seed_order_whatever_was_imported_first() -> None:
    # The simulator hands reactors their seeds in REACTORS' order: the market's must not move
    # when the front-run module happens to be imported before the registry loads (a test
    # collecting it, a script), or every market run would change.
    code = ("import msgstorm.market.frontrun\n"
            "from msgstorm.scenario.registry import REACTORS\n"
            "print(list(REACTORS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["['market',", "'frontrun']"]
