"""The sequencer's whole-queue moves under a priced mode against one message at a time.

Under EIP-1559 a base fee that climbs past the queue's best fee turns the whole queue away
(``Sequencer._price_out_rest``, the policy's ``take_all``), and one that falls lets many
waiting messages in at once (``on_block``, the policy's ``push_all``). The reference is
the same highest-fee-first order written as a policy with neither hook nor an
``order_key``, so the sequencer moves its messages one pop and one push at a time.
Hypothesis draws small networks whose fees often tie (keepers and traders with one fixed
fee), so the order of equal fees, which the moves must keep, decides the history.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msgstorm.history import History, HistoryWriter, read_history
from msgstorm.runner import write_run_row
from msgstorm.scenario import Scenario, load_scenario, parse_scenario
from msgstorm.scenario.registry import QUEUE_POLICIES
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.traffic import generate_traffic

CASES = int(os.environ.get("MSGSTORM_DIFFERENTIAL_CASES", "200")) // 5


class OneAtATime:
    """Highest fee first, then arrival, with only ``push`` and ``pop``."""

    work_conserving = True

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []
        self._arrivals = 0

    def push(self, msg: int, fee: float, t_ns: int) -> None:
        self._arrivals += 1
        heapq.heappush(self._heap, (-fee, self._arrivals, msg))

    def pop(self) -> int:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)


_fee = st.one_of(st.sampled_from([0.5, 1.0, 1.0, 2.0]),
                 st.just({"dist": "lognormal", "median": 1.0, "sigma": 0.4}),
                 st.just({"dist": "pareto", "scale": 0.6, "alpha": 1.5}))


@st.composite
def priced_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    agents = [{"name": f"agent{i}", "role": draw(st.sampled_from(["trader", "flooder"])),
               "arrival": {"process": "poisson", "rate": f"{draw(st.integers(200, 4000))}/s"},
               "fee": draw(_fee), "start": draw(st.sampled_from(["0s", "300ms"]))}
              for i in range(draw(st.integers(1, 3)))]
    return {
        "run": {"name": "priced", "seed": draw(st.integers(0, 2**31)), "duration": "2s",
                "drain": draw(st.sampled_from(["200ms", "2s"])), "window": "500ms"},
        "network": {"regions": ["us-east"], "nodes_per_region": draw(st.integers(1, 3)),
                    "processing": "20us"},
        "sequencer": {"workers": draw(st.integers(1, 2)),
                      "service": {"dist": "exponential", "mean": f"{draw(st.integers(200, 900))}us"}},
        "blocks": {"interval": draw(st.sampled_from(["20ms", "50ms", "100ms"])),
                   "max_messages": draw(st.integers(5, 60))},
        "backpressure": {"mode": "eip1559", "initial_base_fee": draw(st.sampled_from([0.5, 1.0])),
                         "min_base_fee": 0.1, "underpriced": draw(st.sampled_from(["wait", "wait", "reject"]))},
        "agents": agents,
    }


def _simulate(scenario: Scenario, out: Path) -> tuple[History, int, int]:
    writer = HistoryWriter(out / "history", scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed)
    sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window))
    t_end = sim.finish()
    write_run_row(writer, scenario, sim, t_end)
    writer.close()
    return read_history(out), t_end, sim.sequencer.waiting.joined


@pytest.fixture
def one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference policy, registered for this test only (other tests list the registry)."""
    QUEUE_POLICIES["fifo"]  # the built-in policies first, as the registry loads them
    monkeypatch.setitem(QUEUE_POLICIES._entries, "fee_priority_one_at_a_time", OneAtATime)


@pytest.mark.slow
@pytest.mark.usefixtures("one_at_a_time")
def test_whole_queue_moves_write_the_history_of_one_message_at_a_time() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(priced_scenarios())
    def check(spec: dict[str, Any]) -> None:
        reference = dict(spec, sequencer={**spec["sequencer"], "policy": "fee_priority_one_at_a_time"})
        bulk = dict(spec, sequencer={**spec["sequencer"], "policy": "fee_priority"})
        with tempfile.TemporaryDirectory() as tmp:
            one, t_one, waited_one = _simulate(parse_scenario(tomli_w.dumps(reference), source="one.toml"),
                                               Path(tmp) / "one")
            moved, t_moved, waited_moved = _simulate(parse_scenario(tomli_w.dumps(bulk), source="bulk.toml"),
                                                     Path(tmp) / "bulk")
            assert t_moved == t_one
            assert waited_moved == waited_one
            for table in ("messages", "events", "deliveries"):
                assert getattr(moved, table).to_pydict() == getattr(one, table).to_pydict(), table
            events = one.events.to_pydict()
            statuses = one.messages["status"].to_pylist()
        fees = [value for kind, value in zip(events["kind"], events["value"]) if kind == "base_fee"]
        if any(b > a for a, b in zip(fees, fees[1:])) and any(b < a for a, b in zip(fees, fees[1:])):
            seen["base fee up and down"] += 1
        if waited_one > len(statuses):
            seen["messages waited more than once"] += 1
        seen.update(set(statuses))

    check()
    # The drawn cases must move queues back and forth, else equality proves little.
    if CASES >= 20:
        for what in ("base fee up and down", "messages waited more than once", "committed", "rejected"):
            assert seen[what] >= 3, (what, seen)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
@pytest.mark.usefixtures("one_at_a_time")
@pytest.mark.parametrize("example", ["black-thursday", "black-thursday-fee-aware", "black-thursday-lane"])
def test_the_priced_examples_write_the_history_of_one_message_at_a_time(example: str, tmp_path: Path) -> None:
    """The examples with a priced mode, a market and keepers, whole: the queue moves back
    and forth tens of thousands of messages at a time there."""
    path = EXAMPLES / f"{example}.toml"
    moved, t_moved, waited = _simulate(load_scenario(path), tmp_path / "bulk")
    one, t_one, waited_one = _simulate(
        load_scenario(path, overrides=["sequencer.policy=fee_priority_one_at_a_time"]), tmp_path / "one")
    assert (t_moved, waited) == (t_one, waited_one)
    assert waited > moved.messages.num_rows  # messages waited for the fee more than once
    for table in ("messages", "events", "deliveries", "executions", "triggers", "prices"):
        assert moved.table(table).to_pydict() == one.table(table).to_pydict(), table
