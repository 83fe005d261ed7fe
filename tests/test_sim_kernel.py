"""The link model (sim/link_model.py): each delay distribution as documented, the same for
the compiled gossip kernel and for the Python side (votes, catch-up)."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

TWO_NODES = """
[run]
name = "links"
seed = 9
duration = "20s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 2
intra_region_latency = "10ms"
processing = "0ns"
bandwidth = "unlimited"
link = {link}

[gossip]
degree = 1
peers = 1

[history]
max_deliveries = 100000

[[agents]]
name = "one"
node = "us-east-0"
arrival = {{ process = "poisson", rate = "200/s" }}
"""


def _delays_ms(run_scenario, scenario_from, link: str, faults: str = "") -> np.ndarray:  # type: ignore[no-untyped-def]
    result = run_scenario(scenario_from(TWO_NODES.format(link=link) + faults))
    deliveries = result.history.deliveries
    far = deliveries.filter(pc.equal(deliveries["node"], "us-east-1"))
    messages = result.history.messages
    sent = dict(zip(messages["msg_id"].to_pylist(), messages["t_sent"].to_pylist()))
    delays = np.array([t - sent[m] for m, t in zip(far["msg_id"].to_pylist(), far["t_delivered"].to_pylist())])
    assert delays.size > 3000
    return delays / 1e6


def test_constant_link(run_scenario, scenario_from) -> None:
    delays = _delays_ms(run_scenario, scenario_from, '{ dist = "constant" }')
    assert set(np.round(delays, 6).tolist()) == {10.0}


def test_uniform_link(run_scenario, scenario_from) -> None:
    delays = _delays_ms(run_scenario, scenario_from, '{ dist = "uniform", jitter = "4ms" }')
    assert delays.min() >= 10.0 and delays.max() < 14.0
    assert np.mean(delays) == pytest.approx(12.0, abs=0.1)


def test_normal_link(run_scenario, scenario_from) -> None:
    delays = _delays_ms(run_scenario, scenario_from, '{ dist = "normal", jitter = "2ms" }')
    assert np.mean(delays) == pytest.approx(10.0, abs=0.1)
    assert np.std(delays) == pytest.approx(2.0, rel=0.05)


def test_lognormal_link(run_scenario, scenario_from) -> None:
    delays = _delays_ms(run_scenario, scenario_from, '{ dist = "lognormal", sigma = 0.5 }')
    assert np.median(delays) == pytest.approx(10.0, rel=0.03)
    assert np.std(np.log(delays)) == pytest.approx(0.5, rel=0.05)


def test_pareto_link_has_a_heavy_tail(run_scenario, scenario_from) -> None:
    delays = _delays_ms(run_scenario, scenario_from, '{ dist = "pareto", alpha = 3.0 }')
    assert delays.min() >= 10.0
    # Pareto(1, alpha) multiplier: mean alpha / (alpha - 1) = 1.5; P(x > 2) = 2^-alpha.
    assert np.mean(delays) == pytest.approx(15.0, rel=0.05)
    assert np.mean(delays > 20.0) == pytest.approx(0.125, abs=0.02)


DEGRADED = """
[[faults]]
kind = "degrade"
at = "0s"
nodes = ["us-east-1"]
latency = "3ms"
jitter = "2ms"
loss = "10%"
"""


@pytest.mark.parametrize("link, faults", [
    ('{ dist = "uniform", jitter = "4ms" }', ""),
    ('{ dist = "normal", jitter = "2ms" }', ""),
    ('{ dist = "lognormal", sigma = 0.5 }', ""),
    ('{ dist = "pareto", alpha = 3.0 }', ""),
    ('{ dist = "lognormal", sigma = 0.3 }', DEGRADED),
])
def test_python_links_draw_the_kernels_delays(run_scenario, scenario_from, tmp_path, link: str, faults: str) -> None:
    """Votes and catch-up (Python) and gossip (kernel) travel one link model: the same
    delay distribution (two-sample Kolmogorov-Smirnov at the 1% level) and the same loss."""
    from msgstorm.history import HistoryWriter
    from msgstorm.sim.shadow import ShadowNetwork

    scenario = scenario_from(TWO_NODES.format(link=link) + faults)
    kernel = _delays_ms(run_scenario, scenario_from, link, faults)
    writer = HistoryWriter(tmp_path / "history", scenario.history.row_group_size)
    sim = ShadowNetwork(scenario, writer, np.random.SeedSequence(5))
    writer.close()
    if faults:
        sim.links.start_degrade(1, scenario.faults[0], sim.ctx.cluster.index)
    draws = [sim.links.delay(0, 1) for _ in range(20_000)]
    python = np.array([d for d in draws if d is not None]) / 1e6
    both = np.sort(np.concatenate([kernel, python]))
    gap = np.abs(np.searchsorted(np.sort(kernel), both, side="right") / kernel.size
                 - np.searchsorted(np.sort(python), both, side="right") / python.size).max()
    assert gap < 1.63 * np.sqrt((kernel.size + python.size) / (kernel.size * python.size))
    if faults:
        assert 1 - python.size / len(draws) == pytest.approx(0.1, abs=0.01)
