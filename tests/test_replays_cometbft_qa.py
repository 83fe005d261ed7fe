"""The replay of CometBFT's 200-node QA testnet (replays/cometbft_qa.py, replays/against.py):
its declared figures, and its "against the testnet" table on summaries written by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import msgstorm
from msgstorm.replays import cometbft_qa as qa
from msgstorm.replays.against import Published, against, format_against
from msgstorm.traffic import make_arrival


def test_every_published_figure_is_either_fitted_or_predicted_never_both() -> None:
    names = [figure.name for figure in qa.FIGURES]
    assert len(set(names)) == len(names)
    assert set(qa.FITTED).isdisjoint(qa.PREDICTED)
    assert sorted([*qa.FITTED, *qa.PREDICTED]) == sorted(names)
    # The loaded figures are predicted: the preset was fitted without load.
    assert qa.BLOCKS_LOADED in qa.PREDICTED and qa.LATENCY_MEAN in qa.PREDICTED
    assert qa.FITTED == (qa.BLOCKS_EMPTY,)


def test_the_published_values_and_their_bands() -> None:
    figures = {figure.name: figure for figure in qa.FIGURES}
    loaded = figures[qa.BLOCKS_LOADED]
    assert (loaded.value, loaded.low, loaded.high) == pytest.approx((20.0, 17.0, 23.0))
    mean = figures[qa.LATENCY_MEAN]
    assert (mean.low, mean.high) == pytest.approx((3.499 * 0.85, 3.499 * 1.15))
    assert (figures[qa.MEMPOOL].low, figures[qa.MEMPOOL].high) == (1000.0, 2500.0)
    assert all("QA" in figure.source or "img38" in figure.source for figure in qa.FIGURES)


def _summary(interval_mean_ms: float, latency_mean_ms: float, latency_max_ms: float,
             mempool: float) -> dict[str, Any]:
    return {"consensus": {"interval_ms": {"mean": interval_mean_ms}},
            "latency_ms": {"mean": latency_mean_ms, "max": latency_max_ms}, "queue": {"mean_depth": mempool}}


def test_the_table_of_three_runs_worked_by_hand() -> None:
    """A 3 s mean interval is 20 blocks a minute (inside 17 to 23); 1.75 s is 34.29 (inside
    29.3 to 39.7); latency 2.0 s is under 2.97 (outside); 1.9 s at half load inside 1.58 to
    2.14; a mempool of 438 under 1,000 (outside)."""
    summaries = {"loaded": _summary(3000, 2000, 3300, 438), "half": _summary(2000, 1900, 2500, 300),
                 "empty": _summary(1750, 900, 1500, 0)}
    measured = qa.measured_from(summaries)
    assert measured[qa.BLOCKS_LOADED] == pytest.approx(20.0)
    assert measured[qa.BLOCKS_EMPTY] == pytest.approx(60 / 1.75)
    assert measured[qa.LATENCY_MEAN] == pytest.approx(2.0)
    assert measured[qa.LATENCY_MAX] == pytest.approx(3.3)
    assert measured[qa.LATENCY_HALF] == pytest.approx(1.9)
    assert measured[qa.MEMPOOL] == 438
    rows = {row.figure.name: row for row in against(qa.FIGURES, measured, qa.FITTED, qa.PREDICTED)}
    assert {name: row.inside for name, row in rows.items()} == {
        qa.BLOCKS_LOADED: True, qa.LATENCY_MEAN: False, qa.LATENCY_MAX: False, qa.LATENCY_HALF: True,
        qa.MEMPOOL: False, qa.BLOCKS_EMPTY: True}
    assert rows[qa.BLOCKS_EMPTY].kind == "fitted" and rows[qa.BLOCKS_LOADED].kind == "predicted"
    text = qa.table(summaries)
    line = next(line for line in text.splitlines() if line.startswith(qa.BLOCKS_EMPTY))
    assert "34.29" in line and "34.50" in line and "29.32 to 39.67" in line and " yes " in line and "fitted" in line
    line = next(line for line in text.splitlines() if line.startswith(qa.LATENCY_MEAN))
    assert "2.00" in line and "3.50" in line and " no " in line and "predicted" in line


def test_a_figure_fitted_and_predicted_or_neither_is_refused() -> None:
    figures = [Published.within("a", 1.0, 0.1, "x"), Published.within("b", 2.0, 0.1, "y")]
    with pytest.raises(ValueError, match="both fitted and predicted"):
        against(figures, {}, ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="neither fitted nor predicted"):
        against(figures, {}, ["a"], [])
    rows = against(figures, {"a": 1.05}, ["a"], ["b"])
    assert [(row.inside, row.measured) for row in rows] == [(True, 1.05), (False, None)]
    assert format_against(rows, "t").splitlines()[3].split()[:2] == ["b", "-"]


def test_the_preset_sends_the_load_tools_batches_at_each_rate_the_replay_sets() -> None:
    """Each second's transactions in one batch at its start, 170 us apart (docs/networks.md,
    "The load tool's batches and the node they enter"): at 400/s the second's 400 are sent in
    its first 399 x 170 us = 67.83 ms, at 200/s its 200 in 33.83 ms."""
    for rate, last_ns in (("400/s", 67_830_000), ("200/s", 33_830_000), ("1/s", 0)):
        agent = msgstorm.load_scenario(qa.PRESET, [f'agents[0].arrival.rate="{rate}"']).agents[0]
        times = make_arrival(agent.arrival, np.random.default_rng(1), 0, 3_000_000_000).times(0, 3_000_000_000)
        per_batch = int(rate.split("/")[0])
        assert times.size == 3 * per_batch
        assert np.array_equal(times[:per_batch] + 1_000_000_000, times[per_batch:2 * per_batch])
        assert times[0] == 0 and times[per_batch - 1] == last_ns


def _run(tmp_path: Any, name: str, rate: str, duration: str) -> dict[str, Any]:
    scenario = msgstorm.load_scenario(qa.PRESET, [f'agents[0].arrival.rate="{rate}"', f'run.duration="{duration}"'])
    summary: dict[str, Any] = msgstorm.run(scenario, tmp_path / name, write_report=False).summary
    return summary


@pytest.mark.slow
def test_the_preset_gives_the_fitted_figure_and_the_gap_under_load_the_docs_report(tmp_path: Any) -> None:
    """The preset (examples/cometbft-qa.toml), 30 s a load: without load its rate is the
    published 33 to 36 a minute within 15% (docs/networks.md: 35.10 over 90 s), one round a
    height; at 400/s the prediction is still about 32 a minute against the published 20 and
    the latency about 2 s against 3.50 s (the docs' table): outside the bands. This fails
    when the load's missing cost is modelled: then the docs' table changes with it."""
    summaries = {"empty": _run(tmp_path, "empty", "1/s", "30s"), "loaded": _run(tmp_path, "loaded", "400/s", "30s")}
    summaries["half"] = summaries["loaded"]  # not judged here
    rows = {row.figure.name: row for row in against(qa.FIGURES, qa.measured_from(summaries), qa.FITTED, qa.PREDICTED)}
    assert rows[qa.BLOCKS_EMPTY].inside and rows[qa.BLOCKS_EMPTY].kind == "fitted"
    assert summaries["empty"]["consensus"]["heights_above_round_0"] == 0
    assert summaries["loaded"]["consensus"]["heights_above_round_0"] == 0
    loaded_rate = rows[qa.BLOCKS_LOADED].measured
    assert loaded_rate is not None and 28 <= loaded_rate <= 36 and not rows[qa.BLOCKS_LOADED].inside
    latency = rows[qa.LATENCY_MEAN].measured
    assert latency is not None and 1.6 <= latency <= 2.4 and not rows[qa.LATENCY_MEAN].inside
