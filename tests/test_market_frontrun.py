"""Front-runners under each ordering rule, on the same order flow (examples/front-running.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest

from msgstorm.market.accounts import impact_bps
from msgstorm.market.frontrun import FrontRunReactor
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
    assert impact_bps(400_000.0, 10.0, 1_000_000.0) == pytest.approx(4.0)
    assert all(row["value"] == pytest.approx(row["notional"] * 4e-4) for row in won)
    assert result.summary["fairness"]["extracted_value"] == pytest.approx(sum(row["value"] for row in won), abs=0.01)


def test_a_race_set_up_after_its_victim_committed_is_lost_not_unfinished(run_scenario) -> None:
    # A second's reaction: the whale's order is committed (blocks every 250 ms) long before
    # the front-runner's leaves, so every race is lost, none left open.
    slow = run_scenario(load_scenario(EXAMPLE, [*SHORT, 'sequencer.policy="fifo"',
                                                'market.frontrunners[0].reaction="1s"']))
    outcomes = slow.history.table("frontruns")["outcome"].to_pylist()
    assert len(outcomes) > 5 and set(outcomes) == {"lost"}
    # A sandwich learns it too late as well: lost, and no back-run is sent.
    sandwich = run_scenario(load_scenario(EXAMPLE, [*SHORT, 'sequencer.policy="fifo"',
                                                    'market.frontrunners[0].reaction="1s"',
                                                    "market.frontrunners[0].sandwich=true"]))
    races = sandwich.history.table("frontruns").to_pylist()
    assert len(races) > 5 and {(race["outcome"], race["back_msg_id"]) for race in races} == {("lost", -1)}


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
    assert out.stdout.split() == ["['market',", "'frontrun',", "'integrity']"]


class _Host:
    """What a front-runner asks of the simulator (``ReactorHost``), driven by hand: the
    messages it may see, the events it schedules, what it sends, the ranks of a block."""

    node_names = ["us-east-0", "us-east-1", "eu-west-0", "eu-west-1", "ap-south-0", "ap-south-1"]

    def __init__(self) -> None:
        self.live: dict[int, tuple[str, int, int, int, int, float]] = {}
        self.events: list[tuple[int, Any, tuple[int, ...]]] = []
        self.ranks: dict[int, int] = {}
        self.rows: list[dict[str, list[Any]]] = []
        self.next_msg = 200

    def agent_index(self, name: str) -> int:
        return 9

    def visible(self, msg: int) -> tuple[str, int, int, int, int, float] | None:
        return self.live.get(msg)

    def schedule(self, t: int, handler: Any, *args: int) -> None:
        self.events.append((t, handler, args))

    def send(self, t: int, agent: int, kind: str, node: int, key: int, size: int, fee: float) -> int:
        self.next_msg += 1
        self.live[self.next_msg] = (kind, agent, node, key, size, fee)
        return self.next_msg

    def execution_rank(self, msg: int) -> int | None:
        return self.ranks[msg]

    def append(self, table: str, columns: dict[str, list[Any]]) -> None:
        self.rows.append(columns)


def _sandwicher() -> tuple[FrontRunReactor, _Host]:
    scenario = load_scenario(EXAMPLE, ["market.frontrunners[0].sandwich=true"])
    assert scenario.market is not None
    host = _Host()
    return FrontRunReactor(scenario, scenario.market, host, np.random.SeedSequence(1)), host


def _commit(reactor: FrontRunReactor, host: _Host, t: int, msg: int, rank: int) -> None:
    host.ranks[msg] = rank
    del host.live[msg]
    reactor.committed(t, [msg])


def test_a_sandwich_whose_front_leg_commits_before_the_back_run_leaves_is_decided() -> None:
    reactor, host = _sandwicher()
    watch, node = host.node_names.index("ap-south-1"), host.node_names.index("us-east-1")
    host.live[100] = ("order", 0, 4, 7, 40_000, 1.5)  # a whale's order
    reactor.validated(0, watch, 100)
    (t, race, args), = host.events
    race(t, *args)  # the front-run leaves
    front = host.next_msg
    _commit(reactor, host, 10_000_000, front, 0)  # ... and commits before the victim reaches `node`
    reactor.validated(11_000_000, node, 100)  # the back-run leaves
    back = host.next_msg
    assert back == front + 1
    _commit(reactor, host, 20_000_000, 100, 1)
    _commit(reactor, host, 30_000_000, back, 2)
    reactor.finish(40_000_000)
    (rows,) = host.rows
    assert rows["outcome"] == ["won"] and rows["back_msg_id"] == [back]
    assert not reactor.waiting_on and not reactor.rank  # nothing left behind


def test_a_race_whose_victim_settled_first_is_lost_at_once_and_leaves_nothing() -> None:
    reactor, host = _sandwicher()
    host.live[100] = ("order", 0, 4, 7, 40_000, 1.5)
    reactor.validated(0, host.node_names.index("ap-south-1"), 100)
    (t, race, args), = host.events
    _commit(reactor, host, 1_000, 100, 0)  # the victim commits before the race leaves
    race(t, *args)
    reactor.finish(40_000_000)
    (rows,) = host.rows
    assert rows["outcome"] == ["lost"] and rows["back_msg_id"] == [-1]
    assert not reactor.waiting_on and not reactor.victim_fee and not reactor.open
