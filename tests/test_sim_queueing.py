"""The sequencer against queueing theory: one Poisson source, no network delay.

M/M/1: Wq = rho / (mu - lambda). M/D/1 (Pollaczek-Khinchine): Wq = rho / (2 mu (1 - rho)).
M/M/c: Wq = C(c, a) / (c mu - lambda), C the Erlang C probability of waiting.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow.compute as pc
import pytest

QUEUE_TOML = """
[run]
name = "queue"
seed = {seed}
duration = "{duration_s}s"
drain = "2s"
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

[blocks]
interval = "1s"
max_messages = 10000000

[history]
delivery_sample = "0%"

[[agents]]
name = "source"
arrival = {{ process = "poisson", rate = "{rate}/s" }}
"""


def _mean_queue_wait_s(result) -> float:  # type: ignore[no-untyped-def]
    messages = result.history.messages
    served = messages.filter(pc.is_valid(messages["t_dequeued"]))
    wait = pc.subtract(served["t_dequeued"], served["t_received"]).to_numpy()
    assert len(wait) >= 200_000
    assert (wait >= 0).all()
    return float(np.mean(wait)) / 1e9


def _erlang_c(c: int, a: float) -> float:
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


MU = 1000.0  # service rate per worker, 1 ms mean service


@pytest.mark.slow
@pytest.mark.parametrize("rho, messages", [(0.5, 250_000), (0.8, 800_000)])
def test_mm1_mean_queue_wait(scenario_from, run_scenario, rho: float, messages: int) -> None:
    rate = rho * MU
    scenario = scenario_from(QUEUE_TOML.format(
        seed=5, duration_s=messages / rate, workers=1, rate=rate,
        service='{ dist = "exponential", mean = "1ms" }'))
    expected = rho / (MU - rate)
    measured = _mean_queue_wait_s(run_scenario(scenario))
    assert measured == pytest.approx(expected, rel=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("rho, messages", [(0.5, 220_000), (0.8, 400_000)])
def test_md1_mean_queue_wait(scenario_from, run_scenario, rho: float, messages: int) -> None:
    rate = rho * MU
    scenario = scenario_from(QUEUE_TOML.format(
        seed=6, duration_s=messages / rate, workers=1, rate=rate, service='"1ms"'))
    expected = rho / (2 * MU * (1 - rho))
    measured = _mean_queue_wait_s(run_scenario(scenario))
    assert measured == pytest.approx(expected, rel=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("workers, rho, messages", [(2, 0.5, 250_000), (3, 0.8, 600_000)])
def test_mmc_mean_queue_wait(scenario_from, run_scenario, workers: int, rho: float, messages: int) -> None:
    rate = rho * MU * workers
    scenario = scenario_from(QUEUE_TOML.format(
        seed=7, duration_s=messages / rate, workers=workers, rate=rate,
        service='{ dist = "exponential", mean = "1ms" }'))
    expected = _erlang_c(workers, rate / MU) / (workers * MU - rate)
    measured = _mean_queue_wait_s(run_scenario(scenario))
    assert measured == pytest.approx(expected, rel=0.03)


def test_erlang_c_reduces_to_mm1() -> None:
    # C(1, rho) = rho, so the M/M/c formula above must agree with M/M/1.
    assert _erlang_c(1, 0.8) == pytest.approx(0.8)
