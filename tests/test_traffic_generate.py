"""generate_traffic: batch contract, agent windows, node attachment, mix, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import msgstorm.traffic
from msgstorm.scenario import MESSAGE_KINDS, load_scenario, node_names
from msgstorm.scenario.schema import Scenario
from msgstorm.traffic import MessageBatch, generate_traffic

S = 1_000_000_000
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COLUMNS = ("msg_id", "t_intended", "agent", "kind", "node", "key", "size", "fee")


def _scenario(*agents: dict[str, Any], duration: str = "10s") -> Scenario:
    return Scenario.model_validate(
        {
            "run": {"name": "traffic-test", "duration": duration},
            "network": {"regions": ["us-east", "eu-west", "ap-northeast"], "nodes_per_region": 4},
            "agents": list(agents),
        }
    )


def _agent(name: str = "a", rate: str = "1000/s", **extra: Any) -> dict[str, Any]:
    return {"name": name, "arrival": {"process": "poisson", "rate": rate}, **extra}


def _all(batches: list[MessageBatch]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([getattr(b, name) for b in batches]) for name in COLUMNS}


def test_public_names_are_exported() -> None:
    assert set(msgstorm.traffic.__all__) >= {"MessageBatch", "generate_traffic", "make_arrival"}


def test_batches_have_consecutive_ids_sorted_times_and_typed_columns() -> None:
    scenario = _scenario(_agent("a"), _agent("b", arrival={"process": "constant", "rate": "300/s"}))
    batches = list(generate_traffic(scenario, np.random.SeedSequence(1), window_ns=S // 4))
    columns = _all(batches)
    assert np.array_equal(columns["msg_id"], np.arange(columns["msg_id"].size))
    assert np.all(np.diff(columns["t_intended"]) >= 0)
    dtypes = [np.int64, np.int64, np.int32, np.int8, np.int32, np.int64, np.int32, np.float64]
    for batch in batches:
        assert [getattr(batch, name).dtype for name in COLUMNS] == dtypes
        assert all(len(getattr(batch, name)) == len(batch) for name in COLUMNS)
    assert abs(columns["msg_id"].size - 13_000) < 4 * np.sqrt(10_000)


def test_each_batch_stays_inside_one_window() -> None:
    window_ns = 300_000_000
    scenario = _scenario(_agent(), duration="2s")
    batches = list(generate_traffic(scenario, np.random.SeedSequence(2), window_ns=window_ns))
    windows = [int(b.t_intended[0]) // window_ns for b in batches]
    assert windows == sorted(set(windows))
    for batch, k in zip(batches, windows, strict=True):
        assert batch.t_intended.min() >= k * window_ns
        assert batch.t_intended.max() < min((k + 1) * window_ns, 2 * S)
    assert len(batches) == 7  # six full windows and the 200 ms tail


def test_agents_send_only_inside_start_and_stop() -> None:
    scenario = _scenario(
        _agent("early", start="0s", stop="3s"),
        _agent("middle", start="2500ms", stop="5s"),
        _agent("late", start="8s", stop="60s"),
        _agent("never", start="11s"),
    )
    columns = _all(list(generate_traffic(scenario, np.random.SeedSequence(3))))
    for index, (start_ns, stop_ns) in enumerate([(0, 3 * S), (2_500_000_000, 5 * S), (8 * S, 10 * S)]):
        times = columns["t_intended"][columns["agent"] == index]
        assert times.size > 0.9 * (stop_ns - start_ns) / S * 1000
        assert times.min() >= start_ns and times.max() < stop_ns
    assert np.count_nonzero(columns["agent"] == 3) == 0


def test_instances_attach_to_node_region_or_all_nodes() -> None:
    scenario = _scenario(
        _agent("everywhere", count=30),
        _agent("europe", count=6, region="eu-west"),
        _agent("pinned", count=5, node="ap-northeast-2"),
        _agent("pair", count=2, region="us-east", arrival={"process": "constant", "rate": "50/s"}),
    )
    names = node_names(scenario.network)
    columns = _all(list(generate_traffic(scenario, np.random.SeedSequence(4))))
    nodes_of = {i: set(columns["node"][columns["agent"] == i].tolist()) for i in range(4)}
    assert nodes_of[0] == set(range(12))
    assert {names[n] for n in nodes_of[1]} == {f"eu-west-{i}" for i in range(4)}
    assert {names[n] for n in nodes_of[2]} == {"ap-northeast-2"}
    assert {names[n] for n in nodes_of[3]} == {"us-east-0", "us-east-1"}  # instance i -> node i


def test_kind_mix_sizes_fees_and_keys_follow_the_agent() -> None:
    scenario = _scenario(
        _agent(
            "mixed",
            rate="20000/s",
            mix={"order": 3, "cancel": 1},
            keys=7,
            size={"dist": "uniform", "low": "100B", "high": "300B"},
            fee={"dist": "lognormal", "median": 2.0, "sigma": 0.5},
        ),
        _agent("maker", role="market_maker"),
    )
    columns = _all(list(generate_traffic(scenario, np.random.SeedSequence(5))))
    mixed = columns["agent"] == 0
    kinds = columns["kind"][mixed]
    assert np.mean(kinds == MESSAGE_KINDS.index("order")) == pytest.approx(0.75, abs=0.01)
    assert np.mean(kinds == MESSAGE_KINDS.index("cancel")) == pytest.approx(0.25, abs=0.01)
    assert set(columns["key"][mixed].tolist()) == set(range(7))
    assert columns["size"][mixed].min() >= 100 and columns["size"][mixed].max() <= 300
    assert np.median(columns["fee"][mixed]) == pytest.approx(2.0, rel=0.03)

    maker = ~mixed
    maker_kinds = {MESSAGE_KINDS[k] for k in columns["kind"][maker].tolist()}
    assert maker_kinds == {"quote", "cancel"}  # the role's default mix
    assert np.all(columns["size"][maker] == 250) and np.all(columns["fee"][maker] == 1.0)


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    scenario = load_scenario(EXAMPLES / "quickstart.toml")
    seed = np.random.SeedSequence(42)
    first = _all(list(generate_traffic(scenario, seed)))
    again = _all(list(generate_traffic(scenario, seed)))  # same object: not consumed
    fresh = _all(list(generate_traffic(scenario, np.random.SeedSequence(42))))
    other = _all(list(generate_traffic(scenario, np.random.SeedSequence(43))))
    for name in COLUMNS:
        assert np.array_equal(first[name], again[name])
        assert np.array_equal(first[name], fresh[name])
    assert not np.array_equal(first["t_intended"], other["t_intended"])
    # quickstart: 20 traders at 100/s and 4 makers at 250/s for 10 s.
    assert abs(first["msg_id"].size - 30_000) < 4 * np.sqrt(20_000)


def test_adding_an_agent_leaves_the_first_agents_stream_alone() -> None:
    hawkes = {"process": "hawkes", "baseline": "200/s", "branching": 0.5, "decay": "300ms"}
    first = _agent("first", count=3, arrival=hawkes)
    alone = _all(list(generate_traffic(_scenario(first), np.random.SeedSequence(6))))
    both = _all(
        list(generate_traffic(_scenario(first, _agent("second")), np.random.SeedSequence(6)))
    )
    mine = both["agent"] == 0
    assert np.count_nonzero(~mine) > 0
    for name in ("t_intended", "kind", "node", "key", "size", "fee"):
        assert np.array_equal(both[name][mine], alone[name])


def test_ties_are_broken_by_agent_index(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("t\n5\n6\n7\n")
    replay = {"process": "replay", "path": str(trace), "time_unit": "ms"}
    scenario = _scenario(
        _agent("second", count=2, arrival=replay, start="1s"),
        _agent("first", arrival=replay, start="1s"),
    )
    batches = list(generate_traffic(scenario, np.random.SeedSequence(7)))
    assert len(batches) == 1
    batch = batches[0]
    assert batch.t_intended.tolist() == [S + ms * 1_000_000 for ms in (0, 0, 0, 1, 1, 1, 2, 2, 2)]
    assert batch.agent.tolist() == [0, 0, 1] * 3


def test_invalid_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="window_ns"):
        generate_traffic(_scenario(_agent()), np.random.SeedSequence(1), window_ns=0)


def test_a_million_poisson_messages_from_a_hundred_thousand_agents() -> None:
    """The count only: how fast traffic is drawn is measured in benchmarks/engine_vs_simpy.py."""
    scenario = _scenario(
        _agent(
            "crowd",
            count=100_000,
            rate="1/s",
            mix={"order": 1, "cancel": 1, "quote": 1},
            size={"dist": "uniform", "low": "100B", "high": "300B"},
            fee={"dist": "lognormal", "median": 2.0, "sigma": 0.5},
        )
    )
    total = sum(len(b) for b in generate_traffic(scenario, np.random.SeedSequence(8)))
    assert abs(total - 1_000_000) < 4 * 1_000
