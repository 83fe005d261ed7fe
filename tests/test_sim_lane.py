"""The liquidation lane against queueing theory, and what it leaves to the rest.

A lane of one reserved worker that lends nothing is an M/M/1 queue of its own with the
worker's service rate mu, which is the lane's share r x (workers x mu) of the sequencer's
capacity: Wq = rho / (mu - lambda), whatever the other traffic does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from conftest import shared_run

from msgstorm.scenario import load_scenario
from msgstorm.scenario.errors import ScenarioError

LANE_TOML = """
[run]
name = "lane"
seed = {seed}
duration = "{duration_s}s"
drain = "5s"
sample_interval = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 1
intra_region_latency = "0ns"
processing = "0ns"
bandwidth = "unlimited"

[gossip]
degree = 1
peers = 1

[sequencer]
workers = {workers}
service = {service}
lane = {{ workers = {lane_workers}, lend = {lend} }}

[blocks]
interval = "1s"
max_messages = 10000000

[history]
delivery_sample = "0%"

[[agents]]
name = "keepers"
role = "liquidator"
mix = {{ liquidation = 1 }}
arrival = {{ process = "poisson", rate = "{lane_rate}/s" }}

[[agents]]
name = "traders"
mix = {{ order = 1 }}
arrival = {{ process = "poisson", rate = "{rest_rate}/s" }}
"""

MU = 1000.0  # service rate per worker, 1 ms mean service
EXPONENTIAL = '{ dist = "exponential", mean = "1ms" }'


def _waits_s(result, kind: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    messages = result.history.messages
    served = messages.filter(pc.and_(pc.is_valid(messages["t_dequeued"]), pc.equal(messages["kind"], kind)))
    wait = pc.subtract(served["t_dequeued"], served["t_received"]).to_numpy()
    assert (wait >= 0).all()
    return wait / 1e9


@pytest.mark.slow
@pytest.mark.parametrize("service", ["exponential", "constant"])
def test_lane_is_mm1_with_its_share_of_capacity(scenario_from, run_scenario, service: str) -> None:
    # Two workers, one reserved: r = 1/2 of a capacity of 2 mu. The rest run at rho 0.9 on
    # their one worker and would add to the lane's wait were the lane not its own queue.
    # Exponential service: M/M/1, Wq = rho / (r mu - lambda); constant: M/D/1, half that.
    lane_rate = 0.5 * MU
    messages = 200_000
    scenario = scenario_from(LANE_TOML.format(
        seed=5, duration_s=messages / lane_rate, workers=2, lane_workers=1, lend="false", lane_rate=lane_rate,
        rest_rate=0.9 * MU, service=EXPONENTIAL if service == "exponential" else '"1ms"'))
    result = run_scenario(scenario)
    waits = _waits_s(result, "liquidation")
    assert len(waits) >= 0.98 * messages
    r_mu = (1 / 2) * (2 * MU)
    rho = lane_rate / r_mu
    expected = rho / (r_mu - lane_rate) if service == "exponential" else rho / (2 * r_mu * (1 - rho))
    assert float(np.mean(waits)) == pytest.approx(expected, rel=0.03)


def test_lent_lane_workers_serve_the_rest(scenario_from, run_scenario) -> None:
    # The rest alone overload their one shared worker (rho 1.5); with lending the idle lane
    # worker takes their surplus, without it their queue grows for the whole run.
    text = LANE_TOML.replace('drain = "5s"', 'drain = "0s"')
    common = dict(seed=3, duration_s=5, workers=2, lane_workers=1, lane_rate=100.0, rest_rate=1.5 * MU,
                  service=EXPONENTIAL)
    lent = run_scenario(scenario_from(text.format(lend="true", **common)), "lent")
    kept = run_scenario(scenario_from(text.format(lend="false", **common)), "kept")
    served_lent = len(_waits_s(lent, "order"))
    served_kept = len(_waits_s(kept, "order"))
    assert served_kept == pytest.approx(5 * MU, rel=0.05)  # one worker's worth
    assert served_lent > 1.25 * served_kept  # plus most of the lane worker's idle time
    # Lent or not, a liquidation waits at most one service behind the rest: far below the
    # rest's queue, which grows by 500 messages a second.
    assert float(np.mean(_waits_s(lent, "liquidation"))) < 0.005
    assert float(np.mean(_waits_s(kept, "order"))) > 0.5


def test_lane_skips_backpressure(scenario_from, run_scenario) -> None:
    # A shared queue that drops everything beyond 10: the lane's messages never see it.
    text = LANE_TOML.replace("[blocks]", '[backpressure]\nmode = "drop_tail"\ncapacity = 10\n\n[blocks]')
    result = run_scenario(scenario_from(text.format(seed=4, duration_s=3, workers=2, lane_workers=1, lend="false",
                                                    lane_rate=200.0, rest_rate=3 * MU, service=EXPONENTIAL)))
    messages = result.history.messages
    statuses = {kind: pc.value_counts(messages.filter(pc.equal(messages["kind"], kind))["status"]).to_pylist()
                for kind in ("liquidation", "order")}
    assert [row["values"] for row in statuses["liquidation"]] == ["committed"]
    assert "dropped" in [row["values"] for row in statuses["order"]]


def test_lane_must_leave_the_rest_a_worker(scenario_from) -> None:
    with pytest.raises(ScenarioError, match=r"lane.workers \(2\) must be below workers \(2\)"):
        scenario_from(LANE_TOML.format(seed=1, duration_s=1, workers=2, lane_workers=2, lend="true",
                                       lane_rate=10.0, rest_rate=10.0, service=EXPONENTIAL))


@pytest.mark.slow
def test_the_lane_cuts_black_thursdays_bad_debt_by_nine_tenths(example_run) -> None:
    # The same sequencer (4 workers at 1 ms) and seed, without and with the lane.
    examples = Path(__file__).resolve().parent.parent / "examples"
    # The run docs/examples.md names for "without the lane" (tests/test_docs.py): made once.
    without = shared_run(load_scenario(examples / "black-thursday.toml", [
        "sequencer.workers=4", 'sequencer.service={dist="exponential",mean="1ms"}']))
    with_lane = example_run("black-thursday-lane")  # the tour's run of it (tests/test_docs.py)
    assert without.scenario.run.seed == with_lane.scenario.run.seed
    debt_without = without.summary["market"]["bad_debt"]["absolute"]
    debt_with = with_lane.summary["market"]["bad_debt"]["absolute"]
    assert debt_without > 0 and debt_with <= 0.1 * debt_without, (debt_without, debt_with)
    executed = [result.summary["market"]["liquidations"]["executed"] for result in (without, with_lane)]
    assert executed[1] > executed[0]


def test_the_sequencer_is_built_from_the_lane_it_is_given(scenario_from, tmp_path) -> None:
    # One sequencer class: without a lane it has the do-nothing lane (no kinds, no workers),
    # with one the lane's workers come out of sequencer.workers.
    from msgstorm.history import HistoryWriter
    from msgstorm.sim.shadow import ShadowNetwork

    plain = scenario_from(LANE_TOML.replace("lane = {{ workers = {lane_workers}, lend = {lend} }}\n", "").format(
        seed=1, duration_s=1, workers=2, lane_rate=10.0, rest_rate=10.0, service=EXPONENTIAL))
    laned = scenario_from(LANE_TOML.format(seed=1, duration_s=1, workers=3, lane_workers=1, lend="true",
                                           lane_rate=10.0, rest_rate=10.0, service=EXPONENTIAL))
    pools = []
    for name, scenario in (("plain", plain), ("laned", laned)):
        writer = HistoryWriter(tmp_path / name)
        sequencer = ShadowNetwork(scenario, writer, np.random.SeedSequence(1)).sequencer
        writer.close()
        pools.append((sequencer.shared.slots, sequencer.lane.workers.slots, sorted(sequencer.lane.kinds),
                      sequencer.lending is sequencer.lane.workers))
    assert pools == [(2, 0, [], False), (2, 1, [3, 4], True)]  # liquidation, price


BLOCKS_TOML = LANE_TOML.replace('''[blocks]
interval = "1s"
max_messages = 10000000''', '''[blocks]
interval = "100ms"
max_messages = 100''').replace('drain = "5s"', 'drain = "0s"')


def test_a_block_share_lets_liquidations_past_a_block_backlog(scenario_from, run_scenario) -> None:
    # Blocks carry 1,000 messages/s; 1,500/s are sequenced (fast workers), so a backlog of
    # the rest's grows by 500/s. The lane's 10% of each block (10 messages) carries its
    # 50/s with room to spare, and the rest take what the lane leaves: blocks stay full.
    text = BLOCKS_TOML.replace("lane = {{ workers = {lane_workers}, lend = {lend} }}",
                               "lane = {{ block_share = {share} }}")
    common = dict(seed=2, duration_s=10, workers=4, lane_rate=50.0, rest_rate=1450.0,
                  service='"100us"')
    shared = run_scenario(scenario_from(text.format(share='"10%"', **common)), "shared")
    messages = shared.history.messages
    liquidations = messages.filter(pc.and_(pc.equal(messages["kind"], "liquidation"),
                                           pc.is_valid(messages["t_committed"])))
    block_wait = pc.subtract(liquidations["t_committed"], liquidations["t_sequenced"]).to_numpy() / 1e9
    assert len(block_wait) > 400 and float(np.max(block_wait)) < 0.25  # the next block or the one after
    events = shared.history.events
    produced = events.filter(pc.and_(pc.equal(events["kind"], "block_produced"), pc.greater(events["t"], 2e9)))
    assert set(produced["value"].to_pylist()) == {100.0}  # the lane's unused share went to the rest
    orders = messages.filter(pc.and_(pc.equal(messages["kind"], "order"), pc.is_valid(messages["t_committed"])))
    order_wait = pc.subtract(orders["t_committed"], orders["t_sequenced"]).to_numpy() / 1e9
    assert float(np.max(order_wait)) > 2  # the rest's backlog the lane skipped
    # Blocks out of sequence order across the lane and the rest break no check.
    verdicts = {check["name"]: check["verdict"] for check in shared.summary["checks"]}
    assert [verdicts[name] for name in ("ordering", "committed-implies-sequenced", "stage-order",
                                        "conservation")] == ["valid"] * 4, verdicts


def test_a_lane_reserves_something(scenario_from) -> None:
    text = LANE_TOML.replace("lane = {{ workers = {lane_workers}, lend = {lend} }}", "lane = {{ lend = false }}")
    with pytest.raises(ScenarioError, match="a lane reserves 'workers', a 'block_share', or both"):
        scenario_from(text.format(seed=1, duration_s=1, workers=2, lane_rate=1.0, rest_rate=1.0,
                                  service=EXPONENTIAL))


@pytest.mark.parametrize("rest_rate", [800.0, 1400.0])
def test_a_leader_crash_with_a_lane_gives_no_sequence_number_twice(scenario_from, run_scenario,
                                                                    rest_rate: float) -> None:
    # The lane's queue, its workers and its block share are emptied with the rest when the
    # leader crashes; the standby sequences again without duplicates. At 1,400/s the rest
    # outrun the blocks (1,000/s): at the crash lane messages numbered above the rest's
    # backlog are already in blocks, so the backlog's numbers are not given again (a gap).
    text = BLOCKS_TOML.replace("nodes_per_region = 1", "nodes_per_region = 2").replace(
        "lane = {{ workers = {lane_workers}, lend = {lend} }}",
        'lane = {{ workers = 1, block_share = "10%" }}\nstandby = ["us-east-1"]\nfailover_timeout = "200ms"')
    text = text.replace('drain = "0s"', 'drain = "5s"') + """
