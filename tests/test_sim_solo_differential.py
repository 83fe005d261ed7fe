"""The compiled one-node loop against the Python loop, on random one-node scenarios.

Hypothesis draws scenarios the compiled loop accepts (queue policy, workers, service and
processing distributions, block limits by count and gas, every drop-only backpressure
mode, sampling, deliveries, traffic mixes and arrival processes, drains long and short);
each runs through both loops from the same seed, and every history table and the end time
must be equal row for row. ``MSGSTORM_DIFFERENTIAL_CASES`` sets how many (default 200);
the search is derandomised, so CI and every machine run the same cases.
"""

from __future__ import annotations

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
from msgstorm.scenario import Scenario, parse_scenario
from msgstorm.scenario.schema import MESSAGE_KINDS
from msgstorm.sim.shadow import ShadowNetwork
from msgstorm.traffic import generate_traffic

CASES = int(os.environ.get("MSGSTORM_DIFFERENTIAL_CASES", "200"))

_us = st.integers(min_value=0, max_value=3000).map(lambda v: f"{v}us")


def _dist(low_us: int, high_us: int) -> st.SearchStrategy[Any]:
    mean = st.integers(min_value=max(1, low_us), max_value=high_us)
    return st.one_of(
        st.integers(min_value=low_us, max_value=high_us).map(lambda v: f"{v}us"),
        mean.map(lambda m: {"dist": "exponential", "mean": f"{m}us"}),
        mean.map(lambda m: {"dist": "uniform", "low": f"{m // 2}us", "high": f"{m}us"}),
        mean.map(lambda m: {"dist": "lognormal", "median": f"{m}us", "sigma": 0.6}),
        mean.map(lambda m: {"dist": "pareto", "scale": f"{m}us", "alpha": 1.6}),
    )


_kinds = st.sampled_from(MESSAGE_KINDS)
_mix = st.dictionaries(_kinds, st.floats(min_value=0.05, max_value=1.0), min_size=1, max_size=4)
_arrival = st.one_of(
    st.integers(min_value=50, max_value=3000).map(lambda r: {"process": "poisson", "rate": f"{r}/s"}),
    st.integers(min_value=50, max_value=3000).map(lambda r: {"process": "constant", "rate": f"{r}/s"}),
    st.integers(min_value=50, max_value=1500).map(
        lambda r: {"process": "hawkes", "baseline": f"{r}/s", "branching": 0.5, "decay": "20ms"}),
)
_agent = st.fixed_dictionaries({
    "arrival": _arrival,
    "mix": _mix,
    "fee": st.one_of(st.floats(min_value=0.1, max_value=5.0),
                     st.just({"dist": "lognormal", "median": 1.0, "sigma": 0.5})),
    "size": st.sampled_from(["100B", "250B", {"dist": "uniform", "low": 50, "high": 500}]),
    "start": st.sampled_from(["0s", "100ms", "500ms"]),
})
_backpressure = st.one_of(
    st.just({"mode": "unbounded"}),
    st.integers(min_value=1, max_value=300).map(lambda c: {"mode": "drop_tail", "capacity": c}),
    st.builds(lambda c, levels, protect: {"mode": "shed", "capacity": c, "levels": levels, "protect": protect},
              st.integers(min_value=2, max_value=300),
              st.dictionaries(_kinds, st.floats(min_value=0.1, max_value=1.0), max_size=3),
              st.lists(_kinds, max_size=2, unique=True)),
)
_blocks = st.fixed_dictionaries({
    "interval": st.sampled_from(["5ms", "20ms", "100ms", "250ms", "1s"]),
    "max_messages": st.integers(min_value=1, max_value=5000),
    "header_size": st.integers(min_value=0, max_value=1000),
}, optional={
    "max_gas": st.integers(min_value=21_000, max_value=5_000_000),
    "gas": st.dictionaries(_kinds, st.integers(min_value=0, max_value=200_000), max_size=3),
})


@st.composite
def one_node_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    agents = draw(st.lists(_agent, min_size=1, max_size=3))
    return {
        "run": {"name": "differential", "seed": draw(st.integers(min_value=0, max_value=2**31)),
                "duration": draw(st.sampled_from(["300ms", "1s", "2s"])),
                "drain": draw(st.sampled_from(["0ns", "5ms", "200ms", "3s"])),
                "window": draw(st.sampled_from(["100ms", "250ms", "1s"])),
                "sample_interval": draw(st.sampled_from(["7ms", "50ms", "300ms"]))},
        "network": {"regions": ["us-east"], "nodes_per_region": 1, "processing": draw(_dist(0, 200))},
        "sequencer": {"workers": draw(st.integers(min_value=1, max_value=4)), "service": draw(_dist(1, 2000)),
                      "policy": draw(st.sampled_from(["fifo", "fee_priority"]))},
        "blocks": draw(_blocks),
        "backpressure": draw(_backpressure),
        "history": {"delivery_sample": draw(st.sampled_from(["0%", "1%", "50%", "100%"])),
                    "max_deliveries": draw(st.sampled_from([0, 10, 100_000]))},
        "agents": [{"name": f"agent{i}", **agent} for i, agent in enumerate(agents)],
    }


def _simulate(scenario: Scenario, out: Path, compiled: bool) -> tuple[History, int, bool]:
    writer = HistoryWriter(out / "history", scenario.history.row_group_size)
    traffic_seed, sim_seed = np.random.SeedSequence(scenario.run.seed).spawn(2)
    sim = ShadowNetwork(scenario, writer, sim_seed, reference=not compiled)
    used_solo = sim.solo is not None
    sim.run(generate_traffic(scenario, traffic_seed, window_ns=scenario.run.window))
    t_end = sim.finish()
    write_run_row(writer, scenario, sim, t_end)
    writer.close()
    return read_history(out), t_end, used_solo


@pytest.mark.slow
def test_both_loops_write_the_same_history() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(one_node_scenarios())
    def check(spec: dict[str, Any]) -> None:
        scenario = parse_scenario(tomli_w.dumps(spec), source="differential.toml")
        with tempfile.TemporaryDirectory() as tmp:
            python, t_python, solo_python = _simulate(scenario, Path(tmp) / "python", compiled=False)
            compiled, t_compiled, solo_compiled = _simulate(scenario, Path(tmp) / "compiled", compiled=True)
            assert (solo_python, solo_compiled) == (False, True), "the compiled loop must accept every drawn scenario"
            assert t_compiled == t_python
            for table in ("messages", "events", "deliveries"):
                assert getattr(compiled, table).to_pydict() == getattr(python, table).to_pydict(), table
            seen.update(set(python.messages["status"].to_pylist()) | set(python.events["kind"].to_pylist()))
            seen["cases"] += 1
            if python.deliveries.num_rows:
                seen["deliveries"] += 1
            if t_python < scenario.run.duration + scenario.run.drain:
                seen["early stop"] += 1

    check()
    # The drawn cases must exercise what the compiled loop replays, else equality proves little.
    if CASES >= 50:
        for what in ("committed", "dropped", "pending", "backpressure", "block_produced", "deliveries", "early stop"):
            assert seen[what] >= 3, (what, seen)
