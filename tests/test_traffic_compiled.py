"""Compiled traffic windows (traffic/compiled.py) and the PCG64 they step (pcg64.py).

The compiled loop must make exactly the messages numpy makes window by window: every
column of every batch, and the generators' states after it, for every arrival it covers
and every distribution of sizes and fees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from msgstorm import pcg64
from msgstorm.sampling import sample_array, sample_from_uniforms
from msgstorm.scenario.distributions import (
    Exponential,
    Lognormal,
    Normal,
    Pareto,
    Uniform,
)
from msgstorm.scenario.schema import Scenario
from msgstorm.traffic import MessageBatch, generate_traffic
from msgstorm.traffic import generate as generate_module
from msgstorm.traffic.compiled import PoissonWindows

S = 1_000_000_000
COLUMNS = ("msg_id", "t_intended", "agent", "kind", "node", "key", "size", "fee")


# --- PCG64 ------------------------------------------------------------------------------------


def test_raw_draws_doubles_and_jumps_are_numpys() -> None:
    mine, numpys = np.random.default_rng(2024), np.random.default_rng(2024)
    state = pcg64.load(mine)
    assert state is not None
    raw = [int(pcg64.next64(state)) for _ in range(100)]
    assert raw == [int(x) for x in numpys.bit_generator.random_raw(100)]
    doubles = [pcg64.next_double(state) for _ in range(100)]
    assert doubles == numpys.random(100).tolist()
    pcg64.advance(state, 10**12 + 7)
    numpys.bit_generator.advance(10**12 + 7)
    pcg64.store(mine, state)
    assert mine.bit_generator.state["state"] == numpys.bit_generator.state["state"]
    assert mine.random(5).tolist() == numpys.random(5).tolist()


@pytest.mark.parametrize("span", [1, 2, 3, 100, 1000, 2**31 + 7, 2**32 - 2])
def test_bounded_integers_are_numpys_with_its_32_bit_buffer_carried(span: int) -> None:
    mine, numpys = np.random.default_rng(span), np.random.default_rng(span)
    for n in (0, 1, 5, 1000, 3):
        state = pcg64.load(mine)
        assert state is not None
        out = np.full(n + 2, -1, dtype=np.int64)
        pcg64.bounded32(state, span, out, 1, n)
        between = pcg64.next_double(state)  # a double between two calls leaves the buffer alone
        pcg64.store(mine, state)
        assert out[1:1 + n].tolist() == numpys.integers(0, span, n, dtype=np.int64).tolist()
        assert out[0] == -1 and out[-1] == -1
        assert between == numpys.random()
        assert mine.bit_generator.state == numpys.bit_generator.state


def test_a_generator_that_is_not_pcg64_is_not_loaded() -> None:
    assert pcg64.load(np.random.Generator(np.random.MT19937(1))) is None


# --- sampling from uniforms -------------------------------------------------------------------


@pytest.mark.parametrize("dist", [
    Uniform(dist="uniform", low=3.0, high=9.5), Normal(dist="normal", mean=5.0, std=2.0),
    Lognormal(dist="lognormal", median=2.0, sigma=0.7), Pareto(dist="pareto", scale=1.5, alpha=1.3),
    Exponential(dist="exponential", mean=4.0),
], ids=lambda d: d.dist)
def test_sampling_from_uniforms_is_sample_array(dist: Any) -> None:
    drawn = sample_array(dist, np.random.default_rng(8), 5000)
    again = sample_from_uniforms(dist, np.random.default_rng(8).random(5000))
    assert drawn.tobytes() == again.tobytes()


# --- whole traffic, compiled against window by window ------------------------------------------


def _scenario(*agents: dict[str, Any], duration: str = "6s") -> Scenario:
    return Scenario.model_validate({
        "run": {"name": "compiled-traffic", "duration": duration},
        "network": {"regions": ["us-east", "eu-west"], "nodes_per_region": 3},
        "agents": list(agents),
    })


def _batches(scenario: Scenario, seed: int, window_ns: int, compiled: bool,
             monkeypatch: pytest.MonkeyPatch) -> list[MessageBatch]:
    with monkeypatch.context() as patch:
        if not compiled:
            patch.setattr(PoissonWindows, "of", classmethod(lambda cls, *a, **k: None))
        return list(generate_traffic(scenario, np.random.SeedSequence(seed), window_ns=window_ns))


def _same(a: list[MessageBatch], b: list[MessageBatch]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for name in COLUMNS:
            left, right = getattr(x, name), getattr(y, name)
            assert left.dtype == right.dtype, name
            assert left.tobytes() == right.tobytes(), name


CASES: dict[str, tuple[list[dict[str, Any]], int]] = {
    "poisson defaults": ([{"name": "a", "arrival": {"process": "poisson", "rate": "3000/s"}}], S // 10),
    "every attribute drawn": ([{
        "name": "a", "count": 7, "region": "eu-west", "keys": 3_000_000_000,
        "mix": {"order": 2, "cancel": 1, "quote": 0.5},
        "arrival": {"process": "poisson", "rate": "500/s"},
        "size": {"dist": "lognormal", "median": "300B", "sigma": 0.6},
        "fee": {"dist": "pareto", "scale": 0.5, "alpha": 1.7}}], S // 4),
    "uniform and normal, one key": ([{
        "name": "a", "keys": 1, "arrival": {"process": "poisson", "rate": "2000/s"},
        "size": {"dist": "uniform", "low": "100B", "high": "900B"},
        "fee": {"dist": "normal", "mean": 1.0, "std": 2.0}}], S // 3),
    "low rate: empty windows and Poisson means below 10": (
        [{"name": "a", "arrival": {"process": "poisson", "rate": "15/s"}, "start": "1.3s", "stop": "4.1s"}],
        S // 10),
    "a step ramp with a zero step, ending before the run": ([{
        "name": "ramp", "count": 2,
        "arrival": {"process": "step_ramp", "start": "0/s", "step": "900/s", "every": "1s", "steps": 4,
                    "poisson": True},
        "fee": {"dist": "exponential", "mean": 2.0}}], S // 7),
    "beside agents drawn in Python": ([
        {"name": "p", "arrival": {"process": "poisson", "rate": "1500/s"}},
        {"name": "h", "arrival": {"process": "hawkes", "baseline": "200/s", "branching": 0.5, "decay": "10ms"}},
        {"name": "c", "arrival": {"process": "constant", "rate": "300/s"}},
        {"name": "q", "node": "eu-west-1", "arrival": {"process": "poisson", "rate": "700/s"}, "start": "2s"},
    ], S // 2),
    "one large window": ([{"name": "a", "arrival": {"process": "poisson", "rate": "20000/s"}}], 6 * S),
}


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_windows_make_the_same_batches(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    agents, window_ns = CASES[name]
    scenario = _scenario(*agents)
    reference = _batches(scenario, 11, window_ns, compiled=False, monkeypatch=monkeypatch)
    assert sum(len(b) for b in reference) > 0
    compiled = _batches(scenario, 11, window_ns, compiled=True, monkeypatch=monkeypatch)
    _same(reference, compiled)


def test_the_case_agents_are_compiled_where_the_loop_covers_them() -> None:
    scenario = _scenario(*CASES["beside agents drawn in Python"][0])
    seeds = generate_module._agent_seeds(np.random.SeedSequence(1), len(scenario.agents))
    agents = [generate_module._AgentTraffic(i, spec, scenario, seed)
              for i, (spec, seed) in enumerate(zip(scenario.agents, seeds, strict=True))]
    assert [agent.compiled is not None for agent in agents] == [True, False, False, True]


def test_runs_that_outgrow_their_arrays_go_on_at_the_window_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrays sized far too small: the loop stops at a window edge, puts the generators back
    as they were before that window, and goes on; one window larger than the arrays grows them."""
    scenario = _scenario({"name": "a", "count": 3, "arrival": {"process": "poisson", "rate": "4000/s"},
                          "fee": {"dist": "uniform", "low": 0, "high": 2}})
    reference = _batches(scenario, 5, S // 20, compiled=False, monkeypatch=monkeypatch)
    monkeypatch.setattr(PoissonWindows, "MIN_CAPACITY", 16)
    monkeypatch.setattr(PoissonWindows, "room", staticmethod(lambda expected: 16))
    _same(reference, _batches(scenario, 5, S // 20, compiled=True, monkeypatch=monkeypatch))
    # 4000/s x 3 instances: about 600 messages a window, so each window also grew the arrays.


@pytest.mark.parametrize("name", ["poisson defaults", "beside agents drawn in Python", "low rate: empty windows and Poisson means below 10"])
@pytest.mark.parametrize("min_rows", [1, 700, 5000, 10**9])
def test_joined_windows_are_the_same_messages_in_batches_of_whole_windows(
        name: str, min_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    agents, window_ns = CASES[name]
    scenario = _scenario(*agents)
    windows = _batches(scenario, 3, window_ns, compiled=True, monkeypatch=monkeypatch)
    joined = list(generate_traffic(scenario, np.random.SeedSequence(3), window_ns=window_ns, min_rows=min_rows))
    for column in COLUMNS:
        assert (np.concatenate([getattr(b, column) for b in windows]).tobytes()
                == np.concatenate([getattr(b, column) for b in joined]).tobytes())
    assert all(len(b) >= min_rows for b in joined[:-1])
    assert all(len(b) > 0 for b in joined)
    # Every batch ends where a window's batch ends: no window is split.
    window_ends = set(np.cumsum([len(b) for b in windows]).tolist())
    assert set(np.cumsum([len(b) for b in joined]).tolist()) <= window_ends
    if min_rows == 1:
        _same(windows, joined)