[[faults]]
kind = "crash"
node = "sequencer"
at = "1s"
restart_after = "1s"
"""
    result = run_scenario(scenario_from(text.format(seed=3, duration_s=3, workers=3, lane_rate=50.0,
                                                    rest_rate=rest_rate, service='"100us"')))
    verdicts = {check["name"]: check["verdict"] for check in result.summary["checks"]}
    assert [verdicts[name] for name in ("ordering", "committed-implies-sequenced", "stage-order",
                                        "conservation")] == ["valid"] * 4, verdicts
    messages = result.history.messages
    committed = messages.filter(pc.equal(messages["status"], "committed"))
    seq = np.sort(committed["seq_no"].to_numpy())
    assert seq.size > 1000 and np.unique(seq).size == seq.size  # no duplicate
    if rest_rate < 1000:  # no block backlog at the crash: no gap either
        assert np.array_equal(seq, np.arange(seq.size))
    assert "leader_change" in result.history.events["kind"].to_pylist()


def _with_policy(text: str, policy: str) -> str:
    return text.replace("[sequencer]\n", f"[sequencer]\n{policy}\n", 1)


def test_lent_lane_workers_wait_for_the_batch_to_close(scenario_from, run_scenario) -> None:
    # A lane worker lent to the rest honours the queue policy: an order is served only once
    # the batch it arrived in has closed.
    text = _with_policy(LANE_TOML.format(seed=2, duration_s=2, workers=3, lane_workers=1, lend="true",
                                         lane_rate=20.0, rest_rate=400.0, service=EXPONENTIAL),
                        'policy = "batch_auction"\nbatch_auction = { interval = "50ms" }')
    result = run_scenario(scenario_from(text))
    messages = result.history.messages
    orders = messages.filter(pc.and_(pc.equal(messages["kind"], "order"), pc.is_valid(messages["t_dequeued"])))
    closes = (orders["t_received"].to_numpy() // 50_000_000 + 1) * 50_000_000
    assert len(orders) > 500 and np.all(orders["t_dequeued"].to_numpy() >= closes)


def test_lent_lane_workers_tell_the_policy_what_they_sequence(scenario_from, run_scenario) -> None:
    # commit_reveal reveals each order a worker sequences, whichever worker it was.
    text = _with_policy(LANE_TOML.format(seed=2, duration_s=2, workers=3, lane_workers=1, lend="true",
                                         lane_rate=20.0, rest_rate=1500.0, service=EXPONENTIAL),
                        'policy = "commit_reveal"\ncommit_reveal = { reveal_delay = "20ms" }')
    result = run_scenario(scenario_from(text))
    orders = [m for m in result.history.messages.to_pylist() if m["kind"] == "order"]
    assert all(m["status"] == "committed" for m in orders)
    sent_at = {(m["agent"], m["key"], m["t_sent"]) for m in orders}
    revealed = [m for m in orders if (m["agent"], m["key"], m["t_sequenced"] + 20_000_000) in sent_at]
    assert len(orders) > 2000 and len(revealed) * 2 == len(orders)


def test_an_idle_lent_lane_is_a_shared_worker(scenario_from, run_scenario) -> None:
    # No lane traffic: a lent lane worker serves the rest as a second shared worker would,
    # also when the policy wakes the workers while the shared one is busy (constant 10 ms
    # services, batches closing every 15 ms).
    policy = 'policy = "batch_auction"\nbatch_auction = { interval = "15ms" }'
    common = dict(seed=4, duration_s=2, workers=2, lane_rate=1e-6, rest_rate=200.0, service='"10ms"')
    laned = run_scenario(scenario_from(_with_policy(LANE_TOML.format(lane_workers=1, lend="true", **common),
                                                    policy)), "laned")
    plain = run_scenario(scenario_from(_with_policy(LANE_TOML.replace(
        "lane = {{ workers = {lane_workers}, lend = {lend} }}\n", "").format(**common), policy)), "plain")
    columns = ["msg_id", "kind", "status", "t_received", "t_dequeued", "t_sequenced", "t_committed"]
    rows = [result.history.messages.select(columns).sort_by("msg_id") for result in (laned, plain)]
    assert rows[0].num_rows > 300 and rows[0].equals(rows[1])


def test_a_throttle_may_not_shed_what_the_lane_serves(scenario_from) -> None:
    text = LANE_TOML.format(seed=1, duration_s=1, workers=2, lane_workers=1, lend="true", lane_rate=10.0,
                            rest_rate=10.0, service=EXPONENTIAL)
    text += '\n[[controllers]]\nkind = "throttle"\nnonessential = ["order", "liquidation"]\ntarget = 5\n'
    with pytest.raises(ScenarioError, match=r"controllers\[0\].nonessential: \['liquidation'\] are also "
                                            "sequencer.lane.kinds"):
        scenario_from(text)


@pytest.mark.parametrize("lend", ["false", "true"])
def test_suspended_senders_hold_no_lane_message(scenario_from, run_scenario, lend: str) -> None:
    # The rest overload a queue whose senders are suspended at 50: orders wait at their
    # senders, liquidations go straight to the lane. Lent lane workers take held orders as
    # the shared worker does, so the rest get both workers' service.
    text = LANE_TOML.replace("[blocks]", '[backpressure]\nmode = "suspend"\nhigh = 50\nlow = 10\n\n[blocks]')
    result = run_scenario(scenario_from(text.format(seed=4, duration_s=3, workers=2, lane_workers=1, lend=lend,
                                                    lane_rate=100.0, rest_rate=3 * MU, service=EXPONENTIAL)))
    events = result.history.events
    changes = events.filter(pc.equal(events["kind"], "backpressure")).to_pylist()
    suspended, since = [], None  # the windows in which senders were suspended, within the traffic
    for change in [*changes, {"t": 3e9, "detail": '"resumed"'}]:
        if '"suspended"' in change["detail"] and since is None:
            since = change["t"]
        elif '"resumed"' in change["detail"] and since is not None:
            if since < 3e9:
                suspended.append((since, min(change["t"], 3e9)))
            since = None
    assert sum(end - start for start, end in suspended) > 1e9  # suspended for most of the traffic
    messages = result.history.messages
    received = {kind: messages.filter(pc.equal(messages["kind"], kind))["t_received"].to_numpy(zero_copy_only=False)
                for kind in ("liquidation", "order")}

    def during(t: np.ndarray) -> int:
        return sum(int(np.sum((t > start) & (t < end))) for start, end in suspended)

    # Liquidations keep arriving while the senders are suspended (orders only as a worker
    # takes one and frees room for a held one).
    assert during(received["liquidation"]) > 0.5 * 100 * sum(end - start for start, end in suspended) / 1e9
    if lend == "true":
        assert len(_waits_s(result, "order")) > 1.6 * 3 * MU  # near two workers' worth in 3 s
